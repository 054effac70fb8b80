//! The guarantees against an instance that behaves as real ones do: inserts that take their
//! number before they commit, slowly and with jitter; alerts that flap; a field the
//! integration user may not read; bytes typed raw into iLert's URL field; values iLert adds
//! later; a missing secret met by callers who never authenticated; failures a retry may fix.

mod support;

use ilert_servicenow::adapters::api_gateway::HttpApiEvent;
use ilert_servicenow::flow::sync::DEFAULT_SETTLE_DELAY;
use lambda_runtime::Context;
use serde_json::json;
use simulator::Fault;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// An insert as slow as one with a few business rules, give or take a few hundred ms.
const INSERT_TIME: Duration = Duration::from_millis(50);
const INSERT_JITTER: Duration = Duration::from_millis(400);

/// Rounds alternate the deployed settle delay with none: convergence must not depend on it.
fn settle_delay_of(round: usize) -> Duration {
    if round % 2 == 0 {
        DEFAULT_SETTLE_DELAY
    } else {
        Duration::ZERO
    }
}

/// Delivers `requests` at once, each in its own Lambda environment; every answer.
async fn deliver_concurrently(
    first: TestApp,
    requests: Vec<WebhookRequestFactory>,
) -> (Arc<TestApp>, Vec<Answer>) {
    let first = Arc::new(first);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let environment = if index == 0 {
            Arc::clone(&first)
        } else {
            Arc::new(first.another_environment().await)
        };
        tasks.spawn(async move { environment.send(request()).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    (first, answers)
}

type WebhookRequestFactory =
    Box<dyn FnOnce() -> ilert_servicenow::flow::edge::WebhookRequest + Send>;

fn delivery(name: &'static str) -> WebhookRequestFactory {
    Box::new(move || fresh(name))
}

/// Asserts the alert ended with exactly one active incident, resolved with close fields, and
/// every canceled duplicate merged into it.
fn assert_one_resolved_incident(app: &TestApp, round: usize) {
    let active = active_incidents_for(&app.servicenow, KEY);
    assert_eq!(active.len(), 1, "round {round}: {active:#?}");
    let winner = &active[0];
    assert_eq!(winner["state"], "6", "round {round}: {winner:#?}");
    assert_eq!(winner["close_code"], "Solution provided", "round {round}");
    assert!(
        winner["close_notes"]
            .as_str()
            .unwrap()
            .contains("Root cause: cache flag"),
        "round {round}: {winner:#?}"
    );
    assert_duplicates_lead_to(app, winner["number"].as_str().unwrap(), round);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_alert_created_and_resolved_at_once_ends_with_one_resolved_incident() {
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let app = TestApp::spawn()
            .await
            .with_settle_delay(settle_delay_of(round));
        app.servicenow.set_insert_time(INSERT_TIME, INSERT_JITTER);
        let (app, answers) = deliver_concurrently(
            app,
            vec![delivery("01-alert-created"), delivery("04-alert-resolved")],
        )
        .await;
        for answer in &answers {
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        }
        assert_one_resolved_incident(&app, round);
        if settle_delay_of(round) == DEFAULT_SETTLE_DELAY {
            // The resolve that found nothing looked again after the settle delay, found the
            // create's incident and resolved it: no duplicate was ever opened.
            assert_eq!(app.servicenow.incidents().len(), 1, "round {round}");
        }
    }
}

#[tokio::test]
async fn a_resolve_delivered_before_its_create_leaves_one_resolved_incident() {
    let app = TestApp::spawn().await;
    let resolved = app.send(fresh("04-alert-resolved")).await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body["action"], "created", "{}", resolved.text);
    // iLert redelivers the create after a 503 it met earlier.
    let created = app.send(fresh("01-alert-created")).await;
    assert_eq!(created.body["action"], "unchanged", "{}", created.text);
    assert_one_resolved_incident(&app, 0);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn a_resolve_of_an_alert_older_than_the_window_still_opens_nothing() {
    let app = TestApp::spawn().await;
    // The bundled sample was reported in 2025: far outside the default day.
    let old = app.deliver("04-alert-resolved").await;
    assert_eq!(old.body["action"], "ignored", "{}", old.text);
    let off = app
        .send(fresh_at(
            "04-alert-resolved",
            "create_resolved_within_hours=0",
        ))
        .await;
    assert_eq!(off.body["action"], "ignored", "{}", off.text);
    assert!(app.servicenow.incidents().is_empty());
}

/// Six first events of one alert, delivered at once to six environments, against inserts
/// that take their number before they commit: numbers do not tell which committed first.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn six_concurrent_first_events_with_numbers_taken_before_commit_end_on_one_incident() {
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let app = TestApp::spawn()
            .await
            .with_settle_delay(settle_delay_of(round));
        app.servicenow.set_insert_time(INSERT_TIME, INSERT_JITTER);
        let (app, answers) = deliver_concurrently(
            app,
            vec![
                delivery("01-alert-created"),
                delivery("02-alert-acknowledged"),
                delivery("01-alert-created"),
                delivery("03-alert-comment-added"),
                delivery("04-alert-resolved"),
                delivery("01-alert-created"),
            ],
        )
        .await;
        for answer in &answers {
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        }
        assert_one_resolved_incident(&app, round);
    }
}

/// The settle delay is waited only on evidence of a race (a resolve that finds nothing):
/// an ordinary create reads back at once, since the creator that commits last reads back
/// after every other insert committed and merges what it finds.
#[tokio::test]
async fn a_create_answers_without_waiting_the_settle_delay_and_still_reads_back() {
    let settle_delay = Duration::from_secs(3);
    let app = TestApp::spawn().await.with_settle_delay(settle_delay);
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    let took = started.elapsed();
    assert_eq!(answer.body["action"], "created", "{}", answer.text);
    assert!(
        took < settle_delay / 2,
        "a create waited a standing delay: answered after {took:?}"
    );
    assert_eq!(
        app.methods(),
        ["GET", "POST", "GET"],
        "a lookup, the create, and one read-back"
    );
}

/// The slower of two concurrent inserts takes the lower number and commits last, so the
/// faster one reads back only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_insert_holding_the_lower_number_is_merged_not_kept_twice() {
    let first = Arc::new(TestApp::spawn().await);
    let second = Arc::new(first.another_environment().await);
    first
        .servicenow
        .inject(Some("POST"), Fault::Delay(Duration::from_millis(800)));
    let slow = {
        let first = Arc::clone(&first);
        tokio::spawn(async move { first.send(fresh("01-alert-created")).await })
    };
    // The simulator's own signal that the slow insert took its number: its POST arrived.
    while !first.methods().iter().any(|method| method == "POST") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fast = second.send(fresh("02-alert-acknowledged")).await;
    assert_eq!(
        first.servicenow.faults_pending(),
        0,
        "the slow insert was slow"
    );
    let slow = slow.await.unwrap();
    assert_eq!(
        (slow.status, fast.status),
        (200, 200),
        "{} {}",
        slow.text,
        fast.text
    );

    let active = active_incidents_for(&first.servicenow, KEY);
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0]["number"], "INC0010001", "the lower number wins");
    assert_eq!(
        active[0]["state"], "2",
        "the accept is carried to the winner"
    );
    assert!(first
        .notes("INC0010001")
        .iter()
        .any(|note| note.contains("INC0010002")));
}

#[tokio::test]
async fn a_lookup_widened_by_an_unreadable_correlation_id_stops_and_creates_nothing() {
    let app = TestApp::spawn().await;
    for other in ["ilert:999", "ilert:1000", "ilert:1001"] {
        app.servicenow
            .insert(&[("correlation_id", other), ("state", "2")]);
    }
    app.servicenow.deny_read("correlation_id");
    for name in [
        "01-alert-created",
        "02-alert-acknowledged",
        "03-alert-comment-added",
    ] {
        let answer = app.deliver(name).await;
        assert_eq!(answer.status, 502, "{name}: {}", answer.text);
        let message = answer.body["message"].as_str().unwrap();
        assert!(
            message.contains("correlation_id") && message.contains("read"),
            "{message}"
        );
    }
    assert_eq!(app.servicenow.incidents().len(), 3, "nothing was created");
    assert!(!app.methods().iter().any(|m| m == "POST" || m == "PATCH"));
}

#[tokio::test]
async fn a_lookup_whose_term_the_instance_dropped_is_refused_too() {
    let app = TestApp::spawn().await;
    app.servicenow
        .insert(&[("correlation_id", "ilert:999"), ("state", "1")]);
    app.servicenow.hide_from_queries("correlation_id");
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

/// What iLert's URL field lets through raw, as API Gateway hands it over in `rawQueryString`.
#[tokio::test]
async fn settings_typed_raw_into_the_url_are_applied_exactly_as_written() {
    let app = TestApp::spawn().await;
    let mut event: HttpApiEvent = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/events/01-alert-created.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    event.raw_query_string = Some(
        r#"short_description="{priority}"|{summary}&assignment_group=<Network>&category=a\b^c`d"#
            .into(),
    );
    let answer =
        ilert_servicenow::startup::answer_http(&app.handler, event, Context::default()).await;
    assert_eq!(answer.status_code, 200, "{}", answer.body);
    let incident = app.incident();
    assert_eq!(
        incident["short_description"],
        r#""HIGH"|PROBLEM: api-gateway-prod p95 latency > 2s"#
    );
    assert_eq!(incident["assignment_group"], "<Network>");
    assert_eq!(incident["category"], r"a\b^c`d");
}

#[tokio::test]
async fn a_url_query_that_cannot_be_read_is_a_400_naming_it_not_ignored() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(event_at("01-alert-created", "assignment_group=Net%FFwork"))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.body["error"], "invalid_setting");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("assignment_group"),
        "{}",
        answer.text
    );
    assert!(app.servicenow.requests().is_empty());
}

#[tokio::test]
async fn an_unknown_priority_is_treated_as_absent_and_the_alert_still_reaches_servicenow() {
    let app = TestApp::spawn().await;
    for (alert_id, priority) in [("501", "MEDIUM"), ("502", "P1")] {
        let mut body = body_of("01-alert-created");
        body["id"] = json!(alert_id);
        body["priority"] = json!(priority);
        let answer = app
            .send(with_body(event("01-alert-created"), body.to_string()))
            .await;
        assert_eq!(answer.status, 200, "{priority}: {}", answer.text);
        assert_eq!(answer.body["action"], "created");
        let incident = app
            .servicenow
            .incident_for(&format!("ilert:{alert_id}"))
            .unwrap();
        // As with no priority at all: the LOW pair.
        assert_eq!(
            (&incident["impact"], &incident["urgency"]),
            (&json!("3"), &json!("2"))
        );
    }
}

#[tokio::test]
async fn a_caller_who_has_not_authenticated_learns_nothing_about_a_missing_secret() {
    let app = TestApp::spawn().await;
    let handler = handler_reading(
        &app.secrets,
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:ilert/missing-AbCdEf",
        Default::default(),
    );
    let reads_before = app.secrets.reads();
    for authorization in [
        None,
        Some("Bearer guess"),
        Some("Bearer change-me-webhook-token"),
    ] {
        for _ in 0..10 {
            let request = with_authorization(event("01-alert-created"), authorization);
            let response = handler.handle(request, None).await;
            assert_eq!(response.status(), 500);
            let body = response.body();
            for leak in [
                "123456789012",
                "arn:",
                "ilert/missing",
                "ResourceNotFound",
                "Secrets Manager can't",
            ] {
                assert!(!body.contains(leak), "{leak} in {body}");
            }
            assert!(body.contains("log"), "points to the function's log: {body}");
        }
    }
    assert!(
        app.secrets.reads() - reads_before <= 2,
        "a failed read is remembered: {} reads for 30 calls",
        app.secrets.reads() - reads_before
    );
}

#[tokio::test]
async fn a_servicenow_500_is_retried_a_few_times_then_refused() {
    let app = TestApp::spawn().await;
    app.servicenow
        .inject(Some("POST"), Fault::status(500, None));
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.body["action"], "created", "{}", answer.text);
    assert_eq!(app.servicenow.incidents().len(), 1);

    // Three 500s and no more: a fourth try would succeed, so a 502 proves the bound.
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.servicenow
            .inject(Some("POST"), Fault::status(500, None));
    }
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let posts = app.methods().iter().filter(|m| *m == "POST").count();
    assert_eq!(posts, 3, "a bounded number of tries");
}

#[tokio::test]
async fn an_intermittent_api_acl_refusal_is_retried_once_and_a_data_policy_never() {
    let app = TestApp::spawn().await;
    app.servicenow
        .inject(Some("POST"), Fault::failed_api_acl_validation());
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.body["action"], "created", "{}", answer.text);

    let app = TestApp::spawn().await;
    for _ in 0..2 {
        app.servicenow
            .inject(Some("POST"), Fault::failed_api_acl_validation());
    }
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let posts = app.methods().iter().filter(|m| *m == "POST").count();
    assert_eq!(posts, 2, "retried once");
}

#[tokio::test]
async fn an_accept_whose_assignment_is_refused_still_lands_and_says_why() {
    let app = TestApp::spawn().await;
    let jane = app
        .servicenow
        .add_user("jane.doe", "jane.doe@example.com", "Jane Doe");
    app.servicenow.add_group("Network", &["someone-else"]);
    let query = "assignment_group=Network&assign_on_accept=true";
    app.send(event_at("01-alert-created", query)).await;
    let answer = app.send(event_at("02-alert-acknowledged", query)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "updated");
    let incident = app.incident();
    assert_eq!(incident["state"], "2", "the accept landed");
    assert_ne!(incident["assigned_to"], jane.as_str());
    let notes = app.notes(incident["number"].as_str().unwrap());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Accepted in iLert by Jane Doe")
                && n.contains("not a member of the Assignment group")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn by_default_the_answer_comes_within_five_seconds_even_from_a_hanging_instance() {
    let app = TestApp::spawn().await;
    app.servicenow.set_latency("GET", Duration::from_secs(30));
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(took < Duration::from_millis(5_300), "{took:?}");
    assert!(
        app.servicenow.requests().len() >= 2,
        "a request that hangs is cut off inside the budget and tried again"
    );
}

/// An instance whose business rules make an insert take longer than a read may: the create
/// is waited for, inside the budget, and never sent a second time while its fate is unknown.
#[tokio::test]
async fn an_insert_slower_than_a_reads_timeout_is_waited_for_and_sent_once() {
    for insert in [Duration::from_millis(3_500), Duration::from_millis(4_500)] {
        let app = TestApp::spawn().await;
        app.servicenow.set_insert_time(insert, Duration::ZERO);
        let answer = app.deliver("01-alert-created").await;
        assert_eq!(answer.status, 200, "insert {insert:?}: {}", answer.text);
        assert_eq!(answer.body["action"], "created");
        let posts = app.methods().iter().filter(|m| *m == "POST").count();
        assert_eq!(posts, 1, "insert {insert:?}: one create sent");
        assert_eq!(app.servicenow.incidents().len(), 1, "insert {insert:?}");
    }
}

/// An insert slower than the whole budget: its answer never comes in time, so its fate is
/// unknown; the function answers 503 rather than create again, and the redelivery finds it.
#[tokio::test]
async fn an_insert_slower_than_the_budget_is_a_503_and_its_redelivery_finds_it() {
    let app = TestApp::spawn().await;
    app.servicenow
        .set_insert_time(Duration::from_millis(6_500), Duration::ZERO);
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    let posts = app.methods().iter().filter(|m| *m == "POST").count();
    assert_eq!(
        posts, 1,
        "no second create while the first may be committing"
    );
    // The simulator's own signal: the insert has committed.
    let committed = Instant::now();
    while app.servicenow.incidents().is_empty() {
        assert!(
            committed.elapsed() < Duration::from_secs(10),
            "the insert never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.servicenow
        .set_insert_time(Duration::ZERO, Duration::ZERO);
    let redelivered = app.deliver("01-alert-created").await;
    assert_eq!(redelivered.status, 200, "{}", redelivered.text);
    assert_eq!(redelivered.body["action"], "unchanged");
    assert_eq!(app.servicenow.incidents().len(), 1);
}

/// The alert's `n`th comment, as iLert sends it.
fn comment(n: usize) -> ilert_servicenow::flow::edge::WebhookRequest {
    let mut body = body_of("03-alert-comment-added");
    body["eventId"] = serde_json::json!(format!("comment-{n}"));
    body["comment"] = serde_json::json!(format!("Comment number {n}."));
    with_body(event("03-alert-comment-added"), body.to_string())
}

/// Every request at the same moment, each through an execution environment of its own.
async fn all_at_once(
    app: &TestApp,
    requests: Vec<ilert_servicenow::flow::edge::WebhookRequest>,
) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for request in requests {
        let environment = app.another_environment().await;
        tasks.spawn(async move { environment.send(request).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}

/// Four comments of one alert delivered at once, then each again: concurrent writers of the
/// notes' memory must not erase each other's fingerprints, or the redeliveries note again.
#[tokio::test]
async fn comments_arriving_together_are_each_noted_once() {
    for round in 0..3 {
        let app = TestApp::spawn().await;
        let number = app.open_bundled_incident().await;
        app.servicenow.set_latency("GET", Duration::from_millis(20));
        app.servicenow
            .set_latency("PATCH", Duration::from_millis(150));
        let together = all_at_once(&app, (0..4).map(comment).collect()).await;
        for answer in &together {
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        }
        let again = all_at_once(&app, (0..4).map(comment).collect()).await;
        for answer in &again {
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        }
        let notes = app.notes(&number);
        for n in 0..4 {
            let noted = notes
                .iter()
                .filter(|note| note.contains(&format!("Comment number {n}.")))
                .count();
            assert_eq!(noted, 1, "round {round}: comment {n} in {notes:#?}");
        }
    }
}
