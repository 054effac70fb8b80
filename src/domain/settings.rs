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

/// ServiceNow's longest column name.
const MAX_COLUMN_CHARS: usize = 80;

/// Fields the function writes itself, and the setting (or the reason) that governs each: a
/// `field.<name>` setting may not name them, or two settings would fight over one field.
const FIELDS_OF_THE_FUNCTION: [(&str, &str); 21] = [
    ("state", "on_accept and on_resolve decide it"),
    ("correlation_id", "it ties the incident to its alert"),
    ("correlation_display", "it remembers the notes written"),
    (
        "work_notes",
        "on_accept, on_resolve, on_comment and on_other decide them",
    ),
    ("comments", "on_comment decides them"),
    ("close_code", "use the setting close_code"),
    ("close_notes", "use the setting close_notes"),
    ("short_description", "use the setting short_description"),
    ("description", "use the setting description"),
    (
        "impact",
        "use the settings impact, priority_high and priority_low",
    ),
    (
        "urgency",
        "use the settings urgency, priority_high and priority_low",
    ),
    ("priority", "ServiceNow computes it from impact and urgency"),
    ("caller_id", "use the setting caller_id"),
    (
        "assigned_to",
        "use the settings assigned_to and assign_on_accept",
    ),
    ("number", "ServiceNow numbers incidents itself"),
    ("active", "ServiceNow derives it from the state"),
    (
        "incident_state",
        "ServiceNow keeps it with state, which on_accept and on_resolve decide",
    ),
    (
        "resolved_at",
        "ServiceNow sets it when the incident is resolved",
    ),
    (
        "resolved_by",
        "ServiceNow sets it when the incident is resolved",
    ),
    (
        "closed_at",
        "ServiceNow sets it when the incident is closed",
    ),
    (
        "closed_by",
        "ServiceNow sets it when the incident is closed",
    ),
];

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

// The settings of `target=event` (sources: `domain::event_record`'s).

/// Where an alert's events go: an incident (the default) or Event Management.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Incident,
    Event,
}

/// The settings of `target=event`: the record's identifying fields (templates, empty when
/// not set) and the severities of an open alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    pub node: Option<Template>,
    pub kind: Option<Template>,
    pub resource: Option<Template>,
    pub metric_name: Option<Template>,
    /// HIGH alerts: 2, Major.
    pub severity_high: Severity,
    /// LOW alerts: 4, Warning.
    pub severity_low: Severity,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            node: None,
            kind: None,
            resource: None,
            metric_name: None,
            severity_high: Severity(2),
            severity_low: Severity(4),
        }
    }
}

/// The settings' names, besides `target`.
pub const EVENT_SETTING_NAMES: [&str; 6] = [
    "event_node",
    "event_type",
    "event_resource",
    "event_metric_name",
    "event_severity_high",
    "event_severity_low",
];

impl EventSettings {
    /// Sets one of [`EVENT_SETTING_NAMES`]; `refuse` says what it accepts.
    pub(crate) fn set(
        &mut self,
        name: &str,
        text: &str,
        parse_template: impl Fn(&str) -> Result<Option<Template>, InvalidSetting>,
        refuse: impl Fn(&str) -> InvalidSetting,
    ) -> Result<(), InvalidSetting> {
        match name {
            "event_node" => self.node = parse_template(text)?,
            "event_type" => self.kind = parse_template(text)?,
            "event_resource" => self.resource = parse_template(text)?,
            "event_metric_name" => self.metric_name = parse_template(text)?,
            "event_severity_high" | "event_severity_low" => {
                let severity = Severity::open(text).ok_or_else(|| {
                    refuse(
                        "1 Critical, 2 Major, 3 Minor, 4 Warning or 5 OK (0, Clear, is what a \
                         resolve sends)",
                    )
                })?;
                if name == "event_severity_high" {
                    self.severity_high = severity;
                } else {
                    self.severity_low = severity;
                }
            }
            _ => unreachable!("only the names of EVENT_SETTING_NAMES are passed"),
        }
        Ok(())
    }
}

/// An event's severity [D1 L172]: 1 Critical to 5 OK for an open alert, 0 Clear to close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity(u8);

impl Severity {
    /// Closes the alert of the same key [D2 L99–104].
    pub const CLEAR: Self = Self(0);

    /// The number ServiceNow reads.
    pub(crate) fn code(self) -> u8 {
        self.0
    }

    /// A severity an open alert may have, `1` to `5`.
    fn open(text: &str) -> Option<Self> {
        match text.trim() {
            digit @ ("1" | "2" | "3" | "4" | "5") => digit.parse().ok().map(Self),
            _ => None,
        }
    }
}

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

/// The query's `name=value` pairs, percent-decoded (`+` is a space). A pair that does not
/// decode to UTF-8 is refused by name rather than read with replacement characters.
fn query_pairs(query: &str, source: Source) -> Result<Vec<(String, String)>, InvalidSetting> {
    let decode = |part: &str| {
        let spaced = part.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|text| text.into_owned())
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name).map_err(|_| {
                InvalidSetting(format!(
                    "a setting's name in {} is not UTF-8 once percent-decoded: {:?}",
                    source.place(),
                    crate::domain::alert::shorten(raw_name, 60)
                ))
            })?;
            let value = decode(raw_value).map_err(|_| {
                InvalidSetting(format!(
                    "{} is not UTF-8 once percent-decoded: {:?}; percent-encode text as UTF-8",
                    source.label(&name),
                    crate::domain::alert::shorten(raw_value, 60)
                ))
            })?;
            Ok((name, value))
        })
        .collect()
}

/// A connection's name: what `instance=<name>` in a webhook URL says, so plain: lowercase
/// letters, digits, `-` and `_`, at most 64 characters.
pub fn check_instance_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a usable instance name (lowercase letters, digits, `-` and `_`, at \
             most 64 characters, e.g. acme-prod)",
            name.chars().take(70).collect::<String>()
        ))
    }
}

/// A column a `field.<name>` setting may set: a ServiceNow column name the function does not
/// write itself. `Err` says why not.
fn check_column(column: &str) -> Result<(), String> {
    let well_formed = column.len() <= MAX_COLUMN_CHARS
        && column.starts_with(|c: char| c.is_ascii_lowercase())
        && column
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(format!(
            "{:?} is not a ServiceNow column name (a lowercase letter, then lowercase letters, \
             digits and `_`, at most {MAX_COLUMN_CHARS} characters, e.g. u_environment)",
            crate::domain::alert::shorten(column, 90)
        ));
    }
    if let Some((_, why)) = FIELDS_OF_THE_FUNCTION
        .iter()
        .find(|(own, _)| *own == column)
    {
        return Err(format!(
            "`{column}` is written by the function itself ({why})"
        ));
    }
    if column.starts_with("sys_") {
        return Err(format!(
            "`{column}` is a system field ServiceNow keeps itself"
        ));
    }
    Ok(())
}

const USER_FORMS: &str = "a sys_id (32 hex digits), an email, or a user's display name";
const PAIR_FORM: &str = "impact,urgency with each 1, 2 or 3 (e.g. `1,2`)";
const URL_FORM: &str =
    "an https URL of your iLert account (e.g. `https://acme.ilert.com`), optionally with {alert_id}";

fn parse_level(text: &str) -> Option<u8> {
    match text {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        _ => None,
    }
}

fn parse_pair(text: &str) -> Option<ImpactUrgency> {
    let (impact, urgency) = text.split_once(',')?;
    Some(ImpactUrgency {
        impact: parse_level(impact.trim())?,
        urgency: parse_level(urgency.trim())?,
    })
}

fn parse_flag(
    text: &str,
    refuse: &impl Fn(&str) -> InvalidSetting,
) -> Result<bool, InvalidSetting> {
    choose(text, &[("true", true), ("false", false)], refuse)
}

/// One of a fixed set of values; the refusal lists them ("state, note or ignore").
fn choose<T: Copy>(
    text: &str,
    choices: &[(&str, T)],
    refuse: &impl Fn(&str) -> InvalidSetting,
) -> Result<T, InvalidSetting> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let allowed = match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(refuse(&allowed))
}

fn parse_template(
    text: &str,
    refuse: &impl Fn(&str) -> InvalidSetting,
) -> Result<Option<Template>, InvalidSetting> {
    if text.is_empty() {
        return Ok(None);
    }
    Template::parse(text).map(Some).map_err(|problem| {
        refuse(&format!(
            "a template whose placeholders are known; it {problem}"
        ))
    })
}

fn parse_user(text: &str) -> Result<Option<UserRef>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(UserRef::SysId(text.to_ascii_lowercase())));
    }
    if text.contains('@') {
        return Email::parse(text)
            .map(|email| Some(UserRef::Email(email)))
            .ok_or(());
    }
    Ok(Some(UserRef::Name(text.to_owned())))
}

/// `https://acme.ilert.com` becomes `https://acme.ilert.com/alert/view?id={alert_id}`; a value
/// with `{alert_id}` in it is used as it is.
fn parse_alert_url(text: &str) -> Result<Option<String>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    let pattern = if text.contains("{alert_id}") {
        text.to_owned()
    } else {
        format!("{}/alert/view?id={{alert_id}}", text.trim_end_matches('/'))
    };
    let probe = reqwest::Url::parse(&pattern.replace("{alert_id}", "1")).map_err(|_| ())?;
    (probe.scheme() == "https" && probe.host_str().is_some())
        .then_some(Some(pattern))
        .ok_or(())
}

#[cfg(test)]
mod tests;
