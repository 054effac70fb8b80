//! The outside world, each behind a small trait or type: ServiceNow's Table API, iLert's REST
//! API, AWS Secrets Manager, the SQS queue of queued delivery, and the events Lambda delivers.

pub mod api_gateway;
pub mod aws;
pub mod http;
pub mod ilert;
pub mod lambda;
pub mod queue;
pub mod secrets;
pub mod servicenow;
