//! Reading one setting's value: the query's pairs, and each kind of value a setting takes
//! (names, levels, pairs, flags, choices, templates, users, URLs), each refusal saying what it
//! accepts.

use super::*;

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

/// The query's `name=value` pairs, percent-decoded (`+` is a space). A pair that does not
/// decode to UTF-8 is refused by name rather than read with replacement characters.
pub(super) fn query_pairs(
    query: &str,
    source: Source,
) -> Result<Vec<(String, String)>, InvalidSetting> {
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
pub(super) fn check_column(column: &str) -> Result<(), String> {
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

pub(super) const USER_FORMS: &str = "a sys_id (32 hex digits), an email, or a user's display name";
pub(super) const PAIR_FORM: &str = "impact,urgency with each 1, 2 or 3 (e.g. `1,2`)";
pub(super) const URL_FORM: &str =
    "an https URL of your iLert account (e.g. `https://acme.ilert.com`), optionally with {alert_id}";

pub(super) fn parse_level(text: &str) -> Option<u8> {
    match text {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        _ => None,
    }
}

pub(super) fn parse_pair(text: &str) -> Option<ImpactUrgency> {
    let (impact, urgency) = text.split_once(',')?;
    Some(ImpactUrgency {
        impact: parse_level(impact.trim())?,
        urgency: parse_level(urgency.trim())?,
    })
}

pub(super) fn parse_flag(
    text: &str,
    refuse: &impl Fn(&str) -> InvalidSetting,
) -> Result<bool, InvalidSetting> {
    choose(text, &[("true", true), ("false", false)], refuse)
}

/// One of a fixed set of values; the refusal lists them ("state, note or ignore").
pub(super) fn choose<T: Copy>(
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

pub(super) fn parse_template(
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

pub(super) fn parse_user(text: &str) -> Result<Option<UserRef>, ()> {
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
pub(super) fn parse_alert_url(text: &str) -> Result<Option<String>, ()> {
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
