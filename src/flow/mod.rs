//! One call, top to bottom: the HTTP edge authenticates, limits, parses and answers; the
//! incident synchronisation looks the incident up, decides, writes and settles races, with the
//! users it needs from a small directory, all inside the invocation's time budget. In queued
//! delivery the edge puts events on the queue and the consumer brings them to the
//! synchronisation, one alert's events at a time. The way back (ServiceNow → iLert) has two
//! doors of its own: a scheduled pass and the business rule's push. Each invocation ends in one
//! summary log line and its metrics (`telemetry`).

pub mod auth;
pub mod back_sync;
pub mod budget;
pub mod consumer;
pub mod directory;
pub mod edge;
pub mod events;
pub mod failure;
pub mod intake;
pub mod outcome;
pub mod sync;
pub mod telemetry;
