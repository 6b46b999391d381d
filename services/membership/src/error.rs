//! The membership service's errors: the platform's one error type (mapped to
//! gRPC status there), and the cases only membership has, named.

pub use selfhelp_platform::error::ServiceError;

pub const GROUP_NOT_FOUND: ServiceError = ServiceError::NotFound("group not found");
pub const MEMBERSHIP_NOT_FOUND: ServiceError = ServiceError::NotFound("membership not found");
pub const NOT_A_MEMBER: ServiceError =
    ServiceError::NotFound("you have no membership in this group");
pub const ROTA_NOT_FOUND: ServiceError =
    ServiceError::NotFound("this group has no rota for that duty");
pub const NO_ERASURE_REQUEST: ServiceError =
    ServiceError::NotFound("you have not asked for erasure");
pub const LISTINGS_UNAVAILABLE: ServiceError =
    ServiceError::Unavailable("listings cannot be reached to check the group; retry shortly");
