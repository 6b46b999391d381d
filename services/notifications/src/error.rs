//! The one error type of the notifications service and its mapping to gRPC status.

use sea_orm::DbErr;
use selfhelp_platform::db;
use selfhelp_platform::validation::Violations;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error("invalid request")]
    Invalid(Violations),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl From<Violations> for NotificationsError {
    fn from(v: Violations) -> Self {
        NotificationsError::Invalid(v)
    }
}

impl From<NotificationsError> for Status {
    fn from(err: NotificationsError) -> Status {
        match err {
            NotificationsError::Invalid(v) => v.into_status(),
            NotificationsError::PermissionDenied(_) => Status::permission_denied(err.to_string()),
            NotificationsError::NotFound(_) => Status::not_found(err.to_string()),
            NotificationsError::FailedPrecondition(_) => {
                Status::failed_precondition(err.to_string())
            }
            NotificationsError::Db(e) => db::error_status(&e),
        }
    }
}
