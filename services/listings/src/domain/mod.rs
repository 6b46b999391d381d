//! Listings rules, free of I/O.

pub mod group;
pub mod postcode;
pub mod topic;
