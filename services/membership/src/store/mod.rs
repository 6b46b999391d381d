//! Membership tables and queries.

pub mod consent;
pub mod follow;
pub mod group_settings;
pub mod invitation;
pub mod membership;
mod migrations;

pub use migrations::Migrator;
