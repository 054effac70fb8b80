//! The README's first command, `cargo run --example demo`, and the binary's own help: no AWS,
//! no ServiceNow, no Docker.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/demo.rs"]
mod demo;

fn run_binary(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ilert-servicenow"))
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("the binary starts");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the demo as `cargo run --example demo` does; its printout, and every log line.
async fn run_demo() -> (String, String) {
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);
    impl Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut printed = Vec::new();
    demo::run(&mut printed).await.expect("the demo runs");
    let logs = logs.0.lock().unwrap().clone();
    (
        String::from_utf8(printed).unwrap(),
        String::from_utf8(logs).unwrap(),
    )
}

#[tokio::test]
async fn the_demo_replays_the_bundled_lifecycle_onto_one_incident_and_redeliveries_change_nothing()
{
    let (stdout, stderr) = run_demo().await;

    let sections: Vec<&str> = stdout.split("── ").skip(1).collect();
    let names: Vec<&str> = sections.iter().map(|s| s.lines().next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "01-alert-created",
            "02-alert-acknowledged",
            "03-alert-comment-added",
            "04-alert-resolved",
            "05-test-connection",
            "06-legacy-docs-sample",
            "02-alert-acknowledged",
            "03-alert-comment-added",
            "ServiceNow → iLert: the service desk (jane.desk) resolves INC0010003",
            "iLert's echo of that resolve, to the webhook",
        ]
    );
    assert!(sections[0].contains(r#""action":"created""#));
    assert!(sections[0].contains("state 1 New"));
    assert!(sections[1].contains("state 2 In Progress"));
    assert!(sections[3].contains("state 6 Resolved"));
    assert!(sections[3].contains("RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s"));
    assert!(sections[3].contains("close_code: Solution provided"));
    for redelivery in &sections[6..8] {
        assert!(
            redelivery.contains(r#""action":"unchanged""#),
            "{redelivery}"
        );
        assert!(
            redelivery.contains("ServiceNow requests: 1 (GET incident)"),
            "{redelivery}"
        );
    }
    // The four lifecycle events share one incident; the other two samples are other alerts.
    for section in &sections[..4] {
        assert!(section.contains("INC0010001"), "{section}");
    }
    // The way back: the desk's resolve reaches the alert; iLert's echo of it writes nothing.
    assert!(
        sections[8].contains("iLert alert 2983781: ACCEPTED → RESOLVED"),
        "{}",
        sections[8]
    );
    assert!(
        sections[9].contains(r#""action":"unchanged""#),
        "{}",
        sections[9]
    );
    assert!(sections[9].contains("echo"), "{}", sections[9]);
    assert!(
        sections[9].contains("ServiceNow requests: 1 (GET incident)"),
        "{}",
        sections[9]
    );
    assert!(
        stderr.contains("invocation"),
        "the capture holds the demo's log lines: {stderr}"
    );
    assert!(!stdout.contains("demo-password"), "no secret in the output");
    assert!(
        !stdout.contains("demo-ilert-api-key"),
        "no secret in the output"
    );
    assert!(
        !stderr.contains("demo-ilert-api-key"),
        "no secret in the logs"
    );
    assert!(!stderr.contains("demo-password"), "no secret in the logs");
}

#[test]
fn without_a_command_outside_lambda_the_binary_explains_itself_and_has_no_demo() {
    let (success, _, stderr) = run_binary(&[]);
    assert!(!success);
    assert!(stderr.contains("not in AWS Lambda"), "{stderr}");
    assert!(
        stderr.contains("check") && stderr.contains("send"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo run --example demo"), "{stderr}");

    let (success, stdout, _) = run_binary(&["--help"]);
    assert!(success);
    assert!(
        stdout.contains("check") && stdout.contains("send"),
        "{stdout}"
    );

    for gone in ["demo", "simulator", "frobnicate"] {
        let (success, _, stderr) = run_binary(&[gone]);
        assert!(!success, "{gone}");
        assert!(
            stderr.contains(&format!("unrecognized subcommand '{gone}'")),
            "{stderr}"
        );
    }
}
