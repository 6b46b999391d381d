//! A signed-in person and a group: their place in it on its page, and joining,
//! leaving, following and unfollowing it (forms that post, then come back to
//! the page).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError};
use super::pages::error_page;
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;

/// What a person agrees to when they join: shown on the form and recorded with
/// the membership (its version and its words).
pub(crate) const CONSENT_VERSION: &str = "2026-12";
pub(crate) const CONSENT_TEXT: &str = "The group's organisers will know that I am a member, \
    see the name I give and my answer to their question. Other members see my name only if \
    the group shows its members to each other and I have not hidden myself. I can leave at \
    any time, and have everything about me erased.";

/// The signed-in person's place in a group, for its page.
#[derive(Serialize, Default)]
pub(crate) struct Place {
    /// The form token.
    csrf: String,
    /// `active`, `requested`, `waitlisted`, `invited`, `left`… (none: never joined).
    state: Option<&'static str>,
    /// What their state means, in plain words.
    status: String,
    role: String,
    waitlist_position: i32,
    /// Member-only details, for active members.
    joining_details: String,
    following: bool,
    /// They may ask to join (or join again).
    may_join: bool,
    may_leave: bool,
    join_question: String,
    /// The group asks for an invitation code.
    needs_code: bool,
    /// A code is optional: an organiser's yes given beforehand, or an
    /// invitation to organise.
    offers_code: bool,
    asks_to_join: bool,
    consent: &'static str,
    proposal: bool,
}

/// What was typed in the join form, kept when it comes back with an error.
#[derive(Serialize, Default, Clone)]
pub(crate) struct Typed {
    answer: String,
    code: String,
    display_name: String,
    hidden: bool,
}

/// The signed-in person's place in `group`, or none for a stranger.
pub(crate) async fn place(
    state: &AppState,
    group: &lpb::Group,
) -> Result<Option<Place>, GatewayError> {
    let Some(signed) = crate::sessions::current() else {
        return Ok(None);
    };
    let mut call = state.services.as_signed(&signed).await?;
    let request = call.ask(mpb::GetMyPlaceRequest {
        group_id: group.id.clone(),
    });
    let mine = call.membership.get_my_place(request).await?.into_inner();
    let proposal = group.status == lpb::GroupStatus::ProposalListed as i32;
    let membership = mine.membership.as_ref();
    let state_of = membership.map(|m| m.state());
    let (state_name, status) = match state_of {
        Some(mpb::MembershipState::Active) => {
            ("active", "You are a member of this group.".to_string())
        }
        Some(mpb::MembershipState::Requested) => (
            "requested",
            "You have asked to join. The organisers will reply.".to_string(),
        ),
        Some(mpb::MembershipState::Waitlisted) => (
            "waitlisted",
            format!(
                "The group is full: you are number {} on its waiting list.",
                membership.map_or(0, |m| m.waitlist_position)
            ),
        ),
        Some(mpb::MembershipState::Invited) => {
            ("invited", "You are invited to join this group.".to_string())
        }
        Some(mpb::MembershipState::Declined) => {
            ("declined", "Your request to join was declined.".to_string())
        }
        Some(mpb::MembershipState::Left) => ("left", "You left this group.".to_string()),
        Some(mpb::MembershipState::Removed) => (
            "removed",
            "The organisers removed you from this group.".to_string(),
        ),
        Some(mpb::MembershipState::Banned) => ("banned", "You cannot join this group.".to_string()),
        _ => ("", String::new()),
    };
    let open = matches!(
        state_of,
        Some(
            mpb::MembershipState::Active
                | mpb::MembershipState::Requested
                | mpb::MembershipState::Waitlisted
                | mpb::MembershipState::Invited
        )
    );
    let published = group.status == lpb::GroupStatus::Published as i32;
    let policy = lpb::JoinPolicy::try_from(group.join_policy).unwrap_or_default();
    Ok(Some(Place {
        csrf: signed.csrf_token.clone(),
        state: (!state_name.is_empty()).then_some(state_name),
        status,
        role: membership
            .map(|m| role_name(m.role()))
            .unwrap_or_default()
            .to_string(),
        waitlist_position: membership.map_or(0, |m| m.waitlist_position),
        joining_details: membership
            .map(|m| m.joining_details.clone())
            .unwrap_or_default(),
        following: mine.following,
        may_join: published
            && (!open || state_of == Some(mpb::MembershipState::Invited))
            && state_of != Some(mpb::MembershipState::Banned),
        may_leave: open,
        needs_code: policy == lpb::JoinPolicy::InviteOnly
            && state_of != Some(mpb::MembershipState::Invited),
        offers_code: policy != lpb::JoinPolicy::InviteOnly
            && state_of != Some(mpb::MembershipState::Invited),
        asks_to_join: policy == lpb::JoinPolicy::Approval,
        join_question: mine.join_question,
        consent: CONSENT_TEXT,
        proposal,
    }))
}

fn role_name(role: mpb::GroupRole) -> &'static str {
    match role {
        mpb::GroupRole::Organiser => "organiser",
        mpb::GroupRole::CoOrganiser => "co-organiser",
        mpb::GroupRole::Member => "member",
        _ => "",
    }
}

#[derive(Deserialize)]
pub(crate) struct JoinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    agree: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    hidden: String,
}

pub(crate) async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<JoinForm>,
) -> Response {
    let page = format!("/groups/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &page) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let typed = Typed {
        answer: form.answer.clone(),
        code: form.code.clone(),
        display_name: form.display_name.clone(),
        hidden: !form.hidden.is_empty(),
    };
    if form.agree.is_empty() {
        let errors = vec![FieldError::new(
            "agree",
            "To join, tick the box to say you agree to what joining means",
        )];
        return super::group::render(
            &state,
            &headers,
            &id,
            StatusCode::BAD_REQUEST,
            errors,
            typed,
        )
        .await;
    }
    let joined = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(mpb::JoinGroupRequest {
            group_id: id.clone(),
            consent: Some(mpb::Consent {
                version: CONSENT_VERSION.into(),
                text: CONSENT_TEXT.into(),
            }),
            answer: form.answer.clone(),
            invitation_code: form.code.clone(),
            display_name: form.display_name.clone(),
            hidden: !form.hidden.is_empty(),
        });
        // The service's answer, kept whole: its refusals name every field.
        Ok::<_, GatewayError>(call.membership.join_group(request).await)
    }
    .await;
    match joined {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to(&page).into_response(),
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            let errors = forms::violations(&status, |field| match field {
                "answer" => Some("answer"),
                "invitation_code" => Some("code"),
                "display_name" => Some("display_name"),
                _ => None,
            });
            super::group::render(
                &state,
                &headers,
                &id,
                StatusCode::BAD_REQUEST,
                errors,
                typed,
            )
            .await
        }
        Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
            let errors = vec![FieldError::new("form", status.message().to_string())];
            super::group::render(&state, &headers, &id, StatusCode::CONFLICT, errors, typed).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

#[derive(Deserialize)]
pub(crate) struct PlainForm {
    #[serde(default)]
    csrf: String,
}

/// Leaves the group (`/groups/{id}/leave`), follows or unfollows it
/// (`…/follow`, `…/unfollow`); back to its page.
pub(crate) async fn place_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<PlainForm>,
) -> Response {
    if !matches!(what.as_str(), "leave" | "follow" | "unfollow") {
        return error_page(&state, &GatewayError::NotFound);
    }
    let page = format!("/groups/{id}");
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, &page) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        let group_id = id.clone();
        match what.as_str() {
            "leave" => {
                let request = call.ask(mpb::LeaveGroupRequest { group_id });
                call.membership.leave_group(request).await.map(|_| ())
            }
            "follow" => {
                let request = call.ask(mpb::FollowGroupRequest { group_id });
                call.membership.follow_group(request).await.map(|_| ())
            }
            _ => {
                let request = call.ask(mpb::FollowGroupRequest { group_id });
                call.membership.unfollow_group(request).await.map(|_| ())
            }
        }
        .map_err(GatewayError::from)
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&page).into_response(),
        Err(GatewayError::Conflict(message)) => {
            let errors = vec![FieldError::new("form", message)];
            super::group::render(
                &state,
                &headers,
                &id,
                StatusCode::CONFLICT,
                errors,
                Typed::default(),
            )
            .await
        }
        Err(e) => error_page(&state, &e),
    }
}
