//! OAuth 2.0 for the Table API: an access token from `/oauth_token.do` (the password grant
//! with a user, else client credentials), kept per execution environment until a minute
//! before it expires.

use super::*;

/// Refresh an access token this long before ServiceNow says it expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An access token and what it was issued for.
pub(super) struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

impl TableApi {
    /// The OAuth access token, from the cache until a minute before it expires.
    pub(super) async fn oauth_token(
        &self,
        account: &ServiceNowAccount,
        force_new: bool,
    ) -> Result<SecretString, ServiceNowError> {
        // One token per instance and client: another instance's token is never sent.
        let key = token_key(account);
        let cached = || {
            let cached = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            cached
                .get(&key)
                .filter(|t| Instant::now() < t.refresh_at)
                .map(|t| t.value.clone())
        };
        if !force_new {
            if let Some(token) = cached() {
                return Ok(token);
            }
        }
        // One fetch at a time per instance and client: requests sent together (a lookup and
        // a user lookup beside it) wait for the same token rather than ask for one each.
        let gate = {
            let mut gates = self.token_fetches.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(gates.entry(key.clone()).or_default())
        };
        let _fetching = gate.lock().await;
        if !force_new {
            if let Some(token) = cached() {
                return Ok(token);
            }
        }
        let (value, lifetime) = self.fetch_token(account).await?;
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                CachedToken {
                    value: value.clone(),
                    refresh_at: Instant::now() + lifetime.saturating_sub(TOKEN_REFRESH_MARGIN),
                },
            );
        Ok(value)
    }

    /// `POST /oauth_token.do`: the password grant with a user, else client credentials.
    async fn fetch_token(
        &self,
        account: &ServiceNowAccount,
    ) -> Result<(SecretString, Duration), ServiceNowError> {
        let Some((client_id, client_secret)) = &account.oauth_client else {
            return Err(ServiceNowError::Refused(
                "no OAuth client is configured".into(),
            ));
        };
        // Built in a block: the serializer must not live across the await below.
        let (form, grant) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret.expose_secret());
            let grant = match &account.user {
                Some((username, password)) => {
                    form.append_pair("grant_type", "password")
                        .append_pair("username", username)
                        .append_pair("password", password.expose_secret());
                    "password"
                }
                None => {
                    form.append_pair("grant_type", "client_credentials");
                    "client_credentials"
                }
            };
            (form.finish(), grant)
        };
        let url = instance_url(account, &["oauth_token.do"]);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let method = Method::POST;
        let (status, retry_after, bytes) = send(request, &method).await?;
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            let token = json.as_ref().and_then(|j| j["access_token"].as_str());
            let lifetime = json
                .as_ref()
                .and_then(|j| match &j["expires_in"] {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                })
                .unwrap_or(0);
            return match token {
                Some(token) => Ok((
                    SecretString::from(token.to_owned()),
                    Duration::from_secs(lifetime),
                )),
                None => Err(ServiceNowError::NotTableApi(format!(
                    "ServiceNow's /oauth_token.do answered {status} without an access token \
                     (the instance may be asleep or the OAuth plugin off)"
                ))),
            };
        }
        let reason = json
            .as_ref()
            .map(|j| {
                [&j["error"], &j["error_description"]]
                    .into_iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(": ")
            })
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {}", shorten(&r, ERROR_MESSAGE_MAX_CHARS)))
            .unwrap_or_default();
        match interpret(&method, status, retry_after, &bytes) {
            Err(ServiceNowError::Transient {
                message,
                retry_after,
            }) => Err(ServiceNowError::Transient {
                message,
                retry_after,
            }),
            _ => Err(ServiceNowError::Unauthorized(format!(
                "ServiceNow refused the OAuth {grant} grant ({status}){reason}: check \
                 `client_id` and `client_secret` in the secret, and that the OAuth application \
                 allows this grant"
            ))),
        }
    }
}

/// Which instance, client and user a token belongs to: a rotated secret gets a new token.
fn token_key(account: &ServiceNowAccount) -> String {
    format!(
        "{} {} {}",
        account.instance_url,
        account
            .oauth_client
            .as_ref()
            .map_or("", |(id, _)| id.as_str()),
        account.username().unwrap_or_default()
    )
}
