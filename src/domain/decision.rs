//! The decision: from an iLert event, the incident found for its alert (if any) and the
//! settings, what to write to ServiceNow. Pure: every business rule lives here and is tested
//! without I/O.

use crate::domain::alert::{shorten, AlertEvent, AlertStatus, EventKind, Priority};
use crate::domain::incident::{
    CorrelationId, Incident, IncidentChanges, IncidentState, NoteFingerprint, NoteMemory,
    CORRELATION_DISPLAY, CORRELATION_FIELD_MAX_CHARS,
};
use crate::domain::settings::{OnAccept, OnComment, OnOther, OnResolve, Placeholder, Settings};

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

/// Users looked up in ServiceNow before deciding, so that deciding needs no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// `caller_id` for a new incident (a sys_id or display value), when one is known.
    pub caller: Option<String>,
    /// With `assign_on_accept`: who accepted the alert, as ServiceNow knows them.
    pub assignee: Assignee,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Assignee {
    /// Not looked up: no accept, or `assign_on_accept` is off.
    #[default]
    NotWanted,
    Found(String),
    /// The responder's email matched no ServiceNow user.
    UnknownEmail(String),
    /// iLert did not say who accepted, or gave no email.
    NoEmail,
}

/// Why a policy ignores this event before anything is looked up (answered `ignored` with no
/// ServiceNow request), or `None`.
pub fn ignored_by_policy(event: &AlertEvent, settings: &Settings) -> Option<&'static str> {
    match event.kind {
        EventKind::Acknowledged if settings.on_accept == OnAccept::Ignore => {
            Some("accepts are not published for this alert source (on_accept=ignore)")
        }
        EventKind::Resolved | EventKind::AutoResolved
            if settings.on_resolve == OnResolve::Ignore =>
        {
            Some("resolves are not published for this alert source (on_resolve=ignore)")
        }
        EventKind::CommentAdded if settings.on_comment == OnComment::Ignore => {
            Some("comments are not published for this alert source (on_comment=ignore)")
        }
        EventKind::Raised
            if settings.on_other == OnOther::Ignore && settings.priority_is_fixed() =>
        {
            Some("priority changes are not published for this alert source (on_other=ignore)")
        }
        EventKind::Assigned
        | EventKind::AutoEscalated
        | EventKind::EscalationEnded
        | EventKind::Rejected
        | EventKind::ResponderAdded
        | EventKind::ResponderRemoved
            if settings.on_other == OnOther::Ignore =>
        {
            Some("this kind of update is not published for this alert source (on_other=ignore)")
        }
        _ => None,
    }
}

/// Whether deciding on this event needs the accepting responder looked up.
pub fn wants_assignee(event: &AlertEvent, settings: &Settings) -> bool {
    settings.assign_on_accept
        && event.kind == EventKind::Acknowledged
        && settings.on_accept != OnAccept::Ignore
}

pub fn decide(
    event: &AlertEvent,
    found: Option<&Incident>,
    settings: &Settings,
    people: &People,
) -> Plan {
    if let Some(reason) = ignored_by_policy(event, settings) {
        return Plan::Ignore { reason };
    }
    match found {
        None => decide_first_event(event, settings, people),
        Some(incident) if incident.state.is_final() => Plan::Unchanged,
        Some(incident) => decide_update(event, incident, settings, people),
    }
}

fn decide_first_event(event: &AlertEvent, settings: &Settings, people: &People) -> Plan {
    if event.status == AlertStatus::Resolved
        && (!settings.create_on_resolved || settings.on_resolve == OnResolve::Ignore)
    {
        return Plan::Ignore {
            reason: "the alert is already resolved, so no incident is opened for it",
        };
    }
    let progress = target_progress(event.status, settings).unwrap_or(Progress::New);
    let pair = settings.impact_urgency(event.priority == Some(Priority::High));
    let mut changes = IncidentChanges {
        short_description: Some(title(event, status_of(progress), settings)),
        description: Some(description(event, settings)),
        state: Some(state_of(progress).code().to_owned()),
        impact: Some(pair.impact.to_string()),
        urgency: Some(pair.urgency.to_string()),
        correlation_id: Some(CorrelationId::for_alert(&event.id).as_str().to_owned()),
        correlation_display: Some(CORRELATION_DISPLAY.to_owned()),
        caller_id: people.caller.clone(),
        ..IncidentChanges::default()
    };
    for (field, value) in &settings.passthrough {
        if *field == "assigned_to" {
            changes.assigned_to = Some(value.clone());
        } else {
            changes
                .passthrough
                .insert((*field).to_owned(), value.clone());
        }
    }
    if progress == Progress::Resolved {
        changes.close_code = Some(settings.close_code.clone());
        changes.close_notes = Some(close_notes(event, settings));
    }
    if let Assignee::Found(sys_id) = &people.assignee {
        changes.assigned_to = Some(sys_id.clone());
    }
    if let Some(note) = note(event, settings, people) {
        changes.correlation_display =
            Some(NoteMemory::read("").remember(&NoteFingerprint::of(&event_identity(event))));
        note.write_into(&mut changes);
    }
    Plan::Create(changes)
}

fn decide_update(
    event: &AlertEvent,
    incident: &Incident,
    settings: &Settings,
    people: &People,
) -> Plan {
    let current = incident_progress(&incident.state);
    let announced = target_progress(event.status, settings).unwrap_or(current);
    let was_active = current < Progress::Resolved;
    let mut changes = IncidentChanges::default();

    // State only moves forward: a late or redelivered event never undoes a later one.
    if announced > current {
        changes.state = Some(state_of(announced).code().to_owned());
        if announced == Progress::Resolved {
            changes.close_code = Some(settings.close_code.clone());
            changes.close_notes = Some(close_notes(event, settings));
        }
    }

    let wanted_title = title(event, status_of(current.max(announced)), settings);
    if wanted_title != incident.short_description {
        changes.short_description = Some(wanted_title);
    }

    if event.kind == EventKind::Raised && was_active {
        let pair = settings.impact_urgency(event.priority != Some(Priority::Low));
        if settings.impact.is_none() && incident.impact != pair.impact.to_string() {
            changes.impact = Some(pair.impact.to_string());
        }
        if settings.urgency.is_none() && incident.urgency != pair.urgency.to_string() {
            changes.urgency = Some(pair.urgency.to_string());
        }
    }

    if let Assignee::Found(sys_id) = &people.assignee {
        if was_active && incident.assigned_to != *sys_id {
            changes.assigned_to = Some(sys_id.clone());
        }
    }

    // Comments are kept even on a resolved incident (a post-mortem line is worth having);
    // other notes describe the alert's progress and would only confuse once it is over.
    let note_still_relevant = was_active || event.kind == EventKind::CommentAdded;
    if let Some(note) = note(event, settings, people).filter(|_| note_still_relevant) {
        let memory = NoteMemory::read(&incident.correlation_display);
        let fingerprint = NoteFingerprint::of(&event_identity(event));
        if !memory.contains(&fingerprint) {
            note.write_into(&mut changes);
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

/// Where the alert's status takes the incident, as far as the policies publish it; `None`
/// when the policy keeps the incident where it is.
fn target_progress(status: AlertStatus, settings: &Settings) -> Option<Progress> {
    match status {
        AlertStatus::Pending => Some(Progress::New),
        AlertStatus::Accepted => {
            (settings.on_accept == OnAccept::State).then_some(Progress::Working)
        }
        AlertStatus::Resolved => {
            (settings.on_resolve == OnResolve::Resolve).then_some(Progress::Resolved)
        }
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

fn state_of(progress: Progress) -> IncidentState {
    match progress {
        Progress::New => IncidentState::New,
        Progress::Working => IncidentState::InProgress,
        Progress::Resolved => IncidentState::Resolved,
    }
}

/// The value of a template placeholder for this event.
fn placeholder(
    event: &AlertEvent,
    status: AlertStatus,
    settings: &Settings,
    name: Placeholder,
) -> String {
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    match name {
        Placeholder::Status => status.label().to_owned(),
        Placeholder::Summary => event.summary.clone(),
        Placeholder::Details => event.details.clone(),
        Placeholder::Priority => text(event.priority.map(Priority::label)),
        Placeholder::AlertSource => text(event.alert_source.as_deref()),
        Placeholder::AlertKey => text(event.alert_key.as_deref()),
        Placeholder::ReportTime => text(event.report_time.as_deref()),
        Placeholder::AlertId => event.id.to_string(),
        Placeholder::AlertUrl => alert_url(event, settings).unwrap_or_default(),
        Placeholder::Links => links(event).join("\n"),
        Placeholder::Comment => text(event.comment.as_deref()),
        Placeholder::Actor => event.actor().unwrap_or_default(),
    }
}

fn alert_url(event: &AlertEvent, settings: &Settings) -> Option<String> {
    settings
        .alert_url
        .as_ref()
        .map(|pattern| pattern.replace("{alert_id}", event.id.as_str()))
}

fn links(event: &AlertEvent) -> Vec<String> {
    event
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
        .collect()
}

/// One line, cut to ServiceNow's length: `{status} {summary}` unless the settings say otherwise.
fn title(event: &AlertEvent, status: AlertStatus, settings: &Settings) -> String {
    let rendered = settings
        .short_description
        .render(|name| placeholder(event, status, settings, name));
    let one_line = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    shorten(&one_line, SHORT_DESCRIPTION_MAX_CHARS)
}

fn description(event: &AlertEvent, settings: &Settings) -> String {
    if let Some(template) = &settings.description {
        let rendered = template.render(|name| placeholder(event, event.status, settings, name));
        return shorten(rendered.trim_end(), LONG_TEXT_MAX_CHARS);
    }
    let mut text = String::new();
    if !event.details.trim().is_empty() {
        text.push_str(event.details.trim_end());
        text.push_str("\n\n");
    }
    let url = alert_url(event, settings);
    let facts = [
        ("Alert source", event.alert_source.as_deref()),
        ("Alert key", event.alert_key.as_deref()),
        ("Priority", event.priority.map(Priority::label)),
        ("Reported", event.report_time.as_deref()),
        ("iLert alert id", Some(event.id.as_str())),
        ("iLert alert", url.as_deref()),
    ];
    for (label, value) in facts {
        if let Some(value) = value {
            text.push_str(&format!("{label}: {value}\n"));
        }
    }
    let links = links(event);
    if !links.is_empty() {
        text.push_str("\nLinks:\n");
        text.push_str(&links.join("\n"));
        text.push('\n');
    }
    shorten(text.trim_end(), LONG_TEXT_MAX_CHARS)
}

/// A journal entry: internal work note or customer-visible comment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Note {
    Work(String),
    Customer(String),
}

impl Note {
    fn write_into(self, changes: &mut IncidentChanges) {
        match self {
            Self::Work(text) => changes.work_notes = Some(text),
            Self::Customer(text) => changes.comments = Some(text),
        }
    }
}

/// One short note that says what happened in iLert and by whom, as the policies publish it;
/// `None` for events that add nothing a reader of the incident needs (creation is in the
/// description).
fn note(event: &AlertEvent, settings: &Settings, people: &People) -> Option<Note> {
    let actor = event.actor();
    let by = actor
        .as_ref()
        .map(|name| format!(" by {name}"))
        .unwrap_or_default();
    let to = actor
        .as_ref()
        .map(|name| format!(" to {name}"))
        .unwrap_or_default();
    let other = |text: String| (settings.on_other == OnOther::WorkNote).then_some(text);
    let text = match &event.kind {
        EventKind::Created | EventKind::Other(_) => None,
        EventKind::CommentAdded => {
            let text = format!("Comment in iLert: {}", event.comment.as_deref()?);
            return match settings.on_comment {
                OnComment::WorkNote => Some(Note::Work(shorten(&text, LONG_TEXT_MAX_CHARS))),
                OnComment::Comment => Some(Note::Customer(shorten(&text, LONG_TEXT_MAX_CHARS))),
                OnComment::Ignore => None,
            };
        }
        EventKind::Acknowledged => {
            let accepted = format!("Accepted in iLert{by}.");
            Some(match &people.assignee {
                Assignee::UnknownEmail(email) => format!(
                    "{accepted} Not assigned: no active ServiceNow user has the email {email}."
                ),
                Assignee::NoEmail => {
                    format!("{accepted} Not assigned: iLert did not say who accepted, by email.")
                }
                Assignee::NotWanted | Assignee::Found(_) => accepted,
            })
        }
        EventKind::Resolved | EventKind::AutoResolved => {
            let how = if event.kind == EventKind::AutoResolved {
                " automatically".to_owned()
            } else {
                by
            };
            Some(match settings.on_resolve {
                OnResolve::Note => format!(
                    "Resolved in iLert{how}{}. The incident stays open for the service desk.",
                    resolved_at(event)
                        .map(|t| format!(" at {t}"))
                        .unwrap_or_default()
                ),
                OnResolve::Resolve | OnResolve::Ignore => format!("Resolved in iLert{how}."),
            })
        }
        EventKind::Assigned => other(format!("Assigned in iLert{to}.")),
        EventKind::AutoEscalated => other(match &event.escalation_policy {
            Some(policy) => format!("Escalated in iLert{to} (escalation policy {policy})."),
            None => format!("Escalated in iLert{to}."),
        }),
        EventKind::EscalationEnded => {
            other("Escalation ended in iLert: every level was notified.".to_owned())
        }
        EventKind::Raised => other(format!(
            "Priority raised in iLert to {}.",
            event.priority.map_or("HIGH", Priority::label)
        )),
        EventKind::Rejected => other(format!("Rejected in iLert{by}.")),
        EventKind::ResponderAdded => other(format!("Responder added in iLert{by}.")),
        EventKind::ResponderRemoved => other(format!("Responder removed in iLert{by}.")),
    };
    text.map(|text| Note::Work(shorten(&text, LONG_TEXT_MAX_CHARS)))
}

fn resolved_at(event: &AlertEvent) -> Option<&str> {
    event.resolved_on.as_deref().or(event.timestamp.as_deref())
}

fn close_notes(event: &AlertEvent, settings: &Settings) -> String {
    if let Some(template) = &settings.close_notes {
        let rendered =
            template.render(|name| placeholder(event, AlertStatus::Resolved, settings, name));
        return shorten(rendered.trim(), LONG_TEXT_MAX_CHARS);
    }
    let when = resolved_at(event)
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
    use crate::domain::alert::{sample, Person};

    fn settings() -> Settings {
        Settings::default()
    }

    /// The decision when no user had to be looked up.
    fn decide(event: &AlertEvent, found: Option<&Incident>, settings: &Settings) -> Plan {
        super::decide(event, found, settings, &People::default())
    }

    fn with(query: &str) -> Settings {
        Settings::default().with_query(query).unwrap()
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
            assigned_to: String::new(),
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

    // ── Settings and policies ────────────────────────────────────────────────────────────

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
            note.work_notes.as_deref(),
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
            changes.work_notes.as_deref(),
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
        let settings = with(
            "assignment_group=Network&category=Software&cmdb_ci=api-gw&contact_type=monitoring",
        );
        let people = People {
            caller: Some("caller-sys-id".into()),
            ..People::default()
        };
        let create = match super::decide(&created(), None, &settings, &people) {
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
        ));
        assert_eq!(changes.assigned_to.as_deref(), Some("jane-sys-id"));
        let incident = apply(Some(&open), &changes);
        assert_eq!(
            super::decide(&acknowledged(), Some(&incident), &settings, &found),
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
        ));
        assert_eq!(changes.assigned_to, None);
        assert!(changes
            .work_notes
            .unwrap()
            .contains("no active ServiceNow user has the email jane.doe@example.com"));
    }

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
}
