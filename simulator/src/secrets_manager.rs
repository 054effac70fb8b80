//! AWS Secrets Manager, as far as `GetSecretValue` goes.

use crate::server::{respond, serve, HttpResponse, ServerStats, ANY_LOOPBACK_PORT};
use crate::tls::TestCa;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// AWS Secrets Manager's JSON protocol for `GetSecretValue`, enough for the real SDK to talk
/// to it: point `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or the SDK's `endpoint_url`) here.
#[derive(Clone)]
pub struct SecretsManagerSimulator {
    address: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<SecretsState>>,
    stats: Arc<ServerStats>,
}

#[derive(Debug, Default)]
struct SecretsState {
    secrets: BTreeMap<String, String>,
    reads: usize,
    /// Errors for the coming reads: HTTP status and AWS error type.
    failures: std::collections::VecDeque<(StatusCode, &'static str)>,
}

impl SecretsManagerSimulator {
    pub async fn start() -> std::io::Result<Self> {
        Self::serving(None).await
    }

    /// Behind TLS, with a certificate from `ca`.
    pub async fn start_tls(ca: &TestCa) -> std::io::Result<Self> {
        Self::serving(Some(ca.acceptor())).await
    }

    async fn serving(tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(Mutex::new(SecretsState::default()));
        let shared = Arc::clone(&state);
        let stats = Arc::new(ServerStats::default());
        let address = serve(
            ANY_LOOPBACK_PORT.into(),
            Arc::clone(&stats),
            tls,
            move |_method, _path, _query, headers, body| {
                let state = Arc::clone(&shared);
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    Some(state.answer(&target, &body))
                }
            },
        )
        .await?;
        Ok(Self {
            address,
            scheme,
            state,
            stats,
        })
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// Creates or replaces (rotates) a secret.
    pub fn put(&self, name: &str, secret_string: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .secrets
            .insert(name.to_owned(), secret_string.to_owned());
    }

    /// The next `GetSecretValue` fails with this AWS error, e.g. `(400, "ThrottlingException")`,
    /// `(500, "InternalServiceError")` or `(400, "AccessDeniedException")`.
    pub fn fail_next(&self, status: u16, error_type: &'static str) {
        let status = StatusCode::from_u16(status).expect("a valid status");
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures
            .push_back((status, error_type));
    }

    /// Failures queued with `fail_next` that no call has met yet.
    pub fn failures_pending(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures
            .len()
    }

    /// Forgets the failures no call has met: Secrets Manager is back to normal.
    pub fn clear_failures(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failures
            .clear();
    }

    /// Connections opened to it, and the time it spent answering.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// How many `GetSecretValue` calls arrived.
    pub fn reads(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reads
    }
}

impl SecretsState {
    fn answer(&mut self, target: &str, body: &[u8]) -> HttpResponse {
        let aws_error = |status: StatusCode, kind: &str, message: &str| {
            respond(
                status,
                "application/x-amz-json-1.1",
                json!({ "__type": kind, "message": message }).to_string(),
            )
        };
        if target != "secretsmanager.GetSecretValue" {
            return aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", target);
        }
        self.reads += 1;
        if let Some((status, error_type)) = self.failures.pop_front() {
            return aws_error(status, error_type, "injected by the simulator");
        }
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let id = request["SecretId"].as_str().unwrap_or_default();
        match self.secrets.get(id) {
            Some(secret_string) => respond(
                StatusCode::OK,
                "application/x-amz-json-1.1",
                json!({
                    "ARN": format!("arn:aws:secretsmanager:eu-central-1:123456789012:secret:{id}-AbCdEf"),
                    "Name": id,
                    "SecretString": secret_string,
                    "VersionId": "00000000-0000-0000-0000-000000000001",
                    "VersionStages": ["AWSCURRENT"],
                    "CreatedDate": 1.7e9,
                })
                .to_string(),
            ),
            None => aws_error(
                StatusCode::BAD_REQUEST,
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            ),
        }
    }
}
