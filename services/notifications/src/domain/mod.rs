//! Notification rules, free of I/O.

pub mod messages;
