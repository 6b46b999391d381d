//! What is a signed-in person's own: their groups (each group's next meetings,
//! the joining details only members see, their rota turns), their
//! notifications, and their data (one download of everything every service
//! holds about them, and erasure).

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::TimeZone;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::notifications::v1 as npb;
use serde::{Deserialize, Serialize};

use super::format::{long_date, time_range};
use super::forms::{self, FieldError, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::over_https;
use crate::services::AsPerson;
use crate::sessions::Signed;

/// How many of a person's groups, follows and notifications a page lists.
const LISTED: i32 = 100;
/// Rota meetings ahead shown on "My groups".
const ROTA_MEETINGS: i32 = 6;

fn first_page() -> Option<PageRequest> {
    Some(PageRequest {
        page_size: LISTED,
        page_token: String::new(),
    })
}

/// `t` as the region's local time, e.g. "Wednesday 9 December 2026, 7:00pm".
pub(super) fn local(state: &AppState, t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|utc| {
            state
                .tz
                .from_utc_datetime(&utc.naive_utc())
                .format("%A %-d %B %Y, %-I:%M%P")
                .to_string()
        })
        .unwrap_or_default()
}

#[derive(Serialize)]
struct MyGroupsPage {
    csrf: String,
    groups: Vec<MyGroup>,
    follows: Vec<Followed>,
    errors: Vec<FieldError>,
}

#[derive(Serialize)]
struct MyGroup {
    id: String,
    name: String,
    status: String,
    role: String,
    duties: String,
    joining_details: String,
    next_meetings: Vec<String>,
    turns: Vec<MyTurn>,
    swap_asks: Vec<MySwapAsk>,
}

/// A swap the person asked, or is asked, waiting for an answer.
#[derive(Serialize)]
struct MySwapAsk {
    id: String,
    /// What it is, in words.
    text: String,
    /// Asked of them: they agree or decline. Otherwise they asked it and may
    /// withdraw it.
    to_answer: bool,
}

/// A rota turn that is the person's, with what they may do about it.
#[derive(Serialize)]
struct MyTurn {
    duty: String,
    meeting_key: String,
    when: String,
    /// Other turns of the same rota they may swap with.
    swaps: Vec<SwapChoice>,
}

#[derive(Serialize)]
struct SwapChoice {
    meeting_key: String,
    label: String,
}

#[derive(Serialize)]
struct Followed {
    id: String,
    name: String,
}

fn status_words(m: &mpb::Membership) -> String {
    match m.state() {
        mpb::MembershipState::Active => "Member".into(),
        mpb::MembershipState::Requested => "You asked to join; the organisers will reply".into(),
        mpb::MembershipState::Waitlisted => {
            format!("Number {} on the waiting list", m.waitlist_position)
        }
        _ => "Invited".into(),
    }
}

fn is_open(state: mpb::MembershipState) -> bool {
    matches!(
        state,
        mpb::MembershipState::Active
            | mpb::MembershipState::Requested
            | mpb::MembershipState::Waitlisted
            | mpb::MembershipState::Invited
    )
}

/// The person's turns on the group's rotas, with the turns they could swap to,
/// and the swaps waiting for their answer or the other person's.
async fn my_turns(
    state: &AppState,
    call: &AsPerson,
    group_id: &str,
) -> Result<(Vec<MyTurn>, Vec<MySwapAsk>), GatewayError> {
    let request = call.ask(mpb::GetRotaRequest {
        group_id: group_id.to_string(),
        duty: String::new(),
        meetings: ROTA_MEETINGS,
    });
    let rotas = call
        .membership
        .clone()
        .get_rota(request)
        .await?
        .into_inner()
        .rotas;
    let mut turns = Vec::new();
    let mut asks = Vec::new();
    for rota in &rotas {
        for ask in &rota.swap_asks {
            let asker_turn = local(state, ask.starts_at.as_ref());
            let asked_turn = local(state, ask.other_starts_at.as_ref());
            let duty = &rota.duty;
            let text = if ask.asked_of_me {
                format!(
                    "{} asks to swap turns as {duty}: you would take theirs on {asker_turn}, and they would take yours on {asked_turn}.",
                    ask.asked_by
                )
            } else {
                format!(
                    "You asked {} to take your turn as {duty} on {asker_turn}, and to give you theirs on {asked_turn}. Waiting for their answer.",
                    ask.asked_of
                )
            };
            if ask.asked_of_me || ask.asked_by_me {
                asks.push(MySwapAsk {
                    id: ask.id.clone(),
                    text,
                    to_answer: ask.asked_of_me,
                });
            }
        }
        for turn in rota.turns.iter().filter(|t| t.mine) {
            let swaps = rota
                .turns
                .iter()
                .filter(|other| !other.mine)
                .map(|other| SwapChoice {
                    meeting_key: other.meeting_key.clone(),
                    label: format!(
                        "{} ({})",
                        local(state, other.starts_at.as_ref()),
                        if other.display_name.is_empty() {
                            "nobody yet"
                        } else {
                            other.display_name.as_str()
                        }
                    ),
                })
                .collect();
            turns.push(MyTurn {
                duty: rota.duty.clone(),
                meeting_key: turn.meeting_key.clone(),
                when: local(state, turn.starts_at.as_ref()),
                swaps,
            });
        }
    }
    Ok((turns, asks))
}

async fn my_groups_view(
    state: &AppState,
    signed: &Signed,
    errors: Vec<FieldError>,
) -> Result<MyGroupsPage, GatewayError> {
    let call = state.services.as_signed(signed).await?;
    let (memberships, follows) = tokio::try_join!(call.my_memberships(), call.my_follows())?;
    // Each group's meetings and turns asked for at once: the page waits for
    // the slowest, not for them all in turn.
    let call = &call;
    let groups = futures::future::try_join_all(
        memberships
            .into_iter()
            .filter(|m| is_open(m.state()))
            .map(|m| my_group(state, call, m)),
    )
    .await?;
    Ok(MyGroupsPage {
        csrf: signed.csrf_token.clone(),
        groups,
        follows: follows
            .into_iter()
            .map(|f| Followed {
                id: f.group_id,
                name: f.group_name,
            })
            .collect(),
        errors,
    })
}

/// One of the person's groups as "My groups" shows it.
async fn my_group(
    state: &AppState,
    call: &AsPerson,
    m: mpb::Membership,
) -> Result<MyGroup, GatewayError> {
    // The group's next meetings, as anyone may see them.
    let meetings = async {
        match state.listings.group(&m.group_id).await {
            Ok(g) => Ok(g
                .next_occurrences
                .iter()
                .take(3)
                .map(|o| {
                    let time = time_range(&o.local_start_time, &o.local_end_time)
                        .map(|t| format!(", {t}"))
                        .unwrap_or_default();
                    format!("{}{time}", long_date(&o.local_date))
                })
                .collect()),
            Err(GatewayError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let turns = async {
        if m.state() == mpb::MembershipState::Active {
            my_turns(state, call, &m.group_id).await
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    let (next_meetings, (turns, swap_asks)) = tokio::try_join!(meetings, turns)?;
    Ok(MyGroup {
        status: status_words(&m),
        role: match m.role() {
            mpb::GroupRole::Organiser => "Organiser",
            mpb::GroupRole::CoOrganiser => "Co-organiser",
            _ => "",
        }
        .to_string(),
        duties: m.duties.join(", "),
        joining_details: m.joining_details.clone(),
        id: m.group_id,
        name: m.group_name,
        next_meetings,
        turns,
        swap_asks,
    })
}

fn my_groups_page(state: &AppState, status: StatusCode, view: &MyGroupsPage) -> Response {
    own_page(state, status, "my_groups.html", "My groups", view)
}

pub(crate) async fn my_groups(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    match my_groups_view(&state, &signed, Vec::new()).await {
        Ok(view) => my_groups_page(&state, StatusCode::OK, &view),
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct TurnForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    duty: String,
    #[serde(default)]
    meeting_key: String,
    /// For a swap: the turn to take instead.
    #[serde(default)]
    other_meeting_key: String,
    /// For an answer: the swap asked, and "yes" to agree (anything else
    /// declines it, or withdraws one's own).
    #[serde(default)]
    swap_id: String,
    #[serde(default)]
    answer: String,
}

/// Skips the person's turn (the next volunteer takes it), asks to swap it
/// with another, or answers a swap asked; back to "My groups", or there with
/// what went wrong.
pub(crate) async fn change_turn(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((group_id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<TurnForm>,
) -> Response {
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/groups") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if what == "answer" && !["yes", "no"].contains(&form.answer.as_str()) {
        let errors = vec![FieldError::new("form", "Agree to the swap or decline it")];
        return turn_refused(&state, &signed, errors).await;
    }
    if what == "swap" && form.other_meeting_key.is_empty() {
        let errors = vec![FieldError::new(
            "other_meeting_key",
            "Choose the meeting you would take instead",
        )];
        return turn_refused(&state, &signed, errors).await;
    }
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        let answer = match what.as_str() {
            "skip" => {
                let request = call.ask(mpb::SkipMyTurnRequest {
                    group_id,
                    duty: form.duty.clone(),
                    meeting_key: form.meeting_key.clone(),
                });
                call.membership.skip_my_turn(request).await.map(|_| ())
            }
            "swap" => {
                let request = call.ask(mpb::SwapTurnsRequest {
                    group_id,
                    duty: form.duty.clone(),
                    meeting_key: form.meeting_key.clone(),
                    other_meeting_key: form.other_meeting_key.clone(),
                });
                call.membership.swap_turns(request).await.map(|_| ())
            }
            "answer" => {
                let request = call.ask(mpb::AnswerSwapRequest {
                    group_id,
                    swap_id: form.swap_id.clone(),
                    accept: form.answer == "yes",
                });
                call.membership.answer_swap(request).await.map(|_| ())
            }
            _ => return Err(GatewayError::NotFound),
        };
        Ok(answer)
    }
    .await;
    match done {
        Err(own) => error_page(&state, &own),
        Ok(Ok(())) => Redirect::to("/my/groups").into_response(),
        // Withdrawn, answered or replaced meanwhile (or a second click).
        Ok(Err(status)) if what == "answer" && status.code() == tonic::Code::NotFound => {
            let errors = vec![FieldError::new(
                "form",
                "That swap is no longer waiting: it was answered or withdrawn",
            )];
            turn_refused(&state, &signed, errors).await
        }
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "other_meeting_key" => Some("other_meeting_key"),
                _ => None,
            });
            turn_refused(&state, &signed, errors).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

async fn turn_refused(state: &AppState, signed: &Signed, errors: Vec<FieldError>) -> Response {
    match my_groups_view(state, signed, errors).await {
        Ok(view) => my_groups_page(state, StatusCode::BAD_REQUEST, &view),
        Err(e) => error_page(state, &e),
    }
}

#[derive(Serialize)]
struct NotificationsPage {
    csrf: String,
    unread: i64,
    notifications: Vec<NotificationView>,
}

#[derive(Serialize)]
pub(crate) struct NotificationView {
    pub id: String,
    pub title: String,
    pub body: String,
    /// The group's page, when it is about a group.
    pub group_id: String,
    pub when: String,
    pub unread: bool,
    /// An organiser's message to the members, which they may report to staff.
    pub reportable: bool,
}

impl NotificationView {
    pub fn of(state: &AppState, n: npb::Notification) -> Self {
        NotificationView {
            reportable: n.kind() == npb::NotificationKind::GroupAnnouncement,
            when: local(state, n.created_at.as_ref()),
            unread: n.read_at.is_none(),
            id: n.id,
            title: n.title,
            body: n.body,
            group_id: n.group_id,
        }
    }
}

pub(crate) async fn notifications(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    let listed = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::ListNotificationsRequest {
            page: first_page(),
            unread_only: false,
        });
        Ok::<_, GatewayError>(
            call.notifications
                .list_notifications(request)
                .await?
                .into_inner(),
        )
    }
    .await;
    let listed = match listed {
        Ok(l) => l,
        Err(e) => return error_page(&state, &e),
    };
    let view = NotificationsPage {
        csrf: signed.csrf_token.clone(),
        unread: listed.unread_count,
        notifications: listed
            .notifications
            .into_iter()
            .map(|n| NotificationView::of(&state, n))
            .collect(),
    };
    let title = if view.unread > 0 {
        format!("Notifications ({} unread)", view.unread)
    } else {
        "Notifications".to_string()
    };
    own_page(&state, StatusCode::OK, "notifications.html", &title, &view)
}

#[derive(Deserialize)]
pub(crate) struct MarkReadForm {
    #[serde(default)]
    csrf: String,
    /// One notification, or (empty) all of them.
    #[serde(default)]
    id: String,
}

pub(crate) async fn mark_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<MarkReadForm>,
) -> Response {
    let back = "/my/notifications";
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let marked = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::MarkReadRequest {
            notification_ids: if form.id.is_empty() {
                vec![]
            } else {
                vec![form.id.clone()]
            },
            all: form.id.is_empty(),
        });
        call.notifications.mark_read(request).await?;
        Ok::<_, GatewayError>(())
    }
    .await;
    match marked {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Serialize)]
struct DataPage {
    csrf: String,
    errors: Vec<FieldError>,
}

fn data_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    errors: Vec<FieldError>,
) -> Response {
    let view = DataPage {
        csrf: signed.csrf_token.clone(),
        errors,
    };
    own_page(state, status, "my_data.html", "My data", &view)
}

pub(crate) async fn my_data(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    data_page(&state, &signed, StatusCode::OK, Vec::new())
}

/// A service's JSON export as a value of the download (as text if it is not
/// JSON, so nothing is dropped).
fn exported(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// One download of everything every service holds about the person, and what
/// the gateway holds (their sign-in address, their sessions).
pub(crate) async fn download(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    let collected = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(mpb::ExportMyDataRequest {});
        let membership = call
            .membership
            .export_my_data(request)
            .await?
            .into_inner()
            .json;
        let request = call.ask(npb::ExportMyDataRequest {});
        let notifications = call
            .notifications
            .export_my_data(request)
            .await?
            .into_inner()
            .json;
        let request = call.ask(selfhelp_proto::listings::v1::ExportMyDataRequest {});
        let listings = call
            .listings
            .export_my_data(request)
            .await?
            .into_inner()
            .json;
        let web = crate::store::export_person(&state.db, &signed.person_id).await?;
        Ok::<_, GatewayError>(serde_json::json!({
            "person_id": signed.person_id,
            "web": web,
            "listings": exported(&listings),
            "membership": exported(&membership),
            "notifications": exported(&notifications),
        }))
    }
    .await;
    match collected {
        Ok(json) => (
            [
                (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"my-selfhelp-data.json\"",
                ),
            ],
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct EraseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Serialize)]
struct ErasedPage {
    complete: bool,
    confirmed: Vec<Confirmation>,
    waiting_for: Vec<String>,
}

#[derive(Serialize)]
struct Confirmation {
    service: String,
    when: String,
}

/// How long the erasure page waits for the services' confirmations before it
/// shows what it has (the rest still come; operators see late ones).
const CONFIRMATIONS_WAIT: Duration = Duration::from_secs(5);

/// Erases the person everywhere. Membership takes the request and asks every
/// service (this gateway included) to forget them; the gateway also forgets
/// its part at once and ends every session, so they are signed out whatever
/// the services do. The page shows each service's confirmation as it came.
pub(crate) async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<EraseForm>,
) -> Response {
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/data") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if form.confirm.is_empty() {
        let errors = vec![FieldError::new(
            "confirm",
            "Tick the box to say you understand that erasure cannot be undone",
        )];
        return data_page(&state, &signed, StatusCode::BAD_REQUEST, errors);
    }
    let erased = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(mpb::EraseMeRequest { confirm: true });
        let mut status = call.membership.erase_me(request).await?.into_inner();
        // At once, whatever eventing does: the person is signed out now.
        {
            use sea_orm::TransactionTrait;
            let txn = state.db.begin().await?;
            crate::store::forget_person(&txn, &signed.person_id).await?;
            txn.commit().await?;
        }
        let waited = tokio::time::Instant::now();
        while !status.complete && waited.elapsed() < CONFIRMATIONS_WAIT {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let request = call.ask(mpb::GetErasureStatusRequest {});
            status = call
                .membership
                .get_erasure_status(request)
                .await?
                .into_inner();
        }
        Ok::<_, GatewayError>(status)
    }
    .await;
    let status = match erased {
        Ok(s) => s,
        Err(e) => return error_page(&state, &e),
    };
    let view = ErasedPage {
        complete: status.complete,
        confirmed: status
            .confirmations
            .iter()
            .map(|c| Confirmation {
                service: service_name(&c.service),
                when: local(&state, c.confirmed_at.as_ref()),
            })
            .collect(),
        waiting_for: status.waiting_for.iter().map(|s| service_name(s)).collect(),
    };
    // Signed out: the session went with the rest; the layout shows no one.
    let cleared = state.sessions.clear_cookie(over_https(&state, &headers));
    let mut response = crate::sessions::without_session(|| {
        own_page(
            &state,
            StatusCode::OK,
            "erased.html",
            "Your data is erased",
            &view,
        )
    });
    response.headers_mut().append(header::SET_COOKIE, cleared);
    response
}

/// A service as people would name what it held.
fn service_name(service: &str) -> String {
    match service {
        "listings" => "The directory (groups you listed or organised)",
        "membership" => "Memberships (your groups, follows and rota turns)",
        "notifications" => "Notifications (your inbox, emails and alerts)",
        "gateway" => "The website (your sign-in address and sessions)",
        other => other,
    }
    .to_string()
}
