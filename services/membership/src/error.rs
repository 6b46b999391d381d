//! The membership service's errors: the platform's one error type (mapped to
//! gRPC status there), and the cases only membership has, named.

pub use selfhelp_platform::error::ServiceError as MembershipError;

pub const GROUP_NOT_FOUND: MembershipError = MembershipError::NotFound("group not found");
pub const MEMBERSHIP_NOT_FOUND: MembershipError = MembershipError::NotFound("membership not found");
pub const NOT_A_MEMBER: MembershipError =
    MembershipError::NotFound("you have no membership in this group");
pub const ROTA_NOT_FOUND: MembershipError =
    MembershipError::NotFound("this group has no rota for that duty");
pub const NO_ERASURE_REQUEST: MembershipError =
    MembershipError::NotFound("you have not asked for erasure");
pub const LISTINGS_UNAVAILABLE: MembershipError =
    MembershipError::Unavailable("listings cannot be reached to check the group; retry shortly");
