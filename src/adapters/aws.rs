//! What the AWS clients (Secrets Manager, SQS) share: one configuration per process, and one
//! reading of what an SDK failure means.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL_*` for local
/// emulators), loaded once and shared by every client, over the process's HTTP client.
pub async fn load_config(http: reqwest::Client) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::adapters::http::for_aws(http));
    // Lambda puts the function's credentials in the environment. Building the default
    // chain anyway (profiles, SSO, IMDS, ECS) costs a cold start milliseconds for an HTTP
    // client it never uses; elsewhere (the `check` command) the whole chain is kept.
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if in_lambda && std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

/// An SDK call that failed: whether another try may succeed, the service's error code when it
/// answered, and what went wrong in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFailure {
    pub retryable: bool,
    pub code: Option<String>,
    pub message: String,
}

/// Throttling, 5xx and network trouble are worth another try; a refusal (access denied, a
/// resource that does not exist) or a request that could not be built is not.
pub fn classify<E, R>(error: &SdkError<E, R>) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let retryable = [
                "Throttling",
                "RequestThrottled",
                "InternalServiceError",
                "InternalError",
                "ServiceUnavailable",
                "RequestTimeout",
                "KmsThrottled",
            ]
            .iter()
            .any(|transient| code.starts_with(transient) || code.ends_with(transient));
            SdkFailure {
                retryable,
                message: service.err().message().unwrap_or_default().to_owned(),
                code: Some(code),
            }
        }
        SdkError::ConstructionFailure(_) => SdkFailure {
            retryable: false,
            code: None,
            message: error_chain(error),
        },
        _ => SdkFailure {
            retryable: true,
            code: None,
            message: error_chain(error),
        },
    }
}

/// An error and every cause under it, joined: the SDK's top-level message alone ("dispatch
/// failure") says nothing.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
