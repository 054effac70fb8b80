//! The `secret` command: writes or updates the function's secret, so nobody has to quote JSON
//! inside a shell line. It makes the webhook token, never echoes a password, checks the result
//! exactly as the function will read it, and says what to paste into iLert.

use crate::adapters::aws;
use crate::adapters::secrets::Connections;
use crate::adapters::secrets::{DEFAULT_INSTANCE, WAY_BACK_KEYS};
use crate::domain::settings::check_instance_name;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::io::IsTerminal;

/// What the operator asked to set; `None` keeps what the secret already holds.
#[derive(Default)]
pub struct SecretChanges {
    /// The named connection (`instances.<name>`) the connection's keys go to; `None`: a
    /// secret of one connection.
    pub instance: Option<String>,
    pub instance_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Replace the webhook token even if the secret has one; the old one is kept as
    /// `webhook_token_previous`, still accepted, so alert actions can move over one by one.
    pub new_token: bool,
    /// Stop accepting the token before the last rotation.
    pub drop_previous_token: bool,
    /// The way back: an iLert user API key (turns it on), and where iLert's API is.
    pub ilert_api_key: Option<SecretString>,
    pub ilert_api_url: Option<String>,
    /// Replace the token ServiceNow's business rule pushes with.
    pub new_servicenow_token: bool,
    /// Turn the way back off: the iLert key, its URL and the push token are removed.
    pub no_back_sync: bool,
}

/// What the secret's rotation of the webhook token now is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenChange {
    Unchanged,
    /// A first token.
    Made,
    /// A new token; the old one is still accepted.
    Rotated,
    /// The token before the last rotation is no longer accepted.
    PreviousDropped,
}

/// The secret's fields, or why this command will not touch the secret (without quoting it).
pub fn fields_of(contents: &SecretString, secret_id: &str) -> Result<Map<String, Value>, String> {
    serde_json::from_str(contents.expose_secret()).map_err(|_| {
        format!("secret {secret_id} exists but is not a JSON object; fix or delete it first")
    })
}

/// The secret's new contents: the old fields with the changes laid over them (keys this
/// command does not manage, such as OAuth's, are kept), a webhook token made if there is none,
/// and the whole checked as the function will read it.
pub fn merged(
    mut fields: Map<String, Value>,
    changes: SecretChanges,
    secret_id: &str,
) -> Result<(SecretString, TokenChange), String> {
    {
        let connection = connection_fields_mut(&mut fields, changes.instance.as_deref())?;
        set_field(connection, "instance_url", changes.instance_url);
        set_field(connection, "username", changes.username);
        if let Some(password) = changes.password {
            // Not trimmed: a password may end in a space.
            connection.insert(
                "password".into(),
                Value::String(password.expose_secret().to_owned()),
            );
        }
    }
    let old_token = fields
        .get("webhook_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    let mut token_change = TokenChange::Unchanged;
    if changes.new_token || old_token.is_none() {
        token_change = TokenChange::Made;
        if let Some(old_token) = old_token {
            fields.insert("webhook_token_previous".into(), Value::String(old_token));
            token_change = TokenChange::Rotated;
        }
        fields.insert("webhook_token".into(), Value::String(new_webhook_token()));
    }
    if changes.drop_previous_token && fields.remove("webhook_token_previous").is_some() {
        token_change = TokenChange::PreviousDropped;
    }
    // The way back's keys are the connection's own: with `instances`, the named instance's,
    // so that one customer's iLert key and push token never serve another.
    {
        let way_back = connection_fields_mut(&mut fields, changes.instance.as_deref())?;
        if let Some(key) = changes.ilert_api_key {
            way_back.insert(
                "ilert_api_key".into(),
                Value::String(key.expose_secret().trim().to_owned()),
            );
        }
        set_field(way_back, "ilert_api_url", changes.ilert_api_url);
        if changes.no_back_sync {
            for key in WAY_BACK_KEYS {
                way_back.remove(key);
            }
        }
        // The push needs its own token as soon as the way back is on; never the webhook's, so
        // that what ServiceNow holds cannot open the webhook.
        let back_sync_on = way_back
            .get("ilert_api_key")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty());
        let has_push_token = way_back
            .get("servicenow_token")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if back_sync_on && (changes.new_servicenow_token || !has_push_token) {
            way_back.insert(
                "servicenow_token".into(),
                Value::String(new_webhook_token()),
            );
        }
    }
    let json = SecretString::from(Value::Object(fields).to_string());
    Connections::from_secret(&json, secret_id).map_err(|problem| problem.to_string())?;
    Ok((json, token_change))
}

/// A connection's own keys: they stay at the top of a secret of one; with several they go to
/// `instances`, and what every connection shares (the webhook token) stays at the top.
const CONNECTION_KEYS: [&str; 8] = [
    "instance_url",
    "username",
    "password",
    "client_id",
    "client_secret",
    "ilert_api_key",
    "ilert_api_url",
    "servicenow_token",
];

/// Where the connection's keys are written: the secret itself, or `instances.<name>`. A secret
/// of one that is given a named connection keeps its own as `default`, so alert actions without
/// `instance=` reach what they reached before.
fn connection_fields_mut<'a>(
    fields: &'a mut Map<String, Value>,
    instance: Option<&str>,
) -> Result<&'a mut Map<String, Value>, String> {
    // Without a name, a secret of several changes only what its connections share (`run`
    // refuses connection changes to it before this).
    let Some(name) = instance else {
        return Ok(fields);
    };
    check_instance_name(name)?;
    if !fields.contains_key("instances") {
        let mut default = Map::new();
        for key in CONNECTION_KEYS {
            if let Some(value) = fields.remove(key) {
                default.insert(key.to_owned(), value);
            }
        }
        let mut instances = Map::new();
        if !default.is_empty() {
            instances.insert(DEFAULT_INSTANCE.to_owned(), Value::Object(default));
        }
        fields.insert("instances".into(), Value::Object(instances));
    }
    let Some(Value::Object(instances)) = fields.get_mut("instances") else {
        return Err("the secret's `instances` is not an object; fix it by hand first".into());
    };
    match instances
        .entry(name.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(connection) => Ok(connection),
        _ => Err(format!(
            "the secret's instance `{name}` is not an object; fix it by hand first"
        )),
    }
}

/// What the function reads as the connection's keys: the named connection's own over the
/// secret's top, or the secret itself.
fn connection_fields(fields: &Map<String, Value>, instance: Option<&str>) -> Map<String, Value> {
    let mut seen = fields.clone();
    // A secret of one given another named connection: its own keys become `default`'s, none
    // of the new one's (which is then asked for its password).
    if instance.is_some_and(|name| name != DEFAULT_INSTANCE) && !fields.contains_key("instances") {
        seen.retain(|key, _| !CONNECTION_KEYS.contains(&key.as_str()));
    }
    if let Some(Value::Object(own)) = instance
        .and_then(|name| fields.get("instances")?.get(name))
        .cloned()
    {
        seen.extend(own);
    }
    seen
}

/// Sets `key` to `value`, trimmed, when there is one.
fn set_field(fields: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        fields.insert(key.to_owned(), Value::String(value.trim().to_owned()));
    }
}

/// What the command line gave. What it leaves out is kept from the secret, or, when the
/// secret lacks it, asked for at the terminal.
#[derive(clap::Args)]
pub struct Asked {
    /// Add or change the named ServiceNow connection (the secret's `instances.<name>`, chosen
    /// by `instance=<name>` on the webhook URL); a secret of one keeps its own as `default`.
    #[arg(long)]
    pub instance: Option<String>,
    /// https://<name>.service-now.com
    #[arg(long)]
    pub instance_url: Option<String>,
    /// The integration user.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from standard input (one line) rather than ask for it.
    #[arg(long)]
    pub password_stdin: bool,
    /// Ask for a new password even though the secret has one (a rotation); with
    /// --password-stdin, read it from standard input.
    #[arg(long)]
    pub change_password: bool,
    /// Make a new webhook token; the old one keeps working until --drop-previous-token.
    #[arg(long)]
    pub new_token: bool,
    /// Stop accepting the token that the last --new-token replaced.
    #[arg(long)]
    pub drop_previous_token: bool,
    /// Turn on the way back (ServiceNow → iLert) or change its key: asks for an iLert user
    /// API key without showing it (or reads it from standard input when piped). A token for
    /// ServiceNow's push is made with it.
    #[arg(long, conflicts_with = "password_stdin")]
    pub ilert_api_key: bool,
    /// iLert's API, if not https://api.ilert.com.
    #[arg(long)]
    pub ilert_api_url: Option<String>,
    /// Make a new token for ServiceNow's push (then type it into the business rule's auth
    /// profile).
    #[arg(long)]
    pub new_servicenow_token: bool,
    /// Turn the way back off: remove the iLert key, its URL and the push token.
    #[arg(long, conflicts_with_all = ["ilert_api_key", "new_servicenow_token"])]
    pub no_back_sync: bool,
}

/// Reads the secret, lays the changes over it, writes it back and returns the next steps.
/// Nothing is written unless the result is a secret the function can use.
pub async fn run(
    store: &SecretStore,
    secret_id: &str,
    asked: Asked,
    show_token: bool,
    webhook_url: Option<&str>,
) -> Result<String, String> {
    let existing = store.read(secret_id).await?;
    if existing.is_none() && secret_id.starts_with("arn:") {
        return Err(format!(
            "secret {secret_id} was not found; to create a secret, give its name \
             (--secret-id ilert/servicenow)"
        ));
    }
    // Checked before anything is asked for.
    let old = match &existing {
        Some(secret) => fields_of(&secret.contents, secret_id)?,
        None => Map::new(),
    };
    if let Some(name) = &asked.instance {
        check_instance_name(name)?;
    }
    let named = old.contains_key("instances");
    let changes_connection = asked.instance_url.is_some()
        || asked.username.is_some()
        || asked.password_stdin
        || asked.change_password
        || asked.ilert_api_key
        || asked.ilert_api_url.is_some()
        || asked.new_servicenow_token
        || asked.no_back_sync;
    if named && asked.instance.is_none() && changes_connection {
        let names = old
            .get("instances")
            .and_then(Value::as_object)
            .map(|instances| instances.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return Err(format!(
            "secret {secret_id} holds several instances ({names}): name the one to change \
             with --instance"
        ));
    }
    let own_token = asked.instance.as_deref().is_some_and(|name| {
        old.get("instances")
            .and_then(|instances| instances.get(name))
            .and_then(|instance| instance.get("webhook_token"))
            .is_some()
    });
    if own_token && (show_token || asked.new_token || asked.drop_previous_token) {
        return Err(format!(
            "instance {} has a webhook token of its own, which this command does not make, \
             rotate or show (it manages the shared one); change it in the secret by hand",
            asked.instance.as_deref().unwrap_or_default()
        ));
    }
    let connection = connection_fields(&old, asked.instance.as_deref());
    // A secret of several whose connections are not being changed asks for nothing of them.
    let has = |key: &str| {
        (named && asked.instance.is_none())
            || connection
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
    };
    let at_terminal = std::io::stdin().is_terminal();
    let missing = |flag: &str| {
        format!("secret {secret_id} has no {flag} yet: give --{flag}, or run this at a terminal")
    };

    let instance_url = match asked.instance_url {
        Some(url) => Some(url),
        None if has("instance_url") => None,
        None if at_terminal => Some(ask(
            "ServiceNow instance URL (https://<name>.service-now.com): ",
        )?),
        None => return Err(missing("instance-url")),
    };
    let username = match asked.username {
        Some(name) => Some(name),
        None if has("username") || has("client_secret") => None,
        None if at_terminal => Some(ask("ServiceNow integration user: ")?),
        None => return Err(missing("username")),
    };
    let needs_password = asked.change_password || !(has("password") || has("client_secret"));
    let password = if asked.password_stdin && at_terminal {
        // Typed rather than piped: still not shown.
        let typed = rpassword::read_password()
            .map_err(|error| format!("could not read the password: {error}"))?;
        Some(SecretString::from(typed))
    } else if asked.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|error| format!("could not read the password from standard input: {error}"))?;
        Some(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    } else if needs_password && at_terminal {
        let user = username
            .as_deref()
            .or_else(|| connection.get("username").and_then(Value::as_str))
            .unwrap_or("the integration user");
        let typed = rpassword::prompt_password(format!("Password of {user} (not shown): "))
            .map_err(|error| format!("could not read the password: {error}"))?;
        Some(SecretString::from(typed))
    } else if needs_password {
        return Err(format!(
            "secret {secret_id} needs a password: give it on standard input with \
             --password-stdin, or run this at a terminal"
        ));
    } else {
        None
    };

    let ilert_api_key = if !asked.ilert_api_key {
        None
    } else if at_terminal {
        let typed =
            rpassword::prompt_password("iLert API key of the back-sync's user (not shown): ")
                .map_err(|error| format!("could not read the iLert API key: {error}"))?;
        Some(SecretString::from(typed))
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|error| {
            format!("could not read the iLert API key from standard input: {error}")
        })?;
        Some(SecretString::from(line.trim().to_owned()))
    };
    if ilert_api_key
        .as_ref()
        .is_some_and(|key| key.expose_secret().is_empty())
    {
        return Err("the iLert API key is empty; nothing was written".into());
    }
    let instance = asked.instance.clone();
    let changes = SecretChanges {
        instance: asked.instance,
        instance_url,
        username,
        password,
        new_token: asked.new_token,
        drop_previous_token: asked.drop_previous_token,
        ilert_api_key,
        ilert_api_url: asked.ilert_api_url,
        new_servicenow_token: asked.new_servicenow_token,
        no_back_sync: asked.no_back_sync,
    };
    let (contents, token_change) = merged(old, changes, secret_id)?;
    let arn = store.write(secret_id, existing.as_ref(), &contents).await?;
    let back_sync = serde_json::from_str::<Map<String, Value>>(contents.expose_secret())
        .ok()
        .map(|fields| connection_fields(&fields, instance.as_deref()))
        .filter(|fields| fields.contains_key("ilert_api_key"))
        .map(|fields| {
            fields
                .get("servicenow_token")
                .and_then(Value::as_str)
                .filter(|_| show_token)
                .map(str::to_owned)
        });
    let token = show_token.then(|| {
        serde_json::from_str::<Map<String, Value>>(contents.expose_secret())
            .ok()
            .and_then(|fields| fields.get("webhook_token")?.as_str().map(str::to_owned))
            .unwrap_or_default()
    });
    let alert_action_url = match (&instance, webhook_url) {
        (Some(name), Some(url)) => Some(format!("{url}?instance={name}")),
        _ => webhook_url.map(str::to_owned),
    };
    let mut steps = next_steps(
        &arn,
        existing.is_none(),
        token_change,
        token.as_deref(),
        alert_action_url.as_deref(),
    );
    if let Some(name) = &instance {
        steps.push_str(&format!(
            "\nThe alert actions for instance {name} add `instance={name}` to the webhook URL's \
             query (with other settings: `?instance={name}&assignment_group=…`).\n"
        ));
    }
    if let Some(push_token) = back_sync {
        steps.push_str(&back_sync_steps(&arn, push_token.as_deref(), webhook_url));
    }
    Ok(steps)
}

/// What to do for the way back once the secret holds an iLert key.
pub fn back_sync_steps(arn: &str, push_token: Option<&str>, webhook_url: Option<&str>) -> String {
    let push_url = webhook_url
        .map(|url| {
            let base = url.trim_end_matches('/');
            let base = base.strip_suffix("/webhook").unwrap_or(base);
            format!("{base}/servicenow")
        })
        .unwrap_or_else(|| "<the stack's ServiceNowPushUrl output>".to_owned());
    let token = match push_token {
        Some(token) => token.to_owned(),
        None => format!(
            "<servicenow_token>, which this prints:\n      aws secretsmanager get-secret-value \
             --secret-id {arn} --query SecretString --output text | python3 -c 'import json,sys; \
             print(json.load(sys.stdin)[\"servicenow_token\"])'"
        ),
    };
    format!(
        "\nThe way back (ServiceNow → iLert) is on: the scheduled pass brings the service desk's \
         In Progress and Resolved to iLert within a minute, with nothing installed in ServiceNow.\n\
         For seconds instead (optional), a ServiceNow admin imports servicenow/ilert-back-sync.xml \
         and sets:\n  REST message \"iLert back-sync\" endpoint: {push_url}\n  \
         Basic auth profile \"iLert back-sync\" password: {token}\n"
    )
}

/// One line typed at the terminal, after a prompt on standard error.
fn ask(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| format!("could not read the answer: {error}"))?;
    Ok(line.trim().to_owned())
}

/// 32 random bytes from the operating system, as 64 hex digits.
fn new_webhook_token() -> String {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the operating system provides random bytes");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Secrets Manager, for this command only: the function itself only ever reads.
pub struct SecretStore {
    client: aws_sdk_secretsmanager::Client,
}

/// A secret as it stands: its ARN and contents.
pub struct StoredSecret {
    pub arn: String,
    pub contents: SecretString,
}

impl SecretStore {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(aws),
        }
    }

    /// The secret, or `None` if there is no secret by that name yet.
    pub async fn read(&self, secret_id: &str) -> Result<Option<StoredSecret>, String> {
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(answer) => Ok(Some(StoredSecret {
                arn: answer.arn.unwrap_or_else(|| secret_id.to_owned()),
                contents: SecretString::from(answer.secret_string.ok_or_else(|| {
                    format!("secret {secret_id} is binary; this command writes JSON text")
                })?),
            })),
            Err(error) => {
                let failure = aws::classify(&error);
                match failure.code.as_deref() {
                    Some("ResourceNotFoundException") => Ok(None),
                    _ => Err(format!(
                        "could not read secret {secret_id}: {}",
                        failure.explained()
                    )),
                }
            }
        }
    }

    /// Writes `contents` as the secret's new value, creating the secret if `existing` is
    /// `None`. Returns the secret's ARN.
    pub async fn write(
        &self,
        secret_id: &str,
        existing: Option<&StoredSecret>,
        contents: &SecretString,
    ) -> Result<String, String> {
        let failed = |what: &str, failure: aws::SdkFailure| {
            format!(
                "could not {what} secret {secret_id}: {}",
                failure.explained()
            )
        };
        match existing {
            Some(old) => {
                self.client
                    .put_secret_value()
                    .secret_id(&old.arn)
                    .secret_string(contents.expose_secret())
                    .send()
                    .await
                    .map_err(|error| failed("update", aws::classify(&error)))?;
                Ok(old.arn.clone())
            }
            None => {
                let created = self
                    .client
                    .create_secret()
                    .name(secret_id)
                    .description(
                        "ilert-servicenow: the ServiceNow connection and iLert's webhook token",
                    )
                    .secret_string(contents.expose_secret())
                    .send()
                    .await
                    .map_err(|error| failed("create", aws::classify(&error)))?;
                Ok(created.arn.unwrap_or_else(|| secret_id.to_owned()))
            }
        }
    }
}

/// What to do next, for the operator: where the secret is, how to deploy with it and what to
/// paste into iLert. The token itself only with `show_token`.
pub fn next_steps(
    arn: &str,
    created: bool,
    token_change: TokenChange,
    token: Option<&str>,
    webhook_url: Option<&str>,
) -> String {
    let token_news = match token_change {
        TokenChange::Unchanged => "the webhook token is unchanged",
        TokenChange::Made => "a webhook token was made",
        TokenChange::Rotated => "a new webhook token was made; the previous one still works",
        TokenChange::PreviousDropped => "the previous webhook token was dropped",
    };
    let mut text = format!(
        "{} secret {arn}\n  (the password is stored, not shown; {token_news})\n\n",
        if created { "Created" } else { "Updated" },
    );
    text.push_str(&format!(
        "Deploy with it:\n  sam deploy --guided    (SecretArn: {arn})\n\n"
    ));
    let url = webhook_url.unwrap_or("<the stack's WebhookUrl output>");
    text.push_str(&format!(
        "In iLert, on the alert source: Alert actions → Webhook\n  URL:     {url}\n"
    ));
    match token {
        Some(token) => text.push_str(&format!(
            "  Header:  Authorization: Bearer {token}\n"
        )),
        None => text.push_str(&format!(
            "  Header:  Authorization: Bearer <webhook_token>, which this prints:\n    \
             aws secretsmanager get-secret-value --secret-id {arn} --query SecretString \
             --output text | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"webhook_token\"])'\n  \
             (or run this command again with --show-token)\n"
        )),
    }
    match token_change {
        TokenChange::Rotated => text.push_str(
            "\nRotation: warm functions accept the new token once they read the secret again \
             (within SECRET_CACHE_TTL_SECONDS, 300 s by default); the previous one keeps working \
             meanwhile and after. Once that time has passed, give every alert action the new \
             token, then stop accepting the old one:\n  \
             ilert-servicenow secret --drop-previous-token\n",
        ),
        TokenChange::PreviousDropped => text.push_str(
            "\nThe previous token stops opening the webhook once warm functions read the secret \
             again (within SECRET_CACHE_TTL_SECONDS).\n",
        ),
        TokenChange::Made | TokenChange::Unchanged => {}
    }
    text.push_str("\nThen: ilert-servicenow check    (with SERVICENOW_SECRET_ID set to the ARN)\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::secrets::Connection;

    fn read(json: &SecretString) -> Map<String, Value> {
        serde_json::from_str(json.expose_secret()).unwrap()
    }

    fn new_connection() -> SecretChanges {
        SecretChanges {
            instance_url: Some("https://acme.service-now.com ".into()),
            username: Some("ilert.integration".into()),
            password: Some(SecretString::from("pass word ")),
            ..SecretChanges::default()
        }
    }

    fn existing(json: &str) -> Map<String, Value> {
        fields_of(&SecretString::from(json.to_owned()), "s").unwrap()
    }

    #[test]
    fn another_named_instance_on_a_secret_of_one_is_asked_for_its_own_credentials() {
        let flat = existing(
            r#"{"instance_url":"https://acme.service-now.com","username":"u","password":"p","webhook_token":"t"}"#,
        );
        let seen = connection_fields(&flat, Some("acme-test"));
        assert!(!seen.contains_key("password") && !seen.contains_key("instance_url"));
        assert_eq!(seen["webhook_token"], "t", "shared keys are still there");
        assert_eq!(connection_fields(&flat, Some("default"))["password"], "p");
        let (json, _) = merged(
            flat,
            SecretChanges {
                instance: Some("acme-test".into()),
                ..new_connection()
            },
            "s",
        )
        .unwrap();
        let fields = read(&json);
        assert_eq!(fields["instances"]["default"]["password"], "p");
        assert_eq!(fields["instances"]["acme-test"]["password"], "pass word ");
        assert_eq!(fields["webhook_token"], "t");
    }

    #[test]
    fn a_new_secret_gets_a_random_token_and_the_password_exactly_as_typed() {
        let (first, change) = merged(Map::new(), new_connection(), "s").unwrap();
        assert_eq!(change, TokenChange::Made);
        let fields = read(&first);
        assert_eq!(fields["instance_url"], "https://acme.service-now.com");
        assert_eq!(fields["password"], "pass word ");
        assert!(!fields.contains_key("webhook_token_previous"));
        let token = fields["webhook_token"].as_str().unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let (second, _) = merged(Map::new(), new_connection(), "s").unwrap();
        assert_ne!(
            read(&second)["webhook_token"],
            token,
            "tokens must not repeat"
        );
    }

    #[test]
    fn an_update_keeps_the_token_the_password_and_keys_it_does_not_manage() {
        let old = existing(
            r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
                "webhook_token":"kept","client_id":"c","client_secret":"cs"}"#,
        );
        let changes = SecretChanges {
            username: Some("v".into()),
            ..SecretChanges::default()
        };
        let (json, change) = merged(old, changes, "s").unwrap();
        assert_eq!(change, TokenChange::Unchanged);
        let fields = read(&json);
        assert_eq!(fields["username"], "v");
        assert_eq!(fields["password"], "p");
        assert_eq!(fields["webhook_token"], "kept");
        assert_eq!(fields["client_secret"], "cs");
    }

    #[test]
    fn a_rotation_keeps_the_old_token_working_until_it_is_dropped() {
        let old = existing(
            r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
                "webhook_token":"first"}"#,
        );
        let rotate = SecretChanges {
            new_token: true,
            ..SecretChanges::default()
        };
        let (rotated, change) = merged(old, rotate, "s").unwrap();
        assert_eq!(change, TokenChange::Rotated);
        let fields = read(&rotated);
        assert_ne!(fields["webhook_token"], "first");
        assert_eq!(fields["webhook_token_previous"], "first");
        let connection = Connection::from_secret(&rotated, "s").unwrap();
        assert!(connection.webhook.previous_token.is_some());

        let drop = SecretChanges {
            drop_previous_token: true,
            ..SecretChanges::default()
        };
        let (dropped, change) = merged(fields.clone(), drop, "s").unwrap();
        assert_eq!(change, TokenChange::PreviousDropped);
        let after = read(&dropped);
        assert!(!after.contains_key("webhook_token_previous"));
        assert_eq!(after["webhook_token"], fields["webhook_token"]);
    }

    #[test]
    fn an_ilert_key_turns_the_way_back_on_with_a_push_token_of_its_own() {
        let old = existing(
            r#"{"instance_url":"https://a.service-now.com","username":"u","password":"p",
                "webhook_token":"hook"}"#,
        );
        let on = SecretChanges {
            ilert_api_key: Some(SecretString::from(" il-key ")),
            ..SecretChanges::default()
        };
        let (json, _) = merged(old, on, "s").unwrap();
        let fields = read(&json);
        assert_eq!(fields["ilert_api_key"], "il-key");
        let push = fields["servicenow_token"].as_str().unwrap().to_owned();
        assert_eq!(push.len(), 64);
        assert_ne!(push, "hook", "never the webhook's token");

        let kept = SecretChanges {
            username: Some("v".into()),
            ..SecretChanges::default()
        };
        let (json, _) = merged(fields.clone(), kept, "s").unwrap();
        assert_eq!(read(&json)["servicenow_token"], push.as_str(), "kept");

        let rotated = SecretChanges {
            new_servicenow_token: true,
            ..SecretChanges::default()
        };
        let (json, _) = merged(fields.clone(), rotated, "s").unwrap();
        assert_ne!(read(&json)["servicenow_token"], push.as_str());

        let bad_url = SecretChanges {
            ilert_api_url: Some("http://api.ilert.com".into()),
            ..SecretChanges::default()
        };
        let problem = merged(fields.clone(), bad_url, "s").err().unwrap();
        assert!(problem.contains("ilert_api_url"), "{problem}");
        assert!(!problem.contains("il-key"), "{problem}");

        let off = SecretChanges {
            no_back_sync: true,
            ..SecretChanges::default()
        };
        let (json, _) = merged(fields, off, "s").unwrap();
        let fields = read(&json);
        for key in ["ilert_api_key", "ilert_api_url", "servicenow_token"] {
            assert!(!fields.contains_key(key), "{key}");
        }
        assert_eq!(fields["webhook_token"], "hook");
    }

    #[test]
    fn a_secret_the_function_could_not_use_is_refused_and_says_why() {
        let plain_http = SecretChanges {
            instance_url: Some("http://acme.service-now.com".into()),
            ..new_connection()
        };
        let problem = merged(Map::new(), plain_http, "s").err().unwrap();
        assert!(problem.contains("https"), "{problem}");
        assert!(!problem.contains("pass word"), "{problem}");

        let no_password = SecretChanges {
            password: None,
            ..new_connection()
        };
        let problem = merged(Map::new(), no_password, "s").err().unwrap();
        assert!(problem.contains("password"), "{problem}");

        let problem = fields_of(&SecretString::from("hunter2"), "s")
            .err()
            .unwrap();
        assert!(problem.contains("not a JSON object"), "{problem}");
        assert!(!problem.contains("hunter2"), "{problem}");
    }

    #[test]
    fn the_next_steps_show_the_token_only_when_asked() {
        let hidden = next_steps(
            "arn:x",
            true,
            TokenChange::Made,
            None,
            Some("https://w/webhook"),
        );
        assert!(hidden.contains("SecretArn: arn:x"));
        assert!(hidden.contains("URL:     https://w/webhook"));
        assert!(hidden.contains("get-secret-value --secret-id arn:x"));
        let shown = next_steps("arn:x", false, TokenChange::Rotated, Some("t0k3n"), None);
        assert!(shown.contains("Authorization: Bearer t0k3n"));
        assert!(shown.contains("the previous one keeps working"));
        assert!(shown.contains("--drop-previous-token"));
    }
}
