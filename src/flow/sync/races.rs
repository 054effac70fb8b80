//! Settling creation races: a resolve's wait for a create being committed, the read-back
//! after a create, and the merge of duplicates onto the incident that stays (each canceled,
//! with a note naming it).

use super::*;

impl<S: SecretSource, T: IncidentTable> IncidentSync<S, T> {
    /// Waits the settle delay if the budget allows it; whether it waited.
    pub(super) async fn settle(&self, budget: &Budget) -> bool {
        let settle_delay = Duration::from_millis(self.settle_delay_ms.load(Ordering::Relaxed));
        if settle_delay.is_zero() || !budget.allows_wait(settle_delay) {
            return false;
        }
        tokio::time::sleep(settle_delay).await;
        true
    }

    /// After a create: whether any other incident carries the alert's key, read back at once.
    /// Numbers are taken before inserts commit, so a concurrent insert may hold a lower number
    /// and still be invisible now; no wait is needed for that, since its creator reads back
    /// after its own commit, which is after ours, sees both and merges them.
    pub(super) async fn others_appeared(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        key: &CorrelationId,
        created: &Incident,
    ) -> Result<bool, Interrupted> {
        let all = budget
            .servicenow(self.table.find(account, key))
            .await
            .map_err(|error| Interrupted::writing(error, Action::Created))?;
        let others = all.iter().any(|incident| incident.sys_id != created.sys_id);
        if others {
            tracing::info!(
                ours = %created.number,
                "a concurrent delivery created an incident for the same alert; merging"
            );
        }
        Ok(others)
    }

    /// Whether the incident with `sys_id` no longer carries the alert's key: a concurrent
    /// delivery canceled it as a duplicate, so a write to it was refused for that reason.
    pub(super) async fn moved_aside(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        key: &CorrelationId,
        sys_id: &str,
    ) -> Result<bool, Interrupted> {
        let found = budget.servicenow(self.table.find(account, key)).await?;
        Ok(!found.iter().any(|incident| incident.sys_id == sys_id))
    }

    /// Several incidents carry the alert's key after concurrent creations: the lowest number
    /// stays (every reader that sees the same set picks the same one), takes over what the
    /// others hold, and they are canceled. Returns the incident that stays, as it now is.
    pub(super) async fn merge(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        winner: &Incident,
        others: &[Incident],
    ) -> Result<Incident, Interrupted> {
        let duplicates: Vec<&Incident> = others.iter().filter(|d| !d.state.is_final()).collect();
        if duplicates.is_empty() {
            return Ok(winner.clone());
        }
        let changes = merge_into(winner, &duplicates);
        let merged = if changes.is_empty() || winner.state.is_final() {
            winner.clone()
        } else {
            match budget
                .servicenow(self.table.update(account, &winner.sys_id, &changes))
                .await
            {
                Ok(written) => written,
                Err(
                    error @ (ServiceNowError::Refused(_)
                    | ServiceNowError::Dropped(_)
                    | ServiceNowError::Unauthorized(_)),
                ) => {
                    // Never cancel what could not be carried over: the next lookup tries again.
                    tracing::warn!(winner = %winner.number, cause = %error, "could not merge duplicates");
                    return Ok(winner.clone());
                }
                Err(error) => return Err(error.into()),
            }
        };
        for duplicate in duplicates {
            self.cancel_duplicate(account, budget, duplicate, &merged)
                .await;
        }
        Ok(merged)
    }

    /// Best effort: a duplicate that stays is merged by the next lookup.
    pub(super) async fn cancel_duplicate(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        duplicate: &Incident,
        winner: &Incident,
    ) {
        let changes = cancel_duplicate(duplicate, winner);
        let result = budget
            .servicenow(self.table.update(account, &duplicate.sys_id, &changes))
            .await;
        match result {
            Ok(_) => tracing::info!(
                duplicate = %duplicate.number,
                winner = %winner.number,
                "canceled a duplicate incident"
            ),
            Err(error) => tracing::warn!(
                duplicate = %duplicate.number,
                winner = %winner.number,
                cause = %error,
                "could not cancel a duplicate incident; the next event will try again"
            ),
        }
    }
}
