//! The real handler, driven with the bundled `events/` files, over real sockets against the
//! ServiceNow simulator and a Secrets Manager endpoint reached through the real AWS SDK.

mod support;

use http::{header, Method};
use ilert_servicenow::domain::settings::Settings;
use serde_json::{json, Value};
use simulator::Fault;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn the_full_lifecycle_lands_on_one_incident_with_the_right_states_title_notes_and_close_fields(
) {
    let app = TestApp::spawn().await;

    let created = app.deliver("01-alert-created").await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["action"], "created");
    let number = created.body["incident"]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.body["incident"]["sys_id"], app.incident()["sys_id"]);
    assert_eq!(app.incident()["state"], "1");
    assert_eq!(
        app.incident()["short_description"],
        "PENDING PROBLEM: api-gateway-prod p95 latency > 2s"
    );
    assert_eq!(app.incident()["correlation_display"], "iLert");
    assert!(app.incident()["description"]
        .as_str()
        .unwrap()
        .contains("Alert source: Prometheus Production"));

    let acknowledged = app.deliver("02-alert-acknowledged").await;
    assert_eq!(acknowledged.body["action"], "updated");
    assert_eq!(app.incident()["state"], "2");
    assert_eq!(
        app.incident()["short_description"],
        "ACCEPTED PROBLEM: api-gateway-prod p95 latency > 2s"
    );

    let commented = app.deliver("03-alert-comment-added").await;
    assert_eq!(commented.body["action"], "updated");

    let resolved = app.deliver("04-alert-resolved").await;
    assert_eq!(resolved.body["action"], "updated");
    assert_eq!(resolved.body["incident"]["number"], number.as_str());

    let incident = app.incident();
    assert_eq!(incident["state"], "6");
    assert_eq!(
        incident["short_description"],
        "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s"
    );
    assert_eq!(incident["close_code"], "Solution provided");
    assert!(incident["close_notes"]
        .as_str()
        .unwrap()
        .starts_with("Root cause: cache flag in deploy 2025.10.17-3. Rolled back."));
    assert_eq!(incident["impact"], "2");
    assert_eq!(incident["urgency"], "1");
    assert_eq!(
        incident["priority"], "2",
        "computed by the instance from the pair"
    );
    assert_eq!(
        app.notes(&number),
        [
            "work_notes: Accepted in iLert by Jane Doe.",
            "work_notes: Comment in iLert: Rolled back deploy 2025.10.17-3 (\"gw-cache\" flag); latency recovering.",
            "work_notes: Resolved in iLert by Jane Doe.",
        ]
    );
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn redelivering_any_event_creates_nothing_and_writes_nothing() {
    let app = TestApp::spawn().await;
    for name in LIFECYCLE {
        assert_eq!(app.deliver(name).await.status, 200);
    }
    let before = app.servicenow.incidents();
    let number = app.incident()["number"].as_str().unwrap().to_owned();
    let notes_before = app.notes(&number);
    app.servicenow.clear_requests();

    for name in LIFECYCLE {
        let answer = app.deliver(name).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["action"], "unchanged", "{name}");
        assert_eq!(answer.body["incident"]["number"], number.as_str());
    }
    assert_eq!(app.methods(), ["GET", "GET", "GET", "GET"], "lookups only");
    assert_eq!(app.servicenow.incidents(), before);
    assert_eq!(app.notes(&number), notes_before);
}

#[tokio::test]
async fn an_event_costs_a_lookup_and_a_write_and_a_redelivery_the_lookup_alone() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    assert_eq!(app.methods(), ["GET", "POST", "GET"]);
    app.servicenow.clear_requests();
    app.deliver("02-alert-acknowledged").await;
    // The accept's note is remembered in the journal itself, which the lookup reads: no
    // concurrent writer can erase it, so nothing is read back.
    assert_eq!(app.methods(), ["GET", "PATCH"]);
    app.servicenow.clear_requests();
    app.deliver("02-alert-acknowledged").await;
    assert_eq!(app.methods(), ["GET"]);
}

#[tokio::test]
async fn the_lookup_asks_for_the_exact_key_and_only_the_fields_it_needs() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    let lookup = &app.servicenow.requests()[0];
    assert_eq!(lookup.path, "/api/now/table/incident");
    assert_eq!(
        lookup.query["sysparm_query"],
        "correlation_id=ilert:12797430^ORDERBYnumber"
    );
    let fields: Vec<&str> = lookup.query["sysparm_fields"].split(',').collect();
    assert!(fields.contains(&"state") && fields.contains(&"correlation_id"));
    assert!(!fields.contains(&"description"), "{fields:?}");
    // The journal, as its display value: which notes were written.
    assert!(fields.contains(&"work_notes") && fields.contains(&"comments"));
    assert_eq!(lookup.query["sysparm_display_value"], "all");
}

#[tokio::test]
async fn a_widened_query_never_touches_another_alerts_incident() {
    let app = TestApp::spawn().await;
    let other = app.servicenow.insert(&[
        ("correlation_id", "ilert:999"),
        ("state", "2"),
        ("short_description", "ACCEPTED someone else's alert"),
    ]);
    let unrelated = app
        .servicenow
        .insert(&[("state", "1"), ("short_description", "printer jam")]);
    app.servicenow.hide_from_queries("correlation_id");

    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(app.notes(&other).is_empty() && app.notes(&unrelated).is_empty());
    assert!(!app.methods().iter().any(|m| m == "PATCH" || m == "POST"));
}

#[tokio::test]
async fn a_first_event_that_is_already_resolved_opens_no_incident() {
    let app = TestApp::spawn().await;
    let answer = app.deliver("04-alert-resolved").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["action"], "ignored");
    assert!(answer.body.get("incident").is_none());
    assert!(answer.body["reason"]
        .as_str()
        .unwrap()
        .contains("already resolved"));
    assert_eq!(app.methods(), ["GET"]);
    assert!(app.servicenow.incidents().is_empty());
}

#[tokio::test]
async fn closed_and_canceled_incidents_are_never_written() {
    for state in ["7", "8"] {
        let app = TestApp::spawn().await;
        let number = app.servicenow.insert(&[
            ("correlation_id", KEY),
            ("state", state),
            (
                "short_description",
                "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s",
            ),
        ]);
        for name in LIFECYCLE {
            let answer = app.deliver(name).await;
            assert_eq!(
                answer.body["action"], "unchanged",
                "{name} on state {state}"
            );
            assert_eq!(answer.body["incident"]["number"], number.as_str());
        }
        assert_eq!(app.methods(), ["GET", "GET", "GET", "GET"]);
    }
}

#[tokio::test]
async fn an_unknown_event_type_is_handled_by_its_status() {
    let app = TestApp::spawn().await;
    let mut body = body_of("01-alert-created");
    body["eventType"] = json!("alert-channel-attached");
    body["status"] = json!("ACCEPTED");
    let answer = app
        .send(with_body(event("01-alert-created"), body.to_string()))
        .await;
    assert_eq!(answer.body["action"], "created");
    assert_eq!(app.incident()["state"], "2");
}

#[tokio::test]
async fn the_legacy_docs_sample_creates_an_in_progress_incident_with_a_low_priority() {
    let app = TestApp::spawn().await;
    let answer = app.deliver("06-legacy-docs-sample").await;
    assert_eq!(answer.body["action"], "created");
    let incident = app.servicenow.incident_for("ilert:2983781").unwrap();
    assert_eq!(incident["state"], "2");
    assert_eq!(incident["priority"], "4");
}

#[tokio::test]
async fn a_call_without_the_right_credentials_is_refused_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    for authorization in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer change-me-webhook-token-and-more"),
        Some("change-me-webhook-token"),
        Some("Basic aWxlcnQ6cGFzcw=="),
    ] {
        let request = with_authorization(event("01-alert-created"), authorization);
        let answer = app.send(with_body(request, "not json at all")).await;
        assert_eq!(answer.status, 401, "{authorization:?}: {}", answer.text);
        assert_eq!(answer.body["error"], "unauthorized");
        assert!(!answer.text.contains(TOKEN));
    }
    assert!(app.servicenow.requests().is_empty());
}

#[tokio::test]
async fn basic_credentials_in_the_webhook_url_are_accepted_when_configured() {
    let app = TestApp::spawn_with(Settings::default(), |secret| {
        secret["webhook_username"] = json!("ilert");
        secret["webhook_password"] = json!("hook-pass");
    })
    .await;
    // iLert sends `https://ilert:hook-pass@…` as `Authorization: Basic base64(ilert:hook-pass)`.
    let request = with_authorization(
        event("01-alert-created"),
        Some("Basic aWxlcnQ6aG9vay1wYXNz"),
    );
    assert_eq!(app.send(request).await.body["action"], "created");
    let wrong = with_authorization(event("02-alert-acknowledged"), Some("Basic aWxlcnQ6eA=="));
    assert_eq!(app.send(wrong).await.status, 401);
}

#[tokio::test]
async fn during_a_token_rotation_both_tokens_open_the_webhook_and_no_other() {
    // What `ilert-servicenow secret --new-token` leaves: alert actions not yet moved to the
    // new token keep working.
    let app = TestApp::spawn_with(Settings::default(), |secret| {
        secret["webhook_token_previous"] = json!(TOKEN);
        secret["webhook_token"] = json!("the-new-token");
    })
    .await;
    assert_eq!(
        app.deliver("01-alert-created").await.body["action"],
        "created"
    );
    let moved = with_authorization(event("02-alert-acknowledged"), Some("Bearer the-new-token"));
    assert_eq!(app.send(moved).await.body["action"], "updated");
    let stranger = with_authorization(event("04-alert-resolved"), Some("Bearer an-old-guess"));
    assert_eq!(app.send(stranger).await.status, 401);
}

#[tokio::test]
async fn methods_other_than_post_are_refused_with_405() {
    let app = TestApp::spawn().await;
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::HEAD] {
        let mut request = event("01-alert-created");
        *request.method_mut() = method.clone();
        let response = app.handler.handle(request, None).await;
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
    assert!(app.servicenow.requests().is_empty());
}

#[tokio::test]
async fn a_body_over_256_kib_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let mut body = body_of("01-alert-created");
    body["details"] = json!("x".repeat(256 * 1024));
    let answer = app
        .send(with_body(event("01-alert-created"), body.to_string()))
        .await;
    assert_eq!(answer.status, 413);
    assert!(app.servicenow.requests().is_empty());

    let mut just_under = body_of("01-alert-created");
    just_under["details"] = json!("x".repeat(250 * 1024));
    let answer = app
        .send(with_body(event("01-alert-created"), just_under.to_string()))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn a_body_that_is_not_an_ilert_event_is_refused_with_400_saying_why() {
    let app = TestApp::spawn().await;
    let cases = [
        ("", "empty"),
        ("{\"id\": ", "not valid JSON"),
        ("[1,2,3]", "an array"),
        ("\"text\"", "a string"),
        (r#"{"status":"PENDING"}"#, "`id` is missing"),
        (
            r#"{"id":"12^ORstate=1","status":"PENDING"}"#,
            "`id` must be 1 to 20 digits",
        ),
        (
            r#"{"id":-4,"status":"PENDING"}"#,
            "`id` must be 1 to 20 digits",
        ),
        (
            r#"{"id":"4","status":"SNOOZED"}"#,
            "unknown variant `SNOOZED`",
        ),
        (
            r#"{"id":"4","status":"PENDING","summary":["a"]}"#,
            "expected a string",
        ),
    ];
    for (body, expected) in cases {
        let answer = app.send(with_body(event("01-alert-created"), body)).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.body["error"], "invalid_event");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert!(
        app.servicenow.requests().is_empty(),
        "nothing reached ServiceNow"
    );
}

#[tokio::test]
async fn the_secret_is_read_once_per_environment_not_per_request() {
    let app = TestApp::spawn().await;
    for name in LIFECYCLE {
        assert_eq!(app.deliver(name).await.status, 200);
    }
    assert_eq!(app.secrets.reads(), 1);
}

#[tokio::test]
async fn a_missing_secret_is_a_500_whose_cause_is_in_the_log() {
    let app = TestApp::spawn().await;
    app.secrets.put("some-other-secret", "{}");
    let handler_without_secret =
        handler_reading(&app.secrets, "ilert/missing", Settings::default());
    let mut response = None;
    let logs = logs_of(|| async {
        response = Some(
            handler_without_secret
                .handle(event("01-alert-created"), None)
                .await,
        );
    })
    .await;
    let response = response.unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body["error"], "misconfigured");
    assert!(!response.body().contains("ilert/missing"), "{body}");
    let [cause] = logs.causes().try_into().unwrap();
    assert!(
        cause.contains("secret ilert/missing was not found"),
        "{cause}"
    );
    assert!(app.servicenow.requests().is_empty());
}

#[tokio::test]
async fn an_incomplete_secret_is_a_500_that_names_no_key_and_no_value() {
    let app = TestApp::spawn_with(Settings::default(), |secret| {
        secret.as_object_mut().unwrap().remove("username");
    })
    .await;
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 500);
    assert!(!answer.text.contains("username") && !answer.text.contains(SN_PASSWORD));
}

#[tokio::test]
async fn wrong_servicenow_credentials_are_a_502_that_says_what_to_check() {
    let app = TestApp::spawn_with(Settings::default(), |secret| {
        secret["password"] = json!("rotated-away-password");
    })
    .await;
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502);
    let message = answer.body["message"].as_str().unwrap();
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("`username` and `password`"), "{message}");
    assert!(!answer.text.contains("rotated-away-password"));
}

#[tokio::test]
async fn a_sleeping_instance_is_a_503_with_retry_after_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    app.servicenow.inject(None, Fault::hibernating());
    let asleep = app.deliver("01-alert-created").await;
    assert_eq!(asleep.status, 503, "{}", asleep.text);
    assert!(asleep.body["message"].as_str().unwrap().contains("asleep"));
    assert_eq!(asleep.retry_after.as_deref(), Some("60"));
    assert!(app.servicenow.incidents().is_empty());

    // iLert delivers again once the instance is awake: exactly one incident.
    assert_eq!(
        app.deliver("01-alert-created").await.body["action"],
        "created"
    );
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn an_instance_that_redirects_to_its_login_page_is_a_503_naming_instance_url() {
    let app = TestApp::spawn().await;
    app.servicenow.inject(None, Fault::redirect_to_login());
    let redirected = app.deliver("01-alert-created").await;
    // Tried again later, as a sleeping instance's page is: a redirect may pass.
    assert_eq!(redirected.status, 503, "{}", redirected.text);
    let message = redirected.body["message"].as_str().unwrap();
    assert!(message.contains("302"), "{message}");
    assert!(message.contains("`instance_url`"), "{message}");
    // Not followed: the login page never sees the credentials (the lookup, and the caller
    // looked up beside it, each met the redirect and went no further).
    let requests = app.servicenow.requests();
    assert!(requests.len() <= 2, "{requests:?}");
    assert!(requests
        .iter()
        .all(|r| r.path.starts_with("/api/now/table/")));
    assert!(app.servicenow.incidents().is_empty());
}

#[tokio::test]
async fn an_unreachable_instance_is_a_503() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(Settings::default(), |secret| {
        secret["instance_url"] = json!(format!("http://127.0.0.1:{closed_port}"));
    })
    .await
    .with_time_budget(Duration::from_secs(1));
    let started = std::time::Instant::now();
    let answer = app.deliver("01-alert-created").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the budget"
    );
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.retry_after.is_some());
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("could not be reached"));
}

#[tokio::test]
async fn a_data_policy_refusal_is_a_502_with_servicenows_message() {
    let settings = Settings {
        close_code: String::new(),
        ..Settings::default()
    };
    let app = TestApp::spawn_with(settings, |_| {}).await;
    app.deliver("02-alert-acknowledged").await;
    let answer = app.deliver("04-alert-resolved").await;
    assert_eq!(answer.status, 502);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("Data Policy Exception"));
    assert_eq!(
        app.incident()["state"],
        "2",
        "the refused write changed nothing"
    );
}

#[tokio::test]
async fn a_write_that_a_field_acl_silently_dropped_is_reported_not_hidden() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    app.servicenow.drop_writes_to("state");
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("did not apply state"));
}

/// A field ACL on `correlation_display` turns the notes' memory off: every redelivery would be
/// noted again. It is reported like any other dropped field.
#[tokio::test]
async fn an_acl_that_silently_drops_the_notes_memory_is_reported() {
    let app = TestApp::spawn().await;
    app.servicenow.drop_writes_to("correlation_display");
    let created = app.deliver("01-alert-created").await;
    assert_eq!(created.status, 502, "{}", created.text);
    let message = created.body["message"].as_str().unwrap();
    assert!(
        message.contains("did not apply correlation_display"),
        "{message}"
    );
    assert!(message.contains("write access"), "{message}");
}
