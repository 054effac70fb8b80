//! For the people who run the function: the `check` and `send` commands, and what each
//! invocation tells the logs and metrics.

pub mod check;
pub mod send;
pub mod telemetry;
