//! The group's own space (issue 34), for its members only: the open forum
//! (each meeting's agenda until its cut-off, the notes written by whoever
//! held the notes duty, who came where the group keeps it), the knowledge
//! the group pools, and its sub-committees. Organisers also set how the
//! group shares its running (terms, the agenda's cut-off, attendance) and
//! set up committees here.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError, SignedPage};
use super::mine::local;
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;

#[derive(Serialize)]
struct ForumPage {
    csrf: String,
    group_id: String,
    group_name: String,
    errors: Vec<FieldError>,
    /// What was just done, in words.
    done: String,
    organiser: bool,
    practice: PracticeView,
    coming: Vec<MeetingView>,
    past: Vec<MeetingView>,
    knowledge: Vec<KnowledgeView>,
    committees: Vec<CommitteeView>,
    /// Organisers: who may be put on a committee, (membership id, name).
    members: Vec<Choice>,
    /// What was typed into the form refused, by field id.
    typed: HashMap<String, String>,
    new_committee: CommitteeDraft,
}

#[derive(Serialize)]
struct PracticeView {
    organiser_term_months: i32,
    chair_term_months: i32,
    agenda_cutoff_hours: i32,
    attendance: bool,
}

#[derive(Serialize)]
struct Choice {
    id: String,
    label: String,
}

#[derive(Serialize)]
struct MeetingView {
    key: String,
    /// The key as it may stand in an element id.
    field: String,
    when: String,
    closes: String,
    open: bool,
    items: Vec<ItemView>,
    notes: String,
    notes_by: String,
    notes_taker: String,
    may_write: bool,
    attended: i32,
    i_came: bool,
    came: Vec<String>,
    came_ids: Vec<String>,
}

#[derive(Serialize)]
struct ItemView {
    id: String,
    text: String,
    by: String,
    removable: bool,
}

#[derive(Serialize)]
struct KnowledgeView {
    id: String,
    title: String,
    url: String,
    text: String,
    by: String,
    removable: bool,
}

#[derive(Serialize)]
struct CommitteeView {
    id: String,
    name: String,
    duties: Vec<String>,
    count: i32,
    mine: bool,
    lead: String,
    members: Vec<String>,
    may_send: bool,
    /// The organisers' form: as stored, or as typed when it was refused
    /// (then shown open); the heading keeps the stored name.
    form: CommitteeDraft,
    open: bool,
}

/// A committee's form: name, duties one a line, members' and lead's
/// membership ids.
#[derive(Serialize, Default)]
struct CommitteeDraft {
    name: String,
    duties_text: String,
    member_ids: Vec<String>,
    lead_id: String,
}

#[derive(Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn field_of(key: &str) -> String {
    key.replace(':', "-")
}

async fn view(
    state: &AppState,
    signed: &Signed,
    group_id: &str,
    errors: Vec<FieldError>,
    typed: HashMap<String, String>,
    done: &str,
) -> Result<ForumPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(mpb::GetForumRequest {
        group_id: group_id.to_string(),
        meeting_key: String::new(),
    });
    let forum = call.membership.get_forum(request).await?.into_inner();
    let request = call.ask(mpb::ListKnowledgeRequest {
        group_id: group_id.to_string(),
    });
    let knowledge = call.membership.list_knowledge(request).await?.into_inner();
    let request = call.ask(mpb::ListCommitteesRequest {
        group_id: group_id.to_string(),
    });
    let committees = call.membership.list_committees(request).await?.into_inner();
    let members = if forum.organiser {
        super::organise::memberships_in(&mut call, group_id, &[mpb::MembershipState::Active])
            .await?
            .into_iter()
            .map(|m| Choice {
                label: if m.display_name.is_empty() {
                    "A member (no name given)".into()
                } else {
                    m.display_name
                },
                id: m.id,
            })
            .collect()
    } else {
        Vec::new()
    };
    let group_name = match state.listings.group(group_id).await {
        Ok(g) => g.name.clone(),
        Err(GatewayError::NotFound) => String::new(),
        Err(e) => return Err(e),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (mut coming, mut past) = (Vec::new(), Vec::new());
    for m in &forum.meetings {
        let begun = m.starts_at.as_ref().is_some_and(|t| t.seconds <= now);
        let v = MeetingView {
            key: m.meeting_key.clone(),
            field: field_of(&m.meeting_key),
            when: local(state, m.starts_at.as_ref()),
            closes: local(state, m.agenda_closes_at.as_ref()),
            open: m.agenda_open,
            items: m
                .agenda
                .iter()
                .map(|a| ItemView {
                    id: a.id.clone(),
                    text: a.text.clone(),
                    by: a.added_by.clone(),
                    removable: forum.organiser || (a.mine && m.agenda_open),
                })
                .collect(),
            notes: m.notes.as_ref().map(|n| n.text.clone()).unwrap_or_default(),
            notes_by: m
                .notes
                .as_ref()
                .map(|n| n.written_by.clone())
                .unwrap_or_default(),
            notes_taker: m.notes_taker.clone(),
            may_write: m.may_write_notes,
            attended: m.attended,
            i_came: m.i_came,
            came: m.came.clone(),
            came_ids: m.came_membership_ids.clone(),
        };
        if begun { past.push(v) } else { coming.push(v) }
    }
    past.reverse(); // the latest first
    let practice = forum.practice.unwrap_or_default();
    Ok(ForumPage {
        csrf: signed.csrf_token.clone(),
        group_id: group_id.to_string(),
        group_name,
        errors,
        done: done.to_string(),
        organiser: forum.organiser,
        practice: PracticeView {
            organiser_term_months: practice.organiser_term_months,
            chair_term_months: practice.chair_term_months,
            agenda_cutoff_hours: practice.agenda_cutoff_hours,
            attendance: practice.attendance,
        },
        coming,
        past,
        knowledge: knowledge
            .items
            .into_iter()
            .map(|k| KnowledgeView {
                removable: knowledge.organiser || k.mine,
                id: k.id,
                title: k.title,
                url: k.url,
                text: k.text,
                by: k.added_by,
            })
            .collect(),
        committees: committees
            .committees
            .into_iter()
            .map(|c| CommitteeView {
                form: CommitteeDraft {
                    name: c.name.clone(),
                    duties_text: c.duties.join("\n"),
                    member_ids: c.members.iter().map(|m| m.membership_id.clone()).collect(),
                    lead_id: c.lead_membership_id.clone(),
                },
                members: c.members.into_iter().map(|m| m.display_name).collect(),
                id: c.id,
                name: c.name,
                duties: c.duties,
                count: c.member_count,
                mine: c.mine,
                lead: c.lead,
                may_send: c.may_send,
                open: false,
            })
            .map(|c| as_typed(c, &typed))
            .collect(),
        members,
        new_committee: draft_of("committee-new", &typed).unwrap_or_default(),
        typed,
    })
}

/// A committee's form as typed, when it was the one refused.
fn draft_of(prefix: &str, typed: &HashMap<String, String>) -> Option<CommitteeDraft> {
    let name = typed.get(&format!("{prefix}-name"))?;
    let got = |part: &str| typed.get(&format!("{prefix}-{part}")).cloned();
    Some(CommitteeDraft {
        name: name.clone(),
        duties_text: got("duties").unwrap_or_default(),
        member_ids: got("members")
            .unwrap_or_default()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        lead_id: got("lead").unwrap_or_default(),
    })
}

fn as_typed(mut c: CommitteeView, typed: &HashMap<String, String>) -> CommitteeView {
    if let Some(d) = draft_of(&format!("committee-{}", c.id), typed) {
        c.open = true;
        c.form = d;
    }
    c
}

fn page(state: &AppState, status: StatusCode, view: &ForumPage) -> Response {
    own_page(state, status, "forum.html", "The group's forum", view)
}

pub(crate) async fn forum_page(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    Query(query): Query<DoneQuery>,
    SignedPage(signed): SignedPage,
) -> Response {
    let done = match query.done.as_deref() {
        Some("agenda") => "Your item is on the agenda; the members are told.",
        Some("notes") => "The notes are saved.",
        Some("removed") => "Taken off.",
        Some("came") => "Attendance saved.",
        Some("knowledge") => "Added to what the group knows.",
        Some("committee") => "The committee is saved.",
        Some("notice") => "The committee's members are told.",
        Some("practice") => "The group's ways are saved.",
        _ => "",
    };
    match view(&state, &signed, &group_id, Vec::new(), HashMap::new(), done).await {
        Ok(v) => page(&state, StatusCode::OK, &v),
        Err(e) => error_page(&state, &e),
    }
}

/// A form's values by name (repeated names kept in order).
struct Values(Vec<(String, String)>);

impl Values {
    fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// What one form asks of membership, where its refusals go on the page, and
/// the fields typed into it.
struct Asked {
    /// Service field → the page's field id and what the message says it of
    /// ("The title", then "must not be empty").
    fields: Vec<(&'static str, String, &'static str)>,
    /// Where a refusal that names no field goes.
    whole: String,
    typed: HashMap<String, String>,
}

/// Does what one of the page's forms asks (`what`), then back to the page.
pub(crate) async fn forum_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((group_id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = Values(pairs);
    let back = format!("/my/groups/{group_id}/forum");
    let signed = match forms::signed_form(&state, &headers, signed, &form.one("csrf"), &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let (asked, result) = match state.services.as_signed(&signed).await {
        Ok(mut call) => act(&mut call, &group_id, &what, &form).await,
        Err(e) => return error_page(&state, &e),
    };
    match result {
        Ok(Some(done)) => Redirect::to(&format!("{back}?done={done}")).into_response(),
        Ok(None) => error_page(&state, &GatewayError::NotFound),
        Err(status) if forms::correctable(&status) => {
            let mut errors = forms::violations(&status, |field| {
                asked
                    .fields
                    .iter()
                    .find(|(f, _, _)| {
                        // `duties[2]` is the form's `duties`.
                        field == *f || field.strip_prefix(f).is_some_and(|i| i.starts_with('['))
                    })
                    .map(|(_, id, _)| id.clone())
            });
            for e in &mut errors {
                if e.field == "form" {
                    e.field = asked.whole.clone();
                } else if let Some((_, _, subject)) =
                    asked.fields.iter().find(|(_, id, _)| *id == e.field)
                {
                    e.message = format!("{subject} {}", e.message);
                }
            }
            match view(&state, &signed, &group_id, errors, asked.typed, "").await {
                Ok(v) => page(&state, StatusCode::BAD_REQUEST, &v),
                Err(e) => error_page(&state, &e),
            }
        }
        Err(status) => error_page(&state, &GatewayError::from(status)),
    }
}

/// Calls the RPC `what` stands for; `Ok(None)` for no such form.
async fn act(
    call: &mut AsPerson,
    group_id: &str,
    what: &str,
    form: &Values,
) -> (Asked, Result<Option<&'static str>, tonic::Status>) {
    let g = group_id.to_string();
    let key = form.one("meeting_key");
    let k = field_of(&key);
    let mut asked = Asked {
        fields: Vec::new(),
        whole: "form".into(),
        typed: HashMap::new(),
    };
    let result = match what {
        "agenda" => {
            asked.whole = format!("agenda-{k}");
            asked.fields = vec![("text", asked.whole.clone(), "The item")];
            asked.typed.insert(asked.whole.clone(), form.one("text"));
            let r = call.ask(mpb::AddAgendaItemRequest {
                group_id: g,
                meeting_key: key,
                text: form.one("text"),
            });
            call.membership.add_agenda_item(r).await.map(|_| "agenda")
        }
        "agenda-remove" => {
            let r = call.ask(mpb::RemoveAgendaItemRequest {
                group_id: g,
                item_id: form.one("item_id"),
            });
            call.membership
                .remove_agenda_item(r)
                .await
                .map(|_| "removed")
        }
        "notes" => {
            asked.whole = format!("notes-{k}");
            asked.fields = vec![("text", asked.whole.clone(), "The notes")];
            asked.typed.insert(asked.whole.clone(), form.one("text"));
            let r = call.ask(mpb::WriteMeetingNotesRequest {
                group_id: g,
                meeting_key: key,
                text: form.one("text"),
            });
            call.membership
                .write_meeting_notes(r)
                .await
                .map(|_| "notes")
        }
        "came" => {
            let r = call.ask(mpb::MarkAttendanceRequest {
                group_id: g,
                meeting_key: key,
                membership_id: String::new(),
                came: form.one("came") == "1",
            });
            call.membership.mark_attendance(r).await.map(|_| "came")
        }
        "came-others" => {
            // Only the boxes changed are sent, so another organiser's ticks
            // meanwhile stand.
            let (ticked, was) = (form.all("member"), form.all("was"));
            let mut answer = Ok("came");
            for id in form.all("listed") {
                if ticked.contains(&id) == was.contains(&id) {
                    continue;
                }
                let r = call.ask(mpb::MarkAttendanceRequest {
                    group_id: g.clone(),
                    meeting_key: key.clone(),
                    came: ticked.contains(&id),
                    membership_id: id,
                });
                match call.membership.mark_attendance(r).await {
                    // Someone who left meanwhile is not ticked; the rest are.
                    Err(status) if status.code() == tonic::Code::NotFound => {}
                    Err(status) => {
                        answer = Err(status);
                        break;
                    }
                    Ok(_) => {}
                }
            }
            answer
        }
        "knowledge" => {
            for (f, subject) in [
                ("title", "The title"),
                ("url", "The web address"),
                ("text", "The notes"),
            ] {
                let id = format!("knowledge-{f}");
                asked.fields.push((f, id.clone(), subject));
                asked.typed.insert(id, form.one(f));
            }
            asked.whole = "knowledge-title".into();
            let r = call.ask(mpb::AddKnowledgeRequest {
                group_id: g,
                title: form.one("title"),
                url: form.one("url"),
                text: form.one("text"),
            });
            call.membership.add_knowledge(r).await.map(|_| "knowledge")
        }
        "knowledge-remove" => {
            let r = call.ask(mpb::RemoveKnowledgeRequest {
                group_id: g,
                item_id: form.one("item_id"),
            });
            call.membership.remove_knowledge(r).await.map(|_| "removed")
        }
        "committee" => {
            let cid = form.one("committee_id");
            let prefix = format!("committee-{}", if cid.is_empty() { "new" } else { &cid });
            for (service, part, subject) in [
                ("name", "name", "The name"),
                ("duties", "duties", "What it looks after:"),
                ("member_membership_ids", "members", "Its members:"),
                ("lead_membership_id", "lead", "The lead"),
            ] {
                asked
                    .fields
                    .push((service, format!("{prefix}-{part}"), subject));
            }
            asked.whole = format!("{prefix}-name");
            asked
                .typed
                .insert(format!("{prefix}-name"), form.one("name"));
            asked
                .typed
                .insert(format!("{prefix}-duties"), form.one("duties"));
            asked
                .typed
                .insert(format!("{prefix}-members"), form.all("member").join(","));
            asked
                .typed
                .insert(format!("{prefix}-lead"), form.one("lead"));
            let duties: Vec<String> = form
                .one("duties")
                .lines()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            let r = call.ask(mpb::SaveCommitteeRequest {
                group_id: g,
                committee_id: cid,
                name: form.one("name"),
                duties,
                member_membership_ids: form.all("member"),
                lead_membership_id: form.one("lead"),
            });
            call.membership.save_committee(r).await.map(|_| "committee")
        }
        "committee-close" => {
            let r = call.ask(mpb::DeleteCommitteeRequest {
                group_id: g,
                committee_id: form.one("committee_id"),
            });
            call.membership.delete_committee(r).await.map(|_| "removed")
        }
        "committee-notice" => {
            let cid = form.one("committee_id");
            for (f, subject) in [("title", "The subject"), ("body", "The message")] {
                let id = format!("notice-{cid}-{f}");
                asked.fields.push((f, id.clone(), subject));
                asked.typed.insert(id, form.one(f));
            }
            asked.whole = format!("notice-{cid}-title");
            let r = call.ask(mpb::SendCommitteeNoticeRequest {
                group_id: g,
                committee_id: cid,
                title: form.one("title"),
                body: form.one("body"),
            });
            call.membership
                .send_committee_notice(r)
                .await
                .map(|_| "notice")
        }
        "practice" => {
            // Something that is not a number goes as -1, which the service
            // refuses naming the field.
            let mut number = |name: &'static str| -> i32 {
                asked.typed.insert(name.to_string(), form.one(name));
                let (service, subject) = match name {
                    "organiser_term_months" => {
                        ("practice.organiser_term_months", "An organiser's term")
                    }
                    "chair_term_months" => ("practice.chair_term_months", "The chair's term"),
                    _ => ("practice.agenda_cutoff_hours", "The agenda's cut-off"),
                };
                asked.fields.push((service, name.to_string(), subject));
                let typed = form.one(name);
                let typed = typed.trim();
                if typed.is_empty() {
                    return 0;
                }
                typed.parse().unwrap_or(-1)
            };
            let practice = mpb::GroupPractice {
                organiser_term_months: number("organiser_term_months"),
                chair_term_months: number("chair_term_months"),
                agenda_cutoff_hours: number("agenda_cutoff_hours"),
                attendance: form.one("attendance") == "1",
            };
            asked
                .typed
                .insert("attendance".into(), form.one("attendance"));
            let r = call.ask(mpb::UpdateGroupPracticeRequest {
                group_id: g,
                practice: Some(practice),
            });
            call.membership
                .update_group_practice(r)
                .await
                .map(|_| "practice")
        }
        _ => return (asked, Ok(None)),
    };
    (asked, result.map(Some))
}
