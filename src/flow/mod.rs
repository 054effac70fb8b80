//! One call, top to bottom: the HTTP edge authenticates, limits, parses and answers; the
//! incident is brought in line with the event inside a time budget.

pub mod auth;
pub mod budget;
pub mod edge;
