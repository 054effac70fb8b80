//! ilert-servicenow: an AWS Lambda function that turns iLert alert events into ServiceNow
//! incidents. See docs/guarantees.md for what it promises; `flow::edge` is where a call starts.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod flow;
pub mod ops;
pub mod startup;
