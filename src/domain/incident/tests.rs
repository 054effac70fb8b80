//! The incident module's unit tests.

use super::*;

/// A write's answer with nothing in it but its number.
fn written() -> Incident {
    Incident {
        sys_id: "a".into(),
        number: "INC1".into(),
        ..Incident::default()
    }
}

#[test]
fn the_correlation_id_is_the_alert_id_with_a_prefix() {
    let id = AlertId::parse("12797430").unwrap();
    assert_eq!(CorrelationId::for_alert(&id).as_str(), "ilert:12797430");
}

#[test]
fn states_round_trip_and_custom_states_are_kept() {
    for code in ["1", "2", "3", "6", "7", "8", "101"] {
        assert_eq!(IncidentState::from_code(code).code(), code);
    }
    assert!(IncidentState::from_code("7").is_final());
    assert!(IncidentState::from_code("8").is_final());
    assert!(!IncidentState::from_code("6").is_final());
}

#[test]
fn note_memory_recognises_what_it_remembered() {
    let first = NoteFingerprint::of("event-a");
    let second = NoteFingerprint::of("event-b");
    assert_ne!(first, second);
    let display = NoteMemory::read(CORRELATION_DISPLAY).remember(&first);
    let memory = NoteMemory::read(&display);
    assert!(memory.contains(&first));
    assert!(!memory.contains(&second));
}

#[test]
fn a_state_the_instance_set_is_remembered_beside_the_notes_and_kept_by_them() {
    let note = NoteFingerprint::of("event-a");
    let display = NoteMemory::read(CORRELATION_DISPLAY).remember(&note);
    let display = NoteMemory::read(&display).remember_set_by_instance(&IncidentState::InProgress);
    let display = NoteMemory::read(&display).remember(&NoteFingerprint::of("event-b"));
    let memory = NoteMemory::read(&display);
    assert!(
        memory.set_by_instance(&IncidentState::InProgress),
        "{display}"
    );
    assert!(!memory.set_by_instance(&IncidentState::Resolved));
    assert!(memory.contains(&note));

    let written = Incident {
        state: IncidentState::InProgress,
        ..written()
    };
    let new = IncidentChanges {
        state: Some("1".into()),
        ..IncidentChanges::default()
    };
    assert_eq!(
        new.state_set_by_instance(&written),
        Some(IncidentState::InProgress)
    );
    assert!(
        new.not_applied_in(&written).is_empty(),
        "further along is not dropped"
    );
    let resolve = IncidentChanges {
        state: Some("6".into()),
        ..IncidentChanges::default()
    };
    assert_eq!(resolve.state_set_by_instance(&written), None);
    assert_eq!(
        resolve.not_applied_in(&written),
        ["state"],
        "behind is dropped"
    );
}

#[test]
fn the_journal_tells_which_notes_were_written_whatever_else_it_holds() {
    let journal = "2026-12-04 10:41:12 - ServiceNow Sync (Work notes)\nComment in iLert: \
                   ok\n[iLert #a6254e]\n\n2026-12-04 10:40:00 - Jane (Work notes)\n\
                   [iLert #zzzzzz] [iLert #12345] [iLert #ééé] [iLert #4801ec]\n\n";
    let marked: Vec<NoteFingerprint> = NoteFingerprint::marked_in(journal);
    assert_eq!(
        marked,
        [
            NoteFingerprint("#a6254e".into()),
            NoteFingerprint("#4801ec".into())
        ]
    );
    let incident = Incident {
        journal: journal.into(),
        correlation_display: "iLert #111111".into(),
        ..written()
    };
    let memory = NoteMemory::of(&incident);
    assert!(memory.contains(&NoteFingerprint("#a6254e".into())));
    assert!(memory.contains(&NoteFingerprint("#111111".into())));
    assert!(NoteFingerprint::marked_in("[iLert #").is_empty());
    assert!(NoteFingerprint::marked_in("[iLert #abcdé").is_empty());
}

#[test]
fn note_memory_forgets_the_oldest_to_fit_the_field() {
    let mut display = CORRELATION_DISPLAY.to_owned();
    for n in 0..50 {
        display = NoteMemory::read(&display).remember(&NoteFingerprint::of(&n.to_string()));
        assert!(display.chars().count() <= CORRELATION_FIELD_MAX_CHARS);
    }
    let memory = NoteMemory::read(&display);
    assert!(memory.contains(&NoteFingerprint::of("49")));
    assert!(!memory.contains(&NoteFingerprint::of("0")));
    assert!(display.starts_with("iLert #"));
}

#[test]
fn only_a_key_that_is_exactly_an_alerts_names_its_alert() {
    assert_eq!(
        CorrelationId::alert_of("ilert:12797430").map(|id| id.to_string()),
        Some("12797430".to_owned())
    );
    for other in [
        "ilert:12797430:duplicate-of-INC0010001",
        "ilert:check-1700000000",
        "ilert:",
        "ILERT:1",
        "nagios:1",
        "",
    ] {
        assert_eq!(CorrelationId::alert_of(other), None, "{other}");
    }
}

#[test]
fn a_write_that_the_instance_dropped_is_noticed() {
    let changes = IncidentChanges {
        state: Some("6".into()),
        ..Default::default()
    };
    let mut written = Incident {
        state: IncidentState::InProgress,
        short_description: "RESOLVED x".into(),
        correlation_id: "ilert:1".into(),
        ..written()
    };
    assert_eq!(changes.not_applied_in(&written), ["state"]);
    written.state = IncidentState::Resolved;
    assert!(changes.not_applied_in(&written).is_empty());
}

#[test]
fn a_custom_field_counts_as_kept_when_it_comes_back_with_any_value() {
    let changes = IncidentChanges {
        custom: [
            ("u_environment", "production"),
            ("u_owner", "Jane Doe"),
            ("u_team", "payments"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        ..Default::default()
    };
    let mut written = Incident {
        // A reference field reads back as the sys_id ServiceNow stored, not the name.
        custom: [
            ("u_owner", "5137153cc611227c000bbd1bd8cd2005"),
            ("u_team", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        ..written()
    };
    assert_eq!(
        changes.custom_not_applied_in(&written),
        [
            ("u_environment".to_owned(), CustomFieldLoss::NotShown),
            ("u_team".to_owned(), CustomFieldLoss::Empty)
        ]
    );
    written
        .custom
        .insert("u_environment".into(), "production".into());
    written.custom.insert("u_team".into(), "payments".into());
    assert!(changes.custom_not_applied_in(&written).is_empty());
}

#[test]
fn changes_serialise_only_the_fields_they_set() {
    let changes = IncidentChanges {
        state: Some("2".into()),
        ..Default::default()
    };
    assert_eq!(serde_json::to_string(&changes).unwrap(), r#"{"state":"2"}"#);
    assert!(IncidentChanges::default().is_empty());
}
