//! The function's flow, top to bottom: request → authenticate → parse → look up → decide →
//! write → answer. Every failure becomes exactly one HTTP answer here.

use crate::alert::{AlertEvent, InvalidEvent};
use crate::auth::{authenticate, Unauthorized};
use crate::decision::{decide, Plan};
use crate::incident::{CorrelationId, Incident};
use crate::secrets::{ConnectionCache, SecretError, SecretSource, ServiceNowAccount};
use crate::servicenow::{IncidentTable, ServiceNowError};
use crate::settings::Settings;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use std::time::Instant;

/// iLert's bodies are a few KiB; anything this large is not an alert event.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct WebhookHandler<S, T> {
    connections: ConnectionCache<S>,
    incidents: T,
    settings: Settings,
}

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
    #[error("{0}")]
    Misconfigured(String),
    #[error("{0}")]
    ServiceNowRefused(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<SecretError> for Failure {
    fn from(error: SecretError) -> Self {
        match error {
            SecretError::Misconfigured(cause) => Self::Misconfigured(cause),
            SecretError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl From<ServiceNowError> for Failure {
    fn from(error: ServiceNowError) -> Self {
        match error {
            ServiceNowError::Refused(cause) => Self::ServiceNowRefused(cause),
            ServiceNowError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceNowRefused(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short name for the kind of failure, stable for log queries.
    fn kind(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Unauthorized(_) => "unauthorized",
            Self::TooLarge(_) => "too_large",
            Self::InvalidEvent(_) => "invalid_event",
            Self::Misconfigured(_) => "misconfigured",
            Self::ServiceNowRefused(_) => "servicenow_refused",
            Self::Unavailable(_) => "unavailable",
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
            Self::Misconfigured(cause) => format!("the function is misconfigured: {cause}"),
            Self::ServiceNowRefused(cause) => cause.clone(),
            Self::Unavailable(cause) => {
                format!("{cause}; nothing was lost, delivering the event again is safe")
            }
        }
    }
}

impl<S: SecretSource, T: IncidentTable> WebhookHandler<S, T> {
    pub fn new(connections: ConnectionCache<S>, incidents: T, settings: Settings) -> Self {
        Self {
            connections,
            incidents,
            settings,
        }
    }

    /// Answers one webhook call. Never fails: every problem is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let mut summary = Summary::default();
        let result = self.process(&request, &mut summary).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(outcome) => {
                tracing::info!(
                    alert_id = summary.alert_id.as_deref(),
                    event_type = summary.event_type.as_deref(),
                    action = outcome.action.as_str(),
                    incident = outcome.incident.as_ref().map(|(number, _)| number.as_str()),
                    duration_ms = elapsed_ms,
                    "event handled"
                );
                let mut body = json!({ "action": outcome.action.as_str() });
                if let Some((number, sys_id)) = &outcome.incident {
                    body["incident"] = json!({ "number": number, "sys_id": sys_id });
                }
                if let Some(reason) = outcome.reason {
                    body["reason"] = json!(reason);
                }
                json_response(StatusCode::OK, &body)
            }
            Err(failure) => {
                let status = failure.status();
                if status.is_server_error() {
                    tracing::error!(
                        status = status.as_u16(),
                        failure = failure.kind(),
                        cause = %failure,
                        alert_id = summary.alert_id.as_deref(),
                        event_type = summary.event_type.as_deref(),
                        duration_ms = elapsed_ms,
                        "event failed"
                    );
                } else {
                    tracing::warn!(
                        status = status.as_u16(),
                        failure = failure.kind(),
                        cause = %failure,
                        alert_id = summary.alert_id.as_deref(),
                        event_type = summary.event_type.as_deref(),
                        duration_ms = elapsed_ms,
                        "event refused"
                    );
                }
                let mut response = json_response(
                    status,
                    &json!({ "error": failure.kind(), "message": failure.message() }),
                );
                if let Failure::MethodNotAllowed(_) = failure {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                }
                response
            }
        }
    }

    async fn process(&self, request: &Request, summary: &mut Summary) -> Result<Outcome, Failure> {
        if request.method() != Method::POST {
            return Err(Failure::MethodNotAllowed(request.method().clone()));
        }
        let connection = self.connections.get().await?;
        // Before the body is even looked at: an unauthenticated caller learns nothing.
        authenticate(request.headers(), &connection.webhook)?;
        let body: &[u8] = request.body().as_ref();
        if body.len() > MAX_BODY_BYTES {
            return Err(Failure::TooLarge(body.len()));
        }
        let event = AlertEvent::parse(body)?;
        summary.alert_id = Some(event.id.to_string());
        summary.event_type = Some(event.kind.name().to_owned());

        let key = CorrelationId::for_alert(&event.id);
        let found = self.incidents.find(&connection.servicenow, &key).await?;
        let current = found.first();
        let plan = decide(&event, current, &self.settings);
        self.carry_out(plan, current, &connection.servicenow).await
    }

    async fn carry_out(
        &self,
        plan: Plan,
        current: Option<&Incident>,
        account: &ServiceNowAccount,
    ) -> Result<Outcome, Failure> {
        match plan {
            Plan::Ignore { reason } => Ok(Outcome {
                action: Action::Ignored,
                incident: None,
                reason: Some(reason),
            }),
            Plan::Unchanged => Ok(match current {
                Some(incident) => Outcome::with(Action::Unchanged, incident),
                None => Outcome {
                    action: Action::Unchanged,
                    incident: None,
                    reason: None,
                },
            }),
            Plan::Create(changes) => {
                let written = self.incidents.create(account, &changes).await?;
                ensure_applied(&changes, &written, "creation")?;
                Ok(Outcome::with(Action::Created, &written))
            }
            Plan::Update { sys_id, changes } => {
                let written = self.incidents.update(account, &sys_id, &changes).await?;
                ensure_applied(&changes, &written, "update")?;
                Ok(Outcome::with(Action::Updated, &written))
            }
        }
    }
}

/// A 2xx that silently dropped a field we depend on is a refusal, not a success.
fn ensure_applied(
    changes: &crate::incident::IncidentChanges,
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

#[derive(Debug, Default)]
struct Summary {
    alert_id: Option<String>,
    event_type: Option<String>,
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("status and header are valid")
}
