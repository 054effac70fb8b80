//! HTTP events in, their answers out: API Gateway HTTP API and Lambda function URL events,
//! which share payload format 2.0. Written here rather than taken from `lambda_http` for two
//! reasons: its adapter panics on a body flagged as base64 that does not decode (here it is
//! an ordinary 400), and it reads every field of the event into a full request model, where
//! the webhook needs five.

use base64::Engine;
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A webhook call, whichever door it came through: the body as bytes.
pub type WebhookRequest = http::Request<Vec<u8>>;
/// The answer: always JSON that says what happened, for iLert's alert log.
pub type WebhookResponse = http::Response<String>;

/// Marks a request whose body API Gateway flagged as base64 but which does not decode; set
/// here, answered 400 after authentication like any other bad body.
#[derive(Debug, Clone, Copy)]
pub struct UndecodableBody;

/// Marks a request whose URL could not be read as one (its settings would be lost), with
/// why; set here, answered 400 after authentication.
#[derive(Debug, Clone)]
pub struct UnreadableUrl(pub String);

/// What the webhook reads of an API Gateway HTTP API (payload format 2.0) event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    #[serde(default)]
    pub raw_path: Option<String>,
    #[serde(default)]
    pub raw_query_string: Option<String>,
    /// Lower-cased names; repeated headers arrive joined with commas.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub request_context: RequestContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestContext {
    #[serde(default)]
    pub http: HttpDescription,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpDescription {
    #[serde(default)]
    pub method: String,
}

/// The answer API Gateway turns into the HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiResponse {
    pub status_code: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

/// The webhook call an event describes.
pub fn into_request(event: HttpApiEvent) -> WebhookRequest {
    let (body, undecodable) = match (event.body, event.is_base64_encoded) {
        (None, _) => (Vec::new(), false),
        (Some(text), false) => (text.into_bytes(), false),
        (Some(encoded), true) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => (bytes, false),
            Err(_) => (Vec::new(), true),
        },
    };
    let path = event.raw_path.unwrap_or_else(|| "/".into());
    let uri = match event.raw_query_string.as_deref() {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path,
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::from_bytes(event.request_context.http.method.as_bytes())
        .unwrap_or(http::Method::GET);
    // API Gateway passes the URL as the sender wrote it, and iLert's URL field lets through
    // bytes a URI may not hold raw (`"`, `<`, `>`, `{`, `|`, …): they are percent-encoded,
    // which the settings parser decodes back to exactly what was typed.
    match within_uri(&uri).parse() {
        Ok(parsed) => *request.uri_mut() = parsed,
        Err(error) => {
            request
                .extensions_mut()
                .insert(UnreadableUrl(error.to_string()));
        }
    }
    for (name, value) in event.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    if undecodable {
        request.extensions_mut().insert(UndecodableBody);
    }
    request
}

/// `uri` with every byte a URI may not carry raw percent-encoded; `%` stays, so what the
/// sender already encoded is decoded once, as written.
fn within_uri(uri: &str) -> String {
    const KEPT: &[u8] = b"-._~!$&'()*+,;=:@/?%";
    let mut encoded = String::with_capacity(uri.len());
    for byte in uri.bytes() {
        if byte.is_ascii_alphanumeric() || KEPT.contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The answer API Gateway turns into the caller's HTTP response.
pub fn into_api_gateway_response(response: WebhookResponse) -> HttpApiResponse {
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    HttpApiResponse {
        status_code: parts.status.as_u16(),
        headers,
        body,
        is_base64_encoded: false,
    }
}
