//! Local stand-ins for ServiceNow, AWS Secrets Manager and the Lambda Runtime API, served over
//! real sockets on loopback. ilert-servicenow's demo replays the bundled events against them,
//! its tests use them as fakes, and its benchmark runs the release binary under them.

mod runtime_api;
mod secrets_manager;
mod server;
mod servicenow;

pub use runtime_api::RuntimeApiSimulator;
pub use secrets_manager::SecretsManagerSimulator;
pub use server::ServerStats;
pub use servicenow::{Fault, JournalEntry, ReceivedRequest, ServiceNowSimulator};
