//! The iLert alert event, parsed from the webhook body.
//!
//! iLert grows its body over time, so unknown fields are ignored; the fields we use are
//! checked strictly so that a malformed body is refused before anything reaches ServiceNow.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Longest alert id accepted: enough for any u64, short enough to keep the correlation id
/// well under ServiceNow's 100 characters.
const MAX_ALERT_ID_DIGITS: usize = 20;

/// An iLert alert id: 1 to 20 ASCII digits. Being digits only is what makes it safe to put
/// into an encoded query, where `^` or `=` would change the query's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertId(String);

impl AlertId {
    pub fn parse(raw: &str) -> Result<Self, InvalidEvent> {
        let is_digits = !raw.is_empty()
            && raw.len() <= MAX_ALERT_ID_DIGITS
            && raw.bytes().all(|b| b.is_ascii_digit());
        if is_digits {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidEvent::new(format!(
                "`id` must be 1 to {MAX_ALERT_ID_DIGITS} digits, got {:?}",
                shorten(raw, 40)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declared in the order of iLert's lifecycle, which only moves forward: PENDING → ACCEPTED →
/// RESOLVED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlertStatus {
    Pending,
    Accepted,
    Resolved,
}

impl AlertStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Resolved => "RESOLVED",
        }
    }

    /// `PENDING`, `ACCEPTED` or `RESOLVED`, as iLert writes it (any case).
    pub fn from_label(label: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Resolved]
            .into_iter()
            .find(|status| status.label().eq_ignore_ascii_case(label.trim()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    High,
    Low,
}

impl Priority {
    /// `HIGH` or `LOW`; any other value, one iLert may add later, counts as no priority.
    fn parse(text: &str) -> Option<Self> {
        match text {
            "HIGH" => Some(Self::High),
            "LOW" => Some(Self::Low),
            other => {
                tracing::warn!(
                    priority = %shorten(other, 40),
                    "unknown priority in the iLert event, handled as if there were none"
                );
                None
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::High => "HIGH",
            Self::Low => "LOW",
        }
    }
}

/// What happened in iLert. Legacy `incident-*` names map to their `alert-*` twins; names this
/// function does not know are kept as `Other` and handled by the alert's status alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Acknowledged,
    Resolved,
    AutoResolved,
    CommentAdded,
    Assigned,
    AutoEscalated,
    EscalationEnded,
    Raised,
    Rejected,
    ResponderAdded,
    ResponderRemoved,
    Other(String),
}

impl EventKind {
    /// The event's name as iLert spells it today (legacy names come out modern).
    pub fn name(&self) -> &str {
        match self {
            Self::Created => "alert-created",
            Self::Acknowledged => "alert-acknowledged",
            Self::Resolved => "alert-resolved",
            Self::AutoResolved => "alert-auto-resolved",
            Self::CommentAdded => "alert-comment-added",
            Self::Assigned => "alert-assigned",
            Self::AutoEscalated => "alert-auto-escalated",
            Self::EscalationEnded => "alert-escalation-ended",
            Self::Raised => "alert-raised",
            Self::Rejected => "alert-rejected",
            Self::ResponderAdded => "alert-responder-added",
            Self::ResponderRemoved => "alert-responder-removed",
            Self::Other(name) => name,
        }
    }

    pub fn from_event_type(event_type: &str) -> Self {
        let name = event_type
            .strip_prefix("incident-")
            .or_else(|| event_type.strip_prefix("alert-"))
            .unwrap_or(event_type);
        match name {
            "created" => Self::Created,
            "acknowledged" | "accepted" => Self::Acknowledged,
            "resolved" => Self::Resolved,
            "auto-resolved" => Self::AutoResolved,
            "comment-added" => Self::CommentAdded,
            "assigned" => Self::Assigned,
            "auto-escalated" | "escalated" => Self::AutoEscalated,
            "escalation-ended" => Self::EscalationEnded,
            "raised" => Self::Raised,
            "rejected" => Self::Rejected,
            "responder-added" => Self::ResponderAdded,
            "responder-removed" => Self::ResponderRemoved,
            _ => Self::Other(event_type.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// iLert's user id: a number in `responders[].user`, absent from `assignedTo`.
    #[serde(default, deserialize_with = "lenient_user_id")]
    pub id: Option<u64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

impl Person {
    /// The same iLert user: the same id, else the same email (ids are missing from
    /// `assignedTo`).
    pub fn is_same_user(&self, other: &Person) -> bool {
        if let (Some(a), Some(b)) = (self.id, other.id) {
            return a == b;
        }
        let email = |p: &Person| {
            p.email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_ascii_lowercase)
        };
        email(self).is_some_and(|mine| Some(mine) == email(other))
    }

    /// "Jane Doe", else the user name or email: whatever iLert sent that a reader recognises.
    pub fn display_name(&self) -> Option<String> {
        let full: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if !full.is_empty() {
            return Some(full.join(" "));
        }
        [&self.username, &self.email]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Responder {
    #[serde(default, deserialize_with = "object")]
    pub user: Option<Person>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Named {
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    pub href: Option<String>,
    pub text: Option<String>,
}

/// One alert event as iLert posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    pub id: AlertId,
    pub status: AlertStatus,
    pub kind: EventKind,
    pub summary: String,
    pub details: String,
    pub priority: Option<Priority>,
    pub report_time: Option<String>,
    /// `reportTime` in seconds since the epoch, when it reads as an RFC 3339 time.
    pub reported_at: Option<i64>,
    pub resolved_on: Option<String>,
    pub timestamp: Option<String>,
    pub event_id: Option<String>,
    pub alert_key: Option<String>,
    pub alert_source: Option<String>,
    pub escalation_policy: Option<String>,
    pub assigned_to: Option<Person>,
    pub responders: Vec<Responder>,
    pub comment: Option<String>,
    pub links: Vec<Link>,
    /// The alert's labels (`labels: {"team": "payments"}`), where iLert sends them, for
    /// `{label.<name>}` in templates.
    pub labels: BTreeMap<String, String>,
    /// The alert's custom details (`customDetails`), where iLert sends them, for
    /// `{custom.<name>}` in templates: strings as they are, other values as JSON.
    pub custom_details: BTreeMap<String, String>,
}

impl AlertEvent {
    /// Parses a webhook body. Every refusal says what is wrong, because iLert shows the answer
    /// in the alert's log to whoever set up the alert action.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidEvent> {
        // serde would read a struct from an array too; an iLert event is always an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(other) => InvalidEvent::new(format!(
                    "the body is {}, not a JSON object",
                    json_kind(&other)
                )),
                Err(error) => describe_json_error(error),
            });
        }
        let wire: WireEvent = serde_json::from_slice(body).map_err(describe_json_error)?;
        let id = match wire.id {
            None => return Err(InvalidEvent::new("`id` is missing")),
            Some(IdValue::Text(text)) => AlertId::parse(&text)?,
            Some(IdValue::Number(n)) => AlertId::parse(&n.to_string())?,
        };
        let status = wire
            .status
            .ok_or_else(|| InvalidEvent::new("`status` is missing"))?;
        let kind = wire
            .event_type
            .as_deref()
            .map_or(EventKind::Other(String::new()), EventKind::from_event_type);
        Ok(Self {
            summary: wire
                .summary
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("iLert alert {id}")),
            id,
            status,
            kind,
            details: wire.details.unwrap_or_default(),
            priority: wire.priority.as_deref().and_then(Priority::parse),
            reported_at: wire.report_time.as_deref().and_then(epoch_seconds),
            report_time: wire.report_time,
            resolved_on: wire.resolved_on,
            timestamp: wire.timestamp,
            event_id: wire.event_id,
            alert_key: wire.alert_key,
            alert_source: wire.alert_source.and_then(|s| s.name),
            escalation_policy: wire.escalation_policy.and_then(|p| p.name),
            assigned_to: wire.assigned_to,
            responders: wire.responders.unwrap_or_default(),
            comment: wire.comment.filter(|c| !c.trim().is_empty()),
            links: wire.links.unwrap_or_default(),
            labels: wire.labels,
            custom_details: wire.custom_details,
        })
    }

    /// Who acted on the alert, as far as the body tells: the assignee, else the responder who
    /// accepted it, else the only responder.
    pub fn actor(&self) -> Option<String> {
        self.acting_person().and_then(Person::display_name)
    }

    /// Whether `person` acted on the alert: it is the assignee or the responder who accepted
    /// it. How the echo of the function's own accept or resolve in iLert is recognised: iLert
    /// names the API key's user there.
    pub fn acted_by(&self, person: &Person) -> bool {
        let accepting = self
            .responders
            .iter()
            .filter(|r| r.status.as_deref() == Some("ACCEPTED"))
            .filter_map(|r| r.user.as_ref());
        self.assigned_to
            .iter()
            .chain(accepting)
            .any(|actor| actor.is_same_user(person))
    }

    /// The acting person's email, to find them in ServiceNow.
    pub fn actor_email(&self) -> Option<&str> {
        self.acting_person()
            .and_then(|person| person.email.as_deref())
            .map(str::trim)
            .filter(|email| !email.is_empty())
    }

    fn acting_person(&self) -> Option<&Person> {
        if let Some(person) = self
            .assigned_to
            .as_ref()
            .filter(|p| p.display_name().is_some())
        {
            return Some(person);
        }
        let with_user: Vec<&Responder> = self
            .responders
            .iter()
            .filter(|r| r.user.is_some())
            .collect();
        let accepted = with_user
            .iter()
            .find(|r| r.status.as_deref() == Some("ACCEPTED"));
        let chosen = accepted.or(if with_user.len() == 1 {
            with_user.first()
        } else {
            None
        });
        chosen.and_then(|r| r.user.as_ref())
    }
}

/// Why a body is not a usable iLert event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEvent(String);

impl InvalidEvent {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

fn describe_json_error(error: serde_json::Error) -> InvalidEvent {
    use serde_json::error::Category;
    let message = match error.classify() {
        Category::Eof if error.line() == 1 && error.column() == 0 => "the body is empty".to_owned(),
        Category::Syntax | Category::Eof => format!("the body is not valid JSON: {error}"),
        Category::Data => format!("the body is not an iLert alert event: {error}"),
        Category::Io => format!("the body could not be read: {error}"),
    };
    InvalidEvent::new(message)
}

/// An RFC 3339 time (`2025-10-17T10:41:12.345Z`) in seconds since the epoch.
pub(crate) fn epoch_seconds(text: &str) -> Option<i64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(text.trim(), Format::DateTimeWithOffset)
        .ok()
        .map(|time| time.secs())
}

/// Cuts `text` to at most `max_chars` characters, never inside a character.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => text[..byte_index].to_owned(),
        None => text.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    #[serde(default, deserialize_with = "id_value")]
    id: Option<IdValue>,
    status: Option<AlertStatus>,
    event_type: Option<String>,
    summary: Option<String>,
    details: Option<String>,
    /// Read as text: iLert may add priorities, and an unknown one must not cost the alert.
    priority: Option<String>,
    report_time: Option<String>,
    resolved_on: Option<String>,
    timestamp: Option<String>,
    event_id: Option<String>,
    alert_key: Option<String>,
    #[serde(default, deserialize_with = "object")]
    alert_source: Option<Named>,
    #[serde(default, deserialize_with = "object")]
    escalation_policy: Option<Named>,
    #[serde(default, deserialize_with = "object")]
    assigned_to: Option<Person>,
    #[serde(default, deserialize_with = "objects")]
    responders: Option<Vec<Responder>>,
    comment: Option<String>,
    #[serde(default, deserialize_with = "objects")]
    links: Option<Vec<Link>>,
    #[serde(default, deserialize_with = "texts_by_name")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "texts_by_name")]
    custom_details: BTreeMap<String, String>,
}

/// An object's members as text, for templates: a string as it is, any other value as JSON,
/// `null` left out. Anything but an object reads as none: these fields are only ever used
/// to fill a template, never to decide, so their shape never costs the alert.
fn texts_by_name<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let Some(serde_json::Value::Object(members)) = Option::<serde_json::Value>::deserialize(de)?
    else {
        return Ok(BTreeMap::new());
    };
    Ok(members
        .into_iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some((name, text)),
            other => Some((name, other.to_string())),
        })
        .collect())
}

/// serde reads a struct from a JSON array too (`["x"]` as `{name: "x"}`); an iLert object
/// field must be an object, or the body has the wrong shape.
fn object<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(de)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => from_object(value).map(Some),
    }
}

fn objects<'de, D, T>(de: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<Vec<serde_json::Value>>::deserialize(de)? {
        None => Ok(None),
        Some(values) => values
            .into_iter()
            .map(from_object)
            .collect::<Result<_, _>>()
            .map(Some),
    }
}

/// A user id as a number or a string of digits; anything else is no id (an id is only ever
/// used to recognise a user, never required).
fn lenient_user_id<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(de)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    })
}

fn from_object<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    value: serde_json::Value,
) -> Result<T, E> {
    if !value.is_object() {
        return Err(E::custom(format!(
            "invalid type: {}, expected an object",
            json_kind(&value)
        )));
    }
    T::deserialize(value).map_err(E::custom)
}

/// `id` is a string of digits in webhooks and an integer in iLert's REST API; anything else
/// (a float, a negative number, an object) gets a message naming the field.
fn id_value<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<IdValue>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(de)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(IdValue::Text(text))),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(Some(IdValue::Number(n))),
            None => Err(serde::de::Error::custom(format!(
                "`id` must be 1 to {MAX_ALERT_ID_DIGITS} digits, got {n}"
            ))),
        },
        Some(other) => Err(serde::de::Error::custom(format!(
            "`id` must be a string of digits or an integer, got {}",
            json_kind(&other)
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The bundled sample events, parsed, for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn sample(name: &str) -> AlertEvent {
    let envelope = match name {
        "01-alert-created" => include_str!("../../events/01-alert-created.json"),
        "02-alert-acknowledged" => include_str!("../../events/02-alert-acknowledged.json"),
        "03-alert-comment-added" => include_str!("../../events/03-alert-comment-added.json"),
        "04-alert-resolved" => include_str!("../../events/04-alert-resolved.json"),
        "06-legacy-docs-sample" => include_str!("../../events/06-legacy-docs-sample.json"),
        other => panic!("no sample named {other}"),
    };
    let envelope: serde_json::Value = serde_json::from_str(envelope).unwrap();
    AlertEvent::parse(envelope["body"].as_str().unwrap().as_bytes()).unwrap()
}

#[cfg(test)]
mod tests;
