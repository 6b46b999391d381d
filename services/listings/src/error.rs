//! The listings service's errors: the platform's one error type (mapped to
//! gRPC status there), and the cases only listings has, named.

pub use selfhelp_platform::error::ServiceError;

pub const GROUP_NOT_FOUND: ServiceError = ServiceError::NotFound("group not found");
pub const TOPIC_NOT_FOUND: ServiceError = ServiceError::NotFound("topic not found");
pub const GROUP_CHANGED: ServiceError =
    ServiceError::Conflict("the group was changed concurrently; read it again and retry");
