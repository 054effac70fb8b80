//! `cargo run --example demo`: the bundled iLert events replayed through the real handler
//! against the ServiceNow simulator, printing the incident after each one; then the way back:
//! the service desk resolves an incident, and the scheduled pass resolves its alert in the
//! iLert stand-in. Needs no AWS account, no ServiceNow instance and no Docker.

use ilert_servicenow::adapters::api_gateway::HttpApiEvent;
use ilert_servicenow::adapters::secrets::{ConnectionCache, StaticSecret};
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::domain::settings::Settings;
use ilert_servicenow::flow::edge::WebhookHandler;
use lambda_runtime::Context;
use serde_json::{json, Value};
use simulator::{ILertSimulator, ServiceNowSimulator};
use std::io::Write;

/// The token the bundled events carry (`events/*.json`).
pub const DEMO_WEBHOOK_TOKEN: &str = "change-me-webhook-token";

/// The bundled API Gateway events, in lifecycle order, then two redeliveries.
pub const BUNDLED_EVENTS: &[(&str, &str)] = &[
    (
        "01-alert-created",
        include_str!("../events/01-alert-created.json"),
    ),
    (
        "02-alert-acknowledged",
        include_str!("../events/02-alert-acknowledged.json"),
    ),
    (
        "03-alert-comment-added",
        include_str!("../events/03-alert-comment-added.json"),
    ),
    (
        "04-alert-resolved",
        include_str!("../events/04-alert-resolved.json"),
    ),
    (
        "05-test-connection",
        include_str!("../events/05-test-connection.json"),
    ),
    (
        "06-legacy-docs-sample",
        include_str!("../events/06-legacy-docs-sample.json"),
    ),
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    run(&mut std::io::stdout()).await
}

pub async fn run(out: &mut impl Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let simulator = ServiceNowSimulator::start("ilert.integration", "demo-password").await?;
    let ilert = ILertSimulator::start("demo-ilert-api-key").await?;
    // The bundled events' alerts, as iLert has them once they were sent.
    for (alert, status) in [
        (12797430, "RESOLVED"),
        (1, "PENDING"),
        (2983781, "ACCEPTED"),
    ] {
        ilert.add_alert(alert, status);
    }
    let secret = json!({
        "instance_url": simulator.url(),
        "username": "ilert.integration",
        "password": "demo-password",
        "webhook_token": DEMO_WEBHOOK_TOKEN,
        "ilert_api_key": "demo-ilert-api-key",
        "ilert_api_url": ilert.url(),
    });
    let handler: WebhookHandler<_, _> = WebhookHandler::new(
        ConnectionCache::new(
            StaticSecret::new(secret.to_string()),
            ConnectionCache::<StaticSecret>::DEFAULT_TTL,
        ),
        TableApi::new(ilert_servicenow::adapters::http::client()),
        ilert_servicenow::adapters::ilert::ILertApi::new(ilert_servicenow::adapters::http::client()),
        Ok(Settings::default()),
    );
    writeln!(
        out,
        "ServiceNow simulator at {}; replaying {} bundled iLert events, then redelivering two; \
         then the way back.\n",
        simulator.url(),
        BUNDLED_EVENTS.len()
    )?;

    let redeliveries = [BUNDLED_EVENTS[1], BUNDLED_EVENTS[2]];
    for (name, envelope) in BUNDLED_EVENTS.iter().chain(redeliveries.iter()) {
        let event: HttpApiEvent = serde_json::from_str(envelope)?;
        writeln!(out, "── {name}")?;
        deliver(out, &handler, &simulator, event).await?;
    }

    // The way back: the service desk resolves the legacy sample's incident (its alert is
    // ACCEPTED in iLert); the next scheduled pass resolves the alert.
    let number = simulator
        .incident_for("ilert:2983781")
        .and_then(|incident| incident["number"].as_str().map(str::to_owned))
        .ok_or("the legacy sample opened no incident")?;
    writeln!(
        out,
        "── ServiceNow → iLert: the service desk (jane.desk) resolves {number}"
    )?;
    simulator.desk_edit(
        &number,
        "jane.desk",
        &[
            ("state", "6"),
            ("close_code", "Solution provided"),
            ("close_notes", "Switch port replaced."),
        ],
    )?;
    let before = ilert.alert_status(2983781).unwrap_or_default();
    let pass = handler.back_sync_pass(None).await;
    writeln!(
        out,
        "   scheduled pass: {} open alert(s) in iLert, {} behind its incident, {} accepted, {} resolved",
        pass.open_alerts, pass.behind, pass.accepted, pass.resolved
    )?;
    writeln!(
        out,
        "   iLert alert 2983781: {before} → {}",
        ilert.alert_status(2983781).unwrap_or_default()
    )?;
    writeln!(out)?;
    for echo in ilert.take_echoes() {
        writeln!(out, "── iLert's echo of that resolve, to the webhook")?;
        let mut event: HttpApiEvent = serde_json::from_str(BUNDLED_EVENTS[5].1)?;
        event.body = Some(echo.to_string());
        deliver(out, &handler, &simulator, event).await?;
    }
    Ok(())
}

/// One event through the same adapter Lambda's API Gateway events take, and what it did.
async fn deliver<S, T>(
    out: &mut impl Write,
    handler: &WebhookHandler<S, T>,
    simulator: &ServiceNowSimulator,
    event: HttpApiEvent,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: ilert_servicenow::adapters::secrets::SecretSource,
    T: ilert_servicenow::adapters::servicenow::IncidentTable,
{
    simulator.clear_requests();
    let response = ilert_servicenow::startup::answer_http(handler, event, Context::default()).await;
    let answer: Value = serde_json::from_str(&response.body).unwrap_or_default();
    let requests = simulator.requests();
    let calls: Vec<String> = requests
        .iter()
        .map(|r| {
            let table = r.path.trim_start_matches("/api/now/table/");
            let table = table.split('/').next().unwrap_or(table);
            format!("{} {table}", r.method)
        })
        .collect();
    writeln!(out, "   answer {}: {answer}", response.status_code)?;
    writeln!(
        out,
        "   ServiceNow requests: {} ({})",
        calls.len(),
        calls.join(", ")
    )?;
    if let Some(number) = answer["incident"]["number"].as_str() {
        print_incident(out, simulator, number)?;
    }
    writeln!(out)?;
    Ok(())
}

fn print_incident(
    out: &mut impl Write,
    simulator: &ServiceNowSimulator,
    number: &str,
) -> std::io::Result<()> {
    let Some(incident) = simulator
        .incidents()
        .into_iter()
        .find(|i| i["number"] == number)
    else {
        return Ok(());
    };
    let field = |name: &str| incident[name].as_str().unwrap_or_default().to_owned();
    let state = match field("state").as_str() {
        "1" => "1 New",
        "2" => "2 In Progress",
        "3" => "3 On Hold",
        "6" => "6 Resolved",
        "7" => "7 Closed",
        "8" => "8 Canceled",
        _ => "other",
    };
    writeln!(
        out,
        "   {number}  state {state}  impact {}  urgency {}  priority {}",
        field("impact"),
        field("urgency"),
        field("priority")
    )?;
    writeln!(out, "   short_description: {}", field("short_description"))?;
    writeln!(
        out,
        "   correlation: {} ({})",
        field("correlation_id"),
        field("correlation_display")
    )?;
    if !field("close_code").is_empty() {
        writeln!(out, "   close_code: {}", field("close_code"))?;
        for line in field("close_notes").lines() {
            writeln!(out, "   close_notes│ {line}")?;
        }
    }
    for entry in simulator.journal(number) {
        writeln!(out, "   {}: {}", entry.field, entry.text)?;
    }
    Ok(())
}
