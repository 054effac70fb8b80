//! ServiceNow's Table API for incidents, behind a small trait so the flow does not depend on
//! HTTP. The real adapter guards against the instance's traps (see docs/guarantees.md, ServiceNow's traps).

mod oauth;

use crate::adapters::http::{retry_after, url_below};
use crate::adapters::secrets::ServiceNowAccount;
use crate::domain::alert::shorten;
use crate::domain::event_record::EventRecord;
use crate::domain::incident::{
    CorrelationId, CustomFieldLoss, Incident, IncidentChanges, IncidentState,
};
use crate::domain::settings::Email;
use oauth::CachedToken;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a write may take: an insert or update runs the instance's business rules, and on
/// a busy instance takes seconds longer than a read (the client's 3 s). The invocation's budget
/// still bounds it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of ServiceNow's own error message is passed on to iLert and the log.
const ERROR_MESSAGE_MAX_CHARS: usize = 300;
/// More than one incident per alert only exists after a race; a handful is plenty to see it.
const LOOKUP_LIMIT: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceNowError {
    /// Worth another try, and nothing was applied, so a write may be sent again: the
    /// connection could not be made, or the instance throttled (429) before doing anything.
    #[error("{message}")]
    NotApplied {
        message: String,
        /// The instance's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Worth another try soon: no answer (timed out, the connection cut) or a gateway's 5xx.
    /// A write that failed this way may or may not have been applied, and may still be.
    #[error("{message}")]
    Transient {
        message: String,
        /// The instance's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The instance answered with something that is not the Table API (a sleeping developer
    /// instance's HTML page): unavailable, and not within seconds.
    #[error("{0}")]
    NotTableApi(String),
    /// 401: the integration user's credentials are wrong, perhaps rotated.
    #[error("{0}")]
    Unauthorized(String),
    /// May pass on its own or may not: a 500 (a script error, or a node that failed once) or
    /// the intermittent "Failed API level ACL Validation" 403. Worth `tries` attempts in all;
    /// every attempt reads before it writes, so a retry never applies a write twice.
    #[error("{message}")]
    Intermittent { message: String, tries: u32 },
    /// The instance said no, and saying it again will not change its mind.
    #[error("{0}")]
    Refused(String),
    /// 404: no such record, or an ACL hides it from the integration user.
    #[error("{0}")]
    NotFound(String),
    /// The write was applied, but without a field the function depends on (a field ACL, a
    /// business rule or a data policy dropped it and still answered 200).
    #[error("{0}")]
    Dropped(String),
}

/// How to find a user in `sys_user`. Both forms are checked to be safe in a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserKey {
    Email(Email),
    /// A login name (`user_name`), such as the integration user's.
    UserName(String),
}

impl UserKey {
    /// `None` for a user name that could change the query (`^`, `=`, spaces).
    pub fn user_name(name: &str) -> Option<Self> {
        let safe = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || "._-@+".contains(c));
        safe.then(|| Self::UserName(name.to_owned()))
    }

    fn field_and_value(&self) -> (&'static str, &str) {
        match self {
            Self::Email(email) => ("email", email.as_str()),
            Self::UserName(name) => ("user_name", name),
        }
    }
}

pub trait IncidentTable: Send + Sync {
    /// Event Management's records, in order, in one request (`target=event`).
    fn send_events(
        &self,
        account: &ServiceNowAccount,
        records: &[EventRecord],
    ) -> impl Future<Output = Result<(), ServiceNowError>> + Send;

    /// The sys_id of the active user with this email or user name, if there is one.
    fn find_user(
        &self,
        account: &ServiceNowAccount,
        key: &UserKey,
    ) -> impl Future<Output = Result<Option<String>, ServiceNowError>> + Send;

    /// Incidents whose `correlation_id` is exactly `key`, oldest (lowest number) first.
    fn find(
        &self,
        account: &ServiceNowAccount,
        key: &CorrelationId,
    ) -> impl Future<Output = Result<Vec<Incident>, ServiceNowError>> + Send;

    fn create(
        &self,
        account: &ServiceNowAccount,
        changes: &IncidentChanges,
    ) -> impl Future<Output = Result<Incident, ServiceNowError>> + Send;

    fn update(
        &self,
        account: &ServiceNowAccount,
        sys_id: &str,
        changes: &IncidentChanges,
    ) -> impl Future<Output = Result<Incident, ServiceNowError>> + Send;

    /// The incident with this sys_id, if the integration user can read it.
    fn get(
        &self,
        account: &ServiceNowAccount,
        sys_id: &SysId,
    ) -> impl Future<Output = Result<Option<Incident>, ServiceNowError>> + Send;

    /// Every incident of these alerts (their exact keys), oldest (lowest number) first: what
    /// the back-sync pass asks for the alerts still open in iLert.
    fn of_alerts(
        &self,
        account: &ServiceNowAccount,
        keys: &[CorrelationId],
    ) -> impl Future<Output = Result<Vec<Incident>, ServiceNowError>> + Send;
}

/// A record's sys_id: 32 hex digits, checked before it goes into a URL's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysId(String);

impl SysId {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Table API over HTTPS. One `reqwest::Client` per execution environment, so warm
/// invocations reuse the TCP and TLS connection.
#[derive(Clone)]
pub struct TableApi {
    http: reqwest::Client,
    /// The OAuth access token, per execution environment.
    tokens: Arc<Mutex<std::collections::HashMap<String, CachedToken>>>,
    /// One token fetch at a time per instance and client.
    token_fetches: Arc<Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Per instance, until when its last 429 asked to wait: every request of the execution
    /// environment waits it out, not only the one refused.
    asked_to_wait: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
}

/// How long an instance is left alone after a 429 that named no `Retry-After`.
const WAIT_AFTER_A_BARE_429: Duration = Duration::from_secs(1);

impl TableApi {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            tokens: Arc::default(),
            token_fetches: Arc::default(),
            asked_to_wait: Arc::default(),
        }
    }

    /// What is left of the wait the instance's last 429 asked for, if any.
    fn still_asked_to_wait(&self, account: &ServiceNowAccount) -> Option<Duration> {
        let waits = self.asked_to_wait.lock().unwrap_or_else(|e| e.into_inner());
        let until = waits.get(account.instance_url.as_str())?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn remember_wait(&self, account: &ServiceNowAccount, wait: Duration) {
        let until = Instant::now() + wait;
        let mut waits = self.asked_to_wait.lock().unwrap_or_else(|e| e.into_inner());
        let entry = waits
            .entry(account.instance_url.as_str().to_owned())
            .or_insert(until);
        *entry = (*entry).max(until);
    }

    fn table_url(account: &ServiceNowAccount, sys_id: Option<&str>) -> Url {
        Self::table_url_showing(account, sys_id, &[])
    }

    /// The URL of a write: its answer shows the lookup's fields and the custom fields it
    /// sets, so that what did not stick can be told.
    fn write_url(
        account: &ServiceNowAccount,
        sys_id: Option<&str>,
        changes: &IncidentChanges,
    ) -> Url {
        let custom: Vec<&str> = changes.custom.keys().map(String::as_str).collect();
        Self::table_url_showing(account, sys_id, &custom)
    }

    fn table_url_showing(account: &ServiceNowAccount, sys_id: Option<&str>, extra: &[&str]) -> Url {
        let mut path = vec!["api", "now", "table", "incident"];
        path.extend(sys_id);
        let mut url = instance_url(account, &path);
        let fields: Vec<&str> = Incident::LOOKUP_FIELDS
            .iter()
            .chain(extra)
            .copied()
            .collect();
        url.query_pairs_mut()
            .append_pair("sysparm_fields", &fields.join(","))
            .append_pair("sysparm_exclude_reference_link", "true");
        url
    }

    async fn call(
        &self,
        account: &ServiceNowAccount,
        method: Method,
        url: Url,
        body: Option<&IncidentChanges>,
    ) -> Result<Value, ServiceNowError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("incident changes are plain strings"));
        self.call_with(account, method, url, body).await
    }

    /// One request with a JSON body already written, if any.
    async fn call_with(
        &self,
        account: &ServiceNowAccount,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ServiceNowError> {
        // While the instance's 429 asks to wait, nothing is sent (it would only be refused
        // again); the caller waits as if it had been refused.
        if let Some(left) = self.still_asked_to_wait(account) {
            return Err(ServiceNowError::NotApplied {
                message: format!(
                    "ServiceNow asked to wait (429) and {} ms of the wait are left; not sent",
                    left.as_millis()
                ),
                retry_after: Some(left),
            });
        }
        let mut fresh_token = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            request = match (&account.oauth_client, &account.user) {
                (Some(_), _) => request.bearer_auth(
                    self.oauth_token(account, fresh_token)
                        .await?
                        .expose_secret(),
                ),
                (None, Some((username, password))) => {
                    request.basic_auth(username, Some(password.expose_secret()))
                }
                (None, None) => request,
            };
            if let Some(json) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .timeout(WRITE_TIMEOUT)
                    .body(json.clone());
            }
            let (status, retry_after, bytes) = send(request, &method).await?;
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.remember_wait(account, retry_after.unwrap_or(WAIT_AFTER_A_BARE_429));
            }
            // An access token can be revoked before it expires: get a new one, once.
            if status == StatusCode::UNAUTHORIZED && account.oauth_client.is_some() && !fresh_token
            {
                fresh_token = true;
                continue;
            }
            return interpret(&method, status, retry_after, &bytes);
        }
    }
}

/// A path on the instance, below whatever path `instance_url` itself has.
fn instance_url(account: &ServiceNowAccount, path: &[&str]) -> Url {
    url_below(&account.instance_url, path)
}

/// Sends a request; transport failures are transient.
async fn send(
    request: reqwest::RequestBuilder,
    method: &Method,
) -> Result<(StatusCode, Option<Duration>, bytes::Bytes), ServiceNowError> {
    let transient = |what: &str, error: &reqwest::Error| ServiceNowError::Transient {
        message: format!(
            "ServiceNow {what} ({method}): {}",
            describe_transport_error(error)
        ),
        retry_after: None,
    };
    let response = request.send().await.map_err(|error| {
        if error.is_connect() {
            ServiceNowError::NotApplied {
                message: format!(
                    "ServiceNow could not be reached ({method}): {}",
                    describe_transport_error(&error)
                ),
                retry_after: None,
            }
        } else {
            transient("did not answer", &error)
        }
    })?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let bytes = response
        .bytes()
        .await
        .map_err(|error| transient("cut its answer off", &error))?;
    Ok((status, retry_after, bytes))
}

impl TableApi {
    /// Reads one Event Management alert, if there is any: whether the integration user may
    /// read `em_alert` (the `evt_mgmt_user` role).
    pub async fn read_one_alert(&self, account: &ServiceNowAccount) -> Result<(), ServiceNowError> {
        let mut url = instance_url(account, &["api", "now", "table", "em_alert"]);
        url.query_pairs_mut()
            .append_pair("sysparm_limit", "1")
            .append_pair("sysparm_fields", "number");
        self.call(account, Method::GET, url, None).await.map(|_| ())
    }

    /// Reads one incident, if there is any: proves the instance is reachable, knows the
    /// credentials and lets them read the incident table.
    pub async fn probe(
        &self,
        account: &ServiceNowAccount,
    ) -> Result<Option<Incident>, ServiceNowError> {
        self.first(account, &[], "active=true^ORDERBYDESCsys_updated_on")
            .await
    }

    /// The most recently updated incident, active or not, showing `extra` fields besides the
    /// usual ones, if there is any incident: which of them the table has and the user may
    /// read (ServiceNow leaves the others out of the record).
    pub async fn newest_showing(
        &self,
        account: &ServiceNowAccount,
        extra: &[&str],
    ) -> Result<Option<Incident>, ServiceNowError> {
        self.first(account, extra, "ORDERBYDESCsys_updated_on")
            .await
    }

    /// The first incident `query` finds, showing `extra` fields besides the usual ones.
    async fn first(
        &self,
        account: &ServiceNowAccount,
        extra: &[&str],
        query: &str,
    ) -> Result<Option<Incident>, ServiceNowError> {
        let mut url = Self::table_url_showing(account, None, extra);
        url.query_pairs_mut()
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_limit", "1");
        let result = self.call(account, Method::GET, url, None).await?;
        let records = result.as_array().ok_or_else(|| {
            ServiceNowError::NotTableApi("ServiceNow's answer has no list of records".into())
        })?;
        Ok(records.first().map(incident_from))
    }
}

impl IncidentTable for TableApi {
    async fn send_events(
        &self,
        account: &ServiceNowAccount,
        records: &[EventRecord],
    ) -> Result<(), ServiceNowError> {
        let url = instance_url(account, &["api", "global", "em", "jsonv2"]);
        let body = serde_json::to_vec(&serde_json::json!({ "records": records }))
            .expect("records are plain strings");
        match self.call_with(account, Method::POST, url, Some(body)).await {
            Ok(_) => Ok(()),
            Err(refused @ (ServiceNowError::Refused(_) | ServiceNowError::NotFound(_))) => {
                Err(ServiceNowError::Refused(explain_event_refusal(&refused)))
            }
            Err(other) => Err(other),
        }
    }

    async fn find_user(
        &self,
        account: &ServiceNowAccount,
        key: &UserKey,
    ) -> Result<Option<String>, ServiceNowError> {
        let (field, value) = key.field_and_value();
        let mut url = instance_url(account, &["api", "now", "table", "sys_user"]);
        url.query_pairs_mut()
            .append_pair("sysparm_query", &format!("{field}={value}^active=true"))
            .append_pair("sysparm_fields", &format!("sys_id,{field}"))
            .append_pair("sysparm_limit", "5");
        let result = self.call(account, Method::GET, url, None).await?;
        let records = result.as_array().ok_or_else(|| {
            ServiceNowError::NotTableApi("ServiceNow's user lookup answer has no list".into())
        })?;
        // As with incidents, a dropped query term returns every user: match the value here.
        Ok(records
            .iter()
            .find(|user| {
                user[field]
                    .as_str()
                    .is_some_and(|found| found.eq_ignore_ascii_case(value))
            })
            .and_then(|user| user["sys_id"].as_str())
            .map(str::to_owned))
    }

    async fn find(
        &self,
        account: &ServiceNowAccount,
        key: &CorrelationId,
    ) -> Result<Vec<Incident>, ServiceNowError> {
        let mut url = Self::table_url(account, None);
        url.query_pairs_mut()
            .append_pair(
                "sysparm_query",
                &format!("correlation_id={}^ORDERBYnumber", key.as_str()),
            )
            .append_pair("sysparm_limit", &LOOKUP_LIMIT.to_string())
            // Journal fields read back empty as stored values; their display value is every
            // entry, which is how the lookup learns which notes were written. Every other
            // field then comes as {display_value, value}, and its value is read.
            .append_pair("sysparm_display_value", "all");
        let result = self.call(account, Method::GET, url, None).await?;
        let records = result.as_array().ok_or_else(|| {
            ServiceNowError::NotTableApi("ServiceNow's lookup answer has no list of records".into())
        })?;
        let mut incidents: Vec<Incident> = records.iter().map(incident_from).collect();
        // A query term the instance cannot use (a field the user may not read, a term it
        // cannot parse) is dropped, widening the query to every row, cut by sysparm_limit.
        // One record without our key proves it, and then the lookup proves nothing: the
        // alert's own incident may be among the rows cut off.
        let strangers = incidents
            .iter()
            .filter(|incident| incident.correlation_id != key.as_str())
            .count();
        if strangers > 0 {
            return Err(ServiceNowError::Refused(format!(
                "ServiceNow ignored the lookup's condition correlation_id={key} and returned \
                 {strangers} incident(s) without it: the integration user probably may not read \
                 incident.correlation_id (a field ACL); grant it read access. Nothing was \
                 created or changed.",
                key = key.as_str()
            )));
        }
        incidents.sort_by(|a, b| oldest_first(&a.number, &b.number));
        Ok(incidents)
    }

    async fn create(
        &self,
        account: &ServiceNowAccount,
        changes: &IncidentChanges,
    ) -> Result<Incident, ServiceNowError> {
        let url = Self::write_url(account, None, changes);
        let result = self.call(account, Method::POST, url, Some(changes)).await?;
        applied(changes, incident_from(&result), "creation")
    }

    async fn update(
        &self,
        account: &ServiceNowAccount,
        sys_id: &str,
        changes: &IncidentChanges,
    ) -> Result<Incident, ServiceNowError> {
        let url = Self::write_url(account, Some(sys_id), changes);
        let result = self
            .call(account, Method::PATCH, url, Some(changes))
            .await?;
        applied(changes, incident_from(&result), "update")
    }

    async fn get(
        &self,
        account: &ServiceNowAccount,
        sys_id: &SysId,
    ) -> Result<Option<Incident>, ServiceNowError> {
        let url = Self::table_url(account, Some(sys_id.as_str()));
        match self.call(account, Method::GET, url, None).await {
            Ok(result) if result.is_object() => Ok(Some(incident_from(&result))),
            Ok(_) => Err(ServiceNowError::NotTableApi(
                "ServiceNow's answer to a read by sys_id has no record".into(),
            )),
            // "No Record found": it does not exist, or an ACL hides it from the user.
            Err(ServiceNowError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn of_alerts(
        &self,
        account: &ServiceNowAccount,
        keys: &[CorrelationId],
    ) -> Result<Vec<Incident>, ServiceNowError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<&str> = keys.iter().map(CorrelationId::as_str).collect();
        // Merged duplicates are moved aside, so an alert has one incident, rarely a few (a race
        // not merged yet, a duplicate canceled by hand).
        let limit = keys.len() * 3;
        let mut url = Self::table_url(account, None);
        url.query_pairs_mut()
            .append_pair(
                "sysparm_query",
                &format!("correlation_idIN{}^ORDERBYnumber", list.join(",")),
            )
            .append_pair("sysparm_limit", &limit.to_string());
        let result = self.call(account, Method::GET, url, None).await?;
        let records = result.as_array().ok_or_else(|| {
            ServiceNowError::NotTableApi(
                "ServiceNow's answer to the back-sync's query has no list of records".into(),
            )
        })?;
        let mut incidents: Vec<Incident> = records.iter().map(incident_from).collect();
        // As with a lookup: a term the instance could not use was dropped, and the answer is
        // any incidents, cut by sysparm_limit; one without a key asked for proves it, and then
        // nothing in it can be trusted.
        let strangers = incidents
            .iter()
            .filter(|incident| !list.contains(&incident.correlation_id.as_str()))
            .count();
        if strangers > 0 || incidents.len() >= limit {
            return Err(ServiceNowError::Refused(format!(
                "ServiceNow ignored part of the back-sync's query ({strangers} incident(s) \
                 without a key asked for came back): the integration user probably may not read \
                 incident.correlation_id (a field ACL); grant it read access"
            )));
        }
        incidents.sort_by(|a, b| oldest_first(&a.number, &b.number));
        Ok(incidents)
    }
}

mod answers;
pub(crate) use answers::describe_transport_error;
use answers::{applied, explain_event_refusal, incident_from, interpret, oldest_first};

#[cfg(test)]
mod tests;
