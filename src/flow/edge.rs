//! The function's flow, top to bottom: request → authenticate → parse → look up → decide →
//! write → answer. Every failure becomes exactly one HTTP answer here.

use crate::adapters::secrets::{
    Connection, ConnectionCache, SecretError, SecretSource, ServiceNowAccount,
};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError, UserKey};
use crate::domain::alert::{AlertEvent, InvalidEvent};
use crate::domain::decision::{
    cancel_duplicate, decide, ignored_by_policy, wants_assignee, Assignee, People, Plan,
};
use crate::domain::incident::{CorrelationId, Incident, IncidentChanges};
use crate::domain::settings::{Email, InvalidSetting, Settings, UserRef};
use crate::flow::auth::{authenticate, Unauthorized};
use crate::flow::budget::{Backoff, Budget, DEFAULT_TIME_BUDGET};
use crate::ops::telemetry::{Ending, Metrics, Summary};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// iLert's bodies are a few KiB; anything this large is not an alert event.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// What a 503 suggests when the cause gave no better hint.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// A sleeping developer instance takes a minute or more to wake.
const ASLEEP_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Marks a request whose body API Gateway flagged as base64 but which does not decode; set
/// by the Lambda adapter, answered 400 after authentication like any other bad body.
#[derive(Debug, Clone, Copy)]
pub struct UndecodableBody;

pub struct WebhookHandler<S, T> {
    connections: ConnectionCache<S>,
    incidents: T,
    /// The deployment's defaults, or why the `DEFAULT_*` variables are unusable.
    defaults: Result<Settings, InvalidSetting>,
    time_budget: Duration,
    metrics: Metrics,
    /// sys_user lookups, per execution environment: who an email or user name is.
    users: std::sync::Mutex<HashMap<UserKey, (Instant, Option<String>)>>,
}

/// How long a user lookup is trusted: a user found keeps their sys_id; one not found may be
/// created soon after, so that answer is asked again sooner.
const USER_FOUND_TTL: Duration = Duration::from_secs(3600);
const USER_NOT_FOUND_TTL: Duration = Duration::from_secs(300);

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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    action: Action,
    incident: Option<(String, String)>,
    reason: Option<&'static str>,
}

impl Outcome {
    fn with(action: Action, incident: &Incident) -> Self {
        Self {
            action,
            incident: Some((incident.number.clone(), incident.sys_id.clone())),
            reason: None,
        }
    }

    fn ignored(reason: &'static str) -> Self {
        Self {
            action: Action::Ignored,
            incident: None,
            reason: Some(reason),
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut body = json!({ "action": self.action.as_str() });
        if let Some((number, sys_id)) = &self.incident {
            body["incident"] = json!({ "number": number, "sys_id": sys_id });
        }
        if let Some(reason) = self.reason {
            body["reason"] = json!(reason);
        }
        json_response(StatusCode::OK, &body)
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

/// Why a request failed, carrying its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Failure {
    #[error("method {0} is not allowed")]
    MethodNotAllowed(Method),
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] Unauthorized),
    #[error("the body is {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    InvalidEvent(#[from] InvalidEvent),
    #[error("the body is marked base64-encoded but is not valid base64")]
    UndecodableBody,
    #[error("{0}")]
    InvalidSetting(#[from] InvalidSetting),
    #[error("{0}")]
    Misconfigured(String),
    #[error("{0}")]
    ServiceNowRefused(String),
    #[error("{cause}")]
    Unavailable {
        cause: String,
        retry_after: Duration,
    },
}

impl From<SecretError> for Failure {
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

impl From<ServiceNowError> for Failure {
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
                Self::ServiceNowRefused(cause)
            }
        }
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidEvent(_) | Self::UndecodableBody | Self::InvalidSetting(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceNowRefused(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short name for the kind of failure, stable for log queries.
    fn kind(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Unauthorized(_) => "unauthorized",
            Self::TooLarge(_) => "too_large",
            Self::InvalidEvent(_) | Self::UndecodableBody => "invalid_event",
            Self::InvalidSetting(_) => "invalid_setting",
            Self::Misconfigured(_) => "misconfigured",
            Self::ServiceNowRefused(_) => "servicenow_refused",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// What iLert shows in the alert's log: enough to act on, never a credential, and for a
    /// 401 not which part was wrong.
    fn message(&self) -> String {
        match self {
            Self::MethodNotAllowed(method) => {
                format!("method {method} is not allowed: iLert's webhook must POST")
            }
            Self::Unauthorized(_) => "missing or wrong credentials: send the webhook token as \
                 `Authorization: Bearer <token>`"
                .to_owned(),
            Self::TooLarge(size) => format!(
                "the body is {size} bytes; an iLert event is at most {MAX_BODY_BYTES} bytes"
            ),
            Self::InvalidEvent(why) => format!("not a usable iLert event: {why}"),
            Self::UndecodableBody => format!("not a usable iLert event: {self}"),
            Self::InvalidSetting(why) => format!("the alert action's settings: {why}"),
            Self::Misconfigured(cause) => format!("the function is misconfigured: {cause}"),
            Self::ServiceNowRefused(cause) => cause.clone(),
            Self::Unavailable { cause, .. } => {
                format!("{cause}; nothing was lost, delivering the event again is safe")
            }
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut response = json_response(
            self.status(),
            &json!({ "error": self.kind(), "message": self.message() }),
        );
        let headers = response.headers_mut();
        match self {
            Self::MethodNotAllowed(_) => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable { retry_after, .. } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

impl<S: SecretSource, T: IncidentTable> WebhookHandler<S, T> {
    /// `defaults`: the deployment's settings (`Settings::from_environment`); if they are
    /// unusable every request is answered 500 with the reason.
    pub fn new(
        connections: ConnectionCache<S>,
        incidents: T,
        defaults: Result<Settings, InvalidSetting>,
    ) -> Self {
        Self {
            connections,
            incidents,
            defaults,
            time_budget: DEFAULT_TIME_BUDGET,
            metrics: Metrics::Off,
            users: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The most one invocation may spend, retries included (`TIME_BUDGET_SECONDS`); in
    /// Lambda it is also cut to the invocation's remaining time less a safety margin.
    pub fn with_time_budget(mut self, time_budget: Duration) -> Self {
        self.time_budget = time_budget;
        self
    }

    /// The connection as the handler reads it from the secret (cached).
    pub async fn connection(&self) -> Result<Arc<Connection>, SecretError> {
        self.connections.get().await
    }

    /// Where each invocation's metrics go (Embedded Metric Format lines).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Answers one webhook call. Never fails: every problem is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let lambda_deadline = request
            .lambda_context_ref()
            .map(|context| context.deadline)
            .filter(|&deadline_ms| deadline_ms > 0); // 0: a context made outside Lambda
        let budget = Budget::new(self.time_budget, lambda_deadline);
        let mut summary = Summary::new();
        let result = self.process(&request, &budget, &mut summary).await;
        let ending = match &result {
            Ok(outcome) => Ending::Handled {
                action: outcome.action.as_str(),
                incident: outcome.incident.as_ref().map(|(number, _)| number.clone()),
            },
            Err(failure) => Ending::Failed {
                status: failure.status().as_u16(),
                kind: failure.kind(),
                cause: failure.to_string(),
            },
        };
        let (requests, servicenow_time) = budget.servicenow_spending();
        summary.finish(&ending, requests, servicenow_time, &self.metrics);
        match result {
            Ok(outcome) => outcome.into_response(),
            Err(failure) => failure.into_response(),
        }
    }

    async fn process(
        &self,
        request: &Request,
        budget: &Budget,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
        if request.method() != Method::POST {
            return Err(Failure::MethodNotAllowed(request.method().clone()));
        }
        let connection = within(budget, Service::SecretsManager, self.connections.get()).await??;
        // Before the body is even looked at: an unauthenticated caller learns nothing.
        authenticate(request.headers(), &connection.webhook)?;
        let settings = self.settings_for(request)?;
        if request.extensions().get::<UndecodableBody>().is_some() {
            return Err(Failure::UndecodableBody);
        }
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(Failure::TooLarge(body.len()));
        }
        let event = AlertEvent::parse(body)?;
        summary.alert_id = Some(event.id.to_string());
        summary.event_type = Some(event.kind.name().to_owned());
        if let Some(reason) = ignored_by_policy(&event, &settings) {
            return Ok(Outcome::ignored(reason));
        }
        self.synchronise(&event, &settings, connection, budget, summary)
            .await
    }

    /// The alert action's settings: its webhook URL's query string over the defaults.
    fn settings_for(&self, request: &Request) -> Result<Settings, Failure> {
        let defaults = self.defaults.as_ref().map_err(|problem| {
            Failure::Misconfigured(format!("the deployment's default settings: {problem}"))
        })?;
        Ok(defaults.with_query(request.uri().query().unwrap_or_default())?)
    }

    /// Brings the alert's incident in line with the event, retrying what a retry can fix
    /// until the budget runs out. Each attempt reads the incident afresh and decides again,
    /// so retrying a write whose answer was lost never applies it twice.
    async fn synchronise(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        mut connection: Arc<Connection>,
        budget: &Budget,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
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
            summary.retries += 1;
            match interrupted.error {
                ServiceNowError::Unauthorized(refusal) if !credentials_refreshed => {
                    // A password rotated in Secrets Manager reaches a warm function here.
                    credentials_refreshed = true;
                    let fresh = within(
                        budget,
                        Service::SecretsManager,
                        self.connections.refresh(&connection),
                    )
                    .await??;
                    if fresh.servicenow.same_login(&connection.servicenow) {
                        return Err(Failure::ServiceNowRefused(refusal));
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
                        return Err(Failure::Unavailable {
                            cause: format!("{message}; gave up after {} attempts", summary.retries),
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

    /// One pass: look up → decide → write.
    async fn attempt(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        account: &ServiceNowAccount,
        budget: &Budget,
    ) -> Result<Outcome, Interrupted> {
        let key = CorrelationId::for_alert(&event.id);
        let found = self
            .servicenow(budget, None, self.incidents.find(account, &key))
            .await?;
        let (current, duplicates) = match found.split_first() {
            Some((oldest, younger)) => (Some(oldest), younger),
            None => (None, &[][..]),
        };
        if let Some(winner) = current {
            // Left behind by a creation race whose loser could not tidy up (see README).
            for duplicate in duplicates.iter().filter(|d| !d.state.is_final()) {
                self.cancel_duplicate(account, budget, duplicate, winner)
                    .await;
            }
        }
        let people = self
            .people(event, settings, current.is_none(), account, budget)
            .await?;
        match decide(event, current, settings, &people) {
            Plan::Create(changes) => {
                let created = self.create(account, budget, &changes).await?;
                self.settle_creation_race(event, settings, &people, account, budget, created)
                    .await
            }
            plan => self.carry_out(plan, current, account, budget).await,
        }
    }

    /// Looks up the users the decision needs: the caller of a new incident, and with
    /// `assign_on_accept` the responder who accepted.
    async fn people(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        creating: bool,
        account: &ServiceNowAccount,
        budget: &Budget,
    ) -> Result<People, Interrupted> {
        let caller = if creating {
            self.caller(settings, account, budget).await?
        } else {
            None
        };
        let assignee = if !wants_assignee(event, settings) {
            Assignee::NotWanted
        } else {
            match event.actor_email().and_then(Email::parse) {
                None => Assignee::NoEmail,
                Some(email) => match self
                    .user(account, budget, &UserKey::Email(email.clone()))
                    .await?
                {
                    Some(sys_id) => Assignee::Found(sys_id),
                    None => Assignee::UnknownEmail(email.to_string()),
                },
            }
        };
        Ok(People { caller, assignee })
    }

    /// `caller_id` as set, an email resolved to its user; without one, the integration user.
    async fn caller(
        &self,
        settings: &Settings,
        account: &ServiceNowAccount,
        budget: &Budget,
    ) -> Result<Option<String>, Interrupted> {
        match &settings.caller_id {
            Some(UserRef::SysId(value) | UserRef::Name(value)) => Ok(Some(value.clone())),
            Some(UserRef::Email(email)) => {
                match self
                    .user(account, budget, &UserKey::Email(email.clone()))
                    .await?
                {
                    Some(sys_id) => Ok(Some(sys_id)),
                    None => Err(Interrupted::reading(ServiceNowError::Refused(format!(
                        "caller_id {email} matches no active ServiceNow user: check the \
                         alert action's caller_id or the user's email in sys_user"
                    )))),
                }
            }
            None => {
                let Some(key) = account.username().and_then(UserKey::user_name) else {
                    return Ok(None);
                };
                match self.user(account, budget, &key).await {
                    // Without read access to sys_user the incident is still worth creating.
                    Err(Interrupted {
                        error: ServiceNowError::Refused(cause),
                        ..
                    }) => {
                        tracing::warn!(%cause, "could not look up the integration user as caller");
                        Ok(None)
                    }
                    other => other,
                }
            }
        }
    }

    /// A `sys_user` lookup, cached per execution environment.
    async fn user(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        key: &UserKey,
    ) -> Result<Option<String>, Interrupted> {
        let cached = self.users_cache().get(key).and_then(|(at, found)| {
            let ttl = if found.is_some() {
                USER_FOUND_TTL
            } else {
                USER_NOT_FOUND_TTL
            };
            (at.elapsed() < ttl).then(|| found.clone())
        });
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self
            .servicenow(budget, None, self.incidents.find_user(account, key))
            .await?;
        self.users_cache()
            .insert(key.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    fn users_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<UserKey, (Instant, Option<String>)>> {
        self.users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a create, reads back every incident with the alert's key: the oldest wins. If it
    /// is not ours, a concurrent delivery created the alert's incident first: ours is canceled
    /// and the event applied to the winner. Costs one read per create, none per update.
    async fn settle_creation_race(
        &self,
        event: &AlertEvent,
        settings: &Settings,
        people: &People,
        account: &ServiceNowAccount,
        budget: &Budget,
        created: Incident,
    ) -> Result<Outcome, Interrupted> {
        let key = CorrelationId::for_alert(&event.id);
        let all = self
            .servicenow(
                budget,
                Some(Action::Created),
                self.incidents.find(account, &key),
            )
            .await?;
        let winner = match all.first() {
            Some(oldest) if oldest.sys_id != created.sys_id => oldest.clone(),
            _ => return Ok(Outcome::with(Action::Created, &created)),
        };
        tracing::info!(
            ours = %created.number,
            winner = %winner.number,
            "a concurrent delivery created the alert's incident first; canceling ours"
        );
        // Another invocation may already have moved ours aside.
        if all.iter().any(|incident| incident.sys_id == created.sys_id) {
            self.cancel_duplicate(account, budget, &created, &winner)
                .await;
        }
        let plan = decide(event, Some(&winner), settings, people);
        self.carry_out(plan, Some(&winner), account, budget).await
    }

    async fn carry_out(
        &self,
        plan: Plan,
        current: Option<&Incident>,
        account: &ServiceNowAccount,
        budget: &Budget,
    ) -> Result<Outcome, Interrupted> {
        match plan {
            Plan::Ignore { reason } => Ok(Outcome::ignored(reason)),
            Plan::Unchanged => Ok(match current {
                Some(incident) => Outcome::with(Action::Unchanged, incident),
                None => Outcome {
                    action: Action::Unchanged,
                    incident: None,
                    reason: None,
                },
            }),
            Plan::Create(changes) => {
                let created = self.create(account, budget, &changes).await?;
                Ok(Outcome::with(Action::Created, &created))
            }
            Plan::Update { sys_id, changes } => {
                let written = self
                    .servicenow(
                        budget,
                        Some(Action::Updated),
                        self.incidents.update(account, &sys_id, &changes),
                    )
                    .await?;
                ensure_applied(&changes, &written, "update")?;
                Ok(Outcome::with(Action::Updated, &written))
            }
        }
    }

    async fn create(
        &self,
        account: &ServiceNowAccount,
        budget: &Budget,
        changes: &IncidentChanges,
    ) -> Result<Incident, Interrupted> {
        let created = self
            .servicenow(
                budget,
                Some(Action::Created),
                self.incidents.create(account, changes),
            )
            .await?;
        ensure_applied(changes, &created, "creation")?;
        Ok(created)
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
        let result = within(
            budget,
            Service::ServiceNow,
            self.incidents.update(account, &duplicate.sys_id, &changes),
        )
        .await;
        match result {
            Ok(Ok(_)) => tracing::info!(
                duplicate = %duplicate.number,
                winner = %winner.number,
                "canceled a duplicate incident"
            ),
            Ok(Err(error)) | Err(error) => tracing::warn!(
                duplicate = %duplicate.number,
                winner = %winner.number,
                cause = %error,
                "could not cancel a duplicate incident; the next event will try again"
            ),
        }
    }

    /// A ServiceNow call within the budget. A failure remembers the write it interrupted
    /// (`during_write`), because a write whose answer was lost may have been applied.
    async fn servicenow<R>(
        &self,
        budget: &Budget,
        during_write: Option<Action>,
        call: impl Future<Output = Result<R, ServiceNowError>>,
    ) -> Result<R, Interrupted> {
        match within(budget, Service::ServiceNow, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) | Err(error) => Err(Interrupted {
                error,
                during_write,
            }),
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
    fn reading(error: ServiceNowError) -> Self {
        Self {
            error,
            during_write: None,
        }
    }
}

impl From<Failure> for Interrupted {
    fn from(failure: Failure) -> Self {
        Self::reading(ServiceNowError::Refused(failure.to_string()))
    }
}

/// Runs `call` within what is left of the budget; running out is a transient failure.
/// Runs `call` within what is left of the budget, counting what ServiceNow costs.
async fn within<R, E>(
    budget: &Budget,
    service: Service,
    call: impl Future<Output = Result<R, E>>,
) -> Result<Result<R, E>, ServiceNowError> {
    let started = Instant::now();
    let result = tokio::time::timeout(budget.remaining(), call).await;
    if service == Service::ServiceNow {
        budget.spent_on_servicenow(started.elapsed());
    }
    result.map_err(|_| ServiceNowError::Transient {
        message: format!("{} did not answer within the time budget", service.name()),
        retry_after: None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    ServiceNow,
    SecretsManager,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::ServiceNow => "ServiceNow",
            Self::SecretsManager => "Secrets Manager",
        }
    }
}

/// A 2xx that silently dropped a field we depend on is a refusal, not a success.
fn ensure_applied(
    changes: &IncidentChanges,
    written: &Incident,
    what: &str,
) -> Result<(), Failure> {
    let dropped = changes.not_applied_in(written);
    if dropped.is_empty() {
        return Ok(());
    }
    Err(Failure::ServiceNowRefused(format!(
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

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("status and header are valid")
}
