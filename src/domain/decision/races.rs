//! The rules that make concurrent deliveries of one alert converge: a resolve that finds no
//! incident, and what a merge brings onto the incident that stays.

use super::*;
use crate::domain::fixtures::{changes_of, decide, incident_in, resolved, settings, with};

/// The resolve, for an alert reported `hours_ago`.
fn resolved_reported(hours_ago: u64) -> AlertEvent {
    let mut event = resolved();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    event.reported_at = Some((now.as_secs() - hours_ago * 3600) as i64);
    event
}

fn duplicate(number: &str, state: &str) -> Incident {
    Incident {
        number: number.into(),
        sys_id: format!("sys-{number}"),
        ..incident_in(state)
    }
}

#[test]
fn a_resolve_of_a_recent_alert_that_finds_no_incident_opens_it_resolved() {
    let changes = changes_of(decide(&resolved_reported(0), None, &settings()));
    assert_eq!(changes.state.as_deref(), Some("6"));
    assert_eq!(changes.close_code.as_deref(), Some("Solution provided"));
    assert!(changes.close_notes.unwrap().contains("Root cause"));
    assert!(changes.short_description.unwrap().starts_with("RESOLVED "));
    assert_eq!(
        changes.correlation_id.as_deref(),
        Some("ilert:12797430"),
        "a concurrent create merges with it by key"
    );
}

#[test]
fn only_alerts_reported_within_the_window_open_a_resolved_incident() {
    let opens = |event: &AlertEvent, query: &str| {
        matches!(decide(event, None, &with(query)), Plan::Create(_))
    };
    assert!(opens(&resolved_reported(23), ""), "within the default day");
    assert!(!opens(&resolved_reported(25), ""), "older than a day");
    assert!(opens(
        &resolved_reported(47),
        "create_resolved_within_hours=48"
    ));
    assert!(!opens(
        &resolved_reported(0),
        "create_resolved_within_hours=0"
    ));
    assert!(
        opens(&resolved_reported(1000), "create_on_resolved=true"),
        "create_on_resolved opens whatever the age"
    );
    assert!(!opens(&resolved_reported(0), "on_resolve=ignore"));
    let mut unknown_age = resolved();
    unknown_age.reported_at = None;
    assert!(
        opens(&unknown_age, ""),
        "an unknown age counts as recent: no open incident is left behind"
    );
}

#[test]
fn a_merge_carries_the_furthest_state_with_its_close_fields_and_title_and_names_the_duplicate() {
    let winner = duplicate("INC0010001", "1");
    let resolved = Incident {
        short_description: "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s".into(),
        close_code: "Solution provided".into(),
        close_notes: "Root cause: cache flag.".into(),
        ..duplicate("INC0010003", "6")
    };
    let working = duplicate("INC0010002", "2");
    let changes = merge_into(&winner, &[&working, &resolved]);
    assert_eq!(changes.state.as_deref(), Some("6"));
    assert_eq!(changes.close_code.as_deref(), Some("Solution provided"));
    assert_eq!(
        changes.close_notes.as_deref(),
        Some("Root cause: cache flag.")
    );
    assert_eq!(
        changes.short_description,
        Some(resolved.short_description.clone())
    );
    let note = changes.work_notes.clone().unwrap();
    assert!(
        note.contains("INC0010002") && note.contains("INC0010003"),
        "{note}"
    );

    // Applied, the same merge has nothing left to do: the note is not written twice.
    let merged = winner.after(&changes);
    assert!(merge_into(&merged, &[&working, &resolved]).is_empty());
}

#[test]
fn a_merge_never_moves_the_winner_backwards() {
    let winner = duplicate("INC0010001", "6");
    let changes = merge_into(&winner, &[&duplicate("INC0010002", "2")]);
    assert_eq!(changes.state, None);
    assert_eq!(changes.close_code, None);
    assert_eq!(changes.short_description, None);
    assert!(changes.work_notes.unwrap().contains("INC0010002"));
}

#[test]
fn a_merge_carries_an_assignee_only_to_a_winner_without_one() {
    let assigned = Incident {
        assigned_to: "jane".into(),
        ..duplicate("INC0010002", "2")
    };
    let unassigned = duplicate("INC0010001", "2");
    assert_eq!(
        merge_into(&unassigned, &[&assigned]).assigned_to.as_deref(),
        Some("jane")
    );
    let taken = Incident {
        assigned_to: "joe".into(),
        ..unassigned
    };
    assert_eq!(merge_into(&taken, &[&assigned]).assigned_to, None);
}

#[test]
fn a_duplicate_is_canceled_with_a_note_naming_the_winner_and_its_key_moved_aside() {
    let winner = Incident {
        number: "INC0010001".into(),
        ..incident_in("2")
    };
    let duplicate = Incident {
        number: "INC0010002".into(),
        sys_id: "b2".into(),
        ..incident_in("1")
    };
    let changes = cancel_duplicate(&duplicate, &winner);
    assert_eq!(changes.state.as_deref(), Some("8"));
    let moved = changes.correlation_id.unwrap();
    assert_eq!(moved, "ilert:12797430:duplicate-of-INC0010001");
    assert_ne!(
        moved, winner.correlation_id,
        "lookups by the key no longer find it"
    );
    assert!(changes
        .work_notes
        .unwrap()
        .contains("duplicate of INC0010001"));
}
