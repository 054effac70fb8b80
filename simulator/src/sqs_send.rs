//! SQS as far as `SendMessage` goes, behind TLS: where the benchmark's queued webhook sends
//! its events, at the price of a real handshake, without Python or AWS.

use crate::server::{respond, serve, HttpResponse, ServerStats, ANY_LOOPBACK_PORT};
use crate::tls::TestCa;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// SQS's JSON protocol (`AmazonSQS.SendMessage`), enough for the real SDK: point
/// `AWS_ENDPOINT_URL_SQS` here. It keeps every message sent, for the benchmark to hand back to
/// the function as an event source would; any other operation is refused as SQS refuses an
/// unknown one.
#[derive(Clone)]
pub struct SqsSendSimulator {
    address: SocketAddr,
    sent: Arc<Mutex<Vec<SentMessage>>>,
    stats: Arc<ServerStats>,
}

/// A message as `SendMessage` received it.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub queue_url: String,
    pub body: String,
    pub group_id: String,
    pub deduplication_id: String,
    pub message_id: String,
}

impl SqsSendSimulator {
    pub async fn start_tls(ca: &TestCa) -> std::io::Result<Self> {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(ServerStats::default());
        let shared = Arc::clone(&sent);
        let address = serve(
            ANY_LOOPBACK_PORT.into(),
            Arc::clone(&stats),
            Some(ca.acceptor()),
            move |_method, _path, _query, headers, body| {
                let sent = Arc::clone(&shared);
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    Some(answer(&sent, &target, &body))
                }
            },
        )
        .await?;
        Ok(Self {
            address,
            sent,
            stats,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// Takes the messages sent so far.
    pub fn take_sent(&self) -> Vec<SentMessage> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many `SendMessage` calls have been received and not taken yet.
    pub fn pending(&self) -> usize {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Connections opened to it, and the time it spent answering.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }
}

fn answer(sent: &Mutex<Vec<SentMessage>>, target: &str, body: &[u8]) -> HttpResponse {
    let error = |kind: &str, message: &str| {
        respond(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            json!({ "__type": kind, "message": message }).to_string(),
        )
    };
    if target != "AmazonSQS.SendMessage" {
        return error("com.amazonaws.sqs#UnsupportedOperation", target);
    }
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| request[key].as_str().unwrap_or_default().to_owned();
    let (body, group_id) = (text("MessageBody"), text("MessageGroupId"));
    if body.is_empty() || group_id.is_empty() {
        // What SQS says of a FIFO message without a group or a body.
        return error(
            "com.amazonaws.sqs#MissingParameter",
            "The request must contain the parameters MessageBody and MessageGroupId.",
        );
    }
    let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let message_id = format!("00000000-0000-4000-8000-{:012}", sent.len() + 1);
    sent.push(SentMessage {
        queue_url: text("QueueUrl"),
        body,
        group_id,
        deduplication_id: text("MessageDeduplicationId"),
        message_id: message_id.clone(),
    });
    respond(
        StatusCode::OK,
        "application/x-amz-json-1.0",
        json!({
            "MessageId": message_id,
            "SequenceNumber": format!("{:020}", sent.len()),
        })
        .to_string(),
    )
}
