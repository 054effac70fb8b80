//! `target=event`: an alert's events go to ServiceNow Event Management as event records, in
//! one request per batch, with no lookup: ServiceNow folds them into one alert by their
//! `message_key`, and the customer's own alert rules decide about incidents.

use crate::adapters::secrets::{Connection, ConnectionCache, SecretSource};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError};
use crate::domain::alert::AlertEvent;
use crate::domain::event_record::{event_record, EventRecord};
use crate::domain::settings::Settings;
use crate::flow::budget::{epoch_ms, Backoff, Budget};
use crate::flow::outcome::{Outcome, SyncError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an environment remembers that it cleared an alert: a late event of it (iLert
/// delivering an older event again) must not reopen the alert, which ServiceNow does for a
/// new event within its active interval (an hour by default) [D9].
const CLEARED_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// The most alerts remembered as cleared; the oldest are forgotten first.
const CLEARED_MEMORY_ENTRIES: usize = 10_000;

pub struct EventSender<S, T> {
    connections: Arc<ConnectionCache<S>>,
    table: Arc<T>,
    /// Alerts this environment sent a Clear for, by key, and when.
    cleared: Mutex<HashMap<String, Instant>>,
}

impl<S: SecretSource, T: IncidentTable> EventSender<S, T> {
    pub fn new(connections: Arc<ConnectionCache<S>>, table: Arc<T>) -> Self {
        Self {
            connections,
            table,
            cleared: Mutex::default(),
        }
    }

    /// Sends the events' records in their order, in one request, retrying what a retry may
    /// fix within the budget. A record sent twice (an answer lost) only updates the alert it
    /// already updated: Event Management folds events of one key.
    pub async fn send(
        &self,
        events: &[AlertEvent],
        settings: &Settings,
        mut connection: Arc<Connection>,
        budget: &Budget,
    ) -> Result<Outcome, SyncError> {
        let now_s = (epoch_ms() / 1000) as i64;
        let records: Vec<EventRecord> = events
            .iter()
            .map(|event| event_record(event, settings, now_s))
            .filter(|record| !self.late_after_clear(record))
            .collect();
        if records.is_empty() {
            return Ok(Outcome::ignored(
                "the alert was resolved and its Event Management alert cleared; a late event \
                 would reopen it",
            ));
        }
        let mut backoff = Backoff::new();
        let mut credentials_refreshed = false;
        loop {
            let sent = budget
                .servicenow(self.table.send_events(&connection.servicenow, &records))
                .await;
            let (message, retry_after) = match sent {
                Ok(()) => {
                    self.remember_cleared(&records);
                    return Ok(Outcome::sent());
                }
                Err(ServiceNowError::Unauthorized(refusal)) if !credentials_refreshed => {
                    credentials_refreshed = true;
                    connection = budget
                        .secrets_manager(self.connections.changed_login(&connection))
                        .await?
                        .ok_or(SyncError::Refused(refusal))?;
                    continue;
                }
                Err(
                    ServiceNowError::NotApplied {
                        message,
                        retry_after,
                    }
                    | ServiceNowError::Transient {
                        message,
                        retry_after,
                    },
                ) => (message, retry_after),
                Err(other) => return Err(other.into()),
            };
            budget.count_retry();
            let wait = backoff.next_wait(retry_after);
            if !budget.allows_wait(wait) {
                return Err(ServiceNowError::Transient {
                    message: format!(
                        "{message}; gave up after {} attempts",
                        budget.spending().retries
                    ),
                    retry_after,
                }
                .into());
            }
            tracing::warn!(cause = %message, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// A record that would open again an alert this environment cleared: an event of the
    /// alert that happened before its resolve (iLert's alerts never open again) and arrives
    /// after it.
    fn late_after_clear(&self, record: &EventRecord) -> bool {
        if record.severity == "0" {
            return false;
        }
        let cleared = self.cleared.lock().unwrap_or_else(|e| e.into_inner());
        cleared
            .get(&record.message_key)
            .is_some_and(|at| at.elapsed() < CLEARED_MEMORY)
    }

    fn remember_cleared(&self, records: &[EventRecord]) {
        let mut cleared = self.cleared.lock().unwrap_or_else(|e| e.into_inner());
        for record in records.iter().filter(|record| record.severity == "0") {
            if cleared.len() >= CLEARED_MEMORY_ENTRIES {
                let oldest = cleared
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    cleared.remove(&oldest);
                }
            }
            cleared.insert(record.message_key.clone(), Instant::now());
        }
    }
}
