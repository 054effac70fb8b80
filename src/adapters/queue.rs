//! The queue of queued delivery: an SQS FIFO queue between the webhook and ServiceNow. Its
//! message group is the alert, so one alert's events are applied one at a time, in the order
//! they arrived; its deduplication id is a hash of the event and its settings, so iLert
//! delivering the same event again within five minutes is dropped by SQS itself.

use crate::adapters::aws;
use crate::domain::alert::{shorten, AlertId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// One iLert event as it waits in the queue: its body as iLert sent it, and the alert
/// action's settings (the webhook URL's query) it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// The message group: one alert's events in order, one at a time.
    #[serde(skip)]
    pub alert_id: String,
    pub event: String,
    pub settings: String,
}

impl QueuedEvent {
    pub fn new(alert_id: &AlertId, body: &[u8], query: &str) -> Self {
        Self {
            alert_id: alert_id.to_string(),
            // The body was parsed as JSON before it got here, so it is UTF-8.
            event: String::from_utf8_lossy(body).into_owned(),
            settings: query.to_owned(),
        }
    }

    /// The same event with the same settings always hashes the same, so SQS drops a
    /// redelivery within its five-minute deduplication window.
    pub fn deduplication_id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.event.as_bytes());
        hash.update(b"\n");
        hash.update(self.settings.as_bytes());
        hash.finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("two strings serialise")
    }

    /// The event in a message's body; `group` is the message's group, the alert id.
    pub fn from_message(group: &str, body: &str) -> Result<Self, String> {
        let mut event: Self = serde_json::from_str(body)
            .map_err(|error| format!("the message is not a queued iLert event: {error}"))?;
        event.alert_id = group.to_owned();
        Ok(event)
    }
}

/// Why the queue did not take a message, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Throttled, 5xx, unreachable: the event was not queued, delivering it again is safe.
    #[error("{0}")]
    Unavailable(String),
    /// The queue does not exist, or the function may not use it.
    #[error("{0}")]
    Misconfigured(String),
}

pub trait EventQueue: Send + Sync {
    fn send(&self, event: &QueuedEvent) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Keeps messages handed back to the queue hidden for `wait` (at most 12 hours): the
    /// queue's own backoff, by their receipt handles.
    fn retry_later(
        &self,
        receipts: &[&str],
        wait: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Moves a message that can never be applied to the dead-letter queue, saying why, so it
    /// no longer blocks its alert.
    fn dead_letter(
        &self,
        group: &str,
        message_id: &str,
        body: &str,
        cause: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The queues of a deployment, from `DELIVERY`, `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL`:
/// the queue, its dead-letter queue and whether every event goes through them (queued
/// delivery) or only those ServiceNow cannot take for now (direct delivery, the default);
/// `None` for direct delivery without a queue (answered 503 when ServiceNow is away); or why
/// the values do not fit together.
pub fn queued_delivery(
    delivery: Option<&str>,
    queue_url: Option<&str>,
    dead_letter_url: Option<&str>,
) -> Result<Option<(String, String, bool)>, String> {
    let given = |value: Option<&str>| {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (delivery, every_event) = match delivery.map(str::trim).unwrap_or_default() {
        "" | "direct" => ("direct", false),
        "queued" => ("queued", true),
        other => return Err(format!("DELIVERY must be direct or queued, got {other:?}")),
    };
    match (given(queue_url), given(dead_letter_url)) {
        (Some(queue_url), Some(dead_letter_url)) => {
            Ok(Some((queue_url, dead_letter_url, every_event)))
        }
        (None, None) if !every_event => Ok(None),
        (None, _) => Err(format!("DELIVERY is {delivery} but QUEUE_URL is not set")),
        // Without it, an event ServiceNow will never take would hold back every later
        // event of its alert until SQS's own redrive, days later.
        (Some(_), None) => Err(format!(
            "DELIVERY is {delivery} with a queue but DEAD_LETTER_QUEUE_URL is not set: an \
             event ServiceNow refuses would block its alert's later events for days"
        )),
    }
}

/// The queue on SQS.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsQueue {
    pub fn new(aws: &aws_config::SdkConfig, queue_url: String, dead_letter_url: String) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(aws),
            queue_url,
            dead_letter_url,
        }
    }

    /// What waits, as SQS counts it (approximately): the queue's events waiting and in
    /// flight, and the dead-letter queue's.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let (waiting, in_flight) = self.count(&self.queue_url).await?;
        let (dead, dead_in_flight) = self.count(&self.dead_letter_url).await?;
        Ok(QueueDepth {
            waiting,
            in_flight,
            dead_letters: dead + dead_in_flight,
        })
    }

    async fn count(&self, queue_url: &str) -> Result<(u64, u64), QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|error| classify("read the queue's depth", &error))?
            .attributes
            .unwrap_or_default();
        let count = |name| {
            attributes
                .get(&name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(ApproximateNumberOfMessages),
            count(ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// The queue's depth, for `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub in_flight: u64,
    pub dead_letters: u64,
}

/// The SQS limit on a message attribute we set from a failure's text.
const CAUSE_MAX_CHARS: usize = 1000;
/// SQS keeps a message hidden for at most 12 hours.
const LONGEST_WAIT: Duration = Duration::from_secs(12 * 3600);

impl EventQueue for SqsQueue {
    async fn send(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(&event.alert_id)
            .message_deduplication_id(event.deduplication_id())
            .message_body(event.to_message())
            .send()
            .await
            .map(|_| ())
            .map_err(|error| classify("send the event to the queue", &error))
    }

    async fn retry_later(&self, receipts: &[&str], wait: Duration) -> Result<(), QueueError> {
        let seconds = wait.min(LONGEST_WAIT).as_secs() as i32;
        for (index, chunk) in receipts.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, receipt)| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("m{index}-{n}"))
                        .receipt_handle(*receipt)
                        .visibility_timeout(seconds)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| classify("delay the retry", &error))?;
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        group: &str,
        message_id: &str,
        body: &str,
        cause: &str,
    ) -> Result<(), QueueError> {
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(shorten(cause, CAUSE_MAX_CHARS))
            .build()
            .expect("data type is set");
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_group_id(group)
            // The original message's id: moving the same message twice keeps one copy.
            .message_deduplication_id(message_id)
            .message_body(body)
            .message_attributes("failure", attribute)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| classify("move the message to the dead-letter queue", &error))
    }
}

fn classify<E>(
    doing: &str,
    error: &aws_sdk_sqs::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = aws::classify(error);
    let code = failure
        .code
        .as_deref()
        .map(|code| format!(" ({code})"))
        .unwrap_or_default();
    let text = format!("SQS could not {doing}{code}: {}", failure.message);
    if failure.retryable {
        QueueError::Unavailable(text)
    } else {
        QueueError::Misconfigured(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str, settings: &str) -> QueuedEvent {
        QueuedEvent::new(&AlertId::parse("42").unwrap(), body.as_bytes(), settings)
    }

    #[test]
    fn the_deduplication_id_is_the_same_for_the_same_event_and_settings_only() {
        let id = event(r#"{"id":"42"}"#, "on_accept=note").deduplication_id();
        assert_eq!(id.len(), 64, "within SQS's 128 characters");
        assert_eq!(
            id,
            event(r#"{"id":"42"}"#, "on_accept=note").deduplication_id()
        );
        assert_ne!(id, event(r#"{"id":"42"}"#, "").deduplication_id());
        assert_ne!(
            id,
            event(r#"{"id":"42","x":1}"#, "on_accept=note").deduplication_id()
        );
    }

    #[test]
    fn delivery_is_direct_unless_queued_with_a_queue() {
        assert_eq!(queued_delivery(None, None, None), Ok(None));
        assert_eq!(
            queued_delivery(Some("direct"), Some(""), Some(" ")),
            Ok(None)
        );
        assert_eq!(
            queued_delivery(Some("queued"), Some("https://q"), Some("https://dlq")),
            Ok(Some(("https://q".into(), "https://dlq".into(), true)))
        );
        assert_eq!(
            queued_delivery(Some("direct"), Some("https://q"), Some("https://dlq")),
            Ok(Some(("https://q".into(), "https://dlq".into(), false))),
            "direct delivery with its safety net"
        );
        assert!(queued_delivery(Some("direct"), Some("https://q"), None)
            .unwrap_err()
            .contains("DEAD_LETTER_QUEUE_URL"));
        for missing in [None, Some(""), Some("  ")] {
            assert!(queued_delivery(Some("queued"), Some("https://q"), missing)
                .unwrap_err()
                .contains("DEAD_LETTER_QUEUE_URL"));
        }
        assert!(queued_delivery(Some("queued"), None, None)
            .unwrap_err()
            .contains("QUEUE_URL"));
        assert!(queued_delivery(Some("fifo"), Some("q"), None)
            .unwrap_err()
            .contains("direct or queued"));
    }

    #[test]
    fn a_message_carries_the_event_and_its_settings_and_reads_back() {
        let queued = event(r#"{"id":"42","summary":"é"}"#, "assignment_group=%3CNet%3E");
        let read = QueuedEvent::from_message("42", &queued.to_message()).unwrap();
        assert_eq!(read, queued);
        assert!(QueuedEvent::from_message("42", "not json").is_err());
    }
}
