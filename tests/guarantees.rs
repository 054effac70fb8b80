//! Delivery guarantees on the worst days: throttling, slow or sleeping instances, lost answers,
//! concurrent deliveries, out-of-order events, rotated passwords, Secrets Manager trouble.
//! Each ends with exactly one incident per alert, in the right state, and a truthful answer.

mod support;

use serde_json::json;
use simulator::Fault;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after_and_the_event_lands() {
    let app = TestApp::spawn().await;
    app.servicenow
        .inject(Some("POST"), Fault::status(429, Some(1)));
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "created");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(app.methods(), ["GET", "POST", "GET", "POST", "GET"]);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

/// A rate-limit rule's 429 is the instance's word for the whole integration user, not for
/// one request: a second alert's event arriving during the wait waits it out too, instead
/// of being refused in its turn (and the instance's time spent on it).
#[tokio::test]
async fn a_429s_wait_holds_every_request_to_the_instance_not_only_the_refused_one() {
    let app = TestApp::spawn().await;
    app.servicenow
        .inject(Some("GET"), Fault::status(429, Some(1)));
    let first = app.deliver("01-alert-created");
    let second = async {
        // Once the first event's lookup has been refused.
        while app.servicenow.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut body = body_of("01-alert-created");
        body["id"] = json!("4000001");
        let started = Instant::now();
        let answer = app
            .send(with_body(event("01-alert-created"), body.to_string()))
            .await;
        (answer, started.elapsed())
    };
    let (first, (second, second_took)) = futures_util::future::join(first, second).await;
    assert_eq!(first.body["action"], "created", "{}", first.text);
    assert_eq!(second.body["action"], "created", "{}", second.text);
    assert!(
        second_took >= Duration::from_millis(700),
        "the second alert's event waited out the first one's Retry-After: {second_took:?}"
    );
    assert_eq!(app.servicenow.incidents().len(), 2);
}

#[tokio::test]
async fn gateway_errors_are_retried() {
    let app = TestApp::spawn().await;
    for status in [502, 503, 504] {
        app.servicenow.inject(None, Fault::status(status, None));
    }
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.body["action"], "created", "{}", answer.text);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn when_the_budget_runs_out_the_answer_is_503_with_retry_after_and_nothing_is_written() {
    let app = TestApp::spawn()
        .await
        .with_time_budget(Duration::from_millis(1500));
    app.servicenow
        .inject(Some("GET"), Fault::status(429, Some(30)));
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no pointless wait"
    );
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.retry_after.as_deref(), Some("30"));
    assert!(answer.body["message"].as_str().unwrap().contains("429"));
    // The next event within those 30 s is not sent to the instance at all.
    app.servicenow.clear_requests();
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    let asked: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((28..=30).contains(&asked), "the rest of the wait: {asked}");
    assert!(app.servicenow.requests().is_empty(), "nothing sent");

    let app = TestApp::spawn()
        .await
        .with_time_budget(Duration::from_millis(1500));
    for _ in 0..100 {
        app.servicenow.inject(None, Fault::status(503, None));
    }
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1700), "{elapsed:?}");
    assert_eq!(answer.status, 503);
    assert!(answer.retry_after.is_some());
    assert!(app.servicenow.incidents().is_empty());
    // An instance down for longer than the budget: more faults than attempts, on purpose.
    assert!(app.servicenow.faults_pending() < 100, "it was tried");
    app.servicenow.clear_faults();
}

#[tokio::test]
async fn a_slow_instance_is_cut_off_at_the_budget_with_a_503() {
    let app = TestApp::spawn()
        .await
        .with_time_budget(Duration::from_secs(1));
    app.servicenow.set_latency("GET", Duration::from_secs(5));
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    assert!(started.elapsed() < Duration::from_millis(1300));
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("within the time budget"));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for (status, method) in [(400, "POST"), (403, "POST"), (404, "GET")] {
        let app = TestApp::spawn().await;
        app.servicenow
            .inject(Some(method), Fault::status(status, None));
        let answer = app.deliver("01-alert-created").await;
        assert_eq!(answer.status, 502, "{status}: {}", answer.text);
        let tries = app.methods().iter().filter(|m| *m == method).count();
        assert_eq!(tries, 1, "{status} on {method} is not retried");
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_created_again() {
    let app = TestApp::spawn().await;
    app.servicenow.inject(Some("POST"), Fault::CutAfterApplying);
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "created", "the event did create it");
    assert_eq!(app.servicenow.incidents().len(), 1);
    assert_eq!(
        app.methods(),
        ["GET", "POST", "GET"],
        "looked up, not re-posted"
    );
    assert_eq!(answer.body["incident"]["number"], app.incident()["number"]);
}

/// A cut connection looks the same whether the instance applied the create or not, and a
/// create may commit after its connection is gone: it is not sent twice in one invocation.
/// The answer is a 503, and the redelivery's lookup decides.
#[tokio::test]
async fn a_create_cut_before_it_was_applied_is_a_503_and_its_redelivery_creates_it() {
    let app = TestApp::spawn().await;
    app.servicenow
        .inject(Some("POST"), Fault::CutBeforeApplying);
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(app.servicenow.faults_pending(), 0, "the cut was met");
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(
        app.methods().iter().filter(|m| *m == "POST").count(),
        1,
        "no second create while the first one's fate is unknown"
    );
    assert!(app.servicenow.incidents().is_empty());
    let redelivered = app.deliver("01-alert-created").await;
    assert_eq!(
        redelivered.body["action"], "created",
        "{}",
        redelivered.text
    );
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn an_update_whose_answer_was_lost_does_not_add_its_note_twice() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    app.servicenow
        .inject(Some("PATCH"), Fault::CutAfterApplying);
    let answer = app.deliver("03-alert-comment-added").await;
    assert_eq!(answer.body["action"], "updated", "{}", answer.text);
    let number = app.incident()["number"].as_str().unwrap().to_owned();
    let comments: Vec<String> = app
        .notes(&number)
        .into_iter()
        .filter(|n| n.contains("Rolled back deploy"))
        .collect();
    assert_eq!(comments.len(), 1, "{comments:?}");
}

#[tokio::test]
async fn ilerts_redelivery_after_a_503_never_duplicates() {
    let app = TestApp::spawn()
        .await
        .with_time_budget(Duration::from_millis(800));
    // The lookups (incident, then the caller) pass, the create lands but its answer is lost,
    // then the instance stays unavailable until the budget runs out: iLert hears 503 and
    // delivers again later.
    for _ in 0..2 {
        app.servicenow
            .inject(Some("GET"), Fault::Delay(Duration::ZERO));
    }
    app.servicenow.inject(Some("POST"), Fault::CutAfterApplying);
    for _ in 0..15 {
        app.servicenow.inject(Some("GET"), Fault::status(503, None));
    }
    let first = app.deliver("01-alert-created").await;
    assert_eq!(first.status, 503, "{}", first.text);
    assert_eq!(app.servicenow.incidents().len(), 1, "the create did land");

    // iLert delivers again until the instance has recovered.
    let mut redeliveries = 0;
    while app.deliver("01-alert-created").await.status == 503 {
        redeliveries += 1;
        assert!(redeliveries < 30, "the instance recovers");
    }
    let again = app.deliver("01-alert-created").await;
    assert_eq!(again.body["action"], "unchanged");
    assert_eq!(app.servicenow.incidents().len(), 1);
}

/// Several Lambda environments receive events of one alert at the same moment (a retry while
/// the first is still running; created and acknowledged a few ms apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_alert_end_with_one_active_incident_carrying_every_effect() {
    const ROUNDS: usize = 25;
    let mut races_seen = 0;
    for round in 0..ROUNDS {
        let first = TestApp::spawn().await;
        first
            .servicenow
            .set_latency("GET", Duration::from_millis(5));
        // Numbers are taken on arrival, before a slow and jittered insert commits.
        first
            .servicenow
            .set_insert_time(Duration::from_millis(20), Duration::from_millis(200));
        first
            .servicenow
            .set_latency("PATCH", Duration::from_millis(10));
        // Four environments, each with its own secret cache and HTTP client.
        let deliveries = [
            "01-alert-created",
            "02-alert-acknowledged",
            "03-alert-comment-added",
            "01-alert-created",
        ];
        let mut environments = vec![Arc::new(first)];
        for _ in 1..deliveries.len() {
            environments.push(Arc::new(environments[0].another_environment().await));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (environment, name) in environments.iter().zip(deliveries) {
            let environment = Arc::clone(environment);
            tasks.spawn(async move { environment.deliver(name).await });
        }
        while let Some(answer) = tasks.join_next().await {
            let answer = answer.unwrap();
            assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        }

        let servicenow = &environments[0].servicenow;
        let active = active_incidents_for(servicenow, KEY);
        assert_eq!(active.len(), 1, "round {round}: {active:#?}");
        let winner = &active[0];
        assert_eq!(
            winner["state"], "2",
            "round {round}: the accept is on the winner"
        );
        let number = winner["number"].as_str().unwrap();
        let canceled = assert_duplicates_lead_to(&environments[0], number, round);
        // A comment that opened a duplicate stays in that duplicate's notes, which cannot be
        // read back to copy; the winner names the duplicate instead.
        let noted_on = |number: &str| {
            environments[0]
                .notes(number)
                .iter()
                .any(|n| n.contains("Rolled back deploy"))
        };
        assert!(
            noted_on(number) || canceled.iter().any(|c| noted_on(c)),
            "round {round}: the comment is on the winner or a duplicate it names"
        );
        races_seen += canceled.len();
    }
    assert!(races_seen > 0, "the latency made creation races happen");
}

#[tokio::test]
async fn events_out_of_order_converge_on_the_same_incident() {
    let app = TestApp::spawn().await;
    for name in [
        "02-alert-acknowledged",
        "03-alert-comment-added",
        "01-alert-created",
        "04-alert-resolved",
        "02-alert-acknowledged",
        "01-alert-created",
    ] {
        assert_eq!(app.deliver(name).await.status, 200, "{name}");
    }
    let incident = app.incident();
    assert_eq!(incident["state"], "6");
    assert_eq!(
        incident["short_description"],
        "RESOLVED PROBLEM: api-gateway-prod p95 latency > 2s"
    );
    assert_eq!(app.servicenow.incidents().len(), 1);
}

#[tokio::test]
async fn a_password_rotated_in_secrets_manager_is_picked_up_by_a_warm_function() {
    let app = TestApp::spawn().await;
    assert_eq!(app.deliver("01-alert-created").await.status, 200);
    assert_eq!(app.secrets.reads(), 1);

    app.servicenow.set_password(SN_USER, "rotated-Pa55");
    app.put_password_in_secret("rotated-Pa55");
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "updated");
    assert_eq!(
        app.secrets.reads(),
        2,
        "read again once, bypassing the cache"
    );
    assert_eq!(app.deliver("03-alert-comment-added").await.status, 200);
    assert_eq!(app.secrets.reads(), 2, "then cached again");
}

#[tokio::test]
async fn a_wrong_password_still_in_the_secret_is_a_502_after_one_fresh_read() {
    let app = TestApp::spawn().await;
    app.servicenow
        .set_password(SN_USER, "changed-on-the-instance-only");
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(answer.body["message"].as_str().unwrap().contains("401"));
    assert_eq!(app.secrets.reads(), 2);
    assert_eq!(
        app.methods(),
        ["GET"],
        "no pointless retry with the same password"
    );
    assert!(!answer.text.contains(SN_PASSWORD));
}

#[tokio::test]
async fn secrets_manager_throttling_is_retried() {
    let app = TestApp::spawn().await;
    app.secrets.fail_next(400, "ThrottlingException");
    app.secrets.fail_next(500, "InternalServiceError");
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.secrets.reads(), 3);
}

#[tokio::test]
async fn secrets_manager_failing_until_the_budget_runs_out_is_a_503() {
    let app = TestApp::spawn()
        .await
        .with_time_budget(Duration::from_secs(1));
    for _ in 0..20 {
        app.secrets.fail_next(500, "InternalServiceError");
    }
    let started = Instant::now();
    let answer = app.deliver("01-alert-created").await;
    assert!(started.elapsed() < Duration::from_millis(1300));
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.retry_after.is_some());
    assert!(app.servicenow.requests().is_empty());
    // Down for longer than the budget: more failures than reads, on purpose.
    assert!(app.secrets.failures_pending() < 20, "it was asked");
    app.secrets.clear_failures();
}

#[tokio::test]
async fn secrets_manager_access_denied_is_a_500_that_is_not_retried_and_names_nothing() {
    let app = TestApp::spawn().await;
    app.secrets.fail_next(400, "AccessDeniedException");
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 500, "{}", answer.text);
    // The cause is in the log (tests/logging.rs), not in the answer.
    assert!(!answer.text.contains("AccessDenied") && !answer.text.contains(SECRET_ID));
    assert_eq!(app.secrets.reads(), 1, "not retried");
}

/// A lost answer on an instance that commits slowly: the create commits after a second and a
/// half, then its connection is cut. It is found by a lookup, never sent again, and the event
/// is answered as what it did.
#[tokio::test]
async fn a_slow_create_whose_answer_was_lost_is_found_not_sent_again() {
    let app = TestApp::spawn().await;
    app.servicenow
        .set_insert_time(Duration::from_millis(1_500), Duration::from_millis(200));
    app.servicenow.inject(Some("POST"), Fault::CutAfterApplying);
    let answer = app.deliver("01-alert-created").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "created");
    assert_eq!(app.methods().iter().filter(|m| *m == "POST").count(), 1);
    assert_eq!(app.servicenow.incidents().len(), 1);
}

/// The same with an update: the accept's write commits slowly and its answer is lost; the
/// retry reads first, finds it applied, and adds no second note.
#[tokio::test]
async fn a_slow_update_whose_answer_was_lost_adds_no_second_note() {
    let app = TestApp::spawn().await;
    let number = app.open_bundled_incident().await;
    app.servicenow
        .set_latency("PATCH", Duration::from_millis(1_200));
    app.servicenow
        .inject(Some("PATCH"), Fault::CutAfterApplying);
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["action"], "updated");
    assert_eq!(
        app.notes(&number),
        ["work_notes: Accepted in iLert by Jane Doe."]
    );
}

/// A secret that cannot be read is answered the same wherever it is read: at the door, or read
/// again after ServiceNow refused the cached password.
#[tokio::test]
async fn a_secret_unreadable_on_its_fresh_read_is_answered_as_at_the_door() {
    let app = TestApp::spawn().await;
    assert_eq!(app.deliver("01-alert-created").await.status, 200);
    app.servicenow.set_password(SN_USER, "rotated-Pa55");
    app.secrets.fail_next(400, "AccessDeniedException");
    let answer = app.deliver("02-alert-acknowledged").await;
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert_eq!(answer.body["error"], "misconfigured");
    assert_eq!(
        answer.body["message"],
        "the function cannot read its configuration; its log says why"
    );
    assert!(!answer.text.contains("AccessDenied") && !answer.text.contains(SECRET_ID));
}
