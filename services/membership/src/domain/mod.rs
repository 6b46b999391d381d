//! Membership rules, free of I/O.

pub mod membership;
pub mod rota;
pub mod sharing;
