//! The alert module's unit tests.

use super::*;

fn error_of(body: &str) -> String {
    AlertEvent::parse(body.as_bytes()).unwrap_err().to_string()
}

#[test]
fn a_sample_created_event_is_read_with_all_its_fields() {
    let event = sample("01-alert-created");
    assert_eq!(event.id.as_str(), "12797430");
    assert_eq!(event.status, AlertStatus::Pending);
    assert_eq!(event.kind, EventKind::Created);
    assert_eq!(event.priority, Some(Priority::High));
    assert_eq!(event.alert_source.as_deref(), Some("Prometheus Production"));
    assert_eq!(event.links.len(), 1);
    assert_eq!(event.actor().as_deref(), Some("Jane Doe"));
}

#[test]
fn legacy_incident_event_names_mean_their_alert_twins() {
    let event = sample("06-legacy-docs-sample");
    assert_eq!(event.kind, EventKind::Acknowledged);
    assert_eq!(event.actor().as_deref(), Some("Andreas Farmer"));
    assert_eq!(
        EventKind::from_event_type("incident-resolved"),
        EventKind::Resolved
    );
}

#[test]
fn labels_and_custom_details_are_read_as_text_and_never_cost_the_alert() {
    let event = AlertEvent::parse(
        br#"{"id":"1","status":"PENDING","labels":{"team":"payments","tier":1},
            "customDetails":{"region":"eu","hosts":["a","b"],"gone":null}}"#,
    )
    .unwrap();
    assert_eq!(event.labels["team"], "payments");
    assert_eq!(event.labels["tier"], "1");
    assert_eq!(event.custom_details["region"], "eu");
    assert_eq!(event.custom_details["hosts"], r#"["a","b"]"#);
    assert!(!event.custom_details.contains_key("gone"));
    // Only ever used to fill templates: an odd shape reads as none.
    let odd = AlertEvent::parse(
        br#"{"id":"1","status":"PENDING","labels":["team"],"customDetails":"x"}"#,
    )
    .unwrap();
    assert!(odd.labels.is_empty() && odd.custom_details.is_empty());
}

#[test]
fn an_id_may_be_a_string_of_digits_or_an_integer() {
    let text = AlertEvent::parse(br#"{"id":"42","status":"PENDING"}"#).unwrap();
    let number = AlertEvent::parse(br#"{"id":42,"status":"PENDING"}"#).unwrap();
    assert_eq!(text.id, number.id);
}

#[test]
fn ids_that_could_change_a_query_are_refused() {
    for id in [
        r#""1^ORnumber=INC1""#,
        r#""""#,
        r#""-5""#,
        r#""123456789012345678901""#,
        "-5",
        "1.5",
        "[1]",
    ] {
        let body = format!(r#"{{"id":{id},"status":"PENDING"}}"#);
        assert!(
            error_of(&body).contains("`id`"),
            "{body}: {}",
            error_of(&body)
        );
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    assert_eq!(error_of(""), "the body is empty");
    assert!(error_of("{").contains("not valid JSON"));
    assert_eq!(error_of("[1,2]"), "the body is an array, not a JSON object");
    assert_eq!(error_of("null"), "the body is null, not a JSON object");
    assert_eq!(error_of(r#"{"status":"PENDING"}"#), "`id` is missing");
    assert_eq!(error_of(r#"{"id":"1"}"#), "`status` is missing");
    assert!(error_of(r#"{"id":"1","status":"OPEN"}"#).contains("unknown variant `OPEN`"));
    assert!(error_of(r#"{"id":"1","status":"PENDING","summary":5}"#).contains("expected a string"));
}

#[test]
fn unknown_event_types_and_fields_are_accepted() {
    let event = AlertEvent::parse(
        br#"{"id":"7","status":"ACCEPTED","eventType":"alert-channel-attached","newField":{"x":1}}"#,
    )
    .unwrap();
    assert_eq!(
        event.kind,
        EventKind::Other("alert-channel-attached".into())
    );
    assert_eq!(event.summary, "iLert alert 7");
}

#[test]
fn shorten_cuts_on_a_character_boundary() {
    assert_eq!(shorten("héllo", 2), "hé");
    assert_eq!(shorten("abc", 10), "abc");
    assert_eq!(shorten("😀😀😀", 1), "😀");
}
