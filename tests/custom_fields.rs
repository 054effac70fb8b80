//! An instance's own fields (`u_*`), set from the alert with `field.<name>=<template>`, against
//! the simulator: written and read back, refused when the name cannot be one, reported when
//! the instance drops them, and meeting a data policy that makes one mandatory.

mod support;

use serde_json::json;
use support::{body_of, event_at, with_body, TestApp, KEY};

/// The bundled `alert-created`, with labels and custom details as iLert sends them on alerts
/// that carry some, at a webhook URL with `query`.
fn created_with_labels(query: &str) -> ilert_servicenow::flow::edge::WebhookRequest {
    let mut body = body_of("01-alert-created");
    body["labels"] = json!({ "team": "payments", "app.kubernetes.io/name": "gateway" });
    body["customDetails"] = json!({ "region": "eu-central-1", "replicas": 3, "owner": null });
    with_body(event_at("01-alert-created", query), body.to_string())
}

const FIELDS: &str = "field.u_environment=production\
    &field.u_team=%7Blabel.team%7D\
    &field.u_app=%7Blabel.app.kubernetes.io%2Fname%7D\
    &field.u_region=%7Bcustom.region%7D%20(%7Bcustom.replicas%7D%20replicas)\
    &field.u_owner=%7Bcustom.owner%7D\
    &field.u_status=%7Bstatus%7D\
    &update_fields=u_status";

async fn instance_with_columns() -> TestApp {
    let app = TestApp::spawn().await;
    for column in [
        "u_environment",
        "u_team",
        "u_app",
        "u_region",
        "u_owner",
        "u_status",
    ] {
        app.servicenow.add_column(column);
    }
    app
}

#[tokio::test]
async fn custom_fields_are_written_from_the_alert_and_read_back() {
    let app = instance_with_columns().await;
    let created = app.send(created_with_labels(FIELDS)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["action"], "created");
    let incident = app.incident();
    assert_eq!(incident["u_environment"], "production");
    assert_eq!(incident["u_team"], "payments");
    assert_eq!(incident["u_app"], "gateway");
    assert_eq!(incident["u_region"], "eu-central-1 (3 replicas)");
    assert_eq!(
        incident["u_owner"], "",
        "a null detail renders empty and is not sent"
    );
    assert_eq!(incident["u_status"], "PENDING");
    let create = &app.servicenow.incident_requests()[1];
    assert_eq!(create.method, "POST");
    let sent = create.body.as_ref().unwrap();
    assert!(
        sent.get("u_owner").is_none(),
        "an empty value is not written: {sent}"
    );

    // The accept writes the state and a note; `u_status` rides along, `u_environment` does
    // not (creation only).
    app.servicenow
        .desk_edit(
            incident["number"].as_str().unwrap(),
            "admin",
            &[("u_environment", "staging")],
        )
        .unwrap();
    let accepted = app.send(event_at("02-alert-acknowledged", FIELDS)).await;
    assert_eq!(accepted.body["action"], "updated", "{}", accepted.text);
    let incident = app.incident();
    assert_eq!(incident["u_status"], "ACCEPTED");
    assert_eq!(
        incident["u_environment"], "staging",
        "the desk's edit stays"
    );

    // The same accept again changes nothing: the custom field alone writes nothing.
    app.servicenow.clear_requests();
    let again = app.send(event_at("02-alert-acknowledged", FIELDS)).await;
    assert_eq!(again.body["action"], "unchanged", "{}", again.text);
    assert_eq!(app.methods(), ["GET"]);
}

#[tokio::test]
async fn a_field_the_instance_does_not_have_is_a_502_naming_it() {
    let app = TestApp::spawn().await;
    app.servicenow.add_column("u_environment");
    let answer = app
        .send(event_at(
            "01-alert-created",
            "field.u_environment=production&field.u_enviroment=typo",
        ))
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("`u_enviroment` is not in its answer")
            && message.contains("no such column")
            && message.contains("field.u_enviroment")
            && !message.contains("`u_environment`"),
        "{message}"
    );
    // ServiceNow did create it, without the field: a redelivery finds it rather than making
    // a second one, and the field's loss is not hidden by a later success.
    assert_eq!(app.incident()["u_environment"], "production");
    let again = app
        .send(event_at(
            "01-alert-created",
            "field.u_environment=production&field.u_enviroment=typo",
        ))
        .await;
    assert_eq!(again.body["action"], "unchanged", "{}", again.text);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn a_field_the_user_may_not_write_is_a_502_naming_it() {
    let app = TestApp::spawn().await;
    app.servicenow.add_column("u_environment");
    app.servicenow.drop_writes_to("u_environment");
    let answer = app
        .send(event_at(
            "01-alert-created",
            "field.u_environment=production",
        ))
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("`u_environment` came back empty") && message.contains("field ACL"),
        "{message}"
    );
}

#[tokio::test]
async fn a_data_policy_that_makes_a_custom_field_mandatory_is_met_by_setting_it() {
    let app = TestApp::spawn().await;
    app.servicenow.add_column("u_environment");
    app.servicenow.make_mandatory("u_environment");
    let refused = app.send(event_at("01-alert-created", "")).await;
    assert!(refused.status >= 400, "{}", refused.text);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("mandatory: u_environment"),
        "{}",
        refused.text
    );
    assert!(app.servicenow.incidents().is_empty());

    let created = app
        .send(event_at(
            "01-alert-created",
            "field.u_environment=production",
        ))
        .await;
    assert_eq!(created.body["action"], "created", "{}", created.text);
    assert_eq!(
        app.servicenow.incident_for(KEY).unwrap()["u_environment"],
        "production"
    );
}

#[tokio::test]
async fn unusable_custom_field_settings_are_refused_before_servicenow_is_asked() {
    let app = instance_with_columns().await;
    let too_many: String = (0..21)
        .map(|n| format!("field.u_f{n}=x"))
        .collect::<Vec<_>>()
        .join("&");
    for (query, expected) in [
        ("field.state=6", "`field.state`"),
        ("field.correlation_id=x", "`field.correlation_id`"),
        ("field.work_notes=x", "written by the function itself"),
        ("field.U_Env=x", "not a ServiceNow column name"),
        ("field.u_env=%7Blabel%7D", "unknown placeholder {label}"),
        ("update_fields=u_env", "no `field.u_env`"),
        (too_many.as_str(), "at most 20"),
    ] {
        let answer = app.send(event_at("01-alert-created", query)).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    assert!(
        app.servicenow.requests().is_empty(),
        "bad settings change nothing"
    );
}
