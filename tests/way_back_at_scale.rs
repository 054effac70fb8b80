//! The way back in a real iLert account: against the stand-in as iLert's OpenAPI describes it
//! (the `states` filter, an unknown parameter ignored, no documented order), with thousands of
//! alerts, most of them resolved or stale, and the set changing while a pass pages through it.

mod support;

use ilert_servicenow::domain::settings::Settings;
use ilert_servicenow::flow::back_sync::{passes_to_reach, PassReport, LIST_CALLS_PER_PASS};
use serde_json::json;
use simulator::ilert_contract::{documented, ILERT_OPENAPI_VERSION};
use simulator::{ILertSimulator, ListOrder, ServiceNowSimulator};
use std::time::Duration;
use support::*;

const DESK: &str = "jane.desk";
/// 2026-05-01T00:00:00Z: the account's alerts were reported in the weeks before now.
const LONG_AGO_MS: i64 = 1_777_593_600_000;

fn now_ms() -> i64 {
    ilert_servicenow::flow::budget::epoch_ms() as i64
}

struct Account {
    app: TestApp,
    ilert: ILertSimulator,
}

impl Account {
    async fn spawn(order: ListOrder) -> Self {
        let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
        ilert.set_list_order(order);
        // These tests are about reaching alerts, not about the rate limit (tests/back_sync.rs
        // holds a pass to it): passes here follow each other at once.
        ilert.set_rate_limit(1_000_000, Duration::from_secs(60));
        let app = TestApp::spawn_both_ways(&ilert).await;
        Self { app, ilert }
    }

    /// An incident of `alert` as the function opened it, which the service desk then resolved.
    fn desk_resolved(&self, alert: u64) -> String {
        let key = format!("ilert:{alert}");
        let number = self.app.servicenow.insert(&[
            ("correlation_id", &key),
            ("correlation_display", "iLert"),
            ("sys_created_by", SN_USER),
            ("short_description", "PENDING Host is DOWN"),
            ("state", "1"),
        ]);
        self.app
            .servicenow
            .desk_edit(
                &number,
                DESK,
                &[
                    ("state", "6"),
                    ("close_code", "Solution provided"),
                    ("close_notes", "Fixed by the service desk."),
                ],
            )
            .unwrap();
        number
    }

    async fn pass(&self) -> PassReport {
        let deadline_ms = ilert_servicenow::flow::budget::epoch_ms() + 40_000;
        self.app.handler.back_sync_pass(Some(deadline_ms)).await
    }

    fn lists(&self) -> usize {
        self.ilert
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/api/alerts")
            .count()
    }

    fn resolved(&self, alert: u64) -> bool {
        self.ilert.alert_status(alert).as_deref() == Some("RESOLVED")
    }
}

/// 10,000 resolved alerts, the newest; 3,000 open ones reported before them (stale, from
/// sources that do not use this function, bar a few), one minute apart.
fn fill(ilert: &ILertSimulator) {
    for i in 0..3_000u64 {
        let at = LONG_AGO_MS + i as i64 * 60_000;
        ilert.add_alert_reported(1_000_000 + i, "PENDING", at, 4000 + i % 7);
    }
    let newest_stale = LONG_AGO_MS + 3_000 * 60_000;
    for i in 0..10_000u64 {
        let at = newest_stale + i as i64 * 30_000;
        ilert.add_alert_reported(5_000_000 + i, "RESOLVED", at, 4000 + i % 7);
    }
}

/// Every request the function sent is one iLert's OpenAPI documents, parameters included.
fn assert_documented(ilert: &ILertSimulator) {
    for request in ilert.requests() {
        if let Err(why) = documented(&request.method, &request.path, &request.query) {
            panic!("{why} (in {}?{})", request.path, request.query);
        }
    }
}

async fn every_open_alert_is_reached(order: ListOrder) {
    let account = Account::spawn(order).await;
    fill(&account.ilert);
    // The oldest open alert, one in the middle, one just below the newest pages, and one just
    // reported: the desk resolved each one's incident.
    let old = [1_000_000, 1_001_500, 1_002_400];
    for alert in old {
        account.desk_resolved(alert);
    }
    account
        .ilert
        .add_alert_reported(9_000_001, "PENDING", now_ms() - 60_000, 4000);
    account.desk_resolved(9_000_001);
    let open = 3_001;
    let promised = passes_to_reach(open);

    let mut passes = 0;
    let mut recent_reached_in = None;
    while passes < promised && !old.iter().all(|a| account.resolved(*a)) || passes < 2 {
        let lists_before = account.lists();
        let report = account.pass().await;
        passes += 1;
        assert_eq!(report.failure, None, "{order:?} pass {passes}: {report:?}");
        let lists = account.lists() - lists_before;
        assert!(
            lists <= LIST_CALLS_PER_PASS as usize,
            "{order:?} pass {passes}: {lists} list calls, more than half a pass's calls"
        );
        if recent_reached_in.is_none() && account.resolved(9_000_001) {
            recent_reached_in = Some(passes);
        }
    }
    assert!(
        recent_reached_in.is_some_and(|pass| pass <= 2),
        "{order:?}: the recent alert reached in pass {recent_reached_in:?}"
    );
    for alert in old {
        assert!(
            account.resolved(alert),
            "{order:?}: alert {alert} not reached within the {promised} passes promised for \
             {open} open alerts"
        );
    }
    assert!(
        (1_000_001..1_000_100).all(|a| !account.resolved(a)),
        "only alerts whose incident asks for it are resolved"
    );
    assert_documented(&account.ilert);
}

#[tokio::test]
async fn every_open_alert_of_a_large_account_is_reached_listed_newest_first() {
    every_open_alert_is_reached(ListOrder::NewestFirst).await;
}

#[tokio::test]
async fn every_open_alert_of_a_large_account_is_reached_listed_oldest_first() {
    every_open_alert_is_reached(ListOrder::OldestFirst).await;
}

/// Paged by index, the alerts someone resolves on the first page move the rest up, and the
/// alert that slides across the boundary is never read. Paged by `reportTime`, none is hidden.
#[tokio::test]
async fn alerts_resolved_by_others_between_two_pages_hide_no_other() {
    for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
        let account = Account::spawn(order).await;
        // 450 open alerts, a second apart: five pages, read in one pass.
        for i in 0..450u64 {
            let at = LONG_AGO_MS + i as i64 * 1000;
            account
                .ilert
                .add_alert_reported(2_000_000 + i, "PENDING", at, 4000);
        }
        // After the first page, someone resolves ten alerts of it in iLert's app.
        let first_page: Vec<u64> = match order {
            ListOrder::NewestFirst => (440..450).map(|i| 2_000_000 + i).collect(),
            ListOrder::OldestFirst => (0..10).map(|i| 2_000_000 + i).collect(),
        };
        account.ilert.resolve_after_lists(1, first_page);
        // The desk resolved the incidents of the alerts at every page boundary and next to it.
        let at_risk: Vec<u64> = (1..5)
            .flat_map(|page| [page * 100 - 1, page * 100, page * 100 + 1])
            .flat_map(|i| [i, 449 - i])
            .map(|i| 2_000_000 + i)
            .collect();
        for alert in &at_risk {
            account.desk_resolved(*alert);
        }
        let report = account.pass().await;
        assert_eq!(report.failure, None, "{report:?}");
        assert_eq!(
            account.ilert.faults_pending(),
            0,
            "the change between pages was made"
        );
        let missed: Vec<&u64> = at_risk.iter().filter(|a| !account.resolved(**a)).collect();
        assert!(
            missed.is_empty(),
            "{order:?}: one pass over 450 open alerts missed {missed:?}"
        );
        assert_documented(&account.ilert);
    }
}

#[tokio::test]
async fn every_request_to_ilert_is_one_ilerts_openapi_documents() {
    let account = Account::spawn(ListOrder::NewestFirst).await;
    fill(&account.ilert);
    account.desk_resolved(1_000_010);
    // A recent alert the function opened, then the desk took it.
    account.ilert.add_alert(12797430, "PENDING");
    account.app.deliver("01-alert-created").await;
    let incident = account.app.servicenow.incident_for(KEY).unwrap();
    let number = incident["number"].as_str().unwrap().to_owned();
    let sys_id = incident["sys_id"].as_str().unwrap().to_owned();
    account
        .app
        .servicenow
        .desk_edit(&number, DESK, &[("state", "2")])
        .unwrap();
    // The business rule's push reads the alert, then accepts it.
    let mut push = with_authorization(
        event("01-alert-created"),
        Some(&format!("Bearer {PUSH_TOKEN}")),
    );
    *push.uri_mut() = "/servicenow".parse().unwrap();
    let pushed = account
        .app
        .send(with_body(push, json!({ "sys_id": sys_id }).to_string()))
        .await;
    assert_eq!(pushed.body["action"], "accepted", "{}", pushed.text);
    for _ in 0..3 {
        account.pass().await;
    }
    // iLert's echo of the accept, which asks who the key acts as.
    for echo in account.ilert.take_echoes() {
        account
            .app
            .send(with_body(event("02-alert-acknowledged"), echo.to_string()))
            .await;
    }

    let requests = account.ilert.requests();
    assert_documented(&account.ilert);
    let mut operations: Vec<String> = Vec::new();
    for request in &requests {
        let operation = format!(
            "{} {}",
            request.method,
            request
                .path
                .split('/')
                .map(
                    |s| if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                        "{id}"
                    } else {
                        s
                    }
                )
                .collect::<Vec<_>>()
                .join("/")
        );
        if !operations.contains(&operation) {
            operations.push(operation);
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "GET /api/alerts",
            "GET /api/alerts/{id}",
            "GET /api/users/current",
            "PUT /api/alerts/{id}/accept",
            "PUT /api/alerts/{id}/resolve",
        ],
        "every operation the function uses was exercised and held against iLert's API \
         {ILERT_OPENAPI_VERSION}"
    );
    assert!(
        requests.iter().any(|r| r.query.contains("until=")),
        "the list's time windows were exercised"
    );
}

#[tokio::test]
async fn connections_that_share_an_ilert_key_list_once_per_pass() {
    let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
    let ilert_url = ilert.url();
    let test = ServiceNowSimulator::start(SN_USER, SN_PASSWORD)
        .await
        .unwrap();
    let test_url = test.url();
    // One key at the top of the secret, for both instances.
    let app = TestApp::spawn_with(Settings::default(), move |secret| {
        let prod = secret.clone();
        let mut other = secret.clone();
        other["instance_url"] = json!(test_url);
        *secret = json!({
            "instances": { "acme-prod": prod, "acme-test": other },
            "ilert_api_key": ILERT_KEY,
            "ilert_api_url": ilert_url,
        });
    })
    .await;
    for i in 0..250u64 {
        ilert.add_alert_reported(
            3_000_000 + i,
            "PENDING",
            LONG_AGO_MS + i as i64 * 1000,
            4000,
        );
    }
    let prod_number = app.servicenow.insert(&[
        ("correlation_id", "ilert:3000005"),
        ("correlation_display", "iLert"),
        ("sys_created_by", SN_USER),
        ("short_description", "PENDING Host is DOWN"),
        ("state", "1"),
    ]);
    app.servicenow
        .desk_edit(&prod_number, DESK, &[("state", "2")])
        .unwrap();
    let test_number = test.insert(&[
        ("correlation_id", "ilert:3000006"),
        ("correlation_display", "iLert"),
        ("sys_created_by", SN_USER),
        ("short_description", "PENDING Host is DOWN"),
        ("state", "1"),
    ]);
    test.desk_edit(
        &test_number,
        DESK,
        &[
            ("state", "6"),
            ("close_code", "Solution provided"),
            ("close_notes", "Fixed."),
        ],
    )
    .unwrap();

    let deadline_ms = ilert_servicenow::flow::budget::epoch_ms() + 20_000;
    let report = app.handler.back_sync_pass(Some(deadline_ms)).await;

    assert_eq!(report.failure, None, "{report:?}");
    assert_eq!((report.accepted, report.resolved), (1, 1), "{report:?}");
    let lists = ilert
        .requests()
        .iter()
        .filter(|r| r.path == "/api/alerts")
        .count();
    assert_eq!(
        lists, 3,
        "250 open alerts are three pages, listed once for both instances"
    );
    assert_eq!(ilert.alert_status(3000005).as_deref(), Some("ACCEPTED"));
    assert_eq!(ilert.alert_status(3000006).as_deref(), Some("RESOLVED"));
}
