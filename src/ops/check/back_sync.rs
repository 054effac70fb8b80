//! `check`'s steps for the way back: the iLert key and who it acts as, the open alerts the
//! pass reads, and the push's token.

use super::*;

/// The way back: the iLert key and who it acts as, the pass's query, and the push's token.
pub(super) async fn check_back_sync(
    table: &TableApi,
    ilert: &ILertApi,
    connection: &Connection,
    out: &mut impl Write,
) -> bool {
    let Some(account) = &connection.ilert else {
        report(
            out,
            "SKIP",
            "back-sync",
            "no ilert_api_key in the secret: the service desk's changes do not reach iLert \
             (`ilert-servicenow secret --ilert-api-key` turns it on)",
        );
        return true;
    };
    let mut passed = match ilert.current_user(account).await {
        Ok(user) => {
            let name = user
                .display_name()
                .unwrap_or_else(|| "a user with no name".into());
            let email = user
                .email
                .as_deref()
                .map(|e| format!(" <{e}>"))
                .unwrap_or_default();
            let id = user
                .id
                .map(|id| format!(" (iLert user {id})"))
                .unwrap_or_default();
            report(
                out,
                "OK",
                "ilert api key",
                &format!("{} acts as {name}{email}{id}", account.api_url),
            );
            true
        }
        Err(ILertError::KeyRefused(message)) => {
            report(
                out,
                "FAIL",
                "ilert api key",
                &format!(
                    "{message}: the key is wrong or revoked; make an API key for the iLert user \
                     the back-sync acts as (e.g. \"ServiceNow Sync\", a responder on the alert \
                     sources) and run `ilert-servicenow secret --ilert-api-key`"
                ),
            );
            false
        }
        Err(error) => {
            report(
                out,
                "FAIL",
                "ilert api key",
                &format!(
                    "{error} (check ilert_api_url and that {} is reachable from here)",
                    account.api_url
                ),
            );
            false
        }
    };
    // The pass's reads: how many alerts are open, the newest page of them (which shows whether
    // the API honours the filter), then their incidents in a state that asks something of
    // them (a widened answer is refused by the adapter).
    if passed {
        let newest = Scan::from_top(crate::flow::budget::epoch_ms() as i64)
            .next()
            .expect("a new scan has a window");
        let listed = match ilert.count_open_alerts(account).await {
            Ok(count) => ilert
                .open_alerts(account, &newest)
                .await
                .map(|page| (count, page)),
            Err(error) => Err(error),
        };
        let (count, page) = match listed {
            Ok(listed) => listed,
            Err(error) => {
                report(
                    out,
                    "FAIL",
                    "back-sync reads",
                    &format!("listing the open alerts: {error}"),
                );
                return false;
            }
        };
        let not_open = page
            .iter()
            .filter(|alert| alert.status == AlertStatus::Resolved)
            .count();
        if not_open > 0 {
            report(
                out,
                "FAIL",
                "ilert open alerts",
                &format!(
                    "iLert counts {count} open alert(s) but listed {not_open} resolved one(s) \
                     among the newest {}: it did not honour the filter \
                     states=PENDING&states=ACCEPTED, and each pass reads fewer open alerts \
                     than it could (check ilert_api_url: it must be iLert's API)",
                    page.len()
                ),
            );
            passed = false;
        } else {
            let passes = passes_to_reach(count);
            report(
                out,
                "OK",
                "ilert open alerts",
                &format!(
                    "{count} alert(s) open to this key, the filter honoured; a pass reads the \
                     newest {} and sweeps the rest: every open alert is reached within {passes} \
                     pass(es)",
                    u64::from(NEWEST_PAGES_PER_PASS) * OPEN_ALERTS_PAGE as u64
                ),
            );
        }
        let keys: Vec<CorrelationId> = page
            .iter()
            .filter(|alert| alert.status != AlertStatus::Resolved)
            .map(|alert| CorrelationId::for_alert(&alert.id))
            .collect();
        match table.of_alerts(&connection.servicenow, &keys).await {
            Ok(incidents) => report(
                out,
                "OK",
                "back-sync reads",
                &format!(
                    "{} incident(s) in ServiceNow of the newest {} open alert(s) (the pass acts \
                     on those the desk moved ahead of their alert)",
                    incidents.len(),
                    keys.len()
                ),
            ),
            Err(error) => {
                report(out, "FAIL", "back-sync reads", &error.to_string());
                passed = false;
            }
        }
    }
    if connection.push_token.is_some() {
        report(
            out,
            "OK",
            "push",
            "servicenow_token is set: the business rule may push changes (POST <base URL>/servicenow)",
        );
    } else {
        report(
            out,
            "SKIP",
            "push",
            "no servicenow_token: changes reach iLert through the scheduled pass (within a minute)",
        );
    }
    passed
}
