//! Time budget and backoff: everything an invocation does, retries included, fits in the time
//! it has, so iLert always gets a real answer rather than a Lambda timeout. The budget also
//! keeps what the invocation spent, for its summary line.

use crate::adapters::ilert::ILertError;
use crate::adapters::secrets::SecretError;
use crate::adapters::servicenow::ServiceNowError;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Kept free at the end of a Lambda invocation to build and send the answer.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1500);
/// What `TIME_BUDGET_SECONDS` defaults to. iLert does not document how long it waits for an
/// answer, and its peers give a receiver 3 to 5 seconds: answer within the longest of those,
/// so a slow instance is met with a 503 iLert can act on rather than a timeout it cannot.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(5);
/// Not worth starting another attempt with less than this left.
const SHORTEST_USEFUL_ATTEMPT: Duration = Duration::from_millis(250);

pub use crate::adapters::lambda::epoch_ms;

/// The deadline of one invocation, and what it has spent so far.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    /// Kept back from `remaining` until released: time for a last step whatever the ones
    /// before it spent (the queue, when ServiceNow is away in direct delivery).
    held_back_micros: AtomicU64,
    servicenow_requests: AtomicU32,
    servicenow_micros: AtomicU64,
    ilert_requests: AtomicU32,
    retries: AtomicU32,
}

impl Budget {
    /// `cap`, shortened to what the Lambda invocation has left (its deadline in ms since the
    /// epoch, as the runtime gives it) less a safety margin.
    pub fn new(cap: Duration, lambda_deadline_ms: Option<u64>) -> Self {
        let lambda_left = lambda_deadline_ms.map(|deadline_ms| {
            Duration::from_millis(deadline_ms.saturating_sub(epoch_ms()))
                .saturating_sub(SAFETY_MARGIN)
        });
        let limit = lambda_left.map_or(cap, |left| left.min(cap));
        Self {
            deadline: Instant::now() + limit,
            held_back_micros: AtomicU64::new(0),
            servicenow_requests: AtomicU32::new(0),
            servicenow_micros: AtomicU64::new(0),
            ilert_requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        }
    }

    pub fn remaining(&self) -> Duration {
        let held_back = Duration::from_micros(self.held_back_micros.load(Ordering::Relaxed));
        self.deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(held_back)
    }

    /// Keeps `time` (at most a third of what is left) out of `remaining` until released.
    pub fn hold_back(&self, time: Duration) {
        let time = time.min(self.remaining() / 3);
        self.held_back_micros
            .store(time.as_micros() as u64, Ordering::Relaxed);
    }

    /// Gives back what `hold_back` kept.
    pub fn release(&self) {
        self.held_back_micros.store(0, Ordering::Relaxed);
    }

    /// Whether waiting `wait` still leaves time for a useful attempt.
    pub fn allows_wait(&self, wait: Duration) -> bool {
        self.remaining() > wait.saturating_add(SHORTEST_USEFUL_ATTEMPT)
    }

    /// One ServiceNow request within what is left of the budget, counted with its time.
    /// Running out of time is transient: the instance was too slow, not wrong.
    pub async fn servicenow<R>(
        &self,
        call: impl Future<Output = Result<R, ServiceNowError>>,
    ) -> Result<R, ServiceNowError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.remaining(), call).await;
        self.servicenow_requests.fetch_add(1, Ordering::Relaxed);
        self.servicenow_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result.unwrap_or_else(|_| {
            Err(ServiceNowError::Transient {
                message: "ServiceNow did not answer within the time budget".into(),
                retry_after: None,
            })
        })
    }

    /// One iLert request within what is left of the budget, counted.
    pub async fn ilert<R>(
        &self,
        call: impl Future<Output = Result<R, ILertError>>,
    ) -> Result<R, ILertError> {
        self.ilert_requests.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(self.remaining(), call)
            .await
            .unwrap_or_else(|_| {
                Err(ILertError::Transient {
                    message: "iLert did not answer within the time budget".into(),
                    retry_after: None,
                })
            })
    }

    /// One Secrets Manager read within what is left of the budget.
    pub async fn secrets_manager<R>(
        &self,
        call: impl Future<Output = Result<R, SecretError>>,
    ) -> Result<R, SecretError> {
        tokio::time::timeout(self.remaining(), call)
            .await
            .unwrap_or_else(|_| {
                Err(SecretError::Unavailable(
                    "Secrets Manager did not answer within the time budget".into(),
                ))
            })
    }

    /// Counts one attempt that had to be made again.
    pub fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// What the invocation has spent so far.
    pub fn spending(&self) -> Spending {
        Spending {
            servicenow_requests: self.servicenow_requests.load(Ordering::Relaxed),
            servicenow_time: Duration::from_micros(self.servicenow_micros.load(Ordering::Relaxed)),
            ilert_requests: self.ilert_requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// ServiceNow requests made, the time spent waiting for them, iLert requests made, and
/// attempts made again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spending {
    pub servicenow_requests: u32,
    pub servicenow_time: Duration,
    pub ilert_requests: u32,
    pub retries: u32,
}

/// Exponential backoff with full jitter (a random wait between zero and the exponential
/// ceiling), so a storm of invocations does not retry in lockstep. Kept by hand rather than
/// taken from a retry crate: it is a dozen lines, and the wait must also honour `Retry-After`
/// and fit the invocation's budget, which the loop around it decides.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(100);
    const CEILING: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait before the next attempt. A server's `Retry-After` is honoured as the
    /// least wait.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = Self::BASE
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(Self::CEILING);
        self.attempt += 1;
        let jittered = ceiling.mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |server| server.max(jittered))
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
    fn time_held_back_is_out_of_reach_until_released() {
        let budget = Budget::new(Duration::from_secs(5), None);
        budget.hold_back(Duration::from_secs(1));
        assert!(budget.remaining() <= Duration::from_secs(4));
        assert!(budget.remaining() > Duration::from_millis(3900));
        budget.release();
        assert!(budget.remaining() > Duration::from_millis(4900));
        let short = Budget::new(Duration::from_millis(600), None);
        short.hold_back(Duration::from_secs(1));
        assert!(
            short.remaining() > Duration::from_millis(390),
            "at most a third is held back: {:?}",
            short.remaining()
        );
    }

    #[test]
    fn the_budget_is_capped_by_the_setting_and_by_the_lambda_deadline_less_a_margin() {
        let capped = Budget::new(Duration::from_secs(10), None);
        assert!(capped.remaining() <= Duration::from_secs(10));
        assert!(capped.remaining() > Duration::from_secs(9));

        let now_ms = epoch_ms();
        let short = Budget::new(Duration::from_secs(10), Some(now_ms + 4_000));
        assert!(short.remaining() <= Duration::from_millis(2_500));
        assert!(short.remaining() > Duration::from_millis(2_000));

        let past = Budget::new(Duration::from_secs(10), Some(now_ms.saturating_sub(1)));
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(!past.allows_wait(Duration::ZERO));
        let minutes_late = Budget::new(Duration::from_secs(10), Some(now_ms - 20 * 60_000));
        assert_eq!(minutes_late.remaining(), Duration::ZERO);
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
    fn no_wait_however_long_overflows_the_budget() {
        let budget = Budget::new(Duration::from_secs(5), None);
        assert!(!budget.allows_wait(Duration::MAX));
    }

    #[test]
    fn retry_after_is_the_least_wait() {
        let mut backoff = Backoff::new();
        assert!(backoff.next_wait(Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }

    #[test]
    fn the_time_budget_setting_is_checked() {
        assert_eq!(time_budget_from(None).unwrap(), Duration::from_secs(5));
        assert_eq!(
            time_budget_from(Some("2.5")).unwrap(),
            Duration::from_millis(2500)
        );
        assert!(time_budget_from(Some("0")).is_err());
        assert!(time_budget_from(Some("ten")).is_err());
    }
}
