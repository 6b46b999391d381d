//! The one error type of the membership service and its mapping to gRPC status.

use sea_orm::DbErr;
use selfhelp_platform::db;
use selfhelp_platform::validation::Violations;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("invalid request")]
    Invalid(Violations),
    #[error("group not found")]
    GroupNotFound,
    #[error("membership not found")]
    MembershipNotFound,
    #[error("you have no membership in this group")]
    NotAMember,
    #[error("this group has no rota for that duty")]
    RotaNotFound,
    #[error("you have not asked for erasure")]
    NoErasureRequest,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("listings cannot be reached to check the group; retry shortly")]
    ListingsUnavailable,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl From<Violations> for MembershipError {
    fn from(v: Violations) -> Self {
        MembershipError::Invalid(v)
    }
}

impl From<MembershipError> for Status {
    fn from(err: MembershipError) -> Status {
        match err {
            MembershipError::Invalid(v) => v.into_status(),
            MembershipError::GroupNotFound
            | MembershipError::MembershipNotFound
            | MembershipError::NotAMember
            | MembershipError::RotaNotFound
            | MembershipError::NoErasureRequest => Status::not_found(err.to_string()),
            MembershipError::Unauthenticated(_) => Status::unauthenticated(err.to_string()),
            MembershipError::PermissionDenied(_) => Status::permission_denied(err.to_string()),
            MembershipError::FailedPrecondition(_) => Status::failed_precondition(err.to_string()),
            MembershipError::ListingsUnavailable => Status::unavailable(err.to_string()),
            MembershipError::Db(e) => db::error_status(&e),
        }
    }
}
