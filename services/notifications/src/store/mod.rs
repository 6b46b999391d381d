//! Notifications tables and queries.

mod migrations;
pub mod notification;

pub use migrations::Migrator;
