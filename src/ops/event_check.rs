//! `check`'s steps for Event Management (`target=event` in `DEFAULT_SETTINGS`): proves the
//! integration user may create events with one that changes nothing, and says whether it may
//! read the alerts they make.

use crate::adapters::secrets::ServiceNowAccount;
use crate::adapters::servicenow::{IncidentTable, TableApi};
use crate::domain::event_record::{EventRecord, SOURCE};

/// One line of the report: verdict, step, detail.
pub(crate) type Line = (&'static str, &'static str, String);

/// Sends a Clear for a key no alert has (ServiceNow closes nothing and opens nothing for
/// it [D2 L99–104]), then reads one alert. The lines to report, and whether events can be
/// sent.
pub(crate) async fn check(table: &TableApi, account: &ServiceNowAccount) -> (Vec<Line>, bool) {
    let key = format!("ilert:check-{}", crate::flow::budget::epoch_ms());
    let harmless = EventRecord {
        source: SOURCE.to_owned(),
        event_class: SOURCE.to_owned(),
        node: String::new(),
        kind: String::new(),
        resource: String::new(),
        metric_name: String::new(),
        message_key: key.clone(),
        severity: "0".to_owned(),
        resolution_state: Some("Closing".to_owned()),
        description: "ilert-servicenow check: a Clear for a key no alert has; it changes nothing"
            .to_owned(),
        additional_info: "{}".to_owned(),
        time_of_event: String::new(),
    };
    let mut lines = Vec::new();
    let sent = match table
        .send_events(account, std::slice::from_ref(&harmless))
        .await
    {
        Ok(()) => {
            lines.push((
                "OK",
                "send events",
                format!("Event Management stored a Clear for {key}, which no alert has"),
            ));
            true
        }
        Err(error) => {
            lines.push(("FAIL", "send events", error.to_string()));
            false
        }
    };
    lines.push(match table.read_one_alert(account).await {
        Ok(()) => (
            "OK",
            "read alerts",
            "em_alert can be read (not needed to send events)".to_owned(),
        ),
        Err(error) => (
            "WARN",
            "read alerts",
            format!(
                "{error}; sending events does not need it, reading what they became does \
                 (the evt_mgmt_user role)"
            ),
        ),
    });
    (lines, sent)
}
