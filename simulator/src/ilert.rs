//! iLert's REST API, as far as a ServiceNow → iLert sync goes: who the API key acts as, reading
//! an alert, listing or counting alerts, accepting and resolving it, as iLert's OpenAPI
//! description documents them (see [`crate::ilert_contract`]). A parameter the description does
//! not have is ignored, as a real server ignores it: a misnamed filter lists every alert. It
//! keeps the real API's traps: a wrong or revoked key
//! is a `403 KEY_ERROR`, not a 401; the rate limit (120 calls a minute per key, a sliding
//! window) answers 429 with no `Retry-After` and no rate-limit headers; the lifecycle only moves
//! forward, so accepting twice or resolving twice is no transition; and every accept or resolve
//! made through the API makes iLert send the alert action's webhook again, naming the key's
//! user: the echo a sync must recognise as its own.

use crate::clock;
use crate::server::{respond_json, serve, HttpResponse, ServerStats, ANY_LOOPBACK_PORT};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A request the stand-in received and how it answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ILertRequest {
    pub method: String,
    pub path: String,
    /// The query string as sent, `""` when there was none.
    pub query: String,
    /// The status answered; 0 when the connection was cut instead.
    pub status: u16,
}

/// One injected failure, taken by the next admitted request it applies to (a request refused
/// for its key or for the rate limit does not take it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ILertFault {
    /// Answer this status with an iLert-style JSON error (and no `Retry-After`, even for 429,
    /// as iLert sends none); nothing is applied.
    Status(u16),
    /// Cut the connection before the request is applied.
    CutBeforeApplying,
    /// Apply the request, then cut the connection: the caller never learns it worked.
    CutAfterApplying,
}

/// An iLert user, as alerts name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct User {
    id: u64,
    username: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    email: &'static str,
}

impl User {
    /// As the REST API shows a user: in `GET /api/users/current` and an alert's responders.
    fn api_json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
        })
    }

    /// As a webhook names whom an alert is assigned to: without the id.
    fn assignee_json(&self) -> Value {
        json!({
            "username": self.username,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
        })
    }
}

/// The user the API key acts as: the dedicated sync user iLert's setup asks for.
const SYNC_USER: User = User {
    id: ILertSimulator::SYNC_USER_ID,
    username: ILertSimulator::SYNC_USER_NAME,
    first_name: ILertSimulator::SYNC_USER_FIRST_NAME,
    last_name: ILertSimulator::SYNC_USER_LAST_NAME,
    email: ILertSimulator::SYNC_USER_EMAIL,
};

/// The human on call that every alert added by a test is routed to.
const RESPONDER: User = User {
    id: ILertSimulator::RESPONDER_ID,
    username: ILertSimulator::RESPONDER_USER_NAME,
    first_name: "Jane",
    last_name: "Doe",
    email: ILertSimulator::RESPONDER_EMAIL,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlertStatus {
    Pending,
    Accepted,
    Resolved,
}

impl AlertStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Resolved => "RESOLVED",
        }
    }
}

/// One responder of an alert, and whether (and when) they accepted it.
#[derive(Debug, Clone)]
struct Responder {
    user: User,
    accepted_at: Option<String>,
}

impl Responder {
    fn json(&self) -> Value {
        let mut responder = json!({
            "user": self.user.api_json(),
            "status": if self.accepted_at.is_some() { "ACCEPTED" } else { "PENDING" },
        });
        if let Some(at) = &self.accepted_at {
            responder["acceptedAt"] = Value::String(at.clone());
        }
        responder
    }
}

/// The order `GET /api/alerts` lists alerts in. iLert does not document one, so a client must
/// work with either, and the tests run both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// By `reportTime`, newest first (ties: the higher id first).
    #[default]
    NewestFirst,
    /// By `reportTime`, oldest first (ties: the lower id first).
    OldestFirst,
}

#[derive(Debug, Clone)]
struct Alert {
    id: u64,
    status: AlertStatus,
    /// `reportTime` in milliseconds since the epoch: what `from` and `until` filter on.
    report_ms: i64,
    source_id: u64,
    summary: String,
    details: String,
    alert_key: String,
    report_time: String,
    responders: Vec<Responder>,
    assigned_to: Option<User>,
    resolved_on: Option<String>,
}

impl Alert {
    fn source(&self) -> Value {
        let name = if self.source_id == ILertSimulator::ALERT_SOURCE_ID {
            ILertSimulator::ALERT_SOURCE_NAME.to_owned()
        } else {
            format!("Source {}", self.source_id)
        };
        json!({ "id": self.source_id, "name": name })
    }

    fn responders_json(&self) -> Value {
        Value::Array(self.responders.iter().map(Responder::json).collect())
    }

    /// The alert as `GET /api/alerts/{id}` answers it: `id` a number.
    fn api_json(&self) -> Value {
        let mut alert = json!({
            "id": self.id,
            "status": self.status.as_str(),
            "summary": self.summary,
            "details": self.details,
            "alertKey": self.alert_key,
            "alertSource": self.source(),
            "reportTime": self.report_time,
            "priority": "HIGH",
            "responders": self.responders_json(),
        });
        if let Some(user) = &self.assigned_to {
            alert["assignedTo"] = user.api_json();
        }
        if let Some(at) = &self.resolved_on {
            alert["resolvedOn"] = Value::String(at.clone());
        }
        alert
    }

    /// The webhook body iLert sends the alert action after `actor` acted on the alert through
    /// the API: `id` a string of digits, as in every webhook.
    fn echo_json(&self, event_type: &str, actor: &User, event_id: String) -> Value {
        let (seconds, nanos) = clock::now();
        let mut echo = json!({
            "id": self.id.to_string(),
            "summary": self.summary,
            "details": self.details,
            "reportTime": self.report_time,
            "status": self.status.as_str(),
            "eventType": event_type,
            "priority": "HIGH",
            "alertKey": self.alert_key,
            "alertSource": self.source(),
            "escalationPolicy": { "id": 2256025, "name": "Platform On-Call" },
            "assignedTo": actor.assignee_json(),
            "responders": self.responders_json(),
            "links": [],
            "images": [],
            "mergeState": "NONE",
            "timestamp": clock::iso_nanos(seconds, nanos),
            "eventId": event_id,
        });
        if let Some(at) = &self.resolved_on {
            echo["resolvedOn"] = Value::String(at.clone());
        }
        echo
    }
}

/// iLert's rate limit for one API key: at most `calls` admitted within any `window`-long span
/// (a sliding window, not one reset every minute).
#[derive(Debug)]
struct SlidingWindow {
    calls: u32,
    window: Duration,
    /// When each request admitted within the last `window` arrived, oldest first.
    admitted: VecDeque<Instant>,
    most_in_window: u32,
    refused: u64,
}

impl SlidingWindow {
    fn new(calls: u32, window: Duration) -> Self {
        Self {
            calls,
            window,
            admitted: VecDeque::new(),
            most_in_window: 0,
            refused: 0,
        }
    }

    /// Whether a request arriving now is within the limit. Only an admitted request counts
    /// toward the limit; a refused one is only counted as refused.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        while self
            .admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= self.calls as usize {
            self.refused += 1;
            return false;
        }
        self.admitted.push_back(now);
        self.most_in_window = self.most_in_window.max(self.admitted.len() as u32);
        true
    }
}

#[derive(Debug)]
struct ILertState {
    api_key: String,
    key_revoked: bool,
    alerts: BTreeMap<u64, Alert>,
    /// Webhook bodies iLert would have sent for actions taken through the API, oldest first.
    echoes: Vec<Value>,
    echoes_made: u64,
    requests: Vec<ILertRequest>,
    faults: VecDeque<(Option<Method>, ILertFault)>,
    order: ListOrder,
    /// List requests answered so far, and the alerts someone else resolves once a given
    /// number of them has been answered (a change between two pages).
    lists_answered: u64,
    resolved_between_pages: VecDeque<(u64, Vec<u64>)>,
    /// Parameters this API does not know (an older or other API behind `ilert_api_url`): it
    /// ignores them, as it ignores any unknown one.
    unknown_parameters: Vec<String>,
    /// Alert sources on which the key's user may not act (no responder rights): an accept or
    /// resolve of their alerts is a `403` that is not `KEY_ERROR`; and how many were refused.
    denied_sources: Vec<u64>,
    denied_actions: u64,
    latency: Duration,
    rate_limit: SlidingWindow,
    redundant_actions: u64,
}

/// An answer: its status and JSON body.
type Answer = (StatusCode, Value);

/// An error as iLert's REST API words it.
fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    (
        status,
        json!({ "status": status.as_u16(), "code": code, "message": message }),
    )
}

fn alert_not_found() -> Answer {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "alert not found")
}

fn too_many_requests() -> Answer {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many requests",
    )
}

/// The error answer an injected status stands for, worded as iLert words its own.
fn injected(status: u16) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return too_many_requests();
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = reason.to_uppercase().replace([' ', '-'], "_");
    error(status, &code, reason)
}

impl ILertState {
    /// Answers a request and records it; `None` cuts the connection.
    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Option<HttpResponse> {
        let answer = self.outcome(method, path, query, authorization);
        self.requests.push(ILertRequest {
            method: method.to_string(),
            path: path.to_owned(),
            query: query.unwrap_or_default().to_owned(),
            status: answer.as_ref().map_or(0, |(status, _)| status.as_u16()),
        });
        answer.map(|(status, body)| respond_json(status, &body))
    }

    /// The key first (the rate limit is per key), then the rate limit, then the fault the
    /// request meets, then the API itself.
    fn outcome(
        &mut self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Option<Answer> {
        let presented = authorization.and_then(|value| value.strip_prefix("Bearer "));
        if self.key_revoked || presented != Some(self.api_key.as_str()) {
            return Some(error(StatusCode::FORBIDDEN, "KEY_ERROR", "Invalid api key"));
        }
        if !self.rate_limit.admit() {
            return Some(too_many_requests());
        }
        let fault = self
            .faults
            .iter()
            .position(|(wanted, _)| wanted.as_ref().is_none_or(|m| m == method))
            .and_then(|index| self.faults.remove(index))
            .map(|(_, fault)| fault);
        match fault {
            Some(ILertFault::Status(status)) => Some(injected(status)),
            Some(ILertFault::CutBeforeApplying) => None,
            Some(ILertFault::CutAfterApplying) => {
                self.route(method, path, query);
                None
            }
            None => Some(self.route(method, path, query)),
        }
    }

    fn route(&mut self, method: &Method, path: &str, query: Option<&str>) -> Answer {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["", "api", "alerts"]) => {
                let answer = self.list(query.unwrap_or_default());
                self.lists_answered += 1;
                self.resolve_between_pages();
                answer
            }
            (&Method::GET, ["", "api", "alerts", "count"]) => self.count(query.unwrap_or_default()),
            (&Method::GET, ["", "api", "users", "current"]) => {
                (StatusCode::OK, SYNC_USER.api_json())
            }
            (&Method::GET, ["", "api", "alerts", id]) => match self.alert(id) {
                Some(alert) => (StatusCode::OK, alert.api_json()),
                None => alert_not_found(),
            },
            (&Method::PUT, ["", "api", "alerts", id, "accept"]) => self.accept(id),
            (&Method::PUT, ["", "api", "alerts", id, "resolve"]) => self.resolve(id),
            _ => error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("{method} {path} is not part of this simulator"),
            ),
        }
    }

    /// `GET /api/alerts` as iLert's OpenAPI describes it: the alerts in the `states` asked for
    /// (repeated; none: every alert), of the `sources` asked for, reported at or after `from`
    /// and before `until` (the description says only "based on reportTime": the stand-in
    /// takes the window half-open), in [`ListOrder`], a page of `max-results` (default 50,
    /// at most 100) from `start-index`. Any other parameter is ignored.
    fn list(&self, query: &str) -> Answer {
        let query = &self.known_only(query);
        let filter = match Filter::parse(query) {
            Ok(filter) => filter,
            Err(answer) => return answer,
        };
        let pairs = query_pairs(query);
        let number = |name: &str, default: usize| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map_or(Ok(default), |(_, value)| value.parse::<usize>())
        };
        let (Ok(start), Ok(max)) = (number("start-index", 0), number("max-results", 50)) else {
            return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "not a number");
        };
        if max > 100 {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "max-results must be at most 100",
            );
        }
        let mut listed: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|alert| filter.matches(alert))
            .collect();
        match self.order {
            ListOrder::NewestFirst => {
                listed.sort_by_key(|a| std::cmp::Reverse((a.report_ms, a.id)));
            }
            ListOrder::OldestFirst => {
                listed.sort_by_key(|a| (a.report_ms, a.id));
            }
        }
        let page: Vec<Value> = listed
            .into_iter()
            .skip(start)
            .take(max)
            .map(Alert::api_json)
            .collect();
        (StatusCode::OK, Value::Array(page))
    }

    /// `GET /api/alerts/count`: `{"count": n}` for the same filters as the list.
    fn count(&self, query: &str) -> Answer {
        match Filter::parse(&self.known_only(query)) {
            Ok(filter) => {
                let count = self.alerts.values().filter(|a| filter.matches(a)).count();
                (StatusCode::OK, json!({ "count": count }))
            }
            Err(answer) => answer,
        }
    }

    /// The query without the parameters this API does not know.
    fn known_only(&self, query: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                query_pairs(query)
                    .into_iter()
                    .filter(|(key, _)| !self.unknown_parameters.contains(key)),
            )
            .finish()
    }

    /// Someone else resolves the alerts due once this many lists have been answered.
    fn resolve_between_pages(&mut self) {
        while self
            .resolved_between_pages
            .front()
            .is_some_and(|(after, _)| *after <= self.lists_answered)
        {
            let Some((_, ids)) = self.resolved_between_pages.pop_front() else {
                break;
            };
            for id in ids {
                if let Some(alert) = self.alerts.get_mut(&id) {
                    let (seconds, nanos) = clock::now();
                    alert.status = AlertStatus::Resolved;
                    alert.resolved_on = Some(clock::iso_millis(seconds, nanos));
                }
            }
        }
    }

    /// The alert a path segment names: digits only, as iLert's ids are.
    fn alert(&self, id: &str) -> Option<&Alert> {
        let digits_only = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let id: u64 = digits_only.then(|| id.parse().ok()).flatten()?;
        self.alerts.get(&id)
    }

    fn alert_mut(&mut self, id: &str) -> Option<&mut Alert> {
        let id = self.alert(id)?.id;
        self.alerts.get_mut(&id)
    }

    /// The refusal of an action on an alert whose source the key's user may not act on.
    fn denied(&mut self, id: &str) -> Option<Answer> {
        let source = self.alert(id)?.source_id;
        if !self.denied_sources.contains(&source) {
            return None;
        }
        self.denied_actions += 1;
        Some(error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "the user has no responder rights on this alert's alert source",
        ))
    }

    /// `PUT /api/alerts/{id}/accept`: PENDING → ACCEPTED by the key's user.
    fn accept(&mut self, id: &str) -> Answer {
        if let Some(denied) = self.denied(id) {
            return denied;
        }
        let Some(alert) = self.alert_mut(id) else {
            return alert_not_found();
        };
        if alert.status != AlertStatus::Pending {
            self.redundant_actions += 1;
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "alert is not pending",
            );
        }
        let (seconds, nanos) = clock::now();
        let accepted_at = Some(clock::iso_millis(seconds, nanos));
        match alert.responders.iter_mut().find(|r| r.user == SYNC_USER) {
            Some(responder) => responder.accepted_at = accepted_at,
            None => alert.responders.push(Responder {
                user: SYNC_USER,
                accepted_at,
            }),
        }
        alert.status = AlertStatus::Accepted;
        alert.assigned_to = Some(SYNC_USER);
        let acted_on = alert.clone();
        self.echo(&acted_on, "alert-acknowledged");
        (StatusCode::OK, acted_on.api_json())
    }

    /// `PUT /api/alerts/{id}/resolve`: PENDING or ACCEPTED → RESOLVED.
    fn resolve(&mut self, id: &str) -> Answer {
        if let Some(denied) = self.denied(id) {
            return denied;
        }
        let Some(alert) = self.alert_mut(id) else {
            return alert_not_found();
        };
        if alert.status == AlertStatus::Resolved {
            self.redundant_actions += 1;
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "alert is already resolved",
            );
        }
        let (seconds, nanos) = clock::now();
        alert.status = AlertStatus::Resolved;
        alert.resolved_on = Some(clock::iso_millis(seconds, nanos));
        let acted_on = alert.clone();
        self.echo(&acted_on, "alert-resolved");
        (StatusCode::OK, acted_on.api_json())
    }

    /// Records the webhook iLert sends after the key's user acted on `alert` through the API.
    fn echo(&mut self, alert: &Alert, event_type: &str) {
        self.echoes_made += 1;
        // Shaped like iLert's event ids (a UUID); the last group counts, so no two repeat.
        let event_id = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            0x8000 | fastrand::u16(..0x4000),
            self.echoes_made,
        );
        self.echoes
            .push(alert.echo_json(event_type, &SYNC_USER, event_id));
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The filters the list and the count share: `states`, `sources`, `from`, `until`.
struct Filter {
    states: Vec<AlertStatus>,
    sources: Vec<u64>,
    from: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    /// A value the description's types refuse (a state not in its enum, a source that is not
    /// a number, a date that is not ISO-8601) is a 400.
    fn parse(query: &str) -> Result<Self, Answer> {
        let bad = |what: &str| error(StatusCode::BAD_REQUEST, "BAD_REQUEST", what);
        let mut filter = Self {
            states: Vec::new(),
            sources: Vec::new(),
            from: None,
            until: None,
        };
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "states" => filter.states.push(match value.as_str() {
                    "PENDING" => AlertStatus::Pending,
                    "ACCEPTED" => AlertStatus::Accepted,
                    "RESOLVED" => AlertStatus::Resolved,
                    _ => return Err(bad("states must be PENDING, ACCEPTED or RESOLVED")),
                }),
                "sources" => filter
                    .sources
                    .push(value.parse().map_err(|_| bad("sources must be numbers"))?),
                "from" | "until" => {
                    let at = clock::parse_iso_millis(&value)
                        .ok_or_else(|| bad("from and until must be ISO-8601 date-times"))?;
                    if key == "from" {
                        filter.from = Some(at);
                    } else {
                        filter.until = Some(at);
                    }
                }
                _ => {}
            }
        }
        Ok(filter)
    }

    fn matches(&self, alert: &Alert) -> bool {
        (self.states.is_empty() || self.states.contains(&alert.status))
            && (self.sources.is_empty() || self.sources.contains(&alert.source_id))
            && self.from.is_none_or(|from| alert.report_ms >= from)
            && self.until.is_none_or(|until| alert.report_ms < until)
    }
}

/// iLert's REST API for one user API key, reached over HTTP on loopback.
#[derive(Clone)]
pub struct ILertSimulator {
    address: SocketAddr,
    state: Arc<Mutex<ILertState>>,
    stats: Arc<ServerStats>,
}

impl ILertSimulator {
    /// The user the API key acts as (`GET /api/users/current`), and whom an accept or resolve
    /// through the API names in its echo.
    pub const SYNC_USER_ID: u64 = 900001;
    pub const SYNC_USER_NAME: &'static str = "servicenow-sync";
    pub const SYNC_USER_FIRST_NAME: &'static str = "ServiceNow";
    pub const SYNC_USER_LAST_NAME: &'static str = "Sync";
    pub const SYNC_USER_EMAIL: &'static str = "servicenow-sync@example.com";
    /// The human responder (Jane Doe) of every alert [`add_alert`](Self::add_alert) adds.
    pub const RESPONDER_ID: u64 = 104201;
    pub const RESPONDER_USER_NAME: &'static str = "jdoe";
    pub const RESPONDER_EMAIL: &'static str = "jane.doe@example.com";
    /// The alert source every alert comes from, as in the bundled events.
    pub const ALERT_SOURCE_ID: u64 = 2101194;
    pub const ALERT_SOURCE_NAME: &'static str = "Prometheus Production";

    /// Starts the API on a free loopback port, accepting only `api_key`, with iLert's rate
    /// limit of 120 calls a minute.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(ILertState {
            api_key: api_key.to_owned(),
            key_revoked: false,
            alerts: BTreeMap::new(),
            echoes: Vec::new(),
            echoes_made: 0,
            requests: Vec::new(),
            faults: VecDeque::new(),
            order: ListOrder::default(),
            lists_answered: 0,
            resolved_between_pages: VecDeque::new(),
            unknown_parameters: Vec::new(),
            denied_sources: Vec::new(),
            denied_actions: 0,
            latency: Duration::ZERO,
            rate_limit: SlidingWindow::new(120, Duration::from_secs(60)),
            redundant_actions: 0,
        }));
        let shared = Arc::clone(&state);
        let stats = Arc::new(ServerStats::default());
        let address = serve(
            ANY_LOOPBACK_PORT.into(),
            Arc::clone(&stats),
            None,
            move |method, path, query, headers, _body| {
                let state = Arc::clone(&shared);
                async move {
                    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
                    let latency = lock().latency;
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    let authorization = headers
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|value| value.to_str().ok());
                    lock().answer(&method, &path, query.as_deref(), authorization)
                }
            },
        )
        .await?;
        Ok(Self {
            address,
            state,
            stats,
        })
    }

    /// The API's base URL, as `https://api.ilert.com` would be.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Connections opened to the API, and the time it spent answering.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    fn lock(&self) -> MutexGuard<'_, ILertState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) alert `id` in `status` (`PENDING`, `ACCEPTED` or `RESOLVED`),
    /// reported now, "Host {id} is DOWN", with Jane Doe as its one responder. An accepted or
    /// resolved alert went through the lifecycle: Jane accepted it and it is assigned to her.
    ///
    /// # Panics
    /// On any other status: a test mistake.
    pub fn add_alert(&self, id: u64, status: &str) {
        let (seconds, nanos) = clock::now();
        let now_ms = seconds * 1000 + i64::from(nanos / 1_000_000);
        self.add_alert_reported(id, status, now_ms, Self::ALERT_SOURCE_ID);
    }

    /// Adds (or replaces) alert `id` as [`add_alert`](Self::add_alert) does, reported at
    /// `report_ms` (milliseconds since the epoch) from alert source `source_id`.
    ///
    /// # Panics
    /// On a status that is not an iLert status: a test mistake.
    pub fn add_alert_reported(&self, id: u64, status: &str, report_ms: i64, source_id: u64) {
        let status = match status {
            "PENDING" => AlertStatus::Pending,
            "ACCEPTED" => AlertStatus::Accepted,
            "RESOLVED" => AlertStatus::Resolved,
            other => panic!("{other:?} is not an iLert alert status"),
        };
        let now = clock::iso_millis(
            report_ms.div_euclid(1000),
            (report_ms.rem_euclid(1000) as u32) * 1_000_000,
        );
        let worked_on = status != AlertStatus::Pending;
        let alert = Alert {
            id,
            status,
            report_ms,
            source_id,
            summary: format!("Host {id} is DOWN"),
            details: format!("Host {id} stopped answering pings from the monitoring probe."),
            alert_key: format!("host-{id}-down"),
            report_time: now.clone(),
            responders: vec![Responder {
                user: RESPONDER,
                accepted_at: worked_on.then(|| now.clone()),
            }],
            assigned_to: worked_on.then_some(RESPONDER),
            resolved_on: (status == AlertStatus::Resolved).then_some(now),
        };
        self.lock().alerts.insert(id, alert);
    }

    /// The alert's status (`PENDING`, `ACCEPTED`, `RESOLVED`), if there is such an alert.
    pub fn alert_status(&self, id: u64) -> Option<String> {
        self.lock()
            .alerts
            .get(&id)
            .map(|alert| alert.status.as_str().to_owned())
    }

    /// The alert as `GET /api/alerts/{id}` would answer it.
    pub fn alert(&self, id: u64) -> Option<Value> {
        self.lock().alerts.get(&id).map(Alert::api_json)
    }

    /// Accepts or resolves that were no transition (the alert had already moved past them),
    /// answered 400: a client that reads before it acts never sends one.
    pub fn redundant_actions(&self) -> u64 {
        self.lock().redundant_actions
    }

    /// The webhook bodies iLert would have sent the alert action for every accept and resolve
    /// made through the API, oldest first.
    pub fn echoes(&self) -> Vec<Value> {
        self.lock().echoes.clone()
    }

    /// The echoes so far, oldest first, forgetting them: each is delivered once.
    pub fn take_echoes(&self) -> Vec<Value> {
        std::mem::take(&mut self.lock().echoes)
    }

    /// The rate limit for the key: at most `calls` within any `window`. The count starts
    /// afresh, [`most_calls_in_window`](Self::most_calls_in_window) included.
    pub fn set_rate_limit(&self, calls: u32, window: Duration) {
        self.lock().rate_limit = SlidingWindow::new(calls, window);
    }

    /// How many requests the rate limit refused (429).
    pub fn rate_limited(&self) -> u64 {
        self.lock().rate_limit.refused
    }

    /// The most requests admitted within any window-long span: a client that stayed within
    /// the limit never reaches more than the limit's calls, and never meets a 429.
    pub fn most_calls_in_window(&self) -> u32 {
        self.lock().rate_limit.most_in_window
    }

    /// Every request takes `latency` longer, before it is applied and answered.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Queues a fault for the next admitted request with this method (`None`: any method).
    ///
    /// # Panics
    /// When `method` is not an HTTP method or the fault's status not an HTTP status.
    pub fn inject(&self, method: Option<&str>, fault: ILertFault) {
        let method = method.map(|m| Method::from_bytes(m.as_bytes()).expect("an HTTP method"));
        if let ILertFault::Status(status) = fault {
            assert!(
                StatusCode::from_u16(status).is_ok(),
                "{status} is not an HTTP status"
            );
        }
        self.lock().faults.push_back((method, fault));
    }

    /// Injected faults (and changes between pages) that no request has met yet: a test whose
    /// fault was never met proved nothing about it.
    pub fn faults_pending(&self) -> usize {
        let state = self.lock();
        state.faults.len() + state.resolved_between_pages.len()
    }

    /// The order `GET /api/alerts` lists in (iLert documents none).
    pub fn set_list_order(&self, order: ListOrder) {
        self.lock().order = order;
    }

    /// Someone else (the on-call engineer in iLert's app) resolves `ids` once `lists` more
    /// list requests have been answered: the set changes between two pages of a reader.
    pub fn resolve_after_lists(&self, lists: u64, ids: Vec<u64>) {
        let mut state = self.lock();
        let after = state.lists_answered + lists;
        state.resolved_between_pages.push_back((after, ids));
    }

    /// From now on the API does not know `parameter` and ignores it, as an API of another
    /// version would: a `states` it ignores lists every alert.
    pub fn forget_parameter(&self, parameter: &str) {
        self.lock().unknown_parameters.push(parameter.to_owned());
    }

    /// The key's user may no longer act on alerts of `source_id`: accepting or resolving one
    /// is a `403` (not `KEY_ERROR`); reading it still works.
    pub fn deny_actions_on_source(&self, source_id: u64) {
        self.lock().denied_sources.push(source_id);
    }

    /// Accepts and resolves refused for a denied source.
    pub fn denied_actions(&self) -> u64 {
        self.lock().denied_actions
    }

    /// Deletes alert `id`, as an admin may: every request for it is now a `404`.
    pub fn delete_alert(&self, id: u64) {
        self.lock().alerts.remove(&id);
    }

    /// Drops every fault still queued.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.resolved_between_pages.clear();
    }

    /// Every request received, with what it was answered, oldest first.
    pub fn requests(&self) -> Vec<ILertRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Revokes the API key, as an admin would: every request now meets `403 KEY_ERROR`.
    pub fn revoke_key(&self) {
        self.lock().key_revoked = true;
    }

    /// Replaces the API key (a rotation): only `api_key` works from now on, even after
    /// [`revoke_key`](Self::revoke_key).
    pub fn set_key(&self, api_key: &str) {
        let mut state = self.lock();
        state.api_key = api_key.to_owned();
        state.key_revoked = false;
    }
}
