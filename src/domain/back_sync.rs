//! The way back, ServiceNow → iLert: what the service desk's work on an incident asks of the
//! original alert, and the one action that brings the alert there. Pure: the scheduled pass
//! and the business rule's push both decide here.
//!
//! | incident state | the alert |
//! |---|---|
//! | In Progress (2) | accepted, if it is still PENDING |
//! | Resolved (6), Closed (7), Canceled (8) | resolved, if it is not yet RESOLVED |
//! | New (1), On Hold (3), custom states | left alone |
//!
//! A merged duplicate (its key moved aside) and an incident the function did not open never
//! ask anything: not even one whose `correlation_id` reads `ilert:<id>`, if the integration
//! user did not create it (`sys_created_by`), so that a desk user who types another alert's
//! key into an incident cannot accept or resolve someone else's alert. Nothing needs remembering: the function only ever writes a state its alert
//! already has, so an incident whose state is ahead of its alert was moved by someone else,
//! and once the alert has caught up the incident asks nothing more, whoever wrote last.

use crate::domain::alert::{AlertId, AlertStatus};
use crate::domain::incident::{CorrelationId, Incident, IncidentState, NoteMemory, PREFIX};

/// What an incident asks of its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub alert: AlertId,
    /// How far the alert should be: ACCEPTED or RESOLVED.
    pub status: AlertStatus,
}

/// The one call that brings the alert where the desk's state wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackAction {
    Accept,
    Resolve,
    /// The alert is already there or further along: its lifecycle only moves forward.
    LeaveAlone,
}

/// What a back-sync did to one alert, for the answer, the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackSynced {
    Accepted,
    Resolved,
    Unchanged,
}

impl BackSynced {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Resolved => "resolved",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Whether the integration user `opened_by` created the incident (`sys_created_by`); with no
/// user to hold it to, any incident with the key is taken as the function's.
pub fn opened_by_function(incident: &Incident, opened_by: Option<&str>) -> bool {
    opened_by.is_none_or(|user| incident.created_by.eq_ignore_ascii_case(user))
}

/// Where the incident's state asks its alert to be, or why it asks nothing. `opened_by`: the
/// integration user, who must have created the incident; `None` when the connection cannot
/// name it (OAuth's client-credentials grant), and then the key alone decides.
pub fn wanted_in_ilert(
    incident: &Incident,
    opened_by: Option<&str>,
) -> Result<Wanted, &'static str> {
    let Some(alert) = CorrelationId::alert_of(&incident.correlation_id) else {
        return Err(if incident.correlation_id.starts_with(PREFIX) {
            "a merged duplicate or a connection check: it never triggers anything"
        } else {
            "not an incident of this function (its correlation_id is not ilert:<alert id>)"
        });
    };
    if NoteMemory::read(&incident.correlation_display).set_by_instance(&incident.state) {
        return Err(
            "the instance set this state itself inside the function's own write (an assignment \
             rule or a flow), not a person: the alert is left as it is",
        );
    }
    if !opened_by_function(incident, opened_by) {
        return Err(
            "not opened by the integration user (sys_created_by): whatever its correlation_id \
             says, only the function's own incidents speak for an alert",
        );
    }
    let status = match incident.state {
        IncidentState::InProgress => AlertStatus::Accepted,
        IncidentState::Resolved | IncidentState::Closed | IncidentState::Canceled => {
            AlertStatus::Resolved
        }
        IncidentState::New | IncidentState::OnHold | IncidentState::Other(_) => {
            return Err("New, On Hold and custom states ask nothing of the alert");
        }
    };
    Ok(Wanted { alert, status })
}

/// The call that brings an alert at `in_ilert` to `wanted`: accept only a PENDING alert,
/// resolve only one not yet RESOLVED.
pub fn back_action(wanted: AlertStatus, in_ilert: AlertStatus) -> BackAction {
    match (wanted, in_ilert) {
        (_, current) if current >= wanted => BackAction::LeaveAlone,
        (AlertStatus::Accepted, _) => BackAction::Accept,
        (AlertStatus::Resolved, _) => BackAction::Resolve,
        (AlertStatus::Pending, _) => BackAction::LeaveAlone,
    }
}

impl BackAction {
    /// Where the action takes the alert (PENDING, nowhere, for leaving it alone).
    pub fn target(self) -> AlertStatus {
        match self {
            Self::Accept => AlertStatus::Accepted,
            Self::Resolve => AlertStatus::Resolved,
            Self::LeaveAlone => AlertStatus::Pending,
        }
    }

    pub fn synced(self) -> BackSynced {
        match self {
            Self::Accept => BackSynced::Accepted,
            Self::Resolve => BackSynced::Resolved,
            Self::LeaveAlone => BackSynced::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::incident_in;
    use AlertStatus::{Accepted, Pending, Resolved};

    const INTEGRATION_USER: &str = "ilert.integration";

    fn incident(state: &str, key: &str) -> Incident {
        Incident {
            correlation_id: key.into(),
            created_by: INTEGRATION_USER.into(),
            ..incident_in(state)
        }
    }

    fn wanted(state: &str) -> Option<AlertStatus> {
        wanted_in_ilert(&incident(state, "ilert:42"), Some(INTEGRATION_USER))
            .ok()
            .map(|w| w.status)
    }

    #[test]
    fn each_state_maps_to_its_alert_status() {
        assert_eq!(wanted("1"), None, "New");
        assert_eq!(wanted("2"), Some(Accepted), "In Progress");
        assert_eq!(wanted("3"), None, "On Hold");
        assert_eq!(wanted("6"), Some(Resolved), "Resolved");
        assert_eq!(wanted("7"), Some(Resolved), "Closed");
        assert_eq!(wanted("8"), Some(Resolved), "Canceled");
        assert_eq!(wanted("101"), None, "a custom state");
        let found = wanted_in_ilert(&incident("6", "ilert:42"), Some(INTEGRATION_USER)).unwrap();
        assert_eq!(found.alert.as_str(), "42");
    }

    #[test]
    fn an_incident_someone_else_created_never_speaks_for_an_alert() {
        let typed_in = Incident {
            created_by: "jane.desk".into(),
            ..incident("6", "ilert:42")
        };
        assert!(wanted_in_ilert(&typed_in, Some(INTEGRATION_USER)).is_err());
        let unreadable = Incident {
            created_by: String::new(),
            ..incident("6", "ilert:42")
        };
        assert!(wanted_in_ilert(&unreadable, Some(INTEGRATION_USER)).is_err());
        let other_case = Incident {
            created_by: "iLert.Integration".into(),
            ..incident("6", "ilert:42")
        };
        assert!(wanted_in_ilert(&other_case, Some(INTEGRATION_USER)).is_ok());
        assert!(
            wanted_in_ilert(&typed_in, None).is_ok(),
            "no user to hold it to"
        );
    }

    #[test]
    fn merged_duplicates_and_other_incidents_never_trigger_anything() {
        for key in [
            "ilert:42:duplicate-of-INC0010001",
            "ilert:check-1700000000",
            "nagios:42",
            "",
        ] {
            let canceled = incident("8", key);
            assert!(
                wanted_in_ilert(&canceled, Some(INTEGRATION_USER)).is_err(),
                "{key}"
            );
        }
    }

    #[test]
    fn only_a_real_transition_is_sent() {
        use BackAction::{Accept, LeaveAlone, Resolve};
        let table = [
            (Accepted, Pending, Accept),
            (Accepted, Accepted, LeaveAlone),
            (Accepted, Resolved, LeaveAlone),
            (Resolved, Pending, Resolve),
            (Resolved, Accepted, Resolve),
            (Resolved, Resolved, LeaveAlone),
            (Pending, Pending, LeaveAlone),
        ];
        for (wanted, in_ilert, action) in table {
            assert_eq!(
                back_action(wanted, in_ilert),
                action,
                "{wanted:?} {in_ilert:?}"
            );
            if action != LeaveAlone {
                assert!(action.target() > in_ilert, "only forward");
                assert_eq!(action.target(), wanted);
            }
        }
        assert_eq!(Accept.synced().as_str(), "accepted");
        assert_eq!(Resolve.synced().as_str(), "resolved");
        assert_eq!(LeaveAlone.synced().as_str(), "unchanged");
    }
}
