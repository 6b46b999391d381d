//! Membership tables and queries.

pub mod membership;
mod migrations;

pub use migrations::Migrator;
