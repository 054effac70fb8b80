//! The operator's commands, run as a person would: the built binary, with the Lambda's
//! environment aimed at the simulators. Exit codes and output are what is asserted.

mod support;

use serde_json::json;
use simulator::Fault;
use std::process::Command;
use support::*;

struct Run {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with the environment a deployed function has, pointed at `app`'s
/// simulators, without blocking the runtime that serves them.
async fn run(app: &TestApp, args: &[&str]) -> Run {
    run_with(app.function_environment(), args, "").await
}

/// Runs the binary with only `environment` (and PATH), `stdin` on its standard input.
async fn run_with(environment: Vec<(&'static str, String)>, args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ilert-servicenow"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(environment)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let run = Run {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(SN_PASSWORD), "a secret was printed: {text}");
        assert!(!text.contains(TOKEN), "a secret was printed: {text}");
    }
    run
}

fn line<'a>(run: &'a Run, step: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|line| line[5..].starts_with(step))
        .unwrap_or_else(|| panic!("no {step} line in:\n{}", run.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_every_step_against_a_working_instance() {
    let app = TestApp::spawn().await;
    app.servicenow.insert(&[
        ("state", "1"),
        ("short_description", "an existing incident"),
    ]);
    let run = run(&app, &["check"]).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    for step in [
        "secret",
        "reach instance",
        "authenticate",
        "read incidents",
        "look up by key",
        "write incidents",
    ] {
        assert!(line(&run, step).starts_with("OK"), "{}", run.stdout);
    }
    assert!(line(&run, "secret").contains(&format!("as user {SN_USER}, HTTP Basic")));
    assert_eq!(
        app.servicenow.incidents()[0]["short_description"],
        "an existing incident"
    );
}

/// `check` reads every custom field `DEFAULT_SETTINGS` sets on the newest incident: a
/// misspelt one (or one the user may not read) is named before iLert's first event meets it.
#[tokio::test(flavor = "multi_thread")]
async fn check_tries_every_custom_field_of_the_defaults() {
    let app = TestApp::spawn().await;
    app.servicenow.add_column("u_environment");
    app.servicenow.add_column("u_team");
    let with_defaults = |defaults: &str| {
        let mut environment = app.function_environment();
        environment.push(("DEFAULT_SETTINGS", defaults.to_owned()));
        environment
    };
    let none_yet = run_with(
        with_defaults("field.u_environment=production"),
        &["check"],
        "",
    )
    .await;
    assert!(
        line(&none_yet, "custom fields").starts_with("SKIP"),
        "{}",
        none_yet.stdout
    );

    app.servicenow
        .insert(&[("state", "7"), ("short_description", "old, closed")]);
    let fine = run_with(
        with_defaults("field.u_environment=production&field.u_team=%7Blabel.team%7D"),
        &["check"],
        "",
    )
    .await;
    let fields = line(&fine, "custom fields");
    assert!(
        fields.starts_with("OK") && fields.contains("u_environment, u_team"),
        "{}",
        fine.stdout
    );
    assert!(fine.success, "{}", fine.stdout);

    let misspelt = run_with(
        with_defaults("field.u_environment=production&field.u_enviroment=x"),
        &["check"],
        "",
    )
    .await;
    let fields = line(&misspelt, "custom fields");
    assert!(
        fields.starts_with("FAIL")
            && fields.contains("u_enviroment not on incidents")
            && fields.contains("DEFAULT_SETTINGS"),
        "{}",
        misspelt.stdout
    );
    assert!(!misspelt.success);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_without_incidents_skips_the_write_and_suggests_a_test_incident() {
    let app = TestApp::spawn().await;
    let run = run(&app, &["check"]).await;
    assert!(run.success);
    assert!(line(&run, "write incidents").starts_with("SKIP"));
    assert!(run.stdout.contains("--create-test-incident"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_writes_only_on_an_active_incident_never_on_a_closed_one() {
    let app = TestApp::spawn().await;
    app.servicenow
        .insert(&[("state", "7"), ("short_description", "closed last year")]);
    let run = run(&app, &["check"]).await;
    assert!(run.success, "{}", run.stdout);
    assert!(
        line(&run, "write incidents").starts_with("SKIP"),
        "{}",
        run.stdout
    );
    assert!(!app.methods().contains(&"PATCH".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_when_the_instance_widens_lookups_by_key() {
    let app = TestApp::spawn().await;
    app.servicenow
        .insert(&[("state", "2"), ("correlation_id", "ilert:999")]);
    app.servicenow.deny_read("correlation_id");
    let run = run(&app, &["check"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let widened = line(&run, "look up by key");
    assert!(
        widened.starts_with("FAIL") && widened.contains("read access"),
        "{widened}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_can_create_a_test_incident_and_resolve_it() {
    let app = TestApp::spawn().await;
    let run = run(&app, &["check", "--create-test-incident"]).await;
    assert!(run.success, "{}", run.stdout);
    let incidents = app.servicenow.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["state"], "6");
    assert_eq!(incidents[0]["close_code"], "Solution provided");
    let number = incidents[0]["number"].as_str().unwrap();
    assert!(line(&run, "test incident").contains(number));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_each_problem_and_exits_non_zero() {
    // Wrong password.
    let app = TestApp::spawn().await;
    app.servicenow.set_password(SN_USER, "changed-elsewhere");
    let wrong = run(&app, &["check"]).await;
    assert_eq!(wrong.code, Some(1));
    assert!(line(&wrong, "reach instance").starts_with("OK"));
    assert!(line(&wrong, "authenticate").starts_with("FAIL"));
    assert!(line(&wrong, "authenticate").contains("401"));

    // Missing role: reads refused.
    let app = TestApp::spawn().await;
    app.servicenow.inject(Some("GET"), Fault::status(403, None));
    let forbidden = run(&app, &["check"]).await;
    assert_eq!(forbidden.code, Some(1));
    assert!(line(&forbidden, "read incidents").contains("itil"));

    // Writes refused.
    let app = TestApp::spawn().await;
    app.servicenow.insert(&[("state", "1")]);
    app.servicenow
        .inject(Some("PATCH"), Fault::status(403, None));
    let read_only = run(&app, &["check"]).await;
    assert_eq!(read_only.code, Some(1));
    assert!(line(&read_only, "write incidents").starts_with("FAIL"));
    assert!(line(&read_only, "write incidents").contains("incident_manager"));

    // Asleep.
    let app = TestApp::spawn().await;
    app.servicenow.inject(None, Fault::hibernating());
    let asleep = run(&app, &["check"]).await;
    assert!(line(&asleep, "reach instance").contains("asleep"));
    assert_eq!(asleep.code, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_an_unusable_secret_or_an_unreachable_instance() {
    let app = TestApp::spawn_with(Default::default(), |secret| {
        secret.as_object_mut().unwrap().remove("password");
    })
    .await;
    let incomplete = run(&app, &["check"]).await;
    assert_eq!(incomplete.code, Some(1));
    assert!(line(&incomplete, "secret").contains("`password` is missing"));

    let app = TestApp::spawn().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    app.secrets.put(
        SECRET_ID,
        &json!({
            "instance_url": format!("http://127.0.0.1:{closed_port}"),
            "username": SN_USER,
            "password": SN_PASSWORD,
            "webhook_token": TOKEN,
        })
        .to_string(),
    );
    let unreachable = run(&app, &["check"]).await;
    assert_eq!(unreachable.code, Some(1));
    assert!(line(&unreachable, "reach instance").starts_with("FAIL"));
    assert!(line(&unreachable, "reach instance").contains("could not be reached"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_a_missing_secret() {
    // A Secrets Manager that holds no secret of that name.
    let app = TestApp {
        secrets: simulator::SecretsManagerSimulator::start().await.unwrap(),
        ..TestApp::spawn().await
    };
    let missing = run(&app, &["check"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(line(&missing, "secret").contains("was not found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_without_an_aws_region_says_how_to_set_one() {
    let app = TestApp::spawn().await;
    let mut environment = app.function_environment();
    environment.retain(|(name, _)| *name != "AWS_REGION");
    let no_region = run_with(environment, &["check"], "").await;
    assert_eq!(no_region.code, Some(1));
    let secret = line(&no_region, "secret");
    assert!(
        secret.contains("no AWS region found; set AWS_REGION"),
        "{secret}"
    );
    assert!(!secret.contains("dispatch failure"), "{secret}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_without_aws_credentials_says_where_they_come_from() {
    let app = TestApp::spawn().await;
    let mut environment = app.function_environment();
    environment
        .retain(|(name, _)| !name.starts_with("AWS_ACCESS") && !name.starts_with("AWS_SECRET"));
    let no_credentials = run_with(environment, &["check"], "").await;
    assert_eq!(no_credentials.code, Some(1));
    let secret = line(&no_credentials, "secret");
    assert!(secret.contains("no AWS credentials found"), "{secret}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_runs_a_bundled_event_through_the_function_against_the_instance() {
    let app = TestApp::spawn().await;
    let created = run(
        &app,
        &[
            "send",
            "events/01-alert-created.json",
            "assignment_group=Network",
        ],
    )
    .await;
    assert!(created.success, "{}{}", created.stdout, created.stderr);
    assert!(created.stdout.starts_with("200 "), "{}", created.stdout);
    assert!(created.stdout.contains(r#""action":"created""#));
    assert_eq!(app.incident()["assignment_group"], "Network");

    let again = run(&app, &["send", "events/01-alert-created.json"]).await;
    assert!(
        again.stdout.contains(r#""action":"unchanged""#),
        "{}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_accepts_a_bare_ilert_body_and_fails_with_its_answer() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("ilert-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("body.json");
    std::fs::write(
        &body,
        r#"{"id":"77","status":"PENDING","summary":"disk full on db-1"}"#,
    )
    .unwrap();
    let sent = run(&app, &["send", body.to_str().unwrap()]).await;
    assert!(sent.success, "{}{}", sent.stdout, sent.stderr);
    assert_eq!(
        app.servicenow.incident_for("ilert:77").unwrap()["short_description"],
        "PENDING disk full on db-1"
    );

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"id":"x","status":"PENDING"}"#).unwrap();
    let refused = run(&app, &["send", bad.to_str().unwrap()]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stdout.starts_with("400 "), "{}", refused.stdout);
}

/// The environment of an operator's shell, aimed at moto's Secrets Manager.
fn shell_with(moto: &simulator::Moto) -> Vec<(&'static str, String)> {
    local_aws(moto.url().to_owned())
}

/// `secret` creating `id` in moto, the password piped in, with `extra` arguments.
async fn create_secret(moto: &simulator::Moto, id: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "secret",
        "--secret-id",
        id,
        "--instance-url",
        "https://acme.service-now.com",
        "--username",
        "ilert.integration",
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    run_with(shell_with(moto), &args, &format!("{SN_PASSWORD}\n")).await
}

/// The secret as Secrets Manager holds it.
async fn stored(moto: &simulator::Moto, secret_id: &str) -> Option<serde_json::Value> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-central-1"))
        .endpoint_url(moto.url())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDLOCAL",
            "local",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let answer = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .ok()?;
    serde_json::from_str(answer.secret_string()?).ok()
}

/// `secret --instance` adds a named connection: a secret of one keeps its own as `default`
/// (alert actions without `instance=` reach what they reached), the webhook token stays
/// shared, and a connection is never changed without being named.
#[tokio::test(flavor = "multi_thread")]
async fn the_secret_command_adds_named_instances_and_keeps_the_first_as_default() {
    let moto = simulator::Moto::start().expect("moto starts");
    let id = "ilert/servicenow";
    let created = create_secret(&moto, id, &[]).await;
    assert!(created.success, "{}{}", created.stdout, created.stderr);
    let token = stored(&moto, id).await.unwrap()["webhook_token"].clone();

    let added = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            id,
            "--instance",
            "acme-test",
            "--instance-url",
            "https://acmetest.service-now.com",
            "--username",
            "ilert.test",
            "--password-stdin",
            "--webhook-url",
            "https://abc.execute-api.eu-central-1.amazonaws.com/webhook",
        ],
        "Test-pa55\n",
    )
    .await;
    assert!(added.success, "{}{}", added.stdout, added.stderr);
    assert!(
        added
            .stdout
            .contains("URL:     https://abc.execute-api.eu-central-1.amazonaws.com/webhook?instance=acme-test"),
        "{}",
        added.stdout
    );
    let secret = stored(&moto, id).await.unwrap();
    assert_eq!(secret["webhook_token"], token, "the token stays shared");
    assert!(secret.get("instance_url").is_none(), "{secret}");
    assert_eq!(
        secret["instances"]["default"]["instance_url"],
        "https://acme.service-now.com"
    );
    assert_eq!(secret["instances"]["default"]["password"], SN_PASSWORD);
    assert_eq!(secret["instances"]["acme-test"]["username"], "ilert.test");
    assert_eq!(secret["instances"]["acme-test"]["password"], "Test-pa55");
    let connections = ilert_servicenow::adapters::secrets::Connections::from_secret(
        &secrecy::SecretString::from(secret.to_string()),
        id,
    )
    .expect("the function can use the secret");
    assert_eq!(connections.names(), ["acme-test", "default"]);

    let unnamed = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--username", "someone"],
        "",
    )
    .await;
    assert!(!unnamed.success);
    assert!(
        unnamed
            .stderr
            .contains("name the one to change with --instance")
            && unnamed.stderr.contains("acme-test, default"),
        "{}",
        unnamed.stderr
    );
    // What all connections share still changes without a name.
    let rotated = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--new-token"],
        "",
    )
    .await;
    assert!(rotated.success, "{}{}", rotated.stdout, rotated.stderr);
    assert_ne!(stored(&moto, id).await.unwrap()["webhook_token"], token);
}

/// The way back's keys are each customer's: `secret --instance` writes them into that
/// instance, a key already in a secret of one goes with its connection to `default`, and
/// none is written where every instance would take it.
#[tokio::test(flavor = "multi_thread")]
async fn the_secret_command_writes_the_way_backs_keys_into_their_own_instance() {
    let moto = simulator::Moto::start().expect("moto starts");
    let id = "ilert/servicenow";
    let created = create_secret(&moto, id, &[]).await;
    assert!(created.success, "{}{}", created.stdout, created.stderr);
    let on = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--ilert-api-key"],
        "il-key-of-the-first\n",
    )
    .await;
    assert!(on.success, "{}{}", on.stdout, on.stderr);

    let added = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            id,
            "--instance",
            "globex",
            "--instance-url",
            "https://globex.service-now.com",
            "--username",
            "ilert.globex",
            "--password-stdin",
        ],
        "Globex-pa55\n",
    )
    .await;
    assert!(added.success, "{}{}", added.stdout, added.stderr);
    let secret = stored(&moto, id).await.unwrap();
    let top: Vec<&String> = secret.as_object().unwrap().keys().collect();
    assert!(secret.get("ilert_api_key").is_none(), "at the top: {top:?}");
    assert_eq!(
        secret["instances"]["default"]["ilert_api_key"],
        "il-key-of-the-first"
    );
    assert!(secret["instances"]["default"]["servicenow_token"].is_string());
    assert!(secret["instances"]["globex"].get("ilert_api_key").is_none());

    let globex_key = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            id,
            "--instance",
            "globex",
            "--ilert-api-key",
        ],
        "il-key-of-globex\n",
    )
    .await;
    assert!(
        globex_key.success,
        "{}{}",
        globex_key.stdout, globex_key.stderr
    );
    let secret = stored(&moto, id).await.unwrap();
    let globex = &secret["instances"]["globex"];
    assert_eq!(globex["ilert_api_key"], "il-key-of-globex");
    assert_ne!(
        globex["servicenow_token"],
        secret["instances"]["default"]["servicenow_token"]
    );
    assert!(
        !globex_key.stdout.contains("il-key-of"),
        "{}",
        globex_key.stdout
    );

    let unnamed = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--ilert-api-key"],
        "il-key-for-everyone\n",
    )
    .await;
    assert!(!unnamed.success, "{}", unnamed.stdout);
    assert!(unnamed.stderr.contains("--instance"), "{}", unnamed.stderr);
}

/// A secret of several written before the way back's keys became each instance's own: it
/// works as it did, and `check` says what to change.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_way_backs_keys_every_instance_takes_from_the_top() {
    let ilert = simulator::ILertSimulator::start(ILERT_KEY).await.unwrap();
    let ilert_url = ilert.url();
    let app = TestApp::spawn_with(Default::default(), move |secret| {
        let prod = secret.clone();
        *secret = json!({
            "ilert_api_key": ILERT_KEY,
            "ilert_api_url": ilert_url,
            "instances": { "acme-prod": prod },
        });
    })
    .await;
    let checked = run(&app, &["check"]).await;
    assert!(checked.success, "it still works: {}", checked.stdout);
    let warned = line(&checked, "shared keys");
    assert!(
        warned.starts_with("WARN")
            && warned.contains("`ilert_api_key`, `ilert_api_url`")
            && warned.contains("secret --instance acme-prod --ilert-api-key")
            && warned.contains("shared_keys"),
        "{warned}"
    );
    assert!(
        line(&checked, "ilert api key").starts_with("OK"),
        "{}",
        checked.stdout
    );
    assert!(!checked.stdout.contains(ILERT_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_command_writes_a_usable_secret_and_keeps_what_it_is_not_asked_to_change() {
    let moto = simulator::Moto::start().expect("moto starts");
    let id = "ilert/servicenow";
    let created = create_secret(
        &moto,
        id,
        &[
            "--webhook-url",
            "https://abc.execute-api.eu-central-1.amazonaws.com/webhook",
        ],
    )
    .await;
    assert!(created.success, "{}{}", created.stdout, created.stderr);
    let secret = stored(&moto, id).await.expect("the secret exists");
    assert_eq!(secret["instance_url"], "https://acme.service-now.com");
    assert_eq!(secret["password"], SN_PASSWORD);
    let token = secret["webhook_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(
        created
            .stdout
            .starts_with("Created secret arn:aws:secretsmanager:eu-central-1:"),
        "{}",
        created.stdout
    );
    assert!(created
        .stdout
        .contains("SecretArn: arn:aws:secretsmanager:"));
    assert!(created
        .stdout
        .contains("URL:     https://abc.execute-api.eu-central-1.amazonaws.com/webhook"));
    assert!(created.stdout.contains("get-secret-value"));
    assert!(
        !created.stdout.contains(&token),
        "the token is shown only when asked"
    );
    // What the function itself will read of it.
    ilert_servicenow::adapters::secrets::Connection::from_secret(
        &secrecy::SecretString::from(secret.to_string()),
        id,
    )
    .expect("the function can use the secret");

    // A new user name: the password and the token stay, nobody is asked for anything.
    let renamed = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--username", "ilert.bot"],
        "",
    )
    .await;
    assert!(renamed.success, "{}{}", renamed.stdout, renamed.stderr);
    assert!(
        renamed.stdout.starts_with("Updated secret"),
        "{}",
        renamed.stdout
    );
    let secret = stored(&moto, id).await.unwrap();
    assert_eq!(
        (
            &secret["username"],
            &secret["password"],
            &secret["webhook_token"]
        ),
        (
            &"ilert.bot".into(),
            &SN_PASSWORD.into(),
            &token.clone().into()
        )
    );

    // A new token, shown because asked for.
    let renewed = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--new-token", "--show-token"],
        "",
    )
    .await;
    let new_token = stored(&moto, id).await.unwrap()["webhook_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, token);
    assert!(renewed
        .stdout
        .contains(&format!("Authorization: Bearer {new_token}")));
    assert!(renewed.stdout.contains("--drop-previous-token"));
    let rotating = stored(&moto, id).await.unwrap();
    assert_eq!(rotating["webhook_token_previous"], token.as_str());

    // Every alert action moved over: the old token goes.
    let dropped = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--drop-previous-token"],
        "",
    )
    .await;
    assert!(dropped.success, "{}{}", dropped.stdout, dropped.stderr);
    let after = stored(&moto, id).await.unwrap();
    assert!(after.get("webhook_token_previous").is_none());
    assert_eq!(after["webhook_token"], new_token.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_command_writes_nothing_the_function_could_not_use() {
    let moto = simulator::Moto::start().expect("moto starts");
    let plain_http = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            "plain",
            "--instance-url",
            "http://acme.service-now.com",
            "--username",
            "u",
            "--password-stdin",
        ],
        &format!("{SN_PASSWORD}\n"),
    )
    .await;
    assert_eq!(plain_http.code, Some(1));
    assert!(plain_http.stderr.contains("https"), "{}", plain_http.stderr);
    assert!(stored(&moto, "plain").await.is_none());

    // No password, and no terminal to ask at.
    let no_password = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            "nopass",
            "--instance-url",
            "https://acme.service-now.com",
            "--username",
            "u",
        ],
        "",
    )
    .await;
    assert_eq!(no_password.code, Some(1));
    assert!(
        no_password.stderr.contains("--password-stdin"),
        "{}",
        no_password.stderr
    );
    assert!(stored(&moto, "nopass").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_proves_the_ilert_key_says_who_it_acts_as_and_names_a_refused_one() {
    let ilert = simulator::ILertSimulator::start(ILERT_KEY).await.unwrap();
    let app = TestApp::spawn_both_ways(&ilert).await;
    ilert.add_alert(12797430, "PENDING");
    app.deliver("01-alert-created").await;

    let passed = run(&app, &["check"]).await;
    assert!(passed.success, "{}{}", passed.stdout, passed.stderr);
    let key = line(&passed, "ilert api key");
    assert!(key.starts_with("OK"), "{key}");
    assert!(
        key.contains("acts as ServiceNow Sync <servicenow-sync@example.com> (iLert user 900001)"),
        "{key}"
    );
    let open = line(&passed, "ilert open alerts");
    assert!(
        open.starts_with("OK") && open.contains("1 alert(s) open") && open.contains("honoured"),
        "{open}"
    );
    let reads = line(&passed, "back-sync reads");
    assert!(
        reads.starts_with("OK") && reads.contains("1 incident(s) in ServiceNow"),
        "{reads}"
    );
    assert!(line(&passed, "push").starts_with("OK"));
    assert!(!passed.stdout.contains(ILERT_KEY) && !passed.stdout.contains(PUSH_TOKEN));

    for request in ilert.requests() {
        let documented =
            simulator::ilert_contract::documented(&request.method, &request.path, &request.query);
        assert_eq!(documented, Ok(()), "check's request {request:?}");
    }

    // An API behind ilert_api_url that does not know `states` lists resolved alerts too.
    ilert.forget_parameter("states");
    ilert.add_alert(12797431, "RESOLVED");
    let ignored = run(&app, &["check"]).await;
    assert_eq!(ignored.code, Some(1), "{}", ignored.stdout);
    let open = line(&ignored, "ilert open alerts");
    assert!(
        open.starts_with("FAIL") && open.contains("did not honour the filter"),
        "{open}"
    );

    ilert.revoke_key();
    let refused = run(&app, &["check"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    let key = line(&refused, "ilert api key");
    assert!(key.starts_with("FAIL") && key.contains("403"), "{key}");
    assert!(key.contains("secret --ilert-api-key"), "{key}");
    assert!(!refused.stdout.contains(ILERT_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_when_the_way_back_is_off() {
    let app = TestApp::spawn().await;
    let checked = run(&app, &["check"]).await;
    assert!(checked.success, "{}", checked.stdout);
    let off = line(&checked, "back-sync");
    assert!(
        off.starts_with("SKIP") && off.contains("ilert_api_key"),
        "{off}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_command_turns_the_way_back_on_with_a_push_token_and_off_again() {
    const KEY: &str = "il-key-from-a-pipe";
    let moto = simulator::Moto::start().expect("moto starts");
    let id = "ilert/back-sync";
    let created = create_secret(&moto, id, &[]).await;
    assert!(created.success, "{}{}", created.stdout, created.stderr);
    assert!(!created.stdout.contains("way back"), "off until asked");

    let on = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            id,
            "--ilert-api-key",
            "--webhook-url",
            "https://abc.execute-api.eu-central-1.amazonaws.com/webhook",
        ],
        &format!("{KEY}\n"),
    )
    .await;
    assert!(on.success, "{}{}", on.stdout, on.stderr);
    let secret = stored(&moto, id).await.unwrap();
    assert_eq!(secret["ilert_api_key"], KEY);
    let push_token = secret["servicenow_token"].as_str().unwrap().to_owned();
    assert_eq!(push_token.len(), 64);
    assert_ne!(push_token, secret["webhook_token"].as_str().unwrap());
    assert!(
        on.stdout.contains("servicenow/ilert-back-sync.xml"),
        "{}",
        on.stdout
    );
    assert!(
        on.stdout
            .contains("https://abc.execute-api.eu-central-1.amazonaws.com/servicenow"),
        "{}",
        on.stdout
    );
    assert!(!on.stdout.contains(KEY) && !on.stdout.contains(&push_token));

    let off = run_with(
        shell_with(&moto),
        &["secret", "--secret-id", id, "--no-back-sync"],
        "",
    )
    .await;
    assert!(off.success, "{}{}", off.stdout, off.stderr);
    let secret = stored(&moto, id).await.unwrap();
    assert!(secret.get("ilert_api_key").is_none() && secret.get("servicenow_token").is_none());
    assert_eq!(secret["password"], SN_PASSWORD, "the rest is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_an_instance_url_with_a_path_not_a_missing_role() {
    let app = TestApp::spawn().await;
    let with_path = format!("{}/nav_to.do", app.servicenow.url());
    app.secrets.put(
        SECRET_ID,
        &json!({
            "instance_url": with_path,
            "username": SN_USER,
            "password": SN_PASSWORD,
            "webhook_token": TOKEN,
        })
        .to_string(),
    );
    let checked = run(&app, &["check"]).await;
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    let read = line(&checked, "read incidents");
    assert!(
        read.starts_with("FAIL") && read.contains("instance_url has a path (/nav_to.do)"),
        "{read}"
    );
    assert!(!read.contains("itil"), "not a role's fault: {read}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_says_plainly_when_its_file_cannot_be_read() {
    let app = TestApp::spawn().await;
    let missing = run(&app, &["send", "nope.json"]).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.starts_with("cannot read nope.json: "),
        "{}",
        missing.stderr
    );
    assert!(
        !missing.stderr.contains("Error: \""),
        "no debug quoting: {}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_rotation_can_be_piped() {
    const ROTATED: &str = "R0tated-by-a-pipe";
    let moto = simulator::Moto::start().expect("moto starts");
    let id = "ilert/rotation";
    assert!(create_secret(&moto, id, &[]).await.success);
    let rotated = run_with(
        shell_with(&moto),
        &[
            "secret",
            "--secret-id",
            id,
            "--change-password",
            "--password-stdin",
        ],
        &format!("{ROTATED}\n"),
    )
    .await;
    assert!(rotated.success, "{}{}", rotated.stdout, rotated.stderr);
    assert_eq!(stored(&moto, id).await.unwrap()["password"], ROTATED);
    assert!(!rotated.stdout.contains(ROTATED));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_a_line_for_each_variable_the_function_cannot_use() {
    let app = TestApp::spawn().await;
    let mut environment = app.function_environment();
    environment.push(("TIME_BUDGET_SECONDS", "ten".into()));
    environment.push(("DEFAULT_SETTINGS", "asignment_group=Network".into()));
    environment.push(("DEFAULT_REGION", "eu-west-1".into()));
    let checked = run_with(environment, &["check"], "").await;
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    let problems: Vec<&str> = checked
        .stdout
        .lines()
        .filter(|line| line.starts_with("FAIL configuration"))
        .collect();
    assert_eq!(problems.len(), 2, "{}", checked.stdout);
    assert!(problems[0].contains("TIME_BUDGET_SECONDS"), "{problems:?}");
    assert!(problems[1].contains("DEFAULT_SETTINGS"), "{problems:?}");
    assert!(
        line(&checked, "reach instance").starts_with("OK"),
        "the other steps still run: {}",
        checked.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_shows_a_variable_it_cannot_use_and_its_500() {
    let app = TestApp::spawn().await;
    let mut environment = app.function_environment();
    environment.push(("SECRET_CACHE_TTL_SECONDS", "5m".into()));
    let sent = run_with(environment, &["send", "events/01-alert-created.json"], "").await;
    assert_eq!(sent.code, Some(1), "{}{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.contains("500"), "{}", sent.stdout);
    assert!(
        sent.stdout.contains("SECRET_CACHE_TTL_SECONDS"),
        "{}",
        sent.stdout
    );
    assert!(
        sent.stderr.contains("SECRET_CACHE_TTL_SECONDS"),
        "logged: {}",
        sent.stderr
    );
    assert!(app.servicenow.incidents().is_empty(), "nothing was written");
}

/// `check` goes through every instance of the secret (or the one `--instance` names), and
/// `send --instance` sends to that one.
#[tokio::test(flavor = "multi_thread")]
async fn check_and_send_work_per_instance() {
    let (app, test) = spawn_two_instances().await;
    test.inject(None, Fault::status(401, None));
    let both = run(&app, &["check"]).await;
    let instances: Vec<&str> = both
        .stdout
        .lines()
        .filter(|line| line[5..].starts_with("instance"))
        .collect();
    assert_eq!(instances.len(), 2, "{}", both.stdout);
    assert!(instances[0].ends_with("acme-prod") && instances[1].ends_with("acme-test"));
    assert!(!both.success, "acme-test refused: {}", both.stdout);
    let after_test = both.stdout.split("acme-test").nth(1).unwrap();
    assert!(after_test.contains("FAIL"), "{}", both.stdout);
    assert_eq!(test.faults_pending(), 0);

    let prod_only = run(&app, &["check", "--instance", "acme-prod"]).await;
    assert!(
        prod_only.success,
        "{}{}",
        prod_only.stdout, prod_only.stderr
    );
    assert!(
        !prod_only.stdout.contains("acme-test"),
        "{}",
        prod_only.stdout
    );
    let unknown = run(&app, &["check", "--instance", "acme"]).await;
    assert!(!unknown.success);
    assert!(
        line(&unknown, "instance").contains("acme-prod, acme-test"),
        "{}",
        unknown.stdout
    );

    let sent = run(
        &app,
        &[
            "send",
            "events/01-alert-created.json",
            "--instance",
            "acme-test",
        ],
    )
    .await;
    assert!(sent.success, "{}{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.starts_with("200 "), "{}", sent.stdout);
    assert!(test.incident_for(KEY).is_some());
    assert!(app.servicenow.incident_for(KEY).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_a_broken_entry_alone_and_checks_every_other() {
    let app = TestApp::spawn_with(Default::default(), |secret| {
        let prod = secret.clone();
        *secret = serde_json::json!({
            "instances": {
                "acme-prod": prod,
                "typo-corp": {
                    "instance_url": "http://typo-corp.service-now.com",
                    "username": "u",
                    "password": "Typo-pa55-do-not-leak",
                    "webhook_token": "typo-corp-own-token",
                },
            },
        });
    })
    .await;
    let run = run(&app, &["check"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let broken = run
        .stdout
        .lines()
        .find(|line| line.starts_with("FAIL secret"))
        .unwrap_or_default();
    assert!(
        broken.contains("typo-corp")
            && broken.contains("instance_url")
            && broken.contains("every other instance works"),
        "{}",
        run.stdout
    );
    assert!(
        line(&run, "read incidents").starts_with("OK"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Typo-pa55"));
}

/// `check` shows the deployment's queue: what waits for ServiceNow and what it refused for
/// good; and says so plainly when there is none.
#[tokio::test(flavor = "multi_thread")]
async fn check_shows_the_queue_and_its_dead_letters() {
    let app = TestApp::spawn().await;
    let without = run(&app, &["check"]).await;
    assert!(
        line(&without, "queue").starts_with("WARN") && line(&without, "queue").contains("503"),
        "{}",
        without.stdout
    );

    let moto = simulator::Moto::start().expect("moto starts");
    let sqs = moto.sqs().await;
    let queues = simulator::FifoQueues::create(&sqs, "check", 400).await;
    for (url, id) in [
        (&queues.queue_url, "a"),
        (&queues.queue_url, "b"),
        (&queues.dead_letter_url, "c"),
    ] {
        sqs.send_message()
            .queue_url(url)
            .message_group_id("12797430")
            .message_deduplication_id(id)
            .message_body("{}")
            .send()
            .await
            .unwrap();
    }
    let mut environment = app.function_environment();
    environment.push(("QUEUE_URL", queues.queue_url.clone()));
    environment.push(("DEAD_LETTER_QUEUE_URL", queues.dead_letter_url.clone()));
    environment.push(("AWS_ENDPOINT_URL_SQS", moto.url().to_owned()));
    let with = run_with(environment, &["check"], "").await;
    assert!(with.success, "{}{}", with.stdout, with.stderr);
    let queue = line(&with, "queue");
    assert!(
        queue.starts_with("WARN") && queue.contains("2 event(s) waiting for ServiceNow"),
        "{}",
        with.stdout
    );
    assert!(
        line(&with, "dead letters").contains("1 event(s) ServiceNow refused"),
        "{}",
        with.stdout
    );
}

/// With `target=event` in `DEFAULT_SETTINGS`, `check` proves the role with an event that
/// changes nothing (a Clear for a key no alert has), and says whether alerts can be read.
#[tokio::test(flavor = "multi_thread")]
async fn check_proves_event_managements_role_with_a_clear_that_changes_nothing() {
    let app = TestApp::spawn().await;
    app.servicenow.enable_event_management();
    app.servicenow.deny_alert_read();
    let mut environment = app.function_environment();
    environment.push(("DEFAULT_SETTINGS", "target=event".to_owned()));
    let run = run_with(environment.clone(), &["check"], "").await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(
        line(&run, "send events").starts_with("OK"),
        "{}",
        run.stdout
    );
    assert!(
        line(&run, "read alerts").starts_with("WARN")
            && line(&run, "read alerts").contains("evt_mgmt_user"),
        "{}",
        run.stdout
    );
    app.servicenow.process_events();
    assert!(app.servicenow.em_alerts().is_empty(), "it changed nothing");
    assert!(app.servicenow.incidents().is_empty());

    app.servicenow.deny_event_role();
    let run = run_with(environment, &["check"], "").await;
    assert!(!run.success);
    assert!(
        line(&run, "send events").starts_with("FAIL")
            && line(&run, "send events").contains("evt_mgmt_integration"),
        "{}",
        run.stdout
    );
}
