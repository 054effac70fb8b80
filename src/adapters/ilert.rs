//! iLert's REST API, for the way back: read an alert, accept it, resolve it, and who the API
//! key acts as. Over the process's one HTTP client; the base URL comes from the secret, so
//! tests aim it at a stand-in.

use crate::adapters::http::{retry_after, url_below};
use crate::adapters::secrets::ILertAccount;
use crate::domain::alert::{shorten, AlertId, AlertStatus, Person};
use crate::domain::alert_scan::{Listed, Window};
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::time::Duration;

/// How much of iLert's own error message is passed on.
const ERROR_MESSAGE_MAX_CHARS: usize = 200;

/// Why an iLert call failed, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ILertError {
    /// Unreachable, timed out, a 5xx: worth another try soon. An accept or resolve that failed
    /// this way may have been applied; the next try reads the alert first.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 429: over the key's rate limit (120 calls a minute). iLert sends no `Retry-After`.
    #[error("{0}")]
    Throttled(String),
    /// 403 `KEY_ERROR`: the API key is wrong or revoked. Nothing will pass until it is fixed.
    #[error("{0}")]
    KeyRefused(String),
    /// 404: no such alert, or the key's user may not see it.
    #[error("{0}")]
    NotFound(String),
    /// Any other refusal: saying it again will not help.
    #[error("{0}")]
    Refused(String),
}

/// An alert as the way back needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ILertAlert {
    pub status: AlertStatus,
}

#[derive(Deserialize)]
struct AlertBody {
    status: String,
}

/// The most alerts one page of `GET /api/alerts` holds.
pub const OPEN_ALERTS_PAGE: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedAlert {
    id: u64,
    status: String,
    #[serde(default)]
    report_time: Option<String>,
}

#[derive(Deserialize)]
struct CountBody {
    count: u64,
}

/// The filter for the alerts the way back may act on: iLert's `states`, repeated (its OpenAPI
/// has no `state`, the name its Go client sends; a server ignores that and lists everything).
const OPEN_STATES: [(&str, &str); 2] = [("states", "PENDING"), ("states", "ACCEPTED")];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// iLert's REST API over HTTPS, sharing the process's client (TLS, roots, pool).
#[derive(Clone)]
pub struct ILertApi {
    http: reqwest::Client,
}

impl ILertApi {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// `GET /api/alerts/{id}`.
    pub async fn alert(
        &self,
        account: &ILertAccount,
        id: &AlertId,
    ) -> Result<ILertAlert, ILertError> {
        let url = api_url(account, &["api", "alerts", id.as_str()]);
        let body = self.call(account, Method::GET, url, "read alert").await?;
        alert_from(&body)
    }

    /// `PUT /api/alerts/{id}/accept`: only ever sent for a PENDING alert.
    pub async fn accept(
        &self,
        account: &ILertAccount,
        id: &AlertId,
    ) -> Result<ILertAlert, ILertError> {
        self.transition(account, id, "accept").await
    }

    /// `PUT /api/alerts/{id}/resolve`: only ever sent for an alert not yet RESOLVED.
    pub async fn resolve(
        &self,
        account: &ILertAccount,
        id: &AlertId,
    ) -> Result<ILertAlert, ILertError> {
        self.transition(account, id, "resolve").await
    }

    /// `PUT /api/alerts/{id}/{verb}`, no body (iLert takes no resolution text).
    async fn transition(
        &self,
        account: &ILertAccount,
        id: &AlertId,
        verb: &str,
    ) -> Result<ILertAlert, ILertError> {
        let url = api_url(account, &["api", "alerts", id.as_str(), verb]);
        let what = format!("{verb} alert");
        let body = self.call(account, Method::PUT, url, &what).await?;
        alert_from(&body)
    }

    /// One page of the alerts still open (PENDING or ACCEPTED) reported within `window`:
    /// `GET /api/alerts?states=PENDING&states=ACCEPTED&from=…&until=…&start-index=…&max-results=100`.
    /// Every alert is returned with the status it shows, not the filter's promise: one that
    /// is not open tells that the filter was not honoured, and the caller leaves it out.
    pub async fn open_alerts(
        &self,
        account: &ILertAccount,
        window: &Window,
    ) -> Result<Vec<Listed>, ILertError> {
        let mut url = api_url(account, &["api", "alerts"]);
        {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(OPEN_STATES);
            if let Some(from) = window.from_ms {
                query.append_pair("from", &iso_millis(from));
            }
            query
                .append_pair("until", &iso_millis(window.until_ms))
                .append_pair("start-index", &window.start_index.to_string())
                .append_pair("max-results", &OPEN_ALERTS_PAGE.to_string());
        }
        let body = self
            .call(account, Method::GET, url, "list open alerts")
            .await?;
        let listed: Vec<ListedAlert> =
            serde_json::from_slice(&body).map_err(|_| ILertError::Transient {
                message: "iLert's answer to /api/alerts is not a list of alerts".into(),
                retry_after: None,
            })?;
        Ok(listed
            .into_iter()
            .filter_map(|alert| {
                Some(Listed {
                    id: AlertId::parse(&alert.id.to_string()).ok()?,
                    status: AlertStatus::from_label(&alert.status)?,
                    report_ms: alert.report_time.as_deref().and_then(epoch_millis),
                })
            })
            .collect())
    }

    /// `GET /api/alerts/count?states=PENDING&states=ACCEPTED`: how many alerts the key sees
    /// open.
    pub async fn count_open_alerts(&self, account: &ILertAccount) -> Result<u64, ILertError> {
        let mut url = api_url(account, &["api", "alerts", "count"]);
        url.query_pairs_mut().extend_pairs(OPEN_STATES);
        let body = self
            .call(account, Method::GET, url, "count open alerts")
            .await?;
        let count: CountBody =
            serde_json::from_slice(&body).map_err(|_| ILertError::Transient {
                message: "iLert's answer to /api/alerts/count is not a count".into(),
                retry_after: None,
            })?;
        Ok(count.count)
    }

    /// `GET /api/users/current`: the user the API key acts as.
    pub async fn current_user(&self, account: &ILertAccount) -> Result<Person, ILertError> {
        let url = api_url(account, &["api", "users", "current"]);
        let body = self
            .call(account, Method::GET, url, "read the key's user")
            .await?;
        let user: UserBody = serde_json::from_slice(&body).map_err(|_| ILertError::Transient {
            message: "iLert's answer to /api/users/current is not a user".into(),
            retry_after: None,
        })?;
        Ok(Person {
            id: user.id,
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            email: user.email,
        })
    }

    async fn call(
        &self,
        account: &ILertAccount,
        method: Method,
        url: Url,
        what: &str,
    ) -> Result<bytes::Bytes, ILertError> {
        let transient = |phase: &str, error: reqwest::Error| ILertError::Transient {
            message: format!(
                "iLert {phase} ({what}): {}",
                crate::adapters::servicenow::describe_transport_error(&error)
            ),
            retry_after: None,
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(account.api_key.expose_secret());
        if method == Method::PUT {
            // No body, but a length: some front ends refuse a PUT without one.
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        let response = request
            .send()
            .await
            .map_err(|error| transient("could not be reached", error))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|error| transient("cut its answer off", error))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(verdict(status, retry_after, &body, what))
    }
}

/// Milliseconds since the epoch as iLert's API takes `from` and `until`: ISO-8601 UTC,
/// `2021-05-25T21:24:56.771Z`.
fn iso_millis(ms: i64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_millis(ms)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// An alert's `reportTime` (RFC 3339) in milliseconds since the epoch.
fn epoch_millis(text: &str) -> Option<i64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(text.trim(), Format::DateTimeWithOffset)
        .ok()
        .and_then(|time| time.to_millis().ok())
}

/// A path below the API's base URL.
fn api_url(account: &ILertAccount, path: &[&str]) -> Url {
    url_below(&account.api_url, path)
}

fn alert_from(body: &[u8]) -> Result<ILertAlert, ILertError> {
    let alert: AlertBody = serde_json::from_slice(body).map_err(|_| ILertError::Transient {
        message: "iLert's answer is not an alert".into(),
        retry_after: None,
    })?;
    AlertStatus::from_label(&alert.status)
        .map(|status| ILertAlert { status })
        .ok_or_else(|| {
            ILertError::Refused(format!(
                "iLert gave the alert a status this function does not know: {:?}",
                shorten(&alert.status, 40)
            ))
        })
}

/// What an error answer means, from its status and iLert's `code`.
fn verdict(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    what: &str,
) -> ILertError {
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = error
        .message
        .as_deref()
        .map(|m| format!(": {}", shorten(m.trim(), ERROR_MESSAGE_MAX_CHARS)))
        .unwrap_or_default();
    let code = error.code.as_deref().unwrap_or_default();
    let message = format!("iLert answered {what} with {status}{detail}");
    match status {
        StatusCode::UNAUTHORIZED => ILertError::KeyRefused(message),
        StatusCode::FORBIDDEN if code == "KEY_ERROR" => ILertError::KeyRefused(message),
        StatusCode::TOO_MANY_REQUESTS => ILertError::Throttled(message),
        StatusCode::NOT_FOUND => ILertError::NotFound(message),
        StatusCode::REQUEST_TIMEOUT => ILertError::Transient {
            message,
            retry_after,
        },
        _ if status.is_server_error() => ILertError::Transient {
            message,
            retry_after,
        },
        _ => ILertError::Refused(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_key_is_told_from_other_refusals_by_ilerts_code() {
        let key = br#"{"status":403,"code":"KEY_ERROR","message":"Invalid api key"}"#;
        assert!(matches!(
            verdict(StatusCode::FORBIDDEN, None, key, "read alert"),
            ILertError::KeyRefused(message) if message.contains("Invalid api key")
        ));
        let other = br#"{"status":403,"code":"FORBIDDEN","message":"no access"}"#;
        assert!(matches!(
            verdict(StatusCode::FORBIDDEN, None, other, "accept alert"),
            ILertError::Refused(_)
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_worth_another_try() {
        assert!(matches!(
            verdict(StatusCode::TOO_MANY_REQUESTS, None, b"", "read alert"),
            ILertError::Throttled(_)
        ));
        for status in [500, 502, 503, 504, 408] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(
                    verdict(status, None, b"<html>", "read alert"),
                    ILertError::Transient { .. }
                ),
                "{status}"
            );
        }
        assert!(matches!(
            verdict(StatusCode::NOT_FOUND, None, b"{}", "read alert"),
            ILertError::NotFound(_)
        ));
        assert!(matches!(
            verdict(StatusCode::BAD_REQUEST, None, b"{}", "accept alert"),
            ILertError::Refused(_)
        ));
    }

    #[test]
    fn list_bounds_are_written_and_report_times_read_to_the_millisecond() {
        assert_eq!(iso_millis(1_760_697_672_004), "2025-10-17T10:41:12.004Z");
        assert_eq!(
            epoch_millis("2025-10-17T10:41:12.004Z"),
            Some(1_760_697_672_004)
        );
        assert_eq!(epoch_millis("yesterday"), None);
    }

    #[test]
    fn an_alert_is_read_by_its_status() {
        let alert = alert_from(br#"{"id":42,"status":"ACCEPTED","summary":"x"}"#).unwrap();
        assert_eq!(alert.status, AlertStatus::Accepted);
        assert!(matches!(
            alert_from(br#"{"id":42,"status":"SNOOZED"}"#),
            Err(ILertError::Refused(_))
        ));
        assert!(matches!(
            alert_from(b"<html>"),
            Err(ILertError::Transient { .. })
        ));
    }
}
