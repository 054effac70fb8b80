//! Local stand-ins for ServiceNow, iLert's REST API, AWS Secrets Manager and the Lambda Runtime
//! API, served over real sockets on loopback, and moto's real SQS with what Lambda's event
//! source mapping does with it. ilert-servicenow's demo replays the bundled events against
//! them, its tests use them as fakes, and its benchmarks run the release binary under them.

mod clock;
mod ilert;
pub mod ilert_contract;
mod runtime_api;
mod secrets_manager;
mod server;
mod servicenow;
mod sqs;
mod sqs_send;
mod tls;
pub mod tools;

pub use ilert::{ILertFault, ILertRequest, ILertSimulator, ListOrder};
pub use runtime_api::{process_cpu_time, Invocation, RuntimeApiSimulator};
pub use secrets_manager::SecretsManagerSimulator;
pub use server::ServerStats;
pub use servicenow::{Fault, JournalEntry, ReceivedRequest, ServiceNowSimulator};
pub use sqs::{EventSource, FifoQueues, Moto};
pub use sqs_send::{SentMessage, SqsSendSimulator};
pub use tls::TestCa;
