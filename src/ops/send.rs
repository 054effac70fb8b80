//! `ilert-servicenow send FILE [QUERY]`: one event through the real handler against the
//! configured instance, as iLert would send it. Never prints a secret.

use crate::adapters::api_gateway::{HttpApiEvent, HttpDescription, RequestContext};
use crate::adapters::secrets::SecretSource;
use crate::adapters::servicenow::TableApi;
use crate::domain::alert::shorten;
use crate::flow::edge::WebhookHandler;
use base64::Engine;
use lambda_runtime::Context;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `ilert-servicenow send FILE [QUERY] [--instance NAME]`: one event (an API Gateway event
/// from `events/`, or a bare iLert body) through the real handler, with the configured secret's
/// credentials (the named instance's) in place of the file's. Prints the answer; returns
/// whether it was a 2xx.
pub async fn run<S: SecretSource>(
    handler: &WebhookHandler<S, TableApi>,
    file_text: &str,
    query: &str,
    instance: Option<&str>,
    out: &mut impl Write,
) -> Result<bool, String> {
    let connection = handler.connection(instance).await?;
    let query = match instance {
        Some(name) if query.is_empty() => format!("instance={name}"),
        Some(name) => format!("instance={name}&{query}"),
        None => query.to_owned(),
    };
    let json: Value =
        serde_json::from_str(file_text).map_err(|e| format!("the file is not JSON: {e}"))?;
    let mut event: HttpApiEvent = if json.get("requestContext").is_some() {
        serde_json::from_value(json)
            .map_err(|e| format!("not an API Gateway HTTP API event: {e}"))?
    } else {
        HttpApiEvent {
            raw_path: Some("/webhook".into()),
            headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
            request_context: RequestContext {
                http: HttpDescription {
                    method: "POST".into(),
                },
            },
            body: Some(file_text.to_owned()),
            ..HttpApiEvent::default()
        }
    };
    let authorization = match (&connection.webhook.token, &connection.webhook.basic) {
        (Some(token), _) => format!("Bearer {}", token.expose_secret()),
        (None, Some((user, password))) => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose_secret()))
        ),
        (None, None) => return Err("the secret has no webhook credentials".into()),
    };
    event.headers.insert("authorization".into(), authorization);
    if !query.is_empty() {
        event.raw_query_string = Some(query);
    }
    let mut context = Context::default();
    context.deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d + Duration::from_secs(20)).as_millis() as u64);
    let answer = crate::startup::answer_http(handler, event, context).await;
    let _ = writeln!(
        out,
        "{} {}",
        answer.status_code,
        shorten(&answer.body, 2000)
    );
    Ok((200..300).contains(&answer.status_code))
}
