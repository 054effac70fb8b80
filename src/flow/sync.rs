//! The incident synchronisation: brings the alert's incident in line with one event. Each
//! attempt looks the incident up, decides (the pure decision), writes and settles creation
//! races; what a retry can fix is retried within the invocation's budget. Whichever door the
//! event came through, this is where it reaches ServiceNow.

use crate::adapters::secrets::{Connection, ConnectionCache, SecretSource, ServiceNowAccount};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError};
use crate::domain::alert::{AlertEvent, AlertStatus};
use crate::domain::decision::{cancel_duplicate, decide, merge_into, Plan};
use crate::domain::incident::{CorrelationId, Incident, IncidentChanges, NoteMemory};
use crate::domain::people::{Assignee, Echo};
use crate::domain::settings::{Settings, Target};
use crate::flow::back_sync::BackSync;
use crate::flow::budget::{Backoff, Budget};
use crate::flow::directory::UserDirectory;
use crate::flow::events::EventSender;
use crate::flow::outcome::{Action, Outcome, SyncError, DEFAULT_RETRY_AFTER};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Passes of one attempt: a creator that met a concurrent creation looks again, merges and
/// applies its event to the incident that stays; a write refused because its incident was
/// just canceled as a duplicate looks again too. More than a few means the alert's incidents
/// keep changing under it.
const MAX_PASSES: usize = 5;
/// How long one who finds a duplicate it did not create leaves its creator to merge it: the
/// creator reads back right after its insert and merges within a round trip or two.
const LEAVE_MERGE_TO_ITS_CREATOR: Duration = Duration::from_millis(400);
/// How long a resolve that finds no incident waits before it looks again: longer than the
/// create of a flapping alert, delivered at the same moment, takes to commit on a busy
/// instance.
pub const DEFAULT_SETTLE_DELAY: Duration = Duration::from_secs(1);

/// `SETTLE_DELAY_MS`: how long a resolve that finds no incident waits before it looks
/// again, in milliseconds; `None` when unset.
pub fn settle_delay_from(value: Option<&str>) -> Result<Option<Duration>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= 10_000)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| {
                format!("SETTLE_DELAY_MS must be a whole number of milliseconds up to 10000, got {text:?}")
            }),
    }
}

pub struct IncidentSync<S, T> {
    connections: Arc<ConnectionCache<S>>,
    table: Arc<T>,
    users: UserDirectory,
    /// The way back, which knows who iLert's echoes of its own actions name.
    back_sync: Arc<BackSync<T>>,
    /// In milliseconds: set through a shared reference, so no builder order can fail.
    settle_delay_ms: AtomicU64,
    /// `target=event`: Event Management instead of an incident.
    events: EventSender<S, T>,
}

impl<S: SecretSource, T: IncidentTable> IncidentSync<S, T> {
    /// `connections` is where a rotated password is read again after a 401.
    pub fn new(
        connections: Arc<ConnectionCache<S>>,
        table: Arc<T>,
        back_sync: Arc<BackSync<T>>,
    ) -> Self {
        Self {
            events: EventSender::new(Arc::clone(&connections), Arc::clone(&table)),
            connections,
            table,
            users: UserDirectory::default(),
            back_sync,
            settle_delay_ms: AtomicU64::new(DEFAULT_SETTLE_DELAY.as_millis() as u64),
        }
    }

    /// How long a resolve that finds no incident waits before it looks again, rather than
    /// open a second incident beside a create being committed right now. Zero looks at once;
    /// whoever sees several incidents later still merges them.
    pub fn set_settle_delay(&self, settle_delay: Duration) {
        self.settle_delay_ms
            .store(settle_delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Brings the alert's incident in line with the event, retrying what a retry can fix
    /// until the budget runs out. Each attempt reads the incident afresh and decides again,
    /// so retrying a write whose answer was lost never applies it twice.
    pub async fn apply(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        connection: Arc<Connection>,
        arrival: Arrival,
        budget: &Budget,
    ) -> Result<Outcome, SyncError> {
        self.apply_all(
            std::slice::from_ref(event),
            settings,
            connection,
            arrival,
            budget,
        )
        .await
    }

    /// Several events of one alert, in the order they happened, as one: one lookup and one
    /// write carrying every event's note in order and the state the last one leaves (a queued
    /// batch's events of one alert). Decided event by event against the incident as the
    /// writes before would leave it, so the write is what applying them one by one would
    /// write, each note still once.
    pub async fn apply_all(
        &self,
        events: &[AlertEvent],
        settings: &Settings,
        mut connection: Arc<Connection>,
        arrival: Arrival,
        budget: &Budget,
    ) -> Result<Outcome, SyncError> {
        if settings.target == Target::Event {
            return self.events.send(events, settings, connection, budget).await;
        }
        let mut backoff = Backoff::new();
        let mut credentials_refreshed = false;
        let mut intermittent_failures = 0;
        let mut write_answer_lost = None;
        let mut create_in_doubt = false;
        let mut first_attempt = true;
        let mut echoes = Vec::with_capacity(events.len());
        for event in events {
            echoes.push(self.back_sync.is_echo(&connection, event, budget).await);
        }
        let all_echoes = if echoes.iter().all(|echo| *echo == Echo::Yes) {
            Echo::Yes
        } else {
            Echo::No
        };
        loop {
            let interrupted = match self
                .attempt(
                    events,
                    &echoes,
                    settings,
                    &connection.servicenow,
                    budget,
                    Conditions {
                        create_in_doubt,
                        arrival,
                        caller_ahead: std::mem::take(&mut first_attempt),
                    },
                )
                .await
            {
                Ok(outcome) => {
                    return Ok(outcome
                        .after_lost_write(write_answer_lost)
                        .echoed(all_echoes))
                }
                Err(interrupted) => interrupted,
            };
            budget.count_retry();
            let error = match interrupted.error {
                Interruption::LookAgain(reason) => {
                    let wait = backoff.next_wait(None);
                    if !budget.allows_wait(wait) {
                        return Err(SyncError::Unavailable {
                            cause: reason.to_owned(),
                            retry_after: DEFAULT_RETRY_AFTER,
                        });
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Interruption::ServiceNow(error) => error,
            };
            let (message, retry_after) = match error {
                ServiceNowError::Unauthorized(refusal) if !credentials_refreshed => {
                    // A password rotated in Secrets Manager reaches a warm function here.
                    credentials_refreshed = true;
                    connection = budget
                        .secrets_manager(self.connections.changed_login(&connection))
                        .await?
                        .ok_or(SyncError::Refused(refusal))?;
                    tracing::info!("ServiceNow refused the cached credentials; retrying with the secret read again");
                    continue;
                }
                // Answered: the transaction is over, so the next lookup sees whatever it did.
                ServiceNowError::Intermittent { message, tries } => {
                    intermittent_failures += 1;
                    if intermittent_failures >= tries {
                        return Err(SyncError::Refused(format!(
                            "{message} ({intermittent_failures} times in a row)"
                        )));
                    }
                    write_answer_lost = write_answer_lost.or(interrupted.during_write);
                    (message, None)
                }
                // No answer: a create may still be committing (business rules can take longer
                // than any wait), so no lookup proves it absent. It is never sent again in this
                // invocation; a later lookup may find it.
                ServiceNowError::Transient {
                    message,
                    retry_after,
                } => {
                    create_in_doubt |= interrupted.during_write == Some(Action::Created);
                    write_answer_lost = write_answer_lost.or(interrupted.during_write);
                    (message, retry_after)
                }
                ServiceNowError::NotApplied {
                    message,
                    retry_after,
                } => (message, retry_after),
                other => return Err(other.into()),
            };
            let wait = backoff.next_wait(retry_after);
            if !budget.allows_wait(wait) {
                return Err(SyncError::Unavailable {
                    cause: format!(
                        "{message}; gave up after {} attempts",
                        budget.spending().retries
                    ),
                    retry_after: retry_after.unwrap_or(wait.max(DEFAULT_RETRY_AFTER)),
                });
            }
            tracing::warn!(cause = %message, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: look up (merging what concurrent creations left) → decide → write. A
    /// pass that finds the ground moved under it (another incident for the alert appeared,
    /// or the one it wrote to was canceled as a duplicate) looks again.
    async fn attempt(
        &self,
        events: &[AlertEvent],
        echoes: &[Echo],
        settings: &Settings,
        account: &ServiceNowAccount,
        budget: &Budget,
        conditions: Conditions,
    ) -> Result<Outcome, Interrupted> {
        let Some(event) = events.first() else {
            return Ok(Outcome::ignored("no event"));
        };
        let key = CorrelationId::for_alert(&event.id);
        let mut created_here: Option<String> = None;
        let mut assignment_refused: Option<String> = None;
        let mut looked_again = false;
        let mut left_merge_to_creator = false;
        for pass in 0..MAX_PASSES {
            let lookup = budget.servicenow(self.table.find(account, &key));
            let found = if pass == 0 && conditions.caller_ahead {
                // The caller a create needs is looked up beside the incident, not after it.
                let ahead =
                    self.users
                        .look_up_caller_ahead(&*self.table, account, settings, budget);
                futures_util::future::join(lookup, ahead).await.0?
            } else {
                lookup.await?
            };
            let current = match found.split_first() {
                Some((oldest, younger)) => {
                    // A duplicate's creator reads back after its create and merges at once;
                    // anyone else gives it a moment first, so that one merge is made, with
                    // one note naming the duplicate, not one from each side of the race. A
                    // duplicate still there after the moment is merged here.
                    let created_a_duplicate = created_here
                        .as_deref()
                        .is_some_and(|mine| younger.iter().any(|d| d.sys_id == mine));
                    let active_duplicate = younger.iter().any(|d| !d.state.is_final());
                    if active_duplicate
                        && !created_a_duplicate
                        && !left_merge_to_creator
                        && budget.allows_wait(LEAVE_MERGE_TO_ITS_CREATOR)
                    {
                        left_merge_to_creator = true;
                        tokio::time::sleep(LEAVE_MERGE_TO_ITS_CREATOR).await;
                        continue;
                    }
                    Some(self.merge(account, budget, oldest, younger).await?)
                }
                None => None,
            };
            let plan = self
                .plan(
                    events,
                    echoes,
                    current.as_ref(),
                    settings,
                    account,
                    assignment_refused.as_deref(),
                    budget,
                )
                .await?;
            let outcome = match plan {
                Plan::Ignore { reason } => Outcome::ignored(reason),
                Plan::Unchanged => match &current {
                    Some(incident) => Outcome::with(Action::Unchanged, incident),
                    None => Outcome {
                        action: Action::Unchanged,
                        incident: None,
                        reason: None,
                    },
                },
                Plan::Update { sys_id, changes } => {
                    match budget
                        .servicenow(self.table.update(account, &sys_id, &changes))
                        .await
                    {
                        Ok(written) => {
                            let written = self
                                .remember_instance_state(account, budget, &changes, written)
                                .await;
                            Outcome::with(Action::Updated, &written)
                        }
                        Err(ServiceNowError::Refused(cause) | ServiceNowError::NotFound(cause)) => {
                            if self.moved_aside(account, budget, &key, &sys_id).await? {
                                continue;
                            }
                            if changes.assigned_to.is_some() && assignment_refused.is_none() {
                                assignment_refused = Some(cause);
                                continue;
                            }
                            return Err(ServiceNowError::Refused(cause).into());
                        }
                        Err(error) => return Err(Interrupted::writing(error, Action::Updated)),
                    }
                }
                Plan::Create(_) if conditions.create_in_doubt => {
                    return Err(Interrupted::look_again(
                        "ServiceNow did not answer a create in time, and the incident it may be \
                         committing is not visible yet; not creating it twice",
                    ));
                }
                Plan::Create(changes) => {
                    if event.status == AlertStatus::Resolved && !looked_again {
                        // A flapping alert's create is often being written right now: give
                        // it the settle delay to land rather than open a second incident.
                        looked_again = true;
                        if self.settle(budget).await {
                            continue;
                        }
                    }
                    let created = match budget
                        .servicenow(self.table.create(account, &changes))
                        .await
                    {
                        Ok(created) => created,
                        Err(ServiceNowError::Refused(cause))
                            if changes.assigned_to.is_some() && assignment_refused.is_none() =>
                        {
                            assignment_refused = Some(cause);
                            continue;
                        }
                        Err(error) => return Err(Interrupted::writing(error, Action::Created)),
                    };
                    created_here = Some(created.sys_id.clone());
                    if conditions.arrival == Arrival::Concurrent
                        && self
                            .others_appeared(account, budget, &key, &created)
                            .await?
                    {
                        continue;
                    }
                    let created = self
                        .remember_instance_state(account, budget, &changes, created)
                        .await;
                    Outcome::with(Action::Created, &created)
                }
            };
            return Ok(outcome.created_if_on(created_here.as_deref()));
        }
        Err(Interrupted::look_again(
            "the alert's incidents kept changing under concurrent deliveries",
        ))
    }

    /// What the events, one after the other, ask of `current`: each decided against the
    /// incident as the ones before would leave it, and their writes as one.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        events: &[AlertEvent],
        echoes: &[Echo],
        current: Option<&Incident>,
        settings: &Settings,
        account: &ServiceNowAccount,
        assignment_refused: Option<&str>,
        budget: &Budget,
    ) -> Result<Plan, ServiceNowError> {
        let mut incident = current.cloned();
        let mut plan: Option<Plan> = None;
        let mut ignored = None;
        for (event, echo) in events.iter().zip(echoes) {
            let mut people = self
                .users
                .people(
                    &*self.table,
                    account,
                    event,
                    settings,
                    incident.is_none(),
                    budget,
                )
                .await?;
            if let Some(cause) = assignment_refused {
                people.assignee = Assignee::Refused(cause.to_owned());
            }
            people.echo_of_back_sync = *echo;
            let decided = decide(
                event,
                incident.as_ref(),
                settings,
                &people,
                SystemTime::now(),
            );
            plan = match (plan, decided) {
                (plan, Plan::Ignore { reason }) => {
                    ignored = Some(reason);
                    plan
                }
                (plan, Plan::Unchanged) => plan,
                (None, Plan::Create(changes)) => {
                    incident = Some(Incident::created_by(&changes));
                    Some(Plan::Create(changes))
                }
                (None, Plan::Update { sys_id, changes }) => {
                    incident = incident.map(|i| i.after(&changes));
                    Some(Plan::Update { sys_id, changes })
                }
                (Some(Plan::Create(before)), Plan::Update { changes, .. }) => {
                    incident = incident.map(|i| i.after(&changes));
                    Some(Plan::Create(before.then(changes)))
                }
                (
                    Some(Plan::Update {
                        sys_id,
                        changes: before,
                    }),
                    Plan::Update { changes, .. },
                ) => {
                    incident = incident.map(|i| i.after(&changes));
                    Some(Plan::Update {
                        sys_id,
                        changes: before.then(changes),
                    })
                }
                // A create decided against an incident that exists cannot happen: decide
                // creates only when there is none.
                (Some(earlier), Plan::Create(_)) => Some(earlier),
                (Some(earlier), _) => Some(earlier),
            };
        }
        Ok(match (plan, ignored) {
            (Some(plan), _) => plan,
            (None, Some(reason)) if events.len() == 1 => Plan::Ignore { reason },
            (None, _) => Plan::Unchanged,
        })
    }

    /// A state the instance set by itself inside this write (an assignment rule, a flow) is
    /// remembered in the incident, so that the way back never takes it for the desk's work and
    /// accepts or resolves a page nobody looked at. One more write, only when it happens; if
    /// even that fails, an error line says so.
    async fn remember_instance_state(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        changes: &IncidentChanges,
        written: Incident,
    ) -> Incident {
        let Some(state) = changes.state_set_by_instance(&written) else {
            return written;
        };
        let memory = NoteMemory::read(&written.correlation_display);
        if memory.set_by_instance(&state) {
            return written;
        }
        tracing::warn!(
            incident = %written.number,
            state = state.code(),
            "the instance set the incident's state itself inside the function's write (an \
             assignment rule or a flow); remembered, so the way back never acts on it"
        );
        let remembered = IncidentChanges {
            correlation_display: Some(memory.remember_set_by_instance(&state)),
            ..IncidentChanges::default()
        };
        match budget
            .servicenow(self.table.update(account, &written.sys_id, &remembered))
            .await
        {
            Ok(updated) => updated,
            Err(cause) => {
                tracing::error!(
                    incident = %written.number,
                    %cause,
                    "could not remember that the instance set the state itself; the way back \
                     may take it for the desk's work"
                );
                written
            }
        }
    }
}

mod races;

/// How the events of one alert reach [`IncidentSync::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Any number at once (direct delivery): a create may race another, so it reads back.
    Concurrent,
    /// One at a time, in order (queued delivery: the message group is the alert), so no
    /// create of this alert can race another and none reads back.
    OneAtATime,
}

/// What an attempt must know of the attempts before it and of the event.
#[derive(Debug, Clone, Copy)]
struct Conditions {
    arrival: Arrival,
    /// A create was sent whose answer never came: it may be committing still.
    create_in_doubt: bool,
    /// Look the caller up beside the first lookup (the invocation's first attempt only: a
    /// retry need not ask a failing instance twice).
    caller_ahead: bool,
}

/// A ServiceNow call that did not finish, and the write it was part of, if any: after a lost
/// answer the write may have been applied.
struct Interrupted {
    error: Interruption,
    during_write: Option<Action>,
}

/// Why an attempt stopped: ServiceNow's verdict, or the flow's own reason to look again.
enum Interruption {
    ServiceNow(ServiceNowError),
    /// Nothing failed, but what a lookup shows cannot be acted on yet (a create whose fate is
    /// unknown, incidents that keep changing): look again after a wait.
    LookAgain(&'static str),
}

impl Interrupted {
    fn writing(error: ServiceNowError, write: Action) -> Self {
        Self {
            error: Interruption::ServiceNow(error),
            during_write: Some(write),
        }
    }

    fn look_again(reason: &'static str) -> Self {
        Self {
            error: Interruption::LookAgain(reason),
            during_write: None,
        }
    }
}

impl From<ServiceNowError> for Interrupted {
    fn from(error: ServiceNowError) -> Self {
        Self {
            error: Interruption::ServiceNow(error),
            during_write: None,
        }
    }
}
