//! How each alert source's incidents look and which updates reach ServiceNow.
//!
//! One deployment serves many alert sources, each with its own webhook URL: the URL's query
//! string (`…/webhook?assignment_group=Network&on_accept=note`) sets an alert action's
//! settings, over the deployment's defaults in `DEFAULT_<NAME>` environment variables. Parsed
//! once per request into a typed value; every refusal names the setting and what it accepts,
//! because iLert shows it in the alert's log to whoever set up the alert action.

use std::fmt;

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

/// The values a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Status,
    Summary,
    Details,
    Priority,
    AlertSource,
    AlertKey,
    ReportTime,
    AlertId,
    AlertUrl,
    Links,
    Comment,
    Actor,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 12] = [
        ("status", Self::Status),
        ("summary", Self::Summary),
        ("details", Self::Details),
        ("priority", Self::Priority),
        ("alert_source", Self::AlertSource),
        ("alert_key", Self::AlertKey),
        ("report_time", Self::ReportTime),
        ("alert_id", Self::AlertId),
        ("alert_url", Self::AlertUrl),
        ("links", Self::Links),
        ("comment", Self::Comment),
        ("actor", Self::Actor),
    ];

    fn names() -> String {
        Self::ALL
            .iter()
            .map(|(name, _)| format!("{{{name}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Text with `{placeholder}`s; `{{` and `}}` stand for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

impl Template {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let placeholder = Placeholder::ALL
                        .iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, p)| *p)
                        .ok_or_else(|| {
                            format!(
                                "has an unknown placeholder {{{name}}}; known: {}",
                                Placeholder::names()
                            )
                        })?;
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    segments.push(Segment::Value(placeholder));
                }
                '}' => return Err("has a `}` without its `{` (write `}}` for a brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Self(segments))
    }

    pub fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Value(placeholder) => value(*placeholder),
            })
            .collect()
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

/// Every setting's name, as it appears in the webhook URL (and, upper-cased with `DEFAULT_`,
/// in the environment).
pub const SETTING_NAMES: [&str; 26] = [
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
];

/// The longest value a setting may have: long enough for any template, short enough that a
/// URL cannot smuggle a document in.
const MAX_VALUE_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
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
        }
    }
}

/// A setting that cannot be used; the message names it and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(String);

/// Where a setting came from, for messages.
#[derive(Debug, Clone, Copy)]
enum Source {
    Url,
    Environment,
}

impl Source {
    fn label(self, name: &str) -> String {
        match self {
            Self::Url => format!("setting `{name}` in the webhook URL"),
            Self::Environment => format!("DEFAULT_{}", name.to_ascii_uppercase()),
        }
    }
}

impl Settings {
    /// The deployment's defaults: `DEFAULT_<NAME>` variables over the built-in defaults. A
    /// `DEFAULT_` variable that names no setting is refused: it is almost always a typo.
    pub fn from_environment(
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, InvalidSetting> {
        let mut settings = Self::default();
        for (variable, value) in variables {
            let Some(name) = variable.strip_prefix("DEFAULT_") else {
                continue;
            };
            // The template passes every default, unset ones as empty strings.
            if value.trim().is_empty() {
                continue;
            }
            let name = name.to_ascii_lowercase();
            if !SETTING_NAMES.contains(&name.as_str()) {
                return Err(InvalidSetting(format!(
                    "{variable} is not a setting; known: DEFAULT_ with {}",
                    SETTING_NAMES.join(", ")
                )));
            }
            settings.set(&name, &value, Source::Environment)?;
        }
        Ok(settings)
    }

    /// One alert action's settings: its webhook URL's query string over these defaults.
    pub fn with_query(&self, query: &str) -> Result<Self, InvalidSetting> {
        let mut settings = self.clone();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if !SETTING_NAMES.contains(&name.as_ref()) {
                return Err(InvalidSetting(format!(
                    "unknown setting `{name}` in the webhook URL; known settings: {}",
                    SETTING_NAMES.join(", ")
                )));
            }
            if seen.iter().any(|s| *s == name) {
                return Err(InvalidSetting(format!(
                    "setting `{name}` is given twice in the webhook URL"
                )));
            }
            seen.push(name.to_string());
            settings.set(&name, &value, Source::Url)?;
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
        match name {
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
            "ilert_url" => self.alert_url = parse_alert_url(text).map_err(|_| refuse(URL_FORM))?,
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
mod tests {
    use super::*;

    fn query(q: &str) -> Result<Settings, String> {
        Settings::default().with_query(q).map_err(|e| e.to_string())
    }

    #[test]
    fn without_settings_the_core_behaviour_holds() {
        let settings = query("").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.on_accept, OnAccept::State);
        assert_eq!(settings.on_resolve, OnResolve::Resolve);
        assert_eq!(settings.on_comment, OnComment::WorkNote);
        assert_eq!(settings.on_other, OnOther::WorkNote);
        assert_eq!(settings.close_code, "Solution provided");
        assert!(!settings.create_on_resolved && !settings.assign_on_accept);
        assert_eq!(
            settings.impact_urgency(true),
            ImpactUrgency {
                impact: 2,
                urgency: 1
            }
        );
        assert_eq!(
            settings.impact_urgency(false),
            ImpactUrgency {
                impact: 3,
                urgency: 2
            }
        );
    }

    #[test]
    fn every_policy_value_is_read() {
        let s = query("on_accept=note&on_resolve=note&on_comment=comment&on_other=ignore").unwrap();
        assert_eq!(
            (s.on_accept, s.on_resolve, s.on_comment, s.on_other),
            (
                OnAccept::Note,
                OnResolve::Note,
                OnComment::Comment,
                OnOther::Ignore
            )
        );
        let s = query("on_accept=ignore&on_resolve=ignore&on_comment=ignore&on_other=work_note")
            .unwrap();
        assert_eq!(
            (s.on_accept, s.on_resolve, s.on_comment, s.on_other),
            (
                OnAccept::Ignore,
                OnResolve::Ignore,
                OnComment::Ignore,
                OnOther::WorkNote
            )
        );
        let s = query("on_accept=state&on_resolve=resolve&on_comment=work_note").unwrap();
        assert_eq!(
            (s.on_accept, s.on_resolve, s.on_comment),
            (OnAccept::State, OnResolve::Resolve, OnComment::WorkNote)
        );
        assert!(query("create_on_resolved=true&assign_on_accept=true")
            .map(|s| s.create_on_resolved && s.assign_on_accept)
            .unwrap());
    }

    #[test]
    fn fixed_impact_and_urgency_win_over_the_priority_mapping() {
        let s = query("impact=1&priority_low=3,3&priority_high=1,2").unwrap();
        assert_eq!(
            s.impact_urgency(false),
            ImpactUrgency {
                impact: 1,
                urgency: 3
            }
        );
        assert_eq!(
            s.impact_urgency(true),
            ImpactUrgency {
                impact: 1,
                urgency: 2
            }
        );
        assert!(!s.priority_is_fixed());
        assert!(query("impact=3&urgency=3").unwrap().priority_is_fixed());
    }

    #[test]
    fn passthrough_fields_are_kept_as_given_and_an_empty_value_clears_a_default() {
        let defaults = Settings::default()
            .with_query("assignment_group=Network&category=Software")
            .unwrap();
        let s = defaults
            .with_query("cmdb_ci=api-gateway%20prod&assignment_group=")
            .unwrap();
        assert_eq!(
            s.passthrough,
            [
                ("category", "Software".to_owned()),
                ("cmdb_ci", "api-gateway prod".to_owned())
            ]
        );
        let all: String = PASSTHROUGH_FIELDS
            .iter()
            .map(|f| format!("{f}=x&"))
            .collect();
        assert_eq!(
            query(all.trim_end_matches('&')).unwrap().passthrough.len(),
            10
        );
    }

    #[test]
    fn caller_id_is_a_sys_id_an_email_or_a_name() {
        let id = "0123456789ABCDEF0123456789abcdef";
        assert_eq!(
            query(&format!("caller_id={id}")).unwrap().caller_id,
            Some(UserRef::SysId(id.to_ascii_lowercase()))
        );
        assert_eq!(
            query("caller_id=Jane.Doe%40Example.com").unwrap().caller_id,
            Some(UserRef::Email(
                Email::parse("jane.doe@example.com").unwrap()
            ))
        );
        assert_eq!(
            query("caller_id=Jane%20Doe").unwrap().caller_id,
            Some(UserRef::Name("Jane Doe".into()))
        );
    }

    #[test]
    fn an_email_that_could_change_a_query_is_refused() {
        for email in [
            "a^ORactive=false@x.com",
            "a@x.com^ORx=1",
            "a=b@x.com",
            "a b@x.com",
            "@x.com",
            "a@x",
            "a@.com",
        ] {
            assert_eq!(Email::parse(email), None, "{email}");
        }
        let message = query("caller_id=a%5EORactive%3Dfalse%40x.com").unwrap_err();
        assert!(
            message.contains("`caller_id`") && message.contains("email"),
            "{message}"
        );
    }

    #[test]
    fn templates_know_their_placeholders_and_escape_braces() {
        let s = query("short_description=%5B{priority}%5D%20{summary}%20{{x}}").unwrap();
        let rendered = s.short_description.render(|p| match p {
            Placeholder::Priority => "HIGH".into(),
            Placeholder::Summary => "disk full".into(),
            _ => "?".into(),
        });
        assert_eq!(rendered, "[HIGH] disk full {x}");
        let message = query("description={detail}").unwrap_err();
        assert!(
            message.contains("{detail}") && message.contains("{details}"),
            "{message}"
        );
        assert!(query("close_notes=closed%20}").is_err());
        assert!(query("short_description=").is_err());
        assert_eq!(query("description=").unwrap().description, None);
    }

    #[test]
    fn the_ilert_url_becomes_an_alert_link() {
        let s = query("ilert_url=https://acme.ilert.com/").unwrap();
        assert_eq!(
            s.alert_url.as_deref(),
            Some("https://acme.ilert.com/alert/view?id={alert_id}")
        );
        let s = query("ilert_url=https://acme.ilert.com/alerts/{alert_id}").unwrap();
        assert_eq!(
            s.alert_url.as_deref(),
            Some("https://acme.ilert.com/alerts/{alert_id}")
        );
        assert!(query("ilert_url=http://acme.ilert.com").is_err());
        assert!(query("ilert_url=acme").is_err());
    }

    #[test]
    fn every_invalid_value_names_the_setting_and_what_it_accepts() {
        for (q, expected) in [
            (
                "impact=0",
                "`impact` in the webhook URL must be 1, 2 or 3, got \"0\"",
            ),
            (
                "urgency=high",
                "`urgency` in the webhook URL must be 1, 2 or 3",
            ),
            ("priority_high=1", "impact,urgency"),
            ("priority_low=1,4", "impact,urgency"),
            ("on_accept=progress", "state, note or ignore"),
            ("on_resolve=close", "resolve, note or ignore"),
            ("on_comment=note", "work_note, comment or ignore"),
            ("on_other=note", "work_note or ignore"),
            ("create_on_resolved=yes", "true or false"),
            ("assign_on_accept=1", "true or false"),
            ("close_code=", "a close code"),
            ("caller_id=x%40", "an email"),
            ("short_description={nope}", "unknown placeholder {nope}"),
            ("ilert_url=ftp://x", "https URL"),
            ("category=a%00b", "without control characters"),
        ] {
            let message = query(q).unwrap_err();
            assert!(message.contains(expected), "{q}: {message}");
        }
        let long = format!("description={}", "x".repeat(2001));
        assert!(query(&long).unwrap_err().contains("at most 2000"));
    }

    #[test]
    fn unknown_and_repeated_names_are_refused() {
        let message = query("impct=1").unwrap_err();
        assert!(
            message.contains("unknown setting `impct`") && message.contains("impact"),
            "{message}"
        );
        assert!(query("impact=1&impact=2")
            .unwrap_err()
            .contains("given twice"));
    }

    #[test]
    fn deployment_defaults_come_from_default_variables_and_the_url_wins() {
        let env = [
            (
                "DEFAULT_ASSIGNMENT_GROUP".to_owned(),
                "Service Desk".to_owned(),
            ),
            ("DEFAULT_ON_COMMENT".to_owned(), "comment".to_owned()),
            ("PATH".to_owned(), "/usr/bin".to_owned()),
        ];
        let defaults = Settings::from_environment(env).unwrap();
        assert_eq!(defaults.on_comment, OnComment::Comment);
        let s = defaults.with_query("assignment_group=Network").unwrap();
        assert_eq!(s.passthrough, [("assignment_group", "Network".to_owned())]);
        assert_eq!(s.on_comment, OnComment::Comment);

        let typo =
            Settings::from_environment([("DEFAULT_ASIGNMENT_GROUP".to_owned(), "x".to_owned())]);
        assert!(typo
            .unwrap_err()
            .to_string()
            .contains("DEFAULT_ASIGNMENT_GROUP is not a setting"));
        let bad = Settings::from_environment([("DEFAULT_IMPACT".to_owned(), "9".to_owned())]);
        assert!(bad
            .unwrap_err()
            .to_string()
            .starts_with("DEFAULT_IMPACT must be 1, 2 or 3"));
    }
}
