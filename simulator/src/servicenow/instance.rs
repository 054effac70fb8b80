//! The instance's side of a request: authentication, the Table API, OAuth, and how records
//! are stored, queried and written.

use super::*;
use crate::server::{respond_json, HttpResponse};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

impl ServiceNowState {
    pub(super) fn add_user(&mut self, user_name: &str, email: &str, name: &str) -> String {
        let sys_id = format!("{:032x}", 0x5ee5_0000_u128 + self.users.len() as u128);
        let fields = [
            ("sys_id", sys_id.as_str()),
            ("user_name", user_name),
            ("email", email),
            ("name", name),
            ("active", "true"),
        ];
        self.users.push(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        sys_id
    }

    /// `POST /oauth_token.do` with a form body, as ServiceNow's OAuth endpoint answers it.
    fn issue_token(&mut self, body: &[u8]) -> HttpResponse {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        let grant = field("grant_type").to_owned();
        self.oauth.grants.push(grant.clone());
        let client_ok = self.oauth.client.as_ref().is_some_and(|(id, secret)| {
            field("client_id") == id && field("client_secret") == secret
        });
        let grant_ok = match grant.as_str() {
            "password" => {
                (field("username"), field("password"))
                    == (self.user_login.0.as_str(), self.user_login.1.as_str())
            }
            "client_credentials" => true,
            _ => false,
        };
        if !(client_ok && grant_ok) {
            return respond_json(
                StatusCode::UNAUTHORIZED,
                &json!({ "error_description": "access_denied", "error": "server_error" }),
            );
        }
        self.oauth.issued += 1;
        let token = format!("sim-access-token-{}", self.oauth.issued);
        self.oauth.valid_tokens.push(token.clone());
        respond_json(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "refresh_token": format!("sim-refresh-token-{}", self.oauth.issued),
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": self.oauth.lifetime_seconds,
            }),
        )
    }

    /// Records a request and picks the fault and delay it meets.
    pub(super) fn receive(
        &mut self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Reception {
        self.requests.push(ReceivedRequest {
            method: method.to_string(),
            path: path.to_owned(),
            query: parse_query(query),
            body: serde_json::from_slice(body).ok(),
        });
        let mut fault = self
            .quirks
            .faults
            .iter()
            .position(|(wanted, _)| wanted.as_ref().is_none_or(|m| m == method))
            .and_then(|index| self.quirks.faults.remove(index))
            .map(|(_, fault)| fault);
        let over_the_limit = self
            .quirks
            .rate_limit
            .as_mut()
            .is_some_and(|window| !window.admit());
        if over_the_limit && fault.is_none() {
            fault = Some(Fault::status(429, Some(1)));
        }
        let mut delay = self
            .quirks
            .latency
            .get(method.as_str())
            .copied()
            .unwrap_or_default();
        if let Some(Fault::Delay(extra)) = &fault {
            delay += *extra;
        }
        // Like a real instance, an insert takes its number when the record is initialised,
        // before business rules run and the transaction commits: a slow insert can hold the
        // lower number and become visible after a younger record.
        let inserting =
            method == Method::POST && path.trim_end_matches('/') == "/api/now/table/incident";
        let number = inserting.then(|| {
            let number = self.next_number;
            self.next_number += 1;
            let (base, jitter) = self.quirks.insert_time;
            delay += base + jitter.mul_f64(fastrand::f64());
            number
        });
        Reception {
            delay,
            fault,
            number,
        }
    }

    /// Answers a request as the instance's Table API does; `number` is the one an insert
    /// took when it arrived.
    pub(super) fn table_api(
        &mut self,
        authorization: &[u8],
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        number: Option<u32>,
    ) -> HttpResponse {
        let query = parse_query(query);
        if path == "/oauth_token.do" && method == Method::POST {
            return self.issue_token(body);
        }
        let bearer = authorization
            .strip_prefix(b"Bearer ")
            .and_then(|token| std::str::from_utf8(token).ok());
        let authorised = authorization == self.expected_auth.as_bytes()
            || bearer.is_some_and(|token| self.oauth.valid_tokens.iter().any(|t| t == token));
        if !authorised {
            return failure(
                StatusCode::UNAUTHORIZED,
                "User Not Authenticated",
                "Required to provide Auth information",
            );
        }
        let fields = query.get("sysparm_fields").map(|f| {
            f.split(',')
                .map(str::trim)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        let exclude_links = query
            .get("sysparm_exclude_reference_link")
            .map(String::as_str)
            == Some("true");
        let unreadable = self.quirks.unreadable.clone();
        let project = |incident: &StoredIncident| {
            Value::Object(record_of(
                incident,
                fields.as_deref(),
                exclude_links,
                &unreadable,
            ))
        };
        if path.trim_end_matches('/') == "/api/now/table/sys_user" && method == Method::GET {
            let records: Vec<&BTreeMap<String, String>> = self.users.iter().collect();
            let found = matching(
                &records,
                USER_FIELDS,
                &self.quirks.invisible_to_queries(),
                query.get("sysparm_query").map_or("", String::as_str),
            );
            let result: Vec<Value> = found
                .into_iter()
                .map(|i| {
                    let wanted = fields.as_deref().map_or(USER_FIELDS.to_vec(), |f| {
                        f.iter().map(String::as_str).collect()
                    });
                    Value::Object(
                        wanted
                            .into_iter()
                            .filter(|name| USER_FIELDS.contains(name))
                            .map(|name| {
                                let text = self.users[i].get(name).cloned().unwrap_or_default();
                                (name.to_owned(), Value::String(text))
                            })
                            .collect(),
                    )
                })
                .collect();
            return respond_json(StatusCode::OK, &json!({ "result": result }));
        }
        let rest = path.strip_prefix("/api/now/table/incident");
        match (method, rest) {
            (&Method::GET, Some("" | "/")) => {
                let limit = query
                    .get("sysparm_limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(10_000);
                let found = self.query(query.get("sysparm_query").map_or("", String::as_str));
                let result: Vec<Value> = found
                    .into_iter()
                    .take(limit)
                    .map(|i| project(&self.incidents[i]))
                    .collect();
                respond_json(StatusCode::OK, &json!({ "result": result }))
            }
            (&Method::POST, Some("" | "/")) => match parse_write(body) {
                None => unreadable_payload(),
                Some(mut values) => {
                    values.retain(|field, _| !self.quirks.dropped_on_write.contains(field));
                    let mut record = BTreeMap::new();
                    record.insert("state".to_owned(), "1".to_owned());
                    record.insert("impact".to_owned(), "3".to_owned());
                    record.insert("urgency".to_owned(), "3".to_owned());
                    let mut pending = StoredIncident {
                        fields: record,
                        journal: Vec::new(),
                    };
                    merge(&mut pending, values);
                    if let Some(refusal) = self.business_rules(&pending.fields) {
                        return refusal;
                    }
                    let index = self.insert_stored(pending, number);
                    respond_json(
                        StatusCode::CREATED,
                        &json!({ "result": project(&self.incidents[index]) }),
                    )
                }
            },
            (&Method::PATCH | &Method::PUT, Some(rest)) if rest.len() > 1 => {
                let sys_id = &rest[1..];
                let Some(index) = self
                    .incidents
                    .iter()
                    .position(|i| i.fields.get("sys_id").map(String::as_str) == Some(sys_id))
                else {
                    return failure(
                        StatusCode::NOT_FOUND,
                        "No Record found",
                        "Record doesn't exist or ACL restricts the record retrieval",
                    );
                };
                let Some(mut values) = parse_write(body) else {
                    return unreadable_payload();
                };
                values.retain(|field, _| !self.quirks.dropped_on_write.contains(field));
                let state = self.incidents[index].fields.get("state").cloned();
                if matches!(state.as_deref(), Some("7" | "8")) {
                    return failure(
                        StatusCode::FORBIDDEN,
                        "Operation Failed",
                        "ACL Exception Update Failed due to security constraints",
                    );
                }
                let mut pending = self.incidents[index].clone();
                merge(&mut pending, values);
                if let Some(refusal) = self.business_rules(&pending.fields) {
                    return refusal;
                }
                self.incidents[index] = pending;
                respond_json(
                    StatusCode::OK,
                    &json!({ "result": project(&self.incidents[index]) }),
                )
            }
            _ => failure(
                StatusCode::BAD_REQUEST,
                "Invalid resource",
                &format!("{method} {path} is not part of this simulator"),
            ),
        }
    }

    /// Indexes of incidents matching an encoded query. Like a real instance, a term it cannot
    /// parse (unknown field or operator) is dropped, which widens the query.
    fn query(&self, encoded: &str) -> Vec<usize> {
        let records: Vec<&BTreeMap<String, String>> =
            self.incidents.iter().map(|i| &i.fields).collect();
        matching(
            &records,
            INCIDENT_FIELDS,
            &self.quirks.invisible_to_queries(),
            encoded,
        )
    }

    /// What most instances refuse on a write: the data policy on resolve, and a business rule
    /// that keeps `assigned_to` within the assignment group.
    fn business_rules(&self, fields: &BTreeMap<String, String>) -> Option<HttpResponse> {
        if let Some(refusal) = data_policy(fields) {
            return Some(refusal);
        }
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let members = self.groups.get(field("assignment_group"))?;
        let assignee = field("assigned_to");
        (!assignee.is_empty() && !members.iter().any(|m| m == assignee)).then(|| {
            failure(
                StatusCode::FORBIDDEN,
                "Operation Failed",
                "Assigned to user is not a member of the Assignment group",
            )
        })
    }

    pub(super) fn insert(&mut self, fields: BTreeMap<String, String>) -> &StoredIncident {
        let index = self.insert_stored(
            StoredIncident {
                fields,
                journal: Vec::new(),
            },
            None,
        );
        &self.incidents[index]
    }

    fn insert_stored(&mut self, mut incident: StoredIncident, number: Option<u32>) -> usize {
        let number = number.unwrap_or_else(|| {
            let next = self.next_number;
            self.next_number += 1;
            next
        });
        let fields = &mut incident.fields;
        fields.insert("number".into(), format!("INC{number:07}"));
        fields.insert(
            "sys_id".into(),
            format!("{:032x}", u128::from(number) * 0x9e37_79b9_7f4a_7c15),
        );
        fields.insert(
            "sys_created_on".into(),
            format!("2025-10-17 10:{:02}:{:02}", number / 60 % 60, number % 60),
        );
        fields.entry("state".into()).or_insert_with(|| "1".into());
        derive_fields(fields);
        self.incidents.push(incident);
        self.incidents.len() - 1
    }
}

/// Indexes of `records` matching an encoded query. Like a real instance, a term it cannot
/// parse (unknown field or operator) is dropped, which widens the query.
pub(super) fn matching(
    records: &[&BTreeMap<String, String>],
    known_fields: &[&str],
    hidden: &[String],
    encoded: &str,
) -> Vec<usize> {
    let mut conditions: Vec<(&str, &str, bool)> = Vec::new();
    let mut order: Vec<(&str, bool)> = Vec::new();
    for term in encoded.split('^').filter(|t| !t.is_empty()) {
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            order.push((field, true));
        } else if let Some(field) = term.strip_prefix("ORDERBY") {
            order.push((field, false));
        } else if let Some((field, value)) = term.split_once("!=") {
            conditions.push((field, value, false));
        } else if let Some((field, value)) = term.split_once('=') {
            conditions.push((field, value, true));
        }
    }
    conditions
        .retain(|(field, _, _)| known_fields.contains(field) && !hidden.iter().any(|h| h == field));
    let value = |i: usize, field: &str| records[i].get(field).cloned().unwrap_or_default();
    let mut matches: Vec<usize> = (0..records.len())
        .filter(|&i| {
            conditions
                .iter()
                .all(|(field, wanted, equal)| (value(i, field) == *wanted) == *equal)
        })
        .collect();
    for (field, descending) in order.into_iter().rev() {
        matches.sort_by(|&a, &b| {
            let ordering = value(a, field).cmp(&value(b, field));
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    matches
}

pub(super) fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn failure(status: StatusCode, message: &str, detail: &str) -> HttpResponse {
    respond_json(
        status,
        &json!({ "error": { "message": message, "detail": detail }, "status": "failure" }),
    )
}

pub(super) fn parse_write(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(values)) => Some(values),
        _ => None,
    }
}

pub(super) fn unreadable_payload() -> HttpResponse {
    failure(
        StatusCode::BAD_REQUEST,
        "Exception while reading request",
        "The payload is not valid JSON.",
    )
}

/// Applies written values the way an instance stores them: as strings, journal fields as new
/// entries, unknown fields ignored, `priority` recomputed.
pub(super) fn merge(incident: &mut StoredIncident, values: Map<String, Value>) {
    for (field, value) in values {
        let text = match value {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if JOURNAL_FIELDS.contains(&field.as_str()) {
            if !text.is_empty() {
                incident.journal.push(JournalEntry { field, text });
            }
        } else if INCIDENT_FIELDS.contains(&field.as_str())
            && !["priority", "active"].contains(&field.as_str())
        {
            incident.fields.insert(field, text);
        }
    }
    derive_fields(&mut incident.fields);
}

/// What the instance computes itself: `priority` from impact and urgency, `active` from the
/// state (Closed and Canceled incidents are no longer active).
fn derive_fields(fields: &mut BTreeMap<String, String>) {
    let priority = computed_priority(fields);
    fields.insert("priority".into(), priority);
    let active = !matches!(fields.get("state").map(String::as_str), Some("7" | "8"));
    fields.insert("active".into(), active.to_string());
}

/// ServiceNow's default priority matrix.
pub(super) fn computed_priority(fields: &BTreeMap<String, String>) -> String {
    let level = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(3)
            .clamp(1, 3)
    };
    (level("impact") + level("urgency") - 1).to_string()
}

/// The data policy most instances set: Resolved needs a resolution code and notes.
pub(super) fn data_policy(fields: &BTreeMap<String, String>) -> Option<HttpResponse> {
    let blank = |name: &str| fields.get(name).is_none_or(|v| v.trim().is_empty());
    let resolving = matches!(fields.get("state").map(String::as_str), Some("6" | "7"));
    (resolving && (blank("close_code") || blank("close_notes"))).then(|| {
        failure(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            "Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes",
        )
    })
}

/// The record as the Table API returns it: the fields asked for, a field the user may not
/// read (a field ACL) as an empty string.
pub(super) fn record_of(
    incident: &StoredIncident,
    fields: Option<&[String]>,
    exclude_links: bool,
    unreadable: &[String],
) -> Map<String, Value> {
    let wanted: Vec<&str> = match fields {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => INCIDENT_FIELDS.to_vec(),
    };
    wanted
        .into_iter()
        .filter(|name| INCIDENT_FIELDS.contains(name))
        .map(|name| {
            let text = incident.fields.get(name).cloned().unwrap_or_default();
            let value = if JOURNAL_FIELDS.contains(&name) || unreadable.iter().any(|u| u == name) {
                Value::String(String::new())
            } else if REFERENCE_FIELDS.contains(&name) && !exclude_links && !text.is_empty() {
                json!({ "link": format!("/api/now/table/sys_user/{text}"), "value": text })
            } else {
                Value::String(text)
            };
            (name.to_owned(), value)
        })
        .collect()
}
