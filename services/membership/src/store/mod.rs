//! Membership tables and queries.

pub mod announcement;
pub mod committee;
pub mod consent;
pub mod erasure;
pub mod follow;
pub mod forum;
pub mod group_settings;
pub mod invitation;
pub mod meetings;
pub mod membership;
mod migrations;
pub mod role_watch;
pub mod rota;
pub mod sharing;

pub use migrations::Migrator;
