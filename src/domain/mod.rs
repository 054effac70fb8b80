//! What the function knows, with no I/O: the iLert event, the ServiceNow incident, the alert
//! action's settings, and the pure decision from the three to a plan of writes.

pub mod alert;
pub mod decision;
pub mod incident;
pub mod render;
pub mod settings;
pub mod template;

#[cfg(test)]
mod fixtures;
