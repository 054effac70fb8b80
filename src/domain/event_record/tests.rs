//! The Event Management record's rules, one behaviour per test.

use super::*;
use crate::domain::alert::sample;
use crate::domain::fixtures::with;

fn record(name: &str, query: &str) -> EventRecord {
    event_record(&sample(name), &with(query), 0)
}

#[test]
fn every_event_of_an_alert_carries_its_key_so_servicenow_folds_them_into_one_alert() {
    let keys: Vec<String> = [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
        "04-alert-resolved",
    ]
    .iter()
    .map(|name| record(name, "target=event").message_key)
    .collect();
    assert!(keys.iter().all(|key| key == "ilert:12797430"), "{keys:?}");
}

#[test]
fn severity_follows_the_alerts_status_and_priority_and_a_resolve_clears() {
    assert_eq!(record("01-alert-created", "").severity, "2", "HIGH: Major");
    let mut low = sample("01-alert-created");
    low.priority = Some(Priority::Low);
    assert_eq!(
        event_record(&low, &with(""), 0).severity,
        "4",
        "LOW: Warning"
    );
    let tuned = with("event_severity_high=1&event_severity_low=3");
    assert_eq!(
        event_record(&sample("02-alert-acknowledged"), &tuned, 0).severity,
        "1"
    );
    assert_eq!(event_record(&low, &tuned, 0).severity, "3");
    let resolved = record("04-alert-resolved", "");
    assert_eq!(resolved.severity, "0", "Clear closes the alert");
    assert_eq!(resolved.resolution_state.as_deref(), Some("Closing"));
    assert_eq!(record("02-alert-acknowledged", "").resolution_state, None);
    // Whatever the event's type: a comment on a resolved alert clears too.
    let mut late_comment = sample("03-alert-comment-added");
    late_comment.status = AlertStatus::Resolved;
    assert_eq!(event_record(&late_comment, &with(""), 0).severity, "0");
}

#[test]
fn a_severity_setting_that_could_never_open_an_alert_is_refused() {
    for bad in ["0", "6", "major", ""] {
        let refused = Settings::default()
            .with_query(&format!("event_severity_high={bad}"))
            .unwrap_err();
        assert!(refused.to_string().contains("1 Critical"), "{refused}");
    }
    assert!(Settings::default().with_query("target=events").is_err());
}

#[test]
fn identifying_fields_come_from_templates_and_are_empty_when_not_set() {
    let plain = record("01-alert-created", "");
    assert_eq!(
        (
            plain.node.as_str(),
            plain.kind.as_str(),
            plain.resource.as_str()
        ),
        ("", "", "")
    );
    assert_eq!(plain.source, "iLert");
    assert_eq!(
        plain.event_class, "Prometheus Production",
        "the alert source"
    );
    let json = serde_json::to_value(&plain).unwrap();
    assert!(
        json.get("node").is_none(),
        "an empty field is left out: {json}"
    );

    let mut event = sample("01-alert-created");
    event.labels.insert("host".into(), "db-7".into());
    let set = event_record(
        &event,
        &with("event_node={label.host}&event_type=latency&event_resource={alert_key}&event_metric_name=p95"),
        0,
    );
    assert_eq!(set.node, "db-7");
    assert_eq!(set.kind, "latency");
    assert_eq!(set.resource, "prometheus-HighLatency-api-gateway");
    assert_eq!(set.metric_name, "p95");
    assert_eq!(serde_json::to_value(&set).unwrap()["type"], "latency");
}

#[test]
fn values_are_cut_to_the_documented_lengths_by_the_function_not_by_servicenow() {
    let mut event = sample("01-alert-created");
    event.labels.insert("host".into(), "h".repeat(300));
    event.details = "d".repeat(9000);
    let record = event_record(&event, &with("event_node={label.host}"), 0);
    assert_eq!(record.node.chars().count(), 100);
    assert!(record.description.chars().count() <= 4000);
}

#[test]
fn additional_info_is_a_json_string_of_string_values() {
    let mut event = sample("04-alert-resolved");
    event.labels.insert("team".into(), "payments".into());
    let record = event_record(
        &event,
        &with("ilert_url=https://acme.ilert.com/alert/{alert_id}"),
        0,
    );
    let info: serde_json::Value = serde_json::from_str(&record.additional_info).unwrap();
    let object = info.as_object().expect("an object");
    assert!(object.values().all(serde_json::Value::is_string), "{info}");
    assert_eq!(info["ilert_status"], "RESOLVED");
    assert_eq!(info["ilert_alert_id"], "12797430");
    assert_eq!(
        info["ilert_alert_url"],
        "https://acme.ilert.com/alert/12797430"
    );
    assert_eq!(info["ilert_resolved_by"], "Jane Doe");
    assert_eq!(info["label_team"], "payments");
    assert!(info["ilert_comment"]
        .as_str()
        .unwrap()
        .contains("Root cause"));
    let json = serde_json::to_value(&record).unwrap();
    assert!(
        json["additional_info"].is_string(),
        "a string, not an object"
    );
    assert!(json
        .as_object()
        .unwrap()
        .values()
        .all(serde_json::Value::is_string));
}

#[test]
fn time_of_event_is_utc_in_servicenows_format() {
    // The sample's `timestamp` is 2025-10-17T10:37:51.838605470Z.
    assert_eq!(
        record("01-alert-created", "").time_of_event,
        "2025-10-17 10:37:51"
    );
    let mut untimed = sample("01-alert-created");
    untimed.timestamp = None;
    untimed.reported_at = None;
    assert_eq!(
        event_record(&untimed, &with(""), 86_400).time_of_event,
        "1970-01-02 00:00:00"
    );
}
