//! What the public tells the region's staff: "report a problem with this
//! listing" from a group's page, and "tell us about a group" the directory
//! does not list. Both go to listings' queue for staff, through the gateway's
//! relay token, past the same hidden field and per-address cap as writing to
//! organisers. A reply address goes only with the sender's leave.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::listings::v1 as lpb;
use serde::{Deserialize, Serialize};

use super::contact::{Screened, SentQuery, message_errors, screen};
use super::forms::{self, FieldError, with_cookie};
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::over_https;

/// The role of the gateway's own token for passing reports on, and whom it
/// is made as.
pub(crate) const ROLE_REPORT_RELAY: &str = "report-relay";
const RELAY_AS: &str = "web-report-relay";

/// report.html: a problem with a listing (`group_id` set) or a suggestion.
#[derive(Serialize, Default)]
struct ReportPage {
    csrf: String,
    group_id: String,
    group_name: String,
    errors: Vec<FieldError>,
    sent: bool,
    /// A suggested group's name, as typed.
    name: String,
    message: String,
    reply_to: String,
    may_reply: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct ReportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reply_to: String,
    #[serde(default)]
    may_reply: Option<String>,
    /// Hidden from people (and from assistive technology); bots fill it in.
    #[serde(default)]
    website: String,
}

/// The form's page; for a listing, only one the public may see.
async fn report_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    group_id: Option<&str>,
    mut view: ReportPage,
) -> Response {
    let title = match group_id {
        Some(id) => {
            let group = match state.listings.group(id).await {
                Ok(g) if is_public(&g) => g,
                Ok(_) => return error_page(state, &GatewayError::NotFound),
                Err(e) => return error_page(state, &e),
            };
            view.group_id = group.id.clone();
            view.group_name = group.name.clone();
            format!("Report a problem with {}", group.name)
        }
        None => "Tell us about a group".to_string(),
    };
    let (csrf, set) = forms::anonymous_token(headers, over_https(state, headers));
    view.csrf = csrf;
    let layout = Layout::new(state, &title, "", None);
    with_cookie(html(state, status, "report.html", layout, &view), set)
}

fn is_public(g: &lpb::Group) -> bool {
    matches!(
        g.status(),
        lpb::GroupStatus::Published | lpb::GroupStatus::ProposalListed
    )
}

pub(crate) async fn problem_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SentQuery>,
) -> Response {
    let view = ReportPage {
        sent: query.sent.is_some(),
        ..ReportPage::default()
    };
    report_page(&state, &headers, StatusCode::OK, Some(&id), view).await
}

pub(crate) async fn suggestion_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SentQuery>,
) -> Response {
    let view = ReportPage {
        sent: query.sent.is_some(),
        ..ReportPage::default()
    };
    report_page(&state, &headers, StatusCode::OK, None, view).await
}

pub(crate) async fn send_problem(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReportForm>,
) -> Response {
    send(&state, peer, &headers, Some(&id), form).await
}

pub(crate) async fn send_suggestion(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ReportForm>,
) -> Response {
    send(&state, peer, &headers, None, form).await
}

async fn send(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    group_id: Option<&str>,
    form: ReportForm,
) -> Response {
    if !forms::token_ok(headers, &form.csrf, None) {
        return error_page(
            state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        );
    }
    let here = match group_id {
        Some(id) => format!("/groups/{id}/report"),
        None => "/tell-us".to_string(),
    };
    let sent = Redirect::to(&format!("{here}?sent=1")).into_response();
    match screen(state, headers, peer, &form.website, &state.reports_limiter) {
        Screened::Person => {}
        Screened::Bot => return sent,
        Screened::Refused(page) => return page,
    }
    let may_reply = form.may_reply.is_some();
    let mut errors = message_errors(&form.message, may_reply, &form.reply_to);
    if group_id.is_none() && form.name.trim().is_empty() {
        errors.insert(0, FieldError::new("name", "Give the group's name"));
    }
    let refused = |errors: Vec<FieldError>, form: ReportForm| ReportPage {
        errors,
        name: form.name,
        message: form.message,
        reply_to: form.reply_to,
        may_reply,
        ..ReportPage::default()
    };
    if !errors.is_empty() {
        let view = refused(errors, form);
        return report_page(state, headers, StatusCode::BAD_REQUEST, group_id, view).await;
    }
    let passed_on = async {
        let call = state
            .services
            .as_person(RELAY_AS, &[ROLE_REPORT_RELAY.to_string()])
            .await?;
        let request = call.ask(lpb::ReportToStaffRequest {
            group_id: group_id.unwrap_or_default().to_string(),
            suggested_name: if group_id.is_none() {
                form.name.trim().to_string()
            } else {
                String::new()
            },
            message: form.message.trim().to_string(),
            reply_to: if may_reply {
                form.reply_to.trim().to_string()
            } else {
                String::new()
            },
        });
        let mut listings = call.listings.clone();
        Ok::<_, GatewayError>(listings.report_to_staff(request).await)
    }
    .await;
    match passed_on {
        Err(own) => error_page(state, &own),
        Ok(Ok(_)) => sent,
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "suggested_name" => Some("name"),
                "message" => Some("message"),
                "reply_to" => Some("reply_to"),
                _ => None,
            });
            let view = refused(errors, form);
            report_page(state, headers, StatusCode::BAD_REQUEST, group_id, view).await
        }
        Ok(Err(status)) => error_page(state, &GatewayError::from(status)),
    }
}
