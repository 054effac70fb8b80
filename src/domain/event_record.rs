//! ServiceNow Event Management as a target (`target=event`): each iLert event becomes one
//! record for `POST /api/global/em/jsonv2`, which ServiceNow folds into one alert by its
//! `message_key` and which the customer's own alert rules may turn into an incident.
//!
//! Sources: `../shared/reference/servicenow-event-management.md` (keys such as [D2 L156]
//! name ServiceNow's documentation). A `2xx` from the endpoint means stored, not processed
//! [D2 L129–132], so a record is built here so that ServiceNow can never reject it later:
//! a severity always, `additional_info` a JSON *string* of string values, every value cut to
//! its documented length rather than silently by ServiceNow.

use crate::domain::alert::{epoch_seconds, shorten, AlertEvent, AlertStatus, Priority};
use crate::domain::incident::CorrelationId;
use crate::domain::render::{alert_url, description, template_value};
use crate::domain::settings::{Settings, Severity};
use crate::domain::template::Template;
use serde::Serialize;
use std::collections::BTreeMap;

/// `source`: who sent the event.
pub const SOURCE: &str = "iLert";
/// `source`, `node`, `type`, `resource` [D2 L35–59]: 100 characters.
const SHORT_FIELD_MAX_CHARS: usize = 100;
/// `message_key` [D2 L83].
const MESSAGE_KEY_MAX_CHARS: usize = 1024;
/// `description` [D2 L148].
const DESCRIPTION_MAX_CHARS: usize = 4000;
/// `additional_info`'s length is not documented; a comment or label set longer than this is
/// cut (each value, not the JSON, so the string stays valid JSON).
const ADDITIONAL_VALUE_MAX_CHARS: usize = 1000;

/// One record of `{"records": [...]}`: every value a string, as ServiceNow stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    pub source: String,
    pub event_class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub metric_name: String,
    pub message_key: String,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_state: Option<String>,
    pub description: String,
    /// A JSON object of string values, as a string [D2 L156]: an object would be stored as
    /// `[object Object]`.
    pub additional_info: String,
    pub time_of_event: String,
}

/// The record for one iLert event. Its severity follows the alert's status as the event
/// carries it, not the event's type: a resolved alert's events all clear it.
pub fn event_record(event: &AlertEvent, settings: &Settings, now_epoch_s: i64) -> EventRecord {
    let events = &settings.event;
    let render = |template: &Option<Template>| {
        template
            .as_ref()
            .map(|t| {
                let text = template_value(event, settings, t);
                shorten(text.trim(), SHORT_FIELD_MAX_CHARS)
            })
            .unwrap_or_default()
    };
    let (severity, resolution_state) = match event.status {
        AlertStatus::Resolved => (Severity::CLEAR, Some("Closing".to_owned())),
        _ if event.priority == Some(Priority::Low) => (events.severity_low, None),
        _ => (events.severity_high, None),
    };
    EventRecord {
        source: SOURCE.to_owned(),
        // What lets ServiceNow create an alert when `node` is empty [D2 L75].
        event_class: shorten(
            event
                .alert_source
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(SOURCE)
                .trim(),
            SHORT_FIELD_MAX_CHARS,
        ),
        node: render(&events.node),
        kind: render(&events.kind),
        resource: render(&events.resource),
        metric_name: render(&events.metric_name),
        message_key: shorten(
            CorrelationId::for_alert(&event.id).as_str(),
            MESSAGE_KEY_MAX_CHARS,
        ),
        severity: severity.code().to_string(),
        resolution_state,
        description: shorten(&description(event, settings), DESCRIPTION_MAX_CHARS),
        additional_info: additional_info(event, settings),
        time_of_event: time_of_event(event, now_epoch_s),
    }
}

/// What the alert's record in ServiceNow should also say, as a JSON object of strings.
fn additional_info(event: &AlertEvent, settings: &Settings) -> String {
    let mut info: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |key: String, value: &str| {
        if !value.trim().is_empty() {
            info.insert(key, shorten(value, ADDITIONAL_VALUE_MAX_CHARS));
        }
    };
    put("ilert_status".into(), event.status.label());
    put("ilert_alert_id".into(), event.id.as_str());
    put("ilert_event_type".into(), event.kind.name());
    if let Some(url) = alert_url(event, settings) {
        put("ilert_alert_url".into(), &url);
    }
    if let Some(actor) = event.actor() {
        let key = match event.status {
            AlertStatus::Resolved => "ilert_resolved_by",
            _ => "ilert_accepted_by",
        };
        put(key.into(), &actor);
    }
    if let Some(comment) = &event.comment {
        put("ilert_comment".into(), comment);
    }
    for (name, value) in &event.labels {
        put(format!("label_{name}"), value);
    }
    serde_json::to_string(&info).expect("a map of strings is JSON")
}

/// `yyyy-MM-dd HH:mm:ss` in UTC [D1 L188]: when the event happened in iLert, else when the
/// alert was reported, else now.
fn time_of_event(event: &AlertEvent, now_epoch_s: i64) -> String {
    let seconds = event
        .timestamp
        .as_deref()
        .and_then(epoch_seconds)
        .or(event.reported_at)
        .unwrap_or(now_epoch_s);
    let time = aws_smithy_types::DateTime::from_secs(seconds);
    let iso = time
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    // `2026-12-04T10:41:12Z` → `2026-12-04 10:41:12`
    iso.trim_end_matches('Z').replacen('T', " ", 1)
}

#[cfg(test)]
mod tests;
