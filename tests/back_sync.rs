//! The way back, ServiceNow → iLert: the real handler's scheduled pass and push, against the
//! ServiceNow simulator (with service-desk edits made as another user, as a real instance
//! records them) and the iLert API stand-in (forward-only lifecycle, `KEY_ERROR`, 429 without
//! `Retry-After`, echoes of its own API actions).

mod support;

use http::header;
use ilert_servicenow::flow::telemetry::Metrics;
use serde_json::{json, Value};
use simulator::{ILertFault, ILertSimulator, ServiceNowSimulator};
use std::time::{Duration, Instant};
use support::*;

const DESK: &str = "jane.desk";

struct BackSyncApp {
    app: TestApp,
    ilert: ILertSimulator,
}

/// Every fault injected into iLert was met, as into ServiceNow (`support::FaultsMet`).
impl Drop for BackSyncApp {
    fn drop(&mut self) {
        let pending = self.ilert.faults_pending();
        if pending > 0 && !std::thread::panicking() {
            panic!("{pending} fault(s) injected into iLert were never met by a request");
        }
    }
}

impl BackSyncApp {
    async fn spawn() -> Self {
        Self::spawn_measured(Metrics::Off).await
    }

    /// With its metrics written where the test can read them.
    async fn spawn_measured(metrics: Metrics) -> Self {
        let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
        let app = TestApp::spawn_both_ways(&ilert).await.with_metrics(metrics);
        Self { app, ilert }
    }

    fn servicenow(&self) -> &ServiceNowSimulator {
        &self.app.servicenow
    }

    /// An alert, PENDING in iLert, and its incident, opened by the function from the
    /// alert's first event. Returns the incident's number.
    async fn open(&self, alert_id: u64) -> String {
        self.ilert.add_alert(alert_id, "PENDING");
        let mut body = body_of("01-alert-created");
        body["id"] = json!(alert_id.to_string());
        body["eventId"] = json!(format!("created-{alert_id}"));
        let answer = self
            .app
            .send(with_body(event("01-alert-created"), body.to_string()))
            .await;
        assert_eq!(answer.body["action"], "created", "{}", answer.text);
        answer.body["incident"]["number"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An incident of `alert_id` as someone else made it, whatever the function answers.
    async fn open_unchecked(&self, alert_id: u64) -> String {
        self.ilert.add_alert(alert_id, "PENDING");
        let key = format!("ilert:{alert_id}");
        self.servicenow().insert(&[
            ("correlation_id", &key),
            ("correlation_display", "iLert"),
            ("sys_created_by", SN_USER),
            ("short_description", "PENDING Host is DOWN"),
            ("state", "1"),
        ])
    }

    /// What the service desk does in ServiceNow's form.
    fn desk_sets(&self, number: &str, state: &str) {
        let mut fields = vec![("state", state)];
        if matches!(state, "6" | "7") {
            fields.extend([
                ("close_code", "Solution provided"),
                ("close_notes", "Fixed by the service desk."),
            ]);
        }
        self.servicenow().desk_edit(number, DESK, &fields).unwrap();
    }

    /// One scheduled pass, as Lambda runs it: a deadline `seconds` away.
    async fn pass_within(&self, seconds: u64) -> ilert_servicenow::flow::back_sync::PassReport {
        let deadline_ms = ilert_servicenow::flow::budget::epoch_ms() + seconds * 1000;
        self.app.handler.back_sync_pass(Some(deadline_ms)).await
    }

    async fn pass(&self) -> ilert_servicenow::flow::back_sync::PassReport {
        self.pass_within(20).await
    }

    async fn push(&self, sys_id: &str, authorization: Option<&str>) -> Answer {
        self.push_body(json!({ "sys_id": sys_id }).to_string(), authorization)
            .await
    }

    async fn push_body(&self, body: String, authorization: Option<&str>) -> Answer {
        let mut request = with_authorization(event("01-alert-created"), authorization);
        *request.uri_mut() = "/servicenow".parse().unwrap();
        self.app.send(with_body(request, body)).await
    }

    fn incident(&self, number: &str) -> serde_json::Map<String, Value> {
        self.servicenow().incident_by_number(number).unwrap()
    }

    fn sys_id(&self, number: &str) -> String {
        self.incident(number)["sys_id"].as_str().unwrap().to_owned()
    }

    /// Delivers every echo iLert sent since the last call through the webhook, as iLert
    /// would; returns the answers.
    async fn deliver_echoes(&self) -> Vec<Answer> {
        let mut answers = Vec::new();
        for echo in self.ilert.take_echoes() {
            answers.push(
                self.app
                    .send(with_body(event("02-alert-acknowledged"), echo.to_string()))
                    .await,
            );
        }
        answers
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn ilert_calls(ilert: &ILertSimulator) -> Vec<String> {
    ilert
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn each_desk_state_reaches_the_alert_as_the_mapping_says() {
    let app = BackSyncApp::spawn().await;
    let rows = [
        (1001, "2", "ACCEPTED"),
        (1002, "6", "RESOLVED"),
        (1003, "7", "RESOLVED"),
        (1004, "8", "RESOLVED"),
        (1005, "1", "PENDING"),
        (1006, "3", "PENDING"),
    ];
    let mut numbers = Vec::new();
    for (alert, _, _) in rows {
        numbers.push(app.open(alert).await);
    }
    // New → In Progress first for the rows that stay open, so that each was changed.
    app.desk_sets(&numbers[4], "2");
    app.desk_sets(&numbers[4], "1");
    app.desk_sets(&numbers[5], "3");
    for ((_, state, _), number) in rows.iter().zip(&numbers).take(4) {
        app.desk_sets(number, state);
    }

    let report = app.pass().await;

    for ((alert, state, wanted), number) in rows.iter().zip(&numbers) {
        assert_eq!(
            app.ilert.alert_status(*alert).as_deref(),
            Some(*wanted),
            "incident {number} in state {state}"
        );
    }
    assert_eq!((report.accepted, report.resolved), (1, 3), "{report:?}");
    assert_eq!(report.failure, None);
    assert_eq!(app.ilert.redundant_actions(), 0, "only real transitions");
    assert!(
        !ilert_calls(&app.ilert)
            .iter()
            .any(|c| c.contains("/1005") || c.contains("/1006")),
        "New and On Hold ask iLert nothing: {:?}",
        ilert_calls(&app.ilert)
    );
    assert_eq!(
        app.app.methods().iter().filter(|m| *m == "PATCH").count(),
        0,
        "the way back writes nothing to ServiceNow"
    );
}

#[tokio::test]
async fn an_alert_already_further_along_is_left_alone_and_a_second_pass_sends_nothing() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(2001).await;
    let other = app.open(2002).await;
    // Resolved in iLert while the webhook's event was lost; the desk takes the ticket.
    app.ilert.add_alert(2001, "RESOLVED");
    app.desk_sets(&number, "2");
    app.desk_sets(&other, "2");

    let first = app.pass().await;
    assert_eq!((first.behind, first.accepted), (1, 1), "{first:?}");
    assert_eq!(app.ilert.alert_status(2001).as_deref(), Some("RESOLVED"));
    assert_eq!(app.ilert.alert_status(2002).as_deref(), Some("ACCEPTED"));
    assert!(
        !ilert_calls(&app.ilert).iter().any(|c| c.contains("/2001")),
        "an alert no longer open is not even asked about: {:?}",
        ilert_calls(&app.ilert)
    );

    app.ilert.clear_requests();
    app.servicenow().clear_requests();
    let second = app.pass().await;
    assert_eq!((second.behind, &second.failure), (0, &None), "{second:?}");
    assert_eq!(
        ilert_calls(&app.ilert),
        ["GET /api/alerts"],
        "a second pass reads the open alerts and sends nothing"
    );
    assert_eq!(
        app.app.methods(),
        ["GET"],
        "and writes nothing to ServiceNow"
    );
    assert_eq!(app.ilert.redundant_actions(), 0);
}

#[tokio::test]
async fn the_functions_own_writes_never_trigger_a_back_sync() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(3001).await;
    // iLert's own accept and resolve reach the incident through the webhook: the incident
    // moves to In Progress and Resolved, written by the integration user.
    let mut accepted = body_of("02-alert-acknowledged");
    accepted["id"] = json!("3001");
    app.app
        .send(with_body(
            event("02-alert-acknowledged"),
            accepted.to_string(),
        ))
        .await;
    assert_eq!(app.incident(&number)["state"], "2");
    app.ilert.add_alert(3001, "ACCEPTED");
    assert_eq!(app.pass().await.behind, 0);

    let mut resolved = body_of("04-alert-resolved");
    resolved["id"] = json!("3001");
    app.app
        .send(with_body(event("04-alert-resolved"), resolved.to_string()))
        .await;
    assert_eq!(app.incident(&number)["state"], "6");
    app.ilert.add_alert(3001, "RESOLVED");
    let report = app.pass().await;
    assert_eq!(report.behind, 0, "{report:?}");
    assert!(
        !ilert_calls(&app.ilert).iter().any(|c| c.starts_with("PUT")),
        "{:?}",
        ilert_calls(&app.ilert)
    );
}

#[tokio::test]
async fn a_desk_change_is_not_lost_when_the_functions_own_write_follows_it() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(4001).await;
    app.desk_sets(&number, "6");
    // A second later, a comment in iLert is noted on the incident: the integration user is
    // now its last updater, and the desk's change is no longer the last.
    let mut comment = body_of("03-alert-comment-added");
    comment["id"] = json!("4001");
    comment["status"] = json!("PENDING");
    let noted = app
        .app
        .send(with_body(
            event("03-alert-comment-added"),
            comment.to_string(),
        ))
        .await;
    assert_eq!(noted.body["action"], "updated", "{}", noted.text);
    assert_eq!(app.incident(&number)["sys_updated_by"], SN_USER);

    let report = app.pass().await;

    assert_eq!(report.resolved, 1, "{report:?}");
    assert_eq!(app.ilert.alert_status(4001).as_deref(), Some("RESOLVED"));
}

#[tokio::test]
async fn ilerts_echo_of_the_back_syncs_accept_and_resolve_writes_nothing() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(5001).await;
    let notes_before = app.app.notes(&number);
    app.desk_sets(&number, "2");
    app.pass().await;
    assert_eq!(app.ilert.alert_status(5001).as_deref(), Some("ACCEPTED"));

    app.servicenow().clear_requests();
    let answers = app.deliver_echoes().await;
    assert_eq!(answers.len(), 1, "iLert echoed its accept");
    assert_eq!(answers[0].status, 200, "{}", answers[0].text);
    assert_eq!(
        answers[0].body["action"], "unchanged",
        "{}",
        answers[0].text
    );
    assert!(answers[0].body["reason"].as_str().unwrap().contains("echo"));

    app.desk_sets(&number, "6");
    app.pass().await;
    assert_eq!(app.ilert.alert_status(5001).as_deref(), Some("RESOLVED"));
    let answers = app.deliver_echoes().await;
    assert_eq!(answers.len(), 1, "iLert echoed its resolve");
    assert_eq!(
        answers[0].body["action"], "unchanged",
        "{}",
        answers[0].text
    );

    let writes: Vec<_> = app
        .servicenow()
        .incident_requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "nothing was written: {writes:?}");
    assert_eq!(
        app.app.notes(&number),
        notes_before,
        "no \"Accepted in iLert by ServiceNow Sync\" note"
    );
    assert_eq!(
        app.incident(&number)["state"],
        "6",
        "the desk's state stands"
    );
    let last = app.pass().await;
    assert_eq!(
        (last.behind, last.open_alerts),
        (0, 0),
        "and nothing loops: {last:?}"
    );
}

#[tokio::test]
async fn a_pass_cut_short_leaves_the_rest_to_the_next_which_finishes_without_acting_twice() {
    let app = BackSyncApp::spawn().await;
    let mut numbers = Vec::new();
    for alert in 6001..6009 {
        numbers.push(app.open(alert).await);
    }
    for number in &numbers {
        app.desk_sets(number, "6");
    }
    // iLert is slow today, and one resolve's answer is lost after it was applied.
    app.ilert.set_latency(Duration::from_millis(400));
    app.ilert.inject(Some("PUT"), ILertFault::CutAfterApplying);

    let first = app.pass_within(3).await;
    let resolved_first = (6001..6009)
        .filter(|id| app.ilert.alert_status(*id).as_deref() == Some("RESOLVED"))
        .count();
    assert!(
        first.deferred > 0 && resolved_first < 8,
        "the deadline cut the pass short: {first:?}"
    );
    assert_eq!(app.ilert.faults_pending(), 0, "the lost answer was met");

    app.ilert.set_latency(Duration::ZERO);
    let second = app.pass().await;
    assert_eq!(second.failure, None, "{second:?}");
    for id in 6001..6009 {
        assert_eq!(
            app.ilert.alert_status(id).as_deref(),
            Some("RESOLVED"),
            "{id}"
        );
    }
    assert_eq!(app.ilert.redundant_actions(), 0, "no alert resolved twice");
    assert_eq!(app.pass().await.behind, 0);
}

#[tokio::test]
async fn a_429_is_left_for_the_next_pass_which_recovers() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(7001).await;
    app.desk_sets(&number, "2");
    app.ilert.inject(None, ILertFault::Status(429));

    let throttled = app.pass_within(5).await;
    assert_eq!(app.ilert.faults_pending(), 0);
    assert_eq!(
        throttled.failure.as_ref().map(|f| f.kind()),
        Some("ilert_unavailable"),
        "{throttled:?}"
    );
    assert_eq!(app.ilert.alert_status(7001).as_deref(), Some("PENDING"));

    let recovered = app.pass().await;
    assert_eq!(recovered.accepted, 1, "{recovered:?}");
    assert_eq!(app.ilert.alert_status(7001).as_deref(), Some("ACCEPTED"));
}

#[tokio::test]
async fn a_refused_key_stops_the_pass_says_what_to_do_and_never_blocks_the_webhook() {
    let app = BackSyncApp::spawn().await;
    let first = app.open(8001).await;
    let second = app.open(8002).await;
    app.desk_sets(&first, "6");
    app.desk_sets(&second, "6");
    app.ilert.revoke_key();

    let logs = logs_of(|| async {
        let report = app.pass().await;
        assert_eq!(
            report.failure.as_ref().map(|f| f.kind()),
            Some("ilert_key_refused"),
            "{report:?}"
        );
        assert!(report
            .failure
            .unwrap()
            .to_string()
            .contains("secret --ilert-api-key"));
    })
    .await;
    assert!(
        logs.text().contains("the back-sync cannot do its work"),
        "{}",
        logs.text()
    );
    assert!(!logs.text().contains(ILERT_KEY), "the key is never logged");
    assert_eq!(app.ilert.alert_status(8001).as_deref(), Some("PENDING"));

    let created = app.open(8003).await;
    assert!(!created.is_empty(), "the webhook direction still works");
    let acknowledged = app.app.deliver("02-alert-acknowledged").await;
    assert!(acknowledged.status < 500, "{}", acknowledged.text);
}

#[tokio::test]
async fn the_push_reads_the_incident_itself_and_needs_its_own_token() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(9001).await;
    let sys_id = app.sys_id(&number);
    app.desk_sets(&number, "2");

    for wrong in [None, Some(bearer(TOKEN)), Some(bearer("guess"))] {
        let refused = app.push(&sys_id, wrong.as_deref()).await;
        assert_eq!(refused.status, 401, "{wrong:?}: {}", refused.text);
        assert_eq!(refused.body["error"], "unauthorized");
    }
    assert!(app.ilert.requests().is_empty(), "nothing reached iLert");

    // The body says Resolved; the incident is In Progress: only the incident counts.
    let lying = json!({ "sys_id": sys_id, "state": "6", "correlation_id": "ilert:1" });
    let pushed = app
        .push_body(lying.to_string(), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(pushed.status, 200, "{}", pushed.text);
    assert_eq!(pushed.body["action"], "accepted");
    assert_eq!(pushed.body["incident"]["number"], number.as_str());
    assert_eq!(app.ilert.alert_status(9001).as_deref(), Some("ACCEPTED"));

    // The shipped business rule sends it as HTTP Basic, the token as password.
    app.desk_sets(&number, "6");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("ilert-servicenow:{PUSH_TOKEN}")
        )
    );
    let resolved = app.push(&sys_id, Some(&basic)).await;
    assert_eq!(resolved.body["action"], "resolved", "{}", resolved.text);
    assert_eq!(app.ilert.alert_status(9001).as_deref(), Some("RESOLVED"));

    let again = app.push(&sys_id, Some(&bearer(PUSH_TOKEN))).await;
    assert_eq!(again.body["action"], "unchanged", "{}", again.text);
    assert_eq!(app.ilert.redundant_actions(), 0);
}

#[tokio::test]
async fn a_push_that_cannot_be_served_says_why() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(9101).await;
    let auth = Some(bearer(PUSH_TOKEN));

    let malformed = app.push_body("sys_id=1".into(), auth.as_deref()).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    let not_hex = app.push("1'^ORstate=2", auth.as_deref()).await;
    assert_eq!(not_hex.status, 400, "{}", not_hex.text);
    let unknown = app.push(&"0".repeat(32), auth.as_deref()).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let new = app.push(&app.sys_id(&number), auth.as_deref()).await;
    assert_eq!(new.status, 200, "{}", new.text);
    assert_eq!(new.body["action"], "unchanged");
    assert!(
        new.body["reason"].as_str().unwrap().contains("New"),
        "{}",
        new.text
    );
    assert!(app.ilert.requests().is_empty());

    app.desk_sets(&number, "2");
    app.ilert.inject(None, ILertFault::Status(503));
    app.ilert.inject(None, ILertFault::Status(503));
    app.ilert.inject(None, ILertFault::Status(503));
    app.ilert.inject(None, ILertFault::Status(503));
    app.ilert.set_latency(Duration::from_millis(400));
    let unavailable = app
        .app
        .send({
            let mut request = with_authorization(event("01-alert-created"), auth.as_deref());
            *request.uri_mut() = "/servicenow".parse().unwrap();
            with_body(
                request,
                json!({ "sys_id": app.sys_id(&number) }).to_string(),
            )
        })
        .await;
    assert_eq!(unavailable.status, 503, "{}", unavailable.text);
    assert!(unavailable.retry_after.is_some());
    assert!(unavailable.body["message"]
        .as_str()
        .unwrap()
        .contains("scheduled pass"));
}

#[tokio::test]
async fn without_an_ilert_key_the_way_back_is_off_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let number = app.open_bundled_incident().await;
    app.servicenow
        .desk_edit(&number, DESK, &[("state", "2")])
        .unwrap();
    app.servicenow.clear_requests();

    let report = app.handler.back_sync_pass(None).await;

    assert_eq!(
        report.failure.as_ref().map(|f| f.kind()),
        Some("misconfigured")
    );
    assert!(
        app.servicenow.requests().is_empty(),
        "no ServiceNow request"
    );
    let mut push = with_authorization(event("01-alert-created"), Some("Bearer anything"));
    *push.uri_mut() = "/servicenow".parse().unwrap();
    let answer = app.send(push).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
}

#[tokio::test]
async fn five_hundred_incidents_closed_at_once_are_all_synced_within_ilerts_rate_limit() {
    let app = BackSyncApp::spawn().await;
    // iLert's limit (120 calls a minute per key), scaled down 60 times so the test takes
    // seconds: 120 calls a second, with passes a second apart.
    let window = Duration::from_secs(1);
    app.ilert.set_rate_limit(120, window);
    app.app.handler.set_ilert_key_minute(window);
    let mut numbers = Vec::new();
    for alert in 100_001..=100_500u64 {
        app.ilert.add_alert(alert, "PENDING");
        let key = format!("ilert:{alert}");
        numbers.push(app.servicenow().insert(&[
            ("correlation_id", &key),
            ("correlation_display", "iLert"),
            ("sys_created_by", SN_USER),
            ("short_description", "PENDING Host is DOWN"),
            ("state", "1"),
        ]));
    }
    for number in &numbers {
        app.desk_sets(number, "7");
    }

    let mut passes = 0;
    let started = Instant::now();
    loop {
        let pass_started = Instant::now();
        let report = app.pass().await;
        passes += 1;
        assert_eq!(report.failure, None, "pass {passes}: {report:?}");
        if report.behind == 0 {
            break;
        }
        assert!(
            passes < 40,
            "not done after {passes} passes: {report:?} {:?}",
            app.ilert
                .requests()
                .iter()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
        );
        if let Some(rest) = window.checked_sub(pass_started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let resolved = (100_001..=100_500u64)
        .filter(|id| app.ilert.alert_status(*id).as_deref() == Some("RESOLVED"))
        .count();
    assert_eq!(resolved, 500, "every alert resolved");
    assert_eq!(app.ilert.rate_limited(), 0, "never over the limit");
    assert!(app.ilert.most_calls_in_window() <= 120);
    assert_eq!(app.ilert.redundant_actions(), 0);
    eprintln!(
        "500 closes synced in {passes} passes ({:.1} s at a pass a second); most iLert calls \
         in one window: {}",
        started.elapsed().as_secs_f64(),
        app.ilert.most_calls_in_window()
    );
}

#[tokio::test]
async fn a_pass_tells_the_log_and_metrics_what_it_did_for_each_alert() {
    let metrics = Metrics::Captured(Default::default());
    let app = BackSyncApp::spawn_measured(metrics.clone()).await;
    let number = app.open(9501).await;
    app.desk_sets(&number, "6");

    let logs = logs_of(|| async {
        app.pass().await;
    })
    .await;
    let lines = logs.lines();
    let synced = lines
        .iter()
        .find(|l| l["fields"]["message"] == "back_sync")
        .expect("a back_sync line");
    assert_eq!(synced["fields"]["alert_id"], "9501");
    assert_eq!(synced["fields"]["incident"], number.as_str());
    assert_eq!(synced["fields"]["back_sync"], "resolved");
    assert_eq!(synced["fields"]["changed_by"], DESK);
    let summary = lines
        .iter()
        .find(|l| l["fields"]["message"] == "back_sync_pass")
        .expect("a pass summary line");
    assert_eq!(summary["fields"]["resolved"], 1);
    assert_eq!(summary["fields"]["ilert_requests"], 2);
    assert!(!logs.text().contains(ILERT_KEY) && !logs.text().contains(PUSH_TOKEN));

    let Metrics::Captured(buffer) = &metrics else {
        unreachable!()
    };
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let document: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(document["BackSyncResolved"], 1, "{document}");
    assert_eq!(document["ILertRequests"], 2);
    let _ = header::AUTHORIZATION;
}

#[test]
fn the_template_schedules_the_pass_every_minute_and_routes_the_push() {
    let template =
        std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(template.contains("ScheduleExpression: rate(1 minute)"));
    assert!(
        template.contains("MaximumRetryAttempts: 0"),
        "a missed pass is the next minute's, never retried on top of it"
    );
    assert!(template.contains("RouteKey: POST /servicenow"));
    assert!(template.contains("ServiceNowPushUrl:"));
}

#[tokio::test]
async fn a_push_tells_its_summary_line_and_metrics_what_it_did() {
    let metrics = Metrics::Captured(Default::default());
    let app = BackSyncApp::spawn_measured(metrics.clone()).await;
    let number = app.open(9601).await;
    app.desk_sets(&number, "2");

    let sys_id = app.sys_id(&number);
    let logs = logs_of(|| async {
        let pushed = app.push(&sys_id, Some(&bearer(PUSH_TOKEN))).await;
        assert_eq!(pushed.body["action"], "accepted", "{}", pushed.text);
    })
    .await;
    let summary = logs
        .lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == "invocation")
        .expect("a summary line");
    assert_eq!(summary["fields"]["trigger"], "push");
    assert_eq!(summary["fields"]["back_sync"], "accepted");
    assert_eq!(summary["fields"]["alert_id"], "9601");
    assert_eq!(summary["fields"]["incident"], number.as_str());
    assert_eq!(summary["fields"]["ilert_requests"], 2, "read, then accept");

    let Metrics::Captured(buffer) = &metrics else {
        unreachable!()
    };
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let document: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(document["BackSyncAccepted"], 1, "{document}");
    assert!(
        document.get("IncidentsUnchanged").is_none(),
        "not a webhook's metrics"
    );
}

#[tokio::test]
async fn a_query_the_instance_widens_stops_the_pass_and_misleads_nothing() {
    let app = BackSyncApp::spawn().await;
    let open = app.open(9701).await;
    // The pass asks by key alone and reads the states itself: a state the instance will not
    // filter on changes nothing.
    app.servicenow().hide_from_queries("state");
    let taken = app.open(9702).await;
    app.desk_sets(&taken, "2");
    let filtered = app.pass().await;
    assert_eq!((filtered.behind, filtered.accepted), (1, 1), "{filtered:?}");
    assert_eq!(
        app.ilert.alert_status(9701).as_deref(),
        Some("PENDING"),
        "{open} is New"
    );

    // The key's term dropped (the user may not read correlation_id): any incidents come back,
    // cut by the limit, and the pass trusts none of them.
    app.desk_sets(&open, "6");
    app.servicenow().deny_read("correlation_id");
    app.ilert.clear_requests();
    let refused = app.pass().await;
    let failure = refused.failure.expect("the pass stops");
    assert_eq!(failure.kind(), "servicenow_refused");
    assert!(failure.to_string().contains("correlation_id"), "{failure}");
    assert!(
        !ilert_calls(&app.ilert).iter().any(|c| c.starts_with("PUT")),
        "nothing acted on"
    );
}

#[tokio::test]
async fn only_the_incident_that_stays_speaks_for_its_alert() {
    let app = BackSyncApp::spawn().await;
    let stays = app.open(9801).await;
    // A duplicate no event has merged yet, which the desk cancels by hand.
    let duplicate = app.servicenow().insert(&[
        ("correlation_id", "ilert:9801"),
        ("correlation_display", "iLert"),
        ("sys_created_by", SN_USER),
        ("short_description", "PENDING Host is DOWN"),
        ("state", "1"),
    ]);
    app.desk_sets(&duplicate, "8");

    let report = app.pass().await;
    assert_eq!(report.behind, 0, "{report:?}");
    let pushed = app
        .push(&app.sys_id(&duplicate), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(pushed.body["action"], "unchanged", "{}", pushed.text);
    assert!(pushed.body["reason"]
        .as_str()
        .unwrap()
        .contains("duplicate"));
    assert_eq!(app.ilert.alert_status(9801).as_deref(), Some("PENDING"));

    app.desk_sets(&stays, "2");
    assert_eq!(app.pass().await.accepted, 1);
    assert_eq!(app.ilert.alert_status(9801).as_deref(), Some("ACCEPTED"));
}

#[tokio::test]
async fn an_event_naming_the_keys_user_that_finds_the_incident_behind_is_applied_whole() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(9901).await;
    app.desk_sets(&number, "2");
    app.pass().await;
    let [accept_echo] = app.ilert.take_echoes().try_into().unwrap();
    // Later someone resolves the alert in iLert; the body still names the key's user as
    // assignee, as it does after the back-sync's accept. The incident is behind: no echo.
    let mut resolved = accept_echo;
    resolved["eventType"] = json!("alert-resolved");
    resolved["status"] = json!("RESOLVED");
    resolved["eventId"] = json!("a-person-resolved");
    let answer = app
        .app
        .send(with_body(event("04-alert-resolved"), resolved.to_string()))
        .await;
    assert_eq!(answer.body["action"], "updated", "{}", answer.text);
    assert_eq!(app.incident(&number)["state"], "6");
    assert!(
        app.app
            .notes(&number)
            .iter()
            .any(|n| n.contains("Resolved in iLert")),
        "{:?}",
        app.app.notes(&number)
    );
}

#[tokio::test]
async fn a_push_to_a_misconfigured_deployment_is_a_500_and_its_401_names_its_own_token() {
    let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
    let app = TestApp::spawn_both_ways(&ilert).await;
    let app = TestApp {
        handler: app
            .handler
            .with_misconfiguration("TIME_BUDGET_SECONDS must be a number".into()),
        ..app
    };
    let app = BackSyncApp { app, ilert };
    let number = app.open_unchecked(9951).await;
    let refused = app.push(&app.sys_id(&number), Some("Bearer nope")).await;
    assert_eq!(refused.status, 401);
    let message = refused.body["message"].as_str().unwrap();
    assert!(
        message.contains("servicenow_token") && !message.contains("webhook token"),
        "{message}"
    );
    let misconfigured = app
        .push(&app.sys_id(&number), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(misconfigured.status, 500, "{}", misconfigured.text);
    assert!(misconfigured.text.contains("TIME_BUDGET_SECONDS"));
    assert!(app.ilert.requests().is_empty(), "nothing reached iLert");
    let pass = app.pass().await;
    assert_eq!(pass.failure.map(|f| f.kind()), Some("misconfigured"));
}

#[tokio::test]
async fn an_incident_a_desk_user_keyed_to_an_alert_never_accepts_or_resolves_it() {
    let app = BackSyncApp::spawn().await;
    app.ilert.add_alert(9901, "PENDING");
    // Someone types another team's alert key into an incident of their own and resolves it.
    let typed_in = app.servicenow().insert(&[
        ("correlation_id", "ilert:9901"),
        ("short_description", "my printer is broken"),
        ("state", "1"),
        ("sys_created_by", DESK),
    ]);
    app.desk_sets(&typed_in, "6");

    let report = app.pass().await;
    assert_eq!(report.behind, 0, "{report:?}");
    let pushed = app
        .push(&app.sys_id(&typed_in), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(pushed.body["action"], "unchanged", "{}", pushed.text);
    assert!(
        pushed.text.contains("sys_created_by"),
        "the reason names the field: {}",
        pushed.text
    );
    assert_eq!(app.ilert.alert_status(9901).as_deref(), Some("PENDING"));
    assert!(
        !ilert_calls(&app.ilert).iter().any(|c| c.starts_with("PUT")),
        "{:?}",
        ilert_calls(&app.ilert)
    );
}

/// An assignment rule moves a New incident to In Progress inside the function's own create
/// (the alert action assigns it): that is the instance's doing, not the desk's, and the page
/// must go on until a person acts.
#[tokio::test]
async fn a_state_the_instance_sets_inside_the_functions_write_never_accepts_the_alert() {
    let app = BackSyncApp::spawn().await;
    app.servicenow().set_in_progress_on_assignment();
    app.ilert.add_alert(12797430, "PENDING");
    let created = app
        .app
        .send(event_at("01-alert-created", "assigned_to=jdoe"))
        .await;
    assert_eq!(created.body["action"], "created", "{}", created.text);
    assert_eq!(app.servicenow().assignment_rule_fired(), 1, "the rule ran");
    let number = created.body["incident"]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.incident(&number)["state"],
        "2",
        "the rule set In Progress"
    );

    let report = app.pass().await;
    assert_eq!((report.behind, report.accepted), (0, 0), "{report:?}");
    let pushed = app
        .push(&app.sys_id(&number), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(pushed.body["action"], "unchanged", "{}", pushed.text);
    assert!(
        pushed.text.contains("the instance set this state"),
        "{}",
        pushed.text
    );
    assert_eq!(app.ilert.alert_status(12797430).as_deref(), Some("PENDING"));

    // The desk's own change still counts.
    app.desk_sets(&number, "6");
    assert_eq!(app.pass().await.resolved, 1);
    assert_eq!(
        app.ilert.alert_status(12797430).as_deref(),
        Some("RESOLVED")
    );
}

/// A refusal no retry fixes (the sync user may not act on the alert's source; the alert was
/// deleted) is tried once, then left alone for 15 minutes: it never eats a pass's calls every
/// minute.
#[tokio::test]
async fn an_alert_ilert_refuses_to_move_is_left_alone_for_a_while_and_counted() {
    let app = BackSyncApp::spawn().await;
    let denied_source = 77;
    let numbers: Vec<String> = [9701, 9702, 9703]
        .into_iter()
        .map(|alert| {
            app.ilert.add_alert_reported(
                alert,
                "PENDING",
                now_ms() - 60_000,
                if alert == 9701 { denied_source } else { 1 },
            );
            let number = app.servicenow().insert(&[
                ("correlation_id", &format!("ilert:{alert}")),
                ("correlation_display", "iLert"),
                ("sys_created_by", SN_USER),
                ("short_description", "PENDING Host is DOWN"),
                ("state", "1"),
            ]);
            app.desk_sets(&number, "6");
            number
        })
        .collect();
    app.ilert.deny_actions_on_source(denied_source);
    app.ilert.delete_alert(9702);

    let first = app.pass().await;
    assert_eq!(
        (first.resolved, first.refused, first.failed),
        (1, 1, 0),
        "{first:?}"
    );
    assert!(
        app.ilert.denied_actions() > 0,
        "the source's refusal was met"
    );
    assert_eq!(app.ilert.alert_status(9703).as_deref(), Some("RESOLVED"));

    app.ilert.clear_requests();
    for _ in 0..3 {
        let next = app.pass().await;
        assert_eq!(next.refused, 1, "{next:?}");
        assert_eq!(next.failure, None);
    }
    let calls = ilert_calls(&app.ilert);
    assert!(
        !calls.iter().any(|c| c.contains("/9701")),
        "left alone for 15 minutes: {calls:?}"
    );
    assert_eq!(app.ilert.alert_status(9701).as_deref(), Some("PENDING"));
    assert_eq!(numbers.len(), 3);
}

fn now_ms() -> i64 {
    ilert_servicenow::flow::budget::epoch_ms() as i64
}

/// A desk closing many incidents at once with the business rule installed: every push draws
/// on the key's calls for the minute, shared with the passes, so iLert's limit is never met;
/// a push past it is a 503 that says the next pass brings the change.
#[tokio::test]
async fn a_mass_of_pushes_never_spends_more_than_the_keys_minute() {
    let app = BackSyncApp::spawn().await;
    let mut sys_ids = Vec::new();
    for alert in 9601..=9680u64 {
        app.ilert.add_alert(alert, "PENDING");
        let number = app.servicenow().insert(&[
            ("correlation_id", &format!("ilert:{alert}")),
            ("correlation_display", "iLert"),
            ("sys_created_by", SN_USER),
            ("short_description", "PENDING Host is DOWN"),
            ("state", "1"),
        ]);
        app.desk_sets(&number, "7");
        sys_ids.push(app.sys_id(&number));
    }
    let mut answered = Vec::new();
    for sys_id in &sys_ids {
        answered.push(app.push(sys_id, Some(&bearer(PUSH_TOKEN))).await);
    }
    let resolved = answered
        .iter()
        .filter(|a| a.body["action"] == "resolved")
        .count();
    let spent: Vec<&Answer> = answered.iter().filter(|a| a.status == 503).collect();
    assert_eq!(
        resolved + spent.len(),
        80,
        "each push resolved or told to wait"
    );
    assert!(
        !spent.is_empty(),
        "80 pushes need 160 calls: some must wait"
    );
    assert!(
        spent[0].text.contains("the next pass brings this change"),
        "{}",
        spent[0].text
    );
    let calls = app.ilert.requests().len();
    assert!(
        calls <= ilert_servicenow::flow::back_sync::KEY_CALLS_PER_MINUTE,
        "{calls} iLert calls in a minute"
    );
    assert_eq!(app.ilert.rate_limited(), 0, "iLert never throttled the key");
    // The pass that follows within the minute says why it lists nothing.
    let pass = app.pass().await;
    assert_eq!(
        pass.failure.as_ref().map(|f| f.kind()),
        Some("ilert_unavailable"),
        "{pass:?}"
    );
    assert!(app.ilert.requests().len() <= ilert_servicenow::flow::back_sync::KEY_CALLS_PER_MINUTE);
    // The webhook is never held back by it.
    let webhook = app.app.send(event_at("01-alert-created", "")).await;
    assert_eq!(webhook.body["action"], "created", "{}", webhook.text);
}

/// ServiceNow sets `sys_created_by` on every record; a field ACL that hides it from the
/// integration user would leave the way back acting on nothing, silently. It is a refusal that
/// names the field, in the pass and the push.
#[tokio::test]
async fn a_creator_the_integration_user_may_not_read_stops_the_way_back_and_says_so() {
    let app = BackSyncApp::spawn().await;
    let number = app.open(9301).await;
    app.desk_sets(&number, "6");
    app.servicenow().deny_read("sys_created_by");

    let report = app.pass().await;
    let failure = report.failure.expect("the pass says why it does nothing");
    assert_eq!(failure.kind(), "servicenow_refused");
    assert!(failure.to_string().contains("sys_created_by"), "{failure}");
    let pushed = app
        .push(&app.sys_id(&number), Some(&bearer(PUSH_TOKEN)))
        .await;
    assert_eq!(pushed.status, 502, "{}", pushed.text);
    assert!(pushed.text.contains("sys_created_by"), "{}", pushed.text);
    assert_eq!(app.ilert.alert_status(9301).as_deref(), Some("PENDING"));
}
