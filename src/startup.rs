//! The composition root: the function built from its configuration (read once, `config`),
//! and Lambda's events handed to the flow. Adapters only translate what Lambda hands over and
//! what goes back; they never call into the flow. `main` only chooses between this and the
//! operator's commands.

use crate::adapters::api_gateway::{self, HttpApiEvent, HttpApiResponse};
use crate::adapters::aws::load_config;
use crate::adapters::http;
use crate::adapters::ilert::ILertApi;
use crate::adapters::lambda::{deadline_of, Answer, Payload};
use crate::adapters::queue::{EventQueue, SqsQueue};
use crate::adapters::secrets::{AwsSecretsManager, ConnectionCache, SecretSource};
use crate::adapters::servicenow::{IncidentTable, TableApi};
use crate::config::Config;
use crate::flow::consumer::QueueConsumer;
use crate::flow::edge::WebhookHandler;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use lambda_runtime::{service_fn, Context, Error, LambdaEvent};
use std::convert::Infallible;

/// The function as Lambda runs it, configured from the environment, read once.
pub async fn function_from_environment() -> WebhookHandler<AwsSecretsManager, TableApi> {
    let config = Config::from_environment(std::env::vars());
    for problem in config.all_problems() {
        tracing::error!(%problem, "the deployment's configuration cannot be used; every call is answered 500 until it is fixed");
    }
    // One HTTP client, so one TLS configuration and one root store, for every service.
    let http = http::client();
    let aws = load_config(http.clone()).await;
    let handler = WebhookHandler::new(
        ConnectionCache::new(
            AwsSecretsManager::from_config(&aws),
            config.secret_cache_ttl,
        ),
        TableApi::new(http.clone()),
        ILertApi::new(http),
        config.defaults.clone(),
    )
    .with_time_budget(config.time_budget)
    .with_settle_delay(config.settle_delay);
    let handler = match &config.queues {
        Some(queues) => {
            let queue = SqsQueue::new(
                &aws,
                queues.queue_url.clone(),
                queues.dead_letter_url.clone(),
            );
            if queues.every_event {
                handler.with_queue(queue)
            } else {
                handler.with_fallback_queue(queue)
            }
        }
        None => handler,
    };
    match config.misconfiguration() {
        Some(problem) => handler.with_misconfiguration(problem),
        None => handler,
    }
}

/// Answers one API Gateway (or function URL) event with the handler.
pub async fn answer_http<S: SecretSource, T: IncidentTable, Q: EventQueue>(
    handler: &WebhookHandler<S, T, Q>,
    event: HttpApiEvent,
    context: Context,
) -> HttpApiResponse {
    let response = handler
        .handle(api_gateway::into_request(event), deadline_of(&context))
        .await;
    api_gateway::into_api_gateway_response(response)
}

/// Polls the Lambda Runtime API for events until the environment is shut down.
pub async fn serve<S: SecretSource, T: IncidentTable, Q: EventQueue>(
    webhook: &WebhookHandler<S, T, Q>,
    consumer: Option<&QueueConsumer<S, T, Q>>,
) -> Result<(), Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        // Boxed: the runtime moves the invocation's future several times, and the whole
        // flow's state machine is kilobytes (profiled: a tenth of the CPU was memcpy).
        let answering = Box::pin(answer(webhook, consumer, event.payload, event.context));
        Ok::<_, Infallible>(answering.await)
    }))
    .await
}

async fn answer<S: SecretSource, T: IncidentTable, Q: EventQueue>(
    webhook: &WebhookHandler<S, T, Q>,
    consumer: Option<&QueueConsumer<S, T, Q>>,
    payload: Payload,
    context: Context,
) -> Answer {
    match payload {
        Payload::Http(event) => Answer::Http(answer_http(webhook, event, context).await),
        Payload::Scheduled => {
            let report = webhook.back_sync_pass(deadline_of(&context)).await;
            Answer::Pass(serde_json::json!({
                "open_alerts": report.open_alerts,
                "behind": report.behind,
                "accepted": report.accepted,
                "resolved": report.resolved,
                "unchanged": report.unchanged,
                "failed": report.failed,
                "refused": report.refused,
                "deferred": report.deferred,
                "failure": report.failure.as_ref().map(|failure| failure.kind()),
            }))
        }
        Payload::Queue(batch) => match consumer {
            Some(consumer) => Answer::Queue(consumer.consume(batch, deadline_of(&context)).await),
            None => {
                // Only an event source mapping left behind by a change of `Delivery` sends
                // these: hand every record back rather than lose it.
                tracing::error!(
                    records = batch.records.len(),
                    "an SQS batch arrived but the function has no queue (QUEUE_URL is not set); handing it back"
                );
                let mut response = SqsBatchResponse::default();
                for record in batch.records {
                    response.add_failure(record.message_id.unwrap_or_default());
                }
                Answer::Queue(response)
            }
        },
    }
}
