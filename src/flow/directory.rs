//! Who the decision needs, as ServiceNow knows them: the caller of a new incident, and with
//! `assign_on_accept` the responder who accepted. `sys_user` lookups are cached per
//! execution environment, so a storm of events costs one lookup per user, not one per event.

use crate::adapters::secrets::ServiceNowAccount;
use crate::adapters::servicenow::{IncidentTable, ServiceNowError, UserKey};
use crate::domain::alert::AlertEvent;
use crate::domain::decision::wants_assignee;
use crate::domain::people::{Assignee, Echo, People};
use crate::domain::settings::{Email, Settings, UserRef};
use crate::flow::budget::Budget;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a user lookup is trusted: a user found keeps their sys_id; one not found may be
/// created soon after, so that answer is asked again sooner.
const USER_FOUND_TTL: Duration = Duration::from_secs(3600);
const USER_NOT_FOUND_TTL: Duration = Duration::from_secs(300);

/// A user as one instance knows them: the same email is another sys_id on another instance.
type InstanceUser = (String, UserKey);

#[derive(Default)]
pub struct UserDirectory {
    found: Mutex<HashMap<InstanceUser, (Instant, Option<String>)>>,
}

impl UserDirectory {
    /// Looks up the users deciding on `event` needs: the caller when `creating`, and the
    /// accepting responder when the settings assign on accept.
    pub async fn people(
        &self,
        table: &impl IncidentTable,
        account: &ServiceNowAccount,
        event: &AlertEvent,
        settings: &Settings,
        creating: bool,
        budget: &Budget,
    ) -> Result<People, ServiceNowError> {
        let caller = if creating {
            self.caller(table, account, settings, budget).await?
        } else {
            None
        };
        let assignee = if !wants_assignee(event, settings) {
            Assignee::NotWanted
        } else {
            match event.actor_email().and_then(Email::parse) {
                None => Assignee::NoEmail,
                Some(email) => {
                    let key = UserKey::Email(email.clone());
                    match self.user(table, account, &key, budget).await? {
                        Some(sys_id) => Assignee::Found(sys_id),
                        None => Assignee::UnknownEmail(email.to_string()),
                    }
                }
            }
        };
        Ok(People {
            caller,
            assignee,
            echo_of_back_sync: Echo::No,
        })
    }

    /// Looks up, beside the incident's own lookup, the caller a create would need, so that
    /// the first create of a function instance does not wait for it in sequence. What it
    /// finds is kept as any lookup is; a failure is left for `people` to meet and answer.
    pub async fn look_up_caller_ahead(
        &self,
        table: &impl IncidentTable,
        account: &ServiceNowAccount,
        settings: &Settings,
        budget: &Budget,
    ) {
        if let Err(cause) = self.caller(table, account, settings, budget).await {
            tracing::debug!(%cause, "the caller looked up ahead is not there yet");
        }
    }

    /// `caller_id` as set, an email resolved to its user; without one, the integration user.
    async fn caller(
        &self,
        table: &impl IncidentTable,
        account: &ServiceNowAccount,
        settings: &Settings,
        budget: &Budget,
    ) -> Result<Option<String>, ServiceNowError> {
        match &settings.caller_id {
            Some(UserRef::SysId(value) | UserRef::Name(value)) => Ok(Some(value.clone())),
            Some(UserRef::Email(email)) => {
                let key = UserKey::Email(email.clone());
                match self.user(table, account, &key, budget).await? {
                    Some(sys_id) => Ok(Some(sys_id)),
                    None => Err(ServiceNowError::Refused(format!(
                        "caller_id {email} matches no active ServiceNow user: check the \
                         alert action's caller_id or the user's email in sys_user"
                    ))),
                }
            }
            None => {
                let Some(key) = account.username().and_then(UserKey::user_name) else {
                    return Ok(None);
                };
                match self.user(table, account, &key, budget).await {
                    // Without read access to sys_user the incident is still worth creating;
                    // the refusal is kept as an absence, so it is not asked again each event.
                    Err(ServiceNowError::Refused(cause)) => {
                        tracing::warn!(%cause, "could not look up the integration user as caller");
                        let instance_user = (account.instance_url.to_string(), key);
                        self.found().insert(instance_user, (Instant::now(), None));
                        Ok(None)
                    }
                    other => other,
                }
            }
        }
    }

    /// A `sys_user` lookup, from the cache while it is fresh.
    async fn user(
        &self,
        table: &impl IncidentTable,
        account: &ServiceNowAccount,
        key: &UserKey,
        budget: &Budget,
    ) -> Result<Option<String>, ServiceNowError> {
        let instance_user = (account.instance_url.to_string(), key.clone());
        let cached = self.found().get(&instance_user).and_then(|(at, found)| {
            let ttl = if found.is_some() {
                USER_FOUND_TTL
            } else {
                USER_NOT_FOUND_TTL
            };
            (at.elapsed() < ttl).then(|| found.clone())
        });
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = budget.servicenow(table.find_user(account, key)).await?;
        self.found()
            .insert(instance_user, (Instant::now(), found.clone()));
        Ok(found)
    }

    fn found(&self) -> MutexGuard<'_, HashMap<InstanceUser, (Instant, Option<String>)>> {
        self.found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
