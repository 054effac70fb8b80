//! Real SQS for queued delivery's tests and storm benchmark: moto's server (Python), which
//! speaks SQS with FIFO queues, message groups and five-minute deduplication, and what
//! Lambda's SQS event source mapping does with such a queue.
//!
//! moto is taken from `PATH`, else installed once into the workspace's `target/tools` with
//! Python's pip (see `tools`), so a fresh clone with Rust and Python needs no step by hand.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server on a loopback port; stopped when dropped.
pub struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    /// Starts moto, installing it first if it is nowhere to be found, with receive made to
    /// group a FIFO queue's messages as AWS documents (see `moto_fifo.py`).
    pub fn start() -> std::io::Result<Self> {
        let python = moto_python()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // A static Moto is never dropped: a watchdog shell stops the server once the process
        // that started it is gone, so no test run leaves one behind.
        let child = Command::new("sh")
            .args([
                "-c",
                r#""$0" -c "$3" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & moto=$!
                   trap 'kill $moto 2>/dev/null; exit 0' TERM INT
                   while kill -0 "$2" 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 1; done
                   kill $moto 2>/dev/null"#,
            ])
            .arg(python)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .arg(MOTO_AS_AWS_DOCUMENTS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // A first start imports and compiles moto: slow on a loaded 2-core machine.
            if started.elapsed() > Duration::from_secs(120) {
                return Err(std::io::Error::other(
                    "moto_server did not start within 120 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, url })
    }

    /// The endpoint for `AWS_ENDPOINT_URL_SQS` (or an SDK's `endpoint_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SQS client aimed at this moto, with test credentials.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "AKIDMOTO", "moto", None, None, "moto",
            ))
            .load()
            .await;
        aws_sdk_sqs::Client::new(&config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // TERM, which the watchdog passes on to the server.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// moto's server with FIFO receive as AWS documents it, run by a Python that has moto.
const MOTO_AS_AWS_DOCUMENTS: &str = include_str!("moto_fifo.py");

/// A Python with moto's server: `python3` from PATH if it has it, else the one of (or
/// installed into) `target/tools/moto`.
fn moto_python() -> std::io::Result<PathBuf> {
    const CHECK: &str = "import moto.server, moto.sqs.models";
    if let Some(found) = crate::tools::on_path("python3") {
        let has_moto = Command::new(&found)
            .args(["-c", CHECK])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if has_moto {
            return Ok(found);
        }
    }
    let venv = crate::tools::python_tool(
        &crate::tools::tools_dir(),
        "moto",
        &["moto[server]"],
        &["bin/python", "-c", CHECK],
    )?;
    Ok(venv.join("bin/python"))
}

/// A FIFO queue and its dead-letter queue, as the SAM template makes them.
pub struct FifoQueues {
    pub queue_url: String,
    pub dead_letter_url: String,
}

impl FifoQueues {
    /// Creates `<name>.fifo` (deduplication by id, not content) with `<name>-dlq.fifo` as its
    /// dead-letter queue after `max_receives`.
    pub async fn create(sqs: &aws_sdk_sqs::Client, name: &str, max_receives: u32) -> Self {
        let create = |queue_name: String| {
            sqs.create_queue()
                .queue_name(queue_name)
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
                .attributes(QueueAttributeName::VisibilityTimeout, "120")
        };
        let dead_letter_url = create(format!("{name}-dlq.fifo"))
            .send()
            .await
            .expect("moto creates the dead-letter queue")
            .queue_url
            .expect("a queue URL");
        let dead_letter_arn = sqs
            .get_queue_attributes()
            .queue_url(&dead_letter_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("moto answers")
            .attributes
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dead_letter_arn}","maxReceiveCount":"{max_receives}"}}"#
        );
        let queue_url = create(format!("{name}.fifo"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .expect("moto creates the queue")
            .queue_url
            .expect("a queue URL");
        Self {
            queue_url,
            dead_letter_url,
        }
    }
}

/// What Lambda's SQS event source mapping does: receives a batch, hands it to the function as
/// an `SqsEvent`, and deletes the records the function did not hand back.
pub struct EventSource {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl EventSource {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            sqs,
            queue_url: queue_url.to_owned(),
        }
    }

    /// Up to `max` records (10 at most), waiting up to `wait` for the first, as Lambda would
    /// deliver them: with `MessageGroupId`, `ApproximateReceiveCount` and `SentTimestamp`.
    pub async fn receive(&self, max: i32, wait: Duration) -> SqsEvent {
        self.receive_hidden_for(max, wait, None).await
    }

    /// As [`Self::receive`], the records hidden for `visibility` rather than the queue's own
    /// timeout: a test then sees what the function's own backoff hides.
    pub async fn receive_hidden_for(
        &self,
        max: i32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> SqsEvent {
        // moto does not make a receive atomic against another receive (real SQS does): two at
        // once can both take messages of one group, which a FIFO queue never hands out
        // together. Event sources take turns to receive; what they received runs at once.
        // The long poll is kept outside the turn (short receives until `wait` is over), so
        // one source waiting for messages does not keep the other from receiving.
        static RECEIVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let until = Instant::now() + wait;
        let messages = loop {
            let turn = RECEIVING.lock().await;
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(max)
                .wait_time_seconds(0)
                .set_visibility_timeout(visibility.map(|v| v.as_secs() as i32))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("moto answers")
                .messages
                .unwrap_or_default();
            drop(turn);
            if !received.is_empty() || Instant::now() >= until {
                break received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut event = SqsEvent::default();
        for message in messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id;
            record.receipt_handle = message.receipt_handle;
            record.body = message.body;
            record.event_source = Some("aws:sqs".into());
            record.attributes = message
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), value))
                .collect();
            event.records.push(record);
        }
        event
    }

    /// Deletes what the function did not hand back, in one `DeleteMessageBatch` as Lambda
    /// does with `ReportBatchItemFailures`; what it handed back stays, for another receive.
    pub async fn settle(&self, batch: &SqsEvent, response: &SqsBatchResponse) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .records
            .iter()
            .enumerate()
            .filter(|(_, record)| {
                !response
                    .batch_item_failures
                    .iter()
                    .any(|failure| Some(&failure.item_identifier) == record.message_id.as_ref())
            })
            .filter_map(|(index, record)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .set_receipt_handle(record.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let deleted = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("moto deletes");
        assert!(
            deleted.failed.is_empty(),
            "moto deleted every message: {:?}",
            deleted.failed
        );
    }

    /// Messages in the queue, visible and in flight.
    pub async fn depth(&self) -> (u64, u64) {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("moto answers")
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }
}
