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
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// Listings did not answer (down, starting, or over its deadline).
    #[error("the directory is not available just now")]
    Unavailable,
    /// Anything else listings said; logged, not shown.
    #[error("listings answered {0}")]
    Upstream(tonic::Status),
    /// A page's template did not render: the gateway's own fault, logged, not
    /// shown.
    #[error("a template did not render: {0}")]
    Template(String),
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
            GatewayError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person or program is told (never an internal detail).
    pub fn public_message(&self) -> String {
        match self {
            GatewayError::Upstream(_) | GatewayError::Template(_) => {
                "something went wrong on our side".into()
            }
            other => other.to_string(),
        }
    }
}

/// A listings answer: bad input keeps the field listings named (the gateway
/// passes query parameters through under the same names).
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
