//! Settings as the webhook URL and `DEFAULT_SETTINGS` give them.

use super::*;
use crate::domain::template::Placeholder;

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
    let s =
        query("on_accept=ignore&on_resolve=ignore&on_comment=ignore&on_other=work_note").unwrap();
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
fn deployment_defaults_are_a_query_string_like_the_urls_and_the_url_wins() {
    let env = [
        (
            "DEFAULT_SETTINGS".to_owned(),
            "assignment_group=Service+Desk&on_comment=comment".to_owned(),
        ),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ];
    let defaults = Settings::from_environment(env).unwrap();
    assert_eq!(defaults.on_comment, OnComment::Comment);
    assert_eq!(
        defaults.passthrough,
        [("assignment_group", "Service Desk".to_owned())]
    );
    let s = defaults.with_query("assignment_group=Network").unwrap();
    assert_eq!(s.passthrough, [("assignment_group", "Network".to_owned())]);
    assert_eq!(s.on_comment, OnComment::Comment);

    let pasted = Settings::from_environment([(
        "DEFAULT_SETTINGS".to_owned(),
        " ?contact_type=monitoring ".to_owned(),
    )]);
    assert_eq!(
        pasted.unwrap().passthrough,
        [("contact_type", "monitoring".to_owned())]
    );
    assert_eq!(
        Settings::from_environment([("DEFAULT_SETTINGS".to_owned(), String::new())]).unwrap(),
        Settings::default()
    );
}

#[test]
fn unusable_deployment_defaults_are_refused_naming_the_bad_part() {
    let defaults = |query: &str| {
        Settings::from_environment([("DEFAULT_SETTINGS".to_owned(), query.to_owned())])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        defaults("impact=9"),
        "setting `impact` in DEFAULT_SETTINGS must be 1, 2 or 3, got \"9\""
    );
    let typo = defaults("asignment_group=x");
    assert!(
        typo.starts_with("unknown setting `asignment_group` in DEFAULT_SETTINGS"),
        "{typo}"
    );
    assert!(defaults("impact=1&impact=2").contains("given twice in DEFAULT_SETTINGS"));
    assert!(
        defaults("category=%FF").contains("setting `category` in DEFAULT_SETTINGS is not UTF-8")
    );

    // The first release's variables are refused, with where their value goes now.
    let old = Settings::from_environment([("DEFAULT_IMPACT".to_owned(), "2".to_owned())])
        .unwrap_err()
        .to_string();
    assert!(old.starts_with("DEFAULT_IMPACT is not read"), "{old}");
    assert!(
        old.contains("put `impact=…` into DEFAULT_SETTINGS"),
        "{old}"
    );
    // Another program's variable is none of the function's business.
    assert!(
        Settings::from_environment([("DEFAULT_REGION".to_owned(), "eu-west-1".to_owned())]).is_ok()
    );
}

#[test]
fn raw_and_percent_encoded_values_read_as_written_and_broken_encodings_are_refused() {
    let s = query(r#"assignment_group=<Net|work>&category=%22quoted%22+x"#).unwrap();
    assert_eq!(
        s.passthrough,
        [
            ("assignment_group", "<Net|work>".to_owned()),
            ("category", "\"quoted\" x".to_owned())
        ]
    );
    let message = query("assignment_group=Net%FFwork").unwrap_err();
    assert!(
        message.contains("`assignment_group`") && message.contains("UTF-8"),
        "{message}"
    );
}

#[test]
fn the_resolved_window_is_whole_hours_up_to_a_year() {
    use std::time::Duration;
    assert_eq!(
        Settings::default().create_resolved_within,
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(
        query("create_resolved_within_hours=0")
            .unwrap()
            .create_resolved_within,
        Duration::ZERO
    );
    for bad in ["-1", "1.5", "8761", "a day"] {
        let message = query(&format!("create_resolved_within_hours={bad}")).unwrap_err();
        assert!(message.contains("whole number of hours"), "{message}");
    }
}

#[test]
fn custom_fields_take_templates_and_any_column_name_servicenow_allows() {
    let s = query("field.u_environment=production&field.u_alert_key={alert_key}&field.u_team={label.team}&update_fields=u_team")
        .unwrap();
    assert_eq!(
        s.custom_fields.keys().collect::<Vec<_>>(),
        ["u_alert_key", "u_environment", "u_team"]
    );
    assert!(s.update_fields.contains("u_team") && s.update_fields.len() == 1);
    let rendered = s.custom_fields["u_team"].render(|p| match p {
        Placeholder::Label(name) => format!("label {name}"),
        _ => "?".into(),
    });
    assert_eq!(rendered, "label team");
    let unknown = query("field.u_region={region}").unwrap_err();
    assert!(
        unknown.contains("field.u_region") && unknown.contains("{custom.<name>}"),
        "{unknown}"
    );
}

#[test]
fn a_custom_field_name_must_be_a_column_name_the_function_does_not_write() {
    for (name, expected) in [
        ("U_Env", "not a ServiceNow column name"),
        ("9lives", "not a ServiceNow column name"),
        ("u-env", "not a ServiceNow column name"),
        ("", "not a ServiceNow column name"),
        (
            "state",
            "written by the function itself (on_accept and on_resolve decide it)",
        ),
        ("correlation_id", "written by the function itself"),
        ("correlation_display", "written by the function itself"),
        ("work_notes", "written by the function itself"),
        ("close_code", "use the setting close_code"),
        ("priority", "computes it"),
        ("incident_state", "keeps it with state"),
        ("closed_by", "sets it when the incident is closed"),
        ("sys_updated_by", "system field"),
    ] {
        let message = query(&format!("field.{name}=x")).unwrap_err();
        assert!(
            message.contains(&format!("`field.{name}`")) && message.contains(expected),
            "{name}: {message}"
        );
    }
    let longest = format!("u_{}", "x".repeat(78));
    assert!(query(&format!("field.{longest}=x")).is_ok());
    assert!(
        query(&format!("field.{longest}y=x")).is_err(),
        "81 characters"
    );
}

#[test]
fn at_most_twenty_custom_fields_counting_the_defaults_and_the_url() {
    let fields = |range: std::ops::Range<usize>| {
        range
            .map(|n| format!("field.u_f{n}=v"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let defaults =
        Settings::from_environment([(DEFAULT_SETTINGS.to_owned(), fields(0..15))]).unwrap();
    assert!(defaults.with_query(&fields(15..20)).is_ok(), "20 in all");
    let message = defaults
        .with_query(&fields(15..21))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("21 custom fields") && message.contains("at most 20"),
        "{message}"
    );
    // A URL's empty value drops a default's field, and so makes room.
    let dropped = defaults
        .with_query(&format!("{}&field.u_f0=", fields(15..21)))
        .unwrap();
    assert!(!dropped.custom_fields.contains_key("u_f0"));
}

#[test]
fn update_fields_must_name_custom_fields_that_are_set() {
    let message = query("field.u_env=prod&update_fields=u_env,u_team").unwrap_err();
    assert!(
        message.contains("`u_team`") && message.contains("field.u_team"),
        "{message}"
    );
    let message = query("update_fields=state").unwrap_err();
    assert!(
        message.contains("written by the function itself"),
        "{message}"
    );
    let twice = query("field.u_env=a&field.u_env=b").unwrap_err();
    assert!(twice.contains("given twice"), "{twice}");
}

#[test]
fn a_placeholder_left_open_is_refused_not_read_to_the_end() {
    for q in [
        "short_description={summary",
        "description=x {details",
        "field.u_x={label.team",
    ] {
        let message = query(q).unwrap_err();
        assert!(message.contains("without its `}`"), "{q}: {message}");
    }
}
