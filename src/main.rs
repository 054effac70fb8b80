//! Wiring only: in Lambda the function `startup` composes, elsewhere the commands for
//! operating it.

use clap::{Parser, Subcommand};
use ilert_servicenow::adapters::aws::load_config;
use ilert_servicenow::adapters::http;
use ilert_servicenow::adapters::ilert::ILertApi;
use ilert_servicenow::adapters::queue::SqsQueue;
use ilert_servicenow::adapters::secrets::AwsSecretsManager;
use ilert_servicenow::adapters::servicenow::TableApi;
use ilert_servicenow::config::Config;
use ilert_servicenow::flow::telemetry::Metrics;
use ilert_servicenow::ops::secret::{self, SecretStore};
use ilert_servicenow::ops::{check, send};
use ilert_servicenow::startup;
use lambda_runtime::Error;
use std::path::PathBuf;

/// In AWS Lambda (no command): serves iLert webhook calls. Elsewhere, with the Lambda's
/// environment (SERVICENOW_SECRET_ID and the AWS variables): operator commands.
#[derive(Parser)]
#[command(
    name = "ilert-servicenow",
    version,
    after_help = "To try the function without AWS or ServiceNow: `cargo run --example demo` in its repository."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Write or update the secret the function reads (SERVICENOW_SECRET_ID): the ServiceNow
    /// connection and a generated webhook token. Asks for what is missing, never echoes the
    /// password, and prints the secret's ARN and what to paste into iLert.
    Secret {
        /// The secret's name or ARN [default: SERVICENOW_SECRET_ID, else ilert/servicenow].
        #[arg(long)]
        secret_id: Option<String>,
        #[command(flatten)]
        asked: secret::Asked,
        /// Print the webhook token rather than the command that reads it.
        #[arg(long)]
        show_token: bool,
        /// The stack's WebhookUrl output, to print the alert action's URL in full.
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Read the secret, reach the instance, authenticate, read and write incidents.
    Check {
        /// Also create a test incident and resolve it, like iLert's "Test this connection".
        #[arg(long)]
        create_test_incident: bool,
        /// Check only this one of the secret's instances [default: every one].
        #[arg(long)]
        instance: Option<String>,
    },
    /// Run one event (an events/*.json file or an iLert body) through the function against
    /// the configured instance, and print the answer.
    Send {
        file: PathBuf,
        /// The alert action's settings, as its webhook URL's query string
        /// (e.g. 'assignment_group=Network').
        query: Option<String>,
        /// Send it to this one of the secret's instances (adds `instance=<name>`).
        #[arg(long)]
        instance: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match Cli::parse().command {
        None if in_lambda => serve_lambda().await,
        None => {
            eprintln!(
                "No command given, and not in AWS Lambda (AWS_LAMBDA_RUNTIME_API is unset).\n"
            );
            eprintln!("{}", <Cli as clap::CommandFactory>::command().render_help());
            std::process::exit(2);
        }
        Some(Command::Secret {
            secret_id,
            asked,
            show_token,
            webhook_url,
        }) => {
            let secret_id = secret_id
                .or_else(|| std::env::var("SERVICENOW_SECRET_ID").ok())
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| "ilert/servicenow".to_owned());
            let store = SecretStore::new(&load_config(http::client()).await);
            match secret::run(
                &store,
                &secret_id,
                asked,
                show_token,
                webhook_url.as_deref(),
            )
            .await
            {
                Ok(next_steps) => {
                    print!("{next_steps}");
                    Ok(())
                }
                Err(problem) => {
                    eprintln!("{problem}");
                    std::process::exit(1);
                }
            }
        }
        Some(Command::Check {
            create_test_incident,
            instance,
        }) => {
            let config = Config::from_environment(std::env::vars());
            // Unusable defaults are reported as a configuration problem; the rest of the
            // check goes on with the built-in ones.
            let defaults = config.defaults.clone().unwrap_or_default();
            let http = http::client();
            let aws = load_config(http.clone()).await;
            let passed = check::run(
                AwsSecretsManager::from_config(&aws),
                &TableApi::new(http.clone()),
                &ILertApi::new(http),
                &config.all_problems(),
                &check::Asked {
                    defaults: &defaults,
                    instance: instance.as_deref(),
                    create_test_incident,
                },
                &mut std::io::stdout(),
            )
            .await;
            let queue = config
                .queues
                .as_ref()
                .map(|q| SqsQueue::new(&aws, q.queue_url.clone(), q.dead_letter_url.clone()));
            let passed = check::queue(queue.as_ref(), &mut std::io::stdout()).await && passed;
            std::process::exit(if passed { 0 } else { 1 });
        }
        Some(Command::Send {
            file,
            query,
            instance,
        }) => {
            ilert_servicenow::flow::telemetry::init_command_logs();
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("cannot read {}: {error}", file.display());
                    std::process::exit(1);
                }
            };
            let handler = startup::function_from_environment().await;
            let query = query.unwrap_or_default();
            match send::run(
                &handler,
                &text,
                &query,
                instance.as_deref(),
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
    }
}

async fn serve_lambda() -> Result<(), Error> {
    ilert_servicenow::flow::telemetry::init_logs();
    let handler = startup::function_from_environment()
        .await
        .with_metrics(Metrics::Stdout);
    // The first event needs the secret (and, with the back-sync on, who its iLert key acts
    // as): read them while the runtime waits for that event.
    let prefetch = handler.prefetch();
    let consumer = handler.consumer();
    let (served, ()) = tokio::join!(startup::serve(&handler, consumer.as_ref()), prefetch);
    served
}
