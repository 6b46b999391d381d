//! Forms that change something: each carries a token against cross-site
//! requests (CSRF). A signed-in person's forms carry their session's token;
//! anonymous forms (signing in) a random one also held in a cookie of their
//! own, so a page on another site cannot post them (double submit).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use tonic_types::StatusExt;

use super::pages::error_page;
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::{Signed, cookie};

/// The person a page is for: anyone not signed in is sent to sign in, and
/// brought back to the page after.
pub(crate) struct SignedPage(pub Signed);

impl<S: Send + Sync> FromRequestParts<S> for SignedPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        match parts.extensions.get::<Signed>() {
            Some(signed) => Ok(SignedPage(signed.clone())),
            None => {
                let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                Err(to_sign_in(here))
            }
        }
    }
}

/// Sends someone to sign in, and back to `here` after.
pub(crate) fn to_sign_in(here: &str) -> Response {
    Redirect::to(&format!("/sign-in?next={}", super::format::encode(here))).into_response()
}

/// The signed-in person behind a form that changes something, with its token
/// checked; otherwise what to answer instead (signing in, and coming back to
/// `back_to`, the page the form was on).
pub(crate) fn signed_form(
    state: &AppState,
    headers: &HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    csrf: &str,
    back_to: &str,
) -> Result<Signed, Box<Response>> {
    let Some(axum::Extension(signed)) = signed else {
        return Err(Box::new(to_sign_in(back_to)));
    };
    if !token_ok(headers, csrf, Some(&signed)) {
        return Err(Box::new(error_page(
            state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        )));
    }
    Ok(signed)
}

/// A field the person must correct, named as the form names it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Every field a service named in an `INVALID_ARGUMENT` answer, renamed with
/// `form_name` to the form's own names (`None`: the form has no such field,
/// so the message stands for the whole form under `form`).
pub(crate) fn violations<N: Into<String>>(
    status: &tonic::Status,
    form_name: impl Fn(&str) -> Option<N>,
) -> Vec<FieldError> {
    let named: Vec<FieldError> = status
        .get_details_bad_request()
        .map(|br| br.field_violations)
        .unwrap_or_default()
        .into_iter()
        .map(|v| FieldError {
            field: form_name(&v.field).map_or_else(|| "form".to_string(), Into::into),
            message: v.description,
        })
        .collect();
    if named.is_empty() {
        return vec![FieldError::new("form", status.message().to_string())];
    }
    // One message per form field: several of the service's fields may be one
    // of the form's (each topic, each language), and a field's error has an id.
    let mut seen = std::collections::HashSet::new();
    named
        .into_iter()
        .filter(|e| seen.insert(e.field.clone()))
        .collect()
}

/// Whether a service's refusal is the person's to correct on the form (a
/// field named, or something about the object's present state).
pub(crate) fn correctable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
    )
}

const SECURE_COOKIE: &str = "__Host-csrf";
const PLAIN_COOKIE: &str = "csrf";

/// The token an anonymous form carries, and the cookie to set when the
/// browser has none yet.
pub(crate) fn anonymous_token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    let name = if secure { SECURE_COOKIE } else { PLAIN_COOKIE };
    if let Some(token) = cookie(headers, name) {
        return (token, None);
    }
    let token = crate::store::random_secret(24);
    let flags = if secure { "; Secure" } else { "" };
    let set = HeaderValue::from_str(&format!(
        "{name}={token}; Path=/; HttpOnly; SameSite=Strict{flags}"
    ))
    .expect("a cookie of ASCII");
    (token, Some(set))
}

/// `response` with the anonymous form's cookie set, when there is one to set.
pub(crate) fn with_cookie(mut response: Response, set: Option<HeaderValue>) -> Response {
    if let Some(set) = set {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, set);
    }
    response
}

/// Whether a posted form's `token` is the one it should carry.
pub(crate) fn token_ok(headers: &HeaderMap, token: &str, signed: Option<&Signed>) -> bool {
    let expected = match signed {
        Some(s) => Some(s.csrf_token.clone()),
        None => cookie(headers, SECURE_COOKIE).or_else(|| cookie(headers, PLAIN_COOKIE)),
    };
    expected.is_some_and(|e| !token.is_empty() && same(e.as_bytes(), token.as_bytes()))
}

/// Compares in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn an_anonymous_form_needs_its_cookie_and_a_signed_in_one_its_session() {
        let mut headers = HeaderMap::new();
        let (token, set) = anonymous_token(&headers, false);
        assert!(set.is_some());
        assert!(!token_ok(&headers, &token, None), "no cookie sent back");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("csrf={token}")).unwrap(),
        );
        assert!(token_ok(&headers, &token, None));
        assert!(!token_ok(&headers, "forged", None));
        assert!(!token_ok(&headers, "", None));
        let (again, set) = anonymous_token(&headers, false);
        assert_eq!((again.as_str(), set), (token.as_str(), None), "kept");
    }
}
