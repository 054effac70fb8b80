//! Event Management over real HTTP: the `jsonv2` endpoint's answers, how stored events become
//! alerts, the traps a real instance sets, and reading both tables back.

use super::{Fault, ServiceNowSimulator};
use serde_json::{json, Value};
use std::time::Duration;

const USER: &str = "ilert.integration";
const PASSWORD: &str = "integration-password";
const EVENT_API: &str = "/api/global/em/jsonv2";

/// Long enough that no test meets the background job unless it waits for it.
const NEVER_BY_ITSELF: Duration = Duration::from_secs(3600);

struct Instance {
    servicenow: ServiceNowSimulator,
    client: reqwest::Client,
}

/// One HTTP answer: status, `Content-Type`, body text.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", self.text))
    }
}

impl Instance {
    /// An instance without Event Management.
    async fn plain() -> Self {
        // The workspace's reqwest brings no crypto provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            servicenow: ServiceNowSimulator::start(USER, PASSWORD).await.unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// An instance with Event Management whose events wait for [`Self::process`].
    async fn with_event_management() -> Self {
        let instance = Self::plain().await;
        instance.servicenow.enable_event_management();
        instance
            .servicenow
            .set_event_processing_delay(NEVER_BY_ITSELF);
        instance
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.servicenow.url()))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Answer {
            status: response.status().as_u16(),
            content_type,
            text: response.text().await.unwrap(),
        }
    }

    /// Posts `{"records": records}` to the event endpoint.
    async fn send_events(&self, records: Value) -> Answer {
        let body = json!({ "records": records }).to_string();
        self.send("POST", EVENT_API, Some(body)).await
    }

    /// Posts one event with this key and severity, and expects it stored.
    async fn event(&self, key: &str, severity: &str, description: &str) {
        let answer = self
            .send_events(json!([{
                "source": "iLert",
                "node": "checkout",
                "message_key": key,
                "severity": severity,
                "description": description,
            }]))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    fn process(&self) {
        self.servicenow.process_events();
    }

    fn alerts(&self) -> Vec<serde_json::Map<String, Value>> {
        self.servicenow.em_alerts()
    }

    fn events(&self) -> Vec<serde_json::Map<String, Value>> {
        self.servicenow.em_events()
    }
}

fn text(record: &serde_json::Map<String, Value>, field: &str) -> String {
    record[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn stored_events_answer_with_the_count_and_wait_ready() {
    let instance = Instance::with_event_management().await;
    let answer = instance
        .send_events(json!([
            { "message_key": "a", "severity": "1", "node": "n" },
            { "message_key": "b", "severity": "3", "node": "n" },
        ]))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        json!({ "result": { "Default Bulk Endpoint": "2 events were inserted" } })
    );
    let events = instance.events();
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(text(event, "state"), "Ready");
        assert_eq!(text(event, "sys_id").len(), 32);
        let created = text(event, "sys_created_on");
        assert!(
            crate::clock::parse_glide_date_time(&created).is_some(),
            "{created:?}"
        );
    }
    assert_ne!(text(&events[0], "sys_id"), text(&events[1], "sys_id"));
    assert!(instance.alerts().is_empty(), "not processed yet");
    let recorded = instance.servicenow.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, EVENT_API);
    assert_eq!(
        recorded[0].body.as_ref().unwrap()["records"][1]["message_key"],
        "b"
    );
}

#[tokio::test]
async fn an_alert_opens_updates_and_a_clear_closes_it_keeping_its_severity() {
    let instance = Instance::with_event_management().await;
    instance.event("ilert-1", "3", "Disk filling").await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1);
    let number = text(&alerts[0], "number");
    assert_eq!(number, "Alert0010001");
    assert_eq!(text(&alerts[0], "state"), "Open");
    assert_eq!(text(&alerts[0], "message_key"), "ilert-1");

    // An update with a blank description keeps the alert's.
    instance.event("ilert-1", "2", "").await;
    instance.process();
    let alert = &instance.alerts()[0];
    assert_eq!(text(alert, "severity"), "2");
    assert_eq!(text(alert, "description"), "Disk filling");
    assert_eq!(text(alert, "state"), "Open");

    instance.event("ilert-1", "0", "Resolved").await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1, "a clear makes no alert of its own");
    assert_eq!(text(&alerts[0], "state"), "Closed");
    assert_eq!(
        text(&alerts[0], "severity"),
        "2",
        "keeps its last non-clear severity"
    );
    assert_eq!(alerts[0]["severity_history"], json!(["3", "2", "0"]));
    for event in instance.events() {
        assert_eq!(text(&event, "state"), "Processed");
        assert_eq!(text(&event, "alert"), number);
    }
}

#[tokio::test]
async fn severity_five_still_opens_an_alert() {
    let instance = Instance::with_event_management().await;
    instance.event("ok-only", "5", "All fine").await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(text(&alerts[0], "state"), "Open");
    assert_eq!(text(&alerts[0], "severity"), "5");
}

#[tokio::test]
async fn a_clear_without_an_open_alert_makes_none() {
    let instance = Instance::with_event_management().await;
    instance.event("never-opened", "0", "Resolved").await;
    instance.process();
    assert!(instance.alerts().is_empty());
    let event = &instance.events()[0];
    assert_eq!(text(event, "state"), "Processed");
    assert_eq!(text(event, "alert"), "");
}

#[tokio::test]
async fn within_the_active_interval_an_event_reopens_after_it_a_new_alert_opens() {
    let instance = Instance::with_event_management().await;
    instance
        .servicenow
        .set_alert_active_interval(Duration::from_millis(300));
    instance.event("flappy", "1", "Down").await;
    instance.event("flappy", "0", "Up").await;
    instance.event("flappy", "2", "Down again").await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(text(&alerts[0], "state"), "Reopen");
    assert_eq!(text(&alerts[0], "severity"), "2");
    assert_eq!(alerts[0]["severity_history"], json!(["1", "0", "2"]));

    instance.event("flappy", "0", "Up").await;
    instance.process();
    tokio::time::sleep(Duration::from_millis(400)).await;
    instance.event("flappy", "1", "Down once more").await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 2, "one key, two alerts over time");
    assert_eq!(text(&alerts[0], "state"), "Closed");
    assert_eq!(text(&alerts[1], "state"), "Open");
    assert_eq!(text(&alerts[1], "number"), "Alert0010002");
    assert_eq!(alerts[1]["severity_history"], json!(["1"]));
    assert_eq!(text(&instance.events()[4], "alert"), "Alert0010002");
}

#[tokio::test]
async fn a_missing_or_invalid_severity_is_stored_then_errors_without_an_alert() {
    let instance = Instance::with_event_management().await;
    let answer = instance
        .send_events(json!([
            { "message_key": "no-severity", "node": "n" },
            { "message_key": "empty", "node": "n", "severity": "" },
            { "message_key": "six", "node": "n", "severity": "6" },
            { "message_key": "numeric", "node": "n", "severity": 3 },
        ]))
        .await;
    assert_eq!(answer.status, 200, "rejections never show in the answer");
    assert_eq!(
        answer.json()["result"]["Default Bulk Endpoint"],
        "4 events were inserted"
    );
    instance.process();
    let events = instance.events();
    for event in &events[..3] {
        assert_eq!(text(event, "state"), "Error");
        assert_eq!(
            text(event, "processing_notes"),
            "Missing or invalid severity"
        );
        assert_eq!(text(event, "alert"), "");
    }
    // A number is stored as its text, which is a valid severity.
    assert_eq!(text(&events[3], "severity"), "3");
    assert_eq!(text(&events[3], "state"), "Processed");
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(text(&alerts[0], "message_key"), "numeric");
}

#[tokio::test]
async fn additional_info_as_an_object_is_stored_as_object_object() {
    let instance = Instance::with_event_management().await;
    instance
        .send_events(json!([
            { "message_key": "obj", "severity": "3", "additional_info": { "team": "payments" } },
            { "message_key": "str", "severity": "3", "additional_info": "{\"team\":\"payments\"}" },
        ]))
        .await;
    instance.process();
    let events = instance.events();
    assert_eq!(text(&events[0], "additional_info"), "[object Object]");
    assert_eq!(
        text(&events[1], "additional_info"),
        "{\"team\":\"payments\"}"
    );
    assert_eq!(
        text(&instance.alerts()[0], "additional_info"),
        "[object Object]"
    );
}

#[tokio::test]
async fn values_longer_than_their_column_are_cut_short_silently() {
    let instance = Instance::with_event_management().await;
    let answer = instance
        .send_events(json!([{
            "severity": "2",
            "source": "s".repeat(150),
            "node": "n".repeat(101),
            "type": "t".repeat(100),
            "message_key": "k".repeat(2000),
            "description": "d".repeat(5000),
            "time_of_event": "2026-01-01 00:00:00 and a lot more than forty characters",
        }]))
        .await;
    assert_eq!(answer.status, 200);
    let event = &instance.events()[0];
    let length = |field: &str| text(event, field).chars().count();
    assert_eq!(length("source"), 100);
    assert_eq!(length("node"), 100);
    assert_eq!(length("type"), 100, "at the limit: kept whole");
    assert_eq!(length("message_key"), 1024);
    assert_eq!(length("description"), 4000);
    assert_eq!(length("time_of_event"), 40);
    instance.process();
    assert_eq!(text(&instance.alerts()[0], "node"), "n".repeat(100));
}

#[tokio::test]
async fn an_empty_message_key_is_built_from_source_node_type_resource_and_metric() {
    let instance = Instance::with_event_management().await;
    let record = json!({
        "source": "iLert", "node": "db1", "type": "disk", "resource": "/var",
        "metric_name": "used", "severity": "4",
    });
    instance.send_events(json!([record.clone(), record])).await;
    instance.process();
    let alerts = instance.alerts();
    assert_eq!(alerts.len(), 1, "the second event updates the same alert");
    assert_eq!(text(&alerts[0], "message_key"), "iLertdb1disk/varused");
}

#[tokio::test]
async fn the_background_job_processes_events_a_moment_later() {
    let instance = Instance::plain().await;
    instance.servicenow.enable_event_management();
    instance.event("by-itself", "1", "Down").await;
    assert_eq!(text(&instance.events()[0], "state"), "Ready");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while instance.alerts().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never processed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(text(&instance.events()[0], "state"), "Processed");
    assert_eq!(text(&instance.alerts()[0], "state"), "Open");
}

#[tokio::test]
async fn without_the_plugin_neither_the_endpoint_nor_the_tables_exist() {
    let instance = Instance::plain().await;
    let answer = instance
        .send_events(json!([{ "message_key": "a", "severity": "1" }]))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({ "error": { "message": "Requested URI does not represent any resource", "detail": null }, "status": "failure" })
    );
    for table in ["em_alert", "em_event"] {
        let answer = instance.get(&format!("/api/now/table/{table}")).await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.json(),
            json!({ "error": { "message": format!("Invalid table {table}"), "detail": null }, "status": "failure" })
        );
    }
    assert!(instance.events().is_empty());
    assert_eq!(
        instance.servicenow.requests().len(),
        3,
        "every request recorded"
    );
}

#[tokio::test]
async fn without_the_integration_role_sending_is_forbidden() {
    let instance = Instance::with_event_management().await;
    instance.servicenow.deny_event_role();
    let answer = instance
        .send_events(json!([{ "message_key": "a", "severity": "1" }]))
        .await;
    assert_eq!(answer.status, 403);
    let body = answer.json();
    assert_eq!(body["error"]["message"], "User Not Authorized");
    assert_eq!(body["status"], "failure");
    assert!(instance.events().is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_refused_as_on_the_table_api() {
    let instance = Instance::with_event_management().await;
    let response = instance
        .client
        .post(format!("{}{EVENT_API}", instance.servicenow.url()))
        .basic_auth(USER, Some("wrong"))
        .body(json!({ "records": [] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(instance.events().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_json_or_has_no_records_is_a_400() {
    let instance = Instance::with_event_management().await;
    for body in [
        "not json",
        r#"{"record":[]}"#,
        r#"{"records":{"severity":"1"}}"#,
        r#"{"records":["a string"]}"#,
    ] {
        let answer = instance
            .send("POST", EVENT_API, Some(body.to_owned()))
            .await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.json()["status"], "failure", "{body}");
    }
    assert!(instance.events().is_empty());
}

#[tokio::test]
async fn a_hibernating_instance_answers_the_endpoint_with_its_page() {
    let instance = Instance::with_event_management().await;
    instance
        .servicenow
        .inject(Some("POST"), Fault::hibernating());
    let answer = instance
        .send_events(json!([{ "message_key": "a", "severity": "1" }]))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/html");
    assert!(answer.text.contains("hibernating"), "{}", answer.text);
    assert!(instance.events().is_empty(), "nothing applied");
    assert_eq!(instance.servicenow.faults_pending(), 0);

    instance.servicenow.start_outage(Fault::status(503, None));
    let answer = instance
        .send_events(json!([{ "message_key": "a", "severity": "1" }]))
        .await;
    assert_eq!(answer.status, 503);
    instance.servicenow.end_outage();
    assert_eq!(instance.servicenow.requests_during_outage(), 1);
    assert!(instance.events().is_empty());
}

#[tokio::test]
async fn alerts_read_back_by_key_newest_first_with_the_fields_asked_for() {
    let instance = Instance::with_event_management().await;
    instance
        .servicenow
        .set_alert_active_interval(Duration::ZERO);
    instance.event("key-1", "1", "first").await;
    instance.event("key-1", "0", "").await;
    instance.event("key-1", "3", "second").await;
    instance.event("key-2", "2", "other").await;
    instance.process();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "sysparm_query",
            "message_key=key-1^ORDERBYDESCsys_created_on",
        )
        .append_pair(
            "sysparm_fields",
            "number,state,severity,incident,no_such_field",
        )
        .finish();
    let answer = instance
        .get(&format!("/api/now/table/em_alert?{query}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({ "result": [
            { "number": "Alert0010002", "state": "Open", "severity": "3", "incident": "" },
            { "number": "Alert0010001", "state": "Closed", "severity": "1", "incident": "" },
        ] })
    );
    let limited = instance
        .get(&format!("/api/now/table/em_alert?{query}&sysparm_limit=1"))
        .await;
    assert_eq!(limited.json()["result"].as_array().unwrap().len(), 1);
    assert_eq!(limited.json()["result"][0]["number"], "Alert0010002");

    let events = instance
        .get("/api/now/table/em_event?sysparm_query=message_key%3Dkey-2&sysparm_fields=state,alert")
        .await;
    assert_eq!(
        events.json(),
        json!({ "result": [{ "state": "Processed", "alert": "Alert0010003" }] })
    );

    let sys_id = text(&instance.alerts()[0], "sys_id");
    let one = instance
        .get(&format!(
            "/api/now/table/em_alert/{sys_id}?sysparm_fields=number"
        ))
        .await;
    assert_eq!(
        one.json(),
        json!({ "result": { "number": "Alert0010001" } })
    );
    let missing = instance.get("/api/now/table/em_alert/0123").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn without_evt_mgmt_user_alerts_cannot_be_read_but_events_can() {
    let instance = Instance::with_event_management().await;
    instance.servicenow.deny_alert_read();
    instance.event("a", "1", "Down").await;
    instance.process();
    let answer = instance
        .get("/api/now/table/em_alert?sysparm_query=message_key%3Da")
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["error"]["message"], "User Not Authorized");
    assert_eq!(answer.json()["status"], "failure");
    let events = instance.get("/api/now/table/em_event").await;
    assert_eq!(events.status, 200);
    assert_eq!(events.json()["result"].as_array().unwrap().len(), 1);
}
