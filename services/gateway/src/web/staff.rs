//! Staff of the region: signing in through its identity provider, and the
//! staff page (for now, the listings waiting for review), which only an
//! operator of this region sees. The organisers' and staff pages proper
//! build on this (issue 33).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as lpb;
use serde::{Deserialize, Serialize};

use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::{base_url, over_https};
use crate::sessions::Signed;
use crate::staff::{Staff, StaffRefused};

#[derive(Deserialize)]
pub(crate) struct BeginQuery {
    #[serde(default)]
    next: String,
}

fn callback(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/staff/callback", base_url(state, headers))
}

fn staff_of(state: &AppState) -> Result<&Staff, GatewayError> {
    state.staff.as_ref().ok_or(GatewayError::NotFound)
}

/// Sends the person to the region's identity provider.
pub(crate) async fn begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BeginQuery>,
) -> Response {
    let next = if query.next.is_empty() {
        "/staff"
    } else {
        &query.next
    };
    let begun = match staff_of(&state) {
        Ok(staff) => staff.begin(&callback(&state, &headers), next).await,
        Err(e) => return error_page(&state, &e),
    };
    match begun {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => refused(&state, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Where the provider sends the person back: signed in (a new session, its
/// id fresh), with the operator role only when the provider's claim says so.
pub(crate) async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let staff = match staff_of(&state) {
        Ok(s) => s,
        Err(e) => return error_page(&state, &e),
    };
    if !query.error.is_empty() {
        let why = if query.error_description.is_empty() {
            query.error.clone()
        } else {
            query.error_description.clone()
        };
        return refused(&state, StaffRefused::Declined(why));
    }
    if query.code.is_empty() || query.state.is_empty() {
        return error_page(
            &state,
            &GatewayError::bad("code", "the identity provider sent no code"),
        );
    }
    let signed_in = match staff
        .finish(&callback(&state, &headers), &query.code, &query.state)
        .await
    {
        Ok(s) => s,
        Err(e) => return refused(&state, e),
    };
    let secure = over_https(&state, &headers);
    let cookie = match state
        .sessions
        .start(&headers, &signed_in.person_id, &signed_in.roles, secure)
        .await
    {
        Ok(c) => c,
        Err(e) => return error_page(&state, &e.into()),
    };
    tracing::info!(operator = !signed_in.roles.is_empty(), "staff signed in");
    let mut response = Redirect::to(&signed_in.next_path).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn refused(state: &AppState, why: StaffRefused) -> Response {
    let error = match why {
        StaffRefused::Unknown => GatewayError::Gone(
            "This sign-in has expired or was used already. Sign in again.".into(),
        ),
        StaffRefused::Declined(why) => GatewayError::Forbidden(format!(
            "The identity provider did not sign you in ({why})."
        )),
        StaffRefused::Failed(e) => {
            tracing::warn!(error = %e, "staff sign-in failed");
            GatewayError::Unavailable
        }
    };
    error_page(state, &error)
}

#[derive(Serialize)]
struct StaffPage {
    waiting: Vec<Waiting>,
}

#[derive(Serialize)]
struct Waiting {
    id: String,
    name: String,
    summary: String,
}

/// The staff page: operators of this region only.
pub(crate) async fn staff_page(
    State(state): State<AppState>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    let Some(axum::Extension(signed)) = signed else {
        return Redirect::to("/staff/sign-in?next=/staff").into_response();
    };
    if !signed.is_staff() {
        return error_page(
            &state,
            &GatewayError::Forbidden("Only the region's staff see this page.".into()),
        );
    }
    let listed = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(lpb::ListReviewQueueRequest {
            page: Some(PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
        });
        Ok::<_, GatewayError>(call.listings.list_review_queue(request).await?.into_inner())
    }
    .await;
    match listed {
        Ok(queue) => {
            let view = StaffPage {
                waiting: queue
                    .groups
                    .into_iter()
                    .map(|g| Waiting {
                        id: g.id,
                        name: g.name,
                        summary: g.summary,
                    })
                    .collect(),
            };
            own_page(&state, StatusCode::OK, "staff.html", "Staff", &view)
        }
        Err(e) => error_page(&state, &e),
    }
}
