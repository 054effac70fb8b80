//! The ServiceNow connection and the webhook's credentials, read from one AWS Secrets Manager
//! secret and cached per execution environment.
//!
//! Nothing here ever formats a secret value: credentials stay in `SecretString`, whose `Debug`
//! is redacted, and parse errors name the key, never its content.

use crate::domain::settings::check_instance_name;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

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

mod source;
pub use source::{cache_ttl_from, AwsSecretsManager, ConnectionCache, SecretSource, StaticSecret};

#[cfg(test)]
mod tests;
