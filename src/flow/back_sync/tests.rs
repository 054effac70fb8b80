//! The way back's unit tests.

use super::echo::KeyUserLookup;
use super::*;

#[test]
fn the_keys_user_is_kept_past_its_lifetime_while_ilert_cannot_be_asked() {
    let person = Person {
        id: Some(900001),
        username: None,
        first_name: Some("ServiceNow".into()),
        last_name: Some("Sync".into()),
        email: Some("servicenow-sync@example.com".into()),
    };
    let start = Instant::now();
    let mut cache = KeyUser::default();
    assert_eq!(cache.lookup("k", start), KeyUserLookup::Ask(None));
    cache.known.insert("k".into(), (start, person.clone()));
    assert_eq!(
        cache.lookup("k", start),
        KeyUserLookup::Fresh(person.clone())
    );
    let later = start + KEY_USER_TTL + Duration::from_secs(1);
    assert_eq!(
        cache.lookup("k", later),
        KeyUserLookup::Ask(Some(person.clone()))
    );
    cache.failed.insert("k".into(), later);
    assert_eq!(
        cache.lookup("k", later),
        KeyUserLookup::FailedLately(Some(person.clone())),
        "a refresh that failed keeps the user it named before"
    );
    assert_eq!(cache.lookup("other", later), KeyUserLookup::Ask(None));
}

#[test]
fn the_passes_to_reach_every_open_alert_are_those_the_readme_states() {
    for (open, passes) in [(0, 1), (2_500, 1), (2_501, 2 * 2), (4_500, 4), (10_500, 10)] {
        assert_eq!(passes_to_reach(open), passes, "{open} open alerts");
    }
}
