//! Time budget and backoff: everything an invocation does, retries included, fits in the time
//! it has, so iLert always gets a real answer rather than a Lambda timeout.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept free at the end of a Lambda invocation to build and send the answer.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1500);
/// What `TIME_BUDGET_SECONDS` defaults to: well inside the few seconds webhook senders wait
/// and the function's 20 s timeout.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(10);
/// Not worth starting another attempt with less than this left.
const SHORTEST_USEFUL_ATTEMPT: Duration = Duration::from_millis(250);

/// The deadline of one invocation, and what it has spent on ServiceNow so far.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    servicenow_requests: AtomicU32,
    servicenow_micros: AtomicU64,
}

impl Budget {
    /// `cap`, shortened to what the Lambda invocation has left (its deadline in ms since the
    /// epoch, as the runtime gives it) less a safety margin.
    pub fn new(cap: Duration, lambda_deadline_ms: Option<u64>) -> Self {
        let lambda_left = lambda_deadline_ms.map(|deadline_ms| {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(SAFETY_MARGIN)
        });
        let limit = lambda_left.map_or(cap, |left| left.min(cap));
        Self {
            deadline: Instant::now() + limit,
            servicenow_requests: AtomicU32::new(0),
            servicenow_micros: AtomicU64::new(0),
        }
    }

    /// Counts one ServiceNow request that took `took`.
    pub fn spent_on_servicenow(&self, took: Duration) {
        self.servicenow_requests.fetch_add(1, Ordering::Relaxed);
        self.servicenow_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// ServiceNow requests made so far, and the time spent waiting for them.
    pub fn servicenow_spending(&self) -> (u32, Duration) {
        (
            self.servicenow_requests.load(Ordering::Relaxed),
            Duration::from_micros(self.servicenow_micros.load(Ordering::Relaxed)),
        )
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether waiting `wait` still leaves time for a useful attempt.
    pub fn allows_wait(&self, wait: Duration) -> bool {
        self.remaining() > wait + SHORTEST_USEFUL_ATTEMPT
    }
}

/// Exponential backoff with full jitter (a random wait between zero and the exponential
/// ceiling), so a storm of invocations does not retry in lockstep.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    random: RandomState,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(100);
    const CEILING: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        Self {
            attempt: 0,
            random: RandomState::new(),
        }
    }

    /// How long to wait before the next attempt. A server's `Retry-After` is honoured as the
    /// least wait.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = Self::BASE
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(Self::CEILING);
        self.attempt += 1;
        let mut hasher = self.random.build_hasher();
        hasher.write_u32(self.attempt);
        let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = ceiling.mul_f64(fraction);
        retry_after.map_or(jittered, |server| server.max(jittered))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// `TIME_BUDGET_SECONDS`: how long one invocation may spend, retries included.
pub fn time_budget_from(value: Option<&str>) -> Result<Duration, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_TIME_BUDGET),
        Some(text) => match text.parse::<f64>() {
            Ok(seconds) if seconds > 0.0 && seconds <= 900.0 => {
                Ok(Duration::from_secs_f64(seconds))
            }
            _ => Err(format!(
                "TIME_BUDGET_SECONDS must be a number of seconds between 0 and 900, got {text:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_capped_by_the_setting_and_by_the_lambda_deadline_less_a_margin() {
        let capped = Budget::new(Duration::from_secs(10), None);
        assert!(capped.remaining() <= Duration::from_secs(10));
        assert!(capped.remaining() > Duration::from_secs(9));

        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let short = Budget::new(Duration::from_secs(10), Some(now_ms + 4_000));
        assert!(short.remaining() <= Duration::from_millis(2_500));
        assert!(short.remaining() > Duration::from_millis(2_000));

        let past = Budget::new(Duration::from_secs(10), Some(now_ms.saturating_sub(1)));
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(!past.allows_wait(Duration::ZERO));
    }

    #[test]
    fn backoff_grows_exponentially_within_a_ceiling_and_is_jittered() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next_wait(None)).collect();
        for (attempt, wait) in waits.iter().enumerate() {
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt as u32)).min(Duration::from_secs(2));
            assert!(
                *wait <= ceiling,
                "attempt {attempt}: {wait:?} > {ceiling:?}"
            );
        }
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 6,
            "full jitter spreads the waits: {waits:?}"
        );
    }

    #[test]
    fn retry_after_is_the_least_wait() {
        let mut backoff = Backoff::new();
        assert!(backoff.next_wait(Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }

    #[test]
    fn the_time_budget_setting_is_checked() {
        assert_eq!(time_budget_from(None).unwrap(), Duration::from_secs(10));
        assert_eq!(
            time_budget_from(Some("2.5")).unwrap(),
            Duration::from_millis(2500)
        );
        assert!(time_budget_from(Some("0")).is_err());
        assert!(time_budget_from(Some("ten")).is_err());
    }
}
