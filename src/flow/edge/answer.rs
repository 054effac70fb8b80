//! What the edge answers: an outcome as `200`/`202` JSON, a failure as its status with a
//! message for iLert's alert log (and the headers it calls for), and the one thing read of a
//! ServiceNow push's body.

use super::*;

/// The answer iLert sees for a failure: its verdict (`flow::failure`) as HTTP.
impl Failure {
    /// What iLert shows in the alert's log: enough to act on, never a credential, and for a
    /// 401 not which part was wrong.
    pub(super) fn message(&self) -> String {
        match self {
            Self::MethodNotAllowed(method) => {
                format!("method {method} is not allowed: iLert's webhook must POST")
            }
            Self::Unauthorized(_) => "missing or wrong credentials: send the webhook token as \
                 `Authorization: Bearer <token>`"
                .to_owned(),
            // Never the webhook's token: what ServiceNow holds must not open the webhook.
            Self::PushUnauthorized(_) => "missing or wrong credentials: ServiceNow's push sends \
                 the secret's `servicenow_token`, as a bearer token or as the password of its \
                 REST message's Basic auth profile"
                .to_owned(),
            Self::TooLarge(size) => format!(
                "the body is {size} bytes; an iLert event is at most {MAX_BODY_BYTES} bytes"
            ),
            Self::InvalidEvent(why) => format!("not a usable iLert event: {why}"),
            Self::UndecodableBody => format!("not a usable iLert event: {self}"),
            Self::InvalidSetting(why) => format!("the alert action's settings: {why}"),
            Self::UnreadableUrl(_) | Self::UnknownInstance(_) => {
                format!("the alert action's settings: {self}")
            }
            Self::UnreadableMessage(why) => format!("not a queued iLert event: {why}"),
            Self::SecretUnreadable(SecretError::Misconfigured(_)) => {
                "the function cannot read its configuration; its log says why".to_owned()
            }
            Self::SecretUnreadable(SecretError::Unavailable(_)) => {
                "the function cannot read its configuration right now; its log says why. \
                 Delivering the event again later is safe"
                    .to_owned()
            }
            Self::BadDefaults(_) | Self::Deployment(_) => {
                format!("the function is misconfigured: {self}")
            }
            Self::Sync(SyncError::Secret(error)) => Self::SecretUnreadable(error.clone()).message(),
            Self::Sync(SyncError::Refused(cause)) => cause.clone(),
            Self::Queue(QueueError::Misconfigured(cause)) => {
                format!("the function is misconfigured: {cause}")
            }
            Self::Queue(QueueError::Unavailable(cause)) => {
                format!("{cause}; the event was not queued, delivering it again is safe")
            }
            Self::Sync(SyncError::Unavailable { cause, .. }) => {
                format!("{cause}; nothing was lost, delivering the event again is safe")
            }
            Self::InvalidPush(why) => format!("not a push of ServiceNow's business rule: {why}"),
            Self::UnknownIncident(_) => self.to_string(),
            Self::BackSync(BackSyncError::Off) => format!("the function is misconfigured: {self}"),
            Self::BackSync(BackSyncError::ILertUnavailable { cause, .. }) => {
                format!("{cause}; the scheduled pass brings it to iLert within a minute or two")
            }
            Self::BackSync(BackSyncError::ServiceNow(error)) => Self::from(error.clone()).message(),
            Self::BackSync(_) => self.to_string(),
        }
    }

    pub(super) fn into_response(self) -> WebhookResponse {
        let mut response = json_response(
            self.status(),
            &json!({ "error": self.kind(), "message": self.message() }),
        );
        let headers = response.headers_mut();
        match &self {
            Self::MethodNotAllowed(_) => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Self::Unauthorized(_) | Self::PushUnauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        if let Some(retry_after) = self.retry_after() {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `200 {"action": …, "incident": {"number", "sys_id"}, "reason": …}`.
pub(super) fn answer(outcome: &Outcome) -> WebhookResponse {
    let mut body = json!({ "action": outcome.action.as_str() });
    if let Some(incident) = &outcome.incident {
        body["incident"] = json!({ "number": incident.number, "sys_id": incident.sys_id });
    }
    if let Some(reason) = outcome.reason {
        body["reason"] = json!(reason);
    }
    // Accepted, not done: the consumer brings a queued event to ServiceNow later.
    let status = if outcome.action == Action::Queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json_response(status, &body)
}

/// The sys_id of a push's body, `{"sys_id": "<32 hex digits>"}`: all that is read of it.
pub(super) fn pushed_sys_id(body: &[u8]) -> Result<SysId, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let text = json
        .get("sys_id")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| "the body has no `sys_id` string".to_owned())?;
    SysId::parse(text).ok_or_else(|| "`sys_id` must be 32 hexadecimal digits".to_owned())
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> WebhookResponse {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .expect("status and header are valid")
}
