//! The gateway's one error type, answered as JSON on the API and as a page on
//! the website (see `web::error_page`); both come from `GatewayError::status`.

use axum::http::StatusCode;
use tonic::Code;
use tonic_types::StatusExt;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A query parameter the caller got wrong, by name.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("not found")]
    NotFound,
    /// Something that was usable once and is no more (a spent sign-in link),
    /// with what to do now.
    #[error("{0}")]
    Gone(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// Listings did not answer (down, starting, or over its deadline).
    #[error("the directory is not available just now")]
    Unavailable,
    /// A service refused the signed-in person (not theirs to see or change).
    #[error("{0}")]
    Forbidden(String),
    /// A service would not do it in the object's present state (a full group,
    /// a request already decided), in words the person can act on.
    #[error("{0}")]
    Conflict(String),
    /// Anything else a service said; logged, not shown.
    #[error("a service answered {0}")]
    Upstream(tonic::Status),
    /// The gateway's own fault (a template that did not render, a token it
    /// could not sign, its database): logged, not shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        GatewayError::BadRequest {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::Gone(_) => StatusCode::GONE,
            GatewayError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person or program is told (never an internal detail).
    pub fn public_message(&self) -> String {
        match self {
            GatewayError::Upstream(_) | GatewayError::Internal(_) => {
                "something went wrong on our side".into()
            }
            other => other.to_string(),
        }
    }
}

/// A service's answer: bad input keeps the field the service named (the
/// gateway passes query parameters and form fields through under the same
/// names).
impl From<tonic::Status> for GatewayError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            Code::InvalidArgument => {
                let (field, message) = status
                    .get_details_bad_request()
                    .and_then(|br| br.field_violations.into_iter().next())
                    .map(|v| (v.field, v.description))
                    .unwrap_or_else(|| (String::new(), status.message().to_string()));
                GatewayError::BadRequest { field, message }
            }
            Code::NotFound => GatewayError::NotFound,
            Code::PermissionDenied | Code::Unauthenticated => {
                GatewayError::Forbidden(status.message().to_string())
            }
            Code::FailedPrecondition | Code::AlreadyExists => {
                GatewayError::Conflict(status.message().to_string())
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                GatewayError::Unavailable
            }
            Code::ResourceExhausted => GatewayError::TooManyRequests {
                retry_after_secs: 1,
            },
            _ => GatewayError::Upstream(status),
        }
    }
}

impl From<sea_orm::DbErr> for GatewayError {
    fn from(e: sea_orm::DbErr) -> Self {
        GatewayError::Internal(format!("the gateway's database: {e}"))
    }
}
