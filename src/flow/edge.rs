//! The HTTP edge of the webhook, top to bottom: request → authenticate → limit → settings →
//! parse → synchronise the incident → answer. Every failure becomes exactly one HTTP answer
//! here, in `Failure::into_response`, with the verdict `flow::failure` gives it. The same
//! door answers ServiceNow's push (`POST /servicenow`) and runs the scheduled back-sync pass.

use crate::adapters::ilert::ILertApi;
use crate::adapters::queue::{EventQueue, QueueError, QueuedEvent, SqsQueue};
use crate::adapters::secrets::{
    Connection, ConnectionCache, Connections, NotPicked, SecretError, SecretSource, UnknownInstance,
};
use crate::adapters::servicenow::{IncidentTable, SysId};
use crate::domain::back_sync::BackSynced;
use crate::domain::settings::{instance_in, InvalidSetting, Settings};
use crate::flow::auth::{authenticate, authenticate_push, Unauthorized};
use crate::flow::back_sync::{key_fingerprint, BackSync, BackSyncError, PassReport};
use crate::flow::budget::{Budget, DEFAULT_TIME_BUDGET};
use crate::flow::consumer::QueueConsumer;
use crate::flow::failure::Failure;
use crate::flow::intake::{Intake, Read};
use crate::flow::outcome::{Action, IncidentRef, Outcome, SyncError};
use crate::flow::sync::{Arrival, IncidentSync};
use crate::flow::telemetry::{pass_finished, Ending, Metrics, Summary};
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub use crate::adapters::api_gateway::{
    UndecodableBody, UnreadableUrl, WebhookRequest, WebhookResponse,
};

/// iLert's bodies are a few KiB; anything this large is not an alert event.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// ServiceNow's push carries a sys_id.
const MAX_PUSH_BYTES: usize = 4 * 1024;
/// The path of ServiceNow's push; every other path is the webhook, as it always was.
pub const PUSH_PATH: &str = "/servicenow";
/// The most a scheduled pass spends; Lambda's deadline cuts it shorter. Passes are a minute
/// apart and must not overlap.
const PASS_TIME_CAP: Duration = Duration::from_secs(45);

/// The function's HTTP door. In direct delivery it brings each event to ServiceNow before it
/// answers; in queued delivery it puts the event on the queue and answers 202.
pub struct WebhookHandler<S, T, Q = SqsQueue> {
    connections: Arc<ConnectionCache<S>>,
    sync: Arc<IncidentSync<S, T>>,
    /// From an event to its outcome, shared with the queue's consumer.
    intake: Arc<Intake<S, T>>,
    back_sync: Arc<BackSync<T>>,
    /// The queue: every event's in queued delivery; in direct delivery the safety net of
    /// events ServiceNow could not take for now. `None`: no queue (direct delivery without
    /// one answers 503 when ServiceNow is away).
    queue: Option<Arc<Q>>,
    /// Queued delivery: every event goes on the queue, none to ServiceNow first.
    queue_every_event: bool,
    /// Why the deployment's own configuration cannot work, answered 500 to every caller
    /// who authenticated.
    misconfiguration: Option<String>,
    time_budget: Duration,
    metrics: Metrics,
    /// Per connection, until when direct delivery queues its events without trying
    /// ServiceNow first: it was just found away.
    found_away: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// How long that lasts.
    away_pause: Duration,
}

impl<S: SecretSource, T: IncidentTable, Q: EventQueue> WebhookHandler<S, T, Q> {
    /// `defaults`: the deployment's settings (`Settings::from_environment`); if they are
    /// unusable every request is answered 500 with the reason.
    pub fn new(
        connections: ConnectionCache<S>,
        incidents: T,
        ilert: ILertApi,
        defaults: Result<Settings, InvalidSetting>,
    ) -> Self {
        let connections = Arc::new(connections);
        let incidents = Arc::new(incidents);
        let back_sync = Arc::new(BackSync::new(Arc::clone(&incidents), ilert));
        let sync = Arc::new(IncidentSync::new(
            Arc::clone(&connections),
            incidents,
            Arc::clone(&back_sync),
        ));
        Self {
            intake: Arc::new(Intake::new(
                Arc::clone(&connections),
                Arc::clone(&sync),
                defaults,
            )),
            sync,
            back_sync,
            connections,
            queue: None,
            queue_every_event: false,
            misconfiguration: None,
            time_budget: DEFAULT_TIME_BUDGET,
            metrics: Metrics::Off,
            found_away: std::sync::Mutex::default(),
            away_pause: AWAY_PAUSE,
        }
    }

    /// How long direct delivery queues a connection's events straight away once ServiceNow
    /// was found away (30 s); tests shorten it.
    pub fn with_away_pause(mut self, pause: Duration) -> Self {
        self.away_pause = pause;
        self
    }

    /// Whether `connection`'s ServiceNow was found away within the pause.
    fn recently_away(&self, connection: &str) -> bool {
        let found_away = self.found_away.lock().unwrap_or_else(|e| e.into_inner());
        found_away
            .get(connection)
            .is_some_and(|until| std::time::Instant::now() < *until)
    }

    fn remember_away(&self, connection: &str) {
        let until = std::time::Instant::now() + self.away_pause;
        let mut found_away = self.found_away.lock().unwrap_or_else(|e| e.into_inner());
        found_away.insert(connection.to_owned(), until);
    }

    /// The deployment's configuration cannot work (`DELIVERY` without `QUEUE_URL`, say):
    /// every authenticated call is answered 500 saying why.
    pub fn with_misconfiguration(mut self, problem: String) -> Self {
        self.misconfiguration = Some(problem);
        self
    }

    /// Queued delivery: events go on `queue`, and the consumer brings them to ServiceNow.
    pub fn with_queue(mut self, queue: Q) -> Self {
        self.queue = Some(Arc::new(queue));
        self.queue_every_event = true;
        self
    }

    /// Direct delivery with a safety net: an event ServiceNow cannot take for now (down,
    /// asleep, throttling, too slow) goes on `queue`, and the consumer brings it there later.
    pub fn with_fallback_queue(mut self, queue: Q) -> Self {
        self.queue = Some(Arc::new(queue));
        self.queue_every_event = false;
        self
    }

    /// The queue's consumer, sharing this handler's connection, synchronisation, settings
    /// and metrics; `None` without a queue.
    pub fn consumer(&self) -> Option<QueueConsumer<S, T, Q>> {
        let queue = Arc::clone(self.queue.as_ref()?);
        // Only when every event is queued do an alert's events never run at once; a direct
        // delivery may meet the consumer on the same alert.
        let arrival = if self.queue_every_event {
            Arrival::OneAtATime
        } else {
            Arrival::Concurrent
        };
        Some(QueueConsumer::new(
            Arc::clone(&self.intake),
            queue,
            self.time_budget,
            arrival,
            self.metrics.clone(),
        ))
    }

    /// The most one invocation may spend, retries included (`TIME_BUDGET_SECONDS`); in
    /// Lambda it is also cut to the invocation's remaining time less a safety margin.
    pub fn with_time_budget(mut self, time_budget: Duration) -> Self {
        self.time_budget = time_budget;
        self
    }

    /// The span over which iLert counts a key's calls (a minute); tests that scale iLert's
    /// time down scale this with it.
    pub fn set_ilert_key_minute(&self, minute: Duration) {
        self.back_sync.set_key_minute(minute);
    }

    /// How long a creator waits before reading back the alert's incidents (see `sync`).
    pub fn with_settle_delay(self, settle_delay: Duration) -> Self {
        self.sync.set_settle_delay(settle_delay);
        self
    }

    /// Where each invocation's metrics go (Embedded Metric Format lines).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The connection as the handler reads it from the secret (cached): the one named
    /// `instance`, else the secret's only one or `default`.
    pub async fn connection(&self, instance: Option<&str>) -> Result<Arc<Connection>, String> {
        let connections = self
            .connections
            .all()
            .await
            .map_err(|error| format!("cannot read the secret: {error}"))?;
        connections
            .pick(instance)
            .cloned()
            .map_err(|unknown| unknown.to_string())
    }

    /// What the first events need, read ahead: the secret, and with the back-sync on, who its
    /// iLert key acts as (how echoes are recognised). A failure only delays it to the first
    /// event that needs it.
    pub async fn prefetch(&self) {
        let connections = match self.connections.all().await {
            Ok(connections) => connections,
            Err(problem) => {
                tracing::warn!(%problem, "could not read the secret yet; the first event will try again");
                return;
            }
        };
        let learned = connections.all().filter_map(|connection| {
            let ilert = connection.ilert.as_ref()?;
            Some(async move {
                let budget = Budget::new(DEFAULT_TIME_BUDGET, None);
                if let Err(problem) = self.back_sync.key_user(ilert, &budget).await {
                    tracing::warn!(%problem, instance = %connection.name, "could not learn who the iLert API key acts as yet");
                }
            })
        });
        futures_util::future::join_all(learned).await;
    }

    /// Answers one webhook call. Never fails: every problem is an HTTP answer.
    /// `lambda_deadline_ms`: when the invocation must have answered, in ms since the epoch.
    pub async fn handle(
        &self,
        request: WebhookRequest,
        lambda_deadline_ms: Option<u64>,
    ) -> WebhookResponse {
        let budget = Budget::new(self.time_budget, lambda_deadline_ms);
        let mut summary = Summary::new();
        let result = self.process(&request, &budget, &mut summary).await;
        let ending = match &result {
            Ok(outcome) => Ending::Handled {
                action: outcome.action.as_str(),
                incident: outcome.incident.as_ref().map(|i| i.number.clone()),
            },
            Err(failure) => Ending::Failed {
                status: failure.status().as_u16(),
                kind: failure.kind(),
                cause: failure.to_string(),
            },
        };
        summary.finish(&ending, budget.spending(), &self.metrics);
        match result {
            Ok(outcome) => answer(&outcome),
            Err(failure) => failure.into_response(),
        }
    }

    async fn process(
        &self,
        request: &WebhookRequest,
        budget: &Budget,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
        if request.method() != Method::POST {
            return Err(Failure::MethodNotAllowed(request.method().clone()));
        }
        let connections = budget
            .secrets_manager(self.connections.all())
            .await
            .map_err(Failure::SecretUnreadable)?;
        let query = request.uri().query().unwrap_or_default();
        let is_push = request.uri().path().trim_end_matches('/') == PUSH_PATH;
        let connection = self.chosen(&connections, query, request, is_push)?;
        if connections.several() {
            summary.instance = Some(connection.name.clone());
        }
        if is_push {
            return self.push(request, &connection, budget, summary).await;
        }
        // Before the body is even looked at: an unauthenticated caller learns nothing.
        authenticate(request.headers(), &connection.webhook)?;
        if let Some(problem) = &self.misconfiguration {
            return Err(Failure::Deployment(problem.clone()));
        }
        if let Some(UnreadableUrl(problem)) = request.extensions().get::<UnreadableUrl>() {
            return Err(Failure::UnreadableUrl(problem.clone()));
        }
        let (event, settings) = match self.intake.read(query, checked_body(request), summary)? {
            Read::Ignored(outcome) => return Ok(outcome),
            Read::Event(read) => *read,
        };
        let queued = || QueuedEvent::new(&event.id, request.body(), query);
        match &self.queue {
            Some(queue) if self.queue_every_event => {
                summary.path = Some(PATH_QUEUED);
                return enqueue(&**queue, &queued(), budget)
                    .await
                    .map(|()| Outcome::queued());
            }
            // Found away moments ago: every event would spend its budget finding it so again,
            // and behind an event already queued, its alert's next one waits there too.
            Some(queue) if self.recently_away(&connection.name) => {
                if enqueue(&**queue, &queued(), budget).await.is_ok() {
                    summary.path = Some(PATH_QUEUED_WHILE_UNAVAILABLE);
                    return Ok(Outcome::queued_because(SERVICENOW_UNAVAILABLE));
                }
                budget.hold_back(QUEUE_RESERVE);
            }
            Some(_) => budget.hold_back(QUEUE_RESERVE),
            None => {}
        }
        summary.path = Some(PATH_DIRECT);
        let connection_name = connection.name.clone();
        let applied = self
            .intake
            .apply(
                &event,
                &settings,
                Some(connection),
                Arrival::Concurrent,
                budget,
            )
            .await;
        budget.release();
        let (Err(failure), Some(queue)) = (&applied, &self.queue) else {
            return applied;
        };
        // What a later try may fix waits in the queue, not in iLert's retries (which iLert
        // does not document); a refusal no retry fixes is answered as it is.
        if failure.status() != StatusCode::SERVICE_UNAVAILABLE {
            return applied;
        }
        match enqueue(&**queue, &queued(), budget).await {
            Ok(()) => {
                self.remember_away(&connection_name);
                tracing::warn!(
                    cause = %failure,
                    pause_s = self.away_pause.as_secs(),
                    "ServiceNow cannot take the event for now; it waits in the queue and is applied when ServiceNow answers again, as do this instance's next events for a moment"
                );
                summary.path = Some(PATH_QUEUED_WHILE_UNAVAILABLE);
                Ok(Outcome::queued_because(SERVICENOW_UNAVAILABLE))
            }
            Err(problem) => {
                tracing::error!(%problem, cause = %failure, "ServiceNow cannot take the event and the queue could not either; iLert is answered 503");
                applied
            }
        }
    }

    /// The connection the call is for: the URL's `instance=<name>`, else the deployment's
    /// default instance, else the secret's only (or `default`) connection. A name the secret
    /// does not hold is a 400 naming the instances the caller's credentials open, and only
    /// to a caller some connection accepts: anyone else is a 401 and learns no name. A
    /// default instance the secret lacks is the deployment's mistake: a 500.
    fn chosen(
        &self,
        connections: &Connections,
        query: &str,
        request: &WebhookRequest,
        is_push: bool,
    ) -> Result<Arc<Connection>, Failure> {
        let (asked, from_defaults) = match instance_in(query) {
            Some(given) => ((!given.is_empty()).then_some(given), false),
            None => (
                self.intake
                    .defaults()
                    .and_then(|defaults| defaults.instance.clone()),
                true,
            ),
        };
        let unknown = match connections.pick(asked.as_deref()) {
            Ok(connection) => return Ok(Arc::clone(connection)),
            Err(NotPicked::Broken(entry)) => {
                tracing::error!(
                    instance = %entry.name,
                    problem = %entry.problem,
                    "a call for a ServiceNow instance whose entry in the secret is unusable; \
                     every other instance works as before"
                );
                // Only its own callers are told: to anyone else the name is unknown.
                let its_own = if is_push {
                    authenticate_push(request.headers(), entry.push_token.as_ref()).is_ok()
                } else {
                    entry
                        .webhook
                        .as_ref()
                        .is_some_and(|webhook| authenticate(request.headers(), webhook).is_ok())
                };
                if its_own {
                    return Err(Failure::Deployment(NotPicked::Broken(entry).to_string()));
                }
                NotPicked::Broken(entry)
            }
            Err(unknown) => unknown,
        };
        let mut refusal = None;
        let mut open = Vec::new();
        for connection in connections.all() {
            let checked = if is_push {
                authenticate_push(request.headers(), connection.push_token.as_ref())
            } else {
                authenticate(request.headers(), &connection.webhook)
            };
            match checked {
                Ok(()) => open.push(connection.name.as_str()),
                Err(why) => refusal = refusal.or(Some(why)),
            }
        }
        if open.is_empty() {
            let why = refusal.unwrap_or(Unauthorized::Missing);
            return Err(if is_push {
                Failure::PushUnauthorized(why)
            } else {
                Failure::Unauthorized(why)
            });
        }
        if from_defaults && asked.is_some() {
            return Err(Failure::Deployment(format!("DEFAULT_SETTINGS: {unknown}")));
        }
        Err(Failure::UnknownInstance(UnknownInstance::for_caller(
            asked.as_deref(),
            &open,
        )))
    }

    /// ServiceNow's push, top to bottom: authenticate (the secret's `servicenow_token`) →
    /// read the sys_id → the back-sync for that one incident → answer.
    async fn push(
        &self,
        request: &WebhookRequest,
        connection: &Connection,
        budget: &Budget,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
        summary.push = true;
        authenticate_push(request.headers(), connection.push_token.as_ref())
            .map_err(Failure::PushUnauthorized)?;
        if let Some(problem) = &self.misconfiguration {
            return Err(Failure::Deployment(problem.clone()));
        }
        let body = request.body();
        if body.len() > MAX_PUSH_BYTES {
            return Err(Failure::TooLarge(body.len()));
        }
        let sys_id = pushed_sys_id(body).map_err(Failure::InvalidPush)?;
        let outcome = self
            .back_sync
            .push(connection, &sys_id, budget)
            .await?
            .ok_or_else(|| Failure::UnknownIncident(sys_id.as_str().to_owned()))?;
        summary.alert_id.clone_from(&outcome.alert_id);
        summary.back_sync = Some(outcome.synced.as_str());
        Ok(Outcome {
            action: match outcome.synced {
                BackSynced::Accepted => Action::Accepted,
                BackSynced::Resolved => Action::Resolved,
                BackSynced::Unchanged => Action::Unchanged,
            },
            incident: Some(IncidentRef {
                number: outcome.incident.number,
                sys_id: outcome.incident.sys_id,
            }),
            reason: outcome.reason,
        })
    }

    /// One scheduled back-sync pass (EventBridge's `Scheduled Event`) over every connection
    /// of the secret at once, each with its own time budget, so one slow or failing instance
    /// never holds up another: logged as one summary line per connection with its counts,
    /// plus one `back_sync` line per alert it acted on. Never fails: what it could not do is
    /// the next pass's. Returns the connections' counts added up.
    pub async fn back_sync_pass(&self, lambda_deadline_ms: Option<u64>) -> PassReport {
        let started = std::time::Instant::now();
        let secret_budget = Budget::new(PASS_TIME_CAP, lambda_deadline_ms);
        let connections = match secret_budget.secrets_manager(self.connections.all()).await {
            Ok(_) if self.misconfiguration.is_some() => Err(self
                .misconfiguration
                .clone()
                .map(BackSyncError::Misconfigured)),
            Ok(connections) => Ok(connections),
            Err(error) => Err(Some(BackSyncError::ServiceNow(SyncError::from(error)))),
        };
        let connections = match connections {
            Ok(connections) => connections,
            Err(failure) => {
                let report = PassReport {
                    failure,
                    ..PassReport::default()
                };
                let spending = secret_budget.spending();
                pass_finished(&report, None, spending, started.elapsed(), &self.metrics);
                return report;
            }
        };
        let several = connections.several();
        let all: Vec<&Connection> = connections.all().map(|c| c.as_ref()).collect();
        let budgets: Vec<Budget> = all
            .iter()
            .map(|_| Budget::new(PASS_TIME_CAP, lambda_deadline_ms))
            .collect();
        // Connections that share an iLert key list its alerts once and share its calls.
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (index, connection) in all.iter().enumerate() {
            let key = connection.ilert.as_ref().map(key_fingerprint);
            match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
                Some((_, members)) => members.push(index),
                None => groups.push((key, vec![index])),
            }
        }
        let (all, budgets) = (&all, &budgets);
        let passes = groups.iter().map(|(_, members)| async move {
            let group: Vec<(&Connection, &Budget)> =
                members.iter().map(|i| (all[*i], &budgets[*i])).collect();
            let reports = self.back_sync.pass(&group).await;
            members.iter().copied().zip(reports).collect::<Vec<_>>()
        });
        let mut reports: Vec<(usize, PassReport)> = futures_util::future::join_all(passes)
            .await
            .into_iter()
            .flatten()
            .collect();
        reports.sort_by_key(|(index, _)| *index);
        for (index, report) in &reports {
            let instance = several.then_some(all[*index].name.as_str());
            pass_finished(
                report,
                instance,
                budgets[*index].spending(),
                started.elapsed(),
                &self.metrics,
            );
        }
        // An entry of the secret the function cannot use fails its own pass, and only its own.
        let mut reports: Vec<PassReport> = reports.into_iter().map(|(_, report)| report).collect();
        for entry in connections.broken() {
            let report = PassReport {
                failure: Some(BackSyncError::Misconfigured(format!(
                    "the secret's entry for instance `{}` is unusable: {}",
                    entry.name, entry.problem
                ))),
                ..PassReport::default()
            };
            let spending = Budget::new(PASS_TIME_CAP, lambda_deadline_ms).spending();
            pass_finished(
                &report,
                Some(&entry.name),
                spending,
                started.elapsed(),
                &self.metrics,
            );
            reports.push(report);
        }
        PassReport::combined(reports)
    }
}

/// The webhook's own verdict on its body: undecodable base64, or too large to be an event.
fn checked_body(request: &WebhookRequest) -> Result<&[u8], Failure> {
    if request.extensions().get::<UndecodableBody>().is_some() {
        return Err(Failure::UndecodableBody);
    }
    let body = request.body();
    if body.len() > MAX_BODY_BYTES {
        return Err(Failure::TooLarge(body.len()));
    }
    Ok(body)
}

/// How long direct delivery queues an instance's events straight away once it was found
/// away: long enough that an outage costs each event milliseconds, not its whole budget, and
/// short enough that the desk sees the incident's number in iLert again soon after.
const AWAY_PAUSE: Duration = Duration::from_secs(30);
/// Time kept for the queue when a direct delivery meets ServiceNow away: SQS answers in
/// milliseconds, so a second is plenty, and ServiceNow's retries still get the rest.
const QUEUE_RESERVE: Duration = Duration::from_secs(1);
/// The summary line's `path`: brought to ServiceNow before the answer, queued because every
/// event is (queued delivery), or queued because ServiceNow could not take it.
const PATH_DIRECT: &str = "direct";
const PATH_QUEUED: &str = "queued";
const PATH_QUEUED_WHILE_UNAVAILABLE: &str = "queued: servicenow_unavailable";
/// The answer's `reason` for an event queued because ServiceNow could not take it.
const SERVICENOW_UNAVAILABLE: &str = "servicenow_unavailable";

/// Puts the event on the queue within what is left of the budget.
async fn enqueue<Q: EventQueue>(
    queue: &Q,
    event: &QueuedEvent,
    budget: &Budget,
) -> Result<(), Failure> {
    match tokio::time::timeout(budget.remaining(), queue.send(event)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(problem)) => Err(Failure::Queue(problem)),
        Err(_) => Err(Failure::Queue(QueueError::Unavailable(
            "SQS did not answer within the time budget".into(),
        ))),
    }
}

mod answer;
use answer::{answer, pushed_sys_id};
