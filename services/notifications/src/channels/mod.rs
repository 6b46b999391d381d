//! Channels beyond the in-app inbox: email and webhooks.

pub mod email;
pub mod webhook;
