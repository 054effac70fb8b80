//! The `secret` command's unit tests.

use super::*;
use crate::adapters::secrets::Connection;

fn read(json: &SecretString) -> Map<String, Value> {
    serde_json::from_str(json.expose_secret()).unwrap()
}

fn new_connection() -> SecretChanges {
    SecretChanges {
        instance_url: Some("https://acme.service-now.com ".into()),
        username: Some("ilert.integration".into()),
        password: Some(SecretString::from("pass word ")),
        ..SecretChanges::default()
    }
}

fn existing(json: &str) -> Map<String, Value> {
    fields_of(&SecretString::from(json.to_owned()), "s").unwrap()
}

#[test]
fn another_named_instance_on_a_secret_of_one_is_asked_for_its_own_credentials() {
    let flat = existing(
        r#"{"instance_url":"https://acme.service-now.com","username":"u","password":"p","webhook_token":"t"}"#,
    );
    let seen = connection_fields(&flat, Some("acme-test"));
    assert!(!seen.contains_key("password") && !seen.contains_key("instance_url"));
    assert_eq!(seen["webhook_token"], "t", "shared keys are still there");
    assert_eq!(connection_fields(&flat, Some("default"))["password"], "p");
    let (json, _) = merged(
        flat,
        SecretChanges {
            instance: Some("acme-test".into()),
            ..new_connection()
        },
        "s",
    )
    .unwrap();
    let fields = read(&json);
    assert_eq!(fields["instances"]["default"]["password"], "p");
    assert_eq!(fields["instances"]["acme-test"]["password"], "pass word ");
    assert_eq!(fields["webhook_token"], "t");
}

#[test]
fn a_new_secret_gets_a_random_token_and_the_password_exactly_as_typed() {
    let (first, change) = merged(Map::new(), new_connection(), "s").unwrap();
    assert_eq!(change, TokenChange::Made);
    let fields = read(&first);
    assert_eq!(fields["instance_url"], "https://acme.service-now.com");
    assert_eq!(fields["password"], "pass word ");
    assert!(!fields.contains_key("webhook_token_previous"));
    let token = fields["webhook_token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let (second, _) = merged(Map::new(), new_connection(), "s").unwrap();
    assert_ne!(
        read(&second)["webhook_token"],
        token,
        "tokens must not repeat"
    );
}

#[test]
fn an_update_keeps_the_token_the_password_and_keys_it_does_not_manage() {
    let old = existing(
        r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
            "webhook_token":"kept","client_id":"c","client_secret":"cs"}"#,
    );
    let changes = SecretChanges {
        username: Some("v".into()),
        ..SecretChanges::default()
    };
    let (json, change) = merged(old, changes, "s").unwrap();
    assert_eq!(change, TokenChange::Unchanged);
    let fields = read(&json);
    assert_eq!(fields["username"], "v");
    assert_eq!(fields["password"], "p");
    assert_eq!(fields["webhook_token"], "kept");
    assert_eq!(fields["client_secret"], "cs");
}

#[test]
fn a_rotation_keeps_the_old_token_working_until_it_is_dropped() {
    let old = existing(
        r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
            "webhook_token":"first"}"#,
    );
    let rotate = SecretChanges {
        new_token: true,
        ..SecretChanges::default()
    };
    let (rotated, change) = merged(old, rotate, "s").unwrap();
    assert_eq!(change, TokenChange::Rotated);
    let fields = read(&rotated);
    assert_ne!(fields["webhook_token"], "first");
    assert_eq!(fields["webhook_token_previous"], "first");
    let connection = Connection::from_secret(&rotated, "s").unwrap();
    assert!(connection.webhook.previous_token.is_some());

    let drop = SecretChanges {
        drop_previous_token: true,
        ..SecretChanges::default()
    };
    let (dropped, change) = merged(fields.clone(), drop, "s").unwrap();
    assert_eq!(change, TokenChange::PreviousDropped);
    let after = read(&dropped);
    assert!(!after.contains_key("webhook_token_previous"));
    assert_eq!(after["webhook_token"], fields["webhook_token"]);
}

#[test]
fn an_ilert_key_turns_the_way_back_on_with_a_push_token_of_its_own() {
    let old = existing(
        r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
            "webhook_token":"hook"}"#,
    );
    let on = SecretChanges {
        ilert_api_key: Some(SecretString::from(" il-key ")),
        ..SecretChanges::default()
    };
    let (json, _) = merged(old, on, "s").unwrap();
    let fields = read(&json);
    assert_eq!(fields["ilert_api_key"], "il-key");
    let push = fields["servicenow_token"].as_str().unwrap().to_owned();
    assert_eq!(push.len(), 64);
    assert_ne!(push, "hook", "never the webhook's token");

    let kept = SecretChanges {
        username: Some("v".into()),
        ..SecretChanges::default()
    };
    let (json, _) = merged(fields.clone(), kept, "s").unwrap();
    assert_eq!(read(&json)["servicenow_token"], push.as_str(), "kept");

    let rotated = SecretChanges {
        new_servicenow_token: true,
        ..SecretChanges::default()
    };
    let (json, _) = merged(fields.clone(), rotated, "s").unwrap();
    assert_ne!(read(&json)["servicenow_token"], push.as_str());

    let bad_url = SecretChanges {
        ilert_api_url: Some("http://api.ilert.com".into()),
        ..SecretChanges::default()
    };
    let problem = merged(fields.clone(), bad_url, "s").err().unwrap();
    assert!(problem.contains("ilert_api_url"), "{problem}");
    assert!(!problem.contains("il-key"), "{problem}");

    let off = SecretChanges {
        no_back_sync: true,
        ..SecretChanges::default()
    };
    let (json, _) = merged(fields, off, "s").unwrap();
    let fields = read(&json);
    for key in ["ilert_api_key", "ilert_api_url", "servicenow_token"] {
        assert!(!fields.contains_key(key), "{key}");
    }
    assert_eq!(fields["webhook_token"], "hook");
}

#[test]
fn a_secret_the_function_could_not_use_is_refused_and_says_why() {
    let plain_http = SecretChanges {
        instance_url: Some("http://acme.service-now.com".into()),
        ..new_connection()
    };
    let problem = merged(Map::new(), plain_http, "s").err().unwrap();
    assert!(problem.contains("https"), "{problem}");
    assert!(!problem.contains("pass word"), "{problem}");

    let no_password = SecretChanges {
        password: None,
        ..new_connection()
    };
    let problem = merged(Map::new(), no_password, "s").err().unwrap();
    assert!(problem.contains("password"), "{problem}");

    let problem = fields_of(&SecretString::from("hunter2"), "s")
        .err()
        .unwrap();
    assert!(problem.contains("not a JSON object"), "{problem}");
    assert!(!problem.contains("hunter2"), "{problem}");
}

#[test]
fn the_next_steps_show_the_token_only_when_asked() {
    let hidden = next_steps(
        "arn:x",
        true,
        TokenChange::Made,
        None,
        Some("https://w/webhook"),
    );
    assert!(hidden.contains("SecretArn: arn:x"));
    assert!(hidden.contains("URL:     https://w/webhook"));
    assert!(hidden.contains("get-secret-value --secret-id arn:x"));
    let shown = next_steps("arn:x", false, TokenChange::Rotated, Some("t0k3n"), None);
    assert!(shown.contains("Authorization: Bearer t0k3n"));
    assert!(shown.contains("the previous one keeps working"));
    assert!(shown.contains("--drop-previous-token"));
}
