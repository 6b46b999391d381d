//! Notifications tables and queries.

pub mod audience;
pub mod erased;
mod migrations;
pub mod notification;

pub use migrations::Migrator;
