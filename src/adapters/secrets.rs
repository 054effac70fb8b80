//! The ServiceNow connection and the webhook's credentials, read from one AWS Secrets Manager
//! secret and cached per execution environment.
//!
//! Nothing here ever formats a secret value: credentials stay in `SecretString`, whose `Debug`
//! is redacted, and parse errors name the key, never its content.

use crate::adapters::aws;
use crate::domain::settings::check_instance_name;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where and as whom to reach ServiceNow.
#[derive(Debug, Clone)]
pub struct ServiceNowAccount {
    pub instance_url: Url,
    /// The integration user (`username`, `password`); absent only with OAuth's
    /// client-credentials grant.
    pub user: Option<(String, SecretString)>,
    /// An OAuth 2.0 client (`client_id`, `client_secret`); absent for HTTP Basic.
    pub oauth_client: Option<(String, SecretString)>,
}

/// What iLert must present: a bearer token (a custom header on the alert action), or HTTP
/// Basic credentials put in the webhook URL.
impl ServiceNowAccount {
    /// Whether `other` logs in to the same instance with the same credentials.
    pub fn same_login(&self, other: &Self) -> bool {
        let same =
            |a: &Option<(String, SecretString)>, b: &Option<(String, SecretString)>| match (a, b) {
                (None, None) => true,
                (Some((a_name, a_secret)), Some((b_name, b_secret))) => {
                    a_name == b_name && a_secret.expose_secret() == b_secret.expose_secret()
                }
                _ => false,
            };
        self.instance_url == other.instance_url
            && same(&self.user, &other.user)
            && same(&self.oauth_client, &other.oauth_client)
    }

    /// The integration user's login name, when there is one.
    pub fn username(&self) -> Option<&str> {
        self.user.as_ref().map(|(name, _)| name.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct WebhookCredentials {
    pub token: Option<SecretString>,
    /// The token before the last rotation, still accepted until it is dropped from the
    /// secret, so iLert's alert actions can be moved to the new one without a refused call.
    pub previous_token: Option<SecretString>,
    pub basic: Option<(String, SecretString)>,
}

/// Where and as whom to reach iLert's REST API, for the way back (ServiceNow → iLert).
#[derive(Debug, Clone)]
pub struct ILertAccount {
    /// `https://api.ilert.com` unless the secret says otherwise.
    pub api_url: Url,
    /// A user API key, sent as `Authorization: Bearer <key>`; it acts as its user.
    pub api_key: SecretString,
}

/// iLert's API, unless `ilert_api_url` names another (a local stand-in, say).
pub const DEFAULT_ILERT_API_URL: &str = "https://api.ilert.com";

#[derive(Debug, Clone)]
pub struct Connection {
    /// The connection's name in the secret's `instances`; `default` for a secret of one.
    pub name: String,
    pub servicenow: ServiceNowAccount,
    pub webhook: WebhookCredentials,
    /// The back-sync's iLert account: `None` when the secret has no `ilert_api_key`, and then
    /// the function is one-way, as before.
    pub ilert: Option<ILertAccount>,
    /// What ServiceNow's business rule must present to push a change (`servicenow_token`).
    pub push_token: Option<SecretString>,
    /// The way back's keys this connection takes from the top of a secret of several without
    /// `shared_keys` naming them: how secrets were written before those keys became each
    /// instance's own. It works as it did; `check` says what to change.
    pub implicitly_shared: Vec<&'static str>,
}

/// The way back's keys: with `instances`, each instance's own, unless the secret's
/// `shared_keys` names them (one iLert account and one push token for every instance).
pub const WAY_BACK_KEYS: [&str; 3] = ["ilert_api_key", "ilert_api_url", "servicenow_token"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The function's configuration is wrong; retrying will not help.
    #[error("{0}")]
    Misconfigured(String),
    /// Secrets Manager could not answer now (throttled, 5xx, network).
    #[error("{0}")]
    Unavailable(String),
}

/// The name of the connection a secret of one holds, and the instance a webhook URL without
/// `instance=` reaches.
pub const DEFAULT_INSTANCE: &str = "default";

/// Every ServiceNow connection the secret holds, by name: one named `default` for a secret of
/// one (the flat form), or those of its `instances`.
#[derive(Debug, Clone)]
pub struct Connections {
    by_name: BTreeMap<String, Arc<Connection>>,
    /// Entries of `instances` the function cannot use: each fails its own calls, and only
    /// its own (a provider's customer's typo never takes the others down).
    broken: BTreeMap<String, Arc<BrokenEntry>>,
}

/// An entry of the secret's `instances` that the function cannot use.
#[derive(Debug, Clone)]
pub struct BrokenEntry {
    pub name: String,
    /// What is wrong, naming keys, never their values.
    pub problem: String,
    /// Its webhook credentials and push token when those could be read: only a caller they
    /// accept is told that the entry is broken; anyone else learns nothing of it.
    pub webhook: Option<WebhookCredentials>,
    pub push_token: Option<SecretString>,
}

/// Why no connection was picked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotPicked {
    #[error("{0}")]
    Unknown(UnknownInstance),
    #[error("the secret's entry for ServiceNow instance `{}` is unusable: {}", .0.name, .0.problem)]
    Broken(Arc<BrokenEntry>),
}

/// The keys that say who may call the webhook.
const WEBHOOK_KEYS: [&str; 4] = [
    "webhook_token",
    "webhook_token_previous",
    "webhook_username",
    "webhook_password",
];

/// A connection name the secret does not hold, or none named where the secret holds several
/// and none is `default`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownInstance(String);

impl UnknownInstance {
    /// What a caller is told: only the instances its own credentials open, never the others
    /// (another customer's, on a provider's deployment).
    pub fn for_caller(asked: Option<&str>, open: &[&str]) -> Self {
        Self(match asked {
            Some(name) => format!(
                "no ServiceNow instance named `{name}` is open to these credentials; they open {}",
                open.join(", ")
            ),
            None => format!(
                "the secret holds several ServiceNow instances and none is named \
                 `{DEFAULT_INSTANCE}`; these credentials open {}: add instance=<name> to the \
                 webhook URL",
                open.join(", ")
            ),
        })
    }
}

impl Connections {
    /// Reads the secret's JSON: a connection's keys at the top (the flat form), or
    /// `instances: {"<name>": {<a connection's keys>}, …}`, where every key at the top
    /// (besides `instances`) is shared by the connections that do not set it themselves.
    /// `secret_name` is only used in messages.
    pub fn from_secret(secret: &SecretString, secret_name: &str) -> Result<Self, SecretError> {
        let unusable = |reason: String| {
            SecretError::Misconfigured(format!("secret {secret_name} is unusable: {reason}"))
        };
        // Parse into a map first: serde's type errors quote the offending value, which here
        // could be a password.
        let mut fields: Map<String, Value> = match serde_json::from_str(secret.expose_secret()) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(unusable("its SecretString is not a JSON object".into())),
            Err(_) => return Err(unusable("its SecretString is not JSON".into())),
        };
        let Some(instances) = fields.remove("instances") else {
            let connection = Connection::from_fields(DEFAULT_INSTANCE, &fields, &unusable)?;
            return Ok(Self {
                by_name: [(DEFAULT_INSTANCE.to_owned(), Arc::new(connection))].into(),
                broken: BTreeMap::new(),
            });
        };
        let Value::Object(instances) = instances else {
            return Err(unusable(
                "key `instances` must be an object of named connections".into(),
            ));
        };
        if instances.is_empty() {
            return Err(unusable("key `instances` names no connection".into()));
        }
        let shared_keys = match fields.remove("shared_keys") {
            None => None,
            Some(Value::Array(keys)) => {
                let mut named = Vec::new();
                for key in keys {
                    match WAY_BACK_KEYS
                        .iter()
                        .find(|known| Some(**known) == key.as_str())
                    {
                        Some(known) => named.push(*known),
                        None => {
                            return Err(unusable(format!(
                                "`shared_keys` may name only {}",
                                WAY_BACK_KEYS.join(", ")
                            )))
                        }
                    }
                }
                Some(named)
            }
            Some(_) => return Err(unusable("`shared_keys` must be a list of key names".into())),
        };
        let mut by_name = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (name, own) in instances {
            // One entry's mistake is its own: it is set aside with what is wrong, and every
            // other entry works as before.
            let entry = Self::entry(&name, own, &fields, shared_keys.as_deref());
            match entry {
                Ok(connection) => {
                    by_name.insert(name, Arc::new(connection));
                }
                Err(entry) => {
                    broken.insert(name, Arc::from(entry));
                }
            }
        }
        Ok(Self { by_name, broken })
    }

    /// The entry `name` of `instances`, with the keys at the top that it shares.
    fn entry(
        name: &str,
        own: Value,
        shared: &Map<String, Value>,
        shared_keys: Option<&[&'static str]>,
    ) -> Result<Connection, Box<BrokenEntry>> {
        let broken = |problem: String, own: Option<&Map<String, Value>>| {
            let lenient = |reason: String| SecretError::Misconfigured(reason);
            Box::new(BrokenEntry {
                name: name.to_owned(),
                problem,
                webhook: own.and_then(|fields| webhook_credentials(fields, &lenient).ok()),
                push_token: own
                    .and_then(|fields| fields.get("servicenow_token"))
                    .and_then(Value::as_str)
                    .filter(|token| !token.trim().is_empty())
                    .map(|token| SecretString::from(token.to_owned())),
            })
        };
        if let Err(why) = check_instance_name(name) {
            return Err(broken(format!("in `instances`: {why}"), None));
        }
        let Value::Object(own) = own else {
            return Err(broken(
                format!("instance `{name}` must be an object of a connection's keys"),
                None,
            ));
        };
        let mut merged = shared.clone();
        // The webhook's credentials go as one: an instance with a token or Basic pair of its
        // own takes none of the shared ones (not the previous token of a rotation, not a Basic
        // pair), so no shared credential opens it.
        if WEBHOOK_KEYS.iter().any(|key| own.contains_key(*key)) {
            merged.retain(|key, _| !WEBHOOK_KEYS.contains(&key.as_str()));
        }
        // The way back's keys at the top are taken only where `shared_keys` says so; a secret
        // without `shared_keys` is read as before, and the connection remembers what it took.
        let mut implicitly_shared = Vec::new();
        for key in WAY_BACK_KEYS {
            if own.contains_key(key) || !merged.contains_key(key) {
                continue;
            }
            match shared_keys {
                Some(named) if named.contains(&key) => {}
                Some(_) => {
                    merged.remove(key);
                }
                None => implicitly_shared.push(key),
            }
        }
        merged.extend(own);
        let connection = Connection::from_fields(name, &merged, &SecretError::Misconfigured);
        connection
            .map(|connection| Connection {
                implicitly_shared,
                ..connection
            })
            .map_err(|error| {
                let problem = match error {
                    SecretError::Misconfigured(problem) | SecretError::Unavailable(problem) => {
                        problem
                    }
                };
                broken(problem, Some(&merged))
            })
    }

    /// The connection named `name`.
    pub fn named(&self, name: &str) -> Result<&Arc<Connection>, UnknownInstance> {
        self.by_name.get(name).ok_or_else(|| {
            UnknownInstance(format!(
                "no ServiceNow instance is named `{name}` in the secret; it holds {}",
                self.names().join(", ")
            ))
        })
    }

    /// The connection an alert action asks for with `instance=<name>`; without one, the
    /// secret's only connection or the one named `default`. A broken entry is named as such.
    pub fn pick(&self, instance: Option<&str>) -> Result<&Arc<Connection>, NotPicked> {
        let name = match instance {
            Some(name) => name,
            None if !self.several() => {
                if let Some(only) = self.all().next() {
                    return Ok(only);
                }
                DEFAULT_INSTANCE
            }
            None => DEFAULT_INSTANCE,
        };
        if let Some(broken) = self.broken.get(name) {
            return Err(NotPicked::Broken(Arc::clone(broken)));
        }
        if instance.is_none() && !self.by_name.contains_key(DEFAULT_INSTANCE) {
            return Err(NotPicked::Unknown(UnknownInstance(format!(
                "the secret holds several ServiceNow instances ({}) and none is named \
                 `{DEFAULT_INSTANCE}`: add instance=<name> to the webhook URL",
                self.names().join(", ")
            ))));
        }
        self.named(name).map_err(NotPicked::Unknown)
    }

    /// Every connection the function can use, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.by_name.values()
    }

    /// Every entry it cannot use, by name.
    pub fn broken(&self) -> impl Iterator<Item = &Arc<BrokenEntry>> {
        self.broken.values()
    }

    /// The names of every entry, usable or not.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_name
            .keys()
            .chain(self.broken.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether the secret holds more than one connection (the log then names the one used).
    pub fn several(&self) -> bool {
        self.by_name.len() + self.broken.len() > 1
    }
}

impl Connection {
    /// Reads a secret of one connection (the flat form). `secret_name` is only used in
    /// messages.
    pub fn from_secret(secret: &SecretString, secret_name: &str) -> Result<Self, SecretError> {
        let connections = Connections::from_secret(secret, secret_name)?;
        if let Some(broken) = connections.broken().next() {
            return Err(SecretError::Misconfigured(format!(
                "secret {secret_name} is unusable: {}",
                broken.problem
            )));
        }
        if connections.several() {
            return Err(SecretError::Misconfigured(format!(
                "secret {secret_name} holds several instances ({}); name one",
                connections.names().join(", ")
            )));
        }
        let only = connections.all().next().expect("at least one connection");
        Ok(Connection::clone(only))
    }

    /// One connection's keys, `fields`, as the connection `name`.
    fn from_fields(
        name: &str,
        fields: &Map<String, Value>,
        unusable: &impl Fn(String) -> SecretError,
    ) -> Result<Self, SecretError> {
        let text = |key: &str| text_field(fields, key, unusable);
        let required = |key: &str| -> Result<String, SecretError> {
            text(key)?.ok_or_else(|| unusable(format!("key `{key}` is missing")))
        };

        let instance_url = parse_service_url(
            &required("instance_url")?,
            "instance_url",
            "username` and `password",
        )
        .map_err(unusable)?;
        let pair =
            |first: &str, second: &str| -> Result<Option<(String, SecretString)>, SecretError> {
                match (text(first)?, text(second)?) {
                    (Some(name), Some(secret)) => Ok(Some((name, SecretString::from(secret)))),
                    (None, None) => Ok(None),
                    (Some(_), None) => Err(unusable(format!("key `{second}` is missing"))),
                    (None, Some(_)) => Err(unusable(format!("key `{first}` is missing"))),
                }
            };
        let oauth_client = pair("client_id", "client_secret")?;
        let user = pair("username", "password")?;
        if user.is_none() && oauth_client.is_none() {
            // Basic auth needs the user; only OAuth's client-credentials grant goes without.
            required("username")?;
        }
        let servicenow = ServiceNowAccount {
            instance_url,
            user,
            oauth_client,
        };
        let webhook = webhook_credentials(fields, unusable)?;
        let ilert = match text("ilert_api_key")? {
            None => None,
            Some(key) => Some(ILertAccount {
                api_url: parse_service_url(
                    &text("ilert_api_url")?.unwrap_or_else(|| DEFAULT_ILERT_API_URL.to_owned()),
                    "ilert_api_url",
                    "ilert_api_key",
                )
                .map_err(unusable)?,
                api_key: SecretString::from(key),
            }),
        };
        Ok(Self {
            name: name.to_owned(),
            servicenow,
            webhook,
            ilert,
            push_token: text("servicenow_token")?.map(SecretString::from),
            implicitly_shared: Vec::new(),
        })
    }
}

/// The text in key `key`: none when absent, null or blank; a value that is not a string is
/// named by its key, never quoted (it could be a password).
fn text_field(
    fields: &Map<String, Value>,
    key: &str,
    unusable: &impl Fn(String) -> SecretError,
) -> Result<Option<String>, SecretError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(unusable(format!("key `{key}` must be a string"))),
    }
}

/// The webhook's credentials of one connection's keys: a token, a Basic pair, or both.
fn webhook_credentials(
    fields: &Map<String, Value>,
    unusable: &impl Fn(String) -> SecretError,
) -> Result<WebhookCredentials, SecretError> {
    let text = |key: &str| text_field(fields, key, unusable);
    let token = text("webhook_token")?.map(SecretString::from);
    let previous_token = text("webhook_token_previous")?.map(SecretString::from);
    let basic = match (text("webhook_username")?, text("webhook_password")?) {
        (Some(user), Some(password)) => Some((user, SecretString::from(password))),
        (None, None) => None,
        _ => {
            return Err(unusable(
                "`webhook_username` and `webhook_password` go together".into(),
            ))
        }
    };
    if token.is_none() && basic.is_none() {
        return Err(unusable(
            "key `webhook_token` is missing (or set `webhook_username` and `webhook_password`)"
                .into(),
        ));
    }
    Ok(WebhookCredentials {
        token,
        previous_token,
        basic,
    })
}

/// The URL in secret key `key`: https only, except plain http to a loopback host (a local
/// simulator): credentials never cross a network in clear text. `credentials` names the keys
/// that hold them instead.
fn parse_service_url(raw: &str, key: &str, credentials: &str) -> Result<Url, String> {
    let example = match key {
        "instance_url" => "https://<name>.service-now.com",
        _ => DEFAULT_ILERT_API_URL,
    };
    let url =
        Url::parse(raw.trim()).map_err(|_| format!("`{key}` is not a URL (expected {example})"))?;
    let host = url.host_str().unwrap_or_default();
    let is_loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if is_loopback => {}
        "http" => {
            return Err(format!(
                "`{key}` must use https (plain http only for localhost)"
            ))
        }
        _ => return Err(format!("`{key}` must be an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{key}` must not carry credentials; use `{credentials}`"
        ));
    }
    Ok(url)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Connection, SecretError> {
        Connection::from_secret(&SecretString::from(json.to_owned()), "ilert/servicenow")
    }

    fn error(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    const PASSWORD: &str = "s3cr3t-Pa55";

    #[test]
    fn a_complete_secret_gives_the_connection() {
        let connection = parse(&format!(
            r#"{{"instance_url":"https://acme.service-now.com","username":"ilert","password":"{PASSWORD}","webhook_token":"tok"}}"#
        ))
        .unwrap();
        assert_eq!(
            connection.servicenow.instance_url.as_str(),
            "https://acme.service-now.com/"
        );
        let (username, password) = connection.servicenow.user.as_ref().unwrap();
        assert_eq!(
            (username.as_str(), password.expose_secret()),
            ("ilert", PASSWORD)
        );
        assert!(connection.servicenow.oauth_client.is_none());
        assert!(connection.webhook.basic.is_none());
        assert!(
            !format!("{connection:?}").contains(PASSWORD),
            "Debug must redact"
        );
    }

    #[test]
    fn each_missing_key_is_named() {
        let full = serde_json::json!({
            "instance_url": "https://acme.service-now.com",
            "username": "ilert",
            "password": PASSWORD,
            "webhook_token": "tok",
        });
        for key in ["instance_url", "username", "password", "webhook_token"] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(key);
            let message = error(&partial.to_string());
            assert!(message.contains(&format!("`{key}`")), "{message}");
            assert!(message.contains("ilert/servicenow"), "{message}");
        }
    }

    #[test]
    fn basic_credentials_may_replace_the_token_but_only_as_a_pair() {
        let with_basic = parse(&format!(
            r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","webhook_username":"ilert","webhook_password":"pw"}}"#
        ))
        .unwrap();
        assert_eq!(with_basic.webhook.basic.as_ref().unwrap().0, "ilert");
        let half = error(&format!(
            r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","webhook_token":"t","webhook_username":"ilert"}}"#
        ));
        assert!(half.contains("go together"), "{half}");
    }

    #[test]
    fn oauth_clients_may_go_with_or_without_the_user() {
        let with_user = parse(&format!(
            r#"{{"instance_url":"https://a.service-now.com","username":"u","password":"{PASSWORD}","client_id":"c","client_secret":"cs","webhook_token":"t"}}"#
        ))
        .unwrap();
        assert!(with_user.servicenow.user.is_some() && with_user.servicenow.oauth_client.is_some());
        let client_only = parse(
            r#"{"instance_url":"https://a.service-now.com","client_id":"c","client_secret":"cs","webhook_token":"t"}"#,
        )
        .unwrap();
        assert!(client_only.servicenow.user.is_none());
        let half = error(
            r#"{"instance_url":"https://a.service-now.com","client_id":"c","webhook_token":"t"}"#,
        );
        assert!(half.contains("`client_secret` is missing"), "{half}");
        let half_user = error(
            r#"{"instance_url":"https://a.service-now.com","username":"u","client_id":"c","client_secret":"cs","webhook_token":"t"}"#,
        );
        assert!(half_user.contains("`password` is missing"), "{half_user}");
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let with_url = |url: &str| {
            parse(&format!(
                r#"{{"instance_url":"{url}","username":"u","password":"p","webhook_token":"t"}}"#
            ))
        };
        assert!(error(r#"{"instance_url":"http://acme.service-now.com","username":"u","password":"p","webhook_token":"t"}"#).contains("https"));
        assert!(with_url("http://127.0.0.1:8080").is_ok());
        assert!(with_url("http://localhost:8080").is_ok());
        assert!(with_url("http://[::1]:8080").is_ok());
        assert!(with_url("ftp://acme").is_err());
        assert!(with_url("acme.service-now.com").is_err());
        assert!(with_url("https://user:pw@acme.service-now.com").is_err());
    }

    #[test]
    fn no_error_message_repeats_a_secret_value() {
        for json in [
            format!(
                r#"{{"instance_url":"https://a.service-now.com","username":"u","password":["{PASSWORD}"],"webhook_token":"t"}}"#
            ),
            format!(
                r#"{{"instance_url":"{PASSWORD}","username":"u","password":"p","webhook_token":"t"}}"#
            ),
            format!(r#"{{"password":"{PASSWORD}""#),
            format!(r#"["{PASSWORD}"]"#),
        ] {
            let message = error(&json);
            assert!(!message.contains(PASSWORD), "{message}");
        }
    }

    fn several(json: &str) -> Result<Connections, String> {
        Connections::from_secret(&SecretString::from(json.to_owned()), "ilert/servicenow")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn named_instances_share_the_keys_at_the_top_and_may_set_their_own() {
        let connections = several(&format!(
            r#"{{"webhook_token":"shared","ilert_api_key":"k",
                "instances":{{
                  "acme-prod":{{"instance_url":"https://acme.service-now.com","username":"u","password":"{PASSWORD}"}},
                  "acme-test":{{"instance_url":"https://acmetest.service-now.com","username":"t","password":"p","webhook_token":"own"}}}}}}"#
        ))
        .unwrap();
        assert_eq!(connections.names(), ["acme-prod", "acme-test"]);
        let prod = connections.named("acme-prod").unwrap();
        let test = connections.named("acme-test").unwrap();
        assert_eq!(prod.name, "acme-prod");
        assert_eq!(
            prod.webhook.token.as_ref().unwrap().expose_secret(),
            "shared"
        );
        assert_eq!(test.webhook.token.as_ref().unwrap().expose_secret(), "own");
        assert!(prod.ilert.is_some() && test.ilert.is_some());
        assert_eq!(
            test.servicenow.instance_url.as_str(),
            "https://acmetest.service-now.com/"
        );
        let message = connections.pick(None).unwrap_err().to_string();
        assert!(message.contains("acme-prod, acme-test"), "{message}");
        let unknown = connections.pick(Some("acme")).unwrap_err().to_string();
        assert!(unknown.contains("`acme`") && unknown.contains("acme-prod, acme-test"));
    }

    #[test]
    fn the_way_backs_keys_are_each_instances_own_unless_the_secret_shares_them() {
        let secret = |shared: &str| {
            format!(
                r#"{{"webhook_token":"t","ilert_api_key":"top-key","servicenow_token":"top-push",{shared}
                    "instances":{{
                      "a":{{"instance_url":"https://a.service-now.com","username":"u","password":"p"}},
                      "b":{{"instance_url":"https://b.service-now.com","username":"u","password":"p",
                            "ilert_api_key":"b-key","servicenow_token":"b-push"}}}}}}"#
            )
        };
        let key = |c: &Connection| {
            c.ilert
                .as_ref()
                .map(|i| i.api_key.expose_secret().to_owned())
        };
        let push = |c: &Connection| c.push_token.as_ref().map(|t| t.expose_secret().to_owned());

        // Written before `shared_keys`: read as before, and remembered as taken implicitly.
        let legacy = several(&secret("")).unwrap();
        let (a, b) = (legacy.named("a").unwrap(), legacy.named("b").unwrap());
        assert_eq!(key(a).as_deref(), Some("top-key"));
        assert_eq!(a.implicitly_shared, ["ilert_api_key", "servicenow_token"]);
        assert_eq!(
            (key(b).as_deref(), push(b).as_deref()),
            (Some("b-key"), Some("b-push"))
        );
        assert!(b.implicitly_shared.is_empty());

        // `shared_keys` names what is shared, and nothing else is.
        let explicit = several(&secret(r#""shared_keys":["ilert_api_key"],"#)).unwrap();
        let a = explicit.named("a").unwrap();
        assert_eq!(key(a).as_deref(), Some("top-key"));
        assert_eq!(push(a), None, "the push token at the top is not shared");
        assert!(a.implicitly_shared.is_empty());
        assert_eq!(
            push(explicit.named("b").unwrap()).as_deref(),
            Some("b-push")
        );

        let none = several(&secret(r#""shared_keys":[],"#)).unwrap();
        assert!(
            none.named("a").unwrap().ilert.is_none(),
            "the way back is off for a"
        );

        let wrong = several(&secret(r#""shared_keys":["password"],"#)).unwrap_err();
        assert!(wrong.contains("shared_keys"), "{wrong}");
    }

    #[test]
    fn an_instance_with_its_own_webhook_credentials_takes_none_of_the_shared_ones() {
        let connections = several(
            r#"{"webhook_token":"A","webhook_token_previous":"A0","webhook_username":"u","webhook_password":"p",
                "instances":{
                  "acme-prod":{"instance_url":"https://acme.service-now.com","username":"u","password":"p"},
                  "acme-test":{"instance_url":"https://acmetest.service-now.com","username":"u","password":"p","webhook_token":"B"}}}"#,
        )
        .unwrap();
        let test = &connections.named("acme-test").unwrap().webhook;
        assert_eq!(test.token.as_ref().unwrap().expose_secret(), "B");
        assert!(test.previous_token.is_none() && test.basic.is_none());
        let prod = &connections.named("acme-prod").unwrap().webhook;
        assert_eq!(prod.previous_token.as_ref().unwrap().expose_secret(), "A0");
        assert!(prod.basic.is_some());
    }

    #[test]
    fn a_flat_secret_is_the_connection_named_default() {
        let connections = several(
            r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p","webhook_token":"t"}"#,
        )
        .unwrap();
        assert_eq!(connections.names(), [DEFAULT_INSTANCE]);
        assert!(!connections.several());
        assert_eq!(connections.pick(None).unwrap().name, "default");
        assert!(connections.pick(Some("default")).is_ok());
    }

    #[test]
    fn each_instance_is_checked_and_its_problems_name_it() {
        let base = r#""instance_url":"https://a.service-now.com","username":"u","password":"p""#;
        // The secret as a whole.
        for (json, expected) in [
            (
                r#"{"webhook_token":"t","instances":{}}"#,
                "names no connection",
            ),
            (
                r#"{"webhook_token":"t","instances":[]}"#,
                "must be an object",
            ),
        ] {
            let message = several(json).unwrap_err();
            assert!(message.contains(expected), "{json}: {message}");
        }
        // One entry: set aside, named, the others kept.
        for (name, json, expected) in [
            (
                "Acme Prod",
                format!(
                    r#"{{"webhook_token":"t","instances":{{"Acme Prod":{{{base}}},"ok":{{{base}}}}}}}"#
                ),
                "not a usable instance name",
            ),
            (
                "acme",
                format!(r#"{{"webhook_token":"t","instances":{{"acme":"x","ok":{{{base}}}}}}}"#),
                "instance `acme` must be an object",
            ),
            (
                "acme",
                format!(
                    r#"{{"webhook_token":"t","instances":{{"acme":{{"username":"u","password":"p"}},"ok":{{{base}}}}}}}"#
                ),
                "key `instance_url` is missing",
            ),
            (
                "acme",
                format!(
                    r#"{{"instances":{{"acme":{{{base}}},"ok":{{{base},"webhook_token":"t"}}}}}}"#
                ),
                "key `webhook_token` is missing",
            ),
        ] {
            let connections = several(&json).unwrap();
            let broken: Vec<&Arc<BrokenEntry>> = connections.broken().collect();
            assert_eq!(broken.len(), 1, "{json}");
            assert_eq!(broken[0].name, name);
            assert!(
                broken[0].problem.contains(expected),
                "{json}: {}",
                broken[0].problem
            );
            assert!(!broken[0].problem.contains(PASSWORD));
            assert!(matches!(
                connections.pick(Some(name)),
                Err(NotPicked::Broken(_))
            ));
            assert_eq!(connections.pick(Some("ok")).unwrap().name, "ok");
            assert_eq!(connections.names(), {
                let mut names = vec![name, "ok"];
                names.sort_unstable();
                names
            });
        }
    }

    #[test]
    fn the_back_sync_keys_are_optional_and_checked_like_the_instance_url() {
        let base = r#""instance_url":"https://a.service-now.com","username":"u","password":"p","webhook_token":"t""#;
        let one_way = parse(&format!("{{{base}}}")).unwrap();
        assert!(one_way.ilert.is_none() && one_way.push_token.is_none());

        let both_ways = parse(&format!(
            r#"{{{base},"ilert_api_key":"{PASSWORD}","servicenow_token":"sn-tok"}}"#
        ))
        .unwrap();
        let ilert = both_ways.ilert.as_ref().unwrap();
        assert_eq!(ilert.api_url.as_str(), "https://api.ilert.com/");
        assert_eq!(ilert.api_key.expose_secret(), PASSWORD);
        assert_eq!(
            both_ways.push_token.as_ref().unwrap().expose_secret(),
            "sn-tok"
        );
        assert!(
            !format!("{both_ways:?}").contains(PASSWORD),
            "Debug must redact"
        );

        let local = parse(&format!(
            r#"{{{base},"ilert_api_key":"k","ilert_api_url":"http://127.0.0.1:9"}}"#
        ))
        .unwrap();
        assert_eq!(local.ilert.unwrap().api_url.as_str(), "http://127.0.0.1:9/");
        let plain = error(&format!(
            r#"{{{base},"ilert_api_key":"k","ilert_api_url":"http://api.ilert.com"}}"#
        ));
        assert!(plain.contains("`ilert_api_url` must use https"), "{plain}");
        let typed = error(&format!(r#"{{{base},"ilert_api_key":42}}"#));
        assert!(
            typed.contains("`ilert_api_key` must be a string"),
            "{typed}"
        );
    }

    #[test]
    fn the_cache_ttl_defaults_to_five_minutes_and_refuses_nonsense() {
        assert_eq!(cache_ttl_from(None).unwrap(), Duration::from_secs(300));
        assert_eq!(cache_ttl_from(Some("60")).unwrap(), Duration::from_secs(60));
        assert!(cache_ttl_from(Some("5m")).is_err());
    }
}
