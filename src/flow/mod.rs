//! One call, top to bottom: the HTTP edge authenticates, limits, parses and answers; the
//! incident synchronisation looks the incident up, decides, writes and settles races, with the
//! users it needs from a small directory, all inside the invocation's time budget.

pub mod auth;
pub mod budget;
pub mod directory;
pub mod edge;
pub mod sync;
