//! Listings tables and queries.

pub mod exception;
pub mod group;
mod migrations;
pub mod topic;

pub use migrations::Migrator;
