//! Listings tables and queries.

pub mod group;
mod migrations;

pub use migrations::Migrator;
