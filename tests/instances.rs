//! Several ServiceNow instances served by one deployment: the secret's `instances`, chosen by
//! `instance=<name>` on the webhook URL, each with its own credentials, OAuth token, users and
//! time; one down never holds up another; the way back passes over every one.

mod support;

use serde_json::{json, Value};
use simulator::{Fault, ILertSimulator, ServiceNowSimulator};
use std::time::Duration;
use support::*;

/// A deployment whose secret holds `acme-prod` (the app's own simulator) and `acme-test` (a
/// second one), the webhook token shared at the top, with `edit` applied last.
async fn two_instances(edit: impl FnOnce(&mut Value)) -> (TestApp, ServiceNowSimulator) {
    let test = ServiceNowSimulator::start(SN_USER, "Test-pa55-do-not-leak")
        .await
        .unwrap();
    let second = test.clone();
    let app = TestApp::spawn_with(Default::default(), move |secret| {
        let prod = json!({
            "instance_url": secret["instance_url"],
            "username": SN_USER,
            "password": SN_PASSWORD,
        });
        *secret = json!({
            "webhook_token": TOKEN,
            "instances": {
                "acme-prod": prod,
                "acme-test": {
                    "instance_url": second.url(),
                    "username": SN_USER,
                    "password": "Test-pa55-do-not-leak",
                },
            },
        });
        edit(secret);
    })
    .await;
    (app, test)
}

/// Two instances with the way back on: an iLert stand-in and its key, shared at the top.
async fn two_instances_both_ways(
    edit: impl FnOnce(&mut Value),
) -> (TestApp, ServiceNowSimulator, ILertSimulator) {
    let ilert = ILertSimulator::start(ILERT_KEY).await.unwrap();
    let ilert_url = ilert.url();
    let (app, test) = two_instances(move |secret| {
        secret["ilert_api_key"] = json!(ILERT_KEY);
        secret["ilert_api_url"] = json!(ilert_url);
        edit(secret);
    })
    .await;
    (app, test, ilert)
}

#[tokio::test]
async fn each_alert_action_reaches_the_instance_it_names() {
    let (app, test) = two_instances(|_| {}).await;
    let prod = app
        .send(event_at("01-alert-created", "instance=acme-prod"))
        .await;
    assert_eq!(prod.body["action"], "created", "{}", prod.text);
    assert!(app.servicenow.incident_for(KEY).is_some());
    assert!(test.incidents().is_empty(), "nothing reached acme-test");

    // The same alert through a second alert action, for the test instance: the key is per
    // alert, so it lands there too, once.
    let second = app
        .send(event_at(
            "01-alert-created",
            "instance=acme-test&assignment_group=QA",
        ))
        .await;
    assert_eq!(second.body["action"], "created", "{}", second.text);
    assert_eq!(test.incident_for(KEY).unwrap()["assignment_group"], "QA");
    assert_eq!(app.servicenow.incidents().len(), 1);
    let again = app
        .send(event_at("02-alert-acknowledged", "instance=acme-test"))
        .await;
    assert_eq!(again.body["action"], "updated", "{}", again.text);
    assert_eq!(test.incident_for(KEY).unwrap()["state"], "2");
    assert_eq!(app.servicenow.incident_for(KEY).unwrap()["state"], "1");
}

#[tokio::test]
async fn an_unknown_or_missing_instance_is_a_400_naming_the_known_ones_to_a_known_caller_only() {
    let (app, test) = two_instances(|_| {}).await;
    let unknown = app
        .send(event_at("01-alert-created", "instance=acme-staging"))
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    let message = unknown.body["message"].as_str().unwrap();
    assert!(
        message.contains("`acme-staging`") && message.contains("acme-prod, acme-test"),
        "{message}"
    );
    let unnamed = app.send(event_at("01-alert-created", "")).await;
    assert_eq!(unnamed.status, 400, "{}", unnamed.text);
    assert!(
        unnamed.body["message"]
            .as_str()
            .unwrap()
            .contains("add instance=<name> to the webhook URL"),
        "{}",
        unnamed.text
    );
    // Without the token: nothing about the deployment's instances.
    let stranger = app
        .send(with_authorization(
            event_at("01-alert-created", "instance=acme-staging"),
            Some("Bearer guess"),
        ))
        .await;
    assert_eq!(stranger.status, 401, "{}", stranger.text);
    assert!(!stranger.text.contains("acme-prod"), "{}", stranger.text);
    assert!(app.servicenow.requests().is_empty() && test.requests().is_empty());
}

#[tokio::test]
async fn each_instance_may_have_its_own_webhook_token_and_one_does_not_open_another() {
    let (app, test) = two_instances(|secret| {
        secret["instances"]["acme-test"]["webhook_token"] = json!("test-only-token");
    })
    .await;
    let with_test_token = |query: &str| {
        with_authorization(
            event_at("01-alert-created", query),
            Some("Bearer test-only-token"),
        )
    };
    let test_answer = app.send(with_test_token("instance=acme-test")).await;
    assert_eq!(
        test_answer.body["action"], "created",
        "{}",
        test_answer.text
    );
    let prod_refused = app.send(with_test_token("instance=acme-prod")).await;
    assert_eq!(prod_refused.status, 401, "{}", prod_refused.text);
    assert!(app.servicenow.requests().is_empty());
    assert_eq!(test.incidents().len(), 1);
    // The shared token does not open acme-test, which has its own.
    let shared = app
        .send(event_at("01-alert-created", "instance=acme-test"))
        .await;
    assert_eq!(shared.status, 401, "{}", shared.text);
}

/// One instance hanging does not hold up the other: both alert actions' calls run at once,
/// and the healthy instance's answer comes first, whole.
#[tokio::test]
async fn one_instance_down_leaves_the_other_unaffected() {
    let (app, test) = two_instances(|_| {}).await;
    test.set_latency("GET", Duration::from_secs(8));
    let started = std::time::Instant::now();
    let to_test = async {
        let answer = app
            .send(event_at("01-alert-created", "instance=acme-test"))
            .await;
        (answer, started.elapsed())
    };
    let to_prod = async {
        let answer = app
            .send(event_at("01-alert-created", "instance=acme-prod"))
            .await;
        (answer, started.elapsed())
    };
    let ((test_answer, test_done), (prod_answer, prod_done)) = tokio::join!(to_test, to_prod);
    assert_eq!(
        prod_answer.body["action"], "created",
        "{}",
        prod_answer.text
    );
    assert_eq!(test_answer.status, 503, "{}", test_answer.text);
    assert!(
        prod_done < test_done,
        "acme-prod answered after acme-test's timeout: {prod_done:?} vs {test_done:?}"
    );

    // And a refusing instance: a 500 on acme-test is acme-test's alone.
    test.set_latency("GET", Duration::ZERO);
    test.inject(Some("GET"), Fault::status(500, None));
    test.inject(Some("GET"), Fault::status(500, None));
    test.inject(Some("GET"), Fault::status(500, None));
    let prod = app
        .send(event_at("02-alert-acknowledged", "instance=acme-prod"))
        .await;
    assert_eq!(prod.body["action"], "updated", "{}", prod.text);
    assert_eq!(
        test.faults_pending(),
        3,
        "acme-prod's event never met acme-test"
    );
    test.clear_faults();
}

/// Users are the instance's own: the same email is another sys_id elsewhere, and a cached
/// lookup of one instance is never used for another.
#[tokio::test]
async fn the_caller_is_looked_up_on_each_instance_itself() {
    let (app, test) = two_instances(|_| {}).await;
    let on_prod = app.servicenow.add_user("noc", "noc@acme.com", "NOC Team");
    // Another instance, another history: its users were numbered differently.
    test.add_user("first.hire", "first@acme.com", "First Hire");
    let on_test = test.add_user("noc", "noc@acme.com", "NOC Team");
    assert_ne!(on_prod, on_test);
    for instance in ["acme-prod", "acme-test"] {
        let answer = app
            .send(event_at(
                "01-alert-created",
                &format!("instance={instance}&caller_id=noc%40acme.com"),
            ))
            .await;
        assert_eq!(answer.body["action"], "created", "{}", answer.text);
    }
    assert_eq!(
        app.servicenow.incident_for(KEY).unwrap()["caller_id"],
        on_prod
    );
    assert_eq!(test.incident_for(KEY).unwrap()["caller_id"], on_test);
}

/// With OAuth on both, each instance's token is fetched once and only ever sent to it.
#[tokio::test]
async fn each_instance_keeps_its_own_oauth_token() {
    let (app, test) = two_instances(|secret| {
        for name in ["acme-prod", "acme-test"] {
            secret["instances"][name]["client_id"] = json!(format!("{name}-client"));
            secret["instances"][name]["client_secret"] = json!("0auth-Cl1ent-S3cret");
        }
    })
    .await;
    app.servicenow
        .enable_oauth("acme-prod-client", "0auth-Cl1ent-S3cret");
    test.enable_oauth("acme-test-client", "0auth-Cl1ent-S3cret");
    for name in LIFECYCLE {
        for instance in ["acme-prod", "acme-test"] {
            let answer = app
                .send(event_at(name, &format!("instance={instance}")))
                .await;
            assert_eq!(answer.status, 200, "{instance} {name}: {}", answer.text);
        }
    }
    assert_eq!(
        app.servicenow.token_grants().len(),
        1,
        "one token for acme-prod"
    );
    assert_eq!(test.token_grants().len(), 1, "one token for acme-test");
    for simulator in [&app.servicenow, &test] {
        assert!(simulator
            .incident_requests()
            .iter()
            .all(|request| request.authorization.starts_with("Bearer ")));
    }
}

/// The scheduled pass goes over every instance: a desk's resolve on either reaches iLert.
#[tokio::test]
async fn the_back_sync_passes_over_every_instance() {
    let (app, test, ilert) = two_instances_both_ways(|_| {}).await;
    for (alert_id, instance) in [(2_000_001_u64, "acme-prod"), (2_000_002, "acme-test")] {
        ilert.add_alert(alert_id, "PENDING");
        let mut body = body_of("01-alert-created");
        body["id"] = json!(alert_id.to_string());
        let answer = app
            .send(with_body(
                event_at("01-alert-created", &format!("instance={instance}")),
                body.to_string(),
            ))
            .await;
        assert_eq!(answer.body["action"], "created", "{}", answer.text);
    }
    let resolve = |simulator: &ServiceNowSimulator, alert_id: u64| {
        let number = simulator
            .incident_for(&format!("ilert:{alert_id}"))
            .unwrap()["number"]
            .as_str()
            .unwrap()
            .to_owned();
        simulator
            .desk_edit(
                &number,
                "desk.agent",
                &[
                    ("state", "6"),
                    ("close_code", "Solution provided"),
                    ("close_notes", "Fixed at the desk."),
                ],
            )
            .unwrap();
    };
    resolve(&app.servicenow, 2_000_001);
    resolve(&test, 2_000_002);

    let report = app.handler.back_sync_pass(None).await;
    assert_eq!(report.resolved, 2, "{report:?}");
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(ilert.alert_status(2_000_001).as_deref(), Some("RESOLVED"));
    assert_eq!(ilert.alert_status(2_000_002).as_deref(), Some("RESOLVED"));
}

/// ServiceNow's push names its instance on its URL, and presents that connection's token.
#[tokio::test]
async fn the_push_reads_the_incident_on_the_instance_it_names() {
    let (app, test, ilert) = two_instances_both_ways(|secret| {
        secret["servicenow_token"] = json!(PUSH_TOKEN);
    })
    .await;
    ilert.add_alert(12797430, "PENDING");
    let created = app
        .send(event_at("01-alert-created", "instance=acme-test"))
        .await;
    let sys_id = created.body["incident"]["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let number = created.body["incident"]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    test.desk_edit(&number, "desk.agent", &[("state", "2")])
        .unwrap();
    let push = |instance: &str| {
        let mut request = with_authorization(
            with_body(
                event("01-alert-created"),
                json!({ "sys_id": sys_id }).to_string(),
            ),
            Some(&format!("Bearer {PUSH_TOKEN}")),
        );
        *request.uri_mut() = format!("/servicenow?instance={instance}").parse().unwrap();
        request
    };
    let elsewhere = app.send(push("acme-prod")).await;
    assert_eq!(
        elsewhere.status, 404,
        "acme-prod has no such incident: {}",
        elsewhere.text
    );
    let answer = app.send(push("acme-test")).await;
    assert_eq!(answer.body["action"], "accepted", "{}", answer.text);
    assert_eq!(ilert.alert_status(12797430).as_deref(), Some("ACCEPTED"));
}

/// On a provider's deployment each customer's token opens its own instance: a wrong name is
/// answered with the instances that token opens, never the others'.
#[tokio::test]
async fn an_unknown_instance_is_answered_with_only_the_instances_the_caller_may_use() {
    let (app, _test) = two_instances(|secret| {
        secret["instances"]["acme-test"]["webhook_token"] = json!("test-only-token");
    })
    .await;
    let answer = app
        .send(with_authorization(
            event_at("01-alert-created", "instance=acme"),
            Some("Bearer test-only-token"),
        ))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let message = answer.body["message"].as_str().unwrap();
    assert!(message.contains("they open acme-test"), "{message}");
    assert!(!message.contains("acme-prod"), "{message}");
}

/// A default instance the secret does not hold is the deployment's mistake (500, retried),
/// not the alert action's; an empty `instance=` on the URL clears the default, as any
/// setting's empty value does.
#[tokio::test]
async fn a_default_instance_the_secret_lacks_is_a_500_and_an_empty_one_clears_it() {
    let test = ServiceNowSimulator::start(SN_USER, SN_PASSWORD)
        .await
        .unwrap();
    let test_url = test.url();
    let defaults = ilert_servicenow::domain::settings::Settings::from_environment([(
        "DEFAULT_SETTINGS".to_owned(),
        "instance=acme-staging".to_owned(),
    )])
    .unwrap();
    let app = TestApp::spawn_with(defaults, move |secret| {
        let default = secret.clone();
        let mut other = secret.clone();
        other["instance_url"] = json!(test_url);
        *secret = json!({ "instances": { "default": default, "acme-test": other } });
    })
    .await;
    let answer = app.send(event_at("01-alert-created", "")).await;
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("DEFAULT_SETTINGS"),
        "{}",
        answer.text
    );
    let cleared = app.send(event_at("01-alert-created", "instance=")).await;
    assert_eq!(cleared.body["action"], "created", "{}", cleared.text);
    assert!(
        app.servicenow.incident_for(KEY).is_some(),
        "reached `default`"
    );
    assert!(test.incidents().is_empty());
}

/// Instances sharing one iLert key share its rate limit: one pass over both spends no more of
/// the key's calls than a pass over one may (50), where each alone would take 50.
#[tokio::test]
async fn instances_sharing_an_ilert_key_share_its_calls() {
    let (app, test, ilert) = two_instances_both_ways(|_| {}).await;
    for (offset, simulator) in [(3_000_000_u64, &app.servicenow), (3_100_000, &test)] {
        for n in 0..40 {
            let alert_id = offset + n;
            ilert.add_alert(alert_id, "PENDING");
            simulator.insert(&[
                ("correlation_id", &format!("ilert:{alert_id}")),
                ("correlation_display", "iLert"),
                ("sys_created_by", SN_USER),
                ("short_description", "PENDING Host is DOWN"),
                ("state", "6"),
                ("close_code", "Solution provided"),
                ("close_notes", "Fixed at the desk."),
            ]);
        }
    }
    ilert.clear_requests();
    let report = app.handler.back_sync_pass(None).await;
    let calls = ilert.requests().len();
    assert!(
        calls <= 50,
        "{calls} calls to iLert in one pass: {report:?}"
    );
    assert!(report.resolved > 0 && report.deferred > 0, "{report:?}");
}

/// A provider's secret: two good customers and one whose entry has a typo (plain http), with
/// a webhook token of its own.
async fn with_a_broken_customer() -> (TestApp, ServiceNowSimulator, ILertSimulator) {
    two_instances_both_ways(|secret| {
        secret["instances"]["typo-corp"] = json!({
            "instance_url": "http://typo-corp.service-now.com",
            "username": SN_USER,
            "password": "Typo-pa55-do-not-leak",
            "webhook_token": "typo-corp-own-token",
        });
    })
    .await
}

#[tokio::test]
async fn one_customers_broken_entry_stops_only_that_customer() {
    let (app, test, ilert) = with_a_broken_customer().await;

    // The others work as before.
    let prod = app
        .send(event_at("01-alert-created", "instance=acme-prod"))
        .await;
    assert_eq!(prod.body["action"], "created", "{}", prod.text);
    let other = app
        .send(event_at("01-alert-created", "instance=acme-test"))
        .await;
    assert_eq!(other.body["action"], "created", "{}", other.text);
    assert_eq!(test.incidents().len(), 1);

    // Its own caller is told it is the function's configuration, and which key.
    let own = with_authorization(
        event_at("01-alert-created", "instance=typo-corp"),
        Some("Bearer typo-corp-own-token"),
    );
    let broken = app.send(own).await;
    assert_eq!(broken.status, 500, "{}", broken.text);
    assert!(
        broken.text.contains("instance_url") && broken.text.contains("https"),
        "{}",
        broken.text
    );
    assert!(!broken.text.contains("Typo-pa55"), "{}", broken.text);

    // Another customer's caller learns nothing of it: the name is unknown to them.
    let probe = app
        .send(event_at("01-alert-created", "instance=typo-corp"))
        .await;
    assert_eq!(probe.status, 400, "{}", probe.text);
    assert!(
        !probe.text.contains("unusable") && !probe.text.contains("instance_url"),
        "{}",
        probe.text
    );

    // The way back passes over the good ones; the broken one fails alone.
    let report = app
        .handler
        .back_sync_pass(Some(ilert_servicenow::flow::budget::epoch_ms() + 20_000))
        .await;
    assert_eq!(
        report.failure.as_ref().map(|f| f.kind()),
        Some("misconfigured"),
        "{report:?}"
    );
    assert!(
        ilert.requests().iter().any(|r| r.path == "/api/alerts"),
        "the good instances' pass still ran"
    );
}

#[tokio::test]
async fn a_push_token_opens_only_its_own_instance_and_names_no_other() {
    let (app, test, _ilert) = two_instances_both_ways(|secret| {
        for (name, token) in [
            ("acme-prod", "prod-push-token"),
            ("acme-test", "test-push-token"),
        ] {
            secret["instances"][name]["servicenow_token"] = json!(token);
        }
        secret["shared_keys"] = json!(["ilert_api_key", "ilert_api_url"]);
    })
    .await;
    let sys_id = test.insert(&[("correlation_id", "ilert:1"), ("state", "6")]);
    let sys_id = test.incident_by_number(&sys_id).unwrap()["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let push = |query: &str, token: &str| {
        let mut request =
            with_authorization(event("01-alert-created"), Some(&format!("Bearer {token}")));
        *request.uri_mut() = format!("/servicenow?{query}").parse().unwrap();
        with_body(request, json!({ "sys_id": sys_id }).to_string())
    };

    let wrong = app
        .send(push("instance=acme-test", "prod-push-token"))
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let own = app
        .send(push("instance=acme-test", "test-push-token"))
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    let unknown = app.send(push("instance=globex", "prod-push-token")).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(
        unknown.text.contains("acme-prod") && !unknown.text.contains("acme-test"),
        "{}",
        unknown.text
    );
}
