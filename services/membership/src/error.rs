//! The membership service's errors: the platform's one error type (mapped to
//! gRPC status there), and the cases only membership has, named.

pub use selfhelp_platform::error::ServiceError;

pub const GROUP_NOT_FOUND: ServiceError = ServiceError::NotFound("group not found");
pub const MEMBERSHIP_NOT_FOUND: ServiceError = ServiceError::NotFound("membership not found");
pub const NOT_A_MEMBER: ServiceError =
    ServiceError::NotFound("you have no membership in this group");
pub const ROTA_NOT_FOUND: ServiceError =
    ServiceError::NotFound("this group has no rota for that duty");
pub const SWAP_NOT_FOUND: ServiceError =
    ServiceError::NotFound("no swap of yours is waiting with that id");
pub const NO_ERASURE_REQUEST: ServiceError =
    ServiceError::NotFound("you have not asked for erasure");
pub const LISTINGS_UNAVAILABLE: ServiceError =
    ServiceError::Unavailable("listings cannot be reached to check the group; retry shortly");

/// A swap ask answered (or withdrawn) by the other person meanwhile.
pub fn swap_answered() -> ServiceError {
    ServiceError::FailedPrecondition("that swap was answered already".into())
}
