//! Notifications tables and queries.

pub mod alert;
pub mod audience;
pub mod delivery;
pub mod digest;
pub mod erased;
mod migrations;
pub mod notification;
pub mod preference;
pub mod webhook;

pub use migrations::Migrator;
