//! Where the `secret` command keeps the secret: Secrets Manager, read and written for this
//! command only (the function itself only ever reads).

use crate::adapters::aws;
use secrecy::{ExposeSecret, SecretString};

/// Secrets Manager, for this command only: the function itself only ever reads.
pub struct SecretStore {
    client: aws_sdk_secretsmanager::Client,
}

/// A secret as it stands: its ARN and contents.
pub struct StoredSecret {
    pub arn: String,
    pub contents: SecretString,
}

impl SecretStore {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(aws),
        }
    }

    /// The secret, or `None` if there is no secret by that name yet.
    pub async fn read(&self, secret_id: &str) -> Result<Option<StoredSecret>, String> {
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(answer) => Ok(Some(StoredSecret {
                arn: answer.arn.unwrap_or_else(|| secret_id.to_owned()),
                contents: SecretString::from(answer.secret_string.ok_or_else(|| {
                    format!("secret {secret_id} is binary; this command writes JSON text")
                })?),
            })),
            Err(error) => {
                let failure = aws::classify(&error);
                match failure.code.as_deref() {
                    Some("ResourceNotFoundException") => Ok(None),
                    _ => Err(format!(
                        "could not read secret {secret_id}: {}",
                        failure.explained()
                    )),
                }
            }
        }
    }

    /// Writes `contents` as the secret's new value, creating the secret if `existing` is
    /// `None`. Returns the secret's ARN.
    pub async fn write(
        &self,
        secret_id: &str,
        existing: Option<&StoredSecret>,
        contents: &SecretString,
    ) -> Result<String, String> {
        let failed = |what: &str, failure: aws::SdkFailure| {
            format!(
                "could not {what} secret {secret_id}: {}",
                failure.explained()
            )
        };
        match existing {
            Some(old) => {
                self.client
                    .put_secret_value()
                    .secret_id(&old.arn)
                    .secret_string(contents.expose_secret())
                    .send()
                    .await
                    .map_err(|error| failed("update", aws::classify(&error)))?;
                Ok(old.arn.clone())
            }
            None => {
                let created = self
                    .client
                    .create_secret()
                    .name(secret_id)
                    .description(
                        "ilert-servicenow: the ServiceNow connection and iLert's webhook token",
                    )
                    .secret_string(contents.expose_secret())
                    .send()
                    .await
                    .map_err(|error| failed("create", aws::classify(&error)))?;
                Ok(created.arn.unwrap_or_else(|| secret_id.to_owned()))
            }
        }
    }
}
