//! The way back, ServiceNow → iLert: the service desk's In Progress, Resolved, Closed and
//! Canceled reach the original alert. Two doors lead here, both stateless:
//!
//! - **the scheduled pass** (EventBridge, every minute), with nothing installed in
//!   ServiceNow: it reads the alerts still open in iLert, asks ServiceNow for their incidents
//!   in a state ahead of them, and moves each of those alerts forward;
//! - **the push** (`POST /servicenow`, from the shipped business rule): one incident, read
//!   from ServiceNow, within seconds. It may be lost (ServiceNow does not retry it): the next
//!   pass does the same work.
//!
//! Nothing is remembered, and nothing needs to be: the function only ever writes a state its
//! alert already has, so an incident ahead of its open alert was moved by someone else,
//! whoever wrote to it since (the last updater is no cursor); once the alert has caught up it
//! is no longer open, or no longer behind, and no pass looks at it again. Closed and Canceled
//! incidents, which ServiceNow keeps read-only, need no write either. An interruption anywhere
//! loses nothing: the next pass reads the alerts again before it acts.
//!
//! Loop-safe by construction: the function's own writes never put an incident ahead of its
//! alert, and iLert's echo of an accept or resolve made here is recognised by the key's user
//! and writes nothing (`domain::decision`).

use crate::adapters::ilert::{ILertApi, ILertError, OPEN_ALERTS_PAGE};
use crate::adapters::secrets::{Connection, ILertAccount, SecretError};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError, SysId};
use crate::domain::alert::{AlertEvent, AlertId, AlertStatus, EventKind, Person};
use crate::domain::alert_scan::Scan;
use crate::domain::back_sync::{
    back_action, opened_by_function, wanted_in_ilert, BackAction, BackSynced,
};
use crate::domain::incident::{CorrelationId, Incident};
use crate::domain::people::Echo;
use crate::flow::budget::{epoch_ms, Backoff, Budget};
use crate::flow::outcome::SyncError;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// iLert allows 120 calls a minute per user API key, counted in a window nobody documents.
/// A pass runs once a minute and makes at most this many, so any two consecutive passes stay
/// within the limit wherever its window falls, with room left for pushes and `check`.
pub const ILERT_CALLS_PER_PASS: u32 = 50;
/// A push needs at most four: read, act, and once more each if a concurrent pass acted first.
const ILERT_CALLS_PER_PUSH: u32 = 4;
/// Pages of open alerts (100 each) a pass lists at most: half its calls, so that listing never
/// crowds out the accepts and resolves it lists for.
pub const LIST_CALLS_PER_PASS: u32 = ILERT_CALLS_PER_PASS / 2;
/// Of those, the pages every pass spends on the newest open alerts: a desk change to a recent
/// alert's incident reaches iLert in the next pass, however many older alerts are open. The
/// rest go on with a sweep through the older ones where the last pass stopped.
pub const NEWEST_PAGES_PER_PASS: u32 = 5;
/// Alerts worked on at once: iLert's latency, not the function's CPU, is what a pass waits
/// for.
const ALERTS_AT_ONCE: usize = 4;
/// iLert's advice for a 429, which comes without `Retry-After`: back off 10 to 30 seconds.
const THROTTLED_WAIT_SECONDS: (u64, u64) = (10, 30);
/// How long the key's user is trusted, and how long a failure to learn it is remembered (a
/// webhook must not wait on iLert every time).
const KEY_USER_TTL: Duration = Duration::from_secs(3600);
const KEY_USER_FAILURE_MEMORY: Duration = Duration::from_secs(10);
/// The most a webhook waits to learn the key's user, to recognise an echo.
const KEY_USER_WAIT: Duration = Duration::from_millis(1500);
/// How long an alert iLert refused to move in a way no retry fixes (`403` without
/// `KEY_ERROR`: the sync user may not act on its source; `404`: the alert was deleted) is left
/// alone: it would otherwise cost a pass its calls every minute. Long enough to matter, short
/// enough that a permission granted meanwhile is soon used.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Not worth starting an alert with less time than this left: it would be cut off half-way.
const SHORTEST_USEFUL_ALERT: Duration = Duration::from_secs(1);

/// Within how many passes every alert of `open` open ones is reached: in every pass when a
/// pass lists them all; otherwise within two sweeps (the one under way may have passed it).
/// A new execution environment begins a new sweep.
pub fn passes_to_reach(open: u64) -> u64 {
    let page = OPEN_ALERTS_PAGE as u64;
    let newest = u64::from(NEWEST_PAGES_PER_PASS) * page;
    let swept_per_pass = u64::from(LIST_CALLS_PER_PASS - NEWEST_PAGES_PER_PASS) * page;
    let sweep = open.saturating_sub(newest).div_ceil(swept_per_pass);
    if sweep <= 1 {
        1
    } else {
        2 * sweep
    }
}

/// Why the way back could not do its work, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackSyncError {
    /// The secret has no `ilert_api_key`: the way back is off.
    #[error("the back-sync is off: the secret has no `ilert_api_key`")]
    Off,
    /// The deployment's configuration cannot be used (see `config`).
    #[error("the deployment's configuration: {0}")]
    Misconfigured(String),
    /// iLert is unreachable, failing or throttling: the next pass tries again.
    #[error("{cause}")]
    ILertUnavailable {
        cause: String,
        retry_after: Duration,
    },
    /// The API key is wrong or revoked: nothing passes until it is replaced.
    #[error("{0}; make a new API key for the iLert user the back-sync acts as and put it in the secret (`ilert-servicenow secret --ilert-api-key`)")]
    ILertKeyRefused(String),
    /// iLert refused in a way another try will not change.
    #[error("{0}")]
    ILertRefused(String),
    /// iLert has no such alert, or the key's user may not see its alert source.
    #[error("{0}")]
    ILertNotFound(String),
    /// ServiceNow could not be read.
    #[error("{0}")]
    ServiceNow(SyncError),
}

impl BackSyncError {
    /// A short name for the kind of failure, stable for log queries and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Off | Self::Misconfigured(_) => "misconfigured",
            Self::ILertUnavailable { .. } => "ilert_unavailable",
            Self::ILertKeyRefused(_) => "ilert_key_refused",
            Self::ILertRefused(_) => "ilert_refused",
            Self::ILertNotFound(_) => "ilert_not_found",
            Self::ServiceNow(SyncError::Unavailable { .. }) => "unavailable",
            Self::ServiceNow(SyncError::Refused(_)) => "servicenow_refused",
            Self::ServiceNow(SyncError::Secret(SecretError::Misconfigured(_))) => "misconfigured",
            Self::ServiceNow(SyncError::Secret(SecretError::Unavailable(_))) => "unavailable",
        }
    }

    /// Whether it passes by itself (iLert or ServiceNow away), or needs someone to act.
    pub fn passes_by_itself(&self) -> bool {
        matches!(
            self,
            Self::ILertUnavailable { .. }
                | Self::ServiceNow(
                    SyncError::Unavailable { .. } | SyncError::Secret(SecretError::Unavailable(_))
                )
        )
    }
}

impl From<ServiceNowError> for BackSyncError {
    fn from(error: ServiceNowError) -> Self {
        Self::ServiceNow(error.into())
    }
}

impl From<ILertError> for BackSyncError {
    fn from(error: ILertError) -> Self {
        match error {
            ILertError::Transient {
                message,
                retry_after,
            } => Self::ILertUnavailable {
                cause: message,
                retry_after: retry_after.unwrap_or(Duration::from_secs(60)),
            },
            ILertError::Throttled(message) => Self::ILertUnavailable {
                cause: message,
                retry_after: Duration::from_secs(THROTTLED_WAIT_SECONDS.1),
            },
            ILertError::KeyRefused(message) => Self::ILertKeyRefused(message),
            ILertError::NotFound(message) => Self::ILertNotFound(message),
            ILertError::Refused(message) => Self::ILertRefused(message),
        }
    }
}

/// What the push did for its incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackSyncOutcome {
    pub synced: BackSynced,
    pub alert_id: Option<String>,
    pub incident: Incident,
    /// Why nothing was done, when nothing was.
    pub reason: Option<&'static str>,
}

/// What one scheduled pass did, for its summary line and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Alerts open in iLert when the pass read them.
    pub open_alerts: u32,
    /// Of those, the alerts whose incident the desk has moved ahead of them.
    pub behind: u32,
    pub accepted: u32,
    pub resolved: u32,
    /// Found already there when acted on (someone else was quicker).
    pub unchanged: u32,
    /// Alerts that failed; the next pass tries them again.
    pub failed: u32,
    /// Alerts iLert refused to move in a way no retry fixes, in this pass or in the last
    /// [`REFUSAL_MEMORY`]: left alone until then.
    pub refused: u32,
    /// Alerts left for the next pass: this pass's share of iLert's rate limit or its time
    /// was spent, or iLert throttled.
    pub deferred: u32,
    /// What stopped the pass as a whole, if anything did.
    pub failure: Option<BackSyncError>,
}

impl PassReport {
    /// Several connections' passes as one: counts summed; the first failure that is not the
    /// way back being off, else off only if it is off for every connection.
    pub fn combined(reports: Vec<PassReport>) -> PassReport {
        let off = |report: &PassReport| matches!(report.failure, Some(BackSyncError::Off));
        let all_off = !reports.is_empty() && reports.iter().all(off);
        let mut total = PassReport::default();
        for report in reports {
            total.open_alerts += report.open_alerts;
            total.behind += report.behind;
            total.accepted += report.accepted;
            total.resolved += report.resolved;
            total.unchanged += report.unchanged;
            total.failed += report.failed;
            total.refused += report.refused;
            total.deferred += report.deferred;
            if total.failure.is_none() && !off(&report) {
                total.failure = report.failure;
            }
        }
        if all_off {
            total.failure = Some(BackSyncError::Off);
        }
        total
    }
}

/// iLert calls a pass or push may still make: its own share, within what the key has left
/// this minute in this execution environment.
struct Allowance<'a> {
    left: AtomicU32,
    key: &'a KeyMinute,
    window: Duration,
}

impl<'a> Allowance<'a> {
    fn new(calls: u32, key: &'a KeyMinute, window: Duration) -> Self {
        Self {
            left: AtomicU32::new(calls),
            key,
            window,
        }
    }

    fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
            && self.key.take(self.window)
    }
}

/// iLert calls one key may make in any minute from one execution environment, passes and
/// pushes together: iLert allows 120, and the rest is left for `check` and for pushes served
/// by other environments. A mass change in ServiceNow then never gets the key throttled.
pub const KEY_CALLS_PER_MINUTE: usize = 100;

/// The iLert calls one key made in the last minute, shared by the passes and pushes of an
/// execution environment.
#[derive(Default)]
struct KeyMinute(Mutex<std::collections::VecDeque<Instant>>);

impl KeyMinute {
    /// Whether one more call fits in the last `window` (a minute, but in tests that scale
    /// iLert's time).
    fn take(&self, window: Duration) -> bool {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while calls.front().is_some_and(|at| at.elapsed() >= window) {
            calls.pop_front();
        }
        if calls.len() >= KEY_CALLS_PER_MINUTE {
            return false;
        }
        calls.push_back(Instant::now());
        true
    }
}

/// What a pass's listing has read so far.
struct Listing<'a> {
    open: &'a mut HashMap<String, (AlertId, AlertStatus)>,
    calls_left: u32,
    /// Alerts listed that are not open: the API ignored the filter.
    not_open: u32,
    /// Whether a page was left unread because the key's calls were spent.
    spent: bool,
}

/// An alert behind its incident, and the incident that asks for it.
struct Behind {
    alert: AlertId,
    action: BackAction,
    incident: Incident,
}

/// Who each API key acts as (by the key's fingerprint: each connection may have its own).
#[derive(Default)]
struct KeyUser {
    known: std::collections::HashMap<String, (Instant, Person)>,
    failed: std::collections::HashMap<String, Instant>,
}

pub struct BackSync<T> {
    table: Arc<T>,
    ilert: ILertApi,
    key_user: Mutex<KeyUser>,
    /// Where each key's sweep through its older open alerts stands, by the key's fingerprint:
    /// kept for as long as the execution environment lives (a new one begins a new sweep).
    sweeps: Mutex<HashMap<String, Scan>>,
    /// Alerts iLert refused to move in a way no retry fixes, by the key's fingerprint and the
    /// alert, and when: left alone for [`REFUSAL_MEMORY`].
    refused: Mutex<HashMap<(String, String), Instant>>,
    /// Each key's calls in the last minute, by its fingerprint, and the minute's length in ms.
    minutes: Mutex<HashMap<String, Arc<KeyMinute>>>,
    minute_ms: std::sync::atomic::AtomicU64,
}

impl<T: IncidentTable> BackSync<T> {
    pub fn new(table: Arc<T>, ilert: ILertApi) -> Self {
        Self {
            table,
            ilert,
            key_user: Mutex::default(),
            sweeps: Mutex::default(),
            refused: Mutex::default(),
            minutes: Mutex::default(),
            minute_ms: std::sync::atomic::AtomicU64::new(60_000),
        }
    }

    /// The span iLert's per-key limit is counted over: a minute, shorter in tests that scale
    /// iLert's time down.
    pub fn set_key_minute(&self, minute: Duration) {
        self.minute_ms
            .store(minute.as_millis() as u64, Ordering::Relaxed);
    }

    fn minute(&self) -> Duration {
        Duration::from_millis(self.minute_ms.load(Ordering::Relaxed))
    }

    /// One scheduled pass for the connections that share one iLert API key (one, unless the
    /// secret shares a key): the key's open alerts listed once → each connection's incidents
    /// ahead of them → one call each, as far as the key's calls for this pass and each
    /// connection's time allow. `group` pairs each connection with its own time budget; the
    /// listing is counted in the first one's. One report per connection, in `group`'s order.
    pub async fn pass(&self, group: &[(&Connection, &Budget)]) -> Vec<PassReport> {
        let failed = |failure: BackSyncError| {
            group
                .iter()
                .map(|_| PassReport {
                    failure: Some(failure.clone()),
                    ..PassReport::default()
                })
                .collect()
        };
        let Some(((first, list_budget), _)) = group.split_first() else {
            return Vec::new();
        };
        let Some(ilert) = &first.ilert else {
            return failed(BackSyncError::Off);
        };
        let minute = self.key_minute(ilert);
        let allowance = Allowance::new(ILERT_CALLS_PER_PASS, &minute, self.minute());
        let open = match self.open_alerts(ilert, list_budget, &allowance).await {
            Ok(open) => open,
            Err(error) => return failed(error),
        };
        let passes = group.iter().map(|(connection, budget)| {
            self.work_off(connection, ilert, &open, budget, &allowance)
        });
        futures_util::future::join_all(passes).await
    }

    /// One connection's share of a pass: its incidents ahead of the open alerts, and the calls
    /// that bring those alerts forward.
    async fn work_off(
        &self,
        connection: &Connection,
        ilert: &ILertAccount,
        open: &HashMap<String, (AlertId, AlertStatus)>,
        budget: &Budget,
        allowance: &Allowance<'_>,
    ) -> PassReport {
        let mut report = PassReport {
            open_alerts: open.len() as u32,
            ..PassReport::default()
        };
        let behind = match self.behind(connection, open, budget).await {
            Ok(behind) => behind,
            Err(error) => {
                report.failure = Some(error);
                return report;
            }
        };
        report.behind = behind.len() as u32;
        let key = key_fingerprint(ilert);
        let (refused_before, behind): (Vec<Behind>, Vec<Behind>) = behind
            .into_iter()
            .partition(|behind| self.refused_lately(&key, &behind.alert));
        report.refused = refused_before.len() as u32;
        let stop = AtomicBool::new(false);
        let results: Vec<Result<Option<BackSynced>, BackSyncError>> =
            futures_util::stream::iter(behind)
                .map(|behind| {
                    let stop = &stop;
                    async move {
                        if stop.load(Ordering::SeqCst) || budget.remaining() < SHORTEST_USEFUL_ALERT
                        {
                            return Ok(None);
                        }
                        let result = self.bring(ilert, &behind, budget, allowance).await;
                        // A refused key or an unavailable iLert stops the pass: every other
                        // call would meet the same.
                        if matches!(
                            result,
                            Err(BackSyncError::ILertKeyRefused(_)
                                | BackSyncError::ILertUnavailable { .. })
                        ) {
                            stop.store(true, Ordering::SeqCst);
                        }
                        result
                    }
                })
                .buffer_unordered(ALERTS_AT_ONCE)
                .collect()
                .await;
        for result in results {
            match result {
                Ok(Some(BackSynced::Accepted)) => report.accepted += 1,
                Ok(Some(BackSynced::Resolved)) => report.resolved += 1,
                Ok(Some(BackSynced::Unchanged)) => report.unchanged += 1,
                Ok(None) => report.deferred += 1,
                Err(BackSyncError::ILertRefused(_) | BackSyncError::ILertNotFound(_)) => {
                    report.refused += 1;
                }
                Err(error) => {
                    report.failed += 1;
                    // The key's refusal, or iLert's absence, is the pass's news, said once.
                    if matches!(
                        error,
                        BackSyncError::ILertKeyRefused(_) | BackSyncError::ILertUnavailable { .. }
                    ) && report.failure.is_none()
                    {
                        report.failure = Some(error);
                    }
                }
            }
        }
        report
    }

    /// The key's calls in the last minute.
    fn key_minute(&self, ilert: &ILertAccount) -> Arc<KeyMinute> {
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(minutes.entry(key_fingerprint(ilert)).or_default())
    }

    /// Whether iLert refused to move `alert` for this key within [`REFUSAL_MEMORY`].
    fn refused_lately(&self, key: &str, alert: &AlertId) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.retain(|_, at| at.elapsed() < REFUSAL_MEMORY);
        refused.contains_key(&(key.to_owned(), alert.to_string()))
    }

    /// Logs the alert's failure; one no retry fixes is remembered, and the alert left alone
    /// for [`REFUSAL_MEMORY`] (the log line says so: `left_alone_s`).
    fn failed(&self, ilert: &ILertAccount, behind: &Behind, error: BackSyncError) -> BackSyncError {
        let refused = matches!(
            error,
            BackSyncError::ILertRefused(_) | BackSyncError::ILertNotFound(_)
        );
        if refused {
            self.refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    (key_fingerprint(ilert), behind.alert.to_string()),
                    Instant::now(),
                );
        }
        tracing::warn!(
            left_alone_s = refused.then_some(REFUSAL_MEMORY.as_secs()),
            alert_id = %behind.alert,
            incident = %behind.incident.number,
            failure = error.kind(),
            cause = %error,
            "back_sync"
        );
        error
    }

    /// One iLert call, retried within the budget when a retry may help: full-jitter backoff
    /// after a failure, 10 to 30 seconds after a 429 (iLert's advice; it sends no
    /// `Retry-After`). `Ok(None)`: the allowance is spent, nothing was sent.
    async fn call_ilert<R, F, Fut>(
        &self,
        budget: &Budget,
        allowance: &Allowance<'_>,
        call: F,
    ) -> Result<Option<R>, BackSyncError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R, ILertError>>,
    {
        let mut backoff = Backoff::new();
        loop {
            if !allowance.take() {
                return Ok(None);
            }
            let (cause, wait) = match budget.ilert(call()).await {
                Ok(answer) => return Ok(Some(answer)),
                Err(ILertError::Transient {
                    message,
                    retry_after,
                }) => (message, backoff.next_wait(retry_after)),
                Err(ILertError::Throttled(message)) => {
                    let (least, most) = THROTTLED_WAIT_SECONDS;
                    (message, Duration::from_secs(fastrand::u64(least..=most)))
                }
                Err(other) => return Err(other.into()),
            };
            budget.count_retry();
            if !budget.allows_wait(wait) {
                return Err(BackSyncError::ILertUnavailable {
                    cause: format!("{cause}; left for the next pass"),
                    retry_after: wait.max(Duration::from_secs(5)),
                });
            }
            tracing::warn!(%cause, wait_ms = wait.as_millis() as u64, "retrying iLert");
            tokio::time::sleep(wait).await;
        }
    }
}

/// ServiceNow sets `sys_created_by` on every record: one that shows it empty was read by a user
/// a field ACL keeps from it, and then no incident can be told to be the function's own, so
/// the way back would silently act on none. Said, as the refusal it is.
fn creator_unreadable(number: &str) -> BackSyncError {
    BackSyncError::ServiceNow(SyncError::Refused(format!(
        "ServiceNow shows incident {number} without sys_created_by: the integration user may \
         not read incident.sys_created_by (a field ACL), so the way back cannot tell its own \
         incidents and acts on none; grant it read access"
    )))
}

/// The key, hashed: what the cache keeps instead of a second copy of it.
pub(crate) fn key_fingerprint(ilert: &ILertAccount) -> String {
    let mut hash = Sha256::new();
    hash.update(ilert.api_url.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(ilert.api_key.expose_secret().as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

mod echo;
mod listing;
mod push;
#[cfg(test)]
mod tests;
