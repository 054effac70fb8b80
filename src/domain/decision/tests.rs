//! The decision's rules, one behaviour per test.

use super::*;
use crate::domain::alert::sample;
use crate::domain::fixtures::{
    acknowledged, changes_of, commented, created, decide, incident_in, resolved, run, settings,
    unmarked, with,
};

#[test]
fn the_first_pending_event_creates_a_new_incident_keyed_by_the_alert() {
    let changes = match decide(&created(), None, &settings()) {
        Plan::Create(changes) => changes,
        other => panic!("expected a create, got {other:?}"),
    };
    assert_eq!(
        changes.short_description.as_deref(),
        Some("PENDING PROBLEM: api-gateway-prod p95 latency > 2s")
    );
    assert_eq!(changes.state.as_deref(), Some("1"));
    assert_eq!(changes.correlation_id.as_deref(), Some("ilert:12797430"));
    assert_eq!(changes.correlation_display.as_deref(), Some("iLert"));
    assert_eq!(changes.work_notes, None);
    assert_eq!(changes.close_code, None);
}

#[test]
fn priority_becomes_impact_and_urgency_and_high_ranks_above_low() {
    let high = changes_of(decide(&created(), None, &settings()));
    let mut low_event = created();
    low_event.priority = Some(Priority::Low);
    let low = changes_of(decide(&low_event, None, &settings()));
    let rank = |c: &IncidentChanges| {
        c.impact.as_ref().unwrap().parse::<u8>().unwrap()
            + c.urgency.as_ref().unwrap().parse::<u8>().unwrap()
    };
    assert!(rank(&high) < rank(&low), "1 is high in ServiceNow");
    let json = serde_json::to_value(&high).unwrap();
    assert!(
        json.get("priority").is_none(),
        "priority is computed by ServiceNow"
    );
}

#[test]
fn a_first_event_that_is_already_resolved_opens_no_incident() {
    assert!(matches!(
        decide(&resolved(), None, &settings()),
        Plan::Ignore { .. }
    ));
}

#[test]
fn a_first_event_of_any_other_type_creates_the_incident_in_its_status() {
    let changes = changes_of(decide(&acknowledged(), None, &settings()));
    assert_eq!(changes.state.as_deref(), Some("2"));
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Accepted in iLert by Jane Doe.")
    );
    assert!(changes.correlation_display.unwrap().starts_with("iLert #"));

    let comment = changes_of(decide(&commented(), None, &settings()));
    assert!(comment.work_notes.unwrap().contains("Rolled back deploy"));

    let mut unknown = created();
    unknown.kind = EventKind::Other("alert-channel-attached".into());
    unknown.status = AlertStatus::Accepted;
    let changes = changes_of(decide(&unknown, None, &settings()));
    assert_eq!(changes.state.as_deref(), Some("2"));
    assert_eq!(changes.work_notes, None);
}

#[test]
fn the_legacy_docs_sample_creates_an_in_progress_incident() {
    let changes = changes_of(decide(&sample("06-legacy-docs-sample"), None, &settings()));
    assert_eq!(changes.state.as_deref(), Some("2"));
    assert_eq!(changes.impact.as_deref(), Some("3"));
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Accepted in iLert by Andreas Farmer.")
    );
}

#[test]
fn the_full_lifecycle_lands_on_one_incident_in_the_right_states() {
    let (incident, plans) = run(&[created(), acknowledged(), commented(), resolved()]);
    assert!(matches!(plans[0], Plan::Create(_)));
    let accept = changes_of(plans[1].clone());
    assert_eq!(accept.state.as_deref(), Some("2"));
    assert_eq!(
        accept.short_description.as_deref(),
        Some("ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s")
    );
    assert_eq!(
        unmarked(accept.work_notes.as_deref()),
        Some("Accepted in iLert by Jane Doe.")
    );
    let comment = changes_of(plans[2].clone());
    assert_eq!(comment.state, None);
    assert_eq!(comment.short_description, None);
    assert_eq!(
        unmarked(comment.work_notes.as_deref()),
        Some("Comment in iLert: Rolled back deploy 2025.10.17-3 (\"gw-cache\" flag); latency recovering.")
    );
    let resolve = changes_of(plans[3].clone());
    assert_eq!(resolve.state.as_deref(), Some("6"));
    assert_eq!(resolve.close_code.as_deref(), Some("Solution provided"));
    let close_notes = resolve.close_notes.unwrap();
    assert!(close_notes.starts_with("Root cause: cache flag in deploy 2025.10.17-3. Rolled back."));
    assert!(close_notes
        .contains("Resolved in iLert at 2025-10-17T11:05:44.310Z (responder: Jane Doe)."));
    assert_eq!(
        unmarked(resolve.work_notes.as_deref()),
        Some("Resolved in iLert by Jane Doe.")
    );
    let incident = incident.unwrap();
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(
        incident.short_description,
        "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s"
    );
}

#[test]
fn redelivering_any_event_writes_nothing() {
    let lifecycle = [created(), acknowledged(), commented(), resolved()];
    for upto in 1..=lifecycle.len() {
        let (incident, _) = run(&lifecycle[..upto]);
        for event in &lifecycle[..upto] {
            assert_eq!(
                decide(event, incident.as_ref(), &settings()),
                Plan::Unchanged,
                "{:?} after {upto} events",
                event.kind
            );
        }
    }
}

#[test]
fn a_redelivered_event_without_an_event_id_is_still_recognised() {
    let mut comment = commented();
    comment.event_id = None;
    let (incident, plans) = run(&[created(), comment.clone(), comment]);
    assert!(matches!(plans[1], Plan::Update { .. }));
    assert_eq!(plans[2], Plan::Unchanged);
    assert!(incident.is_some());
}

#[test]
fn two_different_comments_each_add_their_note() {
    let mut second = commented();
    second.event_id = Some("another-event".into());
    second.comment = Some("Second thought".into());
    let (_, plans) = run(&[created(), commented(), second]);
    assert!(changes_of(plans[2].clone())
        .work_notes
        .unwrap()
        .contains("Second thought"));
}

#[test]
fn state_never_moves_backwards() {
    let (_, plans) = run(&[created(), resolved(), acknowledged(), created()]);
    let late_accept = changes_of(plans[2].clone());
    assert_eq!(late_accept.state, None, "a late accept after resolve");
    assert_eq!(
        unmarked(late_accept.work_notes.as_deref()),
        Some("Accepted in iLert by Jane Doe."),
        "but its note, as in order"
    );
    assert_eq!(plans[3], Plan::Unchanged, "a late create after resolve");
    let (_, plans) = run(&[acknowledged(), created()]);
    assert_eq!(plans[1], Plan::Unchanged, "a late create after accept");
}

#[test]
fn closed_and_canceled_incidents_are_never_written() {
    for state in ["7", "8"] {
        let incident = incident_in(state);
        for event in [created(), acknowledged(), commented(), resolved()] {
            assert_eq!(
                decide(&event, Some(&incident), &settings()),
                Plan::Unchanged
            );
        }
    }
}

#[test]
fn a_comment_on_a_resolved_incident_is_still_noted_but_progress_notes_are_not() {
    let incident = Incident {
        short_description: "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s".into(),
        ..incident_in("6")
    };
    let comment = changes_of(decide(&commented(), Some(&incident), &settings()));
    assert!(comment.work_notes.is_some());
    assert_eq!(comment.state, None);
    let mut assigned = acknowledged();
    assigned.kind = EventKind::Assigned;
    assert_eq!(
        decide(&assigned, Some(&incident), &settings()),
        Plan::Unchanged
    );
}

#[test]
fn assignment_and_escalation_add_a_note_naming_who() {
    let incident = incident_in("2");
    let mut assigned = acknowledged();
    assigned.kind = EventKind::Assigned;
    assigned.event_id = Some("assign-1".into());
    assert_eq!(
        unmarked(
            changes_of(decide(&assigned, Some(&incident), &settings()))
                .work_notes
                .as_deref()
        ),
        Some("Assigned in iLert to Jane Doe.")
    );
    let mut escalated = acknowledged();
    escalated.kind = EventKind::AutoEscalated;
    escalated.event_id = Some("escalate-1".into());
    assert_eq!(
        unmarked(
            changes_of(decide(&escalated, Some(&incident), &settings()))
                .work_notes
                .as_deref()
        ),
        Some("Escalated in iLert to Jane Doe (escalation policy Platform On-Call).")
    );
}

#[test]
fn an_accept_on_an_incident_on_hold_keeps_its_state() {
    let incident = incident_in("3");
    let plan = decide(&acknowledged(), Some(&incident), &settings());
    let changes = changes_of(plan);
    assert_eq!(changes.state, None);
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Accepted in iLert by Jane Doe.")
    );
}

#[test]
fn a_custom_state_counts_as_work_in_progress() {
    let incident = incident_in("101");
    assert_eq!(
        changes_of(decide(&resolved(), Some(&incident), &settings()))
            .state
            .as_deref(),
        Some("6")
    );
    let mut redelivered_accept = incident.clone();
    redelivered_accept.correlation_display =
        NoteMemory::read("").remember(&NoteFingerprint::of(&event_identity(&acknowledged())));
    assert_eq!(
        decide(&acknowledged(), Some(&redelivered_accept), &settings()),
        Plan::Unchanged
    );
}

#[test]
fn raised_priority_updates_impact_and_urgency() {
    let mut incident = incident_in("2");
    incident.impact = "3".into();
    incident.urgency = "2".into();
    let mut raised = acknowledged();
    raised.kind = EventKind::Raised;
    raised.event_id = Some("raise-1".into());
    let changes = changes_of(decide(&raised, Some(&incident), &settings()));
    assert_eq!(changes.impact.as_deref(), Some("2"));
    assert_eq!(changes.urgency.as_deref(), Some("1"));
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Priority raised in iLert to HIGH.")
    );
    // Other events leave a priority the service desk may have changed alone.
    let comment = changes_of(decide(&commented(), Some(&incident), &settings()));
    assert_eq!((comment.impact, comment.urgency), (None, None));
}

#[test]
fn the_close_code_comes_from_the_settings() {
    let settings = Settings {
        close_code: "Solved (Permanently)".into(),
        ..Settings::default()
    };
    let changes = changes_of(decide(&resolved(), Some(&incident_in("2")), &settings));
    assert_eq!(changes.close_code.as_deref(), Some("Solved (Permanently)"));
}

#[test]
fn a_stale_title_is_brought_in_line_with_the_state() {
    let mut incident = incident_in("2");
    incident.short_description = "PENDING PROBLEM: api-gateway-prod p95 latency > 2s".into();
    let mut created_again = created();
    created_again.event_id = Some("x".into());
    let changes = changes_of(decide(&created_again, Some(&incident), &settings()));
    assert_eq!(
        changes.short_description.as_deref(),
        Some("ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s")
    );
    assert_eq!(changes.state, None);
}

#[test]
fn an_accept_that_may_be_the_back_syncs_echo_never_takes_an_in_progress_incident_from_its_assignee()
{
    let settings = with("assign_on_accept=true");
    let in_progress = Incident {
        assigned_to: "desk-person-sys-id".into(),
        ..incident_in("2")
    };
    let people = |echo| People {
        assignee: Assignee::Found("sync-user-sys-id".into()),
        echo_of_back_sync: echo,
        ..People::default()
    };
    let plan = |echo, incident: &Incident| {
        super::decide(
            &acknowledged(),
            Some(incident),
            &settings,
            &people(echo),
            SystemTime::now(),
        )
    };
    let cannot_tell = plan(Echo::CannotTell, &in_progress);
    if let Plan::Update { changes, .. } = &cannot_tell {
        assert_eq!(changes.assigned_to, None, "{changes:?}");
    }
    // Told apart: a person's accept assigns as always; an echo writes nothing.
    assert_eq!(
        changes_of(plan(Echo::No, &in_progress))
            .assigned_to
            .as_deref(),
        Some("sync-user-sys-id")
    );
    assert_eq!(plan(Echo::Yes, &in_progress), Plan::Unchanged);
    // A New incident is not the desk's yet: the accept assigns it even when in doubt.
    assert_eq!(
        changes_of(plan(Echo::CannotTell, &incident_in("1")))
            .assigned_to
            .as_deref(),
        Some("sync-user-sys-id")
    );
}

/// Events held in the queue while ServiceNow was away, or delivered again, arrive after later
/// ones. Whatever the order, the alert's incident ends as in-order delivery leaves it: the
/// state, the close fields, the priority and every note once (only the journal's order can
/// differ). An incident the desk resolved is another matter: progress notes stay off it.
#[test]
fn any_order_of_an_alerts_events_ends_as_in_order_delivery_does() {
    let mut resolve = resolved();
    resolve.reported_at = Some(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let mut second_comment = commented();
    second_comment.event_id = Some("second-comment".into());
    second_comment.comment = Some("Second thought".into());
    let mut raised = acknowledged();
    raised.kind = EventKind::Raised;
    raised.event_id = Some("raised".into());
    raised.priority = Some(Priority::Low);
    let in_order = [
        created(),
        acknowledged(),
        commented(),
        raised,
        second_comment,
        resolve,
    ];
    let end = |events: &[AlertEvent]| {
        let (incident, plans) = run(events);
        let incident = incident.expect("an incident");
        let mut notes: Vec<String> = plans
            .iter()
            .filter_map(|plan| match plan {
                Plan::Create(changes) | Plan::Update { changes, .. } => {
                    unmarked(changes.work_notes.as_deref()).map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        notes.sort();
        (
            incident.state,
            incident.close_code,
            incident.close_notes,
            incident.impact,
            incident.urgency,
            notes,
        )
    };
    let expected = end(&in_order);
    assert_eq!(expected.0, IncidentState::Resolved);
    assert_eq!(expected.5.len(), 5, "{:?}", expected.5);
    let mut orders = 0;
    permutations(in_order.len(), &mut |order| {
        let events: Vec<AlertEvent> = order.iter().map(|i| in_order[*i].clone()).collect();
        assert_eq!(end(&events), expected, "in the order {order:?}");
        orders += 1;
    });
    assert_eq!(orders, 720);
}

/// Every order of `0..n`, each handed to `visit` (Heap's algorithm).
fn permutations(n: usize, visit: &mut impl FnMut(&[usize])) {
    fn heap(k: usize, items: &mut Vec<usize>, visit: &mut impl FnMut(&[usize])) {
        if k <= 1 {
            visit(items);
            return;
        }
        for i in 0..k {
            heap(k - 1, items, visit);
            let j = if k % 2 == 0 { i } else { 0 };
            items.swap(j, k - 1);
        }
    }
    let mut items: Vec<usize> = (0..n).collect();
    heap(n, &mut items, visit);
}
