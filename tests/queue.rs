//! Queued delivery, against real SQS (moto's server: FIFO queues, message groups, five-minute
//! deduplication) and the ServiceNow simulator. The send side is the webhook as iLert calls
//! it; the consume side gets its batches exactly as Lambda's SQS event source mapping hands
//! them over, and the records it does not hand back are deleted as Lambda deletes them.

mod support;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use ilert_servicenow::adapters::queue::SqsQueue;
use ilert_servicenow::flow::consumer::QueueConsumer;
use ilert_servicenow::flow::telemetry::Metrics;
use serde_json::{json, Value};
use simulator::{EventSource, Fault, FifoQueues, Moto, RuntimeApiSimulator};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::*;

/// One moto for the whole test binary; each test has queues of its own.
fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start().expect("moto's server starts"))
}

struct Queued {
    app: TestApp,
    queues: FifoQueues,
    source: EventSource,
    consumer: QueueConsumer<
        ilert_servicenow::adapters::secrets::AwsSecretsManager,
        ilert_servicenow::adapters::servicenow::TableApi,
        SqsQueue,
    >,
    metrics: Arc<Mutex<Vec<u8>>>,
}

/// The function in queued delivery, with its own FIFO queue and dead-letter queue.
async fn queued(name: &str, time_budget: Duration) -> Queued {
    with_queue(name, time_budget, true).await
}

/// How long the tests' direct delivery queues an instance's events straight away once it
/// was found away (30 s in production).
const AWAY_PAUSE: Duration = Duration::from_millis(300);

/// The function in direct delivery with its queues as the safety net (the template's
/// default).
async fn direct_with_queue(name: &str, time_budget: Duration) -> Queued {
    with_queue(name, time_budget, false).await
}

async fn with_queue(name: &str, time_budget: Duration, every_event: bool) -> Queued {
    let sqs = moto().sqs().await;
    let queues = FifoQueues::create(&sqs, name, 400).await;
    let metrics = Arc::new(Mutex::new(Vec::new()));
    let aws = aws_config_for_moto().await;
    let app = TestApp::spawn()
        .await
        .with_time_budget(time_budget)
        .with_metrics(Metrics::Captured(Arc::clone(&metrics)));
    let queue = SqsQueue::new(
        &aws,
        queues.queue_url.clone(),
        queues.dead_letter_url.clone(),
    );
    let app = if every_event {
        app.with_queue(queue)
    } else {
        app.with_fallback_queue(queue, AWAY_PAUSE)
    };
    let consumer = app
        .handler
        .consumer()
        .expect("a deployment with a queue has a consumer");
    let source = EventSource::new(sqs, &queues.queue_url);
    Queued {
        app,
        queues,
        source,
        consumer,
        metrics,
    }
}

async fn aws_config_for_moto() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-central-1"))
        .endpoint_url(moto().url())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDMOTO", "moto", None, None, "moto",
        ))
        .load()
        .await
}

/// An event of another alert: the bundled one with its id changed.
fn of_alert(name: &str, alert_id: &str) -> ilert_servicenow::flow::edge::WebhookRequest {
    let mut body = body_of(name);
    body["id"] = json!(alert_id);
    with_body(event(name), body.to_string())
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone())
        .collect()
}

fn ids_of_alert(batch: &SqsEvent, alert_id: &str) -> Vec<String> {
    batch
        .records
        .iter()
        .filter(|r| r.attributes.get("MessageGroupId").map(String::as_str) == Some(alert_id))
        .map(|r| r.message_id.clone().unwrap())
        .collect()
}

impl Queued {
    async fn consume(&self, batch: &SqsEvent) -> SqsBatchResponse {
        let response = self.consumer.consume(batch.clone(), None).await;
        self.source.settle(batch, &response).await;
        response
    }

    fn metrics(&self) -> Vec<Value> {
        String::from_utf8(self.metrics.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_delivery_answers_202_and_puts_each_event_in_its_alerts_group() {
    let queued = queued("accepted", Duration::from_secs(5)).await;
    let answer = queued
        .app
        .send(event_at("01-alert-created", "assignment_group=Network"))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(answer.body, json!({"action": "queued"}));
    assert!(
        queued.app.servicenow.requests().is_empty(),
        "nothing reached ServiceNow yet"
    );

    let received = moto()
        .sqs()
        .await
        .receive_message()
        .queue_url(&queued.queues.queue_url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let [message] = received.as_slice() else {
        panic!("one message: {received:?}")
    };
    let attributes = message.attributes.as_ref().unwrap();
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageGroupId],
        "12797430"
    );
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageDeduplicationId].len(),
        64
    );
    let body: Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["settings"], "assignment_group=Network");
    assert_eq!(
        serde_json::from_str::<Value>(body["event"].as_str().unwrap()).unwrap(),
        body_of("01-alert-created")
    );
    let [metrics] = queued.metrics().try_into().unwrap();
    assert_eq!(metrics["EventsQueued"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ilert_delivering_an_event_again_within_five_minutes_is_dropped_by_sqs_itself() {
    let queued = queued("deduplicated", Duration::from_secs(5)).await;
    for request in [
        event("01-alert-created"),
        event("01-alert-created"),
        event_at("01-alert-created", "on_accept=note"),
    ] {
        assert_eq!(queued.app.send(request).await.status, 202);
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(
        batch.records.len(),
        2,
        "the redelivery is dropped; the same event with other settings is not"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_at_the_door_and_a_queue_out_of_reach_is_a_503() {
    let queued = queued("door", Duration::from_secs(5)).await;
    let refused = [
        queued
            .app
            .send(with_authorization(event("01-alert-created"), None))
            .await,
        queued
            .app
            .send(event_at("01-alert-created", "on_accept=sometimes"))
            .await,
        queued
            .app
            .send(with_body(event("01-alert-created"), "{"))
            .await,
    ];
    let statuses: Vec<u16> = refused.iter().map(|answer| answer.status).collect();
    assert_eq!(statuses, [401, 400, 400]);
    let (visible, in_flight) = queued.source.depth().await;
    assert_eq!(visible + in_flight, 0, "nothing was queued");

    let unreachable = TestApp::spawn().await.with_queue(SqsQueue::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "AKIDX", "x", None, None, "test",
            ))
            .load()
            .await,
        "http://127.0.0.1:9/000000000000/nowhere.fifo".into(),
        "http://127.0.0.1:9/000000000000/nowhere-dlq.fifo".into(),
    ));
    let answer = unreachable.deliver("01-alert-created").await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.retry_after.is_some());
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("delivering it again is safe"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_applies_each_alerts_events_in_order_and_hands_nothing_back() {
    let queued = queued("ordered", Duration::from_secs(5)).await;
    for name in LIFECYCLE {
        assert_eq!(queued.app.deliver(name).await.status, 202);
        let other = queued.app.send(of_alert(name, "555")).await;
        assert_eq!(other.status, 202);
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(batch.records.len(), 8);
    let response = queued.consume(&batch).await;
    assert!(failures(&response).is_empty(), "{response:?}");

    for key in [KEY, "ilert:555"] {
        let incident = queued
            .app
            .servicenow
            .incident_for(key)
            .expect("one incident");
        assert_eq!(incident["state"], "6", "{key}");
        // Each alert's events in this batch are applied as one write: its notes in order,
        // each once, in one entry or several.
        let notes = queued
            .app
            .notes(incident["number"].as_str().unwrap())
            .join("\n\n");
        let at: Vec<usize> = ["Accepted in iLert", "Comment in iLert", "Resolved in iLert"]
            .iter()
            .map(|note| {
                assert_eq!(notes.matches(note).count(), 1, "{key}: {notes}");
                notes.find(note).unwrap()
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{key}: in order: {notes}"
        );
    }
    assert_eq!(queued.source.depth().await, (0, 0));
    let waits: Vec<f64> = queued
        .metrics()
        .iter()
        .filter_map(|document| document["QueueWait"].as_f64())
        .collect();
    assert_eq!(
        waits.len(),
        8,
        "each consumed record says how long it waited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trouble_a_retry_may_fix_hands_back_the_record_and_every_later_one_of_its_alert() {
    let queued = queued("handed-back", Duration::from_millis(800)).await;
    // The create lands first, on its own.
    assert_eq!(queued.app.send(event("01-alert-created")).await.status, 202);
    let created = queued.source.receive(10, Duration::from_secs(1)).await;
    assert!(failures(&queued.consume(&created).await).is_empty());
    for request in [
        event("02-alert-acknowledged"),
        event("03-alert-comment-added"),
        of_alert("01-alert-created", "555"),
    ] {
        assert_eq!(queued.app.send(request).await.status, 202);
    }
    // Received hidden for a second only: what stays hidden longer, the function hid.
    let batch = queued
        .source
        .receive_hidden_for(10, Duration::from_secs(1), Some(Duration::from_secs(1)))
        .await;
    assert_eq!(batch.records.len(), 3);
    // The accept's write meets an instance that stays unavailable past the budget.
    for _ in 0..50 {
        queued
            .app
            .servicenow
            .inject(Some("PATCH"), Fault::status(503, None));
    }
    let response = queued.consume(&batch).await;
    let alert = ids_of_alert(&batch, "12797430");
    assert_eq!(
        failures(&response),
        alert,
        "the accept and the comment after it, applied as one"
    );
    assert_eq!(
        queued.app.incident()["state"],
        "1",
        "the create landed, nothing after it"
    );
    assert!(
        queued.app.servicenow.incident_for("ilert:555").is_some(),
        "the other alert went on"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        queued.source.depth().await,
        (0, 2),
        "handed back and hidden for the backoff (30 s), not the receive's second"
    );

    // The instance recovers; once the backoff has passed, the queue gives them back in order.
    queued.app.servicenow.clear_faults();
    let sqs = moto().sqs().await;
    for record in batch
        .records
        .iter()
        .filter(|r| alert.contains(r.message_id.as_ref().unwrap()))
    {
        sqs.change_message_visibility()
            .queue_url(&queued.queues.queue_url)
            .receipt_handle(record.receipt_handle.as_deref().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let again = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(
        again
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap())
            .collect::<Vec<_>>(),
        alert
    );
    assert_eq!(
        again.records[0].attributes["ApproximateReceiveCount"], "2",
        "a second try"
    );
    assert!(failures(&queued.consume(&again).await).is_empty());
    let incident = queued.app.incident();
    assert_eq!(incident["state"], "2");
    let notes = queued
        .app
        .notes(incident["number"].as_str().unwrap())
        .join("\n");
    let accepted = notes.find("Accepted").expect("the accept's note");
    assert!(
        notes[accepted..].contains("Comment"),
        "both, in order: {notes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_refusal_is_dead_lettered_with_its_cause_and_the_alert_moves_on() {
    let queued = queued("dead-lettered", Duration::from_secs(5)).await;
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
    ] {
        assert_eq!(queued.app.deliver(name).await.status, 202);
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    // Applied as one, the three are refused (a 403 to their one insert); each is then tried
    // on its own, and only the accept is refused again.
    queued
        .app
        .servicenow
        .inject(Some("POST"), Fault::status(403, None));
    queued
        .app
        .servicenow
        .inject(Some("PATCH"), Fault::status(403, None));
    let response = queued.consume(&batch).await;
    assert!(failures(&response).is_empty(), "nothing blocks the alert");
    assert_eq!(queued.source.depth().await, (0, 0));

    let dead = moto()
        .sqs()
        .await
        .receive_message()
        .queue_url(&queued.queues.dead_letter_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let [letter] = dead.as_slice() else {
        panic!("one dead letter: {dead:?}")
    };
    assert_eq!(letter.body, batch.records[1].body, "the accept");
    let cause = letter.message_attributes.as_ref().unwrap()["failure"]
        .string_value()
        .unwrap()
        .to_owned();
    assert!(cause.contains("403"), "{cause}");
    let notes = queued
        .app
        .notes(queued.app.incident()["number"].as_str().unwrap());
    assert!(
        notes.iter().any(|n| n.contains("Comment")),
        "the comment after it landed"
    );
    let dead_lettered: u64 = queued
        .metrics()
        .iter()
        .map(|document| document["EventsDeadLettered"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(dead_lettered, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_delivered_again_changes_nothing() {
    let queued = queued("redelivered", Duration::from_secs(5)).await;
    for name in LIFECYCLE {
        queued.app.deliver(name).await;
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    assert!(failures(&queued.consumer.consume(batch.clone(), None).await).is_empty());
    let before = queued.app.servicenow.incidents();
    queued.app.servicenow.clear_requests();
    // Lambda's delete was lost: SQS hands the same batch over again.
    assert!(failures(&queued.consumer.consume(batch, None).await).is_empty());
    assert_eq!(queued.app.servicenow.incidents(), before);
    assert!(queued.app.methods().iter().all(|method| method == "GET"));
}

/// The built binary in queued delivery, as Lambda runs it: it takes the webhook's HTTP
/// events and the event source mapping's SQS batches from the same Runtime API.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_both_doors_of_queued_delivery() {
    let queued = queued("binary", Duration::from_secs(5)).await;
    let runtime_api = RuntimeApiSimulator::start().await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ilert-servicenow"))
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ilert-servicenow")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(queued.app.function_environment())
        .env("AWS_ENDPOINT_URL_SQS", moto().url())
        .env("DELIVERY", "queued")
        .env("QUEUE_URL", &queued.queues.queue_url)
        .env("DEAD_LETTER_QUEUE_URL", &queued.queues.dead_letter_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let envelope = std::fs::read_to_string(format!(
        "{}/events/01-alert-created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let invoke = |payload: String| {
        let runtime_api = runtime_api.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), runtime_api.invoke(payload))
                .await
                .expect("the function answers")
                .unwrap()
        }
    };
    let webhook: Value = serde_json::from_str(&invoke(envelope).await).unwrap();
    assert_eq!(webhook["statusCode"], 202, "{webhook}");

    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    let answer = invoke(serde_json::to_string(&batch).unwrap()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let response: SqsBatchResponse = serde_json::from_str(&answer).unwrap();
    assert!(failures(&response).is_empty(), "{answer}");
    assert_eq!(
        queued.app.incident()["state"],
        "1",
        "created by the consumer"
    );
}

/// A queue that takes messages but never answers anything else: SQS out of reach after the
/// batch was received.
struct SilentQueue;

impl ilert_servicenow::adapters::queue::EventQueue for SilentQueue {
    async fn send(
        &self,
        _event: &ilert_servicenow::adapters::queue::QueuedEvent,
    ) -> Result<(), ilert_servicenow::adapters::queue::QueueError> {
        Ok(())
    }

    async fn retry_later(
        &self,
        _receipts: &[&str],
        _wait: Duration,
    ) -> Result<(), ilert_servicenow::adapters::queue::QueueError> {
        std::future::pending().await
    }

    async fn dead_letter(
        &self,
        _group: &str,
        _message_id: &str,
        _body: &str,
        _cause: &str,
    ) -> Result<(), ilert_servicenow::adapters::queue::QueueError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn sqs_calls_of_the_consumer_end_within_the_invocation_and_hand_the_records_back() {
    let app = TestApp::spawn().await;
    let handler: ilert_servicenow::flow::edge::WebhookHandler<_, _, SilentQueue> =
        handler_with_defaults(
            &app.secrets,
            SECRET_ID,
            Ok(ilert_servicenow::domain::settings::Settings::default()),
        )
        .with_queue(SilentQueue);
    let consumer = handler.consumer().expect("queued delivery has a consumer");
    let mut unreadable = aws_lambda_events::event::sqs::SqsMessage::default();
    unreadable.message_id = Some("m-1".into());
    unreadable.receipt_handle = Some("r-1".into());
    unreadable.body = Some("not a queued event".into());
    unreadable
        .attributes
        .insert("MessageGroupId".into(), "12797430".into());
    let mut batch = SqsEvent::default();
    batch.records = vec![unreadable];
    // Lambda's deadline 3 s away: the consumer keeps 1.5 s of it free.
    let deadline = ilert_servicenow::flow::budget::epoch_ms() + 3_000;

    let started = std::time::Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        consumer.consume(batch, Some(deadline)),
    )
    .await
    .expect("the consumer returned instead of waiting on SQS forever");

    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        failures(&response),
        ["m-1"],
        "not dead-lettered, so handed back, never lost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_records_fate_is_logged_the_held_back_ones_too_and_a_queued_answer_as_202() {
    let queued = queued("fates", Duration::from_millis(800)).await;
    assert_eq!(queued.app.send(event("01-alert-created")).await.status, 202);
    let created = queued.source.receive(10, Duration::from_secs(1)).await;
    assert!(failures(&queued.consume(&created).await).is_empty());
    let sent = logs_of(|| async {
        for request in [
            event("02-alert-acknowledged"),
            event("03-alert-comment-added"),
            // Another alert action's settings: not applied with the two before it.
            event_at("04-alert-resolved", "close_code=Workaround%20provided"),
        ] {
            assert_eq!(queued.app.send(request).await.status, 202);
        }
    })
    .await;
    for line in sent.lines() {
        if line["fields"]["message"] == "invocation" {
            assert_eq!(line["fields"]["status"], 202, "{line}");
        }
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    for _ in 0..50 {
        queued
            .app
            .servicenow
            .inject(Some("PATCH"), Fault::status(503, None));
    }
    let consumed = logs_of(|| async {
        queued.consume(&batch).await;
    })
    .await;
    let lines = consumed.lines();
    let fates: Vec<(String, String)> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "invocation")
        .map(|line| {
            (
                line["fields"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                line["fields"]["disposition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let fates: Vec<(&str, &str)> = fates
        .iter()
        .map(|(o, d)| (o.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        fates,
        [
            ("failed", "retry"),
            ("failed", "retry"),
            ("held_back", "retry")
        ],
        "one line for each of the three records: the two applied as one failed together"
    );
    queued.app.servicenow.clear_faults();
}

/// Queued delivery keeps the alert action's instance with the event: the consumer brings each
/// record to the instance its webhook URL named.
#[tokio::test(flavor = "multi_thread")]
async fn a_queued_event_reaches_the_instance_its_webhook_url_named() {
    let sqs = moto().sqs().await;
    let queues = FifoQueues::create(&sqs, "instances", 400).await;
    let aws = aws_config_for_moto().await;
    let (app, test) = spawn_two_instances().await;
    let app = app
        .with_time_budget(Duration::from_secs(5))
        .with_queue(SqsQueue::new(
            &aws,
            queues.queue_url.clone(),
            queues.dead_letter_url.clone(),
        ));
    let consumer = app.handler.consumer().unwrap();
    let source = EventSource::new(sqs, &queues.queue_url);
    for instance in ["acme-test", "acme-prod"] {
        let answer = app
            .send(event_at(
                "01-alert-created",
                &format!("instance={instance}"),
            ))
            .await;
        assert_eq!(answer.status, 202, "{}", answer.text);
    }
    let batch = source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(batch.records.len(), 2);
    let response = consumer.consume(batch.clone(), None).await;
    source.settle(&batch, &response).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert!(test.incident_for(KEY).is_some());
    assert!(app.servicenow.incident_for(KEY).is_some());
}

/// In queued delivery one alert's events never run at once (the message group is the alert),
/// so a create needs no read-back for a racing twin; and a batch's events of one alert are
/// applied as one: one lookup and one write, the notes in order, the state the last leaves.
#[tokio::test(flavor = "multi_thread")]
async fn a_batchs_events_of_one_alert_cost_one_lookup_and_one_write() {
    let queued = queued("one-write", Duration::from_secs(5)).await;
    assert_eq!(queued.app.deliver("01-alert-created").await.status, 202);
    let first = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(first.records.len(), 1);
    queued.app.servicenow.clear_requests();
    assert!(failures(&queued.consume(&first).await).is_empty());
    assert_eq!(
        queued.app.methods(),
        ["GET", "POST"],
        "a queued create: no read-back"
    );

    for name in [
        "02-alert-acknowledged",
        "03-alert-comment-added",
        "04-alert-resolved",
    ] {
        assert_eq!(queued.app.deliver(name).await.status, 202);
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(batch.records.len(), 3);
    queued.app.servicenow.clear_requests();
    let response = queued.consume(&batch).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(
        queued.app.methods(),
        ["GET", "PATCH"],
        "three events, one lookup and one write"
    );
    let incident = queued.app.incident();
    assert_eq!(incident["state"], "6", "the state the last event leaves");
    let notes = queued
        .app
        .notes(incident["number"].as_str().unwrap())
        .join("\n");
    let accepted = notes.find("Accepted in iLert").expect("the accept's note");
    let comment = notes.find("Comment in iLert").expect("the comment's note");
    assert!(accepted < comment, "in order: {notes}");

    // The same batch again changes nothing: each note once.
    let again = queued.consume(&batch).await;
    assert!(failures(&again).is_empty());
    let notes_after = queued
        .app
        .notes(incident["number"].as_str().unwrap())
        .join("\n");
    assert_eq!(
        notes_after.matches("Comment in iLert").count(),
        1,
        "{notes_after}"
    );
    assert_eq!(
        notes_after.matches("Accepted in iLert").count(),
        1,
        "{notes_after}"
    );
}

/// What AWS documents for FIFO queues ("FIFO queue delivery logic in Amazon SQS"): a receive
/// returns as many messages of one message group as it can, then fills up from others, each
/// group in its order. moto 5 hands them out in the order they were sent, whatever their
/// group; the simulator starts moto with receive corrected, and this holds it to the
/// documentation, so a storm's batches hold runs of one alert as they would in AWS.
#[tokio::test(flavor = "multi_thread")]
async fn a_receive_gives_as_many_events_of_one_alert_as_it_can_as_sqs_documents() {
    let queued = queued("grouped", Duration::from_secs(5)).await;
    let alerts = ["5000001", "5000002"];
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
    ] {
        for alert in alerts {
            assert_eq!(queued.app.send(of_alert(name, alert)).await.status, 202);
        }
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    let groups: Vec<&str> = batch
        .records
        .iter()
        .map(|r| r.attributes["MessageGroupId"].as_str())
        .collect();
    assert_eq!(
        groups,
        ["5000001", "5000001", "5000001", "5000002", "5000002", "5000002"],
        "sent alternately, received one alert's run after the other's"
    );
    let kinds: Vec<String> = batch
        .records
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            let event: Value = serde_json::from_str(body["event"].as_str().unwrap()).unwrap();
            event["eventType"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        kinds[..3],
        ["alert-created", "alert-acknowledged", "alert-comment-added"],
        "each group in its order"
    );
    assert_eq!(kinds[3..], kinds[..3]);
}

/// Direct delivery with the queue as its safety net: what ServiceNow cannot take for now
/// waits in the queue, and iLert is told so (`202 queued`, `servicenow_unavailable`), not
/// `503`; a refusal no retry fixes is answered as before; only with the queue out of reach
/// too is the answer `503`.
#[tokio::test(flavor = "multi_thread")]
async fn direct_delivery_queues_what_servicenow_cannot_take_now_and_says_so() {
    let direct = direct_with_queue("net", Duration::from_millis(1500)).await;
    let answer = direct.app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "ServiceNow up: direct, {}", answer.text);
    assert_eq!(answer.body["action"], "created");

    direct.app.servicenow.start_outage(Fault::status(503, None));
    let started = std::time::Instant::now();
    let mut answer = None;
    let logs = logs_of(|| async {
        answer = Some(direct.app.deliver("02-alert-acknowledged").await);
    })
    .await;
    let answer = answer.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1600),
        "within the budget"
    );
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(
        answer.body,
        json!({"action": "queued", "reason": "servicenow_unavailable"})
    );
    assert!(
        direct.app.servicenow.requests_during_outage() > 0,
        "it was tried first"
    );
    let lines = logs.lines();
    let summary = lines
        .iter()
        .find(|line| line["fields"]["message"] == "invocation")
        .expect("a summary line");
    assert_eq!(summary["fields"]["path"], "queued: servicenow_unavailable");
    assert_eq!(summary["fields"]["status"], 202);
    assert!(
        logs.text().contains("waits in the queue"),
        "a warning says why: {}",
        logs.text()
    );
    let metrics = direct.metrics();
    let last = metrics.last().unwrap();
    assert_eq!(last["EventsQueued"], 1);
    assert_eq!(last["EventsQueuedWhileUnavailable"], 1);

    // Found away moments ago: the next event is queued at once, without trying again.
    let tried = direct.app.servicenow.requests_during_outage();
    let started = std::time::Instant::now();
    let answer = direct.app.deliver("03-alert-comment-added").await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(direct.app.servicenow.requests_during_outage(), tried);

    direct.app.servicenow.end_outage();
    tokio::time::sleep(AWAY_PAUSE).await;
    let batch = direct.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(
        batch.records.len(),
        2,
        "the accept and the comment waited in the queue"
    );
    assert!(failures(&direct.consume(&batch).await).is_empty());
    assert_eq!(
        direct.app.incident()["state"],
        "2",
        "and were applied once back"
    );
    let answer = direct.app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 200, "back to direct: {}", answer.text);

    // A refusal no retry fixes is no reason to queue.
    direct.app.servicenow.make_mandatory("category");
    let answer = direct.app.deliver("04-alert-resolved").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert_eq!(
        direct
            .source
            .receive(10, Duration::from_secs(0))
            .await
            .records
            .len(),
        0,
        "nothing queued"
    );
}

/// An alert's life as iLert sends it, for alert `n` of a test: created, accepted, two
/// comments, resolved, reported just now.
fn life_of(n: usize) -> Vec<ilert_servicenow::flow::edge::WebhookRequest> {
    let id = (6_000_000 + n).to_string();
    let reported = now_iso8601();
    [
        ("01-alert-created", None),
        ("02-alert-acknowledged", None),
        ("03-alert-comment-added", Some(format!("first look at {n}"))),
        (
            "03-alert-comment-added",
            Some(format!("second look at {n}")),
        ),
        ("04-alert-resolved", None),
    ]
    .into_iter()
    .enumerate()
    .map(|(step, (name, comment))| {
        let mut body = body_of(name);
        body["id"] = json!(id);
        body["reportTime"] = json!(reported);
        body["eventId"] = json!(format!("{id}-{step}"));
        if let Some(comment) = comment {
            body["comment"] = json!(comment);
        }
        with_body(event(name), body.to_string())
    })
    .collect()
}

/// How an alert's incident ended: one incident (a duplicate canceled by a merge aside), its
/// state and close fields, and its notes, each without its fingerprint line, sorted.
fn ending_of(
    servicenow: &simulator::ServiceNowSimulator,
    n: usize,
) -> (usize, String, String, String, Vec<String>) {
    let key = format!("ilert:{}", 6_000_000 + n);
    let incidents: Vec<_> = servicenow
        .incidents()
        .into_iter()
        .filter(|incident| incident["correlation_id"] == key.as_str())
        .collect();
    let Some(incident) = incidents.first() else {
        return (0, String::new(), String::new(), String::new(), Vec::new());
    };
    let text = |field: &str| incident[field].as_str().unwrap_or_default().to_owned();
    // A batch's events of one alert share one journal entry, each note apart by a blank line.
    let mut notes: Vec<String> = servicenow
        .journal(&text("number"))
        .iter()
        .flat_map(|entry| {
            entry
                .text
                .split("\n\n")
                .map(|note| {
                    note.lines()
                        .filter(|line| !line.starts_with("[iLert #"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    notes.sort();
    (
        incidents.len(),
        text("state"),
        text("close_code"),
        text("close_notes"),
        notes,
    )
}

/// Issue 26's promise for a default deployment: ServiceNow away (refusing, then answering
/// 503, then asleep) while 40 alerts' first events arrive, redeliveries among them; back for
/// the rest, which go straight to it while the queue drains beside them. Nothing is lost,
/// nothing duplicated, and every incident ends as delivery in order leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servicenow_away_loses_nothing_in_direct_delivery_and_every_alert_ends_as_in_order() {
    const ALERTS: usize = 40;
    let direct = Arc::new(direct_with_queue("away", Duration::from_millis(1500)).await);
    let send_all = |alerts: std::ops::Range<usize>, steps: std::ops::Range<usize>| {
        let direct = Arc::clone(&direct);
        async move {
            let mut senders = tokio::task::JoinSet::new();
            for n in alerts {
                let (direct, steps) = (Arc::clone(&direct), steps.clone());
                senders.spawn(async move {
                    let life = life_of(n);
                    let mut answers = Vec::new();
                    for step in steps {
                        answers.push((n, step, direct.app.send(life[step].clone()).await));
                        // Every fifth alert's event is delivered twice.
                        if n % 5 == 0 {
                            answers.push((n, step, direct.app.send(life[step].clone()).await));
                        }
                    }
                    answers
                });
            }
            let mut all = Vec::new();
            while let Some(answers) = senders.join_next().await {
                all.extend(answers.unwrap());
            }
            all
        }
    };

    // Away: the first three events of every alert.
    let mut while_away = Vec::new();
    for (alerts, outage) in [
        (0..14, Fault::CutBeforeApplying),
        (14..27, Fault::status(503, None)),
        (27..ALERTS, Fault::hibernating()),
    ] {
        direct.app.servicenow.start_outage(outage);
        let met = direct.app.servicenow.requests_during_outage();
        tokio::time::sleep(AWAY_PAUSE).await;
        while_away.extend(send_all(alerts, 0..3).await);
        assert!(
            direct.app.servicenow.requests_during_outage() > met,
            "each kind of outage was met"
        );
    }
    direct.app.servicenow.end_outage();
    tokio::time::sleep(AWAY_PAUSE).await;
    assert_eq!(while_away.len(), 3 * ALERTS + 3 * ALERTS / 5);
    for (n, step, answer) in &while_away {
        assert_eq!(
            (answer.status, &answer.body),
            (
                202,
                &json!({"action": "queued", "reason": "servicenow_unavailable"})
            ),
            "alert {n}, event {step}: {}",
            answer.text
        );
    }
    assert!(
        direct.app.servicenow.incidents().is_empty(),
        "nothing got through"
    );

    // Back: the rest arrive directly while the queue drains beside them.
    let draining = {
        let direct = Arc::clone(&direct);
        tokio::spawn(async move {
            let mut empty_receives = 0;
            while empty_receives < 3 {
                let batch = direct.source.receive(10, Duration::from_millis(300)).await;
                if batch.records.is_empty() {
                    empty_receives += 1;
                    continue;
                }
                empty_receives = 0;
                let response = direct.consume(&batch).await;
                assert!(failures(&response).is_empty(), "{response:?}");
            }
        })
    };
    let once_back = send_all(0..ALERTS, 3..5).await;
    draining.await.unwrap();
    for (n, step, answer) in &once_back {
        assert!(
            [200, 202].contains(&answer.status),
            "alert {n}, event {step}: {}",
            answer.text
        );
    }
    assert_eq!(
        direct.source.depth().await,
        (0, 0),
        "the queue drained, nothing handed back"
    );
    let dead = EventSource::new(moto().sqs().await, &direct.queues.dead_letter_url);
    assert_eq!(dead.depth().await, (0, 0), "nothing dead-lettered");

    // The same events in order, to an instance that was never away.
    let in_order = TestApp::spawn().await;
    for n in 0..ALERTS {
        for request in life_of(n) {
            let answer = in_order.send(request).await;
            assert!(answer.status < 300, "{}", answer.text);
        }
    }
    // What may differ from in-order delivery: the journal's order, and a note naming a
    // duplicate when a direct event and the queue opened the alert's incident at once (the
    // duplicate canceled, its state carried over); each such note once.
    let mut merged = 0;
    for n in 0..ALERTS {
        let expected = ending_of(&in_order.servicenow, n);
        assert_eq!(expected.0, 1);
        assert_eq!(expected.1, "6");
        assert_eq!(expected.4.len(), 4, "{:?}", expected.4);
        let mut ended = ending_of(&direct.app.servicenow, n);
        let merge_notes: Vec<String> = ended
            .4
            .iter()
            .filter(|note| note.starts_with("Merged INC"))
            .cloned()
            .collect();
        let distinct: std::collections::BTreeSet<&String> = merge_notes.iter().collect();
        assert_eq!(
            distinct.len(),
            merge_notes.len(),
            "alert {n}: {merge_notes:?}"
        );
        merged += merge_notes.len();
        ended.4.retain(|note| !note.starts_with("Merged INC"));
        assert_eq!(ended, expected, "alert {n}");
    }
    let canceled = direct
        .app
        .servicenow
        .incidents()
        .iter()
        .filter(|incident| incident["state"] == "8")
        .count();
    assert_eq!(canceled, merged, "each duplicate canceled and named once");
    eprintln!("{merged} of {ALERTS} alerts met a create race, each merged once");
}

/// `target=event` in queued delivery: a batch's events of one alert reach Event Management in
/// one request, their records in order, and end as one closed alert.
#[tokio::test(flavor = "multi_thread")]
async fn a_batchs_events_for_event_management_go_in_one_request_in_order() {
    let queued = queued("em-batch", Duration::from_secs(5)).await;
    queued.app.servicenow.enable_event_management();
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
        "04-alert-resolved",
    ] {
        let answer = queued.app.send(event_at(name, "target=event")).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
    }
    let batch = queued.source.receive(10, Duration::from_secs(1)).await;
    assert_eq!(batch.records.len(), 4);
    let response = queued.consume(&batch).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let requests = queued.app.servicenow.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect::<Vec<_>>(),
        [("POST", "/api/global/em/jsonv2")],
        "four events, one request"
    );
    let records = requests[0].body.as_ref().unwrap()["records"].clone();
    let severities: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["2", "2", "2", "0"], "in their order");
    queued.app.servicenow.process_events();
    let alerts = queued.app.servicenow.em_alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["state"], "Closed");
}
