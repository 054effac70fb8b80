//! How the Table API's answers become incidents or verdicts.

use super::*;

#[test]
fn a_200_html_page_is_not_the_table_api() {
    let verdict = interpret(
        &Method::GET,
        StatusCode::OK,
        None,
        b"<html><body>Your instance is hibernating</body></html>",
    );
    assert!(matches!(verdict, Err(ServiceNowError::NotTableApi(m)) if m.contains("asleep")));
}

#[test]
fn throttling_and_gateway_errors_are_transient_and_client_errors_are_not() {
    // A rate-limit rule refuses before anything is done: a create may be sent again.
    assert_eq!(
        interpret(
            &Method::POST,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            b""
        ),
        Err(ServiceNowError::NotApplied {
            message: "ServiceNow answered POST with 429 Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        })
    );
    for status in [502, 503, 504] {
        let verdict = interpret(
            &Method::POST,
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(7)),
            b"",
        );
        assert_eq!(
            verdict,
            Err(ServiceNowError::Transient {
                message: format!(
                    "ServiceNow answered POST with {}",
                    StatusCode::from_u16(status).unwrap()
                ),
                retry_after: Some(Duration::from_secs(7)),
            }),
            "{status}"
        );
    }
    let unauthorized = interpret(&Method::GET, StatusCode::UNAUTHORIZED, None, b"");
    assert!(matches!(
        unauthorized,
        Err(ServiceNowError::Unauthorized(_))
    ));
    assert!(matches!(
        interpret(&Method::POST, StatusCode::INTERNAL_SERVER_ERROR, None, b""),
        Err(ServiceNowError::Intermittent { tries: 3, .. })
    ));
    for status in [400, 403] {
        let verdict = interpret(
            &Method::POST,
            StatusCode::from_u16(status).unwrap(),
            None,
            b"",
        );
        assert!(
            matches!(verdict, Err(ServiceNowError::Refused(_))),
            "{status}"
        );
    }
    assert!(matches!(
        interpret(&Method::GET, StatusCode::NOT_FOUND, None, b""),
        Err(ServiceNowError::NotFound(_))
    ));
}

#[test]
fn retry_after_is_read_in_seconds() {
    let mut headers = reqwest::header::HeaderMap::new();
    assert_eq!(retry_after(&headers), None);
    headers.insert(reqwest::header::RETRY_AFTER, "12".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
    headers.insert(
        reqwest::header::RETRY_AFTER,
        "18446744073709551615".parse().unwrap(),
    );
    assert_eq!(
        retry_after(&headers),
        Some(Duration::from_secs(12 * 3600)),
        "capped, never an overflow"
    );
    headers.insert(
        reqwest::header::RETRY_AFTER,
        "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn servicenows_own_error_message_is_passed_on_shortened() {
    let body = serde_json::json!({
        "error": {
            "message": "Operation Failed",
            "detail": format!("Data Policy Exception: {}", "x".repeat(1000)),
        },
        "status": "failure",
    });
    let Err(ServiceNowError::Refused(message)) = interpret(
        &Method::PATCH,
        StatusCode::FORBIDDEN,
        None,
        body.to_string().as_bytes(),
    ) else {
        panic!("a 403 is a refusal");
    };
    assert!(message.starts_with(
        "ServiceNow answered PATCH with 403 Forbidden: Operation Failed: Data Policy Exception"
    ));
    assert!(message.len() < 400);
}

#[test]
fn reference_fields_and_numbers_are_read_as_strings() {
    let incident = incident_from(&serde_json::json!({
        "sys_id": {"link": "https://x/api/now/table/incident/abc", "value": "abc"},
        "state": 2,
        "number": "INC0010001",
    }));
    assert_eq!(incident.sys_id, "abc");
    assert_eq!(incident.state, IncidentState::InProgress);
    assert_eq!(incident.impact, "");
}

#[test]
fn shorter_incident_numbers_are_older() {
    let mut numbers = vec!["INC0010000", "INC0009999", "INC0010001"];
    numbers.sort_by(|a, b| oldest_first(a, b));
    assert_eq!(numbers, ["INC0009999", "INC0010000", "INC0010001"]);
}
