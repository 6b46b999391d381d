//! The one-click link of a review-due reminder: "these details are still
//! right", without signing in. The link's token is notifications' signature
//! for one organiser, one group and the confirmation the reminder was about.
//! Opening the page changes nothing (mail scanners follow links); its button
//! POSTs. The gateway has notifications check the token, then confirms the
//! listing as that organiser, only if nobody has confirmed it since: the link
//! works once.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::notifications::v1 as npb;
use serde::{Deserialize, Serialize};

use super::forms::{self, with_cookie};
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::over_https;

/// The role of the gateway's token for opening these links, and whom it is
/// made as.
pub(crate) const ROLE_LISTING_CHECK: &str = "listing-check";
const OPENER: &str = "web-listing-check";

/// still_right.html
#[derive(Serialize, Default)]
struct StillRightPage {
    csrf: String,
    id: String,
    name: String,
    token: String,
    /// Confirmed just now.
    done: bool,
    /// Why the link did nothing.
    refusal: String,
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub(crate) struct StillRightForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    id: &str,
    mut view: StillRightPage,
) -> Response {
    let group = match state.listings.group(id).await {
        Ok(g) => g,
        Err(e) => return error_page(state, &e),
    };
    let (csrf, set) = forms::anonymous_token(headers, over_https(state, headers));
    view.csrf = csrf;
    view.id = group.id.clone();
    view.name = group.name.clone();
    let title = format!("Are the details of {} still right?", group.name);
    let layout = Layout::new(state, &title, "", None);
    let mut response = with_cookie(html(state, status, "still_right.html", layout, &view), set);
    // The link's token is in the address and the page: it goes to no other
    // site, and no cache keeps it.
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let view = StillRightPage {
        token: query.token,
        ..StillRightPage::default()
    };
    answer(&state, &headers, StatusCode::OK, &id, view).await
}

pub(crate) async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<StillRightForm>,
) -> Response {
    if !forms::token_ok(&headers, &form.csrf, None) {
        return error_page(
            &state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        );
    }
    let confirmed = async {
        let opener = state
            .services
            .as_person(OPENER, &[ROLE_LISTING_CHECK.to_string()])
            .await?;
        let request = opener.ask(npb::OpenListingCheckRequest {
            token: form.token.clone(),
        });
        let mut notifications = opener.notifications.clone();
        let check = match notifications.open_listing_check(request).await {
            Ok(c) => c.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        if check.group_id != id {
            return Err(GatewayError::NotFound);
        }
        // As the organiser the link was sent to, for this one call.
        let mut organiser = state.services.as_person(&check.person_id, &[]).await?;
        let request = organiser.ask(lpb::ConfirmGroupDetailsRequest {
            group_id: id.clone(),
            checked_at: check.checked_at,
        });
        Ok::<_, GatewayError>(
            organiser
                .listings
                .confirm_group_details(request)
                .await
                .map(|_| ()),
        )
    }
    .await;
    let view = match confirmed {
        Err(own) => return error_page(&state, &own),
        Ok(Ok(())) => StillRightPage {
            done: true,
            ..StillRightPage::default()
        },
        Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => StillRightPage {
            refusal: status.message().to_string(),
            ..StillRightPage::default()
        },
        Ok(Err(status)) => return error_page(&state, &GatewayError::from(status)),
    };
    let status = if view.done {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    answer(&state, &headers, status, &id, view).await
}
