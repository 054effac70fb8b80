//! The built binary run as Lambda runs it: it polls a local Lambda Runtime API for API Gateway
//! events, answers them, logs JSON and writes its metrics on stdout.

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
