//! `target=event`: iLert alerts as ServiceNow Event Management events, against the
//! simulator's Event Management (records stored with 200 and processed a moment later, a
//! Clear closing the alert of its key, the traps of a real instance).

mod support;

use ilert_servicenow::domain::settings::Settings;
use serde_json::{json, Value};
use simulator::Fault;
use support::*;

/// The function sending every alert to Event Management, on an instance that has it.
async fn to_event_management() -> TestApp {
    let app = TestApp::spawn_with(
        Settings::default().with_query("target=event").unwrap(),
        |_| {},
    )
    .await;
    app.servicenow.enable_event_management();
    app
}

fn of_alert(name: &str, alert_id: &str) -> ilert_servicenow::flow::edge::WebhookRequest {
    let mut body = body_of(name);
    body["id"] = json!(alert_id);
    with_body(event(name), body.to_string())
}

#[tokio::test]
async fn an_alerts_life_ends_as_one_closed_alert_with_its_severity_history() {
    let app = to_event_management().await;
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
        "04-alert-resolved",
    ] {
        let answer = app.deliver(name).await;
        assert_eq!(
            (answer.status, &answer.body),
            (200, &json!({"action": "sent"})),
            "{name}: {}",
            answer.text
        );
    }
    // Delivered again after the resolve: the resolve changes nothing, the accept is late.
    assert_eq!(
        app.deliver("04-alert-resolved").await.body["action"],
        "sent"
    );
    let late = app.deliver("02-alert-acknowledged").await;
    assert_eq!(late.body["action"], "ignored", "{}", late.text);
    app.servicenow.process_events();

    let requests = app.servicenow.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.path == "/api/global/em/jsonv2"),
        "no lookup, no incident: {:?}",
        requests
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
    assert_eq!(requests.len(), 5);
    assert!(app.servicenow.incidents().is_empty());

    let alerts = app.servicenow.em_alerts();
    let [alert] = alerts.as_slice() else {
        panic!("one alert: {alerts:?}")
    };
    assert_eq!(alert["message_key"], "ilert:12797430");
    assert_eq!(alert["state"], "Closed");
    assert_eq!(
        alert["severity_history"],
        json!(["2", "2", "2", "0"]),
        "the resolve delivered again found the alert closed: {alert:?}"
    );
    for stored in app.servicenow.em_events() {
        assert_eq!(stored["state"], "Processed", "{stored:?}");
        let info: Value = serde_json::from_str(stored["additional_info"].as_str().unwrap())
            .expect("additional_info stayed JSON, not [object Object]");
        assert_eq!(info["ilert_alert_id"], "12797430");
        assert_eq!(stored["source"], "iLert");
        assert_eq!(stored["event_class"], "Prometheus Production");
    }
}

#[tokio::test]
async fn an_instance_without_event_management_or_the_role_is_a_502_that_says_which() {
    let app = TestApp::spawn_with(
        Settings::default().with_query("target=event").unwrap(),
        |_| {},
    )
    .await;
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("com.glideapp.itom.snac"),
        "{}",
        answer.text
    );

    app.servicenow.enable_event_management();
    app.servicenow.deny_event_role();
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("evt_mgmt_integration"),
        "{}",
        answer.text
    );
    assert!(app.servicenow.em_events().is_empty());
}

#[tokio::test]
async fn a_throttled_instance_is_retried_and_a_sleeping_one_is_a_503_that_stores_nothing() {
    let app = to_event_management().await;
    app.servicenow
        .inject(Some("POST"), Fault::status(429, Some(0)));
    app.servicenow
        .inject(Some("POST"), Fault::status(503, None));
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.body["action"], "sent", "{}", answer.text);
    assert_eq!(
        app.servicenow.requests().len(),
        3,
        "two refusals, then stored"
    );
    app.servicenow.process_events();
    assert_eq!(app.servicenow.em_events().len(), 1);
    assert_eq!(app.servicenow.em_alerts().len(), 1);

    // Asleep: an HTML page with 200, which is no proof of anything stored.
    app.servicenow.inject(Some("POST"), Fault::hibernating());
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.text.contains("asleep"), "{}", answer.text);
    assert_eq!(app.servicenow.em_events().len(), 1);
}

#[tokio::test]
async fn an_alert_action_may_choose_incidents_on_a_deployment_that_sends_events() {
    let app = to_event_management().await;
    let answer = app
        .send(event_at("01-alert-created", "target=incident"))
        .await;
    assert_eq!(answer.body["action"], "created", "{}", answer.text);
    let answer = app.send(of_alert("01-alert-created", "777")).await;
    assert_eq!(answer.body["action"], "sent", "{}", answer.text);
    assert_eq!(app.servicenow.incidents().len(), 1);
    assert_eq!(app.servicenow.em_events().len(), 1);
}

/// A password rotated in Secrets Manager reaches a warm function sending events too: the
/// refused login reads the secret again, once; a secret that still holds the refused password
/// is a 502 that says so.
#[tokio::test]
async fn a_rotated_password_is_picked_up_and_a_stale_one_is_a_502() {
    let app = to_event_management().await;
    assert_eq!(app.deliver("01-alert-created").await.body["action"], "sent");
    app.servicenow.set_password(SN_USER, "rotated-Pa55");
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(
        answer.status, 502,
        "the secret still holds the old one: {}",
        answer.text
    );
    assert!(answer.text.contains("password"), "{}", answer.text);

    app.put_password_in_secret("rotated-Pa55");
    let reads = app.secrets.reads();
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.body["action"], "sent", "{}", answer.text);
    assert_eq!(app.secrets.reads(), reads + 1, "read again once");
}
