//! The Lambda adapter: API Gateway HTTP API (v2) events in, their answers out. Written here
//! rather than taken from `lambda_http::run` because that adapter panics on a body flagged as
//! base64 that does not decode; here such a body is an ordinary 400.

use crate::secrets::SecretSource;
use crate::servicenow::IncidentTable;
use crate::webhook::{UndecodableBody, WebhookHandler};
use base64::Engine;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{service_fn, Context, Error, LambdaEvent};
use std::convert::Infallible;

/// Polls the Lambda Runtime API for events until the environment is shut down.
pub async fn serve<S: SecretSource, T: IncidentTable>(
    handler: &WebhookHandler<S, T>,
) -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Infallible>(answer(handler, event.payload, event.context).await)
        },
    ))
    .await
}

/// Answers one API Gateway event with the handler.
pub async fn answer<S: SecretSource, T: IncidentTable>(
    handler: &WebhookHandler<S, T>,
    event: ApiGatewayV2httpRequest,
    context: Context,
) -> ApiGatewayV2httpResponse {
    let response = handler.handle(into_request(event, context)).await;
    into_api_gateway_response(response)
}

fn into_request(mut event: ApiGatewayV2httpRequest, context: Context) -> Request {
    let undecodable = event.is_base64_encoded
        && event.body.as_deref().is_some_and(|body| {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .is_err()
        });
    if undecodable {
        event.body = None;
        event.is_base64_encoded = false;
    }
    let mut request: Request = LambdaRequest::ApiGatewayV2(event).into();
    if undecodable {
        request.extensions_mut().insert(UndecodableBody);
    }
    request.with_lambda_context(context)
}

fn into_api_gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = parts.headers;
    answer.body = match body {
        Body::Empty => None,
        body => Some(body),
    };
    answer
}
