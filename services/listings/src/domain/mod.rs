//! Listings rules, free of I/O.

pub mod calendar;
pub mod group;
pub mod topic;

/// Recurring meetings, shared with membership (its rota follows the meetings).
pub use selfhelp_schedule as schedule;
