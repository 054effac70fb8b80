//! The incident synchronisation: brings the alert's incident in line with one event. Each
//! attempt looks the incident up, decides (the pure decision), writes and settles creation
//! races; what a retry can fix is retried within the invocation's budget. Whichever door the
//! event came through, this is where it reaches ServiceNow.

use crate::adapters::secrets::{
    Connection, ConnectionCache, SecretError, SecretSource, ServiceNowAccount,
};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError};
use crate::domain::alert::AlertEvent;
use crate::domain::decision::{cancel_duplicate, decide, Plan};
use crate::domain::incident::{CorrelationId, Incident, IncidentChanges};
use crate::domain::settings::Settings;
use crate::flow::budget::{Backoff, Budget};
use crate::flow::directory::UserDirectory;
use std::sync::Arc;
use std::time::Duration;

/// What a retryable failure suggests waiting when the cause gave no better hint.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// A sleeping developer instance takes a minute or more to wake.
const ASLEEP_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Passes of one attempt: a creator that lost a race looks again and applies its event to
/// the winner. More than a few means the alert's incidents keep changing under it.
const MAX_PASSES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Ignored,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Ignored => "ignored",
        }
    }
}

/// The incident an event was applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRef {
    pub number: String,
    pub sys_id: String,
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    pub incident: Option<IncidentRef>,
    /// Why nothing was done, for `ignored`.
    pub reason: Option<&'static str>,
}

impl Outcome {
    fn with(action: Action, incident: &Incident) -> Self {
        Self {
            action,
            incident: Some(IncidentRef {
                number: incident.number.clone(),
                sys_id: incident.sys_id.clone(),
            }),
            reason: None,
        }
    }

    pub fn ignored(reason: &'static str) -> Self {
        Self {
            action: Action::Ignored,
            incident: None,
            reason: Some(reason),
        }
    }

    /// A write whose answer was lost was applied after all if the next pass finds nothing
    /// left to do: report what the event did, not what the last pass did.
    fn after_lost_write(mut self, lost: Option<Action>) -> Self {
        if let (Action::Unchanged, Some(action)) = (self.action, lost) {
            self.action = action;
        }
        self
    }
}

/// Why an event could not be brought to ServiceNow, with its verdict: whether delivering it
/// again later may succeed. Every lower failure becomes one of these here, and only here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// ServiceNow or Secrets Manager is throttled, down, asleep or too slow for the budget:
    /// nothing was half-written, and delivering the event again later is safe.
    #[error("{cause}")]
    Unavailable {
        cause: String,
        retry_after: Duration,
    },
    /// ServiceNow refused in a way a retry will not fix.
    #[error("{0}")]
    Refused(String),
    /// The function's configuration (its secret) is wrong.
    #[error("{0}")]
    Misconfigured(String),
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl From<ServiceNowError> for SyncError {
    fn from(error: ServiceNowError) -> Self {
        match error {
            ServiceNowError::Transient {
                message,
                retry_after,
            } => Self::Unavailable {
                cause: message,
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            ServiceNowError::NotTableApi(cause) => Self::Unavailable {
                cause,
                retry_after: ASLEEP_RETRY_AFTER,
            },
            ServiceNowError::Unauthorized(cause) | ServiceNowError::Refused(cause) => {
                Self::Refused(cause)
            }
        }
    }
}

impl From<SecretError> for SyncError {
    fn from(error: SecretError) -> Self {
        match error {
            SecretError::Misconfigured(cause) => Self::Misconfigured(cause),
            SecretError::Unavailable(cause) => Self::Unavailable {
                cause,
                retry_after: DEFAULT_RETRY_AFTER,
            },
        }
    }
}

pub struct IncidentSync<S, T> {
    connections: Arc<ConnectionCache<S>>,
    table: T,
    users: UserDirectory,
}

impl<S: SecretSource, T: IncidentTable> IncidentSync<S, T> {
    /// `connections` is where a rotated password is read again after a 401.
    pub fn new(connections: Arc<ConnectionCache<S>>, table: T) -> Self {
        Self {
            connections,
            table,
            users: UserDirectory::default(),
        }
    }

    /// Brings the alert's incident in line with the event, retrying what a retry can fix
    /// until the budget runs out. Each attempt reads the incident afresh and decides again,
    /// so retrying a write whose answer was lost never applies it twice.
    pub async fn apply(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        mut connection: Arc<Connection>,
        budget: &Budget,
    ) -> Result<Outcome, SyncError> {
        let mut backoff = Backoff::new();
        let mut credentials_refreshed = false;
        let mut write_answer_lost = None;
        loop {
            let interrupted = match self
                .attempt(event, settings, &connection.servicenow, budget)
                .await
            {
                Ok(outcome) => return Ok(outcome.after_lost_write(write_answer_lost)),
                Err(interrupted) => interrupted,
            };
            budget.count_retry();
            match interrupted.error {
                ServiceNowError::Unauthorized(refusal) if !credentials_refreshed => {
                    // A password rotated in Secrets Manager reaches a warm function here.
                    credentials_refreshed = true;
                    let fresh = budget
                        .secrets_manager(self.connections.refresh(&connection))
                        .await?;
                    if fresh.servicenow.same_login(&connection.servicenow) {
                        return Err(SyncError::Refused(refusal));
                    }
                    tracing::info!("ServiceNow refused the cached credentials; retrying with the secret read again");
                    connection = fresh;
                }
                ServiceNowError::Transient {
                    message,
                    retry_after,
                } => {
                    write_answer_lost = write_answer_lost.or(interrupted.during_write);
                    let wait = backoff.next_wait(retry_after);
                    if !budget.allows_wait(wait) {
                        return Err(SyncError::Unavailable {
                            cause: format!(
                                "{message}; gave up after {} attempts",
                                budget.spending().retries
                            ),
                            retry_after: retry_after.unwrap_or(wait),
                        });
                    }
                    tracing::warn!(cause = %message, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return Err(other.into()),
            }
        }
    }

    /// One attempt: look up → decide → write. A creator that finds it lost a creation race
    /// looks again, and so applies its event to the winner.
    async fn attempt(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        account: &ServiceNowAccount,
        budget: &Budget,
    ) -> Result<Outcome, Interrupted> {
        let key = CorrelationId::for_alert(&event.id);
        for _ in 0..MAX_PASSES {
            let found = budget.servicenow(self.table.find(account, &key)).await?;
            let current = found.first();
            if let Some(winner) = current {
                // Left behind by a creation race whose loser could not tidy up (see README).
                for duplicate in found[1..].iter().filter(|d| !d.state.is_final()) {
                    self.cancel_duplicate(account, budget, duplicate, winner)
                        .await;
                }
            }
            let people = self
                .users
                .people(
                    &self.table,
                    account,
                    event,
                    settings,
                    current.is_none(),
                    budget,
                )
                .await?;
            match decide(event, current, settings, &people) {
                Plan::Ignore { reason } => return Ok(Outcome::ignored(reason)),
                Plan::Unchanged => {
                    return Ok(match current {
                        Some(incident) => Outcome::with(Action::Unchanged, incident),
                        None => Outcome {
                            action: Action::Unchanged,
                            incident: None,
                            reason: None,
                        },
                    })
                }
                Plan::Update { sys_id, changes } => {
                    let written = budget
                        .servicenow(self.table.update(account, &sys_id, &changes))
                        .await
                        .map_err(|error| Interrupted::writing(error, Action::Updated))?;
                    ensure_applied(&changes, &written, "update")?;
                    return Ok(Outcome::with(Action::Updated, &written));
                }
                Plan::Create(changes) => {
                    let created = self.create(account, budget, &changes).await?;
                    if self
                        .won_creation_race(&key, account, budget, &created)
                        .await?
                    {
                        return Ok(Outcome::with(Action::Created, &created));
                    }
                }
            }
        }
        Err(Interrupted::from(ServiceNowError::Transient {
            message: "the alert's incidents kept changing under concurrent deliveries".into(),
            retry_after: None,
        }))
    }

    async fn create(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        changes: &IncidentChanges,
    ) -> Result<Incident, Interrupted> {
        let created = budget
            .servicenow(self.table.create(account, changes))
            .await
            .map_err(|error| Interrupted::writing(error, Action::Created))?;
        ensure_applied(changes, &created, "creation")?;
        Ok(created)
    }

    /// After a create, reads back every incident with the alert's key: the oldest wins. If
    /// it is not ours, a concurrent delivery created the alert's incident first, and ours is
    /// canceled. Costs one read per create, none per update.
    async fn won_creation_race(
        &self,
        key: &CorrelationId,
        account: &ServiceNowAccount,
        budget: &Budget,
        created: &Incident,
    ) -> Result<bool, Interrupted> {
        let all = budget
            .servicenow(self.table.find(account, key))
            .await
            .map_err(|error| Interrupted::writing(error, Action::Created))?;
        let winner = match all.first() {
            Some(oldest) if oldest.sys_id != created.sys_id => oldest,
            _ => return Ok(true),
        };
        tracing::info!(
            ours = %created.number,
            winner = %winner.number,
            "a concurrent delivery created the alert's incident first; canceling ours"
        );
        // Another invocation may already have moved ours aside.
        if all.iter().any(|incident| incident.sys_id == created.sys_id) {
            self.cancel_duplicate(account, budget, created, winner)
                .await;
        }
        Ok(false)
    }

    /// Best effort: a duplicate that stays is canceled by the next event's lookup.
    async fn cancel_duplicate(
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

/// A ServiceNow call that did not finish, and the write it was part of, if any: after a lost
/// answer the write may have been applied.
struct Interrupted {
    error: ServiceNowError,
    during_write: Option<Action>,
}

impl Interrupted {
    fn writing(error: ServiceNowError, write: Action) -> Self {
        Self {
            error,
            during_write: Some(write),
        }
    }
}

impl From<ServiceNowError> for Interrupted {
    fn from(error: ServiceNowError) -> Self {
        Self {
            error,
            during_write: None,
        }
    }
}

/// A 2xx that silently dropped a field we depend on is a refusal, not a success.
fn ensure_applied(
    changes: &IncidentChanges,
    written: &Incident,
    what: &str,
) -> Result<(), ServiceNowError> {
    let dropped = changes.not_applied_in(written);
    if dropped.is_empty() {
        return Ok(());
    }
    Err(ServiceNowError::Refused(format!(
        "ServiceNow accepted the {what} of {} but did not apply {}: a field ACL, business rule \
         or data policy dropped it; give the integration user write access to these fields",
        if written.number.is_empty() {
            "the incident"
        } else {
            &written.number
        },
        dropped.join(", ")
    )))
}
