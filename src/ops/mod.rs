//! For the people who run the function: the `secret`, `check` and `send` commands. They sit
//! above the composition root (`startup`) and the flow they exercise; what each invocation
//! tells the logs and metrics is the flow's own (`flow::telemetry`).

pub mod check;
mod event_check;
pub mod secret;
pub mod send;
