//! Listings rules, free of I/O.

pub mod calendar;
pub mod group;
pub mod postcode;
pub mod schedule;
pub mod topic;
