//! The function's AWS wiring honours the standard variables, so it can be pointed at a local
//! Secrets Manager. Its own test binary: it sets process-wide environment variables.

use ilert_servicenow::adapters::secrets::{AwsSecretsManager, SecretSource};
use secrecy::ExposeSecret;
use simulator::SecretsManagerSimulator;

#[tokio::test]
async fn the_secret_is_read_from_the_endpoint_named_in_aws_endpoint_url_secrets_manager() {
    let emulator = SecretsManagerSimulator::start().await.unwrap();
    emulator.put("ilert/servicenow", r#"{"from":"the local emulator"}"#);
    for (name, value) in [
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", emulator.url().as_str()),
        ("SERVICENOW_SECRET_ID", "ilert/servicenow"),
        ("AWS_REGION", "eu-central-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDLOCAL"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ] {
        std::env::set_var(name, value);
    }

    let source = AwsSecretsManager::from_env().await;
    assert_eq!(source.secret_name(), "ilert/servicenow");
    let secret = source.fetch().await.unwrap();
    assert_eq!(secret.expose_secret(), r#"{"from":"the local emulator"}"#);
    assert_eq!(emulator.reads(), 1);
}
