//! The README's first command, `cargo run -- demo`, run as a newcomer would: the built binary,
//! no AWS, no ServiceNow, no Docker.

use std::process::Command;

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

#[test]
fn the_demo_replays_the_bundled_lifecycle_onto_one_incident_and_redeliveries_change_nothing() {
    let (success, stdout, stderr) = run_binary(&["demo"]);
    assert!(success, "demo failed: {stderr}");

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
        ]
    );
    assert!(sections[0].contains(r#""action":"created""#));
    assert!(sections[0].contains("state 1 New"));
    assert!(sections[1].contains("state 2 In Progress"));
    assert!(sections[3].contains("state 6 Resolved"));
    assert!(sections[3].contains("RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s"));
    assert!(sections[3].contains("close_code: Solution provided"));
    for redelivery in &sections[6..] {
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
    assert!(!stdout.contains("demo-password"), "no secret in the output");
    assert!(!stderr.contains("demo-password"), "no secret in the logs");
}

#[test]
fn without_a_command_outside_lambda_the_binary_runs_the_demo_and_help_explains_it() {
    let (success, stdout, _) = run_binary(&[]);
    assert!(success);
    assert!(stdout.contains("ServiceNow simulator at http://127.0.0.1:"));

    let (success, stdout, _) = run_binary(&["--help"]);
    assert!(success);
    assert!(stdout.contains("demo"));

    let (success, _, stderr) = run_binary(&["frobnicate"]);
    assert!(!success);
    assert!(
        stderr.contains("unknown command \"frobnicate\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_simulator_command_serves_a_table_api_for_cargo_lambda_watch() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ilert-servicenow"))
        .args(["simulator", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first_line,
    )
    .unwrap();
    assert!(
        first_line.contains(&format!("http://127.0.0.1:{port}")),
        "{first_line}"
    );

    let url = format!("http://127.0.0.1:{port}/api/now/table/incident");
    let client = reqwest::Client::new();
    let refused = client.get(&url).send().await.unwrap();
    let allowed = client
        .get(&url)
        .basic_auth("ilert.integration", Some("simulator-password"))
        .send()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.text().await.unwrap(), r#"{"result":[]}"#);
}
