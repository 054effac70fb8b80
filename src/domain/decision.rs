//! The decision: from an iLert event, the incident found for its alert (if any) and the
//! settings, what to write to ServiceNow. Pure: every business rule lives here and is tested
//! without I/O; the texts it writes are rendered beside it, in `render`.

use crate::domain::alert::{shorten, AlertEvent, AlertStatus, EventKind, Priority};
use crate::domain::incident::{
    CorrelationId, Incident, IncidentChanges, IncidentState, NoteFingerprint, NoteMemory,
    CORRELATION_DISPLAY, CORRELATION_FIELD_MAX_CHARS,
};
use crate::domain::people::{Assignee, Echo, People};
use crate::domain::render::{close_notes, custom_field, description, note, title};
use crate::domain::settings::{OnAccept, OnComment, OnOther, OnResolve, Settings};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// `now` is when the event is decided on: a resolved first event opens an incident only for
/// an alert reported recently enough (see `create_resolved_within_hours`).
pub fn decide(
    event: &AlertEvent,
    found: Option<&Incident>,
    settings: &Settings,
    people: &People,
    now: SystemTime,
) -> Plan {
    if let Some(reason) = ignored_by_policy(event, settings) {
        return Plan::Ignore { reason };
    }
    match found {
        None => decide_first_event(event, settings, people, now),
        Some(incident) if incident.state.is_final() => Plan::Unchanged,
        Some(incident) => decide_update(event, incident, settings, people),
    }
}

fn decide_first_event(
    event: &AlertEvent,
    settings: &Settings,
    people: &People,
    now: SystemTime,
) -> Plan {
    if event.status == AlertStatus::Resolved {
        let wanted = settings.create_on_resolved || reported_within(event, settings, now);
        if !wanted || settings.on_resolve == OnResolve::Ignore {
            return Plan::Ignore {
                reason: "the alert is already resolved, so no incident is opened for it",
            };
        }
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
    changes.custom = custom_fields(event, settings, settings.custom_fields.keys());
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
    let mut memory = NoteMemory::read("");
    if progress == Progress::Resolved {
        memory = memory.with_resolved_by_ilert();
    }
    changes.correlation_display = Some(memory.rendered());
    if let Some(note) = note(event, settings, people) {
        changes.correlation_display =
            Some(memory.remember(&NoteFingerprint::of(&event_identity(event))));
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
    let mut memory = NoteMemory::read(&incident.correlation_display);
    // An event saying the alert is open, on an incident iLert's resolve resolved, happened
    // before that resolve (iLert's alerts never open again) and comes late: delivered again,
    // or held in the queue while ServiceNow was away. It is applied as it would have been in
    // order, its state excepted, so that the order events arrive in does not change the end.
    let late = current == Progress::Resolved
        && memory.resolved_by_ilert()
        && event.status != AlertStatus::Resolved;
    let was_active = current < Progress::Resolved || late;
    let mut changes = IncidentChanges::default();

    // State only moves forward: a late or redelivered event never undoes a later one.
    if announced > current {
        changes.state = Some(state_of(announced).code().to_owned());
        if announced == Progress::Resolved {
            changes.close_code = Some(settings.close_code.clone());
            changes.close_notes = Some(close_notes(event, settings));
            memory = memory.with_resolved_by_ilert();
            changes.correlation_display = Some(memory.rendered());
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
        // An accept that may be the echo of the desk's own In Progress would hand the ticket
        // from the desk's assignee to the sync user: not done while it cannot be told apart.
        let maybe_echo = people.echo_of_back_sync == Echo::CannotTell
            && incident.state == IncidentState::InProgress;
        if was_active && incident.assigned_to != *sys_id && !maybe_echo {
            changes.assigned_to = Some(sys_id.clone());
        }
    }

    // Comments are kept even on a resolved incident (a post-mortem line is worth having);
    // other notes describe the alert's progress and would only confuse once it is over.
    let note_still_relevant = was_active || event.kind == EventKind::CommentAdded;
    if let Some(note) = note(event, settings, people).filter(|_| note_still_relevant) {
        let fingerprint = NoteFingerprint::of(&event_identity(event));
        if !NoteMemory::of(incident).contains(&fingerprint) {
            note.marked(&fingerprint).write_into(&mut changes);
            // Also in the integration's own field: the memory that still works where the
            // integration user may not read the journal.
            changes.correlation_display = Some(memory.remember(&fingerprint));
        }
    }

    // iLert's echo of the back-sync's own accept or resolve follows the desk's change, which
    // already put the incident there: it says nothing the desk does not know, and writes
    // nothing. An event naming the key's user that finds the incident behind it is no echo
    // (a person using that key, a resolve after the back-sync's accept): it is applied whole.
    if people.echo_of_back_sync == Echo::Yes && changes.state.is_none() {
        return Plan::Unchanged;
    }

    if changes.is_empty() {
        return Plan::Unchanged;
    }
    // Kept up to date by every write the event makes anyway; their own value is not read,
    // so a change of it alone writes nothing.
    changes.custom = custom_fields(event, settings, settings.update_fields.iter());
    Plan::Update {
        sys_id: incident.sys_id.clone(),
        changes,
    }
}

/// The named custom fields' values for this event; one that renders empty is left out
/// rather than written empty (an absent label must not clear what the field holds), and a
/// fixed setting of the same field (`assignment_group`) wins over its `field.<name>`.
fn custom_fields<'a>(
    event: &AlertEvent,
    settings: &Settings,
    names: impl Iterator<Item = &'a String>,
) -> std::collections::BTreeMap<String, String> {
    names
        .filter(|name| !settings.passthrough.iter().any(|(fixed, _)| fixed == name))
        .filter_map(|name| {
            let value = custom_field(event, settings, settings.custom_fields.get(name)?);
            (!value.is_empty()).then(|| (name.clone(), value))
        })
        .collect()
}

/// Whether the alert was reported within `create_resolved_within` of `now`. An alert whose
/// report time is unknown counts as recent: an extra resolved ticket is a smaller harm than
/// a flapping alert's create leaving an open one behind.
fn reported_within(event: &AlertEvent, settings: &Settings, now: SystemTime) -> bool {
    if settings.create_resolved_within.is_zero() {
        return false;
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    event.reported_at.is_none_or(|reported| {
        now_secs.saturating_sub(reported) <= settings.create_resolved_within.as_secs() as i64
    })
}

/// The writes that bring onto `winner` what concurrent creations of the alert's incident left
/// on `duplicates`: the furthest state, with the close fields and title that go with it, an
/// assignee when the winner has none, and a work note naming each duplicate (its own notes
/// cannot be read back to copy). Empty when the winner already shows everything.
pub fn merge_into(winner: &Incident, duplicates: &[&Incident]) -> IncidentChanges {
    let mut changes = IncidentChanges::default();
    let furthest = duplicates
        .iter()
        .copied()
        .max_by_key(|duplicate| incident_progress(&duplicate.state))
        .filter(|duplicate| incident_progress(&duplicate.state) > incident_progress(&winner.state));
    if let Some(ahead) = furthest {
        changes.state = Some(ahead.state.code().to_owned());
        changes.short_description = Some(ahead.short_description.clone());
        if incident_progress(&ahead.state) == Progress::Resolved {
            changes.close_code = Some(ahead.close_code.clone()).filter(|c| !c.is_empty());
            changes.close_notes = Some(ahead.close_notes.clone()).filter(|n| !n.is_empty());
        }
    }
    if winner.assigned_to.is_empty() {
        changes.assigned_to = duplicates
            .iter()
            .map(|duplicate| &duplicate.assigned_to)
            .find(|assignee| !assignee.is_empty())
            .cloned();
    }
    let mut display = winner.correlation_display.clone();
    // The duplicate's state comes with what it says of who resolved it.
    let resolved_by_ilert = furthest.is_some_and(|ahead| {
        incident_progress(&ahead.state) == Progress::Resolved
            && NoteMemory::read(&ahead.correlation_display).resolved_by_ilert()
    });
    if resolved_by_ilert && !NoteMemory::read(&display).resolved_by_ilert() {
        display = NoteMemory::read(&display)
            .with_resolved_by_ilert()
            .rendered();
        changes.correlation_display = Some(display.clone());
    }
    let mut named = Vec::new();
    for duplicate in duplicates {
        let memory = NoteMemory::read(&display);
        let fingerprint = NoteFingerprint::of(&format!("merged {}", duplicate.number));
        if !memory.contains(&fingerprint) {
            display = memory.remember(&fingerprint);
            named.push(duplicate.number.as_str());
        }
    }
    if !named.is_empty() {
        changes.work_notes = Some(format!(
            "Merged {} into this incident: opened by a concurrent delivery of the same iLert \
             alert, now canceled. Its state and close fields are carried here; its own work \
             notes stay on it.",
            named.join(", ")
        ));
        changes.correlation_display = Some(display);
    }
    changes
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
mod by_settings;
#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;
