//! The `secret` command: writes or updates the function's secret, so nobody has to quote JSON
//! inside a shell line. It makes the webhook token, never echoes a password, checks the result
//! exactly as the function will read it, and says what to paste into iLert.

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

mod store;
pub use store::{SecretStore, StoredSecret};

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
mod tests;
