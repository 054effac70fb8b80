#![recursion_limit = "256"]
//! Wiring only: the Lambda entry point, and the `demo` command for trying it locally.

use ilert_servicenow::lambda;
use ilert_servicenow::retry::{time_budget_from, DEFAULT_TIME_BUDGET};
use ilert_servicenow::secrets::{cache_ttl_from, AwsSecretsManager, ConnectionCache};
use ilert_servicenow::servicenow::TableApi;
use ilert_servicenow::settings::Settings;
use ilert_servicenow::simulator::ServiceNowSimulator;
use ilert_servicenow::telemetry::Metrics;
use ilert_servicenow::webhook::WebhookHandler;
use lambda_http::Error;

const USAGE: &str = "usage: ilert-servicenow [demo | simulator [PORT]]
  (no command)      in AWS Lambda: serve iLert webhook calls; elsewhere: same as demo
  demo              replay the bundled iLert events against a built-in ServiceNow simulator
  simulator [PORT]  serve the ServiceNow simulator on 127.0.0.1:PORT (default 8089) until
                    stopped, for trying the function with `cargo lambda watch`";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match std::env::args().nth(1).as_deref() {
        None if in_lambda => serve_lambda().await,
        None | Some("demo") => {
            lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
            ilert_servicenow::demo::run(&mut std::io::stdout()).await?;
            Ok(())
        }
        Some("simulator") => {
            let port = match std::env::args().nth(2).map(|p| p.parse::<u16>()) {
                None => 8089,
                Some(Ok(port)) => port,
                Some(Err(_)) => {
                    eprintln!("PORT must be a number\n{USAGE}");
                    std::process::exit(2);
                }
            };
            let (user, password) = ("ilert.integration", "simulator-password");
            let simulator =
                ServiceNowSimulator::start_at(([127, 0, 0, 1], port).into(), user, password)
                    .await?;
            println!(
                "ServiceNow simulator at {} (user {user}, password {password}); Ctrl-C stops it.",
                simulator.url()
            );
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("unknown command {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

async fn serve_lambda() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let ttl = cache_ttl_from(std::env::var("SECRET_CACHE_TTL_SECONDS").ok().as_deref())
        .unwrap_or_else(|problem| {
            tracing::warn!("{problem}; using the default");
            ConnectionCache::<AwsSecretsManager>::DEFAULT_TTL
        });
    let time_budget = time_budget_from(std::env::var("TIME_BUDGET_SECONDS").ok().as_deref())
        .unwrap_or_else(|problem| {
            tracing::warn!("{problem}; using the default");
            DEFAULT_TIME_BUDGET
        });
    let handler = WebhookHandler::new(
        ConnectionCache::new(AwsSecretsManager::from_env().await, ttl),
        TableApi::new(TableApi::default_http_client()),
        Settings::from_environment(std::env::vars()),
    )
    .with_time_budget(time_budget)
    .with_metrics(Metrics::Stdout);
    lambda::serve(&handler).await
}
