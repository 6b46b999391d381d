//! Notification rules, free of I/O.

pub mod alerts;
pub mod digest;
pub mod messages;
pub mod preferences;
