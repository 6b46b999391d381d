//! The people of a group, on its desk: requests to join answered with a note;
//! the members (under membership's privacy rules: organisers see everyone)
//! with their roles, made co-organiser or member again, or removed with a
//! note; the waiting list in order; invitation codes, shown or sent by
//! email; and messages to the members (and followers), which each hears on
//! their own channels.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::{Shown, after_step, desk_answer, managed_group, organiser_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::{base_url, client_address};
use crate::services::AsPerson;
use crate::sessions::Signed;
use crate::web::forms::{self, FieldError};
use crate::web::invite_mail::{self, EmailInvitation};
use crate::web::pages::error_page;

#[derive(Serialize)]
pub(super) struct RequestView {
    membership_id: String,
    name: String,
    answer: String,
}

#[derive(Serialize)]
pub(super) struct MemberView {
    membership_id: String,
    name: String,
    role: &'static str,
    duties: String,
    /// Someone the organisers may make co-organiser (or member again).
    co_organiser: bool,
    /// The group's organiser: not removed or demoted from here.
    organiser: bool,
}

/// The people on the desk.
#[derive(Serialize, Default)]
pub(super) struct People {
    pub requests: Vec<RequestView>,
    pub members: Vec<MemberView>,
    /// Names in waiting-list order.
    pub waiting: Vec<String>,
}

fn shown_name(m: &mpb::Membership) -> String {
    if m.display_name.is_empty() {
        "A member who gave no name".into()
    } else {
        m.display_name.clone()
    }
}

fn role_words(role: mpb::GroupRole) -> &'static str {
    match role {
        mpb::GroupRole::Organiser => "Organiser",
        mpb::GroupRole::CoOrganiser => "Co-organiser",
        _ => "Member",
    }
}

/// Pages of people one desk reads at most (100 each).
const MOST_PAGES: usize = 20;

/// The group's memberships in `states`, page after page.
pub(crate) async fn memberships_in(
    call: &mut AsPerson,
    id: &str,
    states: &[mpb::MembershipState],
) -> Result<Vec<mpb::Membership>, GatewayError> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MOST_PAGES {
        let request = call.ask(mpb::ListGroupMembersRequest {
            group_id: id.to_string(),
            states: states.iter().map(|s| i32::from(*s)).collect(),
            page: Some(PageRequest {
                page_size: 100,
                page_token: token,
            }),
        });
        let answer = call
            .membership
            .list_group_members(request)
            .await?
            .into_inner();
        all.extend(answer.members);
        token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(all)
}

/// Everyone asking, belonging or waiting.
pub(super) async fn people_of(call: &mut AsPerson, id: &str) -> Result<People, GatewayError> {
    let mut all = memberships_in(
        call,
        id,
        &[
            mpb::MembershipState::Requested,
            mpb::MembershipState::Active,
            mpb::MembershipState::Waitlisted,
        ],
    )
    .await?;
    all.sort_by_key(|m| m.waitlist_position);
    let mut people = People::default();
    for m in all {
        match m.state() {
            mpb::MembershipState::Requested => people.requests.push(RequestView {
                name: shown_name(&m),
                membership_id: m.id,
                answer: m.answer,
            }),
            mpb::MembershipState::Waitlisted => people.waiting.push(shown_name(&m)),
            _ => people.members.push(MemberView {
                name: shown_name(&m),
                role: role_words(m.role()),
                duties: m.duties.join(", "),
                co_organiser: m.role() == mpb::GroupRole::CoOrganiser,
                organiser: m.role() == mpb::GroupRole::Organiser,
                membership_id: m.id,
            }),
        }
    }
    Ok(people)
}

#[derive(Deserialize)]
pub(crate) struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// A change to one person's place: a request to join approved or declined
/// ("approve", "decline") with a note to them; a member made co-organiser
/// ("co_organiser") or member again ("member"), or removed with a note
/// ("remove").
pub(crate) async fn change_person(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, membership_id, what)): Path<(String, String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<NoteForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let note = form.note.trim().to_string();
    let done = async {
        // The person must be one of this group's, in the state the change is for.
        let state_for = match what.as_str() {
            "approve" | "decline" => mpb::MembershipState::Requested,
            "co_organiser" | "member" | "remove" => mpb::MembershipState::Active,
            _ => return Err(GatewayError::NotFound),
        };
        let person = memberships_in(&mut call, &id, &[state_for])
            .await?
            .into_iter()
            .find(|m| m.id == membership_id)
            .ok_or(GatewayError::NotFound)?;
        let answer = match what.as_str() {
            "approve" | "decline" => {
                let request = call.ask(mpb::DecideRequestRequest {
                    membership_id,
                    message: note,
                });
                if what == "approve" {
                    call.membership.approve_request(request).await
                } else {
                    call.membership.decline_request(request).await
                }
            }
            "co_organiser" | "member" => {
                let role = if what == "member" {
                    mpb::GroupRole::Member
                } else {
                    mpb::GroupRole::CoOrganiser
                };
                // The member's duties stay as they are.
                let request = call.ask(mpb::AssignRoleRequest {
                    membership_id,
                    role: role.into(),
                    duties: person.duties,
                });
                call.membership.assign_role(request).await
            }
            _ => {
                let request = call.ask(mpb::RemoveMemberRequest {
                    membership_id,
                    ban: false,
                    message: note,
                });
                call.membership.remove_member(request).await
            }
        };
        Ok(answer.map(|_| ()))
    }
    .await;
    after_step(&state, &signed, &id, done).await
}

#[derive(Deserialize)]
pub(crate) struct InvitationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    valid_days: String,
    /// Send a single-use code to this address instead of showing one.
    #[serde(default)]
    email: String,
}

/// A whole number typed in `field`, or what to tell the person.
fn whole(field: &str, typed: &str, min: i32, max: i32) -> Result<i32, FieldError> {
    match typed.trim().parse::<i32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(FieldError::new(
            field,
            format!("Enter a whole number from {min} to {max}"),
        )),
    }
}

/// An invitation code, shown once on the desk (never put in an address,
/// where logs would keep it); or, with an email address, a single-use code
/// sent there and not shown.
pub(crate) async fn invite(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<InvitationForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let email = form.email.trim();
    let to = (!email.is_empty()).then(|| crate::signin::normalise(email));
    let asked = (
        if to.is_some() {
            Ok(1)
        } else {
            whole("max_uses", &form.max_uses, 1, 1_000)
        },
        whole("valid_days", &form.valid_days, 1, 90),
        match &to {
            Some(None) => Err(FieldError::new(
                "email",
                "Enter an email address like name@example.org",
            )),
            _ => Ok(()),
        },
    );
    let (max_uses, valid_days) = match asked {
        (Ok(uses), Ok(days), Ok(())) => (uses, days),
        (uses, days, to) => {
            let shown = Shown {
                errors: [uses.err(), days.err(), to.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
                ..Shown::default()
            };
            return desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await;
        }
    };
    if to.is_some() {
        let client = client_address(&headers, peer.ip(), state.config.http.trusted_proxies);
        if let Err(retry_after_secs) = state.invitations_limiter.check(client) {
            return error_page(&state, &GatewayError::TooManyRequests { retry_after_secs });
        }
    }
    let made = async {
        // The group first: a code is made only when the email can name it.
        let group = match &to {
            Some(_) => Some(managed_group(&mut call, &id).await?),
            None => None,
        };
        let request = call.ask(mpb::CreateInvitationRequest {
            group_id: id.clone(),
            person_id: String::new(),
            max_uses,
            valid_hours: valid_days * 24,
            organiser: false,
        });
        let invitation = call
            .membership
            .create_invitation(request)
            .await?
            .into_inner();
        if let (Some(Some(to)), Some(group)) = (&to, &group) {
            let base = base_url(&state, &headers);
            let letter = EmailInvitation {
                to,
                base: &base,
                group_id: &id,
                group_name: &group.name,
                code: &invitation.code,
                organiser: false,
                valid_days,
            };
            invite_mail::send(&state, letter).await?;
        }
        Ok::<_, GatewayError>(invitation)
    }
    .await;
    match made {
        Ok(invitation) => {
            let shown = if to.is_some() {
                Shown {
                    invited_by_email: Some(valid_days),
                    ..Shown::default()
                }
            } else {
                Shown {
                    new_code: Some(invitation.code),
                    ..Shown::default()
                }
            };
            desk_answer(&state, &signed, &id, StatusCode::OK, shown).await
        }
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct AnnouncementForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    include_followers: Option<String>,
}

/// A message to the group's members (and followers when ticked); the desk
/// says it went, or what to correct, with what was typed kept.
pub(crate) async fn announce(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<AnnouncementForm>,
) -> Response {
    let (signed, call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let request = call.ask(mpb::SendAnnouncementRequest {
        group_id: id.clone(),
        title: form.title.trim().to_string(),
        body: form.body.trim().to_string(),
        include_followers: form.include_followers.is_some(),
    });
    let mut membership = call.membership.clone();
    match membership.send_announcement(request).await {
        Ok(_) => Redirect::to(&format!("/organise/{id}?sent=1")).into_response(),
        Err(status) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "title" => Some("announce_title"),
                "body" => Some("announce_body"),
                _ => None,
            })
            .into_iter()
            .map(|mut e| {
                let label = match e.field.as_str() {
                    "announce_title" => "The subject",
                    "announce_body" => "The message",
                    _ => "",
                };
                if !label.is_empty() {
                    e.message = format!("{label} {}", e.message);
                }
                e
            })
            .collect();
            let shown = Shown {
                errors,
                announcement: Some((form.title, form.body)),
                ..Shown::default()
            };
            desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await
        }
        Err(status) => error_page(&state, &GatewayError::from(status)),
    }
}
