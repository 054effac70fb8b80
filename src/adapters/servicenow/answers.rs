//! Reading ServiceNow's answers: the verdict a status gives, whether a write stuck, what a
//! refusal of Event Management's endpoint means, and a record read into an incident.

use super::*;

/// The record a write's answer shows, if it shows every field the write set that the
/// function depends on. A field ACL, business rule or data policy can drop a field and still
/// answer 200: that is a refusal, not a success.
pub(super) fn applied(
    changes: &IncidentChanges,
    written: Incident,
    what: &str,
) -> Result<Incident, ServiceNowError> {
    let dropped = changes.not_applied_in(&written);
    if dropped.is_empty() {
        return custom_applied(changes, written, what);
    }
    Err(ServiceNowError::Dropped(format!(
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

/// The record, if it shows every custom field (`field.<name>`) the write set: ServiceNow
/// ignores a field the table does not have, or the user may not write, and answers 200.
pub(super) fn custom_applied(
    changes: &IncidentChanges,
    written: Incident,
    what: &str,
) -> Result<Incident, ServiceNowError> {
    let lost = changes.custom_not_applied_in(&written);
    if lost.is_empty() {
        return Ok(written);
    }
    let causes: Vec<String> = lost
        .iter()
        .map(|(name, loss)| match loss {
            CustomFieldLoss::NotShown => format!(
                "`{name}` is not in its answer: incident has no such column, or the integration \
                 user may not read it (check the name in field.{name})"
            ),
            CustomFieldLoss::Empty => format!(
                "`{name}` came back empty: the integration user may not write it (a field ACL), \
                 or a business rule cleared it"
            ),
        })
        .collect();
    Err(ServiceNowError::Dropped(format!(
        "ServiceNow accepted the {what} of {} but did not keep every custom field: {}",
        if written.number.is_empty() {
            "the incident"
        } else {
            &written.number
        },
        causes.join("; ")
    )))
}

/// Incident numbers share a prefix and grow in length over time (INC0009999, INC0010000), so
/// a shorter number is older.
pub(super) fn oldest_first(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What to do about Event Management's endpoint refusing: an instance without the plugin has
/// no such API (`400`, "does not match the APIs", or `404`) [D14]; a user without the role is
/// `403` [D6 L91].
pub(super) fn explain_event_refusal(refused: &ServiceNowError) -> String {
    let message = refused.to_string();
    let what = if message.contains(" 403 ") {
        "grant the integration user the evt_mgmt_integration role (it creates events)"
    } else if message.contains(" 400 ") || message.contains(" 404 ") {
        "the instance has no Event Management API: its plugin (com.glideapp.itom.snac) is not \
         active, or target=event was meant for another instance"
    } else {
        "the event was not stored"
    };
    format!("{message}; {what}")
}

/// Turns an answer into the `result` value or a verdict.
pub(super) fn interpret(
    method: &Method,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Value, ServiceNowError> {
    if status.is_success() {
        // A sleeping developer instance answers 200 with an HTML page.
        let result = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|mut json| json.get_mut("result").map(Value::take));
        return result.ok_or_else(|| {
            ServiceNowError::NotTableApi(format!(
                "ServiceNow answered {method} with {status} but not with Table API JSON \
                 (the instance may be asleep or behind a login page)"
            ))
        });
    }
    let detail = error_message(body);
    let message = format!("ServiceNow answered {method} with {status}{detail}");
    match status {
        // A rate-limit rule refuses before the request does anything.
        StatusCode::TOO_MANY_REQUESTS => Err(ServiceNowError::NotApplied {
            message,
            retry_after,
        }),
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Err(ServiceNowError::Transient {
                message,
                retry_after,
            })
        }
        StatusCode::UNAUTHORIZED => Err(ServiceNowError::Unauthorized(format!(
            "{message}: check `username` and `password` in the secret"
        ))),
        StatusCode::INTERNAL_SERVER_ERROR => {
            Err(ServiceNowError::Intermittent { message, tries: 3 })
        }
        StatusCode::NOT_FOUND => Err(ServiceNowError::NotFound(message)),
        // KB2466644: under load some instances refuse a request they allow a moment later.
        StatusCode::FORBIDDEN if detail.contains("Failed API level ACL Validation") => {
            Err(ServiceNowError::Intermittent { message, tries: 2 })
        }
        // Not followed: a login page must not see the credentials. Like the HTML page of a
        // sleeping instance it may pass (an instance waking up or in maintenance), so it is
        // tried again rather than refused for good.
        _ if status.is_redirection() => Err(ServiceNowError::NotTableApi(format!(
            "{message}: the instance sends the Table API elsewhere (asleep, single sign-on, a \
             login page or a renamed instance?); the redirect was not followed. If it \
             persists, check `instance_url` in the secret: the instance's own \
             https://<name>.service-now.com"
        ))),
        _ => Err(ServiceNowError::Refused(message)),
    }
}

/// ServiceNow's `{"error": {"message", "detail"}}`, shortened; empty when the body has none.
pub(super) fn error_message(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let error = &json["error"];
    let parts: Vec<&str> = [&error["message"], &error["detail"]]
        .into_iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", shorten(&parts.join(": "), ERROR_MESSAGE_MAX_CHARS))
    }
}

pub(crate) fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Values arrive as strings; a reference field may still be `{link, value}`.
pub(super) fn incident_from(record: &Value) -> Incident {
    let field = |name: &str| -> String {
        match &record[name] {
            Value::String(s) => s.clone(),
            Value::Object(reference) => reference
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    };
    Incident {
        sys_id: field("sys_id"),
        number: field("number"),
        state: IncidentState::from_code(&field("state")),
        short_description: field("short_description"),
        correlation_id: field("correlation_id"),
        correlation_display: field("correlation_display"),
        impact: field("impact"),
        urgency: field("urgency"),
        assigned_to: field("assigned_to"),
        close_code: field("close_code"),
        close_notes: field("close_notes"),
        updated_by: field("sys_updated_by"),
        created_by: field("sys_created_by"),
        // Asked for with `sysparm_display_value=all`: the entries are the display value.
        journal: ["work_notes", "comments"]
            .iter()
            .filter_map(|name| record[*name].get("display_value")?.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        // Whatever else the answer shows: the custom fields a write asked to see.
        custom: record
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !Incident::LOOKUP_FIELDS.contains(&name.as_str()))
            .map(|(name, _)| (name.clone(), field(name)))
            .collect(),
    }
}
