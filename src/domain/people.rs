//! Who an event is about, as ServiceNow knows them: the users looked up before deciding (so
//! that deciding needs no I/O), for the decision and for the texts rendered beside it.

/// Users looked up in ServiceNow before deciding, so that deciding needs no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// `caller_id` for a new incident (a sys_id or display value), when one is known.
    pub caller: Option<String>,
    /// With `assign_on_accept`: who accepted the alert, as ServiceNow knows them.
    pub assignee: Assignee,
    /// Whether the event names the iLert user the back-sync acts as: iLert's echo of the
    /// function's own accept or resolve, which followed the service desk's change.
    pub echo_of_back_sync: Echo,
}

/// Whether an event is iLert's echo of the back-sync's own accept or resolve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Echo {
    /// Not an echo: no back-sync, not an accept or resolve, or another actor.
    #[default]
    No,
    Yes,
    /// The back-sync is on, but iLert could not say who its key acts as (and never had):
    /// the event may be an echo. Its accept then never takes an In Progress incident from
    /// whoever the desk assigned it to.
    CannotTell,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Assignee {
    /// Not looked up: no accept, or `assign_on_accept` is off.
    #[default]
    NotWanted,
    Found(String),
    /// The responder's email matched no ServiceNow user.
    UnknownEmail(String),
    /// iLert did not say who accepted, or gave no email.
    NoEmail,
    /// ServiceNow refused the assignment (the user is not in the group, an ACL), saying this.
    Refused(String),
}
