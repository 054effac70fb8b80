//! The iLert REST API stand-in, over real HTTP: it must answer as iLert does, traps included.

use serde_json::{json, Value};
use simulator::{ILertFault, ILertRequest, ILertSimulator};
use std::time::{Duration, Instant};

const KEY: &str = "il1api-test-key";

struct Api {
    ilert: ILertSimulator,
    client: reqwest::Client,
}

/// What a call got: the status, the body as JSON, and the headers.
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Api {
    async fn start() -> Self {
        // The workspace's reqwest brings no crypto provider of its own (the function chooses ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            ilert: ILertSimulator::start(KEY).await.unwrap(),
            client: reqwest::Client::new(),
        }
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.ilert.url()));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            body,
            headers,
        })
    }

    async fn call(&self, method: &str, path: &str) -> Answer {
        self.call_with(method, path, Some(KEY)).await.unwrap()
    }
}

fn statuses(requests: &[ILertRequest]) -> Vec<u16> {
    requests.iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn a_missing_wrong_or_revoked_key_is_a_403_key_error_not_a_401() {
    let api = Api::start().await;
    let key_error = json!({ "status": 403, "code": "KEY_ERROR", "message": "Invalid api key" });

    let missing = api
        .call_with("GET", "/api/users/current", None)
        .await
        .unwrap();
    let wrong = api
        .call_with("GET", "/api/users/current", Some("il1api-other"))
        .await
        .unwrap();
    assert_eq!((missing.status, &missing.body), (403, &key_error));
    assert_eq!((wrong.status, &wrong.body), (403, &key_error));

    let current = api.call("GET", "/api/users/current").await;
    assert_eq!(current.status, 200);
    assert_eq!(
        current.body,
        json!({
            "id": ILertSimulator::SYNC_USER_ID,
            "username": "servicenow-sync",
            "firstName": "ServiceNow",
            "lastName": "Sync",
            "email": ILertSimulator::SYNC_USER_EMAIL,
        })
    );

    api.ilert.add_alert(7, "PENDING");
    api.ilert.revoke_key();
    let revoked = api.call("PUT", "/api/alerts/7/accept").await;
    assert_eq!((revoked.status, &revoked.body), (403, &key_error));
    assert_eq!(api.ilert.alert_status(7).as_deref(), Some("PENDING"));

    api.ilert.set_key("il1api-rotated");
    assert_eq!(
        api.call("GET", "/api/alerts/7").await.status,
        403,
        "the old key"
    );
    let rotated = api
        .call_with("GET", "/api/alerts/7", Some("il1api-rotated"))
        .await
        .unwrap();
    assert_eq!(rotated.status, 200);
    assert_eq!(
        statuses(&api.ilert.requests()),
        [403, 403, 200, 403, 403, 200]
    );
}

#[tokio::test]
async fn an_alert_reads_as_the_api_shows_it_and_an_unknown_one_is_404() {
    let api = Api::start().await;
    api.ilert.add_alert(12797430, "PENDING");
    api.ilert.add_alert(12797431, "ACCEPTED");

    let pending = api.call("GET", "/api/alerts/12797430").await;
    assert_eq!(pending.status, 200);
    let alert = &pending.body;
    assert_eq!(
        alert["id"],
        json!(12797430),
        "a number, unlike the webhook's"
    );
    assert_eq!(alert["status"], "PENDING");
    assert_eq!(alert["summary"], "Host 12797430 is DOWN");
    assert!(alert["alertKey"].is_string());
    assert_eq!(
        alert["alertSource"],
        json!({ "id": 2101194, "name": "Prometheus Production" })
    );
    let report_time = alert["reportTime"].as_str().unwrap();
    assert_eq!(
        report_time.len(),
        "2025-10-17T10:37:51.829Z".len(),
        "{report_time}"
    );
    assert!(report_time.ends_with('Z') && report_time.as_bytes()[10] == b'T');
    assert_eq!(
        alert["responders"],
        json!([{
            "user": {
                "id": ILertSimulator::RESPONDER_ID,
                "username": "jdoe",
                "firstName": "Jane",
                "lastName": "Doe",
                "email": ILertSimulator::RESPONDER_EMAIL,
            },
            "status": "PENDING",
        }])
    );
    assert!(alert.get("assignedTo").is_none());

    let accepted = api.call("GET", "/api/alerts/12797431").await.body;
    assert_eq!(accepted["status"], "ACCEPTED");
    assert_eq!(accepted["responders"][0]["status"], "ACCEPTED");
    assert!(accepted["responders"][0]["acceptedAt"].is_string());
    assert_eq!(
        accepted["assignedTo"]["email"],
        ILertSimulator::RESPONDER_EMAIL
    );

    let not_found = json!({ "status": 404, "code": "NOT_FOUND", "message": "alert not found" });
    for path in [
        "/api/alerts/1",
        "/api/alerts/abc",
        "/api/alerts/-5",
        "/api/alerts/1/accept",
    ] {
        let method = if path.ends_with("accept") {
            "PUT"
        } else {
            "GET"
        };
        let answer = api.call(method, path).await;
        assert_eq!((answer.status, &answer.body), (404, &not_found), "{path}");
    }
}

#[tokio::test]
async fn the_lifecycle_only_moves_forward_and_a_non_transition_is_a_counted_400() {
    let api = Api::start().await;
    api.ilert.add_alert(41, "PENDING");

    let accepted = api.call("PUT", "/api/alerts/41/accept").await;
    assert_eq!(accepted.status, 200);
    assert_eq!(accepted.body["status"], "ACCEPTED");
    assert_eq!(
        accepted.body["assignedTo"]["id"],
        ILertSimulator::SYNC_USER_ID
    );
    let responders = accepted.body["responders"].as_array().unwrap();
    let sync = responders
        .iter()
        .find(|r| r["user"]["id"] == ILertSimulator::SYNC_USER_ID)
        .expect("the key's user became a responder");
    assert_eq!(sync["status"], "ACCEPTED");
    assert!(sync["acceptedAt"].is_string());
    assert_eq!(api.ilert.redundant_actions(), 0);

    let again = api.call("PUT", "/api/alerts/41/accept").await;
    assert_eq!(
        (again.status, &again.body),
        (
            400,
            &json!({ "status": 400, "code": "BAD_REQUEST", "message": "alert is not pending" })
        )
    );
    assert_eq!(api.ilert.redundant_actions(), 1);

    let resolved = api.call("PUT", "/api/alerts/41/resolve").await;
    assert_eq!(resolved.status, 200);
    assert_eq!(resolved.body["status"], "RESOLVED");
    assert!(resolved.body["resolvedOn"].is_string());

    let resolved_again = api.call("PUT", "/api/alerts/41/resolve").await;
    assert_eq!(resolved_again.status, 400);
    assert_eq!(resolved_again.body["message"], "alert is already resolved");
    let accept_resolved = api.call("PUT", "/api/alerts/41/accept").await;
    assert_eq!(accept_resolved.status, 400);
    assert_eq!(accept_resolved.body["message"], "alert is not pending");
    assert_eq!(api.ilert.redundant_actions(), 3);
    assert_eq!(api.ilert.alert_status(41).as_deref(), Some("RESOLVED"));

    // A pending alert resolves straight away.
    api.ilert.add_alert(42, "PENDING");
    assert_eq!(api.call("PUT", "/api/alerts/42/resolve").await.status, 200);
    assert_eq!(api.ilert.alert_status(42).as_deref(), Some("RESOLVED"));
    assert_eq!(
        statuses(&api.ilert.requests()),
        [200, 400, 200, 400, 400, 200]
    );
}

#[tokio::test]
async fn every_api_action_echoes_the_webhook_naming_the_keys_user() {
    let api = Api::start().await;
    api.ilert.add_alert(12797430, "PENDING");
    assert_eq!(
        api.call("PUT", "/api/alerts/12797430/accept").await.status,
        200
    );
    assert_eq!(
        api.call("PUT", "/api/alerts/12797430/accept").await.status,
        400
    );
    assert_eq!(
        api.call("PUT", "/api/alerts/12797430/resolve").await.status,
        200
    );

    let echoes = api.ilert.echoes();
    assert_eq!(
        echoes.len(),
        2,
        "none for the redundant accept: {echoes:#?}"
    );
    let sync_user = json!({
        "username": "servicenow-sync",
        "email": ILertSimulator::SYNC_USER_EMAIL,
        "firstName": "ServiceNow",
        "lastName": "Sync",
    });
    let (acknowledged, resolved) = (&echoes[0], &echoes[1]);
    assert_eq!(
        acknowledged["id"], "12797430",
        "a string, as in every webhook"
    );
    assert_eq!(acknowledged["eventType"], "alert-acknowledged");
    assert_eq!(acknowledged["status"], "ACCEPTED");
    assert_eq!(acknowledged["assignedTo"], sync_user);
    assert!(acknowledged.get("resolvedOn").is_none());
    let sync_responder = acknowledged["responders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"]["id"] == ILertSimulator::SYNC_USER_ID)
        .expect("the key's user responded");
    assert_eq!(sync_responder["status"], "ACCEPTED");

    assert_eq!(resolved["eventType"], "alert-resolved");
    assert_eq!(resolved["status"], "RESOLVED");
    assert_eq!(resolved["assignedTo"], sync_user);
    assert!(resolved["resolvedOn"].is_string());

    for echo in &echoes {
        assert_eq!(echo["summary"], "Host 12797430 is DOWN");
        assert_eq!(echo["priority"], "HIGH");
        assert_eq!(echo["alertKey"], "host-12797430-down");
        assert_eq!(echo["alertSource"]["id"], 2101194);
        assert!(echo["details"].is_string());
        assert!(echo["reportTime"].is_string());
        let timestamp = echo["timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2025-10-17T10:41:12.019377120Z".len(),
            "{timestamp}"
        );
    }
    assert_ne!(acknowledged["eventId"], resolved["eventId"]);
    assert!(acknowledged["eventId"]
        .as_str()
        .is_some_and(|id| id.len() == 36));

    assert_eq!(api.ilert.take_echoes(), echoes);
    assert!(api.ilert.echoes().is_empty());
    assert!(api.ilert.take_echoes().is_empty());
}

#[tokio::test]
async fn over_the_rate_limit_is_a_bare_429_that_counts_toward_nothing() {
    let api = Api::start().await;
    api.ilert.set_rate_limit(3, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(api.call("GET", "/api/users/current").await.status, 200);
    }
    api.ilert.inject(None, ILertFault::Status(500));
    let refused = api.call("GET", "/api/users/current").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.body,
        json!({ "status": 429, "code": "TOO_MANY_REQUESTS", "message": "Too many requests" })
    );
    assert!(refused.headers.get("retry-after").is_none());
    let rate_headers: Vec<_> = refused
        .headers
        .keys()
        .filter(|name| name.as_str().contains("ratelimit"))
        .collect();
    assert!(rate_headers.is_empty(), "{rate_headers:?}");
    assert_eq!(api.ilert.rate_limited(), 1);
    assert_eq!(
        api.ilert.faults_pending(),
        1,
        "a refused request takes no fault"
    );
    assert_eq!(
        api.ilert.most_calls_in_window(),
        3,
        "nor a place in the window"
    );
}

#[tokio::test]
async fn the_rate_limit_is_a_sliding_window_not_one_reset_each_period() {
    let api = Api::start().await;
    let window = Duration::from_secs(1);
    api.ilert.set_rate_limit(3, window);
    let started = Instant::now();
    for _ in 0..2 {
        assert_eq!(api.call("GET", "/api/users/current").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let middle = Instant::now();
    assert_eq!(api.call("GET", "/api/users/current").await.status, 200);
    assert_eq!(api.call("GET", "/api/users/current").await.status, 429);

    // The first two have left the window; the middle one has not. A window reset every
    // second would admit three here.
    tokio::time::sleep(window.saturating_sub(started.elapsed()) + Duration::from_millis(100)).await;
    let results = [
        api.call("GET", "/api/users/current").await.status,
        api.call("GET", "/api/users/current").await.status,
        api.call("GET", "/api/users/current").await.status,
    ];
    assert!(
        middle.elapsed() < window,
        "the machine was too slow to tell"
    );
    assert_eq!(results, [200, 200, 429]);
    assert_eq!(api.ilert.rate_limited(), 2);
    assert_eq!(api.ilert.most_calls_in_window(), 3);
}

#[tokio::test]
async fn faults_are_taken_by_their_method_and_apply_as_they_say() {
    let api = Api::start().await;
    api.ilert.add_alert(5, "PENDING");
    api.ilert.inject(Some("PUT"), ILertFault::CutAfterApplying);
    api.ilert.inject(Some("DELETE"), ILertFault::Status(500));
    assert_eq!(api.ilert.faults_pending(), 2);

    assert_eq!(
        api.call("GET", "/api/alerts/5").await.status,
        200,
        "not a PUT"
    );
    assert!(api
        .call_with("PUT", "/api/alerts/5/accept", Some(KEY))
        .await
        .is_err());
    assert_eq!(
        api.ilert.alert_status(5).as_deref(),
        Some("ACCEPTED"),
        "applied"
    );
    assert_eq!(api.ilert.echoes().len(), 1, "and echoed");

    api.ilert.inject(None, ILertFault::CutBeforeApplying);
    assert!(api
        .call_with("PUT", "/api/alerts/5/resolve", Some(KEY))
        .await
        .is_err());
    assert_eq!(
        api.ilert.alert_status(5).as_deref(),
        Some("ACCEPTED"),
        "not applied"
    );

    api.ilert.inject(Some("PUT"), ILertFault::Status(503));
    let unavailable = api.call("PUT", "/api/alerts/5/resolve").await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.body["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(
        api.ilert.alert_status(5).as_deref(),
        Some("ACCEPTED"),
        "not applied"
    );

    api.ilert.inject(Some("PUT"), ILertFault::Status(429));
    let throttled = api.call("PUT", "/api/alerts/5/resolve").await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.body["code"], "TOO_MANY_REQUESTS");
    assert!(throttled.headers.get("retry-after").is_none());
    assert_eq!(
        api.ilert.rate_limited(),
        0,
        "an injected 429 is not the limiter's"
    );

    assert_eq!(
        api.ilert.faults_pending(),
        1,
        "the DELETE fault was never met"
    );
    assert_eq!(api.call("PUT", "/api/alerts/5/resolve").await.status, 200);
    assert_eq!(statuses(&api.ilert.requests()), [200, 0, 0, 503, 429, 200]);
    api.ilert.clear_faults();
    assert_eq!(api.ilert.faults_pending(), 0);
}

#[tokio::test]
async fn latency_comes_before_every_answer() {
    let api = Api::start().await;
    api.ilert.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(api.call("GET", "/api/users/current").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

fn ids(answer: &Answer) -> Vec<u64> {
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

/// iLert's OpenAPI (v2.2026.5-r.3): `states` (repeated), `start-index`, `max-results` (default
/// 50, at most 100); a parameter it does not have, such as the Go client's `state`, is ignored.
#[tokio::test]
async fn alerts_are_listed_by_the_documented_states_filter_and_an_unknown_one_is_ignored() {
    let api = Api::start().await;
    for id in 1..=5 {
        api.ilert
            .add_alert_reported(id, "PENDING", 1_000_000 + id as i64, 7);
    }
    api.ilert.add_alert_reported(6, "ACCEPTED", 1_000_006, 7);
    api.ilert.add_alert_reported(7, "RESOLVED", 1_000_007, 7);
    for id in 100..160 {
        api.ilert
            .add_alert_reported(id, "RESOLVED", 500_000 + id as i64, 8);
    }

    let open = "/api/alerts?states=PENDING&states=ACCEPTED";
    let first = api
        .call("GET", &format!("{open}&start-index=0&max-results=4"))
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(ids(&first), [6, 5, 4, 3], "newest first by default");
    let second = api
        .call("GET", &format!("{open}&start-index=4&max-results=4"))
        .await;
    assert_eq!(ids(&second), [2, 1], "a short page is the last");

    let misnamed = api
        .call("GET", "/api/alerts?state=PENDING&state=ACCEPTED")
        .await;
    assert_eq!(
        ids(&misnamed).len(),
        50,
        "`state` is not iLert's parameter: ignored, every alert listed, 50 by default"
    );
    let everything = api.call("GET", "/api/alerts?max-results=100").await;
    assert_eq!(ids(&everything).len(), 67, "no states: every alert");
    let too_many = api.call("GET", "/api/alerts?max-results=101").await;
    assert_eq!(too_many.status, 400, "iLert's maximum page is 100");
    let unknown_state = api.call("GET", "/api/alerts?states=OPEN").await;
    assert_eq!(unknown_state.status, 400, "not in the enum");

    let count = api
        .call("GET", "/api/alerts/count?states=PENDING&states=ACCEPTED")
        .await;
    assert_eq!(count.body, json!({ "count": 6 }));
    let by_source = api.call("GET", "/api/alerts/count?sources=8").await;
    assert_eq!(by_source.body, json!({ "count": 60 }));

    api.ilert.forget_parameter("states");
    let ignored = api.call("GET", &format!("{open}&max-results=100")).await;
    assert_eq!(
        ids(&ignored).len(),
        67,
        "an API without `states` lists everything"
    );
}

#[tokio::test]
async fn from_and_until_filter_on_report_time_and_the_order_can_be_oldest_first() {
    let api = Api::start().await;
    // 2025-10-17T10:41:12.000Z and the following seconds.
    let base = 1_760_697_672_000;
    for id in 1..=6 {
        api.ilert
            .add_alert_reported(id, "PENDING", base + (id as i64) * 1000, 7);
    }
    let window = "/api/alerts?from=2025-10-17T10:41:14.000Z&until=2025-10-17T10:41:17.000Z";
    assert_eq!(
        ids(&api.call("GET", window).await),
        [4, 3, 2],
        "from ≤ reportTime < until"
    );
    assert_eq!(
        api.call("GET", "/api/alerts?from=yesterday").await.status,
        400
    );
    api.ilert.set_list_order(simulator::ListOrder::OldestFirst);
    assert_eq!(ids(&api.call("GET", window).await), [2, 3, 4]);
    let listed = api.call("GET", "/api/alerts?max-results=1").await;
    assert_eq!(listed.body[0]["reportTime"], "2025-10-17T10:41:13.000Z");
}

#[tokio::test]
async fn alerts_resolved_by_someone_else_between_two_pages_leave_the_list() {
    let api = Api::start().await;
    for id in 1..=10 {
        api.ilert
            .add_alert_reported(id, "PENDING", 1_000_000 + id as i64, 7);
    }
    api.ilert.resolve_after_lists(1, vec![9, 10]);
    let open = "/api/alerts?states=PENDING&max-results=4";
    assert_eq!(ids(&api.call("GET", open).await), [10, 9, 8, 7]);
    assert_eq!(api.ilert.faults_pending(), 0, "the change was made");
    assert_eq!(
        ids(&api.call("GET", &format!("{open}&start-index=4")).await),
        [4, 3, 2, 1],
        "paged by index, alerts 6 and 5 slid onto the page already read"
    );
}
