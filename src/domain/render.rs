//! The texts an incident gets: its title, description, close notes and the work notes that
//! tell what happened in iLert, from the alert action's templates or the defaults.

use crate::domain::alert::{shorten, AlertEvent, AlertStatus, EventKind, Priority};
use crate::domain::incident::{IncidentChanges, NoteFingerprint};
use crate::domain::people::{Assignee, People};
use crate::domain::settings::{OnComment, OnOther, OnResolve, Settings};
use crate::domain::template::{Placeholder, Template};

/// ServiceNow's default length of `short_description`.
const SHORT_DESCRIPTION_MAX_CHARS: usize = 160;
/// ServiceNow's default length of `description`, also used to bound notes.
const LONG_TEXT_MAX_CHARS: usize = 4000;

/// The value of a template placeholder for this event.
fn placeholder(
    event: &AlertEvent,
    status: AlertStatus,
    settings: &Settings,
    name: &Placeholder,
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
        Placeholder::Label(key) => text(event.labels.get(key).map(String::as_str)),
        Placeholder::Custom(key) => text(event.custom_details.get(key).map(String::as_str)),
    }
}

/// A template rendered for this event, in the alert's status as the event carries it.
pub(crate) fn template_value(
    event: &AlertEvent,
    settings: &Settings,
    template: &Template,
) -> String {
    template.render(|name| placeholder(event, event.status, settings, name))
}

pub(crate) fn alert_url(event: &AlertEvent, settings: &Settings) -> Option<String> {
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
pub(crate) fn title(event: &AlertEvent, status: AlertStatus, settings: &Settings) -> String {
    let rendered = settings
        .short_description
        .render(|name| placeholder(event, status, settings, name));
    let one_line = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    shorten(&one_line, SHORT_DESCRIPTION_MAX_CHARS)
}

pub(crate) fn description(event: &AlertEvent, settings: &Settings) -> String {
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

/// A custom field's value (`field.<name>=<template>`), trimmed and cut to ServiceNow's
/// longest ordinary text.
pub(crate) fn custom_field(event: &AlertEvent, settings: &Settings, template: &Template) -> String {
    let rendered = template.render(|name| placeholder(event, event.status, settings, name));
    shorten(rendered.trim(), LONG_TEXT_MAX_CHARS)
}

/// A journal entry: internal work note or customer-visible comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    Work(String),
    Customer(String),
}

impl Note {
    /// The note with its fingerprint on a line of its own: the journal, which ServiceNow
    /// only ever appends to, then remembers which events were noted (see `NoteMemory`).
    pub(crate) fn marked(self, fingerprint: &NoteFingerprint) -> Self {
        let mark = |text: String| format!("{text}\n{}", fingerprint.marker());
        match self {
            Self::Work(text) => Self::Work(mark(text)),
            Self::Customer(text) => Self::Customer(mark(text)),
        }
    }

    pub(crate) fn write_into(self, changes: &mut IncidentChanges) {
        match self {
            Self::Work(text) => changes.work_notes = Some(text),
            Self::Customer(text) => changes.comments = Some(text),
        }
    }
}

/// One short note that says what happened in iLert and by whom, as the policies publish it;
/// `None` for events that add nothing a reader of the incident needs (creation is in the
/// description).
pub(crate) fn note(event: &AlertEvent, settings: &Settings, people: &People) -> Option<Note> {
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
                Assignee::Refused(cause) => {
                    format!("{accepted} Not assigned: ServiceNow refused it ({cause}).")
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

pub(crate) fn close_notes(event: &AlertEvent, settings: &Settings) -> String {
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

#[cfg(test)]
mod tests;
