//! The outside world, each behind a small trait or type: ServiceNow's Table API, AWS Secrets
//! Manager, and the API Gateway events Lambda delivers.

pub mod api_gateway;
pub mod secrets;
pub mod servicenow;
