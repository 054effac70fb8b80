//! Events, incidents and helpers the domain's unit tests share.

use crate::domain::alert::{sample, AlertEvent};
use crate::domain::decision::Plan;
use crate::domain::incident::{Incident, IncidentChanges, IncidentState};
use crate::domain::people::People;
use crate::domain::settings::Settings;

pub(crate) fn settings() -> Settings {
    Settings::default()
}

/// The decision when no user had to be looked up.
pub(crate) fn decide(event: &AlertEvent, found: Option<&Incident>, settings: &Settings) -> Plan {
    crate::domain::decision::decide(
        event,
        found,
        settings,
        &People::default(),
        std::time::SystemTime::now(),
    )
}

pub(crate) fn with(query: &str) -> Settings {
    Settings::default().with_query(query).unwrap()
}

/// Applies a write as ServiceNow stores it, to `incident` or to a new one.
pub(crate) fn apply(incident: Option<&Incident>, changes: &IncidentChanges) -> Incident {
    let blank = Incident {
        sys_id: "a1".into(),
        number: "INC0010001".into(),
        state: IncidentState::New,
        short_description: String::new(),
        correlation_id: String::new(),
        correlation_display: String::new(),
        impact: "3".into(),
        urgency: "3".into(),
        assigned_to: String::new(),
        close_code: String::new(),
        close_notes: String::new(),
        updated_by: String::new(),
        created_by: String::new(),
        journal: String::new(),
        custom: Default::default(),
    };
    incident.unwrap_or(&blank).after(changes)
}

/// Runs events in order through `decide`, applying each plan, as the handler would.
pub(crate) fn run(events: &[AlertEvent]) -> (Option<Incident>, Vec<Plan>) {
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

pub(crate) fn created() -> AlertEvent {
    sample("01-alert-created")
}
pub(crate) fn acknowledged() -> AlertEvent {
    sample("02-alert-acknowledged")
}
pub(crate) fn commented() -> AlertEvent {
    sample("03-alert-comment-added")
}
pub(crate) fn resolved() -> AlertEvent {
    sample("04-alert-resolved")
}

pub(crate) fn incident_in(state: &str) -> Incident {
    Incident {
        state: IncidentState::from_code(state),
        short_description: "ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s".into(),
        correlation_id: "ilert:12797430".into(),
        correlation_display: "iLert".into(),
        ..apply(None, &IncidentChanges::default())
    }
}

pub(crate) fn changes_of(plan: Plan) -> IncidentChanges {
    match plan {
        Plan::Create(changes) | Plan::Update { changes, .. } => changes,
        other => panic!("expected a write, got {other:?}"),
    }
}

/// A note's text without the fingerprint line that marks it in the journal.
pub fn unmarked(note: Option<&str>) -> Option<&str> {
    note.map(|text| match text.rsplit_once('\n') {
        Some((body, last)) if last.starts_with("[iLert #") => body,
        _ => text,
    })
}
