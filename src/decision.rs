//! The decision: from an iLert event, the incident found for its alert (if any) and the
//! settings, what to write to ServiceNow. Pure: every business rule lives here and is tested
//! without I/O.

use crate::alert::{shorten, AlertEvent, AlertStatus, EventKind, Priority};
use crate::incident::{
    CorrelationId, Incident, IncidentChanges, IncidentState, NoteFingerprint, NoteMemory,
    CORRELATION_DISPLAY, CORRELATION_FIELD_MAX_CHARS,
};
use crate::settings::{ImpactUrgency, Settings};

/// ServiceNow's default length of `short_description`.
const SHORT_DESCRIPTION_MAX_CHARS: usize = 160;
/// ServiceNow's default length of `description`, also used to bound notes.
const LONG_TEXT_MAX_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No incident exists and none should: answered `ignored`.
    Ignore {
        reason: &'static str,
    },
    /// The incident already shows everything this event says, or may not be written.
    Unchanged,
    Create(IncidentChanges),
    Update {
        sys_id: String,
        changes: IncidentChanges,
    },
}

pub fn decide(event: &AlertEvent, found: Option<&Incident>, settings: &Settings) -> Plan {
    match found {
        None => decide_first_event(event, settings),
        Some(incident) if incident.state.is_final() => Plan::Unchanged,
        Some(incident) => decide_update(event, incident, settings),
    }
}

fn decide_first_event(event: &AlertEvent, settings: &Settings) -> Plan {
    if event.status == AlertStatus::Resolved {
        return Plan::Ignore {
            reason: "the alert is already resolved, so no incident is opened for it",
        };
    }
    let pair = impact_urgency(event.priority, settings);
    let mut changes = IncidentChanges {
        short_description: Some(title(event.status, &event.summary)),
        description: Some(description(event)),
        state: Some(state_for(event.status).code().to_owned()),
        impact: Some(pair.impact.to_string()),
        urgency: Some(pair.urgency.to_string()),
        correlation_id: Some(CorrelationId::for_alert(&event.id).as_str().to_owned()),
        correlation_display: Some(CORRELATION_DISPLAY.to_owned()),
        ..IncidentChanges::default()
    };
    if let Some(note) = work_note(event) {
        changes.correlation_display =
            Some(NoteMemory::read("").remember(&NoteFingerprint::of(&event_identity(event))));
        changes.work_notes = Some(note);
    }
    Plan::Create(changes)
}

fn decide_update(event: &AlertEvent, incident: &Incident, settings: &Settings) -> Plan {
    let current = incident_progress(&incident.state);
    let announced = status_progress(event.status);
    let was_active = current < Progress::Resolved;
    let mut changes = IncidentChanges::default();

    // State only moves forward: a late or redelivered event never undoes a later one.
    if announced > current {
        changes.state = Some(state_for(event.status).code().to_owned());
        if event.status == AlertStatus::Resolved {
            changes.close_code = Some(settings.close_code.clone());
            changes.close_notes = Some(close_notes(event));
        }
    }

    let shown_status = status_of(current.max(announced));
    let wanted_title = title(shown_status, &event.summary);
    if wanted_title != incident.short_description {
        changes.short_description = Some(wanted_title);
    }

    if event.kind == EventKind::Raised && was_active {
        let pair = impact_urgency(event.priority, settings);
        if incident.impact != pair.impact.to_string() {
            changes.impact = Some(pair.impact.to_string());
        }
        if incident.urgency != pair.urgency.to_string() {
            changes.urgency = Some(pair.urgency.to_string());
        }
    }

    // Comments are kept even on a resolved incident (a post-mortem line is worth having);
    // other notes describe the alert's progress and would only confuse once it is over.
    let note_still_relevant = was_active || event.kind == EventKind::CommentAdded;
    if let Some(note) = work_note(event).filter(|_| note_still_relevant) {
        let memory = NoteMemory::read(&incident.correlation_display);
        let fingerprint = NoteFingerprint::of(&event_identity(event));
        if !memory.contains(&fingerprint) {
            changes.work_notes = Some(note);
            changes.correlation_display = Some(memory.remember(&fingerprint));
        }
    }

    if changes.is_empty() {
        Plan::Unchanged
    } else {
        Plan::Update {
            sys_id: incident.sys_id.clone(),
            changes,
        }
    }
}

/// The writes that retire `duplicate`, an incident that lost a creation race to `winner`:
/// Canceled, with a note naming the winner, and its correlation id moved aside so that
/// lookups no longer find it.
pub fn cancel_duplicate(duplicate: &Incident, winner: &Incident) -> IncidentChanges {
    IncidentChanges {
        state: Some(IncidentState::Canceled.code().to_owned()),
        correlation_id: Some(shorten(
            &format!(
                "{}:duplicate-of-{}",
                duplicate.correlation_id, winner.number
            ),
            CORRELATION_FIELD_MAX_CHARS,
        )),
        work_notes: Some(format!(
            "Canceled automatically: a duplicate of {winner}, opened by a concurrent delivery \
             of the same iLert alert. The alert's updates continue on {winner}.",
            winner = winner.number
        )),
        close_notes: Some(format!("Duplicate of {}.", winner.number)),
        ..IncidentChanges::default()
    }
}

/// How far along an alert or incident is; the order is the only thing that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    New,
    Working,
    Resolved,
}

fn status_progress(status: AlertStatus) -> Progress {
    match status {
        AlertStatus::Pending => Progress::New,
        AlertStatus::Accepted => Progress::Working,
        AlertStatus::Resolved => Progress::Resolved,
    }
}

/// On Hold and custom states count as work in progress: an accept does not move them, a
/// resolve does.
fn incident_progress(state: &IncidentState) -> Progress {
    match state {
        IncidentState::New => Progress::New,
        IncidentState::Resolved | IncidentState::Closed | IncidentState::Canceled => {
            Progress::Resolved
        }
        IncidentState::InProgress | IncidentState::OnHold | IncidentState::Other(_) => {
            Progress::Working
        }
    }
}

fn status_of(progress: Progress) -> AlertStatus {
    match progress {
        Progress::New => AlertStatus::Pending,
        Progress::Working => AlertStatus::Accepted,
        Progress::Resolved => AlertStatus::Resolved,
    }
}

fn state_for(status: AlertStatus) -> IncidentState {
    match status {
        AlertStatus::Pending => IncidentState::New,
        AlertStatus::Accepted => IncidentState::InProgress,
        AlertStatus::Resolved => IncidentState::Resolved,
    }
}

fn impact_urgency(priority: Option<Priority>, settings: &Settings) -> ImpactUrgency {
    match priority {
        Some(Priority::High) => settings.priority_high,
        Some(Priority::Low) | None => settings.priority_low,
    }
}

fn title(status: AlertStatus, summary: &str) -> String {
    let one_line = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    shorten(
        &format!("{} {one_line}", status.label()),
        SHORT_DESCRIPTION_MAX_CHARS,
    )
}

fn description(event: &AlertEvent) -> String {
    let mut text = String::new();
    if !event.details.trim().is_empty() {
        text.push_str(event.details.trim_end());
        text.push_str("\n\n");
    }
    let facts = [
        ("Alert source", event.alert_source.as_deref()),
        ("Alert key", event.alert_key.as_deref()),
        ("Priority", event.priority.map(Priority::label)),
        ("Reported", event.report_time.as_deref()),
        ("iLert alert id", Some(event.id.as_str())),
    ];
    for (label, value) in facts {
        if let Some(value) = value {
            text.push_str(&format!("{label}: {value}\n"));
        }
    }
    let links: Vec<String> = event
        .links
        .iter()
        .filter_map(|link| {
            let href = link.href.as_deref()?;
            Some(
                match link.text.as_deref().filter(|t| !t.trim().is_empty()) {
                    Some(text) => format!("- {text}: {href}"),
                    None => format!("- {href}"),
                },
            )
        })
        .collect();
    if !links.is_empty() {
        text.push_str("\nLinks:\n");
        text.push_str(&links.join("\n"));
        text.push('\n');
    }
    shorten(text.trim_end(), LONG_TEXT_MAX_CHARS)
}

/// One short note that says what happened in iLert and by whom; `None` for events that add
/// nothing a reader of the incident needs (creation is in the description).
fn work_note(event: &AlertEvent) -> Option<String> {
    let by = event
        .actor()
        .map(|name| format!(" by {name}"))
        .unwrap_or_default();
    let to = event
        .actor()
        .map(|name| format!(" to {name}"))
        .unwrap_or_default();
    let note = match &event.kind {
        EventKind::Created | EventKind::Other(_) => return None,
        EventKind::CommentAdded => format!("Comment in iLert: {}", event.comment.as_deref()?),
        EventKind::Acknowledged => format!("Accepted in iLert{by}."),
        EventKind::Resolved => format!("Resolved in iLert{by}."),
        EventKind::AutoResolved => "Resolved automatically in iLert.".to_owned(),
        EventKind::Assigned => format!("Assigned in iLert{to}."),
        EventKind::AutoEscalated => match &event.escalation_policy {
            Some(policy) => format!("Escalated in iLert{to} (escalation policy {policy})."),
            None => format!("Escalated in iLert{to}."),
        },
        EventKind::EscalationEnded => {
            "Escalation ended in iLert: every level was notified.".to_owned()
        }
        EventKind::Raised => format!(
            "Priority raised in iLert to {}.",
            event.priority.map_or("HIGH", Priority::label)
        ),
        EventKind::Rejected => format!("Rejected in iLert{by}."),
        EventKind::ResponderAdded => format!("Responder added in iLert{by}."),
        EventKind::ResponderRemoved => format!("Responder removed in iLert{by}."),
    };
    Some(shorten(&note, LONG_TEXT_MAX_CHARS))
}

fn close_notes(event: &AlertEvent) -> String {
    let when = event
        .resolved_on
        .as_deref()
        .or(event.timestamp.as_deref())
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    let line = match &event.kind {
        EventKind::AutoResolved => format!("Resolved automatically in iLert{when}."),
        _ => match event.actor() {
            Some(name) => format!("Resolved in iLert{when} (responder: {name})."),
            None => format!("Resolved in iLert{when}."),
        },
    };
    let resolve_comment = match event.kind {
        EventKind::Resolved | EventKind::AutoResolved => event.comment.as_deref(),
        _ => None,
    };
    match resolve_comment {
        Some(comment) => shorten(&format!("{comment}\n\n{line}"), LONG_TEXT_MAX_CHARS),
        None => line,
    }
}

/// What tells one iLert event from another: its `eventId`, or where an older integration sends
/// none, the fields that differ between two events of one alert.
fn event_identity(event: &AlertEvent) -> String {
    match &event.event_id {
        Some(event_id) => event_id.clone(),
        None => format!(
            "{:?}|{}|{}|{}",
            event.kind,
            event.timestamp.as_deref().unwrap_or_default(),
            event.comment.as_deref().unwrap_or_default(),
            event.actor().unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{sample, Person};

    fn settings() -> Settings {
        Settings::default()
    }

    /// Applies a write as ServiceNow stores it, to `incident` or to a new one.
    fn apply(incident: Option<&Incident>, changes: &IncidentChanges) -> Incident {
        let blank = Incident {
            sys_id: "a1".into(),
            number: "INC0010001".into(),
            state: IncidentState::New,
            short_description: String::new(),
            correlation_id: String::new(),
            correlation_display: String::new(),
            impact: "3".into(),
            urgency: "3".into(),
        };
        incident.unwrap_or(&blank).after(changes)
    }

    /// Runs events in order through `decide`, applying each plan, as the handler would.
    fn run(events: &[AlertEvent]) -> (Option<Incident>, Vec<Plan>) {
        let mut incident = None;
        let mut plans = Vec::new();
        for event in events {
            let plan = decide(event, incident.as_ref(), &settings());
            match &plan {
                Plan::Create(changes) | Plan::Update { changes, .. } => {
                    incident = Some(apply(incident.as_ref(), changes));
                }
                Plan::Ignore { .. } | Plan::Unchanged => {}
            }
            plans.push(plan);
        }
        (incident, plans)
    }

    fn created() -> AlertEvent {
        sample("01-alert-created")
    }
    fn acknowledged() -> AlertEvent {
        sample("02-alert-acknowledged")
    }
    fn commented() -> AlertEvent {
        sample("03-alert-comment-added")
    }
    fn resolved() -> AlertEvent {
        sample("04-alert-resolved")
    }

    fn incident_in(state: &str) -> Incident {
        Incident {
            state: IncidentState::from_code(state),
            short_description: "ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s".into(),
            correlation_id: "ilert:12797430".into(),
            correlation_display: "iLert".into(),
            ..apply(None, &IncidentChanges::default())
        }
    }

    fn changes_of(plan: Plan) -> IncidentChanges {
        match plan {
            Plan::Create(changes) | Plan::Update { changes, .. } => changes,
            other => panic!("expected a write, got {other:?}"),
        }
    }

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
            assert!(description.contains(expected), "{expected} missing in {description}");
        }
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
            changes.work_notes.as_deref(),
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
            changes.work_notes.as_deref(),
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
            accept.work_notes.as_deref(),
            Some("Accepted in iLert by Jane Doe.")
        );
        let comment = changes_of(plans[2].clone());
        assert_eq!(comment.state, None);
        assert_eq!(comment.short_description, None);
        assert_eq!(
            comment.work_notes.as_deref(),
            Some("Comment in iLert: Rolled back deploy 2025.10.17-3 (\"gw-cache\" flag); latency recovering.")
        );
        let resolve = changes_of(plans[3].clone());
        assert_eq!(resolve.state.as_deref(), Some("6"));
        assert_eq!(resolve.close_code.as_deref(), Some("Solution provided"));
        let close_notes = resolve.close_notes.unwrap();
        assert!(
            close_notes.starts_with("Root cause: cache flag in deploy 2025.10.17-3. Rolled back.")
        );
        assert!(close_notes
            .contains("Resolved in iLert at 2025-10-17T11:05:44.310Z (responder: Jane Doe)."));
        assert_eq!(
            resolve.work_notes.as_deref(),
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
        assert_eq!(plans[2], Plan::Unchanged, "a late accept after resolve");
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
            changes_of(decide(&assigned, Some(&incident), &settings()))
                .work_notes
                .as_deref(),
            Some("Assigned in iLert to Jane Doe.")
        );
        let mut escalated = acknowledged();
        escalated.kind = EventKind::AutoEscalated;
        escalated.event_id = Some("escalate-1".into());
        assert_eq!(
            changes_of(decide(&escalated, Some(&incident), &settings()))
                .work_notes
                .as_deref(),
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
            changes.work_notes.as_deref(),
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
            changes.work_notes.as_deref(),
            Some("Priority raised in iLert to HIGH.")
        );
        // Other events leave a priority the service desk may have changed alone.
        let comment = changes_of(decide(&commented(), Some(&incident), &settings()));
        assert_eq!((comment.impact, comment.urgency), (None, None));
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
    fn the_close_code_comes_from_the_settings() {
        let settings = Settings {
            close_code: "Solved (Permanently)".into(),
            ..Settings::default()
        };
        let changes = changes_of(decide(&resolved(), Some(&incident_in("2")), &settings));
        assert_eq!(changes.close_code.as_deref(), Some("Solved (Permanently)"));
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

    #[test]
    fn a_note_without_a_known_actor_says_what_happened() {
        let mut event = acknowledged();
        event.assigned_to = Some(Person::default());
        event.responders.clear();
        let changes = changes_of(decide(&event, Some(&incident_in("1")), &settings()));
        assert_eq!(changes.work_notes.as_deref(), Some("Accepted in iLert."));
    }
}
