//! What the AWS clients (Secrets Manager, SQS) share: one configuration per process, and one
//! reading of what an SDK failure means.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

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

impl SdkFailure {
    /// The message with the service's error code, for an operator.
    pub fn explained(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// What the SDK says when this machine's AWS setup is missing something, and what to do about
/// it in our words: the SDK's own ("dispatch failure: other: missing signing region") do not
/// say.
const LOCAL_SETUP_PROBLEMS: &[(&[&str], &str)] = &[
    (
        &["signing region", "no region", "region must be set"],
        "no AWS region found; set AWS_REGION (or AWS_DEFAULT_REGION) or a profile's region \
         (`aws configure set region eu-central-1`)",
    ),
    (
        &[
            "no providers in chain provided credentials",
            "credential provider was not enabled",
            "no credentials",
            // Off EC2, the chain ends at the instance metadata service, which says only that
            // it is not there.
            "failed to load IMDS session token",
        ],
        "no AWS credentials found; set AWS_PROFILE (after `aws sso login` if it uses SSO), \
         or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
];

/// What a service's refusal of the caller's credentials means, in our words.
const CREDENTIAL_REFUSALS: &[(&str, &str)] = &[
    (
        "ExpiredToken",
        "the AWS credentials have expired; log in again (`aws sso login`) or renew them",
    ),
    (
        "UnrecognizedClient",
        "AWS does not know these credentials; check AWS_PROFILE or the access key",
    ),
    (
        "InvalidSignature",
        "AWS refused the request's signature; check the secret access key and the clock",
    ),
];

/// Throttling, 5xx and network trouble are worth another try; a refusal (access denied, a
/// resource that does not exist) or a request that could not be built is not, nor is a
/// machine's missing AWS setup. Decided by the answer's HTTP status and the SDK's kind of
/// failure; a service's throttling, which AWS answers with a 400, by its code.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let chain = error_chain(error);
    // The SDK says only in words that this machine has no region or credentials.
    if let Some((_, advice)) = LOCAL_SETUP_PROBLEMS
        .iter()
        .find(|(signs, _)| signs.iter().any(|sign| chain.contains(sign)))
    {
        return SdkFailure {
            retryable: false,
            code: None,
            message: (*advice).to_owned(),
        };
    }
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            if let Some((_, advice)) = CREDENTIAL_REFUSALS
                .iter()
                .find(|(sign, _)| code.starts_with(sign))
            {
                return SdkFailure {
                    retryable: false,
                    code: Some(code),
                    message: (*advice).to_owned(),
                };
            }
            let status = service.raw().status().as_u16();
            let throttled = code.contains("Throttl") || code.starts_with("TooManyRequests");
            SdkFailure {
                retryable: status >= 500 || status == 429 || throttled,
                message: service.err().message().unwrap_or_default().to_owned(),
                code: Some(code),
            }
        }
        SdkError::ConstructionFailure(_) => SdkFailure {
            retryable: false,
            code: None,
            message: chain,
        },
        // A request the connector refused to make (a "user" error) will not pass; a timeout,
        // an I/O failure or an answer that could not be read may.
        SdkError::DispatchFailure(dispatch) => SdkFailure {
            retryable: !dispatch.is_user(),
            code: None,
            message: chain,
        },
        _ => SdkFailure {
            retryable: true,
            code: None,
            message: chain,
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    /// A request that never left the machine, failed with the SDK's words.
    fn failed_locally(words: &str) -> SdkFailure {
        let error: SdkError<GetSecretValueError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(words.to_owned().into(), None));
        classify(&error)
    }

    #[test]
    fn a_machine_without_aws_setup_is_told_what_to_set_and_not_retried() {
        for (sdk_words, ours) in [
            (
                "missing signing region",
                "no AWS region found; set AWS_REGION",
            ),
            (
                "the credential provider was not enabled: no credentials found in chain",
                "no AWS credentials found",
            ),
            (
                "an error occurred while loading credentials: failed to load IMDS session token: \
                 service error: request forbidden",
                "no AWS credentials found",
            ),
        ] {
            let failure = failed_locally(sdk_words);
            assert!(
                failure.message.starts_with(ours),
                "{sdk_words}: {failure:?}"
            );
            assert!(!failure.retryable, "{sdk_words}");
        }
    }

    #[test]
    fn network_trouble_keeps_the_sdks_words_and_is_retried() {
        let failure = failed_locally("connection refused");
        assert!(failure.retryable);
        assert!(
            failure.message.contains("connection refused"),
            "{failure:?}"
        );
    }

    /// A service's answer with this HTTP status and error code.
    fn answered(status: u16, code: &str) -> SdkFailure {
        use aws_sdk_secretsmanager::error::ErrorMetadata;
        use aws_smithy_types::body::SdkBody;
        let error: SdkError<GetSecretValueError, HttpResponse> = SdkError::service_error(
            GetSecretValueError::generic(ErrorMetadata::builder().code(code).message("m").build()),
            HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                SdkBody::empty(),
            ),
        );
        classify(&error)
    }

    #[test]
    fn a_services_answer_is_judged_by_its_status_and_throttling_code_not_a_list_of_names() {
        // AWS's generic 500 (`InternalFailure`), and any 5xx whatever its code.
        assert!(answered(500, "InternalFailure").retryable);
        assert!(answered(503, "SomethingNew").retryable);
        // Throttling comes as a 400 with a code saying so.
        assert!(answered(400, "ThrottlingException").retryable);
        assert!(answered(400, "RequestThrottled").retryable);
        assert!(answered(429, "TooManyRequestsException").retryable);
        // A refusal stays one.
        assert!(!answered(400, "ResourceNotFoundException").retryable);
        assert!(!answered(403, "AccessDeniedException").retryable);
        assert!(!answered(400, "AWS.SimpleQueueService.NonExistentQueue").retryable);
    }
}
