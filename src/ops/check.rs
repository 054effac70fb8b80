//! `ilert-servicenow check [--create-test-incident]`: proves the connection step by step with
//! the Lambda's own environment, before iLert's first event does, and the way back when the
//! secret turns it on. Never prints a secret.

use crate::adapters::ilert::{ILertApi, ILertError, OPEN_ALERTS_PAGE};
use crate::adapters::queue::SqsQueue;
use crate::adapters::secrets::{
    Connection, Connections, SecretError, SecretSource, ServiceNowAccount,
};
use crate::adapters::servicenow::{IncidentTable, ServiceNowError, TableApi};
use crate::domain::alert::AlertStatus;
use crate::domain::alert_scan::Scan;
use crate::domain::incident::{CorrelationId, Incident, IncidentChanges, CORRELATION_DISPLAY};
use crate::domain::settings::{Settings, Target, DEFAULT_SETTINGS};
use crate::flow::back_sync::{passes_to_reach, NEWEST_PAGES_PER_PASS};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The roles that let the integration user read and write incidents.
const ROLES_TO_GRANT: &str =
    "grant the integration user the itil (or incident_manager) role, plus sn_incident_write on newer releases";

/// What the operator asked `check` for, with the deployment's defaults it checks against.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    /// `DEFAULT_SETTINGS` (the built-in ones if unusable): the close code of a test
    /// incident, the custom fields to read.
    pub defaults: &'a Settings,
    /// `--instance`: only this one of the secret's connections.
    pub instance: Option<&'a str>,
    /// `--create-test-incident`.
    pub create_test_incident: bool,
}

/// The deployment's queue: how many events wait for ServiceNow, and how many it refused (the
/// dead letters). The oldest event's age is CloudWatch's (`ApproximateAgeOfOldestMessage`,
/// on the dashboard): SQS tells it only by receiving the message, which a check must not do.
pub async fn queue(queue: Option<&SqsQueue>, out: &mut impl Write) -> bool {
    let Some(queue) = queue else {
        report(
            out,
            "WARN",
            "queue",
            "none (QUEUE_URL is not set): in direct delivery an event ServiceNow cannot take \
             is answered 503 and its fate is iLert's; deploy the template to get one",
        );
        return true;
    };
    match queue.depth().await {
        Ok(depth) => {
            report(
                out,
                if depth.waiting + depth.in_flight > 0 {
                    "WARN"
                } else {
                    "OK"
                },
                "queue",
                &format!(
                    "{} event(s) waiting for ServiceNow, {} being applied; the oldest's age is \
                     on the dashboard",
                    depth.waiting, depth.in_flight
                ),
            );
            if depth.dead_letters > 0 {
                report(
                    out,
                    "WARN",
                    "dead letters",
                    &format!(
                        "{} event(s) ServiceNow refused for good; each says why in its \
                         `failure` attribute (docs/deploy.md, dead letters)",
                        depth.dead_letters
                    ),
                );
            }
            true
        }
        Err(problem) => {
            report(out, "FAIL", "queue", &problem.to_string());
            false
        }
    }
}

/// One line of the check's report.
fn report(out: &mut impl Write, verdict: &str, step: &str, detail: &str) {
    let _ = writeln!(out, "{verdict:<4} {step:<18} {detail}");
}

/// `ilert-servicenow check [--create-test-incident]`: reads the secret, reaches the instance,
/// authenticates, reads and writes incidents. Returns whether every step passed.
pub async fn run<S: SecretSource>(
    source: S,
    table: &TableApi,
    ilert: &ILertApi,
    configuration_problems: &[String],
    asked: &Asked<'_>,
    out: &mut impl Write,
) -> bool {
    let Asked {
        defaults,
        instance,
        create_test_incident,
    } = *asked;
    // The function's own variables first: each one it cannot use fails every call.
    for problem in configuration_problems {
        report(out, "FAIL", "configuration", problem);
    }
    let configured = configuration_problems.is_empty();
    let secret_name = source.secret_name().to_owned();
    let connections = match source.fetch().await {
        Ok(secret) => Connections::from_secret(&secret, &secret_name),
        Err(error) => Err(error),
    };
    let connections = match connections {
        Ok(connections) => connections,
        Err(SecretError::Misconfigured(problem) | SecretError::Unavailable(problem)) => {
            report(out, "FAIL", "secret", &problem);
            return false;
        }
    };
    let mut passed = configured;
    let broken = |name: &str| connections.broken().find(|entry| entry.name == name);
    if let Some(name) = &defaults.instance {
        let problem = match (broken(name), connections.named(name)) {
            (Some(entry), _) => Some(format!(
                "{DEFAULT_SETTINGS} names instance `{name}`, whose entry in the secret is \
                 unusable: {}",
                entry.problem
            )),
            (None, Err(unknown)) => Some(format!("{DEFAULT_SETTINGS}: {unknown}")),
            (None, Ok(_)) => None,
        };
        if let Some(problem) = problem {
            report(out, "FAIL", "instance", &problem);
            passed = false;
        }
    }
    // Every entry, or the one asked for: each is checked whole, one after the other; an
    // entry the function cannot use fails alone, and says why.
    let names: Vec<&str> = match instance {
        None => connections.names(),
        Some(name) if broken(name).is_some() || connections.named(name).is_ok() => vec![name],
        Some(name) => {
            let unknown = connections.named(name).err().map(|u| u.to_string());
            report(out, "FAIL", "instance", &unknown.unwrap_or_default());
            return false;
        }
    };
    for name in names {
        if connections.several() {
            report(out, "", "instance", name);
        }
        let connection = match (broken(name), connections.named(name)) {
            (None, Ok(connection)) => connection,
            (Some(entry), _) => {
                report(
                    out,
                    "FAIL",
                    "secret",
                    &format!(
                        "the entry of instance `{name}` is unusable: {}; this instance's \
                         calls answer 500 until it is mended, every other instance works",
                        entry.problem
                    ),
                );
                passed = false;
                continue;
            }
            (None, Err(_)) => continue,
        };
        if !connection.implicitly_shared.is_empty() {
            let keys = connection.implicitly_shared.join("`, `");
            report(
                out,
                "WARN",
                "shared keys",
                &format!(
                    "`{keys}` at the top of the secret serve instance `{name}` too, as they serve \
                     every instance of a secret without `shared_keys`: one customer's key then \
                     acts on another's alerts. Give each instance its own (`ilert-servicenow \
                     secret --instance {name} --ilert-api-key`), or, if one is meant for all, \
                     add \"shared_keys\": [\"{}\"] to the secret",
                    connection.implicitly_shared.join("\", \"")
                ),
            );
        }
        passed &= checked(
            connection,
            &secret_name,
            table,
            ilert,
            defaults,
            create_test_incident,
            out,
        )
        .await;
    }
    passed
}

async fn checked(
    connection: &Connection,
    secret_name: &str,
    table: &TableApi,
    ilert: &ILertApi,
    defaults: &Settings,
    create_test_incident: bool,
    out: &mut impl Write,
) -> bool {
    let account = &connection.servicenow;
    let login = match (&account.oauth_client, account.username()) {
        (None, Some(user)) => format!("user {user}, HTTP Basic"),
        (Some((client, _)), Some(user)) => {
            format!("user {user}, OAuth client {client} (password grant)")
        }
        (Some((client, _)), None) => format!("OAuth client {client} (client credentials)"),
        (None, None) => "no credentials".to_owned(),
    };
    report(
        out,
        "OK",
        "secret",
        &format!("read {secret_name}: {} as {login}", account.instance_url),
    );

    // Event Management instead of incidents: its user needs no incident role at all.
    if defaults.target == Target::Event {
        let (lines, sent) = crate::ops::event_check::check(table, account).await;
        for (verdict, step, detail) in lines {
            report(out, verdict, step, &detail);
        }
        report(
            out,
            "SKIP",
            "incidents",
            "DEFAULT_SETTINGS sends events (target=event); an alert action with \
             target=incident also needs the incident roles: check without target=event",
        );
        return sent;
    }

    // One read answers three questions: is it there, does it know us, may we read?
    let first = match table.probe(account).await {
        Ok(first) => {
            report(out, "OK", "reach instance", account.instance_url.as_str());
            report(out, "OK", "authenticate", &login);
            report(out, "OK", "read incidents", "the Table API answered");
            first
        }
        Err(error) => {
            explain_probe_failure(out, &error, &account.instance_url);
            return false;
        }
    };

    let custom_fields: Vec<&str> = defaults.custom_fields.keys().map(String::as_str).collect();
    let fields_readable = check_custom_fields(table, account, &custom_fields, out).await;

    // A lookup by key that the instance widens (a field ACL on correlation_id) would make
    // every event look like a first one.
    let mut passed = match table.find(account, &CorrelationId::no_alert()).await {
        Ok(_) => {
            report(
                out,
                "OK",
                "look up by key",
                "lookups by correlation_id are honoured",
            );
            true
        }
        Err(error) => {
            report(out, "FAIL", "look up by key", &error.to_string());
            false
        }
    };
    // A harmless write, and only on an active incident: Closed and Canceled ones are
    // read-only, and a write to them proves nothing.
    match first.filter(|incident| !incident.state.is_final()) {
        Some(Incident { sys_id, number, .. }) => match table
            .update(account, &sys_id, &IncidentChanges::default())
            .await
        {
            Ok(_) => report(
                out,
                "OK",
                "write incidents",
                &format!("an empty update of {number} was allowed (nothing changed)"),
            ),
            Err(error) => {
                report(
                    out,
                    "FAIL",
                    "write incidents",
                    &format!("{error}; {ROLES_TO_GRANT}"),
                );
                passed = false;
            }
        },
        None if !create_test_incident => report(
            out,
            "SKIP",
            "write incidents",
            "no active incident to try a harmless write on; run `check --create-test-incident`",
        ),
        None => {}
    }

    if create_test_incident && passed {
        passed =
            create_and_resolve_test_incident(table, connection, &defaults.close_code, out).await;
    }
    check_back_sync(table, ilert, connection, out).await && passed && fields_readable
}

/// The custom fields `DEFAULT_SETTINGS` sets (`field.<name>`): read on the newest incident,
/// each must be there. ServiceNow leaves out a column the table does not have or the user
/// may not read; whether the user may write one shows only when a write tries (the first
/// event's answer names a field that did not stick).
async fn check_custom_fields(
    table: &TableApi,
    account: &ServiceNowAccount,
    names: &[&str],
    out: &mut impl Write,
) -> bool {
    if names.is_empty() {
        return true;
    }
    match table.newest_showing(account, names).await {
        Ok(None) => {
            report(
                out,
                "SKIP",
                "custom fields",
                &format!(
                    "no incident to read {} on; the first event's answer names any that does \
                     not stick",
                    names.join(", ")
                ),
            );
            true
        }
        Ok(Some(incident)) => {
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| !incident.custom.contains_key(*name))
                .collect();
            if missing.is_empty() {
                report(
                    out,
                    "OK",
                    "custom fields",
                    &format!(
                        "{} read on {} (write access shows with the first event)",
                        names.join(", "),
                        incident.number
                    ),
                );
                true
            } else {
                report(
                    out,
                    "FAIL",
                    "custom fields",
                    &format!(
                        "{} not on incidents: no such column, or the integration user may not \
                         read it; check the name in {DEFAULT_SETTINGS} (field.<name>) and the \
                         field's ACLs",
                        missing.join(", ")
                    ),
                );
                false
            }
        }
        Err(error) => {
            report(out, "FAIL", "custom fields", &error.to_string());
            false
        }
    }
}

mod back_sync;
use back_sync::check_back_sync;

fn explain_probe_failure(
    out: &mut impl Write,
    error: &ServiceNowError,
    instance_url: &reqwest::Url,
) {
    // An instance URL with a path, or one that is no instance at all, answers the Table API's
    // path with 400 or 404: that, not a role, is then the likely cause.
    let url_hint = match (error, instance_url.path()) {
        (ServiceNowError::NotFound(_), _) => Some(format!(
            "there is no Table API at {instance_url}: check instance_url (the instance's own \
             https://<name>.service-now.com)"
        )),
        (ServiceNowError::Refused(_), path) if path != "/" => Some(format!(
            "instance_url has a path ({path}), and the Table API is at the instance's root: \
             check instance_url (https://<name>.service-now.com, nothing after the host)"
        )),
        _ => None,
    };
    match error {
        ServiceNowError::Transient { message, .. }
        | ServiceNowError::NotApplied { message, .. } => {
            let hint = if message.to_ascii_lowercase().contains("certificate")
                || message.to_ascii_lowercase().contains("tls")
            {
                "TLS failure: the instance's certificate is not trusted"
            } else {
                "check instance_url and that the instance is up and reachable from here"
            };
            report(
                out,
                "FAIL",
                "reach instance",
                &format!("{message} ({hint})"),
            );
        }
        ServiceNowError::NotTableApi(message) => report(out, "FAIL", "reach instance", message),
        ServiceNowError::Unauthorized(message) => {
            report(out, "OK", "reach instance", "the instance answered");
            report(out, "FAIL", "authenticate", message);
        }
        ServiceNowError::Refused(message)
        | ServiceNowError::NotFound(message)
        | ServiceNowError::Dropped(message)
        | ServiceNowError::Intermittent { message, .. } => {
            report(out, "OK", "reach instance", "the instance answered");
            report(out, "OK", "authenticate", "the credentials were accepted");
            let hint = url_hint.unwrap_or_else(|| ROLES_TO_GRANT.to_owned());
            report(out, "FAIL", "read incidents", &format!("{message}; {hint}"));
        }
    }
}

/// Like iLert's own "Test this connection": a test incident, created and resolved at once.
async fn create_and_resolve_test_incident(
    table: &TableApi,
    connection: &Connection,
    close_code: &str,
    out: &mut impl Write,
) -> bool {
    let account = &connection.servicenow;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let create = IncidentChanges {
        short_description: Some("TEST ilert-servicenow connection check".into()),
        description: Some(
            "Created by `ilert-servicenow check --create-test-incident` and resolved right away."
                .into(),
        ),
        state: Some("1".into()),
        impact: Some("3".into()),
        urgency: Some("3".into()),
        // Not an alert's key, nor starting like one, so no alert and no back-sync ever finds it.
        correlation_id: Some(format!("ilert-check:{stamp}")),
        correlation_display: Some(CORRELATION_DISPLAY.into()),
        ..IncidentChanges::default()
    };
    let created = match table.create(account, &create).await {
        Ok(created) => created,
        Err(error) => {
            report(
                out,
                "FAIL",
                "create test",
                &format!("{error}; {ROLES_TO_GRANT}"),
            );
            return false;
        }
    };
    let resolve = IncidentChanges {
        state: Some("6".into()),
        close_code: Some(close_code.to_owned()),
        close_notes: Some("Connection check passed.".into()),
        ..IncidentChanges::default()
    };
    match table.update(account, &created.sys_id, &resolve).await {
        Ok(resolved) if resolved.state.code() == "6" => {
            report(
                out,
                "OK",
                "test incident",
                &format!("created {} and resolved it", created.number),
            );
            true
        }
        Ok(_) => {
            report(
                out,
                "FAIL",
                "test incident",
                &format!(
                    "created {}, but resolving it did not stick (a field ACL or business rule)",
                    created.number
                ),
            );
            false
        }
        Err(error) => {
            report(
                out,
                "FAIL",
                "test incident",
                &format!("created {}, but could not resolve it: {error} (is `close_code` right for your release? set close_code in DEFAULT_SETTINGS)", created.number),
            );
            false
        }
    }
}
