//! The shipped ServiceNow business rule (`servicenow/`), run under Node.js with stand-ins for
//! `current`, `gs` and `sn_ws.RESTMessageV2` built from the update set an admin imports: its
//! own tests, and the request it would send, sent to the real function.

mod support;

use serde_json::{json, Value};
use simulator::ILertSimulator;
use support::*;

#[test]
fn the_rules_own_tests_pass_under_node() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = node()
        .args([
            "--test",
            "--test-reporter=tap",
            "servicenow/tests/business-rule.test.js",
        ])
        .current_dir(root)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("# fail 0"), "{report}");
    let stale = node()
        .args(["servicenow/build-update-set.js", "--check"])
        .current_dir(root)
        .output()
        .expect("node runs");
    assert!(
        stale.status.success(),
        "the update set is stale: {}",
        String::from_utf8_lossy(&stale.stderr)
    );
}

/// What the rule sends when `user` saves `record` (after `previous`), as the harness reports
/// it.
fn fire(record: Value, previous: Value, user: &str) -> Value {
    let options = json!({
        "record": record,
        "previous": previous,
        "user": user,
        "token": PUSH_TOKEN,
        "endpoint": "https://abc.execute-api.eu-central-1.amazonaws.com/servicenow",
    });
    let output = node()
        .args(["servicenow/harness.js", &options.to_string()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the harness prints JSON")
}

#[tokio::test]
async fn a_desk_resolve_pushed_by_the_shipped_rule_resolves_the_alert_and_the_integrations_own_does_not_fire(
) {
    let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
    let app = TestApp::spawn_both_ways(&ilert).await;
    ilert.add_alert(12797430, "PENDING");
    let number = app.open_bundled_incident().await;
    app.servicenow
        .desk_edit(
            &number,
            "beth.anglin",
            &[
                ("state", "6"),
                ("close_code", "Solution provided"),
                ("close_notes", "Fixed."),
            ],
        )
        .unwrap();
    let incident = app.incident();
    let record = json!({
        "sys_id": incident["sys_id"], "number": number, "state": "6",
        "correlation_id": KEY,
    });
    let previous = json!({ "state": "1", "correlation_id": KEY });

    // The integration user's own writes never push: that is what keeps it loop-free.
    let own = fire(record.clone(), previous.clone(), SN_USER);
    assert_eq!(own["fired"], false, "{own}");

    let pushed = fire(record, previous, "beth.anglin");
    let [request] = pushed["requests"].as_array().unwrap().as_slice() else {
        panic!("one request: {pushed}");
    };
    assert_eq!(request["method"], "POST");
    // What the rule sends, as API Gateway hands it to the function.
    let event: ilert_servicenow::adapters::api_gateway::HttpApiEvent =
        serde_json::from_value(json!({
            "rawPath": "/servicenow",
            "rawQueryString": "",
            "headers": {
                "authorization": request["headers"]["Authorization"],
                "content-type": request["headers"]["Content-Type"],
            },
            "requestContext": { "http": { "method": "POST" } },
            "body": request["body"],
            "isBase64Encoded": false,
        }))
        .unwrap();
    let answer = app
        .send(ilert_servicenow::adapters::api_gateway::into_request(event))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "resolved");
    assert_eq!(ilert.alert_status(12797430).as_deref(), Some("RESOLVED"));
}
