//! Organisers on the web (issue 33): the groups they run; proposing or listing
//! a group with the whole card (kept as a draft or sent for review); editing
//! it (what waits for the region's staff is said before and shown after); and
//! each group's desk, which also holds when it meets (`meetings`) and its
//! people (`people`). These pages are the group's organisers' only
//! (the region's operators act from the staff pages); listings and
//! membership check every call again by their own rules.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

mod meetings;
mod people;
mod rota;
mod sharing;

pub(crate) use meetings::{change_meeting, schedule};
pub(crate) use people::{announce, change_person, invite, memberships_in};
pub(crate) use rota::set_rota;
pub(crate) use sharing::{correct as correct_record, sharing_page};

use super::card_form::{self, COSTS, CardForm, FORMATS, MAX_VENUES, POLICIES, VenueForm};
use super::forms::{self, FieldError, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;

fn first_page(size: i32) -> Option<PageRequest> {
    Some(PageRequest {
        page_size: size,
        page_token: String::new(),
    })
}

/// What a status means to the group's organisers.
pub(crate) fn status_words(status: pb::GroupStatus) -> &'static str {
    match status {
        pb::GroupStatus::Draft => "Draft: only you see it",
        pb::GroupStatus::PendingReview => "Waiting for the region's staff to check it",
        pb::GroupStatus::Published => "Listed: people can find it",
        pb::GroupStatus::Suspended => "Taken off the directory by the region's staff",
        pb::GroupStatus::Archived => "Closed",
        pb::GroupStatus::Proposed => "Being started: only you see it",
        pb::GroupStatus::ProposalPendingReview => {
            "Being started, waiting for the region's staff to check it"
        }
        pb::GroupStatus::ProposalListed => "Being started, shown to people as coming soon",
        pb::GroupStatus::Unspecified => "",
    }
}

#[derive(Serialize)]
struct OrganisePage {
    groups: Vec<ManagedGroup>,
}

#[derive(Serialize)]
struct ManagedGroup {
    id: String,
    name: String,
    status: &'static str,
    waiting_edit: bool,
}

/// "Groups you run": every group the person organises that is not archived.
pub(crate) async fn organise_home(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    let listed = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(pb::ListManagedGroupsRequest {
            page: first_page(100),
        });
        Ok::<_, GatewayError>(
            call.listings
                .list_managed_groups(request)
                .await?
                .into_inner(),
        )
    }
    .await;
    match listed {
        Ok(answer) => {
            let view = OrganisePage {
                groups: answer
                    .groups
                    .into_iter()
                    .map(|g| ManagedGroup {
                        status: status_words(g.status()),
                        waiting_edit: g.pending_edit.is_some(),
                        id: g.id,
                        name: g.name,
                    })
                    .collect(),
            };
            own_page(
                &state,
                StatusCode::OK,
                "organise.html",
                "Groups you run",
                &view,
            )
        }
        Err(e) => error_page(&state, &e),
    }
}

/// group_form.html: the card to fill in, new or to edit.
#[derive(Serialize)]
struct CardPage {
    csrf: String,
    errors: Vec<FieldError>,
    /// Empty for a new group.
    group_id: String,
    /// Listed already: some changes wait for the region's staff.
    listed: bool,
    /// A change already waits for the staff (saving a significant one again
    /// replaces it).
    waiting_edit: bool,
    card: CardForm,
    /// The card's places, and one blank to add another (while there is room).
    places: Vec<Place>,
    topics: Vec<Choice>,
    formats: Vec<Choice>,
    policies: Vec<Choice>,
    costs: Vec<Choice>,
}

/// One place's fields on the card form.
#[derive(Serialize)]
struct Place {
    /// Numbers its fields: `venue-{index}-town`.
    index: usize,
    legend: String,
    venue: VenueForm,
}

/// The places of `card` for the form, with a blank one to add a place.
fn places(card: &CardForm) -> Vec<Place> {
    let held = card.venues.len();
    let mut places: Vec<Place> = card
        .venues
        .iter()
        .enumerate()
        .map(|(index, v)| Place {
            index,
            legend: format!("Place {}", index + 1),
            venue: v.clone(),
        })
        .collect();
    if held < MAX_VENUES {
        places.push(Place {
            index: held,
            legend: if held == 0 {
                "The place".into()
            } else {
                "Another place (optional)".into()
            },
            venue: VenueForm::default(),
        });
    }
    places
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    chosen: bool,
}

fn choices(all: &[(&str, &str)], chosen: &str) -> Vec<Choice> {
    all.iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
            chosen: *value == chosen,
        })
        .collect()
}

/// The card's page: a new group's (`group` none), or `group`'s to edit.
async fn card_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    group: Option<&pb::Group>,
    card: CardForm,
    errors: Vec<FieldError>,
) -> Response {
    let group_id = group.map_or("", |g| g.id.as_str());
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(state, &e),
    };
    let view = CardPage {
        csrf: signed.csrf_token.clone(),
        errors,
        group_id: group_id.to_string(),
        listed: group.is_some_and(|g| listed(g.status())),
        waiting_edit: group.is_some_and(|g| g.pending_edit.is_some()),
        topics: topics
            .iter()
            .map(|t| Choice {
                value: t.code.clone(),
                label: t.name.clone(),
                chosen: card.topics.contains(&t.code),
            })
            .collect(),
        formats: choices(&FORMATS, &card.format),
        policies: choices(&POLICIES, &card.join_policy),
        costs: choices(&COSTS, &card.cost_kind),
        places: places(&card),
        card,
    };
    let title = if group_id.is_empty() {
        "Propose or list a group"
    } else {
        "Edit the group's details"
    };
    own_page(state, status, "group_form.html", title, &view)
}

/// The empty card.
pub(crate) async fn new_group_form(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    let card = CardForm {
        format: "in_person".into(),
        join_policy: "open".into(),
        cost_kind: "free".into(),
        languages: "en".into(),
        ..CardForm::default()
    };
    card_page(&state, &signed, StatusCode::OK, None, card, Vec::new()).await
}

/// Whether a service's refusal is the person's to correct on the form.
fn correctable(status: &tonic::Status) -> bool {
    forms::correctable(status) || status.code() == tonic::Code::Aborted
}

/// The join question is membership's (asked of people who request to
/// join): saved beside the card when the group asks for approval.
async fn save_join_question(
    call: &mut AsPerson,
    group_id: &str,
    form: &CardForm,
) -> Result<Result<(), tonic::Status>, GatewayError> {
    let held = settings_of(call, group_id).await?;
    let wanted = form.join_question.trim();
    if held.join_question == wanted {
        return Ok(Ok(()));
    }
    let request = call.ask(mpb::UpdateGroupSettingsRequest {
        group_id: group_id.to_string(),
        member_list_visibility: held.member_list_visibility,
        join_question: wanted.to_string(),
    });
    Ok(call
        .membership
        .update_group_settings(request)
        .await
        .map(|_| ()))
}

/// A new group: created as a draft (or as a proposal), and sent for review
/// too when the person asked.
pub(crate) async fn create_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = CardForm::from_pairs(pairs);
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/organise/new") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let card = match form.card() {
        Ok(card) => card,
        Err(errors) => return new_card_refused(&state, &signed, form, errors).await,
    };
    let created = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(card.into_create(form.proposed));
        let group = match call.listings.create_group(request).await {
            Ok(g) => g.into_inner(),
            Err(status) => return Ok(Created::Refused(status)),
        };
        tracing::info!(group_id = %group.id, "a group was proposed on the web");
        if !form.join_question.trim().is_empty()
            && let Err(status) = save_join_question(&mut call, &group.id, &form).await?
        {
            return Ok(Created::QuestionRefused(Box::new(group), status));
        }
        if form.action == "submit" {
            let request = call.ask(pb::SubmitGroupRequest {
                group_id: group.id.clone(),
            });
            call.listings.submit_group(request).await?;
        }
        Ok::<_, GatewayError>(Created::Made(group.id))
    }
    .await;
    match created {
        Err(own) => error_page(&state, &own),
        Ok(Created::Made(id)) => Redirect::to(&format!("/organise/{id}")).into_response(),
        Ok(Created::Refused(status)) if correctable(&status) => {
            let errors = card_form::refused_fields(&status);
            new_card_refused(&state, &signed, form, errors).await
        }
        Ok(Created::Refused(status)) => error_page(&state, &GatewayError::from(status)),
        // The group is made: its question is put right on its edit form, so
        // sending again does not make a second group.
        Ok(Created::QuestionRefused(group, status)) => match refusal(status) {
            Ok(errors) => {
                let mut form = form;
                form.version = group.version.to_string();
                card_page(
                    &state,
                    &signed,
                    StatusCode::BAD_REQUEST,
                    Some(&group),
                    form,
                    errors,
                )
                .await
            }
            Err(e) => error_page(&state, &e),
        },
    }
}

/// How creating a group went, short of the gateway's own failures.
enum Created {
    Made(String),
    Refused(tonic::Status),
    /// Made, but membership refused its join question.
    QuestionRefused(Box<pb::Group>, tonic::Status),
}

/// The new card again, with what to correct.
async fn new_card_refused(
    state: &AppState,
    signed: &Signed,
    form: CardForm,
    errors: Vec<FieldError>,
) -> Response {
    card_page(state, signed, StatusCode::BAD_REQUEST, None, form, errors).await
}

/// The group as its organiser sees it (NOT_FOUND and PERMISSION_DENIED from
/// listings become the error page: nobody learns of a group not theirs).
async fn managed_group(call: &mut AsPerson, id: &str) -> Result<pb::Group, GatewayError> {
    let request = call.ask(pb::GetGroupRequest {
        group_id: id.to_string(),
    });
    let group = call.listings.get_group(request).await?.into_inner();
    // Listings answers the public card to anyone; only the group's managers
    // get its version-bearing managed view with its organisers in it.
    if group.organiser_ids.is_empty() || !group.organiser_ids.contains(&call.person_id) {
        return Err(GatewayError::Forbidden(
            "only the group's organisers manage it here".into(),
        ));
    }
    Ok(group)
}

/// The group's settings in membership (its join question).
async fn settings_of(
    call: &mut AsPerson,
    group_id: &str,
) -> Result<mpb::GroupSettings, GatewayError> {
    let request = call.ask(mpb::GetGroupSettingsRequest {
        group_id: group_id.to_string(),
    });
    Ok(call
        .membership
        .get_group_settings(request)
        .await?
        .into_inner())
}

/// The signed-in organiser behind a form on group `id`'s desk, and their
/// calls: the form's token checked and the group theirs; otherwise the
/// answer to give instead (signing in and back to the desk, or the error).
async fn organiser_form(
    state: &AppState,
    headers: &HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    csrf: &str,
    id: &str,
) -> Result<(Signed, AsPerson), Box<Response>> {
    let back = format!("/organise/{id}");
    let signed = forms::signed_form(state, headers, signed, csrf, &back)?;
    let checked = async {
        let mut call = state.services.as_signed(&signed).await?;
        managed_group(&mut call, id).await?;
        Ok::<_, GatewayError>(call)
    }
    .await;
    match checked {
        Ok(call) => Ok((signed, call)),
        Err(e) => Err(Box::new(error_page(state, &e))),
    }
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedPage(signed): SignedPage,
) -> Response {
    let loaded = async {
        let mut call = state.services.as_signed(&signed).await?;
        let group = managed_group(&mut call, &id).await?;
        let settings = settings_of(&mut call, &id).await?;
        Ok::<_, GatewayError>((group, settings))
    }
    .await;
    match loaded {
        Ok((group, settings)) => {
            let card = CardForm::from_group(&group, &settings.join_question);
            card_page(
                &state,
                &signed,
                StatusCode::OK,
                Some(&group),
                card,
                Vec::new(),
            )
            .await
        }
        Err(e) => error_page(&state, &e),
    }
}

/// Whether the public sees a group (so significant edits wait for review).
fn listed(status: pb::GroupStatus) -> bool {
    matches!(
        status,
        pb::GroupStatus::Published | pb::GroupStatus::ProposalListed
    )
}

/// An edit: saved (or held for review, as listings decides), then back to
/// the group's page, which says which.
pub(crate) async fn save_edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = CardForm::from_pairs(pairs);
    let back = format!("/organise/{id}/edit");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let version = form.version.trim().parse::<i64>().unwrap_or(0);
    let card = form.card();
    let saved = async {
        let mut call = state.services.as_signed(&signed).await?;
        let group = managed_group(&mut call, &id).await?;
        let mut card = match card {
            Ok(card) => card,
            Err(errors) => return Ok((group, Err(errors))),
        };
        card.keep_what_the_form_does_not_show(&group.venues);
        let request = call.ask(card.into_update(&id, version));
        if let Err(status) = call.listings.update_group(request).await {
            return Ok((group, Err(refusal(status)?)));
        }
        if let Err(status) = save_join_question(&mut call, &id, &form).await? {
            return Ok((group, Err(refusal(status)?)));
        }
        Ok::<_, GatewayError>((group, Ok(())))
    }
    .await;
    match saved {
        Err(own) => error_page(&state, &own),
        Ok((_, Ok(()))) => Redirect::to(&format!("/organise/{id}?saved=1")).into_response(),
        Ok((group, Err(errors))) => {
            card_page(
                &state,
                &signed,
                StatusCode::BAD_REQUEST,
                Some(&group),
                form,
                errors,
            )
            .await
        }
    }
}

/// A refusal the person can correct, as the form's errors; anything else
/// stays an error of its own.
fn refusal(status: tonic::Status) -> Result<Vec<FieldError>, GatewayError> {
    if status.code() == tonic::Code::Aborted {
        return Ok(vec![FieldError::new(
            "form",
            "Someone else changed this group while you were editing. Open it again to see their change, then make yours.",
        )]);
    }
    if correctable(&status) {
        Ok(card_form::refused_fields(&status))
    } else {
        Err(GatewayError::from(status))
    }
}

/// organise_group.html: one group's desk.
#[derive(Serialize)]
struct DeskPage {
    csrf: String,
    errors: Vec<FieldError>,
    saved: bool,
    id: String,
    name: String,
    status: &'static str,
    review_note: String,
    can_submit: bool,
    can_start: bool,
    public: bool,
    /// "Details last confirmed on …" for a listed group, empty otherwise.
    checked: String,
    /// How many follow it: for a proposal, how many are interested.
    followers: i64,
    proposal: bool,
    pending: Vec<ChangeView>,
    schedule_now: String,
    schedule: meetings::ScheduleForm,
    preview: Option<meetings::Preview>,
    meetings: Vec<meetings::MeetingView>,
    people: people::People,
    rotas: Vec<rota::RotaView>,
    /// An invitation code just made, shown this once.
    new_code: Option<String>,
    /// An invitation just sent by email, good for this many days.
    invited_by_email: Option<i32>,
    /// A message just sent to the members.
    sent: bool,
    /// The message as typed, when it comes back to correct.
    announcement_title: String,
    announcement_body: String,
}

#[derive(Serialize)]
pub(crate) struct ChangeView {
    pub field: String,
    pub now: String,
    pub wanted: String,
}

/// The changes of an edit waiting for review, in words.
pub(crate) fn change_views(edit: Option<&pb::PendingEdit>) -> Vec<ChangeView> {
    edit.map(|e| {
        e.changes
            .iter()
            .map(|c| ChangeView {
                field: c.field.replace('_', " "),
                now: plain_value(&c.old_value),
                wanted: plain_value(&c.new_value),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// A field's JSON value as a person reads it: text as itself, anything else
/// as compact JSON.
pub(crate) fn plain_value(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) => String::new(),
        Ok(other) => other.to_string(),
        Err(_) => json.to_string(),
    }
}

#[derive(Deserialize)]
pub(crate) struct DeskQuery {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    sent: Option<String>,
}

/// What the desk shows besides the group: the schedule form as typed (with
/// its errors or preview), or as stored.
#[derive(Default)]
struct Shown {
    schedule: Option<meetings::ScheduleForm>,
    preview: Option<meetings::Preview>,
    new_code: Option<String>,
    invited_by_email: Option<i32>,
    /// A message to the members as typed (subject, message), to correct.
    announcement: Option<(String, String)>,
    errors: Vec<FieldError>,
    saved: bool,
    sent: bool,
}

async fn desk_view(
    state: &AppState,
    signed: &Signed,
    id: &str,
    shown: Shown,
) -> Result<DeskPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let group = managed_group(&mut call, id).await?;
    let people = people::people_of(&mut call, id).await?;
    let rotas = rota::rotas_of(state, &mut call, id).await?;
    let followers = settings_of(&mut call, id).await?.followers;
    let status = group.status();
    let today = Utc::now().with_timezone(&state.tz).date_naive();
    Ok(DeskPage {
        csrf: signed.csrf_token.clone(),
        errors: shown.errors,
        saved: shown.saved,
        id: group.id.clone(),
        name: group.name.clone(),
        status: status_words(status),
        review_note: group.review_note.clone(),
        can_submit: matches!(status, pb::GroupStatus::Draft | pb::GroupStatus::Proposed),
        can_start: matches!(
            status,
            pb::GroupStatus::Proposed | pb::GroupStatus::ProposalListed
        ),
        public: status == pb::GroupStatus::Published,
        checked: super::format::checked_words(&group),
        followers,
        proposal: matches!(
            status,
            pb::GroupStatus::Proposed
                | pb::GroupStatus::ProposalPendingReview
                | pb::GroupStatus::ProposalListed
        ),
        pending: change_views(group.pending_edit.as_ref()),
        schedule_now: group
            .schedule
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        schedule: shown.schedule.unwrap_or_else(|| {
            meetings::ScheduleForm::from_schedule(group.schedule.as_ref(), today)
        }),
        preview: shown.preview,
        meetings: group
            .next_occurrences
            .iter()
            .map(meetings::MeetingView::of)
            .collect(),
        people,
        rotas,
        new_code: shown.new_code,
        invited_by_email: shown.invited_by_email,
        sent: shown.sent,
        announcement_title: shown.announcement.clone().unwrap_or_default().0,
        announcement_body: shown.announcement.unwrap_or_default().1,
    })
}

fn desk_page(state: &AppState, status: StatusCode, view: &DeskPage) -> Response {
    let title = view.name.clone();
    own_page(state, status, "organise_group.html", &title, view)
}

async fn desk_answer(
    state: &AppState,
    signed: &Signed,
    id: &str,
    status: StatusCode,
    shown: Shown,
) -> Response {
    match desk_view(state, signed, id, shown).await {
        Ok(view) => desk_page(state, status, &view),
        Err(e) => error_page(state, &e),
    }
}

pub(crate) async fn group_desk(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeskQuery>,
    SignedPage(signed): SignedPage,
) -> Response {
    let shown = Shown {
        saved: query.saved.is_some(),
        sent: query.sent.is_some(),
        ..Shown::default()
    };
    desk_answer(&state, &signed, &id, StatusCode::OK, shown).await
}

#[derive(Deserialize)]
pub(crate) struct StepForm {
    #[serde(default)]
    csrf: String,
}

/// Sends a draft for review ("submit"), starts a proposed group ("start": it
/// becomes a draft to list), or says a listing is still right ("confirm").
pub(crate) async fn step(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<StepForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let done = async {
        let answer = match what.as_str() {
            "submit" => {
                let request = call.ask(pb::SubmitGroupRequest {
                    group_id: id.clone(),
                });
                call.listings.submit_group(request).await.map(|_| ())
            }
            "start" => {
                let request = call.ask(pb::StartGroupRequest {
                    group_id: id.clone(),
                });
                call.listings.start_group(request).await.map(|_| ())
            }
            "confirm" => {
                let request = call.ask(pb::ConfirmGroupDetailsRequest {
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
        Ok(answer)
    }
    .await;
    after_step(&state, &signed, &id, done).await
}

/// Back to the desk when done; there with the refusal when it is the
/// person's to act on; the error page otherwise.
async fn after_step(
    state: &AppState,
    signed: &Signed,
    id: &str,
    done: Result<Result<(), tonic::Status>, GatewayError>,
) -> Response {
    match done {
        Err(own) => error_page(state, &own),
        Ok(Ok(())) => Redirect::to(&format!("/organise/{id}")).into_response(),
        Ok(Err(status)) if correctable(&status) => {
            let shown = Shown {
                errors: forms::violations(&status, |_| None::<&str>),
                ..Shown::default()
            };
            desk_answer(state, signed, id, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(Err(status)) => error_page(state, &GatewayError::from(status)),
    }
}
