//! The one error type of every service, and its mapping to gRPC status — the
//! only one. A service names its own cases as constants of this type (for
//! example `GROUP_NOT_FOUND`) in its `error.rs`; handlers return it, and tonic
//! sees a [`tonic::Status`] only at the edge.

use std::borrow::Cow;

use sea_orm::DbErr;
use tonic::Status;

use crate::bad_request;
use selfhelp_core::validation::Violations;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `INVALID_ARGUMENT`, naming every field.
    #[error("invalid request")]
    Invalid(Violations),
    #[error("{0}")]
    Unauthenticated(Cow<'static, str>),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Changed by someone else meanwhile (`ABORTED`): read again and retry.
    #[error("{0}")]
    Conflict(&'static str),
    /// A cap on what one caller or one server may hold at once.
    #[error("{0}")]
    Exhausted(String),
    /// Something this call needs cannot be reached; retrying may work.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl From<Violations> for ServiceError {
    fn from(v: Violations) -> Self {
        ServiceError::Invalid(v)
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        match err {
            ServiceError::Invalid(v) => bad_request::status(&v),
            ServiceError::Unauthenticated(why) => Status::unauthenticated(why),
            ServiceError::PermissionDenied(why) => Status::permission_denied(why),
            ServiceError::NotFound(what) => Status::not_found(what),
            ServiceError::AlreadyExists(why) => Status::already_exists(why),
            ServiceError::FailedPrecondition(why) => Status::failed_precondition(why),
            ServiceError::Conflict(why) => Status::aborted(why),
            ServiceError::Exhausted(why) => Status::resource_exhausted(why),
            ServiceError::Unavailable(why) => Status::unavailable(why),
            ServiceError::Db(e) => db_status(&e),
        }
    }
}

/// Storage failures: a database that cannot be reached is UNAVAILABLE (clients
/// may retry); anything else is INTERNAL and logged, without leaking details
/// to the client.
fn db_status(e: &DbErr) -> Status {
    if crate::db::is_transient(e) {
        tracing::warn!(error = %e, "database unavailable");
        Status::unavailable("database unavailable; retry shortly")
    } else {
        tracing::error!(error = %e, "database error");
        Status::internal("internal error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_case_has_its_code_and_says_no_more_than_it_should() {
        let mut v = Violations::new();
        v.add("name", "must not be empty");
        let cases = [
            (ServiceError::from(v), Code::InvalidArgument),
            (
                ServiceError::Unauthenticated("no token".into()),
                Code::Unauthenticated,
            ),
            (
                ServiceError::PermissionDenied("not yours"),
                Code::PermissionDenied,
            ),
            (ServiceError::NotFound("group not found"), Code::NotFound),
            (
                ServiceError::AlreadyExists("taken".into()),
                Code::AlreadyExists,
            ),
            (
                ServiceError::FailedPrecondition("archived".into()),
                Code::FailedPrecondition,
            ),
            (ServiceError::Conflict("changed meanwhile"), Code::Aborted),
            (
                ServiceError::Exhausted("three at most".into()),
                Code::ResourceExhausted,
            ),
            (
                ServiceError::Unavailable("listings away"),
                Code::Unavailable,
            ),
            (
                ServiceError::Db(DbErr::Conn(sea_orm::RuntimeErr::Internal("down".into()))),
                Code::Unavailable,
            ),
            (
                ServiceError::Db(DbErr::Custom("secret table t".into())),
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(!status.message().contains("secret"), "{status:?}");
        }
    }
}
