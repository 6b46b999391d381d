//! The one error type of the listings service and its mapping to gRPC status.

use sea_orm::DbErr;
use selfhelp_platform::db;
use selfhelp_platform::validation::Violations;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ListingsError {
    #[error("invalid request")]
    Invalid(Violations),
    #[error("this call needs a bearer token")]
    Unauthenticated,
    #[error("group not found")]
    NotFound,
    #[error("topic not found")]
    TopicNotFound,
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("the group was changed concurrently; read it again and retry")]
    Conflict,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl From<Violations> for ListingsError {
    fn from(v: Violations) -> Self {
        ListingsError::Invalid(v)
    }
}

impl From<ListingsError> for Status {
    fn from(err: ListingsError) -> Status {
        match err {
            ListingsError::Invalid(v) => v.into_status(),
            ListingsError::Unauthenticated => Status::unauthenticated(err.to_string()),
            ListingsError::NotFound | ListingsError::TopicNotFound => {
                Status::not_found(err.to_string())
            }
            ListingsError::AlreadyExists(_) => Status::already_exists(err.to_string()),
            ListingsError::PermissionDenied(_) => Status::permission_denied(err.to_string()),
            ListingsError::FailedPrecondition(_) => Status::failed_precondition(err.to_string()),
            ListingsError::Conflict => Status::aborted(err.to_string()),
            ListingsError::Db(e) => db::error_status(&e),
        }
    }
}
