//! The instance's side of a request: authentication, the Table API, OAuth, and how records
//! are stored, queried and written. Event Management's requests are handed on to
//! [`super::event_management`] once authenticated.

use super::*;
use crate::clock::{self, parse_glide_date_time};
use crate::server::{respond_json, HttpResponse};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Who creates and edits incidents on the instance's own forms, unless a test says otherwise.
pub(super) const DESK_USER: &str = "admin";

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
        // Opaque and random, as a real instance's: another instance's token is never valid here.
        let token = format!(
            "sim-access-token-{}-{:016x}",
            self.oauth.issued,
            fastrand::u64(..)
        );
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
        headers: &hyper::HeaderMap,
        body: &[u8],
    ) -> Reception {
        self.requests.push(ReceivedRequest {
            method: method.to_string(),
            path: path.to_owned(),
            query: parse_query(query),
            body: serde_json::from_slice(body).ok(),
            authorization: headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        });
        let mut fault = self
            .quirks
            .faults
            .iter()
            .position(|(wanted, _)| wanted.as_ref().is_none_or(|m| m == method))
            .and_then(|index| self.quirks.faults.remove(index))
            .map(|(_, fault)| fault);
        if let Some(outage) = &self.quirks.outage {
            self.quirks.met_outage += 1;
            fault = Some(outage.clone());
        }
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
        // Event Management's endpoint and tables, authenticated as the Table API is.
        if let Some(response) = self.event_management_request(method, path, &query, body) {
            return response;
        }
        // Basic auth logs in as the integration user, and so does a password grant; a client
        // credentials token acts as the user the OAuth application runs as, which an instance
        // set up for one integration makes that same user.
        let user_name = self.user_login.0.clone();
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
        let custom = self.custom_columns.clone();
        let names: BTreeMap<String, String> = self
            .users
            .iter()
            .filter_map(|user| Some((user.get("user_name")?.clone(), user.get("name")?.clone())))
            .collect();
        let display = DisplayValue::of(query.get("sysparm_display_value").map(String::as_str));
        let project = |incident: &StoredIncident| {
            Value::Object(record_shown(
                incident,
                &Shown {
                    fields: fields.as_deref(),
                    exclude_links,
                    unreadable: &unreadable,
                    custom: &custom,
                    display,
                    names: &names,
                },
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
            let (offset, limit) = page(&query);
            let result: Vec<Value> = found
                .into_iter()
                .skip(offset)
                .take(limit)
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
                let (offset, limit) = page(&query);
                let found = self.query(query.get("sysparm_query").map_or("", String::as_str));
                let result: Vec<Value> = found
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|i| project(&self.incidents[i]))
                    .collect();
                respond_json(StatusCode::OK, &json!({ "result": result }))
            }
            (&Method::GET, Some(rest)) if rest.len() > 1 => match self.index_of(&rest[1..]) {
                None => no_record(),
                Some(index) => respond_json(
                    StatusCode::OK,
                    &json!({ "result": project(&self.incidents[index]) }),
                ),
            },
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
                    merge(&mut pending, values, &self.custom_columns, &user_name);
                    if let Some(refusal) = self.business_rules(&pending.fields) {
                        return refusal.response();
                    }
                    self.assignment_rule(&mut pending.fields);
                    let index = self.insert_stored(pending, number, &user_name);
                    respond_json(
                        StatusCode::CREATED,
                        &json!({ "result": project(&self.incidents[index]) }),
                    )
                }
            },
            (&Method::PATCH | &Method::PUT, Some(rest)) if rest.len() > 1 => {
                let Some(index) = self.index_of(&rest[1..]) else {
                    return no_record();
                };
                let Some(mut values) = parse_write(body) else {
                    return unreadable_payload();
                };
                values.retain(|field, _| !self.quirks.dropped_on_write.contains(field));
                match self.update(index, values, &user_name) {
                    Err(refusal) => refusal.response(),
                    Ok(()) => respond_json(
                        StatusCode::OK,
                        &json!({ "result": project(&self.incidents[index]) }),
                    ),
                }
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
        let columns: Vec<&str> = INCIDENT_FIELDS
            .iter()
            .copied()
            .chain(self.custom_columns.iter().map(String::as_str))
            .collect();
        matching(
            &records,
            &columns,
            &self.quirks.invisible_to_queries(),
            encoded,
        )
    }

    /// The position of the incident with this `sys_id`.
    fn index_of(&self, sys_id: &str) -> Option<usize> {
        self.incidents
            .iter()
            .position(|i| i.fields.get("sys_id").map(String::as_str) == Some(sys_id))
    }

    /// The position of the incident with this `number`.
    pub(super) fn index_by_number(&self, number: &str) -> Option<usize> {
        self.incidents
            .iter()
            .position(|i| i.fields.get("number").map(String::as_str) == Some(number))
    }

    /// What most instances refuse on a write: the data policy on resolve, and a business rule
    /// that keeps `assigned_to` within the assignment group.
    fn business_rules(&self, fields: &BTreeMap<String, String>) -> Option<Refusal> {
        if let Some(refusal) = data_policy(fields) {
            return Some(refusal);
        }
        if let Some(blank) = self
            .mandatory_columns
            .iter()
            .find(|column| fields.get(*column).is_none_or(|v| v.trim().is_empty()))
        {
            return Some(Refusal {
                detail: format!(
                    "Data Policy Exception: The following fields are mandatory: {blank}"
                )
                .into(),
            });
        }
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let members = self.groups.get(field("assignment_group"))?;
        let assignee = field("assigned_to");
        (!assignee.is_empty() && !members.iter().any(|m| m == assignee)).then_some(Refusal {
            detail: "Assigned to user is not a member of the Assignment group".into(),
        })
    }

    /// The instance's own assignment rule, when it has one: New with an assignee becomes In
    /// Progress within the write.
    fn assignment_rule(&mut self, fields: &mut BTreeMap<String, String>) {
        let assigned = fields.get("assigned_to").is_some_and(|v| !v.is_empty());
        let new = fields.get("state").is_some_and(|state| state == "1");
        if self.quirks.in_progress_on_assignment && assigned && new {
            fields.insert("state".into(), "2".into());
            self.quirks.assignment_rule_fired += 1;
        }
    }

    /// Writes `values` to the incident at `index` as `user_name` does, through the Table API
    /// or on the instance's form: Closed and Canceled incidents refuse, the business rules
    /// apply, and a saved change records who made it and when. Like a real instance, a write
    /// that changes nothing is not saved: `sys_updated_*` and `sys_mod_count` stay as they were.
    pub(super) fn update(
        &mut self,
        index: usize,
        values: Map<String, Value>,
        user_name: &str,
    ) -> Result<(), Refusal> {
        let current = self.incidents[index].clone();
        if matches!(
            current.fields.get("state").map(String::as_str),
            Some("7" | "8")
        ) {
            return Err(Refusal {
                detail: "ACL Exception Update Failed due to security constraints".into(),
            });
        }
        let mut pending = current.clone();
        merge(&mut pending, values, &self.custom_columns, user_name);
        if let Some(refusal) = self.business_rules(&pending.fields) {
            return Err(refusal);
        }
        self.assignment_rule(&mut pending.fields);
        let changed =
            pending.fields != current.fields || pending.journal.len() != current.journal.len();
        if changed {
            let fields = &mut pending.fields;
            let count = fields
                .get("sys_mod_count")
                .and_then(|count| count.parse::<u64>().ok())
                .unwrap_or(0);
            fields.insert("sys_mod_count".into(), (count + 1).to_string());
            fields.insert("sys_updated_by".into(), user_name.to_owned());
            fields.insert("sys_updated_on".into(), clock::glide_now());
            self.incidents[index] = pending;
        }
        Ok(())
    }

    /// Stores an incident created on the instance itself; `fields` may name its creator
    /// (`sys_created_by`), who is otherwise [`DESK_USER`].
    pub(super) fn insert(&mut self, fields: BTreeMap<String, String>) -> &StoredIncident {
        let index = self.insert_stored(
            StoredIncident {
                fields,
                journal: Vec::new(),
            },
            None,
            DESK_USER,
        );
        &self.incidents[index]
    }

    /// Commits an insert by `user_name` under `number` (the one it took on arrival, or the
    /// next): the instance sets the record's identity, its creation and its first update.
    fn insert_stored(
        &mut self,
        mut incident: StoredIncident,
        number: Option<u32>,
        user_name: &str,
    ) -> usize {
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
        let creator = fields
            .get("sys_created_by")
            .cloned()
            .unwrap_or_else(|| user_name.to_owned());
        let now = clock::glide_now();
        fields.insert("sys_created_by".into(), creator.clone());
        fields.insert("sys_updated_by".into(), creator);
        fields.insert("sys_created_on".into(), now.clone());
        fields.insert("sys_updated_on".into(), now);
        fields.insert("sys_mod_count".into(), "0".into());
        fields.entry("state".into()).or_insert_with(|| "1".into());
        derive_fields(fields);
        self.incidents.push(incident);
        self.incidents.len() - 1
    }
}

/// A write the instance refuses with `403 Operation Failed`: an ACL, a data policy or a
/// business rule, as `detail` says.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) detail: std::borrow::Cow<'static, str>,
}

impl Refusal {
    /// The Table API's answer to the refused write.
    fn response(&self) -> HttpResponse {
        failure(StatusCode::FORBIDDEN, "Operation Failed", &self.detail)
    }
}

/// `sysparm_offset` and `sysparm_limit` of a list GET: how many matching rows to skip, after
/// ordering, and how many of the rest to return.
pub(super) fn page(query: &BTreeMap<String, String>) -> (usize, usize) {
    let number = |name: &str| query.get(name).and_then(|value| value.parse().ok());
    (
        number("sysparm_offset").unwrap_or(0),
        number("sysparm_limit").unwrap_or(10_000),
    )
}

/// The Table API's answer for a sys_id it has no (readable) record for.
pub(super) fn no_record() -> HttpResponse {
    failure(
        StatusCode::NOT_FOUND,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

/// Operators of the encoded query language that this instance evaluates.
const OPERATORS: &[&str] = &[
    "=",
    "!=",
    "STARTSWITH",
    "ENDSWITH",
    "LIKE",
    "NOT LIKE",
    "IN",
    "NOT IN",
    "ISEMPTY",
    "ISNOTEMPTY",
    ">",
    ">=",
    "<",
    "<=",
    "RELATIVEGT",
    "RELATIVELT",
];

/// Operators a real instance knows and this one does not evaluate. They are recognised only so
/// that the longest-operator rule does not read one as a shorter operator (`INSTANCEOF` as
/// `IN`); their terms are then dropped like an unknown operator's, so a query using one is
/// widened here where a real instance would not widen it.
const UNMODELLED_OPERATORS: &[&str] = &[
    "INSTANCEOF",
    "ANYTHING",
    "EMPTYSTRING",
    "SAMEAS",
    "NSAMEAS",
    "BETWEEN",
    "DATEPART",
    "ON",
    "NOTON",
    "MORETHAN",
    "LESSTHAN",
    "VALCHANGES",
    "CHANGESFROM",
    "CHANGESTO",
    "DYNAMIC",
    "GT_FIELD",
    "LT_FIELD",
    "GT_OR_EQUALS_FIELD",
    "LT_OR_EQUALS_FIELD",
    "RELATIVEGE",
    "RELATIVELE",
    "RELATIVEEE",
];

/// One condition of an encoded query: a field and what its value must pass.
struct Condition<'q> {
    field: &'q str,
    test: Test<'q>,
}

/// What a condition asks of a field's value. Text tests that ServiceNow runs without regard
/// to case (`LIKE`, `STARTSWITH`, ...) hold their operand in lower case.
enum Test<'q> {
    Is(&'q str),
    IsNot(&'q str),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    DoesNotContain(String),
    OneOf(Vec<&'q str>),
    NoneOf(Vec<&'q str>),
    Empty,
    NotEmpty,
    /// `>`, `>=`, `<`, `<=`: the value compared with the operand, and whether that order passes.
    Ordered(&'q str, fn(Ordering) -> bool),
    /// A date-time after this moment (seconds since the epoch).
    After(i64),
    /// A date-time before this moment (seconds since the epoch).
    Before(i64),
}

impl Test<'_> {
    fn accepts(&self, value: &str) -> bool {
        let lower = || value.to_lowercase();
        match self {
            Self::Is(wanted) => value == *wanted,
            Self::IsNot(unwanted) => value != *unwanted,
            Self::StartsWith(prefix) => lower().starts_with(prefix.as_str()),
            Self::EndsWith(suffix) => lower().ends_with(suffix.as_str()),
            Self::Contains(part) => lower().contains(part.as_str()),
            Self::DoesNotContain(part) => !lower().contains(part.as_str()),
            Self::OneOf(values) => values.contains(&value),
            Self::NoneOf(values) => !values.contains(&value),
            Self::Empty => value.is_empty(),
            Self::NotEmpty => !value.is_empty(),
            // An empty field is NULL to the database, and NULL is neither more nor less.
            Self::Ordered(operand, passes) => {
                !value.is_empty() && passes(compare_values(value, operand))
            }
            Self::After(moment) => parse_glide_date_time(value).is_some_and(|at| at > *moment),
            Self::Before(moment) => parse_glide_date_time(value).is_some_and(|at| at < *moment),
        }
    }
}

/// Reads one condition term (`field` `OPERATOR` `value`); `None` when the instance cannot use
/// it: no field name, no operator it evaluates, or an operand it cannot read.
fn parse_condition(term: &str, now: i64) -> Option<Condition<'_>> {
    let name_length = term
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.'))
        .count();
    let (field, rest) = term.split_at(name_length);
    let operator = OPERATORS
        .iter()
        .chain(UNMODELLED_OPERATORS)
        .filter(|operator| rest.starts_with(**operator))
        .max_by_key(|operator| operator.len())?;
    let operand = &rest[operator.len()..];
    let lower = || operand.to_lowercase();
    let list = || operand.split(',').collect();
    let test = match *operator {
        "=" => Test::Is(operand),
        "!=" => Test::IsNot(operand),
        "STARTSWITH" => Test::StartsWith(lower()),
        "ENDSWITH" => Test::EndsWith(lower()),
        "LIKE" => Test::Contains(lower()),
        "NOT LIKE" => Test::DoesNotContain(lower()),
        "IN" => Test::OneOf(list()),
        "NOT IN" => Test::NoneOf(list()),
        "ISEMPTY" => Test::Empty,
        "ISNOTEMPTY" => Test::NotEmpty,
        ">" => Test::Ordered(operand, Ordering::is_gt),
        ">=" => Test::Ordered(operand, Ordering::is_ge),
        "<" => Test::Ordered(operand, Ordering::is_lt),
        "<=" => Test::Ordered(operand, Ordering::is_le),
        "RELATIVEGT" => Test::After(relative_moment(operand, now)?),
        "RELATIVELT" => Test::Before(relative_moment(operand, now)?),
        _ => return None,
    };
    (!field.is_empty()).then_some(Condition { field, test })
}

/// The moment a relative date-time operand (`@hour@ago@3`) names, in seconds since the epoch.
fn relative_moment(operand: &str, now: i64) -> Option<i64> {
    let mut parts = operand.strip_prefix('@')?.split('@');
    let (unit, direction, count) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let unit_seconds: i64 = match unit {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        _ => return None,
    };
    let span = count.parse::<i64>().ok()?.checked_mul(unit_seconds)?;
    match direction {
        "ago" => now.checked_sub(span),
        "ahead" => now.checked_add(span),
        _ => None,
    }
}

/// Orders two field values as the database does: numbers by value, anything else (date-times
/// as ServiceNow stores them included) as text.
fn compare_values(left: &str, right: &str) -> Ordering {
    let number = |text: &str| {
        let numeric = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-'));
        numeric.then(|| text.parse::<f64>().ok()).flatten()
    };
    match (number(left), number(right)) {
        (Some(left), Some(right)) => left.total_cmp(&right),
        _ => left.cmp(right),
    }
}

/// Indexes of `records` matching an encoded query, in the order it asks for.
///
/// `^NQ` separates queries whose results are joined; within one, terms joined by `^` must all
/// hold, and a term starting `OR` is an alternative to the term before it. `ORDERBY` and
/// `ORDERBYDESC` order the whole result. Like a real instance, a term it cannot use (an unknown
/// field or operator, or a field in `hidden`) is dropped, which widens its part of the query:
/// a part whose every term was dropped matches every record.
pub(super) fn matching(
    records: &[&BTreeMap<String, String>],
    known_fields: &[&str],
    hidden: &[String],
    encoded: &str,
) -> Vec<usize> {
    let now = clock::now().0;
    let usable = |condition: &Condition| {
        known_fields.contains(&condition.field) && !hidden.iter().any(|h| h == condition.field)
    };
    // Each part: the groups that must all hold, each group's conditions alternatives.
    let mut parts: Vec<Vec<Vec<Condition>>> = Vec::new();
    let mut order: Vec<(&str, bool)> = Vec::new();
    for part in encoded.split("^NQ") {
        let mut groups: Vec<Vec<Condition>> = Vec::new();
        let mut has_conditions = false;
        for term in part.split('^').filter(|t| !t.is_empty()) {
            if let Some(field) = term.strip_prefix("ORDERBYDESC") {
                order.push((field, true));
                continue;
            }
            if let Some(field) = term.strip_prefix("ORDERBY") {
                order.push((field, false));
                continue;
            }
            has_conditions = true;
            let (alternative, text) = match term.strip_prefix("OR") {
                Some(text) => (true, text),
                None => (false, term),
            };
            let condition = parse_condition(text, now).filter(usable);
            match (alternative, groups.last_mut()) {
                (true, Some(group)) => group.extend(condition),
                _ => groups.push(condition.into_iter().collect()),
            }
        }
        // A part made only of ordering (or of nothing, as `^NQ` at the end leaves) asks for
        // no rows of its own.
        if has_conditions {
            groups.retain(|group| !group.is_empty());
            parts.push(groups);
        }
    }
    let value = |i: usize, field: &str| records[i].get(field).map_or("", String::as_str);
    let mut matches: Vec<usize> = (0..records.len())
        .filter(|&i| {
            parts.is_empty()
                || parts.iter().any(|groups| {
                    groups.iter().all(|group| {
                        group
                            .iter()
                            .any(|condition| condition.test.accepts(value(i, condition.field)))
                    })
                })
        })
        .collect();
    for (field, descending) in order.into_iter().rev() {
        matches.sort_by(|&a, &b| {
            let ordering = compare_values(value(a, field), value(b, field));
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
pub(super) fn merge(
    incident: &mut StoredIncident,
    values: Map<String, Value>,
    custom: &[String],
    author: &str,
) {
    for (field, value) in values {
        let text = match value {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if JOURNAL_FIELDS.contains(&field.as_str()) {
            if !text.is_empty() {
                incident.journal.push(JournalEntry {
                    field,
                    text,
                    author: author.to_owned(),
                    at: clock::glide_now(),
                });
            }
        } else if writable(&field, custom) {
            incident.fields.insert(field, text);
        }
    }
    derive_fields(&mut incident.fields);
}

/// Whether a write can set `field`: an incident field (the base table's or one of the
/// instance's own `custom` columns) the instance does not compute itself (`priority`,
/// `active`) or keep for itself (`sys_id`, `sys_updated_on`, ...).
pub(super) fn writable(field: &str, custom: &[String]) -> bool {
    is_column(field, custom)
        && !["priority", "active"].contains(&field)
        && !field.starts_with("sys_")
}

/// Whether incidents have this column: the base table's, or one the instance added.
pub(super) fn is_column(field: &str, custom: &[String]) -> bool {
    INCIDENT_FIELDS.contains(&field) || custom.iter().any(|c| c == field)
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
pub(super) fn data_policy(fields: &BTreeMap<String, String>) -> Option<Refusal> {
    let blank = |name: &str| fields.get(name).is_none_or(|v| v.trim().is_empty());
    let resolving = matches!(fields.get("state").map(String::as_str), Some("6" | "7"));
    (resolving && (blank("close_code") || blank("close_notes"))).then_some(Refusal {
        detail: "Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes".into(),
    })
}

/// The record as the Table API returns it: the fields asked for, a field the user may not
/// read (a field ACL) as an empty string.
pub(super) fn record_of(
    incident: &StoredIncident,
    fields: Option<&[String]>,
    exclude_links: bool,
    unreadable: &[String],
    custom: &[String],
) -> Map<String, Value> {
    record_shown(
        incident,
        &Shown {
            fields,
            exclude_links,
            unreadable,
            custom,
            display: DisplayValue::Stored,
            names: &BTreeMap::new(),
        },
    )
}

/// `sysparm_display_value`: what a record's fields show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DisplayValue {
    /// `false`, the default (and any value the instance does not know): the stored value; a
    /// journal field shows empty.
    Stored,
    /// `true`: the display value (a state's label; a journal field's entries, newest first,
    /// each `YYYY-MM-DD HH:MM:SS - <the writer's name> (Work notes)\n<text>\n\n`).
    Display,
    /// `all`: both, as `{"display_value": …, "value": …}` (a journal field's value empty).
    Both,
}

impl DisplayValue {
    pub(super) fn of(parameter: Option<&str>) -> Self {
        match parameter.map(str::trim) {
            Some(text) if text.eq_ignore_ascii_case("true") => Self::Display,
            Some(text) if text.eq_ignore_ascii_case("all") => Self::Both,
            _ => Self::Stored,
        }
    }
}

/// How a request asks to see records.
pub(super) struct Shown<'a> {
    pub(super) fields: Option<&'a [String]>,
    pub(super) exclude_links: bool,
    /// Fields the user may not read (a field ACL): shown empty, journal fields included.
    pub(super) unreadable: &'a [String],
    pub(super) custom: &'a [String],
    pub(super) display: DisplayValue,
    /// Users' names by `user_name`, for a journal entry's header.
    pub(super) names: &'a BTreeMap<String, String>,
}

/// A record as the Table API shows it to this request.
pub(super) fn record_shown(incident: &StoredIncident, shown: &Shown<'_>) -> Map<String, Value> {
    let wanted: Vec<&str> = match shown.fields {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => INCIDENT_FIELDS
            .iter()
            .copied()
            .chain(shown.custom.iter().map(String::as_str))
            .collect(),
    };
    wanted
        .into_iter()
        .filter(|name| is_column(name, shown.custom))
        .map(|name| {
            let unreadable = shown.unreadable.iter().any(|u| u == name);
            let journal = JOURNAL_FIELDS.contains(&name);
            let text = if unreadable || journal {
                String::new()
            } else {
                incident.fields.get(name).cloned().unwrap_or_default()
            };
            let display = if unreadable {
                String::new()
            } else if journal {
                journal_display(incident, name, shown.names)
            } else if name == "state" {
                state_label(&text).to_owned()
            } else {
                text.clone()
            };
            let link = REFERENCE_FIELDS.contains(&name) && !shown.exclude_links && !text.is_empty();
            let value = match shown.display {
                DisplayValue::Display => Value::String(display),
                DisplayValue::Both if link => json!({
                    "display_value": display,
                    "link": format!("/api/now/table/sys_user/{text}"),
                    "value": text,
                }),
                DisplayValue::Both => json!({ "display_value": display, "value": text }),
                DisplayValue::Stored if link => {
                    json!({ "link": format!("/api/now/table/sys_user/{text}"), "value": text })
                }
                DisplayValue::Stored => Value::String(text),
            };
            (name.to_owned(), value)
        })
        .collect()
}

/// A journal field's display value: its entries, newest first, each with its header.
fn journal_display(
    incident: &StoredIncident,
    field: &str,
    names: &BTreeMap<String, String>,
) -> String {
    let label = if field == "comments" {
        "Additional comments"
    } else {
        "Work notes"
    };
    incident
        .journal
        .iter()
        .rev()
        .filter(|entry| entry.field == field)
        .map(|entry| {
            let writer = names.get(&entry.author).unwrap_or(&entry.author);
            format!("{} - {writer} ({label})\n{}\n\n", entry.at, entry.text)
        })
        .collect()
}

/// A stock state's label, as its display value.
fn state_label(code: &str) -> &str {
    match code {
        "1" => "New",
        "2" => "In Progress",
        "3" => "On Hold",
        "6" => "Resolved",
        "7" => "Closed",
        "8" => "Canceled",
        other => other,
    }
}
