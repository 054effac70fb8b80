//! How each alert source's incidents look and which updates reach ServiceNow.
//!
//! One deployment serves many alert sources, each with its own webhook URL: the URL's query
//! string (`…/webhook?assignment_group=Network&on_accept=note`) sets an alert action's
//! settings, over the deployment's defaults in `DEFAULT_SETTINGS`, a query string of the same
//! form. Parsed
//! once per request into a typed value; every refusal names the setting and what it accepts,
//! because iLert shows it in the alert's log to whoever set up the alert action.

use crate::domain::template::Template;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Impact and urgency, 1 (high) to 3 (low). ServiceNow computes `priority` from the pair, so
/// the pair is what this function writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpactUrgency {
    pub impact: u8,
    pub urgency: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAccept {
    /// In Progress, and a work note.
    State,
    /// A work note only.
    Note,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnResolve {
    /// Resolved, with close code and notes.
    Resolve,
    /// A work note only: the incident stays open for the service desk.
    Note,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnComment {
    WorkNote,
    /// A customer-visible comment (`comments`).
    Comment,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOther {
    WorkNote,
    Ignore,
}

/// Who a reference to a user means. An email is not a display value in ServiceNow: it is
/// resolved through `sys_user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    SysId(String),
    Email(Email),
    /// A display value (user name or full name) that the instance resolves itself.
    Name(String),
}

/// An email address checked to be safe in an encoded query: no `^`, `=`, spaces or control
/// characters can reach the `sys_user` lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let (local, domain) = raw.split_once('@')?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".!#$%&'*+-/?_`{|}~".contains(c);
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && raw.len() <= 100
            && local.chars().all(allowed)
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        valid.then(|| Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fields passed to ServiceNow as given (a sys_id or a display value), on creation.
pub const PASSTHROUGH_FIELDS: [&str; 10] = [
    "assignment_group",
    "assigned_to",
    "category",
    "subcategory",
    "cmdb_ci",
    "business_service",
    "service_offering",
    "contact_type",
    "location",
    "company",
];

/// What a custom field's setting starts with: `field.u_environment=production`.
pub const FIELD_PREFIX: &str = "field.";

/// At most this many `field.<name>` settings, as Kibana's ServiceNow connector allows.
pub const MAX_CUSTOM_FIELDS: usize = 20;

/// Every setting's name, as it appears in the webhook URL and in `DEFAULT_SETTINGS`, besides
/// `field.<name>`.
pub const SETTING_NAMES: [&str; 36] = [
    "instance",
    "target",
    "event_node",
    "event_type",
    "event_resource",
    "event_metric_name",
    "event_severity_high",
    "event_severity_low",
    "caller_id",
    "impact",
    "urgency",
    "priority_high",
    "priority_low",
    "assignment_group",
    "assigned_to",
    "category",
    "subcategory",
    "cmdb_ci",
    "business_service",
    "service_offering",
    "contact_type",
    "location",
    "company",
    "close_code",
    "close_notes",
    "assign_on_accept",
    "short_description",
    "description",
    "ilert_url",
    "on_accept",
    "on_resolve",
    "on_comment",
    "on_other",
    "create_on_resolved",
    "create_resolved_within_hours",
    "update_fields",
];

/// A year: older alerts are not worth a ticket when all they say is that they are resolved.
const MAX_WINDOW_HOURS: u32 = 8760;

/// The longest value a setting may have: long enough for any template, short enough that a
/// URL cannot smuggle a document in.
const MAX_VALUE_CHARS: usize = 2000;

mod event;
pub use event::{EventSettings, Severity, Target, EVENT_SETTING_NAMES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `instance=<name>`: which of the secret's ServiceNow connections the events go to;
    /// `None`: the secret's only one, or the one named `default`.
    pub instance: Option<String>,
    pub caller_id: Option<UserRef>,
    /// Fixed impact; `None` follows the alert's priority.
    pub impact: Option<u8>,
    /// Fixed urgency; `None` follows the alert's priority.
    pub urgency: Option<u8>,
    /// HIGH alerts: impact 2, urgency 1, which the default matrix makes priority 2 (High).
    pub priority_high: ImpactUrgency,
    /// LOW alerts: impact 3, urgency 2, priority 4 (Low).
    pub priority_low: ImpactUrgency,
    /// Passed-through fields with a value, in [`PASSTHROUGH_FIELDS`] order.
    pub passthrough: Vec<(&'static str, String)>,
    /// Values differ by release (Utah and later: `Solution provided`; earlier:
    /// `Solved (Permanently)`).
    pub close_code: String,
    /// `None`: the resolve comment, then who resolved it in iLert and when.
    pub close_notes: Option<Template>,
    pub assign_on_accept: bool,
    pub short_description: Template,
    /// `None`: details, then source, key, priority, report time, alert id, link and links.
    pub description: Option<Template>,
    /// The alert's page in iLert, with `{alert_id}` in it.
    pub alert_url: Option<String>,
    pub on_accept: OnAccept,
    pub on_resolve: OnResolve,
    pub on_comment: OnComment,
    pub on_other: OnOther,
    pub create_on_resolved: bool,
    /// A first event that is already resolved still opens a (resolved) incident when its
    /// alert was reported at most this long ago: a flapping alert's create, delivered at the
    /// same time or later, then lands on a resolved incident. Zero: never.
    pub create_resolved_within: Duration,
    /// `field.<name>=<template>`: any other column of the incident (an instance's own
    /// `u_environment`, say), set on creation; by column name.
    pub custom_fields: BTreeMap<String, Template>,
    /// `update_fields=<name>,…`: custom fields also written with every update the function
    /// makes (a change of their value alone writes nothing).
    pub update_fields: BTreeSet<String>,
    /// `target=incident|event`: an incident, or an event for Event Management.
    pub target: Target,
    /// `event_*`: what an Event Management record carries (`target=event`).
    pub event: EventSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            instance: None,
            caller_id: None,
            impact: None,
            urgency: None,
            priority_high: ImpactUrgency {
                impact: 2,
                urgency: 1,
            },
            priority_low: ImpactUrgency {
                impact: 3,
                urgency: 2,
            },
            passthrough: Vec::new(),
            close_code: "Solution provided".to_owned(),
            close_notes: None,
            assign_on_accept: false,
            short_description: Template::parse("{status} {summary}").expect("a valid template"),
            description: None,
            alert_url: None,
            on_accept: OnAccept::State,
            on_resolve: OnResolve::Resolve,
            on_comment: OnComment::WorkNote,
            on_other: OnOther::WorkNote,
            create_on_resolved: false,
            create_resolved_within: Duration::from_secs(24 * 3600),
            custom_fields: BTreeMap::new(),
            update_fields: BTreeSet::new(),
            target: Target::Incident,
            event: EventSettings::default(),
        }
    }
}

/// A setting that cannot be used; the message names it and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(String);

/// The environment variable holding the deployment's defaults: a query string, written and
/// read exactly as a webhook URL's.
pub const DEFAULT_SETTINGS: &str = "DEFAULT_SETTINGS";

/// Where a query of settings came from, for messages.
#[derive(Debug, Clone, Copy)]
enum Source {
    Url,
    Defaults,
}

impl Source {
    fn place(self) -> &'static str {
        match self {
            Self::Url => "the webhook URL",
            Self::Defaults => DEFAULT_SETTINGS,
        }
    }

    fn label(self, name: &str) -> String {
        format!("setting `{name}` in {}", self.place())
    }
}

impl Settings {
    /// The deployment's defaults: `DEFAULT_SETTINGS` (a query string, as in a webhook URL)
    /// over the built-in defaults. A `DEFAULT_<SETTING>` variable, the first release's way,
    /// is refused with where its value goes now rather than ignored; any other `DEFAULT_…`
    /// belongs to someone else and is left alone.
    pub fn from_environment(
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, InvalidSetting> {
        let mut defaults = None;
        for (variable, value) in variables {
            if variable == DEFAULT_SETTINGS {
                defaults = Some(value);
                continue;
            }
            let Some(name) = variable.strip_prefix("DEFAULT_") else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            let name = name.to_ascii_lowercase();
            // Another program's variable (`DEFAULT_REGION`, say) is none of ours.
            if !SETTING_NAMES.contains(&name.as_str()) {
                continue;
            }
            return Err(InvalidSetting(format!(
                "{variable} is not read: the deployment's defaults are one query string in \
                 {DEFAULT_SETTINGS}, like a webhook URL's (e.g. \
                 assignment_group=Network&contact_type=monitoring); put `{name}=…` into \
                 {DEFAULT_SETTINGS}"
            )));
        }
        let query = defaults.unwrap_or_default();
        // Pasted from a URL, it may keep its `?`.
        let query = query.trim().strip_prefix('?').unwrap_or(query.trim());
        Self::default().with(query, Source::Defaults)
    }

    /// One alert action's settings: its webhook URL's query string over these defaults.
    pub fn with_query(&self, query: &str) -> Result<Self, InvalidSetting> {
        self.with(query, Source::Url)
    }

    fn with(&self, query: &str, source: Source) -> Result<Self, InvalidSetting> {
        let mut settings = self.clone();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in query_pairs(query, source)? {
            if !SETTING_NAMES.contains(&name.as_str()) && !name.starts_with(FIELD_PREFIX) {
                return Err(InvalidSetting(format!(
                    "unknown setting `{name}` in {}; known settings: {}, and {FIELD_PREFIX}<column> \
                     for any other field of the incident",
                    source.place(),
                    SETTING_NAMES.join(", ")
                )));
            }
            if seen.contains(&name) {
                return Err(InvalidSetting(format!(
                    "setting `{name}` is given twice in {}",
                    source.place()
                )));
            }
            settings.set(&name, &value, source)?;
            seen.push(name);
        }
        if settings.custom_fields.len() > MAX_CUSTOM_FIELDS {
            return Err(InvalidSetting(format!(
                "{} custom fields are set ({}), at most {MAX_CUSTOM_FIELDS} are allowed; counting \
                 {DEFAULT_SETTINGS} and the webhook URL together",
                settings.custom_fields.len(),
                settings
                    .custom_fields
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(orphan) = settings
            .update_fields
            .iter()
            .find(|name| !settings.custom_fields.contains_key(*name))
        {
            return Err(InvalidSetting(format!(
                "setting `update_fields` names `{orphan}`, which no `{FIELD_PREFIX}{orphan}` \
                 sets (in {} or {DEFAULT_SETTINGS})",
                source.place()
            )));
        }
        Ok(settings)
    }

    fn set(&mut self, name: &str, value: &str, source: Source) -> Result<(), InvalidSetting> {
        let refuse = |accepts: &str| {
            InvalidSetting(format!(
                "{} must be {accepts}, got {:?}",
                source.label(name),
                crate::domain::alert::shorten(value, 60)
            ))
        };
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(refuse(&format!("at most {MAX_VALUE_CHARS} characters")));
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(refuse("text without control characters"));
        }
        let text = value.trim();
        let optional_text = || (!text.is_empty()).then(|| text.to_owned());
        if let Some(column) = name.strip_prefix(FIELD_PREFIX) {
            check_column(column).map_err(|why| {
                InvalidSetting(format!("{} cannot be used: {why}", source.label(name)))
            })?;
            match parse_template(text, &refuse)? {
                Some(template) => self.custom_fields.insert(column.to_owned(), template),
                // Empty: the deployment's default for this field is not wanted here.
                None => self.custom_fields.remove(column),
            };
            return Ok(());
        }
        match name {
            "instance" => {
                self.instance = match text {
                    "" => None,
                    name => Some(
                        check_instance_name(name)
                            .map(|()| name.to_owned())
                            .map_err(|why| {
                                refuse(&format!(
                                    "the name of one of the secret's instances ({why})"
                                ))
                            })?,
                    ),
                }
            }
            "target" => {
                self.target = choose(
                    text,
                    &[("incident", Target::Incident), ("event", Target::Event)],
                    &refuse,
                )?
            }
            name if EVENT_SETTING_NAMES.contains(&name) => {
                self.event
                    .set(name, text, |text| parse_template(text, &refuse), refuse)?
            }
            "caller_id" => self.caller_id = parse_user(text).map_err(|_| refuse(USER_FORMS))?,
            "impact" => self.impact = Some(parse_level(text).ok_or_else(|| refuse("1, 2 or 3"))?),
            "urgency" => self.urgency = Some(parse_level(text).ok_or_else(|| refuse("1, 2 or 3"))?),
            "priority_high" => {
                self.priority_high = parse_pair(text).ok_or_else(|| refuse(PAIR_FORM))?
            }
            "priority_low" => {
                self.priority_low = parse_pair(text).ok_or_else(|| refuse(PAIR_FORM))?
            }
            "close_code" => {
                self.close_code = optional_text().ok_or_else(|| refuse("a close code"))?
            }
            "close_notes" => self.close_notes = parse_template(text, &refuse)?,
            "description" => self.description = parse_template(text, &refuse)?,
            "short_description" => {
                self.short_description = parse_template(text, &refuse)?
                    .ok_or_else(|| refuse("a template such as `{status} {summary}`"))?
            }
            "assign_on_accept" => self.assign_on_accept = parse_flag(text, &refuse)?,
            "create_on_resolved" => self.create_on_resolved = parse_flag(text, &refuse)?,
            "create_resolved_within_hours" => {
                self.create_resolved_within = text
                    .parse::<u32>()
                    .ok()
                    .filter(|hours| *hours <= MAX_WINDOW_HOURS)
                    .map(|hours| Duration::from_secs(u64::from(hours) * 3600))
                    .ok_or_else(|| {
                        refuse(&format!("a whole number of hours, 0 to {MAX_WINDOW_HOURS}"))
                    })?
            }
            "ilert_url" => self.alert_url = parse_alert_url(text).map_err(|_| refuse(URL_FORM))?,
            "update_fields" => {
                self.update_fields = text
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(|name| check_column(name).map(|()| name.to_owned()))
                    .collect::<Result<_, _>>()
                    .map_err(|why| {
                        refuse(&format!("a comma-separated list of custom fields ({why})"))
                    })?
            }
            "on_accept" => {
                self.on_accept = choose(
                    text,
                    &[
                        ("state", OnAccept::State),
                        ("note", OnAccept::Note),
                        ("ignore", OnAccept::Ignore),
                    ],
                    &refuse,
                )?
            }
            "on_resolve" => {
                self.on_resolve = choose(
                    text,
                    &[
                        ("resolve", OnResolve::Resolve),
                        ("note", OnResolve::Note),
                        ("ignore", OnResolve::Ignore),
                    ],
                    &refuse,
                )?
            }
            "on_comment" => {
                self.on_comment = choose(
                    text,
                    &[
                        ("work_note", OnComment::WorkNote),
                        ("comment", OnComment::Comment),
                        ("ignore", OnComment::Ignore),
                    ],
                    &refuse,
                )?
            }
            "on_other" => {
                self.on_other = choose(
                    text,
                    &[
                        ("work_note", OnOther::WorkNote),
                        ("ignore", OnOther::Ignore),
                    ],
                    &refuse,
                )?
            }
            field => {
                let field = PASSTHROUGH_FIELDS
                    .iter()
                    .find(|known| **known == field)
                    .expect("every setting name is handled");
                self.passthrough.retain(|(name, _)| name != field);
                if let Some(value) = optional_text() {
                    self.passthrough.push((field, value));
                    self.passthrough.sort_by_key(|(name, _)| {
                        PASSTHROUGH_FIELDS.iter().position(|known| known == name)
                    });
                }
            }
        }
        Ok(())
    }

    /// The impact and urgency a new incident gets for `high` (else low) priority.
    pub fn impact_urgency(&self, high: bool) -> ImpactUrgency {
        let follows = if high {
            self.priority_high
        } else {
            self.priority_low
        };
        ImpactUrgency {
            impact: self.impact.unwrap_or(follows.impact),
            urgency: self.urgency.unwrap_or(follows.urgency),
        }
    }

    /// Whether impact and urgency are both fixed, so a priority change has nothing to write.
    pub fn priority_is_fixed(&self) -> bool {
        self.impact.is_some() && self.urgency.is_some()
    }
}

/// The instance a webhook URL's query names (`instance=<name>`), read before the rest: the
/// connection it names holds the credentials the caller is checked against. `None` when the
/// URL does not give one (or the query cannot be read: the full reading then says why);
/// `Some("")` when it gives an empty one, which clears the deployment's default, as it does
/// in the settings.
pub fn instance_in(query: &str) -> Option<String> {
    query_pairs(query, Source::Url)
        .ok()?
        .into_iter()
        .find(|(name, _)| name == "instance")
        .map(|(_, value)| value.trim().to_owned())
}

mod values;
pub use values::check_instance_name;
use values::{
    check_column, choose, parse_alert_url, parse_flag, parse_level, parse_pair, parse_template,
    parse_user, query_pairs, PAIR_FORM, URL_FORM, USER_FORMS,
};

#[cfg(test)]
mod tests;
