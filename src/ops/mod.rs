//! For the people who run the function: the `secret`, `check` and `send` commands, and what
//! each invocation tells the logs and metrics.

pub mod check;
mod event_check;
pub mod secret;
pub mod send;
pub mod telemetry;
