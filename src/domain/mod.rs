//! What the function knows, with no I/O: the iLert event, the ServiceNow incident, the alert
//! action's settings, the pure decision from the three to a plan of writes, and what the service
//! desk's work asks of the alert on the way back.

pub mod alert;
pub mod alert_scan;
pub mod back_sync;
pub mod decision;
pub mod event_record;
pub mod incident;
pub mod people;
pub mod render;
pub mod settings;
pub mod template;

#[cfg(test)]
mod fixtures;
