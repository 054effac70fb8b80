//! A corpus of bad bodies, sent as API Gateway would deliver them through the Lambda adapter:
//! each is answered 4xx, with no ServiceNow request and no crash.

mod support;

use base64::Engine;
use ilert_servicenow::adapters::api_gateway::HttpApiEvent;
use lambda_runtime::Context;
use serde_json::{json, Value};
use support::*;

fn envelope() -> HttpApiEvent {
    let path = format!(
        "{}/events/01-alert-created.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn valid_body() -> Value {
    let body = envelope().body.unwrap();
    serde_json::from_str(&body).unwrap()
}

fn with_field(field: &str, value: Value) -> String {
    let mut body = valid_body();
    body[field] = value;
    body.to_string()
}

/// Bodies as text (`isBase64Encoded: false`).
fn text_corpus() -> Vec<(String, String)> {
    let mut corpus: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        ("whitespace".into(), " \n\t ".into()),
        ("not JSON".into(), "alert!".into()),
        ("an array".into(), "[]".into()),
        ("an array of events".into(), format!("[{}]", valid_body())),
        ("a number".into(), "12797430".into()),
        ("a string".into(), "\"12797430\"".into()),
        ("true".into(), "true".into()),
        ("null".into(), "null".into()),
        (
            "truncated JSON".into(),
            valid_body().to_string()[..200].to_owned(),
        ),
        (
            "nesting 10,000 deep".into(),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "a lone surrogate".into(),
            r#"{"id":"1","status":"PENDING","summary":"\ud800"}"#.into(),
        ),
        (
            "an unknown status".into(),
            with_field("status", json!("SNOOZED")),
        ),
        (
            "a lowercase status".into(),
            with_field("status", json!("pending")),
        ),
    ];
    for (name, id) in [
        ("id with ^", json!("12797430^ORDERBYnumber")),
        ("id with a query", json!("1^correlation_idISNOTEMPTY")),
        ("id with =", json!("correlation_id=ilert:1")),
        ("negative id", json!(-12797430)),
        ("negative id as text", json!("-12797430")),
        ("21-digit id", json!("123456789012345678901")),
        ("id beyond u64", json!(123456789012345678901_f64)),
        ("fractional id", json!(1.5)),
        ("id with spaces", json!(" 12797430")),
        ("empty id", json!("")),
        ("null id", Value::Null),
        ("id as object", json!({"id": 1})),
        ("id as array", json!([1])),
        ("id as bool", json!(true)),
    ] {
        corpus.push((name.into(), with_field("id", id)));
    }
    for field in [
        "summary",
        "details",
        "status",
        "eventType",
        "priority",
        "reportTime",
        "resolvedOn",
        "alertKey",
        "alertSource",
        "escalationPolicy",
        "assignedTo",
        "responders",
        "comment",
        "links",
        "eventId",
        "timestamp",
    ] {
        for wrong in [json!(42), json!(["x"]), json!({"x": 1}), json!(true)] {
            let is_object_field =
                matches!(field, "alertSource" | "escalationPolicy" | "assignedTo");
            if is_object_field && wrong.is_object() {
                continue; // an object is the right type there
            }
            corpus.push((format!("{field} = {wrong}"), with_field(field, wrong)));
        }
    }
    corpus.push((
        "a responder that is a number".into(),
        with_field("responders", json!([7])),
    ));
    corpus.push((
        "a link that is a string".into(),
        with_field("links", json!(["https://x"])),
    ));
    corpus
}

/// A valid event whose body is exactly one byte over the 256 KiB limit.
fn just_over_the_limit() -> String {
    let without_details = with_field("details", json!("")).len();
    let body = with_field(
        "details",
        json!("x".repeat(256 * 1024 + 1 - without_details)),
    );
    assert_eq!(body.len(), 256 * 1024 + 1);
    body
}

fn request(body: String, base64_encoded: bool) -> HttpApiEvent {
    let mut event = envelope();
    event.body = Some(body);
    event.is_base64_encoded = base64_encoded;
    event
}

#[tokio::test]
async fn every_hostile_body_is_a_4xx_that_reaches_nothing() {
    let app = TestApp::spawn().await;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut cases: Vec<(String, HttpApiEvent)> = text_corpus()
        .into_iter()
        .map(|(name, body)| (name, request(body, false)))
        .collect();
    cases.extend([
        (
            "base64 that does not decode".to_owned(),
            request("%%% not base64 %%%".into(), true),
        ),
        (
            "invalid UTF-8".to_owned(),
            request(
                base64.encode(b"{\"id\":\"1\",\"status\":\"PENDING\",\"summary\":\"\xff\xfe\"}"),
                true,
            ),
        ),
        (
            "a body just over 256 KiB".to_owned(),
            request(just_over_the_limit(), false),
        ),
        (
            "base64 of a body just over 256 KiB".to_owned(),
            request(base64.encode(just_over_the_limit()), true),
        ),
    ]);
    assert!(cases.len() > 80, "{} cases", cases.len());

    for (name, event) in cases {
        let answer =
            ilert_servicenow::startup::answer_http(&app.handler, event, Context::default()).await;
        let body: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|_| panic!("{name}: the answer is JSON"));
        assert!(
            (400..500).contains(&answer.status_code),
            "{name}: {} {body}",
            answer.status_code
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: says what is wrong"
        );
        assert!(
            app.servicenow.requests().is_empty(),
            "{name}: reached ServiceNow"
        );
    }
}

#[tokio::test]
async fn deep_nesting_in_a_field_ilert_may_add_later_neither_crashes_nor_blocks_the_event() {
    let app = TestApp::spawn().await;
    let body = format!(
        r#"{{"id":"1","status":"PENDING","summary":"s","newField":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let answer = ilert_servicenow::startup::answer_http(
        &app.handler,
        request(body, false),
        Context::default(),
    )
    .await;
    assert_eq!(
        answer.status_code, 200,
        "unknown fields are ignored, however deep"
    );
}

#[tokio::test]
async fn a_valid_base64_body_is_decoded_and_handled() {
    let app = TestApp::spawn().await;
    let body = base64::engine::general_purpose::STANDARD.encode(valid_body().to_string());
    let answer = ilert_servicenow::startup::answer_http(
        &app.handler,
        request(body, true),
        Context::default(),
    )
    .await;
    assert_eq!(answer.status_code, 200);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_a_bad_base64_body_is_400_saying_so() {
    let app = TestApp::spawn().await;
    let big = request(with_field("details", json!("x".repeat(300 * 1024))), false);
    let answer =
        ilert_servicenow::startup::answer_http(&app.handler, big, Context::default()).await;
    assert_eq!(answer.status_code, 413);

    let garbled = request("%%%".into(), true);
    let answer =
        ilert_servicenow::startup::answer_http(&app.handler, garbled, Context::default()).await;
    assert_eq!(answer.status_code, 400);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("base64"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_body_without_credentials_is_401_not_400() {
    let app = TestApp::spawn().await;
    let mut garbled = request("%%%".into(), true);
    garbled.headers.remove("authorization");
    let answer =
        ilert_servicenow::startup::answer_http(&app.handler, garbled, Context::default()).await;
    assert_eq!(answer.status_code, 401);
}

/// Webhook URLs whose settings try to reach what they must not (the function's own fields,
/// system fields, the encoded query, more fields than allowed, an instance the secret does not
/// hold) or cannot be read: each is a 400 naming the setting, before anything reaches
/// ServiceNow.
#[tokio::test]
async fn every_hostile_custom_field_or_instance_setting_is_a_400_that_reaches_nothing() {
    let app = TestApp::spawn().await;
    let too_many = (0..21)
        .map(|n| format!("field.u_{n}=x"))
        .collect::<Vec<_>>()
        .join("&");
    let long_name = format!("field.u_{}=x", "a".repeat(79));
    let cases: Vec<(&str, String)> = vec![
        ("the state", "field.state=7".into()),
        ("the key", "field.correlation_id=ilert:1".into()),
        (
            "the notes' memory",
            "field.correlation_display=iLert".into(),
        ),
        ("a journal", "field.work_notes=x".into()),
        ("the priority", "field.priority=1".into()),
        ("a system field", "field.sys_created_by=admin".into()),
        ("the number", "field.number=INC0000001".into()),
        (
            "an encoded query in the name",
            "field.u_x%5EORDERBYnumber=x".into(),
        ),
        ("an operator in the name", "field.u_x%3Dy=x".into()),
        ("a dotted name", "field.u_x.y=x".into()),
        ("an empty name", "field.=x".into()),
        ("uppercase", "field.U_X=x".into()),
        ("a NUL in the name", "field.u_x%00=x".into()),
        ("a name of 81 characters", long_name),
        ("21 fields", too_many),
        ("an unknown placeholder", "field.u_x=%7Bpassword%7D".into()),
        ("an empty label name", "field.u_x=%7Blabel.%7D".into()),
        (
            "a brace in a label name",
            "field.u_x=%7Blabel.%7Bx%7D%7D".into(),
        ),
        ("an unclosed brace", "field.u_x=%7Bsummary".into()),
        ("a control character in the value", "field.u_x=a%07b".into()),
        (
            "a value of 2,001 characters",
            format!("field.u_x={}", "v".repeat(2001)),
        ),
        ("not UTF-8", "field.u_x=%FF%FE".into()),
        (
            "update_fields reaching the state",
            "update_fields=state".into(),
        ),
        (
            "update_fields with a query",
            "field.u_x=1&update_fields=u_x%5Estate".into(),
        ),
        (
            "update_fields naming no field",
            "update_fields=u_nothing".into(),
        ),
        ("a field given twice", "field.u_x=1&field.u_x=2".into()),
        (
            "an instance with a query",
            "instance=default%5Estate%3D7".into(),
        ),
        ("an instance with a path", "instance=..%2F..%2Fetc".into()),
        ("an instance the secret lacks", "instance=acme-prod".into()),
        ("an uppercase instance", "instance=Default".into()),
        (
            "an instance of 65 characters",
            format!("instance={}", "a".repeat(65)),
        ),
        (
            "an instance given twice",
            "instance=default&instance=default".into(),
        ),
    ];
    for (name, query) in cases {
        let answer = app.send(event_at("01-alert-created", &query)).await;
        assert_eq!(answer.status, 400, "{name}: {}", answer.text);
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("field") || message.contains("setting"),
            "{name}: {message}"
        );
        assert!(
            app.servicenow.requests().is_empty(),
            "{name}: reached ServiceNow"
        );
    }
}
