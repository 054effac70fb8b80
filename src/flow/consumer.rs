//! The queue's door in queued delivery: Lambda's SQS event source hands the function a batch
//! of up to ten queued events; each goes through the same synchronisation as a webhook call
//! in direct delivery, one at a time, in the order the queue gave them.
//!
//! What a retry may fix hands the record back to the queue, and with it every later record of
//! the same alert, so that an alert's events are never applied out of order; the queue's
//! visibility timeout is the backoff. What can never be applied goes to the dead-letter
//! queue, so it never blocks its alert.

use crate::adapters::queue::{EventQueue, QueuedEvent};
use crate::adapters::secrets::SecretSource;
use crate::adapters::servicenow::IncidentTable;
use crate::domain::alert::AlertEvent;
use crate::domain::settings::Settings;
use crate::flow::budget::{epoch_ms, Budget, Spending};
use crate::flow::failure::Failure;
use crate::flow::intake::{Intake, Read};
use crate::flow::outcome::Outcome;
use crate::flow::sync::Arrival;
use crate::flow::telemetry::{Ending, Metrics, Summary};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The first wait before a record handed back is tried again; it doubles with every receive.
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The longest wait between two tries: an instance back from maintenance is reached within
/// a quarter of an hour.
const LONGEST_RETRY_WAIT: Duration = Duration::from_secs(15 * 60);
/// A record is not started with less time than this left in the invocation: it goes back to
/// the queue untouched instead of being cut off half-way.
const SHORTEST_USEFUL_RECORD: Duration = Duration::from_secs(1);
/// Lambda's longest timeout, for a batch consumed outside Lambda (no deadline).
const LONGEST_INVOCATION: Duration = Duration::from_secs(900);

pub struct QueueConsumer<S, T, Q> {
    /// The same way from event to outcome as the webhook's.
    intake: Arc<Intake<S, T>>,
    queue: Arc<Q>,
    time_budget: Duration,
    /// How an alert's events meet: one at a time when every event is queued; at once with a
    /// direct delivery when the queue only holds what ServiceNow could not take.
    arrival: Arrival,
    metrics: Metrics,
}

impl<S: SecretSource, T: IncidentTable, Q: EventQueue> QueueConsumer<S, T, Q> {
    pub(crate) fn new(
        intake: Arc<Intake<S, T>>,
        queue: Arc<Q>,
        time_budget: Duration,
        arrival: Arrival,
        metrics: Metrics,
    ) -> Self {
        Self {
            intake,
            queue,
            time_budget,
            arrival,
            metrics,
        }
    }

    /// Applies a batch, record by record; the answer names the records to hand back.
    /// `lambda_deadline_ms`: when the invocation must have answered, in ms since the epoch.
    pub async fn consume(
        &self,
        batch: SqsEvent,
        lambda_deadline_ms: Option<u64>,
    ) -> SqsBatchResponse {
        let invocation = Budget::new(LONGEST_INVOCATION, lambda_deadline_ms);
        let mut response = SqsBatchResponse::default();
        let mut held_back: HashSet<String> = HashSet::new();
        let mut retries: Vec<(String, &str, Duration)> = Vec::new();
        let records = &batch.records;
        let mut next = 0;
        // Records already applied with an earlier one of their alert, and those of a run that
        // was refused, which are tried one by one, never as a run again.
        let mut applied_in_a_run: HashSet<usize> = HashSet::new();
        let mut one_by_one: HashSet<usize> = HashSet::new();
        while next < records.len() {
            let index = next;
            let record = &records[next];
            next += 1;
            if applied_in_a_run.contains(&index) {
                continue;
            }
            let message_id = record.message_id.clone().unwrap_or_default();
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            // A later event of an alert whose earlier one goes back must go back too.
            let blocked = held_back.contains(&group);
            if blocked || invocation.remaining() < SHORTEST_USEFUL_RECORD {
                let mut summary = Summary::new();
                summary.queue_wait = waited_in_queue(record);
                summary.disposition = Some("retry");
                let ending = Ending::HeldBack {
                    cause: if blocked {
                        "an earlier event of this alert went back to the queue"
                    } else {
                        "too little time left in the invocation to start it"
                    },
                };
                summary.finish(&ending, Spending::default(), &self.metrics);
                // Hidden as long as the earlier event it waits for, so the alert's events
                // come back together.
                if let Some(receipt) = record.receipt_handle.as_deref().filter(|_| blocked) {
                    retries.push((group.clone(), receipt, Duration::ZERO));
                }
                held_back.insert(group);
                response.add_failure(message_id);
                continue;
            }
            // The alert's next events in the batch, applied with this one as one write.
            let run = (!one_by_one.contains(&index))
                .then(|| self.run_of(records, index, &group))
                .flatten();
            if let Some((indexes, events, settings)) = run {
                let run: Vec<&SqsMessage> = indexes.iter().map(|i| &records[*i]).collect();
                let budget = Budget::new(self.time_budget, lambda_deadline_ms);
                let result = self
                    .intake
                    .apply_all(&events, &settings, self.arrival, &budget)
                    .await;
                // A refusal is left to the events one by one, so that only the one refused
                // is dead-lettered; anything else is the whole run's.
                if result.as_ref().map_or_else(Failure::may_pass, |_| true) {
                    for (index, (record, event)) in run.iter().zip(&events).enumerate() {
                        let mut summary = Summary::new();
                        summary.queue_wait = waited_in_queue(record);
                        summary.alert_id = Some(event.id.to_string());
                        summary.event_type = Some(event.kind.name().to_owned());
                        summary.instance.clone_from(&settings.instance);
                        let ending = match &result {
                            Ok(outcome) => Ending::Handled {
                                action: outcome.action.as_str(),
                                incident: outcome.incident.as_ref().map(|i| i.number.clone()),
                            },
                            Err(failure) => {
                                response.add_failure(record.message_id.clone().unwrap_or_default());
                                let asked = failure.retry_after().unwrap_or(FIRST_RETRY_WAIT);
                                if let Some(receipt) = record.receipt_handle.as_deref() {
                                    retries.push((
                                        group.clone(),
                                        receipt,
                                        retry_wait(record, asked),
                                    ));
                                }
                                summary.disposition = Some("retry");
                                Ending::Failed {
                                    status: failure.status().as_u16(),
                                    kind: failure.kind(),
                                    cause: failure.to_string(),
                                }
                            }
                        };
                        // The run's requests are told once, with its first event.
                        let spending = if index == 0 {
                            budget.spending()
                        } else {
                            Spending::default()
                        };
                        summary.finish(&ending, spending, &self.metrics);
                    }
                    if result.is_err() {
                        held_back.insert(group.clone());
                    }
                    applied_in_a_run.extend(indexes);
                    continue;
                }
                one_by_one.extend(indexes);
            }
            let mut summary = Summary::new();
            summary.queue_wait = waited_in_queue(record);
            let budget = Budget::new(self.time_budget, lambda_deadline_ms);
            let result = self.apply(record, &group, &budget, &mut summary).await;
            let ending = match &result {
                Ok(outcome) => Ending::Handled {
                    action: outcome.action.as_str(),
                    incident: outcome.incident.as_ref().map(|i| i.number.clone()),
                },
                Err(failure) => {
                    let moved = !failure.may_pass()
                        && self
                            .move_to_dead_letters(record, &group, &message_id, failure, &invocation)
                            .await;
                    if moved {
                        summary.disposition = Some("dead_letter");
                    } else {
                        // Also what cannot be moved: SQS's own redrive takes it after enough
                        // tries.
                        held_back.insert(group.clone());
                        response.add_failure(message_id.clone());
                        let asked = failure.retry_after().unwrap_or(FIRST_RETRY_WAIT);
                        if let Some(receipt) = record.receipt_handle.as_deref() {
                            retries.push((group.clone(), receipt, retry_wait(record, asked)));
                        }
                        summary.disposition = Some("retry");
                    }
                    Ending::Failed {
                        status: failure.status().as_u16(),
                        kind: failure.kind(),
                        cause: failure.to_string(),
                    }
                }
            };
            summary.finish(&ending, budget.spending(), &self.metrics);
        }
        self.delay(&retries, &invocation).await;
        response
    }

    /// One record through the same steps as a webhook call: settings, event, policy,
    /// secret, synchronisation, with the same verdicts.
    async fn apply(
        &self,
        record: &SqsMessage,
        group: &str,
        budget: &Budget,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
        let body = record.body.as_deref().unwrap_or_default();
        let queued = QueuedEvent::from_message(group, body).map_err(Failure::UnreadableMessage)?;
        // The webhook checked both before it queued them; only a change of the deployment's
        // defaults in between, or a message that did not come from it, fails here.
        let read = self
            .intake
            .read(&queued.settings, Ok(queued.event.as_bytes()), summary)?;
        match read {
            Read::Ignored(outcome) => Ok(outcome),
            Read::Event(read) => {
                let (event, settings) = *read;
                self.intake
                    .apply(&event, &settings, None, self.arrival, budget)
                    .await
            }
        }
    }

    /// The records from `records[first]` on that are events of `group`'s alert with the same
    /// settings, in order, read (other alerts' records between them do not matter): their
    /// indexes and events, at least two, or `None` (one by one then, as a record that cannot
    /// be read, or an ignored event, is decided on its own).
    fn run_of(
        &self,
        records: &[SqsMessage],
        first: usize,
        group: &str,
    ) -> Option<(Vec<usize>, Vec<AlertEvent>, Settings)> {
        let mut indexes = Vec::new();
        let mut events = Vec::new();
        let mut settings: Option<(String, Settings)> = None;
        for (index, record) in records.iter().enumerate().skip(first) {
            if record.attributes.get("MessageGroupId").map(String::as_str) != Some(group) {
                continue;
            }
            let body = record.body.as_deref().unwrap_or_default();
            let Ok(queued) = QueuedEvent::from_message(group, body) else {
                break;
            };
            if settings
                .as_ref()
                .is_some_and(|(query, _)| *query != queued.settings)
            {
                break;
            }
            let mut summary = Summary::new();
            let Ok(Read::Event(read)) =
                self.intake
                    .read(&queued.settings, Ok(queued.event.as_bytes()), &mut summary)
            else {
                break;
            };
            let (event, read_settings) = *read;
            settings.get_or_insert((queued.settings.clone(), read_settings));
            indexes.push(index);
            events.push(event);
        }
        let (_, settings) = settings?;
        (events.len() > 1).then_some((indexes, events, settings))
    }

    /// Moves a record that can never be applied to the dead-letter queue, so it no longer
    /// blocks its alert; whether it was moved. Inside the invocation's time: a queue that does
    /// not answer leaves the record to go back, not the invocation to time out.
    async fn move_to_dead_letters(
        &self,
        record: &SqsMessage,
        group: &str,
        message_id: &str,
        failure: &Failure,
        invocation: &Budget,
    ) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let cause = failure.to_string();
        let moving = self.queue.dead_letter(group, message_id, body, &cause);
        match tokio::time::timeout(invocation.remaining(), moving).await {
            Ok(Ok(())) => true,
            Ok(Err(problem)) => {
                tracing::error!(%problem, "could not move a message to the dead-letter queue");
                false
            }
            Err(_) => {
                tracing::error!("the dead-letter queue did not answer within the invocation's time; the message goes back to the queue");
                false
            }
        }
    }

    /// Hides the records handed back for their wait, one alert at a time (the longest wait
    /// its records asked for), inside the invocation's time. If the queue cannot be told,
    /// they come back after its own visibility timeout: sooner, never lost.
    async fn delay(&self, retries: &[(String, &str, Duration)], invocation: &Budget) {
        let groups: HashSet<&str> = retries.iter().map(|(group, _, _)| group.as_str()).collect();
        for group in groups {
            let of_group: Vec<&(String, &str, Duration)> =
                retries.iter().filter(|(g, _, _)| g == group).collect();
            let wait = of_group
                .iter()
                .map(|(_, _, wait)| *wait)
                .max()
                .unwrap_or_default();
            let receipts: Vec<&str> = of_group.iter().map(|(_, receipt, _)| *receipt).collect();
            let delaying = self.queue.retry_later(&receipts, wait);
            match tokio::time::timeout(invocation.remaining(), delaying).await {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => {
                    tracing::warn!(%problem, "could not delay the retry; the queue's own timeout applies")
                }
                Err(_) => {
                    tracing::warn!("SQS did not answer within the invocation's time; the queue's own timeout applies");
                    return;
                }
            }
        }
    }
}

/// How long to wait before the record's next try: doubling with every receive from 30 s up
/// to a quarter of an hour, and never less than the instance asked for.
fn retry_wait(record: &SqsMessage, retry_after: Duration) -> Duration {
    let receives: u32 = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let doubled =
        FIRST_RETRY_WAIT.saturating_mul(2u32.saturating_pow(receives.saturating_sub(1).min(10)));
    doubled.min(LONGEST_RETRY_WAIT).max(retry_after)
}

/// How long the record waited in the queue since it was sent (`SentTimestamp`, ms).
fn waited_in_queue(record: &SqsMessage) -> Option<Duration> {
    let sent_ms: u64 = record.attributes.get("SentTimestamp")?.parse().ok()?;
    Some(Duration::from_millis(epoch_ms().saturating_sub(sent_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(times: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), times.into());
        record
    }

    #[test]
    fn the_wait_before_a_retry_doubles_up_to_a_quarter_of_an_hour_and_honours_retry_after() {
        let none = Duration::ZERO;
        assert_eq!(retry_wait(&received("1"), none), Duration::from_secs(30));
        assert_eq!(retry_wait(&received("2"), none), Duration::from_secs(60));
        assert_eq!(retry_wait(&received("4"), none), Duration::from_secs(240));
        assert_eq!(retry_wait(&received("40"), none), Duration::from_secs(900));
        assert_eq!(
            retry_wait(&received("1"), Duration::from_secs(3600)),
            Duration::from_secs(3600)
        );
    }
}
