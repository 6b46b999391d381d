//! The notifications service's errors: the platform's one error type, mapped
//! to gRPC status there.

pub use selfhelp_platform::error::ServiceError;
