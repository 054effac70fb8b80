//! What Lambda hands the function, by its source: an HTTP call (API Gateway or a function
//! URL) for the webhook and ServiceNow's push, a batch of queued events from the SQS event
//! source mapping, or EventBridge's schedule for the back-sync pass.

use crate::adapters::api_gateway::{HttpApiEvent, HttpApiResponse, RequestContext};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the epoch: how Lambda gives deadlines and SQS gives send times.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// One invocation's payload. An SQS batch is told by its `Records`, EventBridge's schedule by
/// its `source` and `detail-type`; anything else is an HTTP event.
pub enum Payload {
    Queue(SqsEvent),
    Http(HttpApiEvent),
    /// `{"source": "aws.events", "detail-type": "Scheduled Event", …}`: a back-sync pass.
    Scheduled,
}

/// Every field the function reads of either source, so that the payload is read in one pass.
/// Trying each shape in turn (an untagged enum), or probing for one first, reads the whole
/// event, escaped webhook body and all, two or three times: in callgrind, 60,000 to 95,000
/// instructions of a warm event's 600,000.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(rename = "Records")]
    records: Option<Vec<SqsMessage>>,
    #[serde(default)]
    raw_path: Option<String>,
    #[serde(default)]
    raw_query_string: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    request_context: RequestContext,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default, rename = "detail-type")]
    detail_type: Option<String>,
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let envelope = Envelope::deserialize(deserializer)?;
        let scheduled = envelope.source.as_deref() == Some("aws.events")
            && envelope.detail_type.as_deref() == Some("Scheduled Event");
        if scheduled {
            return Ok(Self::Scheduled);
        }
        Ok(match envelope.records {
            Some(records) => {
                let mut batch = SqsEvent::default();
                batch.records = records;
                Self::Queue(batch)
            }
            None => Self::Http(HttpApiEvent {
                raw_path: envelope.raw_path,
                raw_query_string: envelope.raw_query_string,
                headers: envelope.headers,
                request_context: envelope.request_context,
                body: envelope.body,
                is_base64_encoded: envelope.is_base64_encoded,
            }),
        })
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Answer {
    Queue(SqsBatchResponse),
    Http(HttpApiResponse),
    /// What a back-sync pass did; EventBridge does not read it, a person invoking it does.
    Pass(serde_json::Value),
}

/// Lambda never hands over an invocation this long after its deadline: its longest timeout
/// is 15 minutes.
const IMPLAUSIBLY_LATE_MS: u64 = 3_600_000;

/// The invocation's deadline, in ms since the epoch, if it can be one. 0 is a context made
/// outside Lambda. A deadline long past is a local emulator's (cargo-lambda 1.9 sends a
/// duration, 600000, which read as a time is 1970): it counts as unknown, with a warning,
/// rather than as expired, which would answer every event 503 at once.
pub fn deadline_of(context: &Context) -> Option<u64> {
    let deadline_ms = Some(context.deadline).filter(|&deadline_ms| deadline_ms > 0)?;
    if deadline_ms.saturating_add(IMPLAUSIBLY_LATE_MS) < epoch_ms() {
        tracing::warn!(
            deadline_ms,
            "the invocation's deadline is long past, so it cannot be real (a local \
             emulator's?); only TIME_BUDGET_SECONDS bounds this invocation"
        );
        return None;
    }
    Some(deadline_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &str) -> Payload {
        serde_json::from_str(payload).expect("a payload Lambda sends")
    }

    #[test]
    fn an_sqs_batch_is_told_by_its_records() {
        let batch = r#"{"Records":[{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","body":"{}",
            "attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183",
            "MessageGroupId":"42","MessageDeduplicationId":"abc"},
            "messageAttributes":{},"md5OfBody":"99914b932bd37a50b983c5e7c90ae93b",
            "eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-central-1:1:q.fifo",
            "awsRegion":"eu-central-1"}]}"#;
        match parse(batch) {
            Payload::Queue(event) => {
                assert_eq!(event.records.len(), 1);
                assert_eq!(event.records[0].body.as_deref(), Some("{}"));
            }
            Payload::Http(_) | Payload::Scheduled => {
                panic!("an SQS batch was taken for another source")
            }
        }
    }

    #[test]
    fn an_http_call_through_either_door_is_an_http_event() {
        let http_api = r#"{"version":"2.0","routeKey":"POST /","rawPath":"/",
            "rawQueryString":"priority=high","headers":{"authorization":"Bearer t"},
            "requestContext":{"http":{"method":"POST","path":"/"},"stage":"$default"},
            "body":"{\"alert\":{}}","isBase64Encoded":false}"#;
        let function_url = r#"{"version":"2.0","routeKey":"$default","rawPath":"/",
            "rawQueryString":"","headers":{},"requestContext":{"http":{"method":"POST"},
            "domainName":"abc.lambda-url.eu-central-1.on.aws"},"body":"eyJhIjoxfQ==",
            "isBase64Encoded":true}"#;
        match parse(http_api) {
            Payload::Http(event) => {
                assert_eq!(event.request_context.http.method, "POST");
                assert_eq!(event.raw_query_string.as_deref(), Some("priority=high"));
                assert_eq!(event.body.as_deref(), Some(r#"{"alert":{}}"#));
            }
            Payload::Queue(_) | Payload::Scheduled => {
                panic!("an HTTP API call was taken for another source")
            }
        }
        assert!(matches!(parse(function_url), Payload::Http(event) if event.is_base64_encoded));
    }

    #[test]
    fn a_deadline_that_cannot_be_real_is_unknown_and_a_late_one_is_kept() {
        let at = |deadline: u64| {
            let mut context = Context::default();
            context.deadline = deadline;
            deadline_of(&context)
        };
        // What cargo-lambda 1.9's emulator sends: a duration, not a time.
        assert_eq!(at(600_000), None);
        assert_eq!(at(0), None);
        let now_ms = epoch_ms();
        assert_eq!(at(now_ms + 5_000), Some(now_ms + 5_000));
        // Missed by minutes is a real deadline, and the budget treats it as spent.
        assert_eq!(at(now_ms - 20 * 60_000), Some(now_ms - 20 * 60_000));
    }

    #[test]
    fn eventbridges_schedule_is_a_back_sync_pass() {
        let scheduled = r#"{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type":"Scheduled Event","source":"aws.events","account":"123456789012",
            "time":"2026-12-02T10:00:00Z","region":"eu-central-1",
            "resources":["arn:aws:events:eu-central-1:123456789012:rule/back-sync"],"detail":{}}"#;
        assert!(matches!(parse(scheduled), Payload::Scheduled));
        // Another EventBridge event is not a pass.
        let other = r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#;
        assert!(matches!(parse(other), Payload::Http(_)));
    }

    #[test]
    fn a_payload_that_is_neither_is_refused() {
        assert!(serde_json::from_str::<Payload>(r#"{"Records":"many"}"#).is_err());
        assert!(serde_json::from_str::<Payload>(r#"{"headers":[1]}"#).is_err());
        assert!(serde_json::from_str::<Payload>("[").is_err());
    }
}
