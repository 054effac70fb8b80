//! What iLert documents for the operations a ServiceNow → iLert sync uses, written from iLert's
//! OpenAPI description ("ilert REST API", version v2.2026.5-r.3, `servers: /api`): each
//! operation's method, path and query parameters with their types. A request the function
//! sends is held against it, so that a parameter iLert does not document (the Go client's
//! `state`, which a real server ignores) fails a test instead of a user.

/// The version of iLert's OpenAPI description the table below was written from.
pub const ILERT_OPENAPI_VERSION: &str = "v2.2026.5-r.3";

/// The type of a documented query parameter.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `integer`, at least 0 and at most the given maximum.
    Integer { max: u64 },
    /// `integer` (`int64`): an id.
    Id,
    /// `string` with an enum.
    OneOf(&'static [&'static str]),
    /// `string`, `format: date-time` (ISO-UTC, e.g. `2021-05-25T21:24:56.771Z`).
    DateTime,
    /// Any `string`.
    Text,
}

/// A documented query parameter: its name, type, and whether it may repeat (an array with
/// `style: form, explode: true`).
type Parameter = (&'static str, Kind, bool);

const STATES: Kind = Kind::OneOf(&["PENDING", "ACCEPTED", "RESOLVED"]);

/// `GET /alerts`.
const LIST_ALERTS: &[Parameter] = &[
    ("start-index", Kind::Integer { max: u64::MAX }, false),
    ("max-results", Kind::Integer { max: 100 }, false),
    ("include", Kind::OneOf(&["nextEscalationUser"]), true),
    ("states", STATES, true),
    ("sources", Kind::Id, true),
    ("policies", Kind::Id, true),
    ("responders", Kind::Text, true),
    ("from", Kind::DateTime, false),
    ("until", Kind::DateTime, false),
];

/// `GET /alerts/count`.
const COUNT_ALERTS: &[Parameter] = &[
    ("states", STATES, true),
    ("sources", Kind::Id, true),
    ("responders", Kind::Text, true),
    ("from", Kind::DateTime, false),
    ("until", Kind::DateTime, false),
];

/// `GET /alerts/{id}`.
const READ_ALERT: &[Parameter] = &[(
    "include",
    Kind::OneOf(&["escalationRules", "nextEscalationUser", "customDetails"]),
    true,
)];

/// Whether iLert documents this request: its operation (method and path under `/api`) and
/// every query parameter's name, value and repetition. `Err` says what is not documented.
pub fn documented(method: &str, path: &str, query: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let is_id = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    let parameters: &[Parameter] = match (method, segments.as_slice()) {
        ("GET", ["", "api", "alerts"]) => LIST_ALERTS,
        ("GET", ["", "api", "alerts", "count"]) => COUNT_ALERTS,
        ("GET", ["", "api", "alerts", id]) if is_id(id) => READ_ALERT,
        ("PUT", ["", "api", "alerts", id, "accept" | "resolve"]) if is_id(id) => &[],
        ("GET", ["", "api", "users", "current"]) => &[],
        _ => {
            return Err(format!(
                "{method} {path} is not an operation of iLert's API {ILERT_OPENAPI_VERSION} \
                 that this function may use"
            ))
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some((_, kind, repeats)) = parameters.iter().find(|(known, ..)| *known == name) else {
            return Err(format!(
                "{method} {path}: iLert's API {ILERT_OPENAPI_VERSION} has no parameter `{name}`"
            ));
        };
        if seen.contains(&name.to_string()) && !repeats {
            return Err(format!("{method} {path}: `{name}` is not an array"));
        }
        seen.push(name.to_string());
        let fits = match kind {
            Kind::Integer { max } => value.parse::<u64>().is_ok_and(|n| n <= *max),
            Kind::Id => value.parse::<u64>().is_ok(),
            Kind::OneOf(values) => values.contains(&value.as_ref()),
            Kind::DateTime => crate::clock::parse_iso_millis(&value).is_some(),
            Kind::Text => !value.is_empty(),
        };
        if !fits {
            return Err(format!(
                "{method} {path}: `{name}={value}` is not what iLert documents ({kind:?})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_filter_passes_and_the_go_clients_names_do_not() {
        let open = "states=PENDING&states=ACCEPTED&start-index=0&max-results=100";
        assert_eq!(documented("GET", "/api/alerts", open), Ok(()));
        assert_eq!(
            documented(
                "GET",
                "/api/alerts",
                "states=PENDING&from=2026-01-01T00:00:00.000Z&until=2026-01-02T00:00:00.000Z"
            ),
            Ok(())
        );
        for wrong in [
            "state=PENDING",
            "alert-source=1",
            "max-results=101",
            "states=SNOOZED",
            "from=yesterday",
            "start-index=1&start-index=2",
        ] {
            assert!(documented("GET", "/api/alerts", wrong).is_err(), "{wrong}");
        }
        assert_eq!(
            documented("GET", "/api/alerts/count", open).map_err(|_| ()),
            Err(())
        );
        assert_eq!(documented("PUT", "/api/alerts/42/accept", ""), Ok(()));
        assert!(documented("PUT", "/api/alerts/42/accept", "comment=x").is_err());
        assert!(documented("POST", "/api/alerts/42/resolve", "").is_err());
        assert!(documented("GET", "/api/alerts/abc", "").is_err());
    }
}
