//! The simulator's own binary, as the README's local try runs it beside `cargo lambda watch`.

use std::process::Command;

#[tokio::test]
async fn the_simulator_command_serves_a_table_api_for_cargo_lambda_watch() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ilert-servicenow-simulator"))
        .arg(port.to_string())
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
    // The workspace's reqwest brings no crypto provider of its own (the function chooses ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
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
