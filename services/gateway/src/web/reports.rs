//! What the public tells the region's staff: "report a problem with this
//! listing" from a group's page, "tell us about a group" the directory does
//! not list, and a member's report of a message the organisers sent. All go
//! to listings' queue for staff through the gateway's relay token, past a
//! per-address cap of their own (and the forms anyone sends, the same hidden
//! field as writing to organisers). A reply address goes only with the
//! sender's leave; a member's report says nothing of who they are.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::notifications::v1 as npb;
use serde::{Deserialize, Serialize};

use super::contact::{Screened, SentQuery, message_errors, screen};
use super::forms::{self, FieldError, SignedPage, with_cookie};
use super::pages::{Layout, error_page, html, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::over_https;
use crate::sessions::Signed;

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
    // Screened once it is complete: correcting a form costs nothing.
    match screen(state, headers, peer, &form.website, &state.reports_limiter) {
        Screened::Person => {}
        Screened::Bot => return sent,
        Screened::Refused(page) => return page,
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
            about_message: false,
        });
        let mut listings = call.listings.clone();
        Ok::<_, GatewayError>(listings.report_to_staff(request).await)
    }
    .await;
    match passed_on {
        Err(own) => error_page(state, &own),
        Ok(Ok(_)) => sent,
        Ok(Err(status)) if held_back(&status) => {
            // The region's queue is full: said on the form, what was typed kept.
            let view = refused(vec![FieldError::new("form", status.message())], form);
            report_page(
                state,
                headers,
                StatusCode::SERVICE_UNAVAILABLE,
                group_id,
                view,
            )
            .await
        }
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

/// Longest reason a member gives for reporting a message.
const MAX_REASON: usize = 1_000;
/// Longest report listings takes.
const MAX_REPORT: usize = 2_000;

/// report_message.html: a member reports an organisers' message to staff.
#[derive(Serialize)]
struct MessageReportPage {
    csrf: String,
    errors: Vec<FieldError>,
    id: String,
    title: String,
    body: String,
    reason: String,
    sent: bool,
}

/// The person's own notification `id` if it is a message from a group's
/// organisers to its members; NOT_FOUND otherwise.
async fn reportable_message(
    state: &AppState,
    signed: &Signed,
    id: &str,
) -> Result<npb::Notification, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(npb::GetNotificationRequest {
        notification_id: id.to_string(),
    });
    let n = call
        .notifications
        .get_notification(request)
        .await?
        .into_inner();
    if n.kind() != npb::NotificationKind::GroupAnnouncement || n.group_id.is_empty() {
        return Err(GatewayError::NotFound);
    }
    Ok(n)
}

async fn message_report_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    status: StatusCode,
    errors: Vec<FieldError>,
    reason: String,
    sent: bool,
) -> Response {
    match reportable_message(state, signed, id).await {
        Ok(n) => {
            let view = MessageReportPage {
                csrf: signed.csrf_token.clone(),
                errors,
                id: n.id,
                title: n.title,
                body: n.body,
                reason,
                sent,
            };
            own_page(
                state,
                status,
                "report_message.html",
                "Report a message",
                &view,
            )
        }
        Err(e) => error_page(state, &e),
    }
}

pub(crate) async fn message_report_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SentQuery>,
    SignedPage(signed): SignedPage,
) -> Response {
    let sent = query.sent.is_some();
    message_report_page(
        &state,
        &signed,
        &id,
        StatusCode::OK,
        Vec::new(),
        String::new(),
        sent,
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct MessageReportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Passes a member's report of an organisers' message to the region's staff,
/// with the message as they received it and without who they are.
pub(crate) async fn send_message_report(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<MessageReportForm>,
) -> Response {
    let here = format!("/my/notifications/{id}/report");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &here) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let reason = form.reason.trim();
    let error = if reason.is_empty() {
        Some("Say what is wrong with it")
    } else if reason.chars().count() > MAX_REASON {
        Some("Say it in at most 1,000 characters")
    } else {
        None
    };
    if let Some(error) = error {
        let errors = vec![FieldError::new("reason", error)];
        let status = StatusCode::BAD_REQUEST;
        return message_report_page(&state, &signed, &id, status, errors, form.reason, false).await;
    }
    if let Screened::Refused(page) = screen(&state, &headers, peer, "", &state.reports_limiter) {
        return page;
    }
    let passed_on = async {
        let n = reportable_message(&state, &signed, &id).await?;
        let report = format!(
            "A member reported a message the organisers sent to the group's members.\n\nWhy: {reason}\n\nThe message: {}\n{}",
            n.title, n.body
        );
        let call = state
            .services
            .as_person(RELAY_AS, &[ROLE_REPORT_RELAY.to_string()])
            .await?;
        let request = call.ask(lpb::ReportToStaffRequest {
            group_id: n.group_id,
            message: at_most(&report, MAX_REPORT),
            about_message: true,
            ..Default::default()
        });
        let mut listings = call.listings.clone();
        Ok::<_, GatewayError>(listings.report_to_staff(request).await)
    }
    .await;
    match passed_on {
        Err(e) => error_page(&state, &e),
        Ok(Ok(_)) => Redirect::to(&format!("{here}?sent=1")).into_response(),
        Ok(Err(status)) if held_back(&status) => {
            let errors = vec![FieldError::new("form", status.message())];
            let status = StatusCode::SERVICE_UNAVAILABLE;
            message_report_page(&state, &signed, &id, status, errors, form.reason, false).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

/// Listings holds no more reports until staff close some.
fn held_back(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::ResourceExhausted
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn at_most(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
