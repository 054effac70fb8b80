//! Shared by the integration tests: the real handler, wired as Lambda wires it, against the
//! ServiceNow simulator and a Secrets Manager endpoint reached through the real AWS SDK.
#![allow(dead_code)] // each test binary uses its own part of this

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use http::header;
use ilert_servicenow::adapters::api_gateway::{self, HttpApiEvent};
use ilert_servicenow::adapters::secrets::{AwsSecretsManager, ConnectionCache};
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::domain::settings::{InvalidSetting, Settings};
use ilert_servicenow::flow::edge::WebhookHandler;
use ilert_servicenow::flow::edge::WebhookRequest;
use serde_json::{json, Value};
use simulator::{SecretsManagerSimulator, ServiceNowSimulator};
use std::time::Duration;

pub const SECRET_ID: &str = "ilert/servicenow";
pub const TOKEN: &str = "change-me-webhook-token";
pub const SN_USER: &str = "ilert.integration";
pub const SN_PASSWORD: &str = "Sn0w-pa55-do-not-leak";
pub const KEY: &str = "ilert:12797430";

pub struct TestApp {
    pub servicenow: ServiceNowSimulator,
    pub secrets: SecretsManagerSimulator,
    pub handler: WebhookHandler<AwsSecretsManager, TableApi>,
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
            servicenow,
            secrets,
            handler,
        }
    }

    /// Another Lambda execution environment of the same function: same instance and secret,
    /// its own secret cache and HTTP client.
    pub async fn another_environment(&self) -> Self {
        Self {
            servicenow: self.servicenow.clone(),
            secrets: self.secrets.clone(),
            handler: handler_reading(&self.secrets, SECRET_ID, Settings::default()),
        }
    }

    /// The environment a deployed function has, aimed at these simulators: for running the
    /// built binary.
    pub fn function_environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SERVICENOW_SECRET_ID", SECRET_ID.to_owned()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.secrets.url()),
            ("AWS_REGION", "eu-central-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "AKIDLOCAL".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
        ]
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

    pub fn notes(&self, number: &str) -> Vec<String> {
        self.servicenow
            .journal(number)
            .into_iter()
            .map(|entry| format!("{}: {}", entry.field, entry.text))
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
pub fn handler_with_defaults(
    secrets: &SecretsManagerSimulator,
    secret_id: &str,
    defaults: Result<Settings, InvalidSetting>,
) -> WebhookHandler<AwsSecretsManager, TableApi> {
    let sdk = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .endpoint_url(secrets.url())
            .credentials_provider(Credentials::for_tests())
            .retry_config(AwsSecretsManager::retry_config())
            .build(),
    );
    WebhookHandler::new(
        ConnectionCache::new(
            AwsSecretsManager::new(sdk, Some(secret_id.to_owned())),
            Duration::from_secs(300),
        ),
        TableApi::new(TableApi::default_http_client()),
        defaults,
    )
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
