//! Listings tables and queries.

pub mod exception;
pub mod group;
pub mod history;
mod migrations;
pub mod pending_edit;
pub mod report;
pub mod roles;
pub mod topic;

pub use migrations::Migrator;
