//! Organisers on the web (issue 33): the groups they run; proposing or listing
//! a group with the whole card (kept as a draft or sent for review); editing
//! it (what waits for the region's staff is said before and shown after);
//! when it meets (the rule in plain words and the next meetings before it is
//! saved) and single meetings cancelled with a note; and people asking to
//! join, answered with a note. These pages are the group's organisers' only
//! (the region's operators act from the staff pages); listings and
//! membership check every call again by their own rules.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::card_form::{self, COSTS, CardForm, FORMATS, POLICIES};
use super::format::{long_date, time_range};
use super::forms::{self, FieldError, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;

/// Meetings ahead shown on a group's organiser page and in a preview.
const MEETINGS_AHEAD: usize = 6;

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

/// "Groups you run": every group the person organises, whatever its status.
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
    card: CardForm,
    topics: Vec<Choice>,
    formats: Vec<Choice>,
    policies: Vec<Choice>,
    costs: Vec<Choice>,
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

async fn card_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    group_id: &str,
    listed: bool,
    card: CardForm,
    errors: Vec<FieldError>,
) -> Response {
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(state, &e),
    };
    let view = CardPage {
        csrf: signed.csrf_token.clone(),
        errors,
        group_id: group_id.to_string(),
        listed,
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
    card_page(&state, &signed, StatusCode::OK, "", false, card, Vec::new()).await
}

/// Whether a service's refusal is the person's to correct on the form.
fn correctable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::Aborted
    )
}

/// The join question is membership's (asked of people who request to
/// join): saved beside the card when the group asks for approval.
async fn save_join_question(
    call: &mut AsPerson,
    group_id: &str,
    form: &CardForm,
) -> Result<Result<(), tonic::Status>, GatewayError> {
    let request = call.ask(mpb::GetGroupSettingsRequest {
        group_id: group_id.to_string(),
    });
    let held = call
        .membership
        .get_group_settings(request)
        .await?
        .into_inner();
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
        Err(errors) => {
            return card_page(
                &state,
                &signed,
                StatusCode::BAD_REQUEST,
                "",
                false,
                form,
                errors,
            )
            .await;
        }
    };
    let created = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(card.into_create(form.proposed));
        let group = match call.listings.create_group(request).await {
            Ok(g) => g.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        tracing::info!(group_id = %group.id, "a group was proposed on the web");
        if !form.join_question.trim().is_empty()
            && let Err(status) = save_join_question(&mut call, &group.id, &form).await?
        {
            return Ok(Err(status));
        }
        if form.action == "submit" {
            let request = call.ask(pb::SubmitGroupRequest {
                group_id: group.id.clone(),
            });
            call.listings.submit_group(request).await?;
        }
        Ok::<_, GatewayError>(Ok(group.id))
    }
    .await;
    match created {
        Err(own) => error_page(&state, &own),
        Ok(Ok(id)) => Redirect::to(&format!("/organise/{id}")).into_response(),
        Ok(Err(status)) if correctable(&status) => {
            let errors = card_form::refused_fields(&status);
            card_page(
                &state,
                &signed,
                StatusCode::BAD_REQUEST,
                "",
                false,
                form,
                errors,
            )
            .await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
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

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedPage(signed): SignedPage,
) -> Response {
    let loaded = async {
        let mut call = state.services.as_signed(&signed).await?;
        let group = managed_group(&mut call, &id).await?;
        let request = call.ask(mpb::GetGroupSettingsRequest {
            group_id: id.clone(),
        });
        let settings = call
            .membership
            .get_group_settings(request)
            .await?
            .into_inner();
        Ok::<_, GatewayError>((group, settings))
    }
    .await;
    match loaded {
        Ok((group, settings)) => {
            let listed = listed(group.status());
            let card = CardForm::from_group(&group, &settings.join_question);
            card_page(
                &state,
                &signed,
                StatusCode::OK,
                &id,
                listed,
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
        let card = match card {
            Ok(card) => card,
            Err(errors) => return Ok((group, Err(errors))),
        };
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
                &id,
                listed(group.status()),
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
    pending: Vec<ChangeView>,
    schedule_now: String,
    schedule: ScheduleForm,
    preview: Option<Preview>,
    meetings: Vec<MeetingView>,
    requests: Vec<RequestView>,
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
fn plain_value(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) => String::new(),
        Ok(other) => other.to_string(),
        Err(_) => json.to_string(),
    }
}

#[derive(Serialize)]
struct MeetingView {
    date: String,
    label: String,
    /// A regular meeting (these can be cancelled from here).
    regular: bool,
}

#[derive(Serialize)]
struct RequestView {
    membership_id: String,
    name: String,
    answer: String,
}

#[derive(Serialize)]
struct Preview {
    description: String,
    meetings: Vec<String>,
}

/// The schedule as the form holds it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    /// "preview" or "save".
    #[serde(default)]
    action: String,
    /// "weekly", "monthly_weekday" or "monthly_date".
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    interval: String,
    /// "monday" … "sunday".
    #[serde(default)]
    weekday: String,
    /// "1".."4" or "-1" (last).
    #[serde(default)]
    week_of_month: String,
    #[serde(default)]
    day_of_month: String,
    #[serde(default)]
    start_time: String,
    #[serde(default)]
    end_time: String,
    #[serde(default)]
    valid_from: String,
}

const WEEKDAYS: [(&str, pb::Weekday, chrono::Weekday); 7] = [
    ("monday", pb::Weekday::Monday, chrono::Weekday::Mon),
    ("tuesday", pb::Weekday::Tuesday, chrono::Weekday::Tue),
    ("wednesday", pb::Weekday::Wednesday, chrono::Weekday::Wed),
    ("thursday", pb::Weekday::Thursday, chrono::Weekday::Thu),
    ("friday", pb::Weekday::Friday, chrono::Weekday::Fri),
    ("saturday", pb::Weekday::Saturday, chrono::Weekday::Sat),
    ("sunday", pb::Weekday::Sunday, chrono::Weekday::Sun),
];

impl ScheduleForm {
    fn from_schedule(s: Option<&pb::Schedule>, today: NaiveDate) -> ScheduleForm {
        let Some(s) = s else {
            return ScheduleForm {
                pattern: "weekly".into(),
                interval: "1".into(),
                weekday: "monday".into(),
                week_of_month: "1".into(),
                valid_from: today.to_string(),
                ..ScheduleForm::default()
            };
        };
        let pattern = match (s.frequency(), s.day_of_month) {
            (pb::Frequency::Weekly, _) => "weekly",
            (_, 0) => "monthly_weekday",
            _ => "monthly_date",
        };
        ScheduleForm {
            pattern: pattern.into(),
            interval: s.interval.max(1).to_string(),
            weekday: WEEKDAYS
                .iter()
                .find(|(_, w, _)| *w == s.weekday())
                .map_or("monday", |(name, _, _)| name)
                .into(),
            week_of_month: s.week_of_month.to_string(),
            day_of_month: s.day_of_month.to_string(),
            start_time: s.start_time.clone(),
            end_time: s.end_time.clone(),
            valid_from: s.valid_from.clone(),
            ..ScheduleForm::default()
        }
    }

    fn weekday(&self) -> Option<&(&'static str, pb::Weekday, chrono::Weekday)> {
        WEEKDAYS.iter().find(|(name, _, _)| *name == self.weekday)
    }

    fn whole(value: &str) -> i32 {
        value.trim().parse().unwrap_or(-100)
    }

    /// The schedule as listings takes it.
    fn to_wire(&self) -> pb::Schedule {
        let weekly = self.pattern == "weekly";
        let by_date = self.pattern == "monthly_date";
        pb::Schedule {
            frequency: if weekly {
                pb::Frequency::Weekly
            } else {
                pb::Frequency::Monthly
            } as i32,
            interval: Self::whole(&self.interval),
            weekday: if by_date {
                0
            } else {
                self.weekday().map_or(0, |(_, w, _)| *w as i32)
            },
            week_of_month: if weekly || by_date {
                0
            } else {
                Self::whole(&self.week_of_month)
            },
            day_of_month: if by_date {
                Self::whole(&self.day_of_month)
            } else {
                0
            },
            valid_from: self.valid_from.trim().to_string(),
            valid_until: String::new(),
            start_time: self.start_time.trim().to_string(),
            end_time: self.end_time.trim().to_string(),
            ..pb::Schedule::default()
        }
    }

    /// The same rule checked as listings checks it, for the preview.
    fn draft(&self) -> selfhelp_schedule::ScheduleDraft {
        let wire = self.to_wire();
        selfhelp_schedule::ScheduleDraft {
            weekly: Some(self.pattern == "weekly"),
            interval: wire.interval,
            weekday: if wire.weekday == 0 {
                None
            } else {
                self.weekday().map(|(_, _, w)| *w)
            },
            week_of_month: wire.week_of_month,
            day_of_month: wire.day_of_month,
            valid_from: wire.valid_from,
            valid_until: String::new(),
            start_time: wire.start_time,
            end_time: wire.end_time,
        }
    }
}

/// The form's name for a schedule field listings or the preview named.
fn schedule_field(field: &str) -> Option<&'static str> {
    Some(match field.trim_start_matches("schedule.") {
        "interval" => "interval",
        "weekday" => "weekday",
        "week_of_month" => "week_of_month",
        "day_of_month" => "day_of_month",
        "start_time" => "start_time",
        "end_time" => "end_time",
        "valid_from" => "valid_from",
        _ => return None,
    })
}

#[derive(Deserialize)]
pub(crate) struct DeskQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// What the desk shows besides the group: the schedule form as typed (with
/// its errors or preview), or as stored.
#[derive(Default)]
struct Shown {
    schedule: Option<ScheduleForm>,
    preview: Option<Preview>,
    errors: Vec<FieldError>,
    saved: bool,
}

async fn desk_view(
    state: &AppState,
    signed: &Signed,
    id: &str,
    shown: Shown,
) -> Result<DeskPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let group = managed_group(&mut call, id).await?;
    let request = call.ask(mpb::ListGroupMembersRequest {
        group_id: id.to_string(),
        states: vec![mpb::MembershipState::Requested as i32],
        page: first_page(100),
    });
    let requests = call
        .membership
        .list_group_members(request)
        .await?
        .into_inner()
        .members;
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
        pending: change_views(group.pending_edit.as_ref()),
        schedule_now: group
            .schedule
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
        schedule: shown
            .schedule
            .unwrap_or_else(|| ScheduleForm::from_schedule(group.schedule.as_ref(), today)),
        preview: shown.preview,
        meetings: group
            .next_occurrences
            .iter()
            .map(|o| MeetingView {
                label: meeting_label(o),
                regular: o.kind() == pb::OccurrenceKind::Regular,
                date: o.local_date.clone(),
            })
            .collect(),
        requests: requests
            .into_iter()
            .map(|m| RequestView {
                membership_id: m.id,
                name: if m.display_name.is_empty() {
                    "Someone".into()
                } else {
                    m.display_name
                },
                answer: m.answer,
            })
            .collect(),
    })
}

fn meeting_label(o: &pb::Occurrence) -> String {
    let mut label = long_date(&o.local_date);
    if let Some(times) = time_range(&o.local_start_time, &o.local_end_time) {
        label = format!("{label}, {times}");
    }
    if !o.note.is_empty() {
        label = format!("{label} ({})", o.note);
    }
    label
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
        ..Shown::default()
    };
    desk_answer(&state, &signed, &id, StatusCode::OK, shown).await
}

#[derive(Deserialize)]
pub(crate) struct StepForm {
    #[serde(default)]
    csrf: String,
}

/// Sends a draft for review ("submit"), or starts a proposed group
/// ("start": it becomes a draft to list).
pub(crate) async fn step(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<StepForm>,
) -> Response {
    let back = format!("/organise/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        managed_group(&mut call, &id).await?;
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
                errors: forms::violations(&status, schedule_field),
                ..Shown::default()
            };
            desk_answer(state, signed, id, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(Err(status)) => error_page(state, &GatewayError::from(status)),
    }
}

/// The schedule: previewed (the rule in words and the next meetings, nothing
/// saved) or saved.
pub(crate) async fn schedule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<ScheduleForm>,
) -> Response {
    let back = format!("/organise/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if form.action == "preview" {
        let now = Utc::now();
        let today = now.with_timezone(&state.tz).date_naive();
        let shown = match selfhelp_schedule::validate(&form.draft(), today) {
            Ok(rule) => Shown {
                preview: Some(Preview {
                    description: rule.describe(),
                    meetings: selfhelp_schedule::next_occurrences(
                        Some(&rule),
                        &[],
                        state.tz,
                        now,
                        MEETINGS_AHEAD,
                    )
                    .iter()
                    .map(|o| o.starts_at.format("%A %-d %B %Y, %-I:%M%P").to_string())
                    .collect(),
                }),
                schedule: Some(form),
                ..Shown::default()
            },
            Err(violations) => Shown {
                errors: violations
                    .iter()
                    .map(|(field, message)| {
                        FieldError::new(schedule_field(field).unwrap_or("form"), message)
                    })
                    .collect(),
                schedule: Some(form),
                ..Shown::default()
            },
        };
        let status = if shown.errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return desk_answer(&state, &signed, &id, status, shown).await;
    }
    let saved = async {
        let mut call = state.services.as_signed(&signed).await?;
        managed_group(&mut call, &id).await?;
        let request = call.ask(pb::SetScheduleRequest {
            group_id: id.clone(),
            schedule: Some(form.to_wire()),
        });
        Ok::<_, GatewayError>(call.listings.set_schedule(request).await)
    }
    .await;
    match saved {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to(&format!("/organise/{id}?saved=1")).into_response(),
        Ok(Err(status)) if correctable(&status) => {
            let shown = Shown {
                errors: forms::violations(&status, schedule_field),
                schedule: Some(form),
                ..Shown::default()
            };
            desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    note: String,
}

/// One regular meeting cancelled, with a note for members and followers.
pub(crate) async fn cancel_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<CancelForm>,
) -> Response {
    let back = format!("/organise/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        managed_group(&mut call, &id).await?;
        let request = call.ask(pb::CancelOccurrenceRequest {
            group_id: id.clone(),
            date: form.date.trim().to_string(),
            note: form.note.trim().to_string(),
        });
        Ok::<_, GatewayError>(call.listings.cancel_occurrence(request).await.map(|_| ()))
    }
    .await;
    after_step(&state, &signed, &id, done).await
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// A request to join approved or declined, with a note to the person.
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, membership_id, decision)): Path<(String, String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let back = format!("/organise/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        managed_group(&mut call, &id).await?;
        let request = call.ask(mpb::DecideRequestRequest {
            membership_id,
            message: form.note.trim().to_string(),
        });
        let answer = match decision.as_str() {
            "approve" => call.membership.approve_request(request).await,
            "decline" => call.membership.decline_request(request).await,
            _ => return Err(GatewayError::NotFound),
        };
        Ok(answer.map(|_| ()))
    }
    .await;
    after_step(&state, &signed, &id, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_form_says_what_listings_is_asked_for() {
        let form = ScheduleForm {
            pattern: "monthly_weekday".into(),
            interval: "1".into(),
            weekday: "wednesday".into(),
            week_of_month: "-1".into(),
            day_of_month: "9".into(),
            start_time: "19:00".into(),
            end_time: "21:00".into(),
            valid_from: "2026-12-01".into(),
            ..ScheduleForm::default()
        };
        let wire = form.to_wire();
        assert_eq!(wire.frequency(), pb::Frequency::Monthly);
        assert_eq!(wire.weekday(), pb::Weekday::Wednesday);
        assert_eq!((wire.week_of_month, wire.day_of_month), (-1, 0));
        let rule = selfhelp_schedule::validate(
            &form.draft(),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        )
        .unwrap();
        assert_eq!(
            ScheduleForm::from_schedule(
                Some(&pb::Schedule {
                    description: rule.describe(),
                    ..wire
                }),
                NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
            )
            .pattern,
            "monthly_weekday"
        );
        assert!(
            rule.describe().contains("last Wednesday"),
            "{}",
            rule.describe()
        );
    }

    #[test]
    fn a_preview_names_the_field_that_is_wrong() {
        let form = ScheduleForm {
            pattern: "weekly".into(),
            weekday: "someday".into(),
            start_time: "25:00".into(),
            end_time: "21:00".into(),
            valid_from: "2026-12-01".into(),
            ..ScheduleForm::default()
        };
        let wrong = selfhelp_schedule::validate(
            &form.draft(),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        )
        .unwrap_err();
        let named: Vec<Option<&str>> = wrong
            .iter()
            .map(|(field, _)| schedule_field(field))
            .collect();
        assert!(named.contains(&Some("weekday")), "{named:?}");
        assert!(named.contains(&Some("start_time")), "{named:?}");
    }
}
