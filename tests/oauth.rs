//! OAuth 2.0 against the simulator's `/oauth_token.do`: the token is fetched once and reused,
//! refreshed before it expires and when the instance refuses it, and a refused grant is a clear
//! error.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

const CLIENT_ID: &str = "ilert-oauth-client";
const CLIENT_SECRET: &str = "0auth-Cl1ent-S3cret";

async fn spawn_with_oauth(with_user: bool) -> TestApp {
    let app = TestApp::spawn_with(Default::default(), |secret| {
        secret["client_id"] = json!(CLIENT_ID);
        secret["client_secret"] = json!(CLIENT_SECRET);
        if !with_user {
            let fields = secret.as_object_mut().unwrap();
            fields.remove("username");
            fields.remove("password");
        }
    })
    .await;
    app.servicenow.enable_oauth(CLIENT_ID, CLIENT_SECRET);
    app
}

/// The `Authorization` header of every Table API request, in order.
fn authorizations(app: &TestApp) -> Vec<String> {
    app.servicenow
        .incident_requests()
        .into_iter()
        .map(|request| request.authorization)
        .collect()
}

#[tokio::test]
async fn the_token_is_fetched_once_and_reused_across_invocations() {
    let app = spawn_with_oauth(true).await;
    for name in LIFECYCLE {
        let answer = app.deliver(name).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.text);
    }
    assert_eq!(app.servicenow.token_grants(), ["password"]);
    let sent = authorizations(&app);
    assert!(sent.len() >= 8, "{sent:?}");
    assert!(
        sent.iter()
            .all(|header| header.starts_with("Bearer sim-access-token-1-") && *header == sent[0]),
        "every request carried the one token, none Basic: {sent:?}"
    );
    assert_eq!(app.incident()["state"], "6");
}

#[tokio::test]
async fn without_a_user_the_client_credentials_grant_is_used() {
    let app = spawn_with_oauth(false).await;
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.servicenow.token_grants(), ["client_credentials"]);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn the_token_is_refreshed_a_minute_before_it_expires() {
    let app = spawn_with_oauth(true).await;
    app.servicenow.set_token_lifetime(61);
    app.deliver("01-alert-created").await;
    app.deliver("02-alert-acknowledged").await;
    assert_eq!(app.servicenow.token_grants().len(), 1, "still fresh");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.deliver("03-alert-comment-added").await.status, 200);
    assert_eq!(
        app.servicenow.token_grants().len(),
        2,
        "refreshed before expiry"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_event_lands() {
    let app = spawn_with_oauth(true).await;
    app.deliver("01-alert-created").await;
    app.servicenow.revoke_tokens();
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.servicenow.token_grants().len(), 2);
    assert!(
        authorizations(&app)
            .last()
            .is_some_and(|header| header.starts_with("Bearer sim-access-token-2-")),
        "the write went with the new token"
    );
    assert_eq!(app.incident()["state"], "2");
}

#[tokio::test]
async fn a_refused_grant_is_a_clear_502_that_leaks_nothing() {
    let app = spawn_with_oauth(true).await;
    app.servicenow.enable_oauth(CLIENT_ID, "another-secret");
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("refused the OAuth password grant"),
        "{message}"
    );
    assert!(
        message.contains("`client_id` and `client_secret`"),
        "{message}"
    );
    assert!(!answer.text.contains(CLIENT_SECRET) && !answer.text.contains(SN_PASSWORD));
    assert!(app.servicenow.incidents().is_empty());
}
