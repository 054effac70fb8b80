//! What the function logs: one summary line per invocation with what happened, and never a
//! secret, a token, an `Authorization` header or a body, at any level.

mod support;

use serde_json::{json, Value};
use simulator::Fault;
use support::*;

fn summaries(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line["fields"]["message"] == "invocation")
        .collect()
}

#[tokio::test]
async fn a_full_run_logs_no_secret_token_header_or_body_at_any_level() {
    const WEBHOOK_TOKEN: &str = "whk-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const PASSWORD_AFTER_ROTATION: &str = "R0tated-S3cret-pw";
    let app = TestApp::spawn_with(Default::default(), |secret| {
        secret["webhook_token"] = json!(WEBHOOK_TOKEN);
    })
    .await;
    let authorised = |name: &str| {
        let mut request = event(name);
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {WEBHOOK_TOKEN}").parse().unwrap(),
        );
        request
    };

    let captured = logs_of(|| async {
        for name in LIFECYCLE {
            assert_eq!(app.send(authorised(name)).await.status, 200);
        }
        // A wrong token, a throttled instance, a rotated password, a refused write.
        let mut wrong = event("01-alert-created");
        wrong
            .headers_mut()
            .insert("authorization", "Bearer guess".parse().unwrap());
        assert_eq!(app.send(wrong).await.status, 401);
        app.servicenow
            .inject(Some("GET"), Fault::status(429, Some(0)));
        assert_eq!(
            app.send(authorised("06-legacy-docs-sample")).await.status,
            200
        );
        app.servicenow
            .set_password(SN_USER, PASSWORD_AFTER_ROTATION);
        app.secrets.put(
            SECRET_ID,
            &json!({
                "instance_url": app.servicenow.url(),
                "username": SN_USER,
                "password": PASSWORD_AFTER_ROTATION,
                "webhook_token": WEBHOOK_TOKEN,
            })
            .to_string(),
        );
        assert_eq!(app.send(authorised("05-test-connection")).await.status, 200);
        // An accept of another alert, whose write the instance refuses.
        let another = |name: &str| {
            let mut body = body_of(name);
            body["id"] = json!("777");
            with_body(authorised(name), body.to_string())
        };
        assert_eq!(app.send(another("01-alert-created")).await.status, 200);
        app.servicenow
            .inject(Some("PATCH"), Fault::status(403, None));
        assert_eq!(app.send(another("02-alert-acknowledged")).await.status, 502);
        assert_eq!(app.servicenow.faults_pending(), 0, "every fault was met");
    })
    .await;

    let text = captured.text();
    assert!(text.lines().count() > 10, "the capture works: {text}");
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    for secret in [
        WEBHOOK_TOKEN,
        SN_PASSWORD,
        PASSWORD_AFTER_ROTATION,
        &basic(SN_USER, SN_PASSWORD),
        &basic(SN_USER, PASSWORD_AFTER_ROTATION),
        "Rolled back deploy",   // a comment, from a body
        "api-gateway-prod p95", // the summary, from a body
    ] {
        assert!(!text.contains(secret), "{secret} was logged");
    }
    // A header logged as JSON (a map of headers, or a field of its own) has this key.
    assert!(!text.to_ascii_lowercase().contains("\"authorization\""));
}

#[tokio::test]
async fn each_invocation_logs_exactly_one_summary_line_with_what_it_did() {
    let app = TestApp::spawn().await;
    let captured = logs_of(|| async {
        app.deliver("01-alert-created").await;
        app.deliver("02-alert-acknowledged").await;
        app.deliver("02-alert-acknowledged").await;
        let mut bad = event("03-alert-comment-added");
        *bad.body_mut() = "{".into();
        app.send(bad).await;
    })
    .await;
    let lines = captured.lines();
    let summaries = summaries(&lines);
    assert_eq!(summaries.len(), 4, "{lines:#?}");

    let created = &summaries[0]["fields"];
    assert_eq!(summaries[0]["level"], "INFO");
    assert_eq!(created["outcome"], "handled");
    assert_eq!(created["alert_id"], "12797430");
    assert_eq!(created["event_type"], "alert-created");
    assert_eq!(created["action"], "created");
    assert_eq!(created["incident"], "INC0010001");
    assert_eq!(created["servicenow_requests"], 4);
    assert_eq!(created["retries"], 0);
    assert!(created["duration_ms"].as_f64().unwrap() > 0.0);

    assert_eq!(summaries[1]["fields"]["action"], "updated");
    assert_eq!(
        summaries[1]["fields"]["servicenow_requests"], 2,
        "the lookup (the journal with it), the update with its note"
    );
    assert_eq!(summaries[2]["fields"]["action"], "unchanged");
    assert_eq!(summaries[2]["fields"]["servicenow_requests"], 1);

    let refused = &summaries[3]["fields"];
    assert_eq!(summaries[3]["level"], "INFO");
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["status"], 400);
    assert_eq!(refused["failure"], "invalid_event");
    assert!(refused["cause"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
}

#[tokio::test]
async fn a_failure_summary_names_its_cause_and_counts_retries() {
    let app = TestApp::spawn()
        .await
        .with_time_budget(std::time::Duration::from_millis(600));
    for _ in 0..20 {
        app.servicenow.inject(None, Fault::status(503, None));
    }
    let captured = logs_of(|| async {
        assert_eq!(app.deliver("01-alert-created").await.status, 503);
    })
    .await;
    let lines = captured.lines();
    let [summary] = summaries(&lines).try_into().unwrap();
    let fields = &summary["fields"];
    assert_eq!(fields["outcome"], "failed");
    assert_eq!(fields["failure"], "unavailable");
    assert!(fields["cause"].as_str().unwrap().contains("503"));
    assert!(fields["retries"].as_u64().unwrap() >= 1);
    assert_eq!(
        fields["servicenow_requests"].as_u64(),
        fields["retries"].as_u64().map(|retries| retries + 1),
        "each attempt failed at its first request; the first also looked the caller up beside it"
    );
    // Down for longer than the budget: more faults than attempts, on purpose.
    app.servicenow.clear_faults();
}

/// Nobody can be authenticated without the secret, so its failures are answered without a
/// word about the configuration; whoever runs the function finds the cause in the log.
#[tokio::test]
async fn a_secret_that_cannot_be_used_is_answered_generically_and_its_cause_is_logged() {
    let app = TestApp::spawn().await;
    let missing = handler_reading(&app.secrets, "ilert/missing", Default::default());
    let incomplete = TestApp::spawn_with(Default::default(), |secret| {
        secret.as_object_mut().unwrap().remove("username");
    })
    .await;
    app.secrets.fail_next(400, "AccessDeniedException");

    let mut answers = Vec::new();
    let captured = logs_of(|| async {
        answers.push(app.deliver("01-alert-created").await);
        let response = missing.handle(event("01-alert-created"), None).await;
        answers.push(Answer {
            status: response.status().as_u16(),
            body: serde_json::from_str(response.body()).unwrap(),
            text: response.body().clone(),
            retry_after: None,
        });
        answers.push(incomplete.deliver("01-alert-created").await);
    })
    .await;

    let causes = captured.causes();
    let expected = [
        ("AccessDenied", SECRET_ID),
        ("secret ilert/missing was not found", "ilert/missing"),
        ("`username` is missing", SECRET_ID),
    ];
    assert_eq!(causes.len(), expected.len(), "{causes:?}");
    for ((answer, cause), (wanted, secret_name)) in answers.iter().zip(&causes).zip(expected) {
        assert_eq!(answer.status, 500, "{}", answer.text);
        assert!(answer.body["message"].as_str().unwrap().contains("log"));
        assert!(!answer.text.contains(secret_name), "{}", answer.text);
        assert!(cause.contains(wanted), "{cause}");
    }
    assert!(!captured.text().contains(SN_PASSWORD));
}
