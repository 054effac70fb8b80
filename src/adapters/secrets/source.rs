//! Where the secret comes from (Secrets Manager, or a fixed text in the demo and tests), and
//! the cache that keeps what it holds for the time-to-live, read again when ServiceNow refuses
//! the cached credentials.

use super::{Connection, Connections, SecretError};
use crate::adapters::aws;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where the secret's text comes from: AWS Secrets Manager in Lambda, a fixed value in the
/// demo and in tests.
pub trait SecretSource: Send + Sync {
    /// Name or ARN, for messages.
    fn secret_name(&self) -> &str;
    fn fetch(&self) -> impl Future<Output = Result<SecretString, SecretError>> + Send;
}

pub struct AwsSecretsManager {
    client: aws_sdk_secretsmanager::Client,
    secret_id: Option<String>,
}

impl AwsSecretsManager {
    /// Reads `SERVICENOW_SECRET_ID` and the standard AWS variables (region, credentials, and
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER` for a local emulator).
    pub async fn from_env() -> Self {
        Self::from_config(&aws::load_config(crate::adapters::http::client()).await)
    }

    /// As [`Self::from_env`], with the AWS configuration already loaded.
    pub fn from_config(aws: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_secretsmanager::config::Builder::from(aws)
            .retry_config(Self::retry_config())
            .build();
        let secret_id = std::env::var("SERVICENOW_SECRET_ID")
            .ok()
            .filter(|id| !id.trim().is_empty());
        Self::new(aws_sdk_secretsmanager::Client::from_conf(config), secret_id)
    }

    /// The SDK retries throttling and 5xx itself; these waits are short enough for the
    /// invocation's time budget, which bounds the whole fetch.
    pub fn retry_config() -> aws_sdk_secretsmanager::config::retry::RetryConfig {
        aws_sdk_secretsmanager::config::retry::RetryConfig::standard()
            .with_max_attempts(4)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(2))
    }

    /// `secret_id` is `None` when `SERVICENOW_SECRET_ID` is unset: every request then answers
    /// 500 with that cause, which iLert's alert log shows.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: Option<String>) -> Self {
        Self { client, secret_id }
    }
}

impl SecretSource for AwsSecretsManager {
    fn secret_name(&self) -> &str {
        self.secret_id.as_deref().unwrap_or("(unset)")
    }

    async fn fetch(&self) -> Result<SecretString, SecretError> {
        let Some(secret_id) = &self.secret_id else {
            return Err(SecretError::Misconfigured(
                "SERVICENOW_SECRET_ID is not set: set it to the secret's name or ARN (the \
                 stack's SecretArn)"
                    .into(),
            ));
        };
        let answer = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|error| classify_sdk_error(error, secret_id))?;
        answer.secret_string.map(SecretString::from).ok_or_else(|| {
            SecretError::Misconfigured(format!(
                "secret {secret_id} has no SecretString (binary secrets are not supported)"
            ))
        })
    }
}

/// What a failed read means for the function: worth another try (throttling, 5xx, network),
/// or a configuration problem that a retry will not fix.
fn classify_sdk_error<E>(
    error: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    secret_id: &str,
) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = aws::classify(&error);
    let message = &failure.message;
    match failure.code.as_deref() {
        Some("ResourceNotFoundException") => SecretError::Misconfigured(format!(
            "secret {secret_id} was not found in Secrets Manager"
        )),
        Some("AccessDeniedException") => SecretError::Misconfigured(format!(
            "the function may not read secret {secret_id} (AccessDenied): {message}"
        )),
        Some(code) if failure.retryable => SecretError::Unavailable(format!(
            "Secrets Manager could not answer ({code}): {message}"
        )),
        Some(code) => SecretError::Misconfigured(format!(
            "Secrets Manager refused to read secret {secret_id} ({code}): {message}"
        )),
        None if failure.retryable => {
            SecretError::Unavailable(format!("Secrets Manager could not be reached: {message}"))
        }
        None => SecretError::Misconfigured(format!("Secrets Manager cannot be asked: {message}")),
    }
}

/// A secret given as a value: the demo's, and tests'.
pub struct StaticSecret(SecretString);

impl StaticSecret {
    pub fn new(json: impl Into<String>) -> Self {
        Self(SecretString::from(json.into()))
    }
}

impl SecretSource for StaticSecret {
    fn secret_name(&self) -> &str {
        "(built in)"
    }

    async fn fetch(&self) -> Result<SecretString, SecretError> {
        Ok(self.0.clone())
    }
}

/// The connections, fetched once per execution environment and kept for `ttl`, so that a
/// rotated secret is picked up without a restart but not paid for on every request.
pub struct ConnectionCache<S> {
    source: S,
    ttl: Duration,
    cached: Mutex<Cached>,
}

/// The last read: what it gave, and when it failed if it did.
#[derive(Default)]
struct Cached {
    connections: Option<(Instant, Arc<Connections>)>,
    failure: Option<(Instant, SecretError)>,
}

/// How long a failed read is answered from memory: long enough that a flood of calls (most
/// of them anonymous, since nobody can be authenticated without the secret) costs one
/// Secrets Manager request every few seconds, short enough that a fixed secret is seen at
/// once. Throttling or an outage is asked again sooner than a missing or unusable secret.
const MISCONFIGURED_MEMORY: Duration = Duration::from_secs(5);
const UNAVAILABLE_MEMORY: Duration = Duration::from_secs(1);

impl<S: SecretSource> ConnectionCache<S> {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

    pub fn new(source: S, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            cached: Mutex::new(Cached::default()),
        }
    }

    /// Every connection the secret holds.
    pub async fn all(&self) -> Result<Arc<Connections>, SecretError> {
        // Held across the fetch so that concurrent requests wait for one fetch, not race it.
        let mut cached = self.cached.lock().await;
        if let Some((fetched_at, connections)) = &cached.connections {
            if fetched_at.elapsed() < self.ttl {
                return Ok(Arc::clone(connections));
            }
        }
        if let Some((failed_at, error)) = &cached.failure {
            let memory = match error {
                SecretError::Misconfigured(_) => MISCONFIGURED_MEMORY,
                SecretError::Unavailable(_) => UNAVAILABLE_MEMORY,
            };
            if failed_at.elapsed() < memory {
                return Err(error.clone());
            }
        }
        self.fetch_into(&mut cached).await
    }

    /// Reads the secret again, bypassing the cache, because `stale` was refused (a rotated
    /// password), and returns the connection of the same name. If another request already
    /// refreshed it, that copy is used.
    pub async fn refresh(&self, stale: &Arc<Connection>) -> Result<Arc<Connection>, SecretError> {
        let mut cached = self.cached.lock().await;
        let same_name = |connections: &Connections| {
            connections
                .named(&stale.name)
                .cloned()
                .map_err(|gone| SecretError::Misconfigured(gone.to_string()))
        };
        if let Some((_, connections)) = &cached.connections {
            let current = same_name(connections)?;
            if !Arc::ptr_eq(&current, stale) {
                return Ok(current);
            }
        }
        let connections = self.fetch_into(&mut cached).await?;
        same_name(&connections)
    }

    /// After ServiceNow refused `stale`'s login: the connection read again, if its login is
    /// another (a rotated password), else `None` (the secret still holds the refused one).
    pub async fn changed_login(
        &self,
        stale: &Arc<Connection>,
    ) -> Result<Option<Arc<Connection>>, SecretError> {
        let fresh = self.refresh(stale).await?;
        Ok((!fresh.servicenow.same_login(&stale.servicenow)).then_some(fresh))
    }

    async fn fetch_into(&self, cached: &mut Cached) -> Result<Arc<Connections>, SecretError> {
        let read = match self.source.fetch().await {
            Ok(secret) => Connections::from_secret(&secret, self.source.secret_name()),
            Err(error) => Err(error),
        };
        match read {
            Ok(connections) => {
                let connections = Arc::new(connections);
                cached.connections = Some((Instant::now(), Arc::clone(&connections)));
                cached.failure = None;
                Ok(connections)
            }
            Err(error) => {
                cached.failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }
}

/// `SECRET_CACHE_TTL_SECONDS`: a whole number of seconds; unset means five minutes.
pub fn cache_ttl_from(value: Option<&str>) -> Result<Duration, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(ConnectionCache::<StaticSecret>::DEFAULT_TTL),
        Some(text) => text.parse::<u64>().map(Duration::from_secs).map_err(|_| {
            format!("SECRET_CACHE_TTL_SECONDS must be a whole number of seconds, got {text:?}")
        }),
    }
}
