//! What a pass lists: the key's open alerts (the newest pages, then the sweep through older ones, within its share of iLert's calls), and which of their incidents the desk moved ahead.

use super::*;

impl<T: IncidentTable> BackSync<T> {
    /// The alerts open in iLert that this pass reaches, with their status: the newest
    /// [`NEWEST_PAGES_PER_PASS`] pages, then the sweep through the older ones, continued
    /// where the last pass on this key stopped and begun again below the newest once it has
    /// read them all, within [`LIST_CALLS_PER_PASS`] in all. An alert whose incident is ahead
    /// is so reached within two sweeps, however many alerts are open.
    pub(super) async fn open_alerts(
        &self,
        ilert: &ILertAccount,
        budget: &Budget,
        allowance: &Allowance<'_>,
    ) -> Result<HashMap<String, (AlertId, AlertStatus)>, BackSyncError> {
        let key = key_fingerprint(ilert);
        let mut open = HashMap::new();
        let mut listing = Listing {
            open: &mut open,
            calls_left: LIST_CALLS_PER_PASS,
            not_open: 0,
            spent: false,
        };
        let mut newest = Scan::from_top(epoch_ms() as i64);
        let read = self
            .read_scan(
                ilert,
                &mut newest,
                NEWEST_PAGES_PER_PASS,
                &mut listing,
                budget,
                allowance,
            )
            .await;
        if newest.done() || read.is_err() {
            return read.map(|()| open);
        }
        if listing.spent && listing.open.is_empty() {
            // Pushes spent the key's minute: say so rather than report nothing open.
            return Err(BackSyncError::ILertUnavailable {
                cause: format!(
                    "this iLert key's calls for the minute are spent (passes and pushes share \
                     {KEY_CALLS_PER_MINUTE}); the next pass lists the open alerts"
                ),
                retry_after: self.minute(),
            });
        }
        let stored = self
            .sweeps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let mut begun_below_newest = stored.is_none();
        let mut sweep = stored.unwrap_or_else(|| newest.clone());
        let mut read = Ok(());
        while listing.calls_left > 0 && read.is_ok() {
            if sweep.done() {
                if begun_below_newest {
                    break;
                }
                // The sweep has read every older alert: the next begins below the newest.
                sweep = newest.clone();
                begun_below_newest = true;
            }
            let calls = listing.calls_left;
            read = self
                .read_scan(ilert, &mut sweep, calls, &mut listing, budget, allowance)
                .await;
            if listing.calls_left == calls {
                break;
            }
        }
        let next = if sweep.done() { newest } else { sweep };
        self.sweeps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, next);
        if listing.not_open > 0 {
            tracing::warn!(
                listed = listing.not_open,
                "iLert listed alerts that are not open though the pass asked only for \
                 states=PENDING&states=ACCEPTED: the API did not honour the filter, and every \
                 pass reads fewer open alerts than it could"
            );
        }
        read.map(|()| open)
    }

    /// Reads up to `pages` pages of `scan` into `listing`. Stops early, with what it read, when
    /// the scan ends, this pass's iLert calls or time are spent.
    pub(super) async fn read_scan(
        &self,
        ilert: &ILertAccount,
        scan: &mut Scan,
        pages: u32,
        listing: &mut Listing<'_>,
        budget: &Budget,
        allowance: &Allowance<'_>,
    ) -> Result<(), BackSyncError> {
        for _ in 0..pages.min(listing.calls_left) {
            let Some(window) = scan.next() else {
                break;
            };
            if budget.remaining() < SHORTEST_USEFUL_ALERT {
                break;
            }
            let page = self
                .call_ilert(budget, allowance, || self.ilert.open_alerts(ilert, &window))
                .await?;
            let Some(page) = page else {
                listing.spent = true;
                break;
            };
            listing.calls_left -= 1;
            scan.read(&page, OPEN_ALERTS_PAGE);
            for alert in page {
                if alert.status == AlertStatus::Resolved {
                    listing.not_open += 1;
                } else {
                    listing
                        .open
                        .insert(alert.id.to_string(), (alert.id, alert.status));
                }
            }
        }
        Ok(())
    }

    /// The open alerts whose incident the desk moved ahead of them, one entry per alert.
    pub(super) async fn behind(
        &self,
        connection: &Connection,
        open: &HashMap<String, (AlertId, AlertStatus)>,
        budget: &Budget,
    ) -> Result<Vec<Behind>, BackSyncError> {
        let keys: Vec<CorrelationId> = open
            .values()
            .map(|(id, _)| CorrelationId::for_alert(id))
            .collect();
        let mut behind = Vec::new();
        for chunk in keys.chunks(OPEN_ALERTS_PAGE) {
            let incidents = budget
                .servicenow(self.table.of_alerts(&connection.servicenow, chunk))
                .await?;
            // Several incidents of one alert (a race not merged yet, a duplicate the desk
            // canceled by hand): only the one that stays speaks for the alert, the lowest
            // number, as the merge keeps it. They come oldest first.
            // An incident someone else created under the key is no candidate at all.
            let opened_by = connection.servicenow.username();
            if opened_by.is_some() {
                if let Some(incident) = incidents.iter().find(|i| i.created_by.is_empty()) {
                    return Err(creator_unreadable(&incident.number));
                }
            }
            let mut seen = std::collections::HashSet::new();
            for incident in incidents {
                if !opened_by_function(&incident, opened_by)
                    || !seen.insert(incident.correlation_id.clone())
                {
                    continue;
                }
                let Ok(wanted) = wanted_in_ilert(&incident, opened_by) else {
                    continue;
                };
                let Some((alert, in_ilert)) = open.get(wanted.alert.as_str()).cloned() else {
                    continue;
                };
                let action = back_action(wanted.status, in_ilert);
                if action != BackAction::LeaveAlone {
                    behind.push(Behind {
                        alert,
                        action,
                        incident,
                    });
                }
            }
        }
        Ok(behind)
    }
}
