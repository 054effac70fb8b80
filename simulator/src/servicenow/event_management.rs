//! ServiceNow Event Management, as the plugin `com.glideapp.itom.snac` [D6 L17] adds it to an
//! instance: the bulk event endpoint `POST /api/global/em/jsonv2` [D1 L21–33], the `em_event`
//! and `em_alert` tables, and the job that turns stored events into alerts a moment later.
//!
//! The traps a real instance sets are kept:
//! * a `200` means "stored", not "processed": an event without a valid severity is stored and
//!   only later ends in `state` Error [D2 L129–132][P1];
//! * values are stored as strings, and a JSON object (or array) becomes `[object Object]`
//!   [D2 L156][P1];
//! * `source`, `node`, `type`, `resource`, `message_key`, `description` and `time_of_event`
//!   longer than their column are cut short without a word [D2][P1];
//! * only severity 0 (Clear) closes an alert; 5 (OK) still opens one [D1 L172][D2 L99–104];
//! * a closed alert keeps its last non-clear severity [D5 L139];
//! * an event inside the active interval reopens the closed alert, after it a new alert is
//!   made, so one `message_key` can have several alerts [D9 L25–30][D4 L200];
//! * blank event fields do not wipe alert values [D5 L27];
//! * without the plugin the endpoint and the tables do not exist, and reading alerts needs a
//!   role beyond the one that sends events [D6 L79–91].
//!
//! Not modelled: event rules, flapping [D10], alert management rules and the incidents they
//! open [D11], idle alerts closing after 7 days [D6 L190], `additional_info` keys filling alert
//! fields [D15], `node`/`event_class` being needed for an alert [D2 L75], and Table API writes
//! to `em_event`.
//!
//! Source keys ([D1], [P1], …) are those of `/work/shared/reference/servicenow-event-management.md`.

use super::instance::{failure, matching, no_record, page, unreadable_payload};
use super::{ServiceNowSimulator, ServiceNowState};
use crate::clock;
use crate::server::{respond_json, HttpResponse};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bulk event endpoint, the one ServiceNow recommends [D1 L25–33].
const EVENT_API_PATH: &str = "/api/global/em/jsonv2";
const EVENT_TABLE: &str = "em_event";
const ALERT_TABLE: &str = "em_alert";

/// The `em_event` columns a sender fills, with the length (in characters) the instance cuts a
/// longer value to without an error: `None` where the reference knows no limit. [D2 L35–156]
/// [D2 L91] (`ci_type`); [P1] (cut short, still 200).
const EVENT_INPUT_COLUMNS: &[(&str, Option<usize>)] = &[
    ("source", Some(100)),
    ("event_class", None),
    ("node", Some(100)),
    ("type", Some(100)),
    ("resource", Some(100)),
    ("metric_name", None),
    ("message_key", Some(1024)),
    ("severity", None),
    ("description", Some(4000)),
    ("additional_info", None),
    ("time_of_event", Some(40)),
    ("resolution_state", None),
    ("ci_type", Some(100)),
    ("ci_identifier", None),
];

/// Every `em_event` column the Table API shows: what the sender filled and what the instance
/// keeps for itself (`state`, `processing_notes`, `alert`, [D2 L140, L164][D3 L158]).
const EVENT_COLUMNS: &[&str] = &[
    "sys_id",
    "source",
    "event_class",
    "node",
    "type",
    "resource",
    "metric_name",
    "message_key",
    "severity",
    "description",
    "additional_info",
    "time_of_event",
    "resolution_state",
    "ci_type",
    "ci_identifier",
    "state",
    "processing_notes",
    "alert",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
];

/// The `em_alert` columns the simulator keeps. `state`, `severity`, `acknowledged` and
/// `message_key` are documented [D5]; `incident` is INFERRED from third-party scripts [P7]
/// and stays empty here (no alert management rules); `initial_remote_time` and
/// `last_remote_time` (the first and last event's `time_of_event`) are INFERRED names.
const ALERT_COLUMNS: &[&str] = &[
    "sys_id",
    "number",
    "state",
    "severity",
    "message_key",
    "source",
    "event_class",
    "node",
    "type",
    "resource",
    "metric_name",
    "description",
    "additional_info",
    "initial_remote_time",
    "last_remote_time",
    "acknowledged",
    "incident",
    "sys_created_on",
    "sys_updated_on",
];

/// Alert fields an event sets, each from the event field named second. A blank event field
/// leaves the alert's value as it is [D5 L27].
const ALERT_FIELDS_FROM_EVENT: &[(&str, &str)] = &[
    ("severity", "severity"),
    ("source", "source"),
    ("event_class", "event_class"),
    ("node", "node"),
    ("type", "type"),
    ("resource", "resource"),
    ("metric_name", "metric_name"),
    ("description", "description"),
    ("additional_info", "additional_info"),
    ("last_remote_time", "time_of_event"),
];

/// 0 Clear, 1 Critical, 2 Major, 3 Minor, 4 Warning, 5 OK [D1 L172].
const SEVERITIES: &[&str] = &["0", "1", "2", "3", "4", "5"];
const CLEAR: &str = "0";

/// Event states [D3 L158].
const READY: &str = "Ready";
const PROCESSED: &str = "Processed";
const ERROR: &str = "Error";

/// Alert states [D5 L153] (Flapping is not modelled).
const OPEN: &str = "Open";
const REOPEN: &str = "Reopen";
const CLOSED: &str = "Closed";

/// How an instance stores what a JSON object (or array) sent for a string field turns into
/// [P1]. The reference saw it for an object in `additional_info`; the same for arrays and for
/// every other field is INFERRED (the value goes through the same string conversion).
const OBJECT_AS_STORED: &str = "[object Object]";

/// Event Management on one instance: whether the plugin is there, the integration user's
/// roles, the two tables, and the settings of the processing job.
#[derive(Debug)]
pub(super) struct EventManagement {
    /// A plain instance has no Event Management: it is a separate subscription [D6 L17][D12].
    installed: bool,
    /// `evt_mgmt_integration`: create access to `em_event`, read access to events
    /// [D6 L91][D3 L21].
    has_integration_role: bool,
    /// `evt_mgmt_user`: read access to alerts (and events) [D6 L79].
    has_user_role: bool,
    events: Vec<StoredEvent>,
    alerts: Vec<StoredAlert>,
    next_alert_number: u32,
    /// How long a stored event waits for the processing job; a real instance runs it every
    /// 5 s [D6 L282].
    processing_delay: Duration,
    /// `evt_mgmt.active_interval`: how long after closing an alert an event reopens it
    /// rather than making a new one; one hour by default [D9 L29–30][D4 L200].
    active_interval: Duration,
    /// Set by an insert so that, once the request is applied, a processing job is started:
    /// see [`schedule_processing`].
    wake_processor: bool,
}

impl Default for EventManagement {
    fn default() -> Self {
        Self {
            installed: false,
            has_integration_role: true,
            has_user_role: true,
            events: Vec::new(),
            alerts: Vec::new(),
            next_alert_number: 10001,
            processing_delay: Duration::from_millis(50),
            active_interval: Duration::from_secs(3600),
            wake_processor: false,
        }
    }
}

#[derive(Debug)]
struct StoredEvent {
    fields: BTreeMap<String, String>,
    /// When the processing job takes the event up; `None` when that is too far off to say
    /// (a test that set an enormous delay to process events itself).
    due: Option<Instant>,
}

#[derive(Debug)]
struct StoredAlert {
    fields: BTreeMap<String, String>,
    /// Every severity an event gave the alert, Clear included, oldest first: for tests.
    severity_history: Vec<String>,
    /// When a Clear event closed it, for the active interval.
    closed_at: Option<Instant>,
}

impl StoredAlert {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    fn is_open(&self) -> bool {
        matches!(self.field("state"), OPEN | REOPEN)
    }

    /// Takes an event's values (a blank one keeps the alert's [D5 L27]) and its severity.
    fn apply(&mut self, event: &BTreeMap<String, String>) {
        for (alert_field, event_field) in ALERT_FIELDS_FROM_EVENT {
            if let Some(value) = event.get(*event_field).filter(|v| !v.is_empty()) {
                self.fields.insert((*alert_field).to_owned(), value.clone());
            }
        }
        self.severity_history
            .push(event.get("severity").cloned().unwrap_or_default());
        self.fields
            .insert("sys_updated_on".into(), clock::glide_now());
    }

    /// A Clear event: the alert closes and keeps its last non-clear severity [D5 L139][D8].
    fn close(&mut self) {
        self.fields.insert("state".into(), CLOSED.into());
        self.fields
            .insert("sys_updated_on".into(), clock::glide_now());
        self.severity_history.push(CLEAR.into());
        self.closed_at = Some(Instant::now());
    }
}

/// Which Ready events a processing pass takes.
#[derive(Clone, Copy)]
enum Pass {
    /// Those whose delay has run, as the background job does.
    Due(Instant),
    /// All of them, as a test asking for it does.
    All,
}

impl EventManagement {
    /// Stores the records of one `jsonv2` request, each as a Ready event.
    fn store(&mut self, records: Vec<Map<String, Value>>, user_name: &str) {
        let due = Instant::now().checked_add(self.processing_delay);
        for record in records {
            let mut fields: BTreeMap<String, String> = EVENT_INPUT_COLUMNS
                .iter()
                .filter_map(|(column, limit)| {
                    let text = stored_text(record.get(*column)?);
                    Some(((*column).to_owned(), cut_to(text, *limit)))
                })
                .collect();
            // Anything else the sender put in the record is ignored, as for a column the table
            // does not have; `state` is the instance's own, so a sent one is ignored too.
            let now = clock::glide_now();
            fields.insert("sys_id".into(), new_sys_id());
            fields.insert("state".into(), READY.into());
            fields.insert("processing_notes".into(), String::new());
            fields.insert("alert".into(), String::new());
            fields.insert("sys_created_by".into(), user_name.to_owned());
            fields.insert("sys_created_on".into(), now.clone());
            fields.insert("sys_updated_on".into(), now);
            self.events.push(StoredEvent { fields, due });
        }
        self.wake_processor = due.is_some();
    }

    /// One run of the processing job: Ready events in arrival order. The job works through
    /// them like a queue: an event not yet due holds back those stored after it.
    fn process(&mut self, pass: Pass) {
        for index in 0..self.events.len() {
            let event = &self.events[index];
            if event.fields.get("state").map(String::as_str) != Some(READY) {
                continue;
            }
            if let Pass::Due(now) = pass {
                let not_yet_due = event.due.is_none_or(|due| due > now);
                if not_yet_due {
                    break;
                }
            }
            self.process_event(index);
        }
    }

    /// When the next Ready event is due, if one is waiting and has a due time.
    fn next_due(&self) -> Option<Instant> {
        self.events
            .iter()
            .find(|event| event.fields.get("state").map(String::as_str) == Some(READY))?
            .due
    }

    /// Turns one event into an alert change, as the instance does [D7 L29–39].
    fn process_event(&mut self, index: usize) {
        let event = self.events[index].fields.clone();
        let severity = event.get("severity").map_or("", String::as_str);
        if !SEVERITIES.contains(&severity) {
            // Still stored, never an alert [D2 L129–132]. The note's wording is the
            // simulator's own: the reference does not quote the instance's.
            self.finish_event(index, ERROR, "Missing or invalid severity", "");
            return;
        }
        let key = message_key_of(&event);
        let newest = self
            .alerts
            .iter()
            .rposition(|alert| alert.field("message_key") == key);
        let clear = severity == CLEAR;
        let active_interval = self.active_interval;
        let alert = match newest {
            Some(i) if self.alerts[i].is_open() => {
                if clear {
                    self.alerts[i].close();
                } else {
                    self.alerts[i].apply(&event);
                }
                Some(i)
            }
            Some(i)
                if !clear
                    && self.alerts[i]
                        .closed_at
                        .is_some_and(|closed| closed.elapsed() < active_interval) =>
            {
                let alert = &mut self.alerts[i];
                alert.fields.insert("state".into(), REOPEN.into());
                alert.closed_at = None;
                alert.apply(&event);
                Some(i)
            }
            // A Clear with nothing open to close changes nothing: it makes no alert.
            _ if clear => None,
            _ => Some(self.create_alert(&event, &key)),
        };
        let number = alert.map_or(String::new(), |i| self.alerts[i].field("number").to_owned());
        self.finish_event(index, PROCESSED, "", &number);
    }

    fn finish_event(&mut self, index: usize, state: &str, notes: &str, alert_number: &str) {
        let fields = &mut self.events[index].fields;
        fields.insert("state".into(), state.into());
        fields.insert("processing_notes".into(), notes.into());
        // A reference to the alert on a real instance (its stored value is then the alert's
        // sys_id, INFERRED); the simulator keeps the alert's number, which tests can read.
        fields.insert("alert".into(), alert_number.into());
        fields.insert("sys_updated_on".into(), clock::glide_now());
    }

    /// A new Open alert for `key`, from the event; its position.
    fn create_alert(&mut self, event: &BTreeMap<String, String>, key: &str) -> usize {
        let number = format!("Alert{:07}", self.next_alert_number);
        self.next_alert_number += 1;
        let now = clock::glide_now();
        let mut fields: BTreeMap<String, String> = ALERT_COLUMNS
            .iter()
            .map(|c| ((*c).to_owned(), String::new()))
            .collect();
        for (name, value) in [
            ("sys_id", new_sys_id()),
            ("number", number),
            ("state", OPEN.to_owned()),
            ("message_key", key.to_owned()),
            (
                "initial_remote_time",
                event.get("time_of_event").cloned().unwrap_or_default(),
            ),
            ("acknowledged", "false".to_owned()),
            ("sys_created_on", now.clone()),
            ("sys_updated_on", now),
        ] {
            fields.insert(name.to_owned(), value);
        }
        let mut alert = StoredAlert {
            fields,
            severity_history: Vec::new(),
            closed_at: None,
        };
        alert.apply(event);
        self.alerts.push(alert);
        self.alerts.len() - 1
    }
}

/// The key an event is matched to an alert by: its `message_key`, or when that is empty
/// `source+node+type+resource+metric_name` run together [D1 L164][D2 L83]. The event's own
/// `message_key` is left as sent (whether the instance fills it in is UNKNOWN).
fn message_key_of(event: &BTreeMap<String, String>) -> String {
    let field = |name: &str| event.get(name).map_or("", String::as_str);
    match field("message_key") {
        "" => ["source", "node", "type", "resource", "metric_name"]
            .iter()
            .map(|name| field(name))
            .collect(),
        key => key.to_owned(),
    }
}

/// A JSON value as the instance stores it in a string column: text as is, numbers and
/// booleans as their JSON text, `null` as empty, an object or array as `[object Object]`.
fn stored_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Object(_) | Value::Array(_) => OBJECT_AS_STORED.to_owned(),
        other => other.to_string(),
    }
}

/// `text` cut to `limit` characters. The limits count characters, as the column lengths of
/// the docs do; whether a real instance counts UTF-16 units instead is UNKNOWN.
fn cut_to(text: String, limit: Option<usize>) -> String {
    match limit {
        Some(limit) if text.chars().count() > limit => text.chars().take(limit).collect(),
        _ => text,
    }
}

fn new_sys_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The JSON error body of ServiceNow's REST framework: `detail` may be `null`.
fn framework_error(status: StatusCode, message: &str, detail: Option<&str>) -> HttpResponse {
    respond_json(
        status,
        &json!({ "error": { "message": message, "detail": detail }, "status": "failure" }),
    )
}

impl ServiceNowState {
    /// Answers an authenticated request when it is Event Management's: the `jsonv2` endpoint,
    /// or the Table API on `em_event` or `em_alert`. `None` for anything else.
    pub(super) fn event_management_request(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Option<HttpResponse> {
        let path = path.trim_end_matches('/');
        if path == EVENT_API_PATH {
            return Some(self.receive_events(method, body));
        }
        let rest = path.strip_prefix("/api/now/table/")?;
        let (table, sys_id) = match rest.split_once('/') {
            Some((table, sys_id)) => (table, Some(sys_id)),
            None => (rest, None),
        };
        if table != EVENT_TABLE && table != ALERT_TABLE {
            return None;
        }
        Some(self.read_event_table(method, path, table, sys_id, query))
    }

    /// `POST /api/global/em/jsonv2` with `{"records":[…]}`.
    fn receive_events(&mut self, method: &Method, body: &[u8]) -> HttpResponse {
        let em = &mut self.event_management;
        if !em.installed {
            // No API answers this URI without the plugin: 400 "request URI does not match the
            // APIs" [D14 L24]. The body is UNKNOWN; this is the REST framework's usual one for
            // a URI no API serves (some third-party mocks answer 404 with the same message).
            return framework_error(
                StatusCode::BAD_REQUEST,
                "Requested URI does not represent any resource",
                None,
            );
        }
        if method != Method::POST {
            // "The HTTP action is not allowed for the requested REST API" [D14]; the body
            // is the simulator's choice.
            return failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not Supported",
                &format!("{method} is not supported by {EVENT_API_PATH}"),
            );
        }
        if !em.has_integration_role {
            // The role is checked before the body is read; the detail is the simulator's own.
            return failure(
                StatusCode::FORBIDDEN,
                "User Not Authorized",
                "Creating events requires the evt_mgmt_integration role",
            );
        }
        let Ok(payload) = serde_json::from_slice::<Value>(body) else {
            return unreadable_payload();
        };
        let Some(Value::Array(records)) = payload.get("records") else {
            return failure(
                StatusCode::BAD_REQUEST,
                "Exception while reading request",
                "The payload has no \"records\" array.",
            );
        };
        // A record that is not an object refuses the whole request and stores nothing: the
        // reference only says malformed bodies get non-2xx JSON errors [P1].
        let Some(records) = records
            .iter()
            .map(|record| record.as_object().cloned())
            .collect::<Option<Vec<_>>>()
        else {
            return failure(
                StatusCode::BAD_REQUEST,
                "Exception while reading request",
                "Every element of \"records\" must be a JSON object.",
            );
        };
        let inserted = records.len();
        let user_name = self.user_login.0.clone();
        self.event_management.store(records, &user_name);
        // What peers expect; ServiceNow documents no body [E8][E1]. A record that will fail
        // processing is counted too: the answer says "stored", not "processed" [D2][P1].
        respond_json(
            StatusCode::OK,
            &json!({ "result": { "Default Bulk Endpoint": format!("{inserted} events were inserted") } }),
        )
    }

    /// `GET /api/now/table/em_event` and `…/em_alert`, a list or one record by sys_id, with
    /// `sysparm_query`, `sysparm_fields`, `sysparm_limit` and `sysparm_offset` as for
    /// incidents. Values are shown as stored (`sysparm_display_value` is not modelled).
    fn read_event_table(
        &self,
        method: &Method,
        path: &str,
        table: &str,
        sys_id: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> HttpResponse {
        let em = &self.event_management;
        if !em.installed {
            // What an instance answers for any table it does not have, whoever asks.
            return framework_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid table {table}"),
                None,
            );
        }
        if method != Method::GET {
            return failure(
                StatusCode::BAD_REQUEST,
                "Invalid resource",
                &format!("{method} {path} is not part of this simulator"),
            );
        }
        // Alerts need evt_mgmt_user [D6 L79]; events can be read with either role
        // [D3 L21][D6 L79]. The 403 body is the simulator's choice (UNKNOWN).
        let (readable, role) = if table == ALERT_TABLE {
            (em.has_user_role, "evt_mgmt_user")
        } else {
            (
                em.has_user_role || em.has_integration_role,
                "evt_mgmt_integration or evt_mgmt_user",
            )
        };
        if !readable {
            return failure(
                StatusCode::FORBIDDEN,
                "User Not Authorized",
                &format!("Reading {table} requires the {role} role"),
            );
        }
        let (records, columns): (Vec<&BTreeMap<String, String>>, &[&str]) = if table == ALERT_TABLE
        {
            (em.alerts.iter().map(|a| &a.fields).collect(), ALERT_COLUMNS)
        } else {
            (em.events.iter().map(|e| &e.fields).collect(), EVENT_COLUMNS)
        };
        let wanted: Vec<&str> = match query.get("sysparm_fields") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|name| columns.contains(name))
                .collect(),
            None => columns.to_vec(),
        };
        let unreadable = &self.quirks.unreadable;
        let project = |record: &BTreeMap<String, String>| {
            let shown: Map<String, Value> = wanted
                .iter()
                .map(|name| {
                    let hidden = unreadable.iter().any(|u| u == name);
                    let text = match record.get(*name) {
                        Some(value) if !hidden => value.clone(),
                        _ => String::new(),
                    };
                    ((*name).to_owned(), Value::String(text))
                })
                .collect();
            Value::Object(shown)
        };
        if let Some(sys_id) = sys_id {
            return match records
                .iter()
                .find(|r| r.get("sys_id").map(String::as_str) == Some(sys_id))
            {
                Some(record) => respond_json(StatusCode::OK, &json!({ "result": project(record) })),
                None => no_record(),
            };
        }
        let encoded = query.get("sysparm_query").map_or("", String::as_str);
        let placed: Vec<BTreeMap<String, String>> = records
            .iter()
            .enumerate()
            .map(|(place, record)| {
                let mut record = (*record).clone();
                record.insert(ROW_PLACE.to_owned(), place.to_string());
                record
            })
            .collect();
        let found = matching(
            &placed.iter().collect::<Vec<_>>(),
            columns,
            &self.quirks.invisible_to_queries(),
            &with_creation_tie_break(encoded),
        );
        let (offset, limit) = page(query);
        let result: Vec<Value> = found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|i| project(records[i]))
            .collect();
        respond_json(StatusCode::OK, &json!({ "result": result }))
    }
}

/// The field, on no real record, that carries a row's place in its table (oldest first) for
/// [`with_creation_tie_break`].
const ROW_PLACE: &str = "__row_place";

/// `encoded` with a last, least significant ordering by the rows' place in their table, in
/// the direction of its first ordering: rows equal in every field it orders by (two alerts
/// made in the same second, as `sys_created_on` has whole seconds) then come oldest first, or
/// newest first under `ORDERBYDESCsys_created_on`. A real instance leaves that order to its
/// database; the simulator makes the newest alert of a key come first there, which is what a
/// reader asking for it wants and what it gets on a real instance whenever the alerts are
/// seconds apart.
fn with_creation_tie_break(encoded: &str) -> String {
    let descending = encoded
        .split('^')
        .find(|term| term.starts_with("ORDERBY"))
        .is_some_and(|term| term.starts_with("ORDERBYDESC"));
    let direction = if descending { "ORDERBYDESC" } else { "ORDERBY" };
    format!("{encoded}^{direction}{ROW_PLACE}")
}

/// Starts the processing job when a request just stored events: it sleeps until the oldest
/// Ready event is due, processes what is due, and goes on while Ready events wait with a due
/// time. Needs the Tokio runtime the instance serves on (a request always runs on it).
pub(super) fn schedule_processing(state: &Arc<Mutex<ServiceNowState>>) {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    if !std::mem::take(&mut lock().event_management.wake_processor) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let state = Arc::clone(state);
    runtime.spawn(async move {
        let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let next = {
                let mut state = lock();
                state.event_management.process(Pass::Due(Instant::now()));
                state.event_management.next_due()
            };
            let Some(due) = next else { break };
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
    });
}

impl ServiceNowSimulator {
    /// Installs Event Management (plugin `com.glideapp.itom.snac` [D6 L17]): the `jsonv2`
    /// endpoint and the `em_event` and `em_alert` tables exist from now on.
    pub fn enable_event_management(&self) {
        self.lock().event_management.installed = true;
    }

    /// Takes the `evt_mgmt_integration` role from the integration user: `jsonv2` answers 403
    /// [D6 L91].
    pub fn deny_event_role(&self) {
        self.lock().event_management.has_integration_role = false;
    }

    /// Takes the `evt_mgmt_user` role from the integration user: reading `em_alert` answers
    /// 403 [D6 L79].
    pub fn deny_alert_read(&self) {
        self.lock().event_management.has_user_role = false;
    }

    /// How long a stored event waits before the background job processes it (50 ms unless
    /// set; a real instance takes up to 5 s [D6 L282]). Applies to events stored from now on.
    /// A test that wants to decide itself when events are processed sets a long delay and
    /// calls [`Self::process_events`].
    pub fn set_event_processing_delay(&self, delay: Duration) {
        self.lock().event_management.processing_delay = delay;
    }

    /// `evt_mgmt.active_interval`: within it an event reopens the alert a Clear closed, after
    /// it a new alert is made (one hour unless set) [D9 L29–30][D4 L200].
    pub fn set_alert_active_interval(&self, interval: Duration) {
        self.lock().event_management.active_interval = interval;
    }

    /// Processes every Ready event now, in arrival order, whether its delay has run or not.
    pub fn process_events(&self) {
        self.lock().event_management.process(Pass::All);
    }

    /// Every `em_event` record with all its fields, in arrival order.
    pub fn em_events(&self) -> Vec<Map<String, Value>> {
        self.lock()
            .event_management
            .events
            .iter()
            .map(|event| all_columns(&event.fields, EVENT_COLUMNS))
            .collect()
    }

    /// Every `em_alert` record with all its fields, oldest first, each with the severities
    /// events gave it (Clear included, oldest first) under `"severity_history"`.
    pub fn em_alerts(&self) -> Vec<Map<String, Value>> {
        self.lock()
            .event_management
            .alerts
            .iter()
            .map(|alert| {
                let mut record = all_columns(&alert.fields, ALERT_COLUMNS);
                record.insert("severity_history".into(), json!(alert.severity_history));
                record
            })
            .collect()
    }
}

fn all_columns(fields: &BTreeMap<String, String>, columns: &[&str]) -> Map<String, Value> {
    columns
        .iter()
        .map(|name| {
            let text = fields.get(*name).cloned().unwrap_or_default();
            ((*name).to_owned(), Value::String(text))
        })
        .collect()
}
