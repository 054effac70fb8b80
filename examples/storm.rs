//! `cargo run --release --example storm`: an alert storm in queued delivery. 1,000 events of
//! 100 alerts reach the webhook; they wait in a real SQS FIFO queue (moto's server) and
//! are applied by the consumer through what Lambda's event source mapping does, with
//! `QueueConcurrency` batches at once, against a ServiceNow instance that answers 429 above a
//! fixed rate. It checks that nothing was lost, nothing duplicated, every alert ended right
//! and ServiceNow never met more concurrent writers than the cap, and it measures the
//! webhook's answer time and how long the queue took to drain.
//!
//! Needs no AWS: moto is taken from PATH, else installed once into target/tools with pip.

use ilert_servicenow::adapters::api_gateway::HttpApiEvent;
use ilert_servicenow::adapters::queue::{EventQueue, QueueError, QueuedEvent, SqsQueue};
use ilert_servicenow::adapters::secrets::{ConnectionCache, StaticSecret};
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::domain::alert::AlertId;
use ilert_servicenow::domain::settings::Settings;
use ilert_servicenow::flow::edge::WebhookHandler;
use lambda_runtime::Context;
use serde_json::{json, Value};
use simulator::{EventSource, FifoQueues, Moto, ServiceNowSimulator};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ALERTS: usize = 100;
const COMMENTS_PER_ALERT: usize = 7; // + created, accepted, resolved: 10 events an alert
const QUEUE_CONCURRENCY: usize = 2;
/// The instance's rate-limit rule: requests a second before it answers 429.
const RATE_LIMIT_PER_SECOND: u32 = 25;
/// iLert's senders: how many webhook calls are in flight at once.
const SENDERS: usize = 10;
const TOKEN: &str = "storm-webhook-token";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let moto = Moto::start().expect("moto's server starts (pip install 'moto[server]')");
    let servicenow = ServiceNowSimulator::start("ilert.integration", "storm-password")
        .await
        .expect("the simulator starts");
    servicenow.set_rate_limit(RATE_LIMIT_PER_SECOND);
    // A real instance's pace: lookups quick, inserts and updates slower.
    servicenow.set_latency("GET", Duration::from_millis(3));
    servicenow.set_latency("PATCH", Duration::from_millis(8));
    servicenow.set_insert_time(Duration::from_millis(15), Duration::from_millis(10));

    let sqs = moto.sqs().await;
    let queues = FifoQueues::create(&sqs, "storm", 400).await;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-central-1"))
        .endpoint_url(moto.url())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDMOTO", "moto", None, None, "moto",
        ))
        .load()
        .await;
    let secret = json!({
        "instance_url": servicenow.url(),
        "username": "ilert.integration",
        "password": "storm-password",
        "webhook_token": TOKEN,
    });
    // Time spent in SendMessage, by deduplication id: moto's share, not the function's.
    let sends: SendTimes = Arc::default();
    let handler: WebhookHandler<_, _, TimedQueue> =
        WebhookHandler::new(
            ConnectionCache::new(
                StaticSecret::new(secret.to_string()),
                Duration::from_secs(300),
            ),
            TableApi::new(ilert_servicenow::adapters::http::client()),
            ilert_servicenow::adapters::ilert::ILertApi::new(
                ilert_servicenow::adapters::http::client(),
            ),
            Ok(Settings::default()),
        )
        .with_settle_delay(Duration::ZERO)
        .with_queue(TimedQueue {
            sqs: SqsQueue::new(
                &aws,
                queues.queue_url.clone(),
                queues.dead_letter_url.clone(),
            ),
            sends: Arc::clone(&sends),
        });
    let handler = Arc::new(handler);

    // `--backlog`: the storm waits in the queue (ServiceNow away, or the event source off)
    // and is consumed once it is all there, so the instance's limit alone sets the pace.
    let backlog = std::env::args().any(|arg| arg == "--backlog");
    println!(
        "storm: {} events of {ALERTS} alerts, queued delivery, QueueConcurrency {QUEUE_CONCURRENCY}, \
         ServiceNow limited to {RATE_LIMIT_PER_SECOND} requests/s, {}",
        ALERTS * (COMMENTS_PER_ALERT + 3),
        if backlog {
            "consumed once all of it is queued (--backlog)"
        } else {
            "consumed while it arrives"
        }
    );

    // Lambda's event source mapping: QUEUE_CONCURRENCY pollers, each one batch at a time,
    // consuming while iLert is still sending (or, with --backlog, once it is done).
    let started = Instant::now();
    let sending_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = Arc::new(handler.consumer().expect("queued delivery"));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..QUEUE_CONCURRENCY {
        let (consumer, sending_done) = (Arc::clone(&consumer), Arc::clone(&sending_done));
        let source = EventSource::new(moto.sqs().await, &queues.queue_url);
        pollers.spawn(async move {
            let mut batches = 0;
            while backlog && !sending_done.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            loop {
                let batch = source.receive(10, Duration::from_secs(1)).await;
                if batch.records.is_empty() {
                    let done = sending_done.load(std::sync::atomic::Ordering::SeqCst);
                    if done && source.depth().await == (0, 0) {
                        return batches;
                    }
                    continue;
                }
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("after 1970")
                    .as_millis() as u64
                    + 20_000;
                let response = consumer.consume(batch.clone(), Some(deadline)).await;
                source.settle(&batch, &response).await;
                batches += 1;
            }
        });
    }

    // iLert: each alert's events in order, SENDERS calls in flight at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(SENDERS));
    let mut senders = tokio::task::JoinSet::new();
    for alert in 0..ALERTS {
        let (handler, permits) = (Arc::clone(&handler), Arc::clone(&permits));
        senders.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("open");
            let mut answers = Vec::new();
            for event in events_of(alert) {
                let id = deduplication_id_of(&event);
                // A 503 (the queue too slow for the time budget) is delivered again, as iLert
                // would; the deduplication id keeps a retry that did land from counting twice.
                loop {
                    let sent = Instant::now();
                    let answer = ilert_servicenow::startup::answer_http(
                        &handler,
                        event.clone(),
                        Context::default(),
                    )
                    .await;
                    answers.push((answer.status_code, sent.elapsed(), id.clone()));
                    if answer.status_code != 503 {
                        break;
                    }
                }
            }
            answers
        });
    }
    let mut answer_times = Vec::new();
    let mut own_times = Vec::new();
    let mut unavailable = 0;
    while let Some(answers) = senders.join_next().await {
        for (status, took, id) in answers.expect("a sender") {
            match status {
                202 => {
                    answer_times.push(took);
                    let in_sqs = sends.lock().expect("not poisoned")[&id];
                    own_times.push(took.saturating_sub(in_sqs));
                }
                503 => unavailable += 1,
                other => panic!("every event is queued, or 503 and sent again: {other}"),
            }
        }
    }
    own_times.sort();
    let sending = started.elapsed();
    sending_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut batches = 0;
    while let Some(count) = pollers.join_next().await {
        batches += count.expect("a poller");
    }
    let drained = started.elapsed();

    // Nothing lost, nothing duplicated, every alert right.
    let incidents = servicenow.incidents();
    let mut wrong = Vec::new();
    for alert in 0..ALERTS {
        let key = format!("ilert:{}", alert_id(alert));
        let of_alert: Vec<&serde_json::Map<String, Value>> = incidents
            .iter()
            .filter(|incident| incident["correlation_id"] == key.as_str())
            .collect();
        let [incident] = of_alert.as_slice() else {
            wrong.push(format!("{key}: {} incidents", of_alert.len()));
            continue;
        };
        let entries = servicenow.journal(incident["number"].as_str().expect("a number"));
        // One entry may carry several events' notes (a batch's, applied as one write), each
        // ending with its fingerprint line, `[iLert #1a2b3c]`, and apart by a blank line.
        let notes: Vec<String> = entries
            .iter()
            .flat_map(|entry| entry.text.split("\n\n"))
            .map(|note| {
                note.lines()
                    .filter(|line| !line.starts_with("[iLert #"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        let comments: Vec<String> = notes
            .iter()
            .filter_map(|note| note.strip_prefix("Comment in iLert: ").map(str::to_owned))
            .collect();
        let in_order: Vec<String> = (0..COMMENTS_PER_ALERT)
            .map(|n| format!("step {n}"))
            .collect();
        if incident["state"] != "6" || comments != in_order || notes.len() != COMMENTS_PER_ALERT + 2
        {
            wrong.push(format!(
                "{key}: state {}, notes {notes:?}",
                incident["state"]
            ));
        }
    }
    let dead_letters = EventSource::new(moto.sqs().await, &queues.dead_letter_url)
        .depth()
        .await;
    let writers = servicenow.stats().most_in_flight();

    answer_times.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let percentile =
        |times: &[Duration], p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| events answered 202 (queued) | {} of {} ({unavailable} answers 503, delivered again) |",
        answer_times.len(),
        ALERTS * (COMMENTS_PER_ALERT + 3)
    );
    println!(
        "| webhook answer time p50 / p99, queued (against moto) | {} / {} ms |",
        ms(percentile(&answer_times, 50)),
        ms(percentile(&answer_times, 99))
    );
    println!(
        "| of which the function's own work, all but SQS's SendMessage, p50 / p99 | {} / {} ms |",
        ms(percentile(&own_times, 50)),
        ms(percentile(&own_times, 99))
    );
    println!(
        "| all events queued after | {:.1} s |",
        sending.as_secs_f64()
    );
    println!(
        "| queue drained after | {:.1} s ({batches} batches) |",
        drained.as_secs_f64()
    );
    println!("| incidents / alerts | {} / {ALERTS} |", incidents.len());
    println!(
        "| alerts not ending resolved with every note in order | {} |",
        wrong.len()
    );
    println!(
        "| dead-lettered events | {} |",
        dead_letters.0 + dead_letters.1
    );
    let refused = servicenow.rate_limited() as usize;
    let applied = servicenow.requests().len().saturating_sub(refused);
    let events = ALERTS * (COMMENTS_PER_ALERT + 3);
    println!(
        "| ServiceNow requests answered / per event | {applied} / {:.2} |",
        applied as f64 / events as f64
    );
    // The drain cannot end before the instance has admitted every request, nor (consuming
    // while the storm arrives) before the last event is queued.
    let at_the_rate = applied as f64 / f64::from(RATE_LIMIT_PER_SECOND);
    let consuming = if backlog { drained - sending } else { drained };
    let limit = if backlog {
        at_the_rate
    } else {
        at_the_rate.max(sending.as_secs_f64())
    };
    println!(
        "| the physical limit: those requests at {RATE_LIMIT_PER_SECOND} a second{}; consuming took / limit | {limit:.1} s; {:.1} s, {:.2}× |",
        if backlog { "" } else { ", or the last event's arrival if later" },
        consuming.as_secs_f64(),
        consuming.as_secs_f64() / limit
    );
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for request in servicenow.requests() {
        let table = request.path.trim_start_matches("/api/now/table/");
        let table = table.split('/').next().unwrap_or_default();
        *kinds
            .entry(format!("{} {table}", request.method))
            .or_default() += 1;
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "| ServiceNow requests by kind, refused ones too | {} |",
        kinds.join(", ")
    );
    println!(
        "| requests ServiceNow refused with 429; of them sent while an earlier 429's Retry-After ran | {refused}; {} |",
        servicenow.rate_limited_while_asked_to_wait()
    );
    println!("| most concurrent requests ServiceNow met (cap {QUEUE_CONCURRENCY}) | {writers} |");
    for problem in wrong.iter().take(5) {
        println!("  {problem}");
    }
    let passed = wrong.is_empty()
        && incidents.len() == ALERTS
        && dead_letters == (0, 0)
        && writers <= QUEUE_CONCURRENCY;
    println!();
    println!("{}", if passed { "PASS" } else { "FAIL" });
    if !passed {
        std::process::exit(1);
    }
}

/// The id the webhook gives an event it queues from this HTTP event (no settings).
fn deduplication_id_of(event: &HttpApiEvent) -> String {
    let body = event.body.as_deref().expect("a body");
    let id: Value = serde_json::from_str(body).expect("JSON");
    let alert = AlertId::parse(id["id"].as_str().expect("an id")).expect("digits");
    QueuedEvent::new(&alert, body.as_bytes(), "").deduplication_id()
}

fn alert_id(alert: usize) -> String {
    (700_000 + alert).to_string()
}

/// An alert's life as iLert sends it: created, accepted, comments, resolved.
fn events_of(alert: usize) -> Vec<HttpApiEvent> {
    let id = alert_id(alert);
    let mut bodies = vec![json!({
        "id": id, "status": "PENDING", "eventType": "alert-created",
        "summary": format!("storm alert {alert}"), "priority": "HIGH", "eventId": format!("{id}-c"),
    })];
    bodies.push(json!({
        "id": id, "status": "ACCEPTED", "eventType": "alert-acknowledged",
        "summary": format!("storm alert {alert}"), "eventId": format!("{id}-a"),
        "assignedTo": {"firstName": "Jane", "lastName": "Doe"},
    }));
    for step in 0..COMMENTS_PER_ALERT {
        bodies.push(json!({
            "id": id, "status": "ACCEPTED", "eventType": "alert-comment-added",
            "summary": format!("storm alert {alert}"), "eventId": format!("{id}-n{step}"),
            "comment": format!("step {step}"),
        }));
    }
    bodies.push(json!({
        "id": id, "status": "RESOLVED", "eventType": "alert-resolved",
        "summary": format!("storm alert {alert}"), "eventId": format!("{id}-r"),
    }));
    bodies
        .into_iter()
        .map(|body| {
            serde_json::from_value(json!({
                "rawPath": "/webhook",
                "rawQueryString": "",
                "headers": {"authorization": format!("Bearer {TOKEN}"), "content-type": "application/json"},
                "requestContext": {"http": {"method": "POST"}},
                "body": body.to_string(),
                "isBase64Encoded": false,
            }))
            .expect("an HTTP API event")
        })
        .collect()
}

/// The queue, timing each SendMessage: what moto's server takes is not the function's.
type SendTimes = Arc<std::sync::Mutex<HashMap<String, Duration>>>;

struct TimedQueue {
    sqs: SqsQueue,
    sends: SendTimes,
}

impl EventQueue for TimedQueue {
    async fn send(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        let started = Instant::now();
        let sent = self.sqs.send(event).await;
        self.sends
            .lock()
            .expect("not poisoned")
            .insert(event.deduplication_id(), started.elapsed());
        sent
    }

    async fn retry_later(&self, receipts: &[&str], wait: Duration) -> Result<(), QueueError> {
        self.sqs.retry_later(receipts, wait).await
    }

    async fn dead_letter(
        &self,
        group: &str,
        message_id: &str,
        body: &str,
        cause: &str,
    ) -> Result<(), QueueError> {
        self.sqs.dead_letter(group, message_id, body, cause).await
    }
}
