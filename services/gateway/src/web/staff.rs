//! Staff of the region: signing in through its identity provider; the staff
//! page with the listings waiting for review; and a listing's review page
//! (a new listing's whole card, or a listed group's held edit as a difference
//! against the public card) to approve or reject with a note, and to suspend
//! or reinstate with a reason. Only operators of this region see these
//! pages, and listings checks the operator role again on every call.

use axum::Form;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::format::{checked_words, format_label, language_name, long_date, venue_line};
use super::forms::{self, FieldError};
use super::organise::{ChangeView, change_views, plain_value, status_words};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::{base_url, client_address, over_https};
use crate::sessions::Signed;
use crate::staff::{Staff, StaffRefused};
use crate::web::invite_mail::{self, EmailInvitation};

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
    csrf: String,
    errors: Vec<FieldError>,
    waiting: Vec<Waiting>,
    reports: Vec<ReportLine>,
    /// How many reports wait, all pages.
    reports_total: i64,
    stale: Vec<Stale>,
    /// How many listings are not checked lately, all pages.
    stale_total: i64,
}

/// A report or suggestion from the public, waiting.
#[derive(Serialize)]
struct ReportLine {
    id: String,
    /// The listing reported (empty for a suggestion).
    group_id: String,
    /// The listing's name, or the suggested group's.
    name: String,
    suggestion: bool,
    message: String,
    reply_to: String,
    received: String,
}

/// A published listing whose check lapsed.
#[derive(Serialize)]
struct Stale {
    id: String,
    name: String,
    /// "12 March 2025", or "never".
    checked: String,
    out_of_search: bool,
}

#[derive(Serialize)]
struct Waiting {
    /// A held edit of a listed group, rather than a new listing.
    edit: bool,
    id: String,
    name: String,
    summary: String,
}

/// The staff page: operators of this region only.
pub(crate) async fn staff_page(
    State(state): State<AppState>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    let signed = match operator(&state, signed, "/staff") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    staff_answer(&state, &signed, StatusCode::OK, Vec::new()).await
}

async fn staff_answer(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    errors: Vec<FieldError>,
) -> Response {
    match staff_view(state, signed, errors).await {
        Ok(view) => own_page(state, status, "staff.html", "Staff", &view),
        Err(e) => error_page(state, &e),
    }
}

async fn staff_view(
    state: &AppState,
    signed: &Signed,
    errors: Vec<FieldError>,
) -> Result<StaffPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let first = || {
        Some(PageRequest {
            page_size: 50,
            page_token: String::new(),
        })
    };
    let request = call.ask(lpb::ListReviewQueueRequest { page: first() });
    let queue = call.listings.list_review_queue(request).await?.into_inner();
    let request = call.ask(lpb::ListStaffReportsRequest { page: first() });
    let reports = call
        .listings
        .list_staff_reports(request)
        .await?
        .into_inner();
    let request = call.ask(lpb::ListStaleGroupsRequest { page: first() });
    let stale = call.listings.list_stale_groups(request).await?.into_inner();
    Ok(StaffPage {
        csrf: signed.csrf_token.clone(),
        errors,
        waiting: queue
            .groups
            .into_iter()
            .map(|g| Waiting {
                edit: g.pending_edit.is_some(),
                id: g.id,
                name: g.name,
                summary: g.summary,
            })
            .collect(),
        reports_total: reports.page.map_or(0, |p| p.total_size),
        reports: reports
            .reports
            .into_iter()
            .map(|r| ReportLine {
                received: r
                    .received_at
                    .as_ref()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                    .map(|t| t.with_timezone(&state.tz).format("%-d %b %Y").to_string())
                    .unwrap_or_default(),
                id: r.id,
                group_id: r.group_id,
                name: r.group_name,
                suggestion: r.suggestion,
                message: r.message,
                reply_to: r.reply_to,
            })
            .collect(),
        stale_total: stale.page.map_or(0, |p| p.total_size),
        stale: stale
            .groups
            .into_iter()
            .map(|g| Stale {
                out_of_search: stale.out_of_search_ids.contains(&g.id),
                checked: if g.assured_date.is_empty() {
                    "never".into()
                } else {
                    long_date(&g.assured_date)
                },
                id: g.id,
                name: g.name,
            })
            .collect(),
    })
}

#[derive(Deserialize)]
pub(crate) struct CloseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Closes a report with what was done.
pub(crate) async fn close_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<CloseForm>,
) -> Response {
    let signed = match staff_form(&state, &headers, signed, &form.csrf, "/staff") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    // Each report's note field has its own id on the page.
    let note_field = format!("note-{id}");
    if form.note.trim().is_empty() {
        let errors = vec![FieldError::new(&note_field, "Say what you did about it")];
        return staff_answer(&state, &signed, StatusCode::BAD_REQUEST, errors).await;
    }
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(lpb::CloseStaffReportRequest {
            report_id: id.clone(),
            note: form.note.trim().to_string(),
        });
        Ok::<_, GatewayError>(call.listings.close_staff_report(request).await)
    }
    .await;
    match done {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to("/staff").into_response(),
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| (field == "note").then_some("note"))
                .into_iter()
                .map(|mut e| {
                    if e.field == "note" {
                        e.field = note_field.clone();
                    }
                    e
                })
                .collect();
            staff_answer(&state, &signed, StatusCode::BAD_REQUEST, errors).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

/// The operator behind a staff form: signed in as staff of this region, and
/// the form's token theirs; otherwise the answer to give instead.
pub(crate) fn staff_form(
    state: &AppState,
    headers: &HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    csrf: &str,
    here: &str,
) -> Result<Signed, Box<Response>> {
    let signed = operator(state, signed, here)?;
    if !forms::token_ok(headers, csrf, Some(&signed)) {
        return Err(Box::new(error_page(
            state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        )));
    }
    Ok(signed)
}

/// The signed-in operator of this region, or the page to answer instead.
pub(crate) fn operator(
    state: &AppState,
    signed: Option<axum::Extension<Signed>>,
    here: &str,
) -> Result<Signed, Box<Response>> {
    let Some(axum::Extension(signed)) = signed else {
        return Err(Box::new(
            Redirect::to(&format!(
                "/staff/sign-in?next={}",
                super::format::encode(here)
            ))
            .into_response(),
        ));
    };
    if !signed.is_staff() {
        return Err(Box::new(error_page(
            state,
            &GatewayError::Forbidden("Only the region's staff see this page.".into()),
        )));
    }
    Ok(signed)
}

/// staff_group.html
#[derive(Serialize)]
struct ReviewPage {
    csrf: String,
    errors: Vec<FieldError>,
    id: String,
    name: String,
    status: &'static str,
    /// What is waiting: a new listing, a held edit, or nothing.
    waiting: &'static str,
    changes: Vec<ChangeView>,
    card: Vec<CardLine>,
    can_suspend: bool,
    can_reinstate: bool,
    /// "Last checked on …" for a listed group, empty otherwise.
    checked: String,
    /// A listed group nobody organises (it came in by import): staff may
    /// invite someone to organise it.
    unorganised: bool,
    /// An invitation to organise it was just sent.
    invited: bool,
    review_note: String,
    /// Every change and decision, newest first.
    history: Vec<HistoryLine>,
}

#[derive(Serialize)]
struct HistoryLine {
    when: String,
    what: String,
    from: String,
    to: String,
    who: &'static str,
}

/// Whom a change is by, in words. The history keeps person ids; what they
/// were then is not kept, so someone who is not an organiser now reads as
/// "staff or a former organiser".
fn by_whom(changed_by: &str, organisers: &[String]) -> &'static str {
    if changed_by == "membership" {
        "the group's roles"
    } else if changed_by.is_empty() {
        "someone since erased"
    } else if organisers.iter().any(|o| o == changed_by) {
        "an organiser"
    } else {
        "staff or a former organiser"
    }
}

#[derive(Serialize)]
struct CardLine {
    label: &'static str,
    value: String,
}

/// The card as the public would read it, line by line.
fn card_lines(g: &lpb::Group, topics: &[lpb::Topic]) -> Vec<CardLine> {
    let contact = g.contact.clone().unwrap_or_default();
    let who = g.eligibility.clone().unwrap_or_default();
    let cost = g.cost.clone().unwrap_or_default();
    let lines = [
        ("Name", g.name.clone()),
        ("Summary", g.summary.clone()),
        ("Description", g.description.clone()),
        (
            "Topics",
            g.topics
                .iter()
                .map(|code| {
                    topics
                        .iter()
                        .find(|t| t.code == *code)
                        .map_or(code.as_str(), |t| t.name.as_str())
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("How it meets", format_label(g.format).to_string()),
        (
            "Where",
            g.venues
                .iter()
                .map(venue_line)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (
            "Access",
            g.venues
                .iter()
                .flat_map(|v| [v.accessibility.clone(), v.travel_notes.clone()])
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ("Who it is for", who.description),
        ("Area served", g.area_served.clone()),
        (
            "Contact",
            [contact.name, contact.email, contact.phone, contact.website]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "Cost",
            match (cost.kind(), cost.description.is_empty()) {
                (_, false) => cost.description.clone(),
                (lpb::CostKind::Free, true) => "Free".into(),
                (lpb::CostKind::Donation, true) => "A donation".into(),
                (lpb::CostKind::Fee, true) => "A fee".into(),
                _ => String::new(),
            },
        ),
        (
            "Joining",
            match g.join_policy() {
                lpb::JoinPolicy::Open => "Anyone may join",
                lpb::JoinPolicy::Approval => "An organiser says yes to each person",
                lpb::JoinPolicy::InviteOnly => "By invitation only",
                lpb::JoinPolicy::Unspecified => "",
            }
            .to_string(),
        ),
        (
            "Languages",
            g.languages
                .iter()
                .map(|l| language_name(l))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    lines
        .into_iter()
        .chain([("Joining details, for members", g.joining_details.clone())])
        .filter(|(_, value)| !value.is_empty())
        .map(|(label, value)| CardLine { label, value })
        .collect()
}

async fn review_view(
    state: &AppState,
    signed: &Signed,
    id: &str,
    errors: Vec<FieldError>,
) -> Result<ReviewPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(lpb::GetGroupRequest {
        group_id: id.to_string(),
    });
    let g = call.listings.get_group(request).await?.into_inner();
    let request = call.ask(lpb::GetGroupHistoryRequest {
        group_id: id.to_string(),
        page: Some(PageRequest {
            page_size: 50,
            page_token: String::new(),
        }),
    });
    let changes = call
        .listings
        .get_group_history(request)
        .await?
        .into_inner()
        .changes;
    let status = g.status();
    let new_listing = matches!(
        status,
        lpb::GroupStatus::PendingReview | lpb::GroupStatus::ProposalPendingReview
    );
    let waiting = if g.pending_edit.is_some() {
        "edit"
    } else if new_listing {
        "listing"
    } else {
        ""
    };
    Ok(ReviewPage {
        csrf: signed.csrf_token.clone(),
        errors,
        id: g.id.clone(),
        name: g.name.clone(),
        status: status_words(status),
        waiting,
        changes: change_views(g.pending_edit.as_ref()),
        card: card_lines(&g, &state.listings.topics().await?),
        can_suspend: status == lpb::GroupStatus::Published,
        can_reinstate: status == lpb::GroupStatus::Suspended,
        checked: checked_words(&g),
        unorganised: status == lpb::GroupStatus::Published && g.organiser_ids.is_empty(),
        invited: false,
        review_note: g.review_note.clone(),
        history: changes
            .iter()
            .map(|c| HistoryLine {
                when: c
                    .changed_at
                    .as_ref()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                    .map(|t| {
                        t.with_timezone(&state.tz)
                            .format("%-d %b %Y, %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default(),
                what: c.field.replace('_', " "),
                from: plain_value(&c.old_value),
                to: plain_value(&c.new_value),
                who: by_whom(&c.changed_by, &g.organiser_ids),
            })
            .collect(),
    })
}

async fn review_answer(
    state: &AppState,
    signed: &Signed,
    id: &str,
    status: StatusCode,
    errors: Vec<FieldError>,
) -> Response {
    match review_view(state, signed, id, errors).await {
        Ok(view) => {
            let title = format!("Review: {}", view.name);
            own_page(state, status, "staff_group.html", &title, &view)
        }
        Err(e) => error_page(state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct ReviewQuery {
    #[serde(default)]
    invited: Option<String>,
}

/// A listing's review page.
pub(crate) async fn review_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ReviewQuery>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    let signed = match operator(&state, signed, &format!("/staff/groups/{id}")) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if query.invited.is_some() {
        return match review_view(&state, &signed, &id, Vec::new()).await {
            Ok(mut view) => {
                view.invited = true;
                let title = format!("Review: {}", view.name);
                own_page(&state, StatusCode::OK, "staff_group.html", &title, &view)
            }
            Err(e) => error_page(&state, &e),
        };
    }
    review_answer(&state, &signed, &id, StatusCode::OK, Vec::new()).await
}

#[derive(Deserialize)]
pub(crate) struct OrganiserInvitationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// How long an invitation to organise a group works.
const ORGANISER_INVITATION_DAYS: i32 = 14;

/// Sends someone a single-use code to organise a listed group nobody
/// organises; membership checks again that the caller is an operator here
/// and that the group has no organiser.
pub(crate) async fn invite_organiser(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<OrganiserInvitationForm>,
) -> Response {
    let here = format!("/staff/groups/{id}");
    let signed = match staff_form(&state, &headers, signed, &form.csrf, &here) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let Some(to) = crate::signin::normalise(form.email.trim()) else {
        let errors = vec![FieldError::new(
            "email",
            "Enter an email address like name@example.org",
        )];
        return review_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, errors).await;
    };
    let client = client_address(&headers, peer.ip(), state.config.http.trusted_proxies);
    if let Err(retry_after_secs) = state.invitations_limiter.check(client) {
        return error_page(&state, &GatewayError::TooManyRequests { retry_after_secs });
    }
    let sent = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(lpb::GetGroupRequest {
            group_id: id.clone(),
        });
        let group = call.listings.get_group(request).await?.into_inner();
        let request = call.ask(mpb::CreateInvitationRequest {
            group_id: id.clone(),
            organiser: true,
            max_uses: 1,
            valid_hours: ORGANISER_INVITATION_DAYS * 24,
            ..Default::default()
        });
        let invitation = match call.membership.create_invitation(request).await {
            Ok(made) => made.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        let base = base_url(&state, &headers);
        let letter = EmailInvitation {
            to: &to,
            base: &base,
            group_id: &id,
            group_name: &group.name,
            code: &invitation.code,
            organiser: true,
            valid_days: ORGANISER_INVITATION_DAYS,
        };
        invite_mail::send(&state, letter).await?;
        Ok::<_, GatewayError>(Ok(()))
    }
    .await;
    match sent {
        Err(own) => error_page(&state, &own),
        Ok(Ok(())) => Redirect::to(&format!("{here}?invited=1")).into_response(),
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |_| None::<&str>);
            review_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, errors).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    /// "approve" or "reject" (review).
    #[serde(default)]
    decision: String,
    /// To the organisers with a review.
    #[serde(default)]
    note: String,
    /// Why a listing is suspended (the organisers see it).
    #[serde(default)]
    reason: String,
}

/// An operator's decision on a listing: "review" (approve or reject, with a
/// note the organisers see), "suspend" (with a reason), "reinstate", or
/// "confirm" (the details are still right).
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let here = format!("/staff/groups/{id}");
    let signed = match staff_form(&state, &headers, signed, &form.csrf, &here) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if what == "review" && !matches!(form.decision.as_str(), "approve" | "reject") {
        let errors = vec![FieldError::new(
            "decision",
            "Choose whether to approve it or send it back",
        )];
        return review_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, errors).await;
    }
    let note = form.note.trim().to_string();
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        let answer = match what.as_str() {
            "review" => {
                let decision = match form.decision.as_str() {
                    "approve" => lpb::ReviewDecision::Approve,
                    "reject" => lpb::ReviewDecision::Reject,
                    _ => lpb::ReviewDecision::Unspecified,
                };
                let request = call.ask(lpb::ReviewGroupRequest {
                    group_id: id.clone(),
                    decision: decision as i32,
                    note,
                });
                call.listings.review_group(request).await.map(|_| ())
            }
            "suspend" => {
                let request = call.ask(lpb::SuspendGroupRequest {
                    group_id: id.clone(),
                    reason: form.reason.trim().to_string(),
                });
                call.listings.suspend_group(request).await.map(|_| ())
            }
            "reinstate" => {
                let request = call.ask(lpb::ReinstateGroupRequest {
                    group_id: id.clone(),
                });
                call.listings.reinstate_group(request).await.map(|_| ())
            }
            "confirm" => {
                let request = call.ask(lpb::ConfirmGroupDetailsRequest {
                    group_id: id.clone(),
                    ..Default::default()
                });
                call.listings
                    .confirm_group_details(request)
                    .await
                    .map(|_| ())
            }
            _ => return Err(GatewayError::NotFound),
        };
        Ok::<_, GatewayError>(answer)
    }
    .await;
    match done {
        Err(own) => error_page(&state, &own),
        Ok(Ok(())) => Redirect::to(&here).into_response(),
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "decision" => Some("decision"),
                "note" => Some("note"),
                "reason" => Some("reason"),
                _ => None,
            });
            review_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, errors).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}
