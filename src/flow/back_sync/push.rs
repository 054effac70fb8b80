//! ServiceNow's push (the business rule) and bringing one alert along with its incident: accept or resolve, tried within the key's allowance, refusals remembered.

use super::*;

impl<T: IncidentTable> BackSync<T> {
    /// The push from ServiceNow's business rule: the incident with this sys_id, read from
    /// ServiceNow itself (nothing else in the call is trusted), its alert read from iLert, and
    /// the one call it still needs. `Ok(None)`: no such incident.
    pub async fn push(
        &self,
        connection: &Connection,
        sys_id: &SysId,
        budget: &Budget,
    ) -> Result<Option<BackSyncOutcome>, BackSyncError> {
        let ilert = connection.ilert.as_ref().ok_or(BackSyncError::Off)?;
        let Some(incident) = budget
            .servicenow(self.table.get(&connection.servicenow, sys_id))
            .await?
        else {
            return Ok(None);
        };
        let unchanged = |incident, alert_id, reason| {
            Ok(Some(BackSyncOutcome {
                synced: BackSynced::Unchanged,
                alert_id,
                incident,
                reason: Some(reason),
            }))
        };
        if connection.servicenow.username().is_some() && incident.created_by.is_empty() {
            return Err(creator_unreadable(&incident.number));
        }
        let wanted = match wanted_in_ilert(&incident, connection.servicenow.username()) {
            Ok(wanted) => wanted,
            Err(reason) => return unchanged(incident, None, reason),
        };
        let alert_id = Some(wanted.alert.to_string());
        let key = CorrelationId::for_alert(&wanted.alert);
        let of_alert = budget
            .servicenow(self.table.of_alerts(&connection.servicenow, &[key]))
            .await?;
        let opened_by = connection.servicenow.username();
        if of_alert
            .iter()
            .find(|stays| opened_by_function(stays, opened_by))
            .is_some_and(|stays| stays.sys_id != incident.sys_id)
        {
            return unchanged(
                incident,
                alert_id,
                "a duplicate: the alert's incident that stays, the lowest number, speaks for it",
            );
        }
        let minute = self.key_minute(ilert);
        let allowance = Allowance::new(ILERT_CALLS_PER_PUSH, &minute, self.minute());
        let read = self
            .call_ilert(budget, &allowance, || {
                self.ilert.alert(ilert, &wanted.alert)
            })
            .await;
        let spent = || BackSyncError::ILertUnavailable {
            cause: format!(
                "this iLert key's calls for the minute are spent (passes and pushes share \
                 {KEY_CALLS_PER_MINUTE}, within iLert's 120); the next pass brings this change"
            ),
            retry_after: Duration::from_secs(60),
        };
        let in_ilert =
            match read {
                Ok(Some(alert)) => alert.status,
                Ok(None) => return Err(spent()),
                Err(BackSyncError::ILertNotFound(_)) => return unchanged(
                    incident,
                    alert_id,
                    "iLert has no such alert, or the API key's user may not see its alert source",
                ),
                Err(error) => return Err(error),
            };
        let action = back_action(wanted.status, in_ilert);
        if action == BackAction::LeaveAlone {
            return unchanged(incident, alert_id, "the alert is already that far in iLert");
        }
        let behind = Behind {
            alert: wanted.alert,
            action,
            incident,
        };
        let synced = self
            .bring(ilert, &behind, budget, &allowance)
            .await?
            .ok_or_else(|| BackSyncError::ILertUnavailable {
                cause: "the time budget ran out before iLert could be brought in line".into(),
                retry_after: Duration::from_secs(60),
            })?;
        Ok(Some(BackSyncOutcome {
            synced,
            alert_id,
            incident: behind.incident,
            reason: None,
        }))
    }

    /// Sends the one call that brings the alert where its incident is, and logs one
    /// `back_sync` line. Every try after the first reads the alert again before it acts: a
    /// call whose answer was lost may have been applied, and a call refused may have been
    /// beaten by someone else's. `Ok(None)`: left for the next pass, nothing half-done.
    pub(super) async fn bring(
        &self,
        ilert: &ILertAccount,
        behind: &Behind,
        budget: &Budget,
        allowance: &Allowance<'_>,
    ) -> Result<Option<BackSynced>, BackSyncError> {
        let alert = &behind.alert;
        let wanted = behind.action.target();
        let mut action = behind.action;
        let mut backoff = Backoff::new();
        // Whether a call of this function's went without an answer, so may have been applied.
        let mut maybe_applied = false;
        let mut refused_before = false;
        let synced = loop {
            if action == BackAction::LeaveAlone {
                // Already there: by this function's own call whose answer was lost, or by
                // someone else's.
                break if maybe_applied {
                    behind.action.synced()
                } else {
                    BackSynced::Unchanged
                };
            }
            if !allowance.take() {
                return Ok(None);
            }
            let sent = match action {
                BackAction::Accept => budget.ilert(self.ilert.accept(ilert, alert)).await,
                _ => budget.ilert(self.ilert.resolve(ilert, alert)).await,
            };
            let wait = match sent {
                Ok(_) => break action.synced(),
                Err(ILertError::Transient {
                    message,
                    retry_after,
                }) => {
                    maybe_applied = true;
                    Some((message, backoff.next_wait(retry_after)))
                }
                Err(ILertError::Throttled(message)) => {
                    let (least, most) = THROTTLED_WAIT_SECONDS;
                    Some((message, Duration::from_secs(fastrand::u64(least..=most))))
                }
                // Not a transition any more (someone was quicker): read and see, once.
                Err(ILertError::Refused(_)) if !refused_before => {
                    refused_before = true;
                    None
                }
                Err(error) => return Err(self.failed(ilert, behind, error.into())),
            };
            if let Some((cause, wait)) = wait {
                budget.count_retry();
                if !budget.allows_wait(wait) {
                    let error = BackSyncError::ILertUnavailable {
                        cause: format!("{cause}; left for the next pass"),
                        retry_after: wait.max(Duration::from_secs(5)),
                    };
                    return Err(self.failed(ilert, behind, error));
                }
                tracing::warn!(%cause, wait_ms = wait.as_millis() as u64, "retrying iLert");
                tokio::time::sleep(wait).await;
            }
            let read = self
                .call_ilert(budget, allowance, || self.ilert.alert(ilert, alert))
                .await
                .map_err(|error| self.failed(ilert, behind, error))?;
            let Some(now) = read else {
                return Ok(None);
            };
            action = back_action(wanted, now.status);
        };
        tracing::info!(
            alert_id = %behind.alert,
            incident = %behind.incident.number,
            state = behind.incident.state.code(),
            changed_by = %behind.incident.updated_by,
            back_sync = synced.as_str(),
            "back_sync"
        );
        Ok(Some(synced))
    }
}
