//! What one invocation did, told once: a summary log line (JSON in Lambda) and CloudWatch
//! metrics in Embedded Metric Format on stdout, which CloudWatch turns into metrics with no
//! extra infrastructure. Neither ever carries a secret, a token, a header or a body.

use crate::flow::back_sync::PassReport;
use crate::flow::budget::Spending;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Starts the function's logs: JSON lines on stdout when Lambda asks for JSON
/// (`AWS_LAMBDA_LOG_FORMAT`), at `LOG_LEVEL` (else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else
/// INFO). The function filters its own logs rather than leave it to Lambda, which would
/// count the metrics lines (they carry no level) as INFO and drop them under a higher level.
pub fn init_logs() {
    let level = ["LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .map_or(tracing::Level::INFO, |name| level_named(&name));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .without_time();
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// For the operator's commands (`send`): warnings and errors on standard error, so that a
/// problem with the configuration is seen, and standard output keeps the answer.
pub fn init_command_logs() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
}

/// Lambda's level names (`FATAL` is `tracing`'s ERROR); an unknown name is INFO.
fn level_named(name: &str) -> tracing::Level {
    match name.trim().to_ascii_uppercase().as_str() {
        "TRACE" => tracing::Level::TRACE,
        "DEBUG" => tracing::Level::DEBUG,
        "WARN" | "WARNING" => tracing::Level::WARN,
        "ERROR" | "FATAL" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    }
}

/// The CloudWatch namespace of the function's metrics.
pub const METRICS_NAMESPACE: &str = "ilert-servicenow";

/// How an invocation ended, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Answered 2xx with this action (`created`, `updated`, `unchanged`, `ignored`).
    Handled {
        action: &'static str,
        incident: Option<String>,
    },
    /// Answered 4xx (`refused`) or 5xx (`failed`), with the failure's kind and cause.
    Failed {
        status: u16,
        kind: &'static str,
        cause: String,
    },
    /// A queued event handed back to the queue without being tried, and why.
    HeldBack { cause: &'static str },
}

/// Filled in as an invocation goes; [`Summary::finish`] tells it once.
#[derive(Debug)]
pub struct Summary {
    started: Instant,
    pub alert_id: Option<String>,
    pub event_type: Option<String>,
    /// For a queued event: how long it waited in the queue.
    pub queue_wait: Option<Duration>,
    /// For a queued event that failed: `retry` (handed back to the queue) or `dead_letter`.
    pub disposition: Option<&'static str>,
    /// ServiceNow's push, not iLert's webhook: its metrics are the way back's.
    pub push: bool,
    /// For ServiceNow's push: what the way back did (`accepted`, `resolved`, `unchanged`).
    pub back_sync: Option<&'static str>,
    /// The ServiceNow connection used, when the secret holds several.
    pub instance: Option<String>,
    /// For a webhook call: `direct`, `queued` (queued delivery) or `queued:
    /// servicenow_unavailable` (direct delivery's safety net).
    pub path: Option<&'static str>,
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            alert_id: None,
            event_type: None,
            queue_wait: None,
            disposition: None,
            push: false,
            back_sync: None,
            instance: None,
            path: None,
        }
    }

    /// Logs the invocation's one summary line at info level and writes its metrics.
    pub fn finish(&self, ending: &Ending, spending: Spending, metrics: &Metrics) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let servicenow_requests = spending.servicenow_requests;
        let servicenow_ms = spending.servicenow_time.as_secs_f64() * 1000.0;
        let queue_wait_ms = self.queue_wait.map(|wait| wait.as_secs_f64() * 1000.0);
        let alert_id = self.alert_id.as_deref();
        let event_type = self.event_type.as_deref();
        // One call, so every outcome logs the same fields; `None` fields are left out.
        let (outcome, status, action, incident, failure, cause) = match ending {
            Ending::Handled { action, incident } => (
                "handled",
                // Accepted onto the queue, not yet applied.
                if *action == "queued" { 202 } else { 200 },
                Some(*action),
                incident.as_deref(),
                None,
                None,
            ),
            Ending::HeldBack { cause } => ("held_back", 0, None, None, None, Some(*cause)),
            Ending::Failed {
                status,
                kind,
                cause,
            } => (
                if *status >= 500 { "failed" } else { "refused" },
                *status,
                None,
                None,
                Some(*kind),
                Some(cause.as_str()),
            ),
        };
        tracing::info!(
            outcome,
            status = (status > 0).then_some(status),
            alert_id,
            event_type,
            instance = self.instance.as_deref(),
            path = self.path,
            action,
            incident,
            failure,
            cause,
            servicenow_requests,
            servicenow_ms,
            retries = spending.retries,
            queue_wait_ms,
            disposition = self.disposition,
            trigger = self.push.then_some("push"),
            back_sync = self.back_sync,
            ilert_requests = (spending.ilert_requests > 0).then_some(spending.ilert_requests),
            duration_ms,
            "invocation"
        );
        // Nothing was tried: its line says so; its counts come when it is tried.
        if matches!(ending, Ending::HeldBack { .. }) {
            return;
        }
        if self.push {
            let (counts, failure) = match ending {
                Ending::Handled { action, .. } => (
                    BackSyncCounts {
                        accepted: u32::from(*action == "accepted"),
                        resolved: u32::from(*action == "resolved"),
                        unchanged: u32::from(*action == "unchanged"),
                        ..BackSyncCounts::default()
                    },
                    None,
                ),
                Ending::Failed { kind, .. } => (
                    BackSyncCounts {
                        failed: 1,
                        ..BackSyncCounts::default()
                    },
                    Some(*kind),
                ),
                Ending::HeldBack { .. } => return,
            };
            metrics.write(&back_sync_document(&counts, spending, duration_ms, failure));
            return;
        }
        metrics.write(&metrics_document(
            ending,
            servicenow_requests,
            servicenow_ms,
            duration_ms,
            queue_wait_ms,
            self.disposition == Some("dead_letter"),
            self.path == Some("queued: servicenow_unavailable"),
        ));
    }
}

/// The metric declarations of every document; only the values change, so the line is
/// written from these constants rather than built as a JSON tree on the hot path.
const EMF_DIRECTIVES: &str = concat!(
    r#"{"Namespace":"ilert-servicenow","Dimensions":[[]],"Metrics":["#,
    r#"{"Name":"IncidentsCreated","Unit":"Count"},{"Name":"IncidentsUpdated","Unit":"Count"},"#,
    r#"{"Name":"IncidentsUnchanged","Unit":"Count"},{"Name":"EventsIgnored","Unit":"Count"},"#,
    r#"{"Name":"EventsSent","Unit":"Count"},"#,
    r#"{"Name":"EventsQueued","Unit":"Count"},{"Name":"EventsQueuedWhileUnavailable","Unit":"Count"},"#,
    r#"{"Name":"EventsDeadLettered","Unit":"Count"},"#,
    r#"{"Name":"ServiceNowRequests","Unit":"Count"},"#,
    r#"{"Name":"ServiceNowLatency","Unit":"Milliseconds"},{"Name":"Duration","Unit":"Milliseconds"}]}"#
);
const EMF_QUEUE_WAIT_DIRECTIVE: &str = concat!(
    r#",{"Namespace":"ilert-servicenow","Dimensions":[[]],"#,
    r#""Metrics":[{"Name":"QueueWait","Unit":"Milliseconds"}]}"#
);
const EMF_FAILURE_DIRECTIVE: &str = concat!(
    r#",{"Namespace":"ilert-servicenow","Dimensions":[["FailureKind"]],"#,
    r#""Metrics":[{"Name":"Failures","Unit":"Count"}]}"#
);

/// Every metric the function declares in its Embedded Metric Format documents, in the
/// `ilert-servicenow` namespace: what the template's dashboard may show.
pub fn metric_names() -> Vec<&'static str> {
    [
        EMF_DIRECTIVES,
        EMF_QUEUE_WAIT_DIRECTIVE,
        EMF_FAILURE_DIRECTIVE,
        EMF_BACK_SYNC_DIRECTIVES,
    ]
    .iter()
    .flat_map(|directives| directives.split(r#"{"Name":""#).skip(1))
    .filter_map(|rest| rest.split('"').next())
    .collect()
}

/// One Embedded Metric Format document: counts of incidents by action, failures by kind
/// (a `FailureKind` dimension), and ServiceNow's latency.
fn metrics_document(
    ending: &Ending,
    requests: u32,
    servicenow_ms: f64,
    duration_ms: f64,
    queue_wait_ms: Option<f64>,
    dead_lettered: bool,
    queued_while_unavailable: bool,
) -> String {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (action, failure) = match ending {
        Ending::Handled { action, .. } => (*action, None),
        Ending::Failed { kind, .. } => ("", Some(*kind)),
        Ending::HeldBack { .. } => ("", None),
    };
    let flag = |wanted: &str| u8::from(action == wanted);
    let mut line = format!(
        r#"{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":[{EMF_DIRECTIVES}{}{}]}},"IncidentsCreated":{},"IncidentsUpdated":{},"IncidentsUnchanged":{},"EventsIgnored":{},"EventsSent":{},"EventsQueued":{},"EventsQueuedWhileUnavailable":{},"EventsDeadLettered":{},"ServiceNowRequests":{requests},"ServiceNowLatency":{servicenow_ms:.3},"Duration":{duration_ms:.3}"#,
        if queue_wait_ms.is_some() {
            EMF_QUEUE_WAIT_DIRECTIVE
        } else {
            ""
        },
        if failure.is_some() {
            EMF_FAILURE_DIRECTIVE
        } else {
            ""
        },
        flag("created"),
        flag("updated"),
        flag("unchanged"),
        flag("ignored"),
        flag("sent"),
        flag("queued"),
        u8::from(queued_while_unavailable),
        u8::from(dead_lettered),
    );
    if let Some(wait) = queue_wait_ms {
        line.push_str(&format!(r#","QueueWait":{wait:.3}"#));
    }
    if let Some(kind) = failure {
        // Failure kinds are fixed snake_case names: nothing to escape.
        line.push_str(&format!(r#","FailureKind":"{kind}","Failures":1"#));
    }
    line.push('}');
    line
}

/// Logs a scheduled back-sync pass's one summary line (its counts, what it spent, what
/// stopped it) and writes its metrics.
pub fn pass_finished(
    report: &PassReport,
    instance: Option<&str>,
    spending: Spending,
    elapsed: Duration,
    metrics: &Metrics,
) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let failure = report.failure.as_ref();
    // A pass with nothing to do because the way back is off is not a failure.
    let off = matches!(failure, Some(crate::flow::back_sync::BackSyncError::Off));
    let outcome = match failure {
        Some(_) if off => "off",
        Some(_) => "failed",
        None if report.failed > 0 => "partial",
        None => "handled",
    };
    let kind = failure.filter(|_| !off).map(|f| f.kind());
    let cause = failure.filter(|_| !off).map(ToString::to_string);
    tracing::info!(
        trigger = "schedule",
        instance,
        outcome,
        open_alerts = report.open_alerts,
        behind = report.behind,
        accepted = report.accepted,
        resolved = report.resolved,
        unchanged = report.unchanged,
        failed = report.failed,
        refused = report.refused,
        deferred = report.deferred,
        failure = kind,
        cause = cause.as_deref(),
        ilert_requests = spending.ilert_requests,
        servicenow_requests = spending.servicenow_requests,
        duration_ms,
        "back_sync_pass"
    );
    // What only a person can fix (a refused key, a refusing instance) is also an error line,
    // for alarms on the log; what passes by itself (iLert or ServiceNow away) is not.
    if let Some(failure) = failure.filter(|f| !off && !f.passes_by_itself()) {
        tracing::error!(failure = failure.kind(), cause = %failure, "the back-sync cannot do its work");
    }
    let counts = BackSyncCounts {
        accepted: report.accepted,
        resolved: report.resolved,
        unchanged: report.unchanged,
        failed: report.failed,
        refused: report.refused,
        deferred: report.deferred,
    };
    metrics.write(&back_sync_document(&counts, spending, duration_ms, kind));
}

/// What the way back did, for its metrics.
#[derive(Debug, Clone, Copy, Default)]
struct BackSyncCounts {
    accepted: u32,
    resolved: u32,
    unchanged: u32,
    failed: u32,
    refused: u32,
    deferred: u32,
}

const EMF_BACK_SYNC_DIRECTIVES: &str = concat!(
    r#"{"Namespace":"ilert-servicenow","Dimensions":[[]],"Metrics":["#,
    r#"{"Name":"BackSyncAccepted","Unit":"Count"},{"Name":"BackSyncResolved","Unit":"Count"},"#,
    r#"{"Name":"BackSyncUnchanged","Unit":"Count"},{"Name":"BackSyncFailed","Unit":"Count"},"#,
    r#"{"Name":"BackSyncDeferred","Unit":"Count"},{"Name":"BackSyncRefused","Unit":"Count"},"#,
    r#"{"Name":"ILertRequests","Unit":"Count"},"#,
    r#"{"Name":"ServiceNowRequests","Unit":"Count"},{"Name":"Duration","Unit":"Milliseconds"}]}"#
);

/// The way back's Embedded Metric Format document: a push's or a pass's counts, and its
/// failure's kind as a `FailureKind` dimension.
fn back_sync_document(
    counts: &BackSyncCounts,
    spending: Spending,
    duration_ms: f64,
    failure: Option<&str>,
) -> String {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut line = format!(
        r#"{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":[{EMF_BACK_SYNC_DIRECTIVES}{}]}},"BackSyncAccepted":{},"BackSyncResolved":{},"BackSyncUnchanged":{},"BackSyncFailed":{},"BackSyncDeferred":{},"BackSyncRefused":{},"ILertRequests":{},"ServiceNowRequests":{},"Duration":{duration_ms:.3}"#,
        if failure.is_some() {
            EMF_FAILURE_DIRECTIVE
        } else {
            ""
        },
        counts.accepted,
        counts.resolved,
        counts.unchanged,
        counts.failed,
        counts.deferred,
        counts.refused,
        spending.ilert_requests,
        spending.servicenow_requests,
    );
    if let Some(kind) = failure {
        line.push_str(&format!(r#","FailureKind":"{kind}","Failures":1"#));
    }
    line.push('}');
    line
}

/// Where metrics go: stdout in Lambda, nowhere in the demo, a buffer in tests.
#[derive(Debug, Clone, Default)]
pub enum Metrics {
    #[default]
    Off,
    Stdout,
    Captured(Arc<Mutex<Vec<u8>>>),
}

impl Metrics {
    fn write(&self, document: &str) {
        let line = format!("{document}\n");
        match self {
            Self::Off => {}
            // One write of one whole line, so CloudWatch reads it as one document.
            Self::Stdout => {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Self::Captured(buffer) => buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend_from_slice(line.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn documents(metrics: &Metrics) -> Vec<Value> {
        let Metrics::Captured(buffer) = metrics else {
            unreachable!()
        };
        String::from_utf8(buffer.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn a_handled_event_counts_its_action_and_servicenow_latency() {
        let metrics = Metrics::Captured(Arc::default());
        let ending = Ending::Handled {
            action: "created",
            incident: Some("INC0010001".into()),
        };
        let spending = Spending {
            servicenow_requests: 3,
            servicenow_time: Duration::from_millis(42),
            ..Spending::default()
        };
        Summary::new().finish(&ending, spending, &metrics);
        let [document] = documents(&metrics).try_into().unwrap();
        assert_eq!(document["IncidentsCreated"], 1);
        assert_eq!(document["IncidentsUpdated"], 0);
        assert_eq!(document["ServiceNowRequests"], 3);
        assert_eq!(document["ServiceNowLatency"], 42.0);
        let directives = &document["_aws"]["CloudWatchMetrics"];
        assert_eq!(directives[0]["Namespace"], METRICS_NAMESPACE);
        assert!(document.get("FailureKind").is_none());
    }

    #[test]
    fn a_failure_is_counted_by_kind() {
        let metrics = Metrics::Captured(Arc::default());
        let ending = Ending::Failed {
            status: 503,
            kind: "unavailable",
            cause: "ServiceNow answered 429".into(),
        };
        let spending = Spending {
            servicenow_requests: 4,
            ..Spending::default()
        };
        Summary::new().finish(&ending, spending, &metrics);
        let [document] = documents(&metrics).try_into().unwrap();
        assert_eq!(document["Failures"], 1);
        assert_eq!(document["FailureKind"], "unavailable");
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
            json!([["FailureKind"]])
        );
        assert!(document.get("cause").is_none(), "metrics carry no text");
    }
}
