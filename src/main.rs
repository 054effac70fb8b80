#![recursion_limit = "256"]
//! Wiring only: the Lambda entry point, and the commands for operating it.

use ilert_servicenow::adapters::api_gateway;
use ilert_servicenow::adapters::secrets::{cache_ttl_from, AwsSecretsManager, ConnectionCache};
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::domain::settings::Settings;
use ilert_servicenow::flow::budget::{time_budget_from, DEFAULT_TIME_BUDGET};
use ilert_servicenow::flow::edge::WebhookHandler;
use ilert_servicenow::ops::telemetry::Metrics;
use lambda_http::Error;

const USAGE: &str = "usage: ilert-servicenow [COMMAND]
  (no command)      in AWS Lambda: serve iLert webhook calls
  check [--create-test-incident]
                    with the Lambda's environment (SERVICENOW_SECRET_ID, AWS variables):
                    read the secret, reach the instance, authenticate, read and write
                    incidents; with --create-test-incident also create one and resolve it
  send FILE [QUERY] run one event (an events/*.json file or an iLert body) through the
                    function against the configured instance, with the alert action's
                    settings as QUERY (e.g. 'assignment_group=Network'); prints the answer

To try it without AWS or ServiceNow: `cargo run --example demo` in the repository.";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match std::env::args().nth(1).as_deref() {
        None if in_lambda => serve_lambda().await,
        None => {
            usage_error("no command given, and not in AWS Lambda (AWS_LAMBDA_RUNTIME_API is unset)")
        }
        Some("check") => {
            let create_test_incident = match std::env::args().nth(2).as_deref() {
                None => false,
                Some("--create-test-incident") => true,
                Some(other) => usage_error(&format!("unknown option {other:?} for check")),
            };
            let close_code = Settings::from_environment(std::env::vars())
                .map(|settings| settings.close_code)
                .unwrap_or_else(|_| Settings::default().close_code);
            let passed = ilert_servicenow::ops::commands::check(
                AwsSecretsManager::from_env().await,
                &TableApi::new(TableApi::default_http_client()),
                &close_code,
                create_test_incident,
                &mut std::io::stdout(),
            )
            .await;
            std::process::exit(if passed { 0 } else { 1 });
        }
        Some("send") => {
            let Some(path) = std::env::args().nth(2) else {
                usage_error("send needs a FILE");
            };
            let query = std::env::args().nth(3).unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .map_err(|error| format!("cannot read {path}: {error}"))?;
            let handler = lambda_handler().await;
            match ilert_servicenow::ops::commands::send(
                &handler,
                &text,
                &query,
                &mut std::io::stdout(),
            )
            .await
            {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(problem) => {
                    eprintln!("{problem}");
                    std::process::exit(1);
                }
            }
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => usage_error(&format!("unknown command {other:?}")),
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    std::process::exit(2);
}

async fn serve_lambda() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let handler = lambda_handler().await.with_metrics(Metrics::Stdout);
    // The first event needs the secret: read it while the runtime waits for that event.
    let prefetch = async {
        if let Err(problem) = handler.connection().await {
            tracing::warn!(%problem, "could not read the secret yet; the first event will try again");
        }
    };
    let (served, ()) = tokio::join!(api_gateway::serve(&handler), prefetch);
    served
}

/// The function as Lambda runs it, configured from the environment.
async fn lambda_handler() -> WebhookHandler<AwsSecretsManager, TableApi> {
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
    WebhookHandler::new(
        ConnectionCache::new(AwsSecretsManager::from_env().await, ttl),
        TableApi::new(TableApi::default_http_client()),
        Settings::from_environment(std::env::vars()),
    )
    .with_time_budget(time_budget)
}
