//! Checks that a call comes from iLert: a bearer token (a custom header on the webhook alert
//! action) or HTTP Basic credentials (put in the webhook URL). iLert has no signatures. And
//! that a push comes from ServiceNow's business rule: its own token, `servicenow_token`.

use crate::adapters::secrets::WebhookCredentials;
use base64::Engine;
use http::{header::AUTHORIZATION, HeaderMap};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// Why a call was refused, for the function's log; the caller only learns "401".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    #[error("no Authorization header")]
    Missing,
    #[error("the Authorization scheme is neither Bearer nor Basic, or not configured")]
    UnsupportedScheme,
    #[error("the bearer token is wrong")]
    WrongToken,
    #[error("the Basic credentials are wrong")]
    WrongBasic,
    #[error("a push from ServiceNow, but the secret has no `servicenow_token`")]
    PushNotConfigured,
}

pub fn authenticate(
    headers: &HeaderMap,
    expected: &WebhookCredentials,
) -> Result<(), Unauthorized> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(Unauthorized::Missing)?
        .as_bytes();
    let (scheme, credentials) = split_scheme(value).ok_or(Unauthorized::UnsupportedScheme)?;
    if scheme.eq_ignore_ascii_case(b"bearer") {
        let token = expected
            .token
            .as_ref()
            .ok_or(Unauthorized::UnsupportedScheme)?;
        let matches = |token: &secrecy::SecretString| {
            constant_time_eq(credentials, token.expose_secret().as_bytes())
        };
        return (matches(token) || expected.previous_token.as_ref().is_some_and(matches))
            .then_some(())
            .ok_or(Unauthorized::WrongToken);
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let (user, password) = expected
            .basic
            .as_ref()
            .ok_or(Unauthorized::UnsupportedScheme)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| Unauthorized::WrongBasic)?;
        let wanted = format!("{user}:{}", password.expose_secret());
        return constant_time_eq(&decoded, wanted.as_bytes())
            .then_some(())
            .ok_or(Unauthorized::WrongBasic);
    }
    Err(Unauthorized::UnsupportedScheme)
}

/// ServiceNow's push: `Authorization: Bearer <servicenow_token>`, or HTTP Basic with any user
/// name and the token as password, which is how a REST message's Basic auth profile sends it
/// (ServiceNow keeps the profile's password encrypted, so the token is in no script).
pub fn authenticate_push(
    headers: &HeaderMap,
    token: Option<&secrecy::SecretString>,
) -> Result<(), Unauthorized> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(Unauthorized::Missing)?
        .as_bytes();
    let token = token.ok_or(Unauthorized::PushNotConfigured)?;
    let expected = token.expose_secret().as_bytes();
    let (scheme, credentials) = split_scheme(value).ok_or(Unauthorized::UnsupportedScheme)?;
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return constant_time_eq(credentials, expected)
            .then_some(())
            .ok_or(Unauthorized::WrongToken);
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| Unauthorized::WrongBasic)?;
        let password = decoded
            .iter()
            .position(|&b| b == b':')
            .map_or(&[][..], |colon| &decoded[colon + 1..]);
        return constant_time_eq(password, expected)
            .then_some(())
            .ok_or(Unauthorized::WrongBasic);
    }
    Err(Unauthorized::UnsupportedScheme)
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    Some((scheme, rest.trim_ascii()))
}

/// Compares without stopping at the first difference, so response time does not tell an
/// attacker how much of a guess was right. Only the length can differ in time.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use secrecy::SecretString;

    fn credentials() -> WebhookCredentials {
        WebhookCredentials {
            token: Some(SecretString::from("tok-123")),
            previous_token: None,
            basic: Some(("ilert".into(), SecretString::from("pa:ss"))),
        }
    }

    fn check(header: Option<&str>) -> Result<(), Unauthorized> {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        authenticate(&headers, &credentials())
    }

    fn basic(user_and_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    }

    #[test]
    fn the_right_token_or_basic_credentials_pass() {
        assert_eq!(check(Some("Bearer tok-123")), Ok(()));
        assert_eq!(check(Some("bearer   tok-123")), Ok(()));
        assert_eq!(check(Some(&basic("ilert:pa:ss"))), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        assert_eq!(check(None), Err(Unauthorized::Missing));
        assert_eq!(check(Some("Bearer tok-124")), Err(Unauthorized::WrongToken));
        assert_eq!(
            check(Some("Bearer tok-123x")),
            Err(Unauthorized::WrongToken)
        );
        assert_eq!(check(Some("Bearer ")), Err(Unauthorized::WrongToken));
        assert_eq!(check(Some("tok-123")), Err(Unauthorized::UnsupportedScheme));
        assert_eq!(
            check(Some("Digest tok-123")),
            Err(Unauthorized::UnsupportedScheme)
        );
        assert_eq!(
            check(Some(&basic("ilert:wrong"))),
            Err(Unauthorized::WrongBasic)
        );
        assert_eq!(check(Some("Basic %%%")), Err(Unauthorized::WrongBasic));
    }

    #[test]
    fn a_scheme_that_is_not_configured_is_refused() {
        let token_only = WebhookCredentials {
            token: Some(SecretString::from("tok-123")),
            previous_token: None,
            basic: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&basic("ilert:pa:ss")).unwrap(),
        );
        assert_eq!(
            authenticate(&headers, &token_only),
            Err(Unauthorized::UnsupportedScheme)
        );
    }

    #[test]
    fn while_a_token_is_rotated_the_previous_one_still_opens_and_nothing_else_does() {
        let rotating = WebhookCredentials {
            token: Some(SecretString::from("new-token")),
            previous_token: Some(SecretString::from("old-token")),
            basic: None,
        };
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            authenticate(&headers, &rotating)
        };
        assert_eq!(check("Bearer new-token"), Ok(()));
        assert_eq!(check("Bearer old-token"), Ok(()));
        assert_eq!(check("Bearer older-token"), Err(Unauthorized::WrongToken));
        assert_eq!(check("Bearer "), Err(Unauthorized::WrongToken));
    }

    #[test]
    fn a_push_passes_with_its_own_token_as_bearer_or_as_basic_password_only() {
        let token = SecretString::from("sn-tok");
        let push = |header: Option<&str>, token: Option<&SecretString>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = header {
                headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            authenticate_push(&headers, token)
        };
        assert_eq!(push(Some("Bearer sn-tok"), Some(&token)), Ok(()));
        assert_eq!(
            push(Some(&basic("ilert-servicenow:sn-tok")), Some(&token)),
            Ok(())
        );
        assert_eq!(push(Some(&basic("anyone:sn-tok")), Some(&token)), Ok(()));
        assert_eq!(
            push(Some("Bearer tok-123"), Some(&token)),
            Err(Unauthorized::WrongToken),
            "the webhook's token does not open the push"
        );
        assert_eq!(
            push(Some(&basic("sn-tok")), Some(&token)),
            Err(Unauthorized::WrongBasic),
            "the token as user name is no password"
        );
        assert_eq!(push(None, Some(&token)), Err(Unauthorized::Missing));
        assert_eq!(
            push(Some("Bearer sn-tok"), None),
            Err(Unauthorized::PushNotConfigured)
        );
    }
}
