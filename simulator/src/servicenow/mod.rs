//! A stateful ServiceNow instance with an incident table and `sys_user`, keeping the traps of
//! a real one (see the README): values are strings, journal fields read back empty, an
//! invalid query term is dropped (widening the query), resolving without close fields hits a
//! data-policy 403, Closed and Canceled incidents refuse writes, and `priority` is computed
//! from impact and urgency. Every saved write records who made it and when (`sys_updated_by`,
//! `sys_updated_on`, `sys_mod_count`), so a test can edit an incident as a service-desk user
//! would and see what a sync pass reading the instance back makes of it.
//!
//! Event Management (`POST /api/global/em/jsonv2`, the `em_event` and `em_alert` tables and
//! the processing that turns events into alerts) is there once a test installs it: see
//! [`event_management`].

mod event_management;
#[cfg(test)]
mod event_management_tests;
mod instance;

use instance::record_of;

use crate::server::{respond, serve, ServerStats, ANY_LOOPBACK_PORT};
use crate::tls::TestCa;
use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A request the simulator received, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    /// The `Authorization` header as sent, so a test can see which credentials each request
    /// carried.
    pub authorization: String,
}

/// One journal entry (work note or customer-visible comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub field: String,
    pub text: String,
    /// Who wrote it (`user_name`), and when (`YYYY-MM-DD HH:MM:SS`).
    pub author: String,
    pub at: String,
}

#[derive(Debug, Clone)]
struct StoredIncident {
    fields: BTreeMap<String, String>,
    journal: Vec<JournalEntry>,
}

/// Fields an incident has; a query term naming any other field is "invalid".
const INCIDENT_FIELDS: &[&str] = &[
    "sys_id",
    "number",
    "state",
    "short_description",
    "description",
    "correlation_id",
    "correlation_display",
    "impact",
    "urgency",
    "priority",
    "close_code",
    "close_notes",
    "caller_id",
    "assignment_group",
    "assigned_to",
    "category",
    "subcategory",
    "cmdb_ci",
    "business_service",
    "service_offering",
    "contact_type",
    "location",
    "company",
    "hold_reason",
    "active",
    "opened_at",
    "resolved_at",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    "work_notes",
    "comments",
];
const JOURNAL_FIELDS: &[&str] = &["work_notes", "comments"];
const USER_FIELDS: &[&str] = &["sys_id", "user_name", "email", "name", "active"];
const REFERENCE_FIELDS: &[&str] = &[
    "caller_id",
    "assignment_group",
    "assigned_to",
    "cmdb_ci",
    "business_service",
    "service_offering",
    "location",
    "company",
];

#[derive(Debug, Default)]
struct ServiceNowState {
    incidents: Vec<StoredIncident>,
    users: Vec<BTreeMap<String, String>>,
    requests: Vec<ReceivedRequest>,
    next_number: u32,
    expected_auth: String,
    user_login: (String, String),
    oauth: OAuthState,
    quirks: Quirks,
    /// Assignment groups by name or sys_id, with their members' sys_ids.
    groups: BTreeMap<String, Vec<String>>,
    /// Columns this instance added to incidents (`u_environment`, …): written, read and
    /// queried like the base table's; any other unknown field is ignored on write and left
    /// out of records, as a real instance does.
    custom_columns: Vec<String>,
    /// Columns a data policy makes mandatory: a write that would leave one blank is refused.
    mandatory_columns: Vec<String>,
    /// The Event Management plugin, its tables and its processing job (not installed unless
    /// a test installs it).
    event_management: event_management::EventManagement,
}

/// The instance's OAuth 2.0 application: one client, the tokens it issued.
#[derive(Debug, Default)]
struct OAuthState {
    client: Option<(String, String)>,
    valid_tokens: Vec<String>,
    issued: u32,
    lifetime_seconds: u64,
    /// The grant type of every token request, oldest first.
    grants: Vec<String>,
}

pub(super) fn basic_auth(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// Ways a real instance misbehaves that tests can switch on.
#[derive(Debug, Default)]
struct Quirks {
    /// Faults for coming requests, each taken by the first request of its method.
    faults: std::collections::VecDeque<(Option<Method>, Fault)>,
    /// An outage: every request meets this fault until the instance is back.
    outage: Option<Fault>,
    /// Requests that met the outage.
    met_outage: u64,
    /// Extra time every request of a method takes before it is applied.
    latency: BTreeMap<String, Duration>,
    /// Fields queries cannot see (misspelled on the caller's side, say): a term naming one
    /// is dropped and the query widens.
    hidden_from_queries: Vec<String>,
    /// Fields the integration user may not read (a field ACL): a query term naming one is
    /// dropped, widening the query, and records show the field empty.
    unreadable: Vec<String>,
    /// Fields a field-level ACL silently refuses to write, still answering 200.
    dropped_on_write: Vec<String>,
    /// How long an insert takes between taking its number and committing: a base time and a
    /// random extra of up to the second value.
    insert_time: (Duration, Duration),
    /// A rate-limit rule: at most this many requests a second; the rest are answered 429.
    rate_limit: Option<RateWindow>,
    /// An assignment rule (or flow) that moves a New incident to In Progress as soon as
    /// `assigned_to` is filled, inside the very write that fills it; and how often it did.
    in_progress_on_assignment: bool,
    assignment_rule_fired: u64,
}

/// One second's worth of a rate-limit rule.
#[derive(Debug)]
struct RateWindow {
    per_second: u32,
    started: std::time::Instant,
    used: u32,
    refused: u64,
    /// Until when the last refusal's `Retry-After` asked the client to wait.
    asked_to_wait_until: Option<std::time::Instant>,
    /// Refusals of requests that came while such a wait still ran: what a client that
    /// honours `Retry-After` across its requests would not have sent.
    refused_while_asked_to_wait: u64,
}

impl RateWindow {
    /// Whether one more request fits the rule; counts it either way.
    fn admit(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now.duration_since(self.started) >= Duration::from_secs(1) {
            self.started = now;
            self.used = 0;
        }
        self.used += 1;
        let admitted = self.used <= self.per_second;
        if !admitted {
            self.refused += 1;
            if self.asked_to_wait_until.is_some_and(|until| now < until) {
                self.refused_while_asked_to_wait += 1;
            } else {
                self.asked_to_wait_until = Some(now + Duration::from_secs(1));
            }
        }
        admitted
    }
}

impl Quirks {
    fn invisible_to_queries(&self) -> Vec<String> {
        self.hidden_from_queries
            .iter()
            .chain(&self.unreadable)
            .cloned()
            .collect()
    }
}

/// What the instance does with a request on arrival: how long it takes, the fault it meets,
/// and for an insert the number it took.
pub(super) struct Reception {
    delay: Duration,
    fault: Option<Fault>,
    number: Option<u32>,
}

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this instead of the Table API's answer; nothing is applied.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
        retry_after_seconds: Option<u64>,
        /// A `Location` header, for a redirect.
        location: Option<String>,
    },
    /// Cut the connection before the request is applied.
    CutBeforeApplying,
    /// Apply the request, then cut the connection: the caller never learns it worked.
    CutAfterApplying,
    /// Take this long before applying the request.
    Delay(Duration),
}

impl Fault {
    /// A Table API error answer, as an instance gives it when throttling or failing.
    pub fn status(status: u16, retry_after_seconds: Option<u64>) -> Self {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Self::Answer {
            status,
            content_type: "application/json",
            body: json!({ "error": { "message": reason, "detail": "injected by the simulator" }, "status": "failure" })
                .to_string(),
            retry_after_seconds,
            location: None,
        }
    }

    /// The intermittent refusal some instances give under load (KB2466644): a 403 that the
    /// same request does not meet again.
    pub fn failed_api_acl_validation() -> Self {
        Self::Answer {
            status: 403,
            content_type: "application/json",
            body: json!({ "error": { "message": "Failed API level ACL Validation", "detail": null }, "status": "failure" })
                .to_string(),
            retry_after_seconds: None,
            location: None,
        }
    }

    /// What a sleeping developer instance serves: 200 with an HTML page.
    pub fn hibernating() -> Self {
        Self::Answer {
            status: 200,
            content_type: "text/html",
            body: "<html><body><h1>Your instance is hibernating</h1></body></html>".into(),
            retry_after_seconds: None,
            location: None,
        }
    }

    /// What an instance behind single sign-on does with an API call it will not
    /// authenticate itself: a redirect to its login page.
    pub fn redirect_to_login() -> Self {
        Self::Answer {
            status: 302,
            content_type: "text/html",
            body: String::new(),
            retry_after_seconds: None,
            location: Some("/login_redirect.do?sysparm_stack=no".into()),
        }
    }
}

/// A stateful ServiceNow instance with an incident table, reached over HTTP on loopback.
#[derive(Clone)]
pub struct ServiceNowSimulator {
    address: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<ServiceNowState>>,
    stats: Arc<ServerStats>,
}

impl ServiceNowSimulator {
    /// Starts an instance on a free loopback port that accepts only `username`/`password`
    /// (HTTP Basic).
    pub async fn start(username: &str, password: &str) -> std::io::Result<Self> {
        Self::start_at(ANY_LOOPBACK_PORT.into(), username, password).await
    }

    pub async fn start_at(
        address: SocketAddr,
        username: &str,
        password: &str,
    ) -> std::io::Result<Self> {
        Self::serving(address, username, password, None).await
    }

    /// Behind TLS, with a certificate from `ca`, on a free loopback port.
    pub async fn start_tls(username: &str, password: &str, ca: &TestCa) -> std::io::Result<Self> {
        Self::serving(
            ANY_LOOPBACK_PORT.into(),
            username,
            password,
            Some(ca.acceptor()),
        )
        .await
    }

    async fn serving(
        address: SocketAddr,
        username: &str,
        password: &str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(Mutex::new(ServiceNowState {
            next_number: 10001,
            expected_auth: basic_auth(username, password),
            user_login: (username.to_owned(), password.to_owned()),
            oauth: OAuthState {
                lifetime_seconds: 1799,
                ..OAuthState::default()
            },
            ..ServiceNowState::default()
        }));
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_user(username, "", "iLert Integration");
        let shared = Arc::clone(&state);
        let stats = Arc::new(ServerStats::default());
        let address = serve(
            address,
            Arc::clone(&stats),
            tls,
            move |method, path, query, headers, body| {
                let state = Arc::clone(&shared);
                // Like a real instance's transaction, a request goes on to its end when the
                // client stops waiting (a timeout, a dropped connection): a slow insert
                // commits after its caller gave up on it. The caller only loses the answer.
                let transaction = tokio::spawn(async move {
                    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
                    let Reception {
                        delay,
                        fault,
                        number,
                    } = lock().receive(&method, &path, query.as_deref(), &headers, &body);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let authorization = headers
                        .get(hyper::header::AUTHORIZATION)
                        .map(|value| value.as_bytes().to_vec())
                        .unwrap_or_default();
                    let apply = || {
                        let response = lock().table_api(
                            &authorization,
                            &method,
                            &path,
                            query.as_deref(),
                            &body,
                            number,
                        );
                        // Events it stored are processed a moment later, as on a real instance.
                        event_management::schedule_processing(&state);
                        response
                    };
                    match fault {
                        Some(Fault::Answer {
                            status,
                            content_type,
                            body,
                            retry_after_seconds,
                            location,
                        }) => {
                            let mut response = respond(
                                StatusCode::from_u16(status).expect("a valid status"),
                                content_type,
                                body,
                            );
                            if let Some(seconds) = retry_after_seconds {
                                response
                                    .headers_mut()
                                    .insert(hyper::header::RETRY_AFTER, seconds.into());
                            }
                            if let Some(location) = location.and_then(|l| l.parse().ok()) {
                                response
                                    .headers_mut()
                                    .insert(hyper::header::LOCATION, location);
                            }
                            Some(response)
                        }
                        Some(Fault::CutBeforeApplying) => None,
                        Some(Fault::CutAfterApplying) => {
                            apply();
                            None
                        }
                        Some(Fault::Delay(_)) | None => Some(apply()),
                    }
                });
                async move { transaction.await.ok().flatten() }
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

    /// Connections opened to the instance, and the time it spent answering.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The instance URL to put in the secret.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    fn lock(&self) -> MutexGuard<'_, ServiceNowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every incident as the Table API would return it with all fields (journals empty).
    pub fn incidents(&self) -> Vec<Map<String, Value>> {
        let state = self.lock();
        state
            .incidents
            .iter()
            .map(|incident| record_of(incident, None, true, &[], &state.custom_columns))
            .collect()
    }

    /// The incident with this correlation id, if exactly one has it.
    pub fn incident_for(&self, correlation_id: &str) -> Option<Map<String, Value>> {
        let all: Vec<_> = self
            .incidents()
            .into_iter()
            .filter(|i| i["correlation_id"] == correlation_id)
            .collect();
        match all.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// The incident with this number, as the Table API would return it with all fields.
    pub fn incident_by_number(&self, number: &str) -> Option<Map<String, Value>> {
        let state = self.lock();
        let index = state.index_by_number(number)?;
        Some(record_of(
            &state.incidents[index],
            None,
            true,
            &[],
            &state.custom_columns,
        ))
    }

    /// A change `user_name` makes to the incident on the instance's own form, as a
    /// service-desk agent would: applied like a Table API write (journal fields append an
    /// entry, Closed and Canceled incidents refuse, the data policy and business rules apply)
    /// and recorded as theirs (`sys_updated_by`, `sys_updated_on`, `sys_mod_count`). `Err`
    /// says why the instance refused it, or that the form has no such incident or field.
    pub fn desk_edit(
        &self,
        number: &str,
        user_name: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), String> {
        // A form shows no field it does not have and lets no one type into a computed one;
        // refusing them here keeps a misspelt field in a test from passing unnoticed.
        let custom = self.lock().custom_columns.clone();
        if let Some((field, _)) = fields
            .iter()
            .find(|(field, _)| !instance::writable(field, &custom))
        {
            return Err(format!(
                "an incident has no field {field} that a user can edit"
            ));
        }
        let values = fields
            .iter()
            .map(|(field, value)| ((*field).to_owned(), Value::String((*value).to_owned())))
            .collect();
        let mut state = self.lock();
        let index = state
            .index_by_number(number)
            .ok_or_else(|| format!("no incident {number}"))?;
        state
            .update(index, values, user_name)
            .map_err(|refusal| refusal.detail.into_owned())
    }

    /// Sets the incident's `sys_updated_on` (`YYYY-MM-DD HH:MM:SS`, UTC), as if its last change
    /// were that old: for a test of what a pass looking back a while does with it.
    ///
    /// # Panics
    /// When there is no such incident or `when` is not a ServiceNow date-time: a test mistake.
    pub fn set_updated_on(&self, number: &str, when: &str) {
        assert!(
            crate::clock::parse_glide_date_time(when).is_some(),
            "{when:?} is not a ServiceNow date-time (YYYY-MM-DD HH:MM:SS)"
        );
        let mut state = self.lock();
        let index = state
            .index_by_number(number)
            .unwrap_or_else(|| panic!("no incident {number}"));
        state.incidents[index]
            .fields
            .insert("sys_updated_on".into(), when.to_owned());
    }

    /// The journal entries of the incident with this number, oldest first.
    pub fn journal(&self, number: &str) -> Vec<JournalEntry> {
        self.lock()
            .incidents
            .iter()
            .find(|i| i.fields.get("number").map(String::as_str) == Some(number))
            .map(|i| i.journal.clone())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Every request meets `fault` (a cut connection, a 503, a sleeping instance's page)
    /// until [`Self::end_outage`]: the instance is away, for as long as a test needs.
    pub fn start_outage(&self, fault: Fault) {
        self.lock().quirks.outage = Some(fault);
    }

    /// The instance answers again.
    pub fn end_outage(&self) {
        self.lock().quirks.outage = None;
    }

    /// How many requests met an outage.
    pub fn requests_during_outage(&self) -> u64 {
        self.lock().quirks.met_outage
    }

    /// Drops every fault still queued: the instance is back to normal.
    pub fn clear_faults(&self) {
        self.lock().quirks.faults.clear();
    }

    /// Injected faults that no request has met yet: a test whose fault was never met proved
    /// nothing about it.
    pub fn faults_pending(&self) -> usize {
        self.lock().quirks.faults.len()
    }

    /// Queues a fault for the next request with this method (`None`: any method).
    pub fn inject(&self, method: Option<&str>, fault: Fault) {
        let method = method.map(|m| Method::from_bytes(m.as_bytes()).expect("an HTTP method"));
        self.lock().quirks.faults.push_back((method, fault));
    }

    /// Every request with this method takes `delay` longer, before it is applied.
    pub fn set_latency(&self, method: &str, delay: Duration) {
        self.lock().quirks.latency.insert(method.to_owned(), delay);
    }

    /// Every insert takes `base` plus a random extra of up to `jitter` between taking its
    /// number and committing, as inserts with business rules do on a real instance: a slower
    /// insert holds a lower number and becomes visible after a younger one.
    pub fn set_insert_time(&self, base: Duration, jitter: Duration) {
        self.lock().quirks.insert_time = (base, jitter);
    }

    /// A rate-limit rule as instances set them for an integration user: above
    /// `per_second` requests in a second, the answer is 429 with `Retry-After: 1`.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.lock().quirks.rate_limit = Some(RateWindow {
            per_second,
            started: std::time::Instant::now(),
            used: 0,
            refused: 0,
            asked_to_wait_until: None,
            refused_while_asked_to_wait: 0,
        });
    }

    /// Of the rule's refusals, those of requests sent while an earlier refusal's
    /// `Retry-After` still ran: refusals a client could have spared the instance.
    pub fn rate_limited_while_asked_to_wait(&self) -> u64 {
        self.lock()
            .quirks
            .rate_limit
            .as_ref()
            .map_or(0, |window| window.refused_while_asked_to_wait)
    }

    /// How many requests the rate-limit rule refused.
    pub fn rate_limited(&self) -> u64 {
        self.lock()
            .quirks
            .rate_limit
            .as_ref()
            .map_or(0, |window| window.refused)
    }

    /// A field ACL that denies the integration user reading `field`: query terms on it are
    /// dropped (the query widens to every row) and records show it empty.
    pub fn deny_read(&self, field: &str) {
        self.lock().quirks.unreadable.push(field.to_owned());
    }

    /// An assignment group and its members (sys_ids): a write that assigns an incident of
    /// the group to anyone else is refused, as the usual business rule does.
    pub fn add_group(&self, name: &str, members: &[&str]) {
        self.lock().groups.insert(
            name.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// Changes the integration user's password, as an admin rotating it would.
    pub fn set_password(&self, username: &str, password: &str) {
        let mut state = self.lock();
        state.expected_auth = basic_auth(username, password);
        state.user_login = (username.to_owned(), password.to_owned());
    }

    /// Registers an OAuth application: `/oauth_token.do` then issues access tokens for
    /// this client (password grant with the integration user, or client credentials).
    pub fn enable_oauth(&self, client_id: &str, client_secret: &str) {
        self.lock().oauth.client = Some((client_id.to_owned(), client_secret.to_owned()));
    }

    /// The `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.lock().oauth.lifetime_seconds = seconds;
    }

    /// Revokes every access token issued so far, as an admin or an expiry would.
    pub fn revoke_tokens(&self) {
        self.lock().oauth.valid_tokens.clear();
    }

    /// The grant type of every token request received.
    pub fn token_grants(&self) -> Vec<String> {
        self.lock().oauth.grants.clone()
    }

    /// The sys_id of the user with this `user_name`, if there is one.
    pub fn user_sys_id(&self, user_name: &str) -> Option<String> {
        self.lock()
            .users
            .iter()
            .find(|user| user.get("user_name").map(String::as_str) == Some(user_name))
            .and_then(|user| user.get("sys_id").cloned())
    }

    /// Adds an active user to `sys_user`; returns its sys_id.
    pub fn add_user(&self, user_name: &str, email: &str, name: &str) -> String {
        self.lock().add_user(user_name, email, name)
    }

    /// Requests to the incident table only, without the `sys_user` lookups.
    pub fn incident_requests(&self) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/now/table/incident"))
            .collect()
    }

    /// Makes query terms on `field` invalid, as on an instance where an ACL hides it: the
    /// instance then drops the term and returns every row.
    pub fn hide_from_queries(&self, field: &str) {
        self.lock()
            .quirks
            .hidden_from_queries
            .push(field.to_owned());
    }

    /// Adds a column to incidents, as an admin adding a `u_…` field to the form does.
    pub fn add_column(&self, name: &str) {
        self.lock().custom_columns.push(name.to_owned());
    }

    /// An assignment rule, as many instances have: a New incident whose `assigned_to` is
    /// filled moves to In Progress inside the same write, whoever wrote it, and the write's
    /// answer shows the state the rule set.
    pub fn set_in_progress_on_assignment(&self) {
        self.lock().quirks.in_progress_on_assignment = true;
    }

    /// How many writes the assignment rule moved to In Progress.
    pub fn assignment_rule_fired(&self) -> u64 {
        self.lock().quirks.assignment_rule_fired
    }

    /// A data policy that makes `column` mandatory: a write leaving it blank is refused with
    /// `403 Data Policy Exception`, as on a real instance.
    pub fn make_mandatory(&self, column: &str) {
        self.lock().mandatory_columns.push(column.to_owned());
    }

    /// A field-level ACL that drops writes to `field` and still answers 200.
    pub fn drop_writes_to(&self, field: &str) {
        self.lock().quirks.dropped_on_write.push(field.to_owned());
    }

    /// Adds an incident as if someone had created it on the instance; returns its number. It
    /// is created (and last updated) now by `sys_created_by` when `fields` names one, else by
    /// the instance's `admin`.
    pub fn insert(&self, fields: &[(&str, &str)]) -> String {
        let mut state = self.lock();
        let record = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        state.insert(record).fields["number"].clone()
    }
}
