//! The secret's unit tests: its contents, its sources and the cache.

use super::*;
use std::time::Duration;

fn parse(json: &str) -> Result<Connection, SecretError> {
    Connection::from_secret(&SecretString::from(json.to_owned()), "ilert/servicenow")
}

fn error(json: &str) -> String {
    parse(json).unwrap_err().to_string()
}

const PASSWORD: &str = "s3cr3t-Pa55";

#[test]
fn a_complete_secret_gives_the_connection() {
    let connection = parse(&format!(
        r#"{{"instance_url":"https://acme.service-now.com","username":"ilert","password":"{PASSWORD}","webhook_token":"tok"}}"#
    ))
    .unwrap();
    assert_eq!(
        connection.servicenow.instance_url.as_str(),
        "https://acme.service-now.com/"
    );
    let (username, password) = connection.servicenow.user.as_ref().unwrap();
    assert_eq!(
        (username.as_str(), password.expose_secret()),
        ("ilert", PASSWORD)
    );
    assert!(connection.servicenow.oauth_client.is_none());
    assert!(connection.webhook.basic.is_none());
    assert!(
        !format!("{connection:?}").contains(PASSWORD),
        "Debug must redact"
    );
}

#[test]
fn each_missing_key_is_named() {
    let full = serde_json::json!({
        "instance_url": "https://acme.service-now.com",
        "username": "ilert",
        "password": PASSWORD,
        "webhook_token": "tok",
    });
    for key in ["instance_url", "username", "password", "webhook_token"] {
        let mut partial = full.clone();
        partial.as_object_mut().unwrap().remove(key);
        let message = error(&partial.to_string());
        assert!(message.contains(&format!("`{key}`")), "{message}");
        assert!(message.contains("ilert/servicenow"), "{message}");
    }
}

#[test]
fn basic_credentials_may_replace_the_token_but_only_as_a_pair() {
    let with_basic = parse(&format!(
        r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","webhook_username":"ilert","webhook_password":"pw"}}"#
    ))
    .unwrap();
    assert_eq!(with_basic.webhook.basic.as_ref().unwrap().0, "ilert");
    let half = error(&format!(
        r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","webhook_token":"t","webhook_username":"ilert"}}"#
    ));
    assert!(half.contains("go together"), "{half}");
}

#[test]
fn oauth_clients_may_go_with_or_without_the_user() {
    let with_user = parse(&format!(
        r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","client_id":"c","client_secret":"cs","webhook_token":"t"}}"#
    ))
    .unwrap();
    assert!(with_user.servicenow.user.is_some() && with_user.servicenow.oauth_client.is_some());
    let client_only = parse(
        r#"{"instance_url":"https://a.service-now.com","client_id":"c","client_secret":"cs","webhook_token":"t"}"#,
    )
    .unwrap();
    assert!(client_only.servicenow.user.is_none());
    let half = error(
        r#"{"instance_url":"https://a.service-now.com","client_id":"c","webhook_token":"t"}"#,
    );
    assert!(half.contains("`client_secret` is missing"), "{half}");
    let half_user = error(
        r#"{"instance_url":"https://a.service-now.com","username":"u","client_id":"c","client_secret":"cs","webhook_token":"t"}"#,
    );
    assert!(half_user.contains("`password` is missing"), "{half_user}");
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let with_url = |url: &str| {
        parse(&format!(
            r#"{{"instance_url":"{url}","username":"u","password":"p","webhook_token":"t"}}"#
        ))
    };
    assert!(error(r#"{"instance_url":"http://acme.service-now.com","username":"u","password":"p","webhook_token":"t"}"#).contains("https"));
    assert!(with_url("http://127.0.0.1:8080").is_ok());
    assert!(with_url("http://localhost:8080").is_ok());
    assert!(with_url("http://[::1]:8080").is_ok());
    assert!(with_url("ftp://acme").is_err());
    assert!(with_url("acme.service-now.com").is_err());
    assert!(with_url("https://user:pw@acme.service-now.com").is_err());
}

#[test]
fn no_error_message_repeats_a_secret_value() {
    for json in [
        format!(
            r#"{{"instance_url":"https://a.service-now.com","username":"u","password":["{PASSWORD}"],"webhook_token":"t"}}"#
        ),
        format!(
            r#"{{"instance_url":"{PASSWORD}","username":"u","password":"p","webhook_token":"t"}}"#
        ),
        format!(r#"{{"password":"{PASSWORD}""#),
        format!(r#"["{PASSWORD}"]"#),
    ] {
        let message = error(&json);
        assert!(!message.contains(PASSWORD), "{message}");
    }
}

fn several(json: &str) -> Result<Connections, String> {
    Connections::from_secret(&SecretString::from(json.to_owned()), "ilert/servicenow")
        .map_err(|e| e.to_string())
}

#[test]
fn named_instances_share_the_keys_at_the_top_and_may_set_their_own() {
    let connections = several(&format!(
        r#"{{"webhook_token":"shared","ilert_api_key":"k",
            "instances":{{
              "acme-prod":{{"instance_url":"https://acme.service-now.com","username":"u","password":"{PASSWORD}"}},
              "acme-test":{{"instance_url":"https://acmetest.service-now.com","username":"t","password":"p","webhook_token":"own"}}}}}}"#
    ))
    .unwrap();
    assert_eq!(connections.names(), ["acme-prod", "acme-test"]);
    let prod = connections.named("acme-prod").unwrap();
    let test = connections.named("acme-test").unwrap();
    assert_eq!(prod.name, "acme-prod");
    assert_eq!(
        prod.webhook.token.as_ref().unwrap().expose_secret(),
        "shared"
    );
    assert_eq!(test.webhook.token.as_ref().unwrap().expose_secret(), "own");
    assert!(prod.ilert.is_some() && test.ilert.is_some());
    assert_eq!(
        test.servicenow.instance_url.as_str(),
        "https://acmetest.service-now.com/"
    );
    let message = connections.pick(None).unwrap_err().to_string();
    assert!(message.contains("acme-prod, acme-test"), "{message}");
    let unknown = connections.pick(Some("acme")).unwrap_err().to_string();
    assert!(unknown.contains("`acme`") && unknown.contains("acme-prod, acme-test"));
}

#[test]
fn the_way_backs_keys_are_each_instances_own_unless_the_secret_shares_them() {
    let secret = |shared: &str| {
        format!(
            r#"{{"webhook_token":"t","ilert_api_key":"top-key","servicenow_token":"top-push",{shared}
                "instances":{{
                  "a":{{"instance_url":"https://a.service-now.com","username":"u","password":"p"}},
                  "b":{{"instance_url":"https://b.service-now.com","username":"u","password":"p",
                        "ilert_api_key":"b-key","servicenow_token":"b-push"}}}}}}"#
        )
    };
    let key = |c: &Connection| {
        c.ilert
            .as_ref()
            .map(|i| i.api_key.expose_secret().to_owned())
    };
    let push = |c: &Connection| c.push_token.as_ref().map(|t| t.expose_secret().to_owned());

    // Written before `shared_keys`: read as before, and remembered as taken implicitly.
    let legacy = several(&secret("")).unwrap();
    let (a, b) = (legacy.named("a").unwrap(), legacy.named("b").unwrap());
    assert_eq!(key(a).as_deref(), Some("top-key"));
    assert_eq!(a.implicitly_shared, ["ilert_api_key", "servicenow_token"]);
    assert_eq!(
        (key(b).as_deref(), push(b).as_deref()),
        (Some("b-key"), Some("b-push"))
    );
    assert!(b.implicitly_shared.is_empty());

    // `shared_keys` names what is shared, and nothing else is.
    let explicit = several(&secret(r#""shared_keys":["ilert_api_key"],"#)).unwrap();
    let a = explicit.named("a").unwrap();
    assert_eq!(key(a).as_deref(), Some("top-key"));
    assert_eq!(push(a), None, "the push token at the top is not shared");
    assert!(a.implicitly_shared.is_empty());
    assert_eq!(
        push(explicit.named("b").unwrap()).as_deref(),
        Some("b-push")
    );

    let none = several(&secret(r#""shared_keys":[],"#)).unwrap();
    assert!(
        none.named("a").unwrap().ilert.is_none(),
        "the way back is off for a"
    );

    let wrong = several(&secret(r#""shared_keys":["password"],"#)).unwrap_err();
    assert!(wrong.contains("shared_keys"), "{wrong}");
}

#[test]
fn an_instance_with_its_own_webhook_credentials_takes_none_of_the_shared_ones() {
    let connections = several(
        r#"{"webhook_token":"A","webhook_token_previous":"A0","webhook_username":"u","webhook_password":"p",
            "instances":{
              "acme-prod":{"instance_url":"https://acme.service-now.com","username":"u","password":"p"},
              "acme-test":{"instance_url":"https://acmetest.service-now.com","username":"u","password":"p","webhook_token":"B"}}}"#,
    )
    .unwrap();
    let test = &connections.named("acme-test").unwrap().webhook;
    assert_eq!(test.token.as_ref().unwrap().expose_secret(), "B");
    assert!(test.previous_token.is_none() && test.basic.is_none());
    let prod = &connections.named("acme-prod").unwrap().webhook;
    assert_eq!(prod.previous_token.as_ref().unwrap().expose_secret(), "A0");
    assert!(prod.basic.is_some());
}

#[test]
fn a_flat_secret_is_the_connection_named_default() {
    let connections = several(
        r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p","webhook_token":"t"}"#,
    )
    .unwrap();
    assert_eq!(connections.names(), [DEFAULT_INSTANCE]);
    assert!(!connections.several());
    assert_eq!(connections.pick(None).unwrap().name, "default");
    assert!(connections.pick(Some("default")).is_ok());
}

#[test]
fn each_instance_is_checked_and_its_problems_name_it() {
    let base = r#""instance_url":"https://a.service-now.com","username":"u","password":"p""#;
    // The secret as a whole.
    for (json, expected) in [
        (
            r#"{"webhook_token":"t","instances":{}}"#,
            "names no connection",
        ),
        (
            r#"{"webhook_token":"t","instances":[]}"#,
            "must be an object",
        ),
    ] {
        let message = several(json).unwrap_err();
        assert!(message.contains(expected), "{json}: {message}");
    }
    // One entry: set aside, named, the others kept.
    for (name, json, expected) in [
        (
            "Acme Prod",
            format!(
                r#"{{"webhook_token":"t","instances":{{"Acme Prod":{{{base}}},"ok":{{{base}}}}}}}"#
            ),
            "not a usable instance name",
        ),
        (
            "acme",
            format!(r#"{{"webhook_token":"t","instances":{{"acme":"x","ok":{{{base}}}}}}}"#),
            "instance `acme` must be an object",
        ),
        (
            "acme",
            format!(
                r#"{{"webhook_token":"t","instances":{{"acme":{{"username":"u","password":"p"}},"ok":{{{base}}}}}}}"#
            ),
            "key `instance_url` is missing",
        ),
        (
            "acme",
            format!(r#"{{"instances":{{"acme":{{{base}}},"ok":{{{base},"webhook_token":"t"}}}}}}"#),
            "key `webhook_token` is missing",
        ),
    ] {
        let connections = several(&json).unwrap();
        let broken: Vec<&Arc<BrokenEntry>> = connections.broken().collect();
        assert_eq!(broken.len(), 1, "{json}");
        assert_eq!(broken[0].name, name);
        assert!(
            broken[0].problem.contains(expected),
            "{json}: {}",
            broken[0].problem
        );
        assert!(!broken[0].problem.contains(PASSWORD));
        assert!(matches!(
            connections.pick(Some(name)),
            Err(NotPicked::Broken(_))
        ));
        assert_eq!(connections.pick(Some("ok")).unwrap().name, "ok");
        assert_eq!(connections.names(), {
            let mut names = vec![name, "ok"];
            names.sort_unstable();
            names
        });
    }
}

#[test]
fn the_back_sync_keys_are_optional_and_checked_like_the_instance_url() {
    let base = r#""instance_url":"https://a.service-now.com","username":"u","password":"p","webhook_token":"t""#;
    let one_way = parse(&format!("{{{base}}}")).unwrap();
    assert!(one_way.ilert.is_none() && one_way.push_token.is_none());

    let both_ways = parse(&format!(
        r#"{{{base},"ilert_api_key":"{PASSWORD}","servicenow_token":"sn-tok"}}"#
    ))
    .unwrap();
    let ilert = both_ways.ilert.as_ref().unwrap();
    assert_eq!(ilert.api_url.as_str(), "https://api.ilert.com/");
    assert_eq!(ilert.api_key.expose_secret(), PASSWORD);
    assert_eq!(
        both_ways.push_token.as_ref().unwrap().expose_secret(),
        "sn-tok"
    );
    assert!(
        !format!("{both_ways:?}").contains(PASSWORD),
        "Debug must redact"
    );

    let local = parse(&format!(
        r#"{{{base},"ilert_api_key":"k","ilert_api_url":"http://127.0.0.1:9"}}"#
    ))
    .unwrap();
    assert_eq!(local.ilert.unwrap().api_url.as_str(), "http://127.0.0.1:9/");
    let plain = error(&format!(
        r#"{{{base},"ilert_api_key":"k","ilert_api_url":"http://api.ilert.com"}}"#
    ));
    assert!(plain.contains("`ilert_api_url` must use https"), "{plain}");
    let typed = error(&format!(r#"{{{base},"ilert_api_key":42}}"#));
    assert!(
        typed.contains("`ilert_api_key` must be a string"),
        "{typed}"
    );
}

#[test]
fn the_cache_ttl_defaults_to_five_minutes_and_refuses_nonsense() {
    assert_eq!(cache_ttl_from(None).unwrap(), Duration::from_secs(300));
    assert_eq!(cache_ttl_from(Some("60")).unwrap(), Duration::from_secs(60));
    assert!(cache_ttl_from(Some("5m")).is_err());
}
