//! The ServiceNow incident as this function sees it: what a lookup returns and what a write
//! sends. No I/O here.

use crate::domain::alert::AlertId;
use serde::Serialize;
use std::collections::BTreeMap;

/// ServiceNow's default length of `correlation_id` and `correlation_display`.
pub const CORRELATION_FIELD_MAX_CHARS: usize = 100;

/// The key that ties an incident to its iLert alert: `ilert:<alert id>`. Built only from a
/// validated [`AlertId`], so it never carries query syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub fn for_alert(id: &AlertId) -> Self {
        Self(format!("{PREFIX}{id}"))
    }

    /// A key no alert has (alert ids are digits), for `check` to see whether the instance
    /// honours a lookup by key: it must find nothing.
    pub fn no_alert() -> Self {
        Self("ilert:check-no-such-alert".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The alert of an incident whose `correlation_id` is exactly `ilert:<digits>`: one this
    /// function opened and still carries the alert. A merged duplicate's moved-aside key
    /// (`ilert:<id>:duplicate-of-INC…`) or anyone else's key is none.
    pub fn alert_of(correlation_id: &str) -> Option<AlertId> {
        AlertId::parse(correlation_id.strip_prefix(PREFIX)?).ok()
    }
}

/// What every key this function writes starts with.
pub const PREFIX: &str = "ilert:";

/// Incident states as ServiceNow numbers them. Custom states an instance adds are kept as
/// `Other` and treated like work in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IncidentState {
    /// What an incident is until a write says otherwise.
    #[default]
    New,
    InProgress,
    OnHold,
    Resolved,
    Closed,
    Canceled,
    Other(String),
}

impl IncidentState {
    pub fn from_code(code: &str) -> Self {
        match code.trim() {
            "1" => Self::New,
            "2" => Self::InProgress,
            "3" => Self::OnHold,
            "6" => Self::Resolved,
            "7" => Self::Closed,
            "8" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }

    /// How far along the lifecycle: New, then In Progress or On Hold, then Resolved, then
    /// Closed or Canceled. `None` for an instance's own states.
    fn progress(&self) -> Option<u8> {
        match self {
            Self::New => Some(0),
            Self::InProgress | Self::OnHold => Some(1),
            Self::Resolved => Some(2),
            Self::Closed | Self::Canceled => Some(3),
            Self::Other(_) => None,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Self::New => "1",
            Self::InProgress => "2",
            Self::OnHold => "3",
            Self::Resolved => "6",
            Self::Closed => "7",
            Self::Canceled => "8",
            Self::Other(code) => code,
        }
    }

    /// Closed and Canceled incidents are read-only in practice; they are never written.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Closed | Self::Canceled)
    }
}

/// An incident found by correlation id, with only the fields the decision needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incident {
    pub sys_id: String,
    pub number: String,
    pub state: IncidentState,
    pub short_description: String,
    pub correlation_id: String,
    pub correlation_display: String,
    pub impact: String,
    pub urgency: String,
    pub assigned_to: String,
    /// Read so that a duplicate's resolution can be carried to the incident that stays.
    pub close_code: String,
    pub close_notes: String,
    /// Who changed it last (`sys_updated_by`), for the back-sync's log line.
    pub updated_by: String,
    /// Who created it (`sys_created_by`): only the integration user's own incidents speak for
    /// an alert on the way back.
    pub created_by: String,
    /// Its work notes and comments as the lookup's display value shows them (every entry,
    /// newest first, with its header); empty where they were not asked for or may not be
    /// read.
    pub journal: String,
    /// Custom fields (`field.<name>` settings) as a write's answer showed them; a field the
    /// answer left out is absent.
    pub custom: BTreeMap<String, String>,
}

impl Incident {
    /// The incident a create of `changes` makes, as a lookup would read it before the
    /// instance gives it its number: what a batch's later events are decided against.
    pub fn created_by(changes: &IncidentChanges) -> Self {
        Self::default().after(changes)
    }

    /// The incident as a lookup would read it after `changes` were written: journal fields are
    /// appended elsewhere and read back empty; every other field is replaced.
    pub fn after(&self, changes: &IncidentChanges) -> Self {
        let mut next = self.clone();
        let replace = |field: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                field.clone_from(value);
            }
        };
        replace(&mut next.short_description, &changes.short_description);
        replace(&mut next.correlation_id, &changes.correlation_id);
        replace(&mut next.correlation_display, &changes.correlation_display);
        replace(&mut next.impact, &changes.impact);
        replace(&mut next.urgency, &changes.urgency);
        replace(&mut next.assigned_to, &changes.assigned_to);
        replace(&mut next.close_code, &changes.close_code);
        replace(&mut next.close_notes, &changes.close_notes);
        if let Some(state) = &changes.state {
            next.state = IncidentState::from_code(state);
        }
        next.custom.extend(changes.custom.clone());
        next
    }

    /// The fields a lookup asks for (`sysparm_fields`): nothing more travels.
    pub const LOOKUP_FIELDS: &'static [&'static str] = &[
        "sys_id",
        "number",
        "state",
        "short_description",
        "correlation_id",
        "correlation_display",
        "impact",
        "urgency",
        "assigned_to",
        "close_code",
        "close_notes",
        "sys_updated_by",
        "sys_created_by",
        "work_notes",
        "comments",
    ];
}

/// The fields one write sets. `None` is left as it is on the incident. Values are strings,
/// as ServiceNow itself stores and returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_notes: Option<String>,
    /// Customer-visible journal entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// Fields set as an alert action's settings give them (assignment group, category, …).
    #[serde(flatten)]
    pub passthrough: BTreeMap<String, String>,
    /// The instance's own fields, from `field.<name>` settings, rendered.
    #[serde(flatten)]
    pub custom: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_display: Option<String>,
}

impl IncidentChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// This write and then `later`, as one write: `later`'s values win, and the journal
    /// entries of both are kept, in order, in one entry each (a write appends one entry per
    /// journal field).
    pub fn then(mut self, later: IncidentChanges) -> Self {
        let take = |field: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *field = value;
            }
        };
        let append = |field: &mut Option<String>, value: Option<String>| {
            *field = match (field.take(), value) {
                (Some(first), Some(second)) => Some(format!("{first}\n\n{second}")),
                (first, second) => first.or(second),
            };
        };
        take(&mut self.short_description, later.short_description);
        take(&mut self.description, later.description);
        take(&mut self.state, later.state);
        take(&mut self.impact, later.impact);
        take(&mut self.urgency, later.urgency);
        take(&mut self.close_code, later.close_code);
        take(&mut self.close_notes, later.close_notes);
        append(&mut self.work_notes, later.work_notes);
        append(&mut self.comments, later.comments);
        take(&mut self.caller_id, later.caller_id);
        take(&mut self.assigned_to, later.assigned_to);
        self.passthrough.extend(later.passthrough);
        self.custom.extend(later.custom);
        take(&mut self.correlation_id, later.correlation_id);
        take(&mut self.correlation_display, later.correlation_display);
        self
    }

    /// The fields this write set that `written` (ServiceNow's answer) does not show. A field
    /// ACL or business rule can drop a field and still answer 200; a dropped `state` would
    /// leave the ticket open, a dropped `correlation_id` would make the next event create a
    /// duplicate, a dropped `correlation_display` would forget which notes were written and
    /// the notes already written (every redelivery noted again).
    pub fn not_applied_in(&self, written: &Incident) -> Vec<&'static str> {
        // A state further along than the one written was set by the instance (see
        // `state_set_by_instance`), not dropped.
        let state = self
            .state
            .as_deref()
            .filter(|_| self.state_set_by_instance(written).is_none());
        let checks = [
            ("state", state, written.state.code()),
            (
                "correlation_id",
                self.correlation_id.as_deref(),
                written.correlation_id.as_str(),
            ),
            (
                "correlation_display",
                self.correlation_display.as_deref(),
                written.correlation_display.as_str(),
            ),
        ];
        checks
            .into_iter()
            .filter(|(_, wanted, got)| wanted.is_some_and(|wanted| wanted != *got))
            .map(|(field, _, _)| field)
            .collect()
    }

    /// The state ServiceNow itself set inside this write: the answer shows a state further
    /// along than the one written (an assignment rule that moves a New incident to In Progress
    /// once `assigned_to` is filled, a flow on insert). It is neither the function's doing nor a
    /// person's, so the way back must never act on it. Only a write that set a state can tell:
    /// the instance's rules run inside the write, so nobody else's change can show in its
    /// answer as a different state; a write of no state could show a desk change committed
    /// between the lookup and the write, and take a person's work for the instance's.
    pub fn state_set_by_instance(&self, written: &Incident) -> Option<IncidentState> {
        let wanted = IncidentState::from_code(self.state.as_deref()?);
        let further = matches!(
            (wanted.progress(), written.state.progress()),
            (Some(wanted), Some(got)) if got > wanted
        );
        further.then(|| written.state.clone())
    }

    /// The custom fields this write set that `written` does not show: left out of the answer
    /// (the incident has no such column, or the user may not read it), or empty (the user may
    /// not write it, or a business rule cleared it). Only presence is checked: a reference or
    /// choice field reads back as the value ServiceNow stored, which need not be the text
    /// written, and a long text comes back cut to the column's length.
    pub fn custom_not_applied_in(&self, written: &Incident) -> Vec<(String, CustomFieldLoss)> {
        self.custom
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .filter_map(|(name, _)| {
                let loss = match written.custom.get(name) {
                    None => CustomFieldLoss::NotShown,
                    Some(value) if value.trim().is_empty() => CustomFieldLoss::Empty,
                    Some(_) => return None,
                };
                Some((name.clone(), loss))
            })
            .collect()
    }
}

/// How a custom field written did not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomFieldLoss {
    /// The answer does not have the field at all.
    NotShown,
    /// The answer shows it empty.
    Empty,
}

/// What `correlation_display` starts with on every incident this function creates.
pub const CORRELATION_DISPLAY: &str = "iLert";

/// Work notes are journal entries: ServiceNow appends them and reads them back empty, so a
/// redelivered event would add its note twice. The incident remembers the last few notes it
/// was given as short fingerprints in `correlation_display` ("iLert #1a2b3c #4d5e6f"), the
/// integration's own field, which reads back like any other string. It also remembers a state
/// the instance set by itself inside one of the function's writes ("iLert @2 #1a2b3c"), which
/// the way back must never take for a person's, and that iLert's resolve resolved it
/// ("iLert !r #1a2b3c"), so that an event of the alert that comes later but happened before
/// is still applied as it would have been in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteMemory {
    notes: Vec<String>,
    /// `@<state code>`: states the instance set inside the function's own writes.
    instance_states: Vec<String>,
    /// `!r`: the function resolved the incident because iLert resolved the alert.
    resolved_by_ilert: bool,
}

/// The token of [`NoteMemory::resolved_by_ilert`].
const RESOLVED_BY_ILERT: &str = "!r";

impl NoteMemory {
    /// What the incident remembers: the fingerprints in `correlation_display`, and those
    /// marked in its journal, which concurrent writers can only add to, never erase.
    pub fn of(incident: &Incident) -> Self {
        let mut memory = Self::read(&incident.correlation_display);
        for marked in NoteFingerprint::marked_in(&incident.journal) {
            if !memory.notes.contains(&marked.0) {
                memory.notes.push(marked.0);
            }
        }
        memory
    }

    pub fn read(correlation_display: &str) -> Self {
        let tokens = |mark: char| {
            correlation_display
                .split_whitespace()
                .filter(|token| token.starts_with(mark))
                .map(str::to_owned)
                .collect()
        };
        Self {
            notes: tokens('#'),
            instance_states: tokens('@'),
            resolved_by_ilert: correlation_display
                .split_whitespace()
                .any(|token| token == RESOLVED_BY_ILERT),
        }
    }

    /// Whether the function resolved the incident on iLert's word: the alert is resolved,
    /// and iLert's alerts never open again, so an event saying it is open happened before.
    pub fn resolved_by_ilert(&self) -> bool {
        self.resolved_by_ilert
    }

    /// The same memory, also remembering that iLert's resolve resolved the incident.
    pub fn with_resolved_by_ilert(mut self) -> Self {
        self.resolved_by_ilert = true;
        self
    }

    /// The field's value for this memory as it stands.
    pub fn rendered(&self) -> String {
        self.render(self.notes.iter().map(String::as_str).collect())
    }

    pub fn contains(&self, fingerprint: &NoteFingerprint) -> bool {
        self.notes.contains(&fingerprint.0)
    }

    /// Whether the instance, not a person, set `state` inside one of the function's writes.
    pub fn set_by_instance(&self, state: &IncidentState) -> bool {
        self.instance_states
            .iter()
            .any(|token| token[1..] == *state.code())
    }

    /// The field's new value with `fingerprint` added, forgetting the oldest notes when the
    /// field would grow past ServiceNow's 100 characters.
    pub fn remember(&self, fingerprint: &NoteFingerprint) -> String {
        let mut notes: Vec<&str> = self.notes.iter().map(String::as_str).collect();
        notes.push(&fingerprint.0);
        self.render(notes)
    }

    /// The field's new value remembering that the instance set `state` by itself.
    pub fn remember_set_by_instance(&self, state: &IncidentState) -> String {
        let mut copy = self.clone();
        let token = format!("@{}", state.code());
        if !copy.instance_states.contains(&token) {
            copy.instance_states.push(token);
        }
        copy.render(self.notes.iter().map(String::as_str).collect())
    }

    /// `iLert`, the instance's states and iLert's resolve, then the notes, the oldest notes
    /// forgotten first.
    fn render(&self, mut notes: Vec<&str>) -> String {
        let render = |notes: &[&str]| {
            std::iter::once(CORRELATION_DISPLAY)
                .chain(self.instance_states.iter().map(String::as_str))
                .chain(self.resolved_by_ilert.then_some(RESOLVED_BY_ILERT))
                .chain(notes.iter().copied())
                .collect::<Vec<_>>()
                .join(" ")
        };
        while render(&notes).chars().count() > CORRELATION_FIELD_MAX_CHARS && !notes.is_empty() {
            notes.remove(0);
        }
        render(&notes)
    }
}

/// Six hex digits of an FNV-1a hash of what identifies one iLert event. FNV rather than the
/// standard hasher because the value must stay the same across builds and releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteFingerprint(String);

/// How a note's fingerprint is marked in its text: `[iLert #1a2b3c]`.
const MARKER_OPEN: &str = "[iLert #";

impl NoteFingerprint {
    /// The line a note carries so that the journal says it was written.
    pub fn marker(&self) -> String {
        format!("[iLert {}]", self.0)
    }

    /// Every fingerprint marked in `journal` text.
    pub fn marked_in(journal: &str) -> Vec<Self> {
        journal
            .match_indices(MARKER_OPEN)
            .filter_map(|(at, _)| {
                let hex = journal.get(at + MARKER_OPEN.len()..at + MARKER_OPEN.len() + 6)?;
                let closed = journal[at + MARKER_OPEN.len() + 6..].starts_with(']');
                (closed && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| Self(format!("#{hex}")))
            })
            .collect()
    }

    pub fn of(identity: &str) -> Self {
        let hash = identity.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        Self(format!("#{:06x}", hash & 0x00ff_ffff))
    }
}

#[cfg(test)]
mod tests;
