//! The listings service's errors: the platform's one error type (mapped to
//! gRPC status there), and the cases only listings has, named.

pub use selfhelp_platform::error::ServiceError as ListingsError;

pub const GROUP_NOT_FOUND: ListingsError = ListingsError::NotFound("group not found");
pub const TOPIC_NOT_FOUND: ListingsError = ListingsError::NotFound("topic not found");
pub const GROUP_CHANGED: ListingsError =
    ListingsError::Conflict("the group was changed concurrently; read it again and retry");
