//! Who the iLert key acts as, and whether an event is iLert's echo of the way back's own accept or resolve.

use super::*;

impl<T: IncidentTable> BackSync<T> {
    /// Whether `event` is iLert's echo of an accept or resolve made here: it names the user
    /// the API key acts as. A webhook never fails for it: if iLert cannot say who the key is,
    /// the event is taken as anyone's.
    pub async fn is_echo(
        &self,
        connection: &Connection,
        event: &AlertEvent,
        budget: &Budget,
    ) -> Echo {
        let Some(ilert) = &connection.ilert else {
            return Echo::No;
        };
        if !matches!(event.kind, EventKind::Acknowledged | EventKind::Resolved) {
            return Echo::No;
        }
        match self.key_user(ilert, budget).await {
            Ok(user) if event.acted_by(&user) => Echo::Yes,
            Ok(_) => Echo::No,
            Err(cause) => {
                tracing::warn!(%cause, "could not learn who the iLert API key acts as; an echo of the back-sync may be noted, but takes no incident from its assignee");
                Echo::CannotTell
            }
        }
    }

    /// The user the API key acts as (`GET /api/users/current`), cached per key. Once known,
    /// the user is kept past [`KEY_USER_TTL`] while iLert cannot be asked again: an API key
    /// does not change its user, and an echo must still be recognised while iLert is away.
    pub async fn key_user(
        &self,
        ilert: &ILertAccount,
        budget: &Budget,
    ) -> Result<Person, ILertError> {
        let key = key_fingerprint(ilert);
        let stale = {
            let cached = self.key_user.lock().unwrap_or_else(|e| e.into_inner());
            match cached.lookup(&key, Instant::now()) {
                KeyUserLookup::Fresh(user) => return Ok(user),
                KeyUserLookup::FailedLately(Some(stale)) => return Ok(stale),
                KeyUserLookup::FailedLately(None) => {
                    return Err(ILertError::Transient {
                        message: "iLert could not say who the API key acts as a moment ago".into(),
                        retry_after: None,
                    })
                }
                KeyUserLookup::Ask(stale) => stale,
            }
        };
        let wait = KEY_USER_WAIT.min(budget.remaining());
        let learned =
            match tokio::time::timeout(wait, budget.ilert(self.ilert.current_user(ilert))).await {
                Ok(result) => result,
                Err(_) => Err(ILertError::Transient {
                    message: "iLert did not say in time who the API key acts as".into(),
                    retry_after: None,
                }),
            };
        let mut cached = self.key_user.lock().unwrap_or_else(|e| e.into_inner());
        match learned {
            Ok(user) => {
                cached.failed.remove(&key);
                cached.known.insert(key, (Instant::now(), user.clone()));
                Ok(user)
            }
            Err(cause) => {
                cached.failed.insert(key, Instant::now());
                match stale {
                    Some(user) => {
                        tracing::warn!(%cause, "could not ask iLert again who the API key acts as; keeping the user it named before");
                        Ok(user)
                    }
                    None => Err(cause),
                }
            }
        }
    }
}

/// What the key-user cache says for a key at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyUserLookup {
    Fresh(Person),
    /// iLert failed to say a moment ago: the user it named before, if any.
    FailedLately(Option<Person>),
    /// Ask iLert; if it fails, the user it named before, if any.
    Ask(Option<Person>),
}

impl KeyUser {
    pub(super) fn lookup(&self, key: &str, now: Instant) -> KeyUserLookup {
        let known = self.known.get(key);
        if let Some((at, user)) = known {
            if now.saturating_duration_since(*at) < KEY_USER_TTL {
                return KeyUserLookup::Fresh(user.clone());
            }
        }
        let stale = known.map(|(_, user)| user.clone());
        match self.failed.get(key) {
            Some(at) if now.saturating_duration_since(*at) < KEY_USER_FAILURE_MEMORY => {
                KeyUserLookup::FailedLately(stale)
            }
            _ => KeyUserLookup::Ask(stale),
        }
    }
}
