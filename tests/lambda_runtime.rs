//! The built binary run as Lambda runs it: it polls a local Lambda Runtime API for API Gateway
//! events and SQS batches, answers them, logs JSON and writes its metrics on stdout.

mod support;

use serde_json::Value;
use simulator::RuntimeApiSimulator;
use std::process::{Command, Stdio};
use support::*;

/// Starts the built binary as Lambda does, against `runtime_api`, with stdout captured.
fn start_function(
    app: &TestApp,
    runtime_api: &RuntimeApiSimulator,
    extra: &[(&str, &str)],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ilert-servicenow"))
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ilert-servicenow")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .envs(app.function_environment())
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn envelope(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_api_gateway_events_from_the_runtime_api() {
    let app = TestApp::spawn().await;
    let runtime_api = RuntimeApiSimulator::start().await.unwrap();
    let mut child = start_function(
        &app,
        &runtime_api,
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("DEFAULT_SETTINGS", "category=Monitoring"),
        ],
    );

    let mut answers = Vec::new();
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "02-alert-acknowledged",
    ] {
        let answer = runtime_api.invoke(envelope(name)).await.expect("an answer");
        answers.push(serde_json::from_str::<Value>(&answer).unwrap());
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();

    let actions: Vec<Value> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer["statusCode"], 200, "{answer}");
            assert_eq!(answer["headers"]["content-type"], "application/json");
            serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap()["action"]
                .clone()
        })
        .collect();
    assert_eq!(actions, ["created", "updated", "unchanged"]);
    assert_eq!(
        app.incident()["category"],
        "Monitoring",
        "DEFAULT_SETTINGS applies"
    );

    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let metrics = lines.iter().filter(|l| l.get("_aws").is_some()).count();
    let summaries = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "invocation")
        .count();
    assert_eq!((metrics, summaries), (3, 3), "{stdout}");
    assert!(!stdout.contains(SN_PASSWORD) && !stdout.contains(TOKEN));
}

/// The template lets Lambda pass every application log line (it would take the metrics
/// lines, which carry no level, for INFO and drop them under a higher level) and hands the
/// operator's level to the function, which filters its own logs.
#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_lines_survive_a_log_level_above_info() {
    let template =
        std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        template.contains("ApplicationLogLevel: TRACE"),
        "Lambda filters nothing"
    );
    assert!(
        template.contains("SystemLogLevel: INFO"),
        "REPORT lines are kept"
    );
    assert!(template.contains("LOG_LEVEL: !Ref LogLevel"));

    let app = TestApp::spawn().await;
    let runtime_api = RuntimeApiSimulator::start().await.unwrap();
    let mut child = start_function(
        &app,
        &runtime_api,
        &[("AWS_LAMBDA_LOG_LEVEL", "TRACE"), ("LOG_LEVEL", "WARN")],
    );
    for name in ["01-alert-created", "02-alert-acknowledged"] {
        runtime_api.invoke(envelope(name)).await.expect("an answer");
    }
    child.kill().unwrap();
    let stdout = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let metrics = lines.iter().filter(|l| l.get("_aws").is_some()).count();
    assert_eq!(metrics, 2, "{stdout}");
    assert!(
        lines
            .iter()
            .all(|l| l.get("_aws").is_some() || l["level"] != "INFO"),
        "nothing at INFO under LOG_LEVEL=WARN: {stdout}"
    );
}

/// An SQS record as Lambda's event source mapping hands it over.
fn sqs_record(message_id: &str, alert_id: &str, event_name: &str, settings: &str) -> Value {
    let envelope: Value = serde_json::from_str(&envelope(event_name)).unwrap();
    let message = serde_json::json!({ "event": envelope["body"], "settings": settings });
    serde_json::json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": message.to_string(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764500000000",
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": alert_id,
            "MessageDeduplicationId": format!("dedup-{message_id}"),
            "ApproximateFirstReceiveTimestamp": "1764500000100"
        },
        "messageAttributes": {},
        "md5OfBody": "0123456789abcdef0123456789abcdef",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:ilert-servicenow-events.fifo",
        "awsRegion": "eu-central-1"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn in_queued_delivery_the_binary_applies_an_sqs_batch_from_the_runtime_api() {
    let app = TestApp::spawn().await;
    let runtime_api = RuntimeApiSimulator::start().await.unwrap();
    // Applying events never calls SQS (the event source mapping deletes what succeeded),
    // so the queues' URLs need not answer.
    let mut child = start_function(
        &app,
        &runtime_api,
        &[
            ("DELIVERY", "queued"),
            ("QUEUE_URL", "http://127.0.0.1:9/123456789012/events.fifo"),
            (
                "DEAD_LETTER_QUEUE_URL",
                "http://127.0.0.1:9/123456789012/events-dead-letter.fifo",
            ),
        ],
    );
    let batch = serde_json::json!({ "Records": [
        sqs_record("m-1", "12797430", "01-alert-created", "category=Queued"),
        sqs_record("m-2", "12797430", "02-alert-acknowledged", "category=Queued"),
    ]});
    let answer = runtime_api
        .invoke(batch.to_string())
        .await
        .expect("an answer");
    child.kill().unwrap();
    let _ = child.wait();

    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    let incident = app.incident();
    assert_eq!(incident["category"], "Queued", "the queued settings apply");
    assert_eq!(incident["state"], "2", "both events applied, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_runs_a_back_sync_pass_for_eventbridges_schedule() {
    let ilert = simulator::ILertSimulator::start(ILERT_KEY).await.unwrap();
    let app = TestApp::spawn_both_ways(&ilert).await;
    ilert.add_alert(12797430, "PENDING");
    let number = app.open_bundled_incident().await;
    app.servicenow
        .desk_edit(&number, "jane.desk", &[("state", "2")])
        .unwrap();
    let runtime_api = RuntimeApiSimulator::start().await.unwrap();
    let mut child = start_function(&app, &runtime_api, &[]);

    let answer = runtime_api
        .invoke(envelope("scheduled-back-sync"))
        .await
        .expect("an answer");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();

    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(ilert.alert_status(12797430).as_deref(), Some("ACCEPTED"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let pass = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "back_sync_pass")
        .unwrap_or_else(|| panic!("a pass summary line in {stdout}"));
    assert_eq!(pass["fields"]["accepted"], 1);
    assert!(
        stdout.contains(r#""BackSyncAccepted":1"#),
        "the pass's metrics: {stdout}"
    );
    assert!(!stdout.contains(ILERT_KEY), "the key is never logged");
}
