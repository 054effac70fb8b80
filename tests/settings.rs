//! Alert-action settings on the webhook URL, over the deployment's `DEFAULT_*` defaults, land
//! on the incident in the ServiceNow simulator.

mod support;

use ilert_servicenow::domain::settings::Settings;
use serde_json::Value;
use support::*;

fn user_requests(app: &TestApp) -> usize {
    app.servicenow
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/now/table/sys_user"))
        .count()
}

#[tokio::test]
async fn settings_in_the_webhook_url_land_on_the_incident() {
    let app = TestApp::spawn().await;
    let oncall = app
        .servicenow
        .add_user("oncall", "oncall@example.com", "On Call");
    let query = "assignment_group=Network&category=Software&subcategory=Gateway\
                 &cmdb_ci=api-gateway-prod&business_service=Payments&service_offering=Payments%20EU\
                 &contact_type=monitoring&location=Frankfurt&company=ACME\
                 &impact=1&urgency=2&caller_id=OnCall%40Example.com";
    let answer = app.send(event_at("01-alert-created", query)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let incident = app.incident();
    for (field, value) in [
        ("assignment_group", "Network"),
        ("category", "Software"),
        ("subcategory", "Gateway"),
        ("cmdb_ci", "api-gateway-prod"),
        ("business_service", "Payments"),
        ("service_offering", "Payments EU"),
        ("contact_type", "monitoring"),
        ("location", "Frankfurt"),
        ("company", "ACME"),
        ("impact", "1"),
        ("urgency", "2"),
        ("priority", "2"),
    ] {
        assert_eq!(incident[field], value, "{field}");
    }
    assert_eq!(
        incident["caller_id"],
        oncall.as_str(),
        "the email became its user"
    );
}

#[tokio::test]
async fn without_a_caller_setting_the_integration_user_is_the_caller() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    let integration_user = app.servicenow.requests().iter().any(|r| {
        r.query
            .get("sysparm_query")
            .is_some_and(|q| q.starts_with(&format!("user_name={SN_USER}")))
    });
    assert!(integration_user);
    assert_eq!(
        app.incident()["caller_id"].as_str(),
        app.servicenow.user_sys_id(SN_USER).as_deref(),
        "the integration user's sys_id"
    );
}

#[tokio::test]
async fn a_caller_email_is_looked_up_once_per_environment() {
    let app = TestApp::spawn().await;
    app.servicenow
        .add_user("oncall", "oncall@example.com", "On Call");
    app.send(event_at(
        "01-alert-created",
        "caller_id=oncall%40example.com",
    ))
    .await;
    app.send(event_at(
        "06-legacy-docs-sample",
        "caller_id=oncall%40example.com",
    ))
    .await;
    app.send(event_at(
        "05-test-connection",
        "caller_id=oncall%40example.com",
    ))
    .await;
    assert_eq!(app.servicenow.incidents().len(), 3);
    assert_eq!(user_requests(&app), 1);
}

#[tokio::test]
async fn an_unknown_caller_email_is_a_502_that_names_it_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(event_at(
            "01-alert-created",
            "caller_id=nobody%40example.com",
        ))
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("nobody@example.com"));
    assert!(app.servicenow.incidents().is_empty());
}

#[tokio::test]
async fn an_invalid_setting_is_a_400_naming_it_and_nothing_reaches_servicenow() {
    let app = TestApp::spawn().await;
    for (query, expected) in [
        ("impact=5", "`impact` in the webhook URL must be 1, 2 or 3"),
        (
            "assignement_group=Network",
            "unknown setting `assignement_group`",
        ),
        ("on_accept=maybe", "state, note or ignore"),
        ("short_description={title}", "unknown placeholder {title}"),
    ] {
        let answer = app.send(event_at("01-alert-created", query)).await;
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.body["error"], "invalid_setting");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    assert!(app.servicenow.requests().is_empty());
}

#[tokio::test]
async fn an_event_a_policy_ignores_makes_no_request_at_all() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    app.servicenow.clear_requests();
    for (name, query) in [
        ("02-alert-acknowledged", "on_accept=ignore"),
        ("03-alert-comment-added", "on_comment=ignore"),
        ("04-alert-resolved", "on_resolve=ignore"),
    ] {
        let answer = app.send(event_at(name, query)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["action"], "ignored", "{name}");
        assert!(answer.body["reason"].as_str().unwrap().contains(query));
    }
    assert!(app.servicenow.requests().is_empty(), "lookup included");
    assert_eq!(app.incident()["state"], "1");
}

#[tokio::test]
async fn comments_can_be_customer_visible_and_resolves_can_leave_the_incident_open() {
    let app = TestApp::spawn().await;
    let query = "on_comment=comment&on_resolve=note";
    for name in LIFECYCLE {
        assert_eq!(app.send(event_at(name, query)).await.status, 200, "{name}");
    }
    let incident = app.incident();
    assert_eq!(incident["state"], "2", "open for the service desk");
    assert_eq!(incident["close_code"], "");
    let number = incident["number"].as_str().unwrap();
    let notes = app.notes(number);
    assert!(notes
        .iter()
        .any(|n| n.starts_with("comments: Comment in iLert: Rolled back")));
    assert!(notes
        .iter()
        .any(|n| n.starts_with("work_notes: Resolved in iLert") && n.contains("stays open")));
}

#[tokio::test]
async fn assign_on_accept_assigns_the_responder_found_by_email() {
    let app = TestApp::spawn().await;
    let jane = app
        .servicenow
        .add_user("jdoe", "jane.doe@example.com", "Jane Doe");
    app.deliver("01-alert-created").await;
    let answer = app
        .send(event_at("02-alert-acknowledged", "assign_on_accept=true"))
        .await;
    assert_eq!(answer.body["action"], "updated", "{}", answer.text);
    assert_eq!(app.incident()["assigned_to"], jane.as_str());
}

#[tokio::test]
async fn assign_on_accept_with_an_unknown_email_leaves_it_unset_and_says_why() {
    let app = TestApp::spawn().await;
    app.deliver("01-alert-created").await;
    let answer = app
        .send(event_at("02-alert-acknowledged", "assign_on_accept=true"))
        .await;
    assert_eq!(answer.status, 200);
    let incident = app.incident();
    assert_eq!(incident["assigned_to"], "");
    let notes = app.notes(incident["number"].as_str().unwrap());
    assert!(notes
        .iter()
        .any(|n| n.contains("no active ServiceNow user has the email jane.doe@example.com")));
}

#[tokio::test]
async fn a_first_resolved_event_creates_a_resolved_incident_when_asked() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(event_at("04-alert-resolved", "create_on_resolved=true"))
        .await;
    assert_eq!(answer.body["action"], "created", "{}", answer.text);
    let incident = app.incident();
    assert_eq!(incident["state"], "6");
    assert_eq!(incident["close_code"], "Solution provided");
}

#[tokio::test]
async fn templates_in_the_url_shape_the_incident() {
    let app = TestApp::spawn().await;
    // iLert sends the URL as configured; braces may arrive percent-encoded or not.
    let query = "short_description=%7Bstatus%7D%20[{priority}]%20{summary}\
                 &ilert_url=https%3A%2F%2Facme.ilert.com\
                 &close_code=Solved%20(Permanently)";
    app.send(event_at("01-alert-created", query)).await;
    let answer = app.send(event_at("04-alert-resolved", query)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let incident = app.incident();
    assert_eq!(
        incident["short_description"],
        "RESOLVED [HIGH] PROBLEM: api-gateway-prod p95 latency > 2s"
    );
    assert!(incident["description"]
        .as_str()
        .unwrap()
        .contains("https://acme.ilert.com/alert/view?id=12797430"));
    assert_eq!(incident["close_code"], "Solved (Permanently)");
}

/// The README's worked example: two alert sources, one deployment, two webhook URLs.
#[tokio::test]
async fn two_alert_sources_with_different_settings_share_one_deployment() {
    let defaults = Settings::from_environment([(
        "DEFAULT_SETTINGS".to_owned(),
        "contact_type=monitoring".to_owned(),
    )])
    .unwrap();
    let app = TestApp::spawn_with(defaults, |_| {}).await;
    let network = "assignment_group=Network&category=Network&on_accept=note";
    let database =
        "assignment_group=Database&impact=1&urgency=1&on_comment=comment&on_resolve=note";

    app.send(event_at("06-legacy-docs-sample", network)).await;
    for name in LIFECYCLE {
        app.send(event_at(name, database)).await;
    }

    let network_incident = app.servicenow.incident_for("ilert:2983781").unwrap();
    assert_eq!(network_incident["assignment_group"], "Network");
    assert_eq!(network_incident["state"], "1", "accepts are notes only");
    let database_incident = app.incident();
    assert_eq!(database_incident["assignment_group"], "Database");
    assert_eq!(database_incident["priority"], "1");
    assert_eq!(database_incident["state"], "2", "resolves leave it open");
    for incident in [&network_incident, &database_incident] {
        assert_eq!(
            incident["contact_type"], "monitoring",
            "the deployment default"
        );
    }
}

#[tokio::test]
async fn deployment_defaults_apply_and_the_webhook_url_wins() {
    let defaults = Settings::from_environment([(
        "DEFAULT_SETTINGS".to_owned(),
        "assignment_group=Service%20Desk&contact_type=monitoring".to_owned(),
    )])
    .unwrap();
    let app = TestApp::spawn_with(defaults, |_| {}).await;
    app.send(event_at("01-alert-created", "assignment_group=Network"))
        .await;
    app.send(event_at("06-legacy-docs-sample", "")).await;
    assert_eq!(app.incident()["assignment_group"], "Network");
    assert_eq!(app.incident()["contact_type"], "monitoring");
    let other: Value = Value::Object(app.servicenow.incident_for("ilert:2983781").unwrap());
    assert_eq!(other["assignment_group"], "Service Desk");
}

#[tokio::test]
async fn unusable_deployment_defaults_are_a_500_naming_the_bad_part() {
    let app = TestApp::spawn().await;
    let defaults = Settings::from_environment([(
        "DEFAULT_SETTINGS".to_owned(),
        "contact_type=monitoring&on_accept=sometimes".to_owned(),
    )]);
    let handler: ilert_servicenow::flow::edge::WebhookHandler<_, _> =
        handler_with_defaults(&app.secrets, SECRET_ID, defaults);
    let response = handler.handle(event("01-alert-created"), None).await;
    assert_eq!(response.status(), 500);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("setting `on_accept` in DEFAULT_SETTINGS must be state, note or ignore"));
    assert!(app.servicenow.requests().is_empty());
}

/// `sam deploy --guided` asks one question per template parameter, in the template's order.
#[test]
fn a_guided_deploy_asks_at_most_fifteen_questions_the_secret_and_the_defaults_first() {
    let template =
        std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let parameters = &template[template.find("\nParameters:\n").unwrap()..];
    let parameters = &parameters[..parameters.find("\nConditions:").unwrap()];
    let names: Vec<&str> = parameters
        .lines()
        .filter_map(|line| line.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| name.chars().all(char::is_alphanumeric))
        .collect();
    assert!(names.len() <= 15, "{} questions: {names:?}", names.len());
    assert_eq!(names[..2], ["SecretArn", "DefaultSettings"]);
    assert!(template.contains("DEFAULT_SETTINGS: !Ref DefaultSettings"));
}

/// The template's dashboard shows only metrics the function writes (and AWS's own), so a
/// renamed metric cannot leave an empty panel behind; and it deploys with every stack.
#[test]
fn the_dashboard_shows_only_metrics_the_function_writes() {
    let template =
        std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let body = &template[template.find("DashboardBody: !Sub |\n").unwrap()..];
    let body: String = body
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("        ") || line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    // `${…}` is CloudFormation's, filled in at deploy time.
    let mut json = String::new();
    let mut rest = body.as_str();
    while let Some(at) = rest.find("${") {
        json.push_str(&rest[..at]);
        json.push('X');
        rest = &rest[at + rest[at..].find('}').unwrap() + 1..];
    }
    json.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&json).expect("the body is JSON");
    let written = ilert_servicenow::flow::telemetry::metric_names();
    let mut shown = Vec::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        let (mut namespace, mut name) = (String::new(), String::new());
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let metric = metric.as_array().unwrap();
            let Some(first) = metric[0].as_str() else {
                continue; // an expression
            };
            if first != "." {
                namespace = first.to_owned();
            }
            if let Some(second) = metric[1].as_str().filter(|s| *s != ".") {
                name = second.to_owned();
            }
            if namespace == "ilert-servicenow" {
                assert!(written.contains(&name.as_str()), "{name} is not written");
                shown.push(name.clone());
            }
        }
    }
    for wanted in [
        "EventsQueuedWhileUnavailable",
        "ServiceNowLatency",
        "BackSyncResolved",
    ] {
        assert!(shown.iter().any(|s| s == wanted), "{wanted} has a panel");
    }
    assert!(
        template.contains("OperatorDashboard}"),
        "an output links to it"
    );
    assert!(
        !template.contains("Condition: Queued"),
        "the queue is every deployment's"
    );
}
