//! Listings tables and queries.

pub mod exception;
pub mod group;
pub mod history;
mod migrations;
pub mod roles;
pub mod topic;

pub use migrations::Migrator;
