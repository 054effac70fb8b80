//! What an event did (`Outcome`), or why it could not be brought to ServiceNow (`SyncError`),
//! whichever way it went there: the incident synchronisation, Event Management and the way
//! back all end in these, and the edge, the intake and the queue's consumer read them.

use crate::adapters::secrets::SecretError;
use crate::adapters::servicenow::ServiceNowError;
use crate::domain::incident::Incident;
use crate::domain::people::Echo;
use std::time::Duration;

/// What a retryable failure suggests waiting when the cause gave no better hint.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// A sleeping developer instance takes a minute or more to wake.
const ASLEEP_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Ignored,
    /// Put on the queue of queued delivery, to be applied by the consumer.
    Queued,
    /// Sent to Event Management as event records (`target=event`).
    Sent,
    /// The way back: the iLert alert was accepted, or resolved, after the service desk's
    /// change.
    Accepted,
    Resolved,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Ignored => "ignored",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Accepted => "accepted",
            Self::Resolved => "resolved",
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
    pub(crate) fn with(action: Action, incident: &Incident) -> Self {
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

    pub fn queued() -> Self {
        Self {
            action: Action::Queued,
            incident: None,
            reason: None,
        }
    }

    /// Stored by Event Management, which folds it into the alert of its key.
    pub fn sent() -> Self {
        Self {
            action: Action::Sent,
            incident: None,
            reason: None,
        }
    }

    /// Queued rather than brought to ServiceNow now, and why.
    pub fn queued_because(reason: &'static str) -> Self {
        Self {
            action: Action::Queued,
            incident: None,
            reason: Some(reason),
        }
    }

    /// An event that created the incident it ends on created it, whatever later passes of
    /// the same attempt did to it (merged others into it, say).
    pub(crate) fn created_if_on(mut self, created_here: Option<&str>) -> Self {
        let ours = self
            .incident
            .as_ref()
            .is_some_and(|incident| Some(incident.sys_id.as_str()) == created_here);
        if ours {
            self.action = Action::Created;
        }
        self
    }

    /// iLert's echo of the back-sync's own accept or resolve changes nothing: say so.
    pub(crate) fn echoed(mut self, echo: Echo) -> Self {
        if echo == Echo::Yes && self.action == Action::Unchanged {
            self.reason = Some("iLert's echo of the back-sync's own accept or resolve");
        }
        self
    }

    /// A write whose answer was lost was applied after all if the next pass finds nothing
    /// left to do: report what the event did, not what the last pass did.
    pub(crate) fn after_lost_write(mut self, lost: Option<Action>) -> Self {
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
    /// ServiceNow is throttled, down, asleep or too slow for the budget: nothing was
    /// half-written, and delivering the event again later is safe.
    #[error("{cause}")]
    Unavailable {
        cause: String,
        retry_after: Duration,
    },
    /// ServiceNow refused in a way a retry will not fix.
    #[error("{0}")]
    Refused(String),
    /// The secret, read again after ServiceNow refused the cached credentials, could not be
    /// read: answered as any failure to read it is.
    #[error("{0}")]
    Secret(SecretError),
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
            ServiceNowError::NotApplied {
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
            ServiceNowError::Unauthorized(cause)
            | ServiceNowError::Refused(cause)
            | ServiceNowError::NotFound(cause)
            | ServiceNowError::Dropped(cause)
            | ServiceNowError::Intermittent { message: cause, .. } => Self::Refused(cause),
        }
    }
}

impl From<SecretError> for SyncError {
    fn from(error: SecretError) -> Self {
        Self::Secret(error)
    }
}
