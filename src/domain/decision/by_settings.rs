//! The decision's rules as an alert action's settings shape them: what accepts, resolves,
//! comments and other updates write (`on_*`), impact and urgency, fields set on creation,
//! assignment on accept and custom fields.

use super::*;
use crate::domain::fixtures::{
    acknowledged, apply, changes_of, commented, created, decide, incident_in, resolved, unmarked,
    with,
};

#[test]
fn on_accept_state_moves_to_in_progress_note_only_notes_and_ignore_ignores() {
    let new = incident_in("1");
    let state = changes_of(decide(
        &acknowledged(),
        Some(&new),
        &with("on_accept=state"),
    ));
    assert_eq!(state.state.as_deref(), Some("2"));
    let note = changes_of(decide(&acknowledged(), Some(&new), &with("on_accept=note")));
    assert_eq!(note.state, None);
    assert_eq!(
        unmarked(note.work_notes.as_deref()),
        Some("Accepted in iLert by Jane Doe.")
    );
    assert!(
        note.short_description.is_none()
            || note
                .short_description
                .as_deref()
                .unwrap()
                .starts_with("PENDING"),
        "the title follows the incident, which stays New"
    );
    let ignored = with("on_accept=ignore");
    assert!(ignored_by_policy(&acknowledged(), &ignored).is_some());
    assert!(matches!(
        decide(&acknowledged(), Some(&new), &ignored),
        Plan::Ignore { .. }
    ));
}

#[test]
fn on_resolve_note_keeps_the_incident_open_and_says_so() {
    let open = incident_in("2");
    let changes = changes_of(decide(&resolved(), Some(&open), &with("on_resolve=note")));
    assert_eq!(changes.state, None);
    assert_eq!(changes.close_code, None);
    assert_eq!(
        unmarked(changes.work_notes.as_deref()),
        Some("Resolved in iLert by Jane Doe at 2025-10-17T11:05:44.310Z. The incident stays open for the service desk.")
    );
    assert!(ignored_by_policy(&resolved(), &with("on_resolve=ignore")).is_some());
    assert!(ignored_by_policy(&resolved(), &with("on_resolve=resolve")).is_none());
}

#[test]
fn on_resolve_note_also_holds_for_an_unknown_event_type_with_status_resolved() {
    let mut unknown = resolved();
    unknown.kind = EventKind::Other("alert-something-new".into());
    let plan = decide(&unknown, Some(&incident_in("2")), &with("on_resolve=note"));
    assert!(matches!(&plan, Plan::Unchanged | Plan::Update { .. }));
    if let Plan::Update { changes, .. } = plan {
        assert_eq!(
            changes.state, None,
            "the policy holds whatever the event is called"
        );
    }
}

#[test]
fn on_comment_chooses_work_note_customer_comment_or_nothing() {
    let open = incident_in("2");
    let work = changes_of(decide(
        &commented(),
        Some(&open),
        &with("on_comment=work_note"),
    ));
    assert!(work.work_notes.is_some() && work.comments.is_none());
    let customer = changes_of(decide(
        &commented(),
        Some(&open),
        &with("on_comment=comment"),
    ));
    assert!(customer.comments.unwrap().contains("Rolled back deploy"));
    assert_eq!(customer.work_notes, None);
    assert!(ignored_by_policy(&commented(), &with("on_comment=ignore")).is_some());
}

#[test]
fn a_customer_comment_is_not_written_twice_either() {
    let settings = with("on_comment=comment");
    let created = changes_of(decide(&created(), None, &settings));
    let incident = apply(None, &created);
    let comment = changes_of(decide(&commented(), Some(&incident), &settings));
    let incident = apply(Some(&incident), &comment);
    assert_eq!(
        decide(&commented(), Some(&incident), &settings),
        Plan::Unchanged
    );
}

#[test]
fn on_other_ignore_drops_assignment_escalation_and_responder_updates() {
    let settings = with("on_other=ignore");
    for kind in [
        EventKind::Assigned,
        EventKind::AutoEscalated,
        EventKind::EscalationEnded,
        EventKind::Rejected,
        EventKind::ResponderAdded,
        EventKind::ResponderRemoved,
    ] {
        let mut event = acknowledged();
        event.kind = kind.clone();
        assert!(ignored_by_policy(&event, &settings).is_some(), "{kind:?}");
    }
    for kind in [
        EventKind::Created,
        EventKind::Acknowledged,
        EventKind::CommentAdded,
    ] {
        let mut event = acknowledged();
        event.kind = kind.clone();
        assert!(ignored_by_policy(&event, &settings).is_none(), "{kind:?}");
    }
}

#[test]
fn a_raised_priority_still_updates_impact_and_urgency_when_other_notes_are_off() {
    let mut incident = incident_in("2");
    incident.impact = "3".into();
    incident.urgency = "2".into();
    let mut raised = acknowledged();
    raised.kind = EventKind::Raised;
    let changes = changes_of(decide(&raised, Some(&incident), &with("on_other=ignore")));
    assert_eq!(changes.impact.as_deref(), Some("2"));
    assert_eq!(changes.work_notes, None);
    let fixed = with("on_other=ignore&impact=3&urgency=3");
    assert!(
        ignored_by_policy(&raised, &fixed).is_some(),
        "nothing left to write"
    );
}

#[test]
fn fixed_impact_or_urgency_is_never_changed_by_a_raised_priority() {
    let mut incident = incident_in("2");
    incident.impact = "3".into();
    incident.urgency = "3".into();
    let mut raised = acknowledged();
    raised.kind = EventKind::Raised;
    let changes = changes_of(decide(&raised, Some(&incident), &with("impact=3")));
    assert_eq!(changes.impact, None);
    assert_eq!(changes.urgency.as_deref(), Some("1"));
}

#[test]
fn impact_and_urgency_on_creation_follow_the_settings() {
    let fixed = changes_of(decide(&created(), None, &with("impact=1&urgency=3")));
    assert_eq!(
        (fixed.impact.as_deref(), fixed.urgency.as_deref()),
        (Some("1"), Some("3"))
    );
    let mapped = changes_of(decide(&created(), None, &with("priority_high=1,1")));
    assert_eq!(
        (mapped.impact.as_deref(), mapped.urgency.as_deref()),
        (Some("1"), Some("1"))
    );
    let mut low = created();
    low.priority = Some(Priority::Low);
    let mapped = changes_of(decide(&low, None, &with("priority_low=3,3")));
    assert_eq!(
        (mapped.impact.as_deref(), mapped.urgency.as_deref()),
        (Some("3"), Some("3"))
    );
}

#[test]
fn create_on_resolved_opens_a_resolved_incident_with_close_fields() {
    let settings = with("create_on_resolved=true&close_code=Solved%20(Permanently)");
    let changes = changes_of(decide(&resolved(), None, &settings));
    assert_eq!(changes.state.as_deref(), Some("6"));
    assert_eq!(changes.close_code.as_deref(), Some("Solved (Permanently)"));
    assert!(changes.close_notes.unwrap().contains("Root cause"));
    assert!(changes.short_description.unwrap().starts_with("RESOLVED "));
    let note_only = changes_of(decide(
        &resolved(),
        None,
        &with("create_on_resolved=true&on_resolve=note"),
    ));
    assert_eq!(note_only.state.as_deref(), Some("1"));
    assert!(note_only.work_notes.unwrap().contains("stays open"));
}

#[test]
fn passthrough_fields_and_the_caller_are_set_on_creation_only() {
    let settings =
        with("assignment_group=Network&category=Software&cmdb_ci=api-gw&contact_type=monitoring");
    let people = People {
        caller: Some("caller-sys-id".into()),
        ..People::default()
    };
    let create = match super::decide(&created(), None, &settings, &people, SystemTime::now()) {
        Plan::Create(changes) => changes,
        other => panic!("{other:?}"),
    };
    assert_eq!(create.caller_id.as_deref(), Some("caller-sys-id"));
    assert_eq!(create.passthrough["assignment_group"], "Network");
    assert_eq!(create.passthrough["cmdb_ci"], "api-gw");
    let json = serde_json::to_value(&create).unwrap();
    assert_eq!(json["category"], "Software", "sent as a plain field");
    assert_eq!(json["contact_type"], "monitoring");

    let update = changes_of(super::decide(
        &acknowledged(),
        Some(&incident_in("1")),
        &settings,
        &people,
        SystemTime::now(),
    ));
    assert!(update.passthrough.is_empty() && update.caller_id.is_none());
}

#[test]
fn assign_on_accept_sets_the_responder_or_notes_why_not() {
    let settings = with("assign_on_accept=true");
    assert!(wants_assignee(&acknowledged(), &settings));
    assert!(!wants_assignee(&commented(), &settings));
    let found = People {
        assignee: Assignee::Found("jane-sys-id".into()),
        ..People::default()
    };
    let open = incident_in("1");
    let changes = changes_of(super::decide(
        &acknowledged(),
        Some(&open),
        &settings,
        &found,
        SystemTime::now(),
    ));
    assert_eq!(changes.assigned_to.as_deref(), Some("jane-sys-id"));
    let incident = apply(Some(&open), &changes);
    assert_eq!(
        super::decide(
            &acknowledged(),
            Some(&incident),
            &settings,
            &found,
            SystemTime::now()
        ),
        Plan::Unchanged
    );

    let unknown = People {
        assignee: Assignee::UnknownEmail("jane.doe@example.com".into()),
        ..People::default()
    };
    let changes = changes_of(super::decide(
        &acknowledged(),
        Some(&open),
        &settings,
        &unknown,
        SystemTime::now(),
    ));
    assert_eq!(changes.assigned_to, None);
    assert!(changes
        .work_notes
        .unwrap()
        .contains("no active ServiceNow user has the email jane.doe@example.com"));
}

#[test]
fn an_assignment_servicenow_refused_is_left_out_and_the_note_says_why() {
    let settings = with("assign_on_accept=true");
    let refused = People {
        assignee: Assignee::Refused(
            "Assigned to user is not a member of the Assignment group".into(),
        ),
        ..People::default()
    };
    let changes = changes_of(super::decide(
        &acknowledged(),
        Some(&incident_in("1")),
        &settings,
        &refused,
        SystemTime::now(),
    ));
    assert_eq!(
        changes.state.as_deref(),
        Some("2"),
        "the accept still lands"
    );
    assert_eq!(changes.assigned_to, None);
    assert!(changes
        .work_notes
        .unwrap()
        .contains("Not assigned: ServiceNow refused it (Assigned to user is not a member"));
}

#[test]
fn custom_fields_are_set_on_creation_from_the_alert_and_fixed_settings_win() {
    let settings = with(
        "field.u_environment=production&field.u_alert_key={alert_key}&field.u_team={label.team}\
         &field.u_region={custom.region}&field.u_missing={label.nope}\
         &field.assignment_group=FromField&assignment_group=Network",
    );
    let mut event = created();
    event.labels.insert("team".into(), "payments".into());
    event
        .custom_details
        .insert("region".into(), "eu-central-1".into());
    let create = changes_of(decide(&event, None, &settings));
    assert_eq!(create.custom["u_environment"], "production");
    assert_eq!(
        create.custom["u_alert_key"],
        "prometheus-HighLatency-api-gateway"
    );
    assert_eq!(create.custom["u_team"], "payments");
    assert_eq!(create.custom["u_region"], "eu-central-1");
    assert!(
        !create.custom.contains_key("u_missing"),
        "an absent label renders empty, and an empty value is not sent"
    );
    assert!(!create.custom.contains_key("assignment_group"));
    let json = serde_json::to_value(&create).unwrap();
    assert_eq!(
        json["assignment_group"], "Network",
        "the fixed setting wins"
    );
    assert_eq!(json["u_environment"], "production", "sent as a plain field");
}

#[test]
fn custom_fields_ride_along_with_updates_only_when_chosen_and_never_cause_one() {
    let settings =
        with("field.u_environment=production&field.u_status={status}&update_fields=u_status");
    let update = changes_of(super::decide(
        &acknowledged(),
        Some(&incident_in("1")),
        &settings,
        &People::default(),
        SystemTime::now(),
    ));
    assert_eq!(
        update.custom.get("u_status").map(String::as_str),
        Some("ACCEPTED")
    );
    assert!(
        !update.custom.contains_key("u_environment"),
        "creation only"
    );

    // Nothing else to write: the custom field alone does not make a write.
    let mut done = incident_in("2");
    done.short_description = "ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s".into();
    done.correlation_display = NoteMemory::read("").remember(&NoteFingerprint::of(
        &super::event_identity(&acknowledged()),
    ));
    assert_eq!(
        super::decide(
            &acknowledged(),
            Some(&done),
            &settings,
            &People::default(),
            SystemTime::now()
        ),
        Plan::Unchanged
    );
}
