//! ilert-servicenow: an AWS Lambda function that turns iLert alert events into ServiceNow
//! incidents. See the README for what it promises; `webhook` is where the flow starts.

pub mod alert;
pub mod auth;
pub mod decision;
pub mod incident;
pub mod lambda;
pub mod operate;
pub mod retry;
pub mod secrets;
pub mod servicenow;
pub mod settings;
pub mod telemetry;
pub mod webhook;
