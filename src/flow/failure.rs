//! Why a call, or a queued event, failed, and the verdict each failure carries: the HTTP
//! status a webhook call answers, the kind a log query finds, whether it may pass later and
//! when to try again. The edge answers with it; the queue's consumer and the intake they share
//! give the same verdicts.

use crate::adapters::queue::QueueError;
use crate::adapters::secrets::{SecretError, UnknownInstance};
use crate::domain::alert::InvalidEvent;
use crate::domain::settings::InvalidSetting;
use crate::flow::auth::Unauthorized;
use crate::flow::back_sync::BackSyncError;
use crate::flow::outcome::SyncError;
use http::{Method, StatusCode};
use std::time::Duration;

/// What a caller is told to wait when Secrets Manager or SQS could not answer.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a call, or a queued event, failed, carrying its verdict. The queue's consumer gives
/// the same verdicts: what a webhook call would answer 500 or 503 goes back to the queue,
/// what it would answer 400 or 502 to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    #[error("method {0} is not allowed")]
    MethodNotAllowed(Method),
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] Unauthorized),
    /// ServiceNow's push without its own token.
    #[error("unauthorized push: {0}")]
    PushUnauthorized(Unauthorized),
    #[error("the body is {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    InvalidEvent(#[from] InvalidEvent),
    #[error("the body is marked base64-encoded but is not valid base64")]
    UndecodableBody,
    #[error("{0}")]
    InvalidSetting(#[from] InvalidSetting),
    /// `instance=<name>` names no connection of the secret.
    #[error("{0}")]
    UnknownInstance(#[from] UnknownInstance),
    #[error("the deployment's default settings: {0}")]
    BadDefaults(InvalidSetting),
    #[error("the deployment's configuration: {0}")]
    Deployment(String),
    /// The secret could not be read, so nobody could be authenticated: the answer says
    /// nothing of why (the log does).
    #[error("{0}")]
    SecretUnreadable(SecretError),
    #[error("the webhook URL could not be read: {0}")]
    UnreadableUrl(String),
    #[error("{0}")]
    Queue(QueueError),
    /// A queued message that is not a queued iLert event.
    #[error("{0}")]
    UnreadableMessage(String),
    #[error("{0}")]
    Sync(SyncError),
    /// ServiceNow's push: a body that is not `{"sys_id": "<32 hex digits>"}`.
    #[error("{0}")]
    InvalidPush(String),
    /// ServiceNow's push named an incident the integration user cannot read.
    #[error("ServiceNow has no incident with sys_id {0}, or the integration user may not read it")]
    UnknownIncident(String),
    #[error("{0}")]
    BackSync(#[from] BackSyncError),
}

/// One route for a secret that could not be read, wherever it was read: the same answer.
impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Secret(error) => Self::SecretUnreadable(error),
            other => Self::Sync(other),
        }
    }
}

impl Failure {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) | Self::PushUnauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidEvent(_)
            | Self::UndecodableBody
            | Self::InvalidSetting(_)
            | Self::UnknownInstance(_)
            | Self::UnreadableUrl(_)
            | Self::UnreadableMessage(_)
            | Self::InvalidPush(_) => StatusCode::BAD_REQUEST,
            Self::UnknownIncident(_) => StatusCode::NOT_FOUND,
            Self::BackSync(BackSyncError::Off | BackSyncError::Misconfigured(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::BackSync(BackSyncError::ILertUnavailable { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::BackSync(
                BackSyncError::ILertKeyRefused(_)
                | BackSyncError::ILertRefused(_)
                | BackSyncError::ILertNotFound(_),
            ) => StatusCode::BAD_GATEWAY,
            Self::BackSync(BackSyncError::ServiceNow(error)) => Self::from(error.clone()).status(),
            Self::Sync(SyncError::Secret(error)) => Self::SecretUnreadable(error.clone()).status(),
            Self::BadDefaults(_)
            | Self::Deployment(_)
            | Self::SecretUnreadable(SecretError::Misconfigured(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Sync(SyncError::Refused(_)) => StatusCode::BAD_GATEWAY,
            Self::SecretUnreadable(SecretError::Unavailable(_))
            | Self::Queue(QueueError::Unavailable(_))
            | Self::Sync(SyncError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Queue(QueueError::Misconfigured(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short name for the kind of failure, stable for log queries.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Unauthorized(_) | Self::PushUnauthorized(_) => "unauthorized",
            Self::TooLarge(_) => "too_large",
            Self::InvalidEvent(_) | Self::UndecodableBody | Self::UnreadableMessage(_) => {
                "invalid_event"
            }
            Self::InvalidPush(_) => "invalid_push",
            Self::UnknownIncident(_) => "unknown_incident",
            Self::BackSync(error) => error.kind(),
            Self::InvalidSetting(_) | Self::UnknownInstance(_) | Self::UnreadableUrl(_) => {
                "invalid_setting"
            }
            Self::BadDefaults(_)
            | Self::Deployment(_)
            | Self::SecretUnreadable(SecretError::Misconfigured(_))
            | Self::Queue(QueueError::Misconfigured(_)) => "misconfigured",
            Self::Sync(SyncError::Secret(error)) => Self::SecretUnreadable(error.clone()).kind(),
            Self::Sync(SyncError::Refused(_)) => "servicenow_refused",
            Self::SecretUnreadable(SecretError::Unavailable(_))
            | Self::Queue(QueueError::Unavailable(_))
            | Self::Sync(SyncError::Unavailable { .. }) => "unavailable",
        }
    }

    /// Whether the same event may succeed later: the service comes back, or the deployment's
    /// configuration is fixed. A bad event or a refusal by ServiceNow never will.
    pub(crate) fn may_pass(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR
        )
    }

    /// How long to wait before delivering the event again, for what may pass by waiting.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Sync(SyncError::Unavailable { retry_after, .. }) => Some(*retry_after),
            Self::SecretUnreadable(SecretError::Unavailable(_))
            | Self::Queue(QueueError::Unavailable(_)) => Some(UNAVAILABLE_RETRY_AFTER),
            Self::BackSync(BackSyncError::ILertUnavailable { retry_after, .. }) => {
                Some(*retry_after)
            }
            Self::BackSync(BackSyncError::ServiceNow(error)) => {
                Self::from(error.clone()).retry_after()
            }
            Self::Sync(SyncError::Secret(error)) => {
                Self::SecretUnreadable(error.clone()).retry_after()
            }
            _ => None,
        }
    }
}
