//! Settings and event bytes → parse → decide, against no incident and against one in every
//! state. The input's first line is a webhook URL's query string (the alert action's
//! settings, `field.<name>` templates included), the rest the event's body.
//!
//! Beyond "nothing panics", it checks the rules that protect a ServiceNow instance: a created
//! incident carries exactly the alert's key, values fit ServiceNow's field lengths, custom
//! fields never touch a field the function writes itself and stay within their limit, Closed
//! and Canceled incidents are never written, and once a plan is applied the same event decides
//! `Unchanged` (a redelivery writes nothing).
#![no_main]

use ilert_servicenow::domain::alert::AlertEvent;
use ilert_servicenow::domain::decision::{decide, Plan};
use ilert_servicenow::domain::people::{Echo, People};
use ilert_servicenow::domain::incident::{CorrelationId, Incident, IncidentState};
use ilert_servicenow::domain::settings::Settings;
use libfuzzer_sys::fuzz_target;

fn chars(value: &Option<String>) -> usize {
    value.as_ref().map_or(0, |text| text.chars().count())
}

/// Fields a `field.<name>` setting must never reach.
const FUNCTION_FIELDS: [&str; 12] = [
    "state",
    "correlation_id",
    "correlation_display",
    "work_notes",
    "comments",
    "close_code",
    "close_notes",
    "short_description",
    "description",
    "impact",
    "urgency",
    "assigned_to",
];

fuzz_target!(|input: &[u8]| {
    let (query, body) = match input.iter().position(|&b| b == b'\n') {
        Some(end) => (&input[..end], &input[end + 1..]),
        None => (&[][..], input),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let Ok(settings) = Settings::default().with_query(query) else {
        return;
    };
    assert!(settings.custom_fields.len() <= 20);
    // An instance name goes into log lines and picks a connection: plain text only.
    assert!(settings.instance.as_deref().is_none_or(|name| name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')));
    let Ok(event) = AlertEvent::parse(body) else {
        return;
    };
    let key = CorrelationId::for_alert(&event.id);
    let digits = key
        .as_str()
        .strip_prefix("ilert:")
        .expect("the key's prefix");
    assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));

    let now = std::time::SystemTime::now();
    let existing = Incident {
        sys_id: "0123456789abcdef0123456789abcdef".into(),
        number: "INC0010001".into(),
        state: IncidentState::New,
        short_description: String::new(),
        correlation_id: key.as_str().into(),
        correlation_display: "iLert".into(),
        impact: "3".into(),
        urgency: "3".into(),
        assigned_to: String::new(),
        close_code: String::new(),
        close_notes: String::new(),
        updated_by: String::new(),
        created_by: String::new(),
        journal: String::new(),
        custom: Default::default(),
    };
    let mut situations = vec![None];
    for code in ["1", "2", "3", "6", "7", "8", "101"] {
        situations.push(Some(Incident {
            state: IncidentState::from_code(code),
            ..existing.clone()
        }));
    }

    for current in situations {
        // iLert's echo of the back-sync's own accept or resolve writes nothing to an incident
        // already there: only one behind the alert's state is written.
        let echo = People {
            echo_of_back_sync: Echo::Yes,
            ..People::default()
        };
        if let Plan::Update { changes, .. } =
            decide(&event, current.as_ref(), &settings, &echo, now)
        {
            assert!(changes.state.is_some(), "an echo wrote {changes:?}");
        }
        let plan = decide(&event, current.as_ref(), &settings, &People::default(), now);
        let changes = match &plan {
            Plan::Ignore { .. } => {
                assert!(current.is_none(), "only a missing incident is ignored");
                continue;
            }
            Plan::Unchanged => {
                assert!(current.is_some());
                continue;
            }
            Plan::Create(changes) => {
                assert!(current.is_none());
                assert_eq!(changes.correlation_id.as_deref(), Some(key.as_str()));
                changes
            }
            Plan::Update { changes, .. } => {
                let incident = current.as_ref().expect("an update has an incident");
                assert!(
                    !incident.state.is_final(),
                    "Closed and Canceled are never written"
                );
                assert!(!changes.is_empty());
                changes
            }
        };
        assert!(chars(&changes.short_description) <= 160);
        assert!(chars(&changes.correlation_id) <= 100);
        assert!(chars(&changes.correlation_display) <= 100);
        assert!(chars(&changes.description) <= 4000);
        for (name, value) in &changes.custom {
            assert!(!FUNCTION_FIELDS.contains(&name.as_str()) && !name.starts_with("sys_"));
            assert!(!value.trim().is_empty() && value.chars().count() <= 4000);
        }

        let after = current.as_ref().unwrap_or(&existing).after(changes);
        assert_eq!(
            decide(&event, Some(&after), &settings, &People::default(), now),
            Plan::Unchanged,
            "a redelivered event writes nothing"
        );
    }
});
