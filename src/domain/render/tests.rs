//! The texts an incident gets, as the decision writes them.

use crate::domain::alert::{EventKind, Person};
use crate::domain::fixtures::{
    acknowledged, changes_of, created, decide, incident_in, resolved, settings, unmarked, with,
};

#[test]
fn the_description_carries_details_source_key_priority_time_and_links() {
    let changes = changes_of(decide(&created(), None, &settings()));
    let description = changes.description.unwrap();
    for expected in [
        "Prometheus alert HighLatency firing for job=api-gateway",
        "Alert source: Prometheus Production",
        "Alert key: prometheus-HighLatency-api-gateway",
        "Priority: HIGH",
        "Reported: 2025-10-17T10:37:51.829Z",
        "iLert alert id: 12797430",
        "- Prometheus graph: https://prometheus.example.com/graph?g0.expr=job%3Aapi_latency_p95",
    ] {
        assert!(
            description.contains(expected),
            "{expected} missing in {description}"
        );
    }
}

#[test]
fn auto_resolve_says_so_in_close_notes() {
    let mut auto = resolved();
    auto.kind = EventKind::AutoResolved;
    auto.comment = None;
    let changes = changes_of(decide(&auto, Some(&incident_in("2")), &settings()));
    assert_eq!(
        changes.close_notes.as_deref(),
        Some("Resolved automatically in iLert at 2025-10-17T11:05:44.310Z.")
    );
}

#[test]
fn the_title_is_cut_to_160_characters_on_a_character_boundary() {
    let mut event = created();
    event.summary = "é".repeat(300);
    let title = changes_of(decide(&event, None, &settings()))
        .short_description
        .unwrap();
    assert_eq!(title.chars().count(), 160);
    assert!(title.starts_with("PENDING éé"));
}

#[test]
fn a_summary_over_several_lines_becomes_a_one_line_title() {
    let mut event = created();
    event.summary = "disk full\non  host-1".into();
    let title = changes_of(decide(&event, None, &settings()))
        .short_description
        .unwrap();
    assert_eq!(title, "PENDING disk full on host-1");
}

#[test]
fn a_note_without_a_known_actor_says_what_happened() {
    let mut event = acknowledged();
    event.assigned_to = Some(Person::default());
    event.responders.clear();
    let changes = changes_of(decide(&event, Some(&incident_in("1")), &settings()));
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Accepted in iLert.")
    );
}

// ── Settings and policies ────────────────────────────────────────────────────────────

#[test]
fn templates_shape_title_description_and_close_notes() {
    let settings = with(
        "short_description=%5B{priority}%5D%20{alert_source}:%20{summary}\
         &description={details}%0A%0ASee%20{alert_url}\
         &close_notes=Closed%20by%20{actor}:%20{comment}\
         &ilert_url=https://acme.ilert.com",
    );
    let create = changes_of(decide(&created(), None, &settings));
    assert_eq!(
        create.short_description.as_deref(),
        Some("[HIGH] Prometheus Production: PROBLEM: api-gateway-prod p95 latency > 2s")
    );
    assert!(create
        .description
        .unwrap()
        .ends_with("See https://acme.ilert.com/alert/view?id=12797430"));
    let resolve = changes_of(decide(&resolved(), Some(&incident_in("2")), &settings));
    assert_eq!(
        resolve.close_notes.as_deref(),
        Some("Closed by Jane Doe: Root cause: cache flag in deploy 2025.10.17-3. Rolled back.")
    );
}

#[test]
fn the_default_description_links_the_alert_when_the_ilert_url_is_set() {
    let create = changes_of(decide(
        &created(),
        None,
        &with("ilert_url=https://acme.ilert.com"),
    ));
    assert!(create
        .description
        .unwrap()
        .contains("iLert alert: https://acme.ilert.com/alert/view?id=12797430"));
}

#[test]
fn a_templated_title_is_one_line_and_cut_to_160_characters() {
    let settings = with("short_description={summary}%0A{details}");
    let mut event = created();
    event.details = "ü".repeat(500);
    let title = changes_of(decide(&event, None, &settings))
        .short_description
        .unwrap();
    assert!(!title.contains('\n'));
    assert_eq!(title.chars().count(), 160);
}
