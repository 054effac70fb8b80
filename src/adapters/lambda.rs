//! What Lambda hands the function, by its source: an HTTP call (API Gateway or a function
//! URL) for the webhook, or a batch of queued events from the SQS event source mapping.

use crate::adapters::api_gateway::{self, HttpApiEvent, HttpApiResponse};
use crate::adapters::queue::EventQueue;
use crate::adapters::secrets::SecretSource;
use crate::adapters::servicenow::IncidentTable;
use crate::flow::consumer::QueueConsumer;
use crate::flow::edge::WebhookHandler;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Context, Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

/// One invocation's payload. An SQS batch is told by its `Records`; anything else is an HTTP
/// event (whose fields all have defaults, so it must be tried last).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Queue(SqsEvent),
    Http(HttpApiEvent),
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Answer {
    Queue(SqsBatchResponse),
    Http(HttpApiResponse),
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
        Payload::Http(event) => Answer::Http(api_gateway::answer(webhook, event, context).await),
        Payload::Queue(batch) => match consumer {
            Some(consumer) => Answer::Queue(consumer.consume(batch, deadline_of(&context)).await),
            None => {
                // Only an event source mapping left behind by a change of `Delivery` sends
                // these: hand every record back rather than lose it.
                tracing::error!(
                    records = batch.records.len(),
                    "an SQS batch arrived in direct delivery (DELIVERY is not queued); handing it back"
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

/// The invocation's deadline, in ms since the epoch; 0 is a context made outside Lambda.
pub fn deadline_of(context: &Context) -> Option<u64> {
    Some(context.deadline).filter(|&deadline_ms| deadline_ms > 0)
}
