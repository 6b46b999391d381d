//! The group's own life, members only: how it shares its running (terms,
//! the agenda's cut-off, attendance), the open forum (agendas, notes, who
//! came) and shared knowledge.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, trace_of, uuid_field};
use crate::domain::membership::{GroupFacts, Role, State};
use crate::domain::rota::Meeting;
use crate::error::{MEMBERSHIP_NOT_FOUND, ServiceError};
use crate::store::{forum, group_settings, membership};

/// Past meetings shown, at most, and how far back.
const PAST_SHOWN: usize = 6;
const PAST_DAYS: i64 = 90;
/// Coming meetings shown (and open for agenda items).
const COMING_SHOWN: usize = 3;
const MAX_AGENDA_TEXT: usize = 500;
const MAX_AGENDA_ITEMS: u64 = 50;
const MAX_NOTES: usize = 10_000;
const MAX_KNOWLEDGE: u64 = 500;
const MAX_TERM_MONTHS: i32 = 120;
const MAX_CUTOFF_HOURS: i32 = 14 * 24;
/// The duty whose holder writes a meeting's notes.
pub const NOTES_DUTY: &str = "notes";
const A_MEMBER: &str = "A member";
const FORMER_MEMBER: &str = "A former member";
const AN_ORGANISER: &str = "An organiser";

pub(super) fn practice_to_wire(s: &group_settings::Model) -> pb::GroupPractice {
    pb::GroupPractice {
        organiser_term_months: s.organiser_term_months,
        chair_term_months: s.chair_term_months,
        agenda_cutoff_hours: s.agenda_cutoff_hours,
        attendance: s.attendance,
    }
}

/// The caller in the group, from here on: who they are and whether they run it.
pub(super) struct Member {
    pub(super) facts: GroupFacts,
    pub(super) person: String,
    pub(super) organiser: bool,
}

/// Display names of the group's people, by person id.
pub(super) struct Names {
    by_person: HashMap<String, String>,
    /// Organisers with no membership (a group's founder) have no name here.
    organisers: Vec<String>,
}

impl Names {
    pub(super) fn of(&self, person: &str) -> String {
        match self.by_person.get(person) {
            Some(n) if !n.is_empty() => n.clone(),
            Some(_) => A_MEMBER.into(),
            None if person.is_empty() => String::new(),
            None if self.organisers.iter().any(|o| o == person) => AN_ORGANISER.into(),
            None => FORMER_MEMBER.into(),
        }
    }
}

impl MembershipApi {
    /// The caller, when they are an active member (any role) of the group.
    pub(super) async fn forum_member<T>(
        &self,
        request: &Request<T>,
        caller: selfhelp_core::caller::Caller,
        group_id: &str,
    ) -> Result<Member, ServiceError> {
        let facts = self.known_group(request, group_id).await?;
        match self
            .role_in(&self.db, &facts, group_id, &caller.person_id)
            .await?
        {
            Some(role) => Ok(Member {
                facts,
                person: caller.person_id,
                organiser: role != Role::Member,
            }),
            None => Err(ServiceError::PermissionDenied(
                "only the group's members may see or add to this",
            )),
        }
    }

    /// The caller as a member of the group a request names (checked first),
    /// with its names.
    pub(super) async fn member_with_names<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
    ) -> Result<(Member, String, Names), ServiceError> {
        let caller = self.caller(request)?;
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", group_id);
        v.into_result()?;
        let me = self.forum_member(request, caller, &group_id).await?;
        let names = self.names(&me.facts, &group_id).await?;
        Ok((me, group_id, names))
    }

    /// The caller as a member of the group a request names, with one object
    /// of it (`id_field`); both ids are checked first.
    pub(super) async fn member_with_id<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
        id_field: &str,
        id: &str,
    ) -> Result<(Member, String, String), ServiceError> {
        let caller = self.caller(request)?;
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", group_id);
        let id = uuid_field(&mut v, id_field, id);
        v.into_result()?;
        let me = self.forum_member(request, caller, &group_id).await?;
        Ok((me, group_id, id))
    }

    pub(super) async fn names(
        &self,
        facts: &GroupFacts,
        group_id: &str,
    ) -> Result<Names, ServiceError> {
        let all = membership::all_in_states(
            &self.db,
            group_id,
            &[State::Active, State::Left, State::Removed, State::Banned],
        )
        .await?;
        Ok(Names {
            by_person: all
                .into_iter()
                .map(|m| (m.person_id, m.display_name))
                .collect(),
            organisers: facts.organiser_ids.clone(),
        })
    }

    /// Everyone a notice of the group reaches (its active members and
    /// organisers) but `author`.
    pub(super) async fn people_of(
        &self,
        facts: &GroupFacts,
        group_id: &str,
        author: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let mut people: Vec<String> =
            membership::all_in_states(&self.db, group_id, &[State::Active])
                .await?
                .into_iter()
                .map(|m| m.person_id)
                .chain(facts.organiser_ids.iter().cloned())
                .filter(|p| p != author)
                .collect();
        people.sort();
        people.dedup();
        Ok(people)
    }

    /// The recent meetings (last 90 days, at most six) and the coming ones
    /// (three), oldest first.
    async fn forum_meetings(&self, group_id: &str) -> Result<Vec<Meeting>, ServiceError> {
        let Some(m) = crate::store::meetings::load(&self.db, group_id).await? else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let since = now - chrono::Duration::days(PAST_DAYS);
        let all = crate::domain::rota::meetings(
            m.schedule.as_ref(),
            &m.exceptions,
            m.tz,
            since,
            now,
            COMING_SHOWN,
        );
        let past = all.iter().filter(|m| m.starts_at <= now).count();
        Ok(all[past.saturating_sub(PAST_SHOWN)..].to_vec())
    }

    /// The forum's meeting with `key`, or INVALID_ARGUMENT naming `meeting_key`.
    async fn forum_meeting(&self, group_id: &str, key: &str) -> Result<Meeting, ServiceError> {
        self.forum_meetings(group_id)
            .await?
            .into_iter()
            .find(|m| m.key == key)
            .ok_or_else(|| {
                let mut v = Violations::new();
                v.add(
                    "meeting_key",
                    "is not one of the group's recent or coming meetings",
                );
                v.into()
            })
    }

    pub(super) async fn update_practice(
        &self,
        request: Request<pb::UpdateGroupPracticeRequest>,
    ) -> Result<pb::GroupPractice, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        if req.practice.is_none() {
            v.add("practice", "is required");
        }
        let p = req.practice.unwrap_or_default();
        for (field, months) in [
            ("practice.organiser_term_months", p.organiser_term_months),
            ("practice.chair_term_months", p.chair_term_months),
        ] {
            if !(0..=MAX_TERM_MONTHS).contains(&months) {
                v.add(field, format!("must be 0 (no term) to {MAX_TERM_MONTHS}"));
            }
        }
        if !(0..=MAX_CUTOFF_HOURS).contains(&p.agenda_cutoff_hours) {
            v.add(
                "practice.agenda_cutoff_hours",
                format!("must be 0 to {MAX_CUTOFF_HOURS} hours"),
            );
        }
        v.into_result()?;
        self.managing(&request, &group_id, &caller.person_id)
            .await?;
        let now = self.clock.now_ms();
        let mut held = group_settings::get(&self.db, &group_id, now).await?;
        held.organiser_term_months = p.organiser_term_months;
        held.chair_term_months = p.chair_term_months;
        held.agenda_cutoff_hours = p.agenda_cutoff_hours;
        held.attendance = p.attendance;
        let saved = group_settings::save_practice(&self.db, &group_id, &held, now).await?;
        Ok(practice_to_wire(&saved))
    }

    pub(super) async fn forum(
        &self,
        request: Request<pb::GetForumRequest>,
    ) -> Result<pb::Forum, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("meeting_key", req.meeting_key.trim(), false, 40);
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let mut meetings = self.forum_meetings(&group_id).await?;
        let key = req.meeting_key.trim();
        if !key.is_empty() {
            meetings.retain(|m| m.key == key);
            if meetings.is_empty() {
                let mut v = Violations::new();
                v.add(
                    "meeting_key",
                    "is not one of the group's recent or coming meetings",
                );
                return Err(v.into());
            }
        }
        let settings = group_settings::get(&self.db, &group_id, 0).await?;
        let keys: Vec<String> = meetings.iter().map(|m| m.key.clone()).collect();
        let names = self.names(&me.facts, &group_id).await?;
        let agenda = forum::agenda_of(&self.db, &group_id, &keys).await?;
        let notes = forum::notes_of(&self.db, &group_id, &keys).await?;
        let came = if settings.attendance {
            forum::attendance_of(&self.db, &group_id, &keys).await?
        } else {
            Vec::new()
        };
        // Organisers tick others in by their memberships.
        let membership_of: HashMap<String, String> = if me.organiser && settings.attendance {
            membership::all_in_states(&self.db, &group_id, &[State::Active])
                .await?
                .into_iter()
                .map(|m| (m.person_id, m.id))
                .collect()
        } else {
            HashMap::new()
        };
        let now = self.clock.now();
        let mut out = Vec::with_capacity(meetings.len());
        for m in meetings {
            let closes = agenda_closes(&m, &settings);
            let taker = self.notes_taker(&group_id, &m).await?;
            let here: Vec<&forum::attendance::Model> =
                came.iter().filter(|a| a.meeting_key == m.key).collect();
            out.push(pb::ForumMeeting {
                meeting_key: m.key.clone(),
                starts_at: Some(to_timestamp(m.starts_at.timestamp_millis())),
                agenda_closes_at: Some(to_timestamp(closes.timestamp_millis())),
                agenda_open: now < closes,
                agenda: agenda
                    .iter()
                    .filter(|a| a.meeting_key == m.key)
                    .map(|a| agenda_to_wire(a, &names, &me.person))
                    .collect(),
                notes: notes
                    .iter()
                    .find(|n| n.meeting_key == m.key)
                    .map(|n| pb::MeetingNotes {
                        meeting_key: n.meeting_key.clone(),
                        text: n.text.clone(),
                        written_by: names.of(&n.author_id),
                        written_at: Some(to_timestamp(n.written_at_ms)),
                    }),
                notes_taker: taker.as_deref().map(|p| names.of(p)).unwrap_or_default(),
                may_write_notes: m.starts_at <= now
                    && (me.organiser || taker.as_deref() == Some(me.person.as_str())),
                attended: here.len() as i32,
                i_came: here.iter().any(|a| a.person_id == me.person),
                came: if me.organiser {
                    here.iter().map(|a| names.of(&a.person_id)).collect()
                } else {
                    Vec::new()
                },
                came_membership_ids: here
                    .iter()
                    .filter_map(|a| membership_of.get(&a.person_id).cloned())
                    .collect(),
            });
        }
        Ok(pb::Forum {
            group_id,
            meetings: out,
            practice: Some(practice_to_wire(&settings)),
            organiser: me.organiser,
        })
    }

    /// Who holds (or held) the notes duty at `m`, if the group has a notes rota.
    async fn notes_taker(
        &self,
        group_id: &str,
        m: &Meeting,
    ) -> Result<Option<String>, ServiceError> {
        Ok(
            crate::workflow::duty_holder(&self.db, group_id, NOTES_DUTY, m, self.clock.now())
                .await?,
        )
    }

    pub(super) async fn add_agenda_item(
        &self,
        request: Request<pb::AddAgendaItemRequest>,
    ) -> Result<pb::AgendaItem, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("meeting_key", req.meeting_key.trim(), true, 40);
        v.text("text", req.text.trim(), true, MAX_AGENDA_TEXT);
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let m = self
            .forum_meeting(&group_id, req.meeting_key.trim())
            .await?;
        let settings = group_settings::get(&self.db, &group_id, 0).await?;
        let closes = agenda_closes(&m, &settings);
        let now = self.clock.now();
        if now >= closes {
            return Err(ServiceError::FailedPrecondition(format!(
                "the agenda for this meeting closed at {} ({} hours before it starts)",
                closes.format("%Y-%m-%d %H:%M UTC"),
                settings.agenda_cutoff_hours
            )));
        }
        if forum::count_agenda(&self.db, &group_id, &m.key).await? >= MAX_AGENDA_ITEMS {
            return Err(ServiceError::FailedPrecondition(format!(
                "this meeting's agenda has {MAX_AGENDA_ITEMS} items already"
            )));
        }
        let row = forum::agenda::Model {
            id: uuid::Uuid::new_v4().to_string(),
            group_id: group_id.clone(),
            meeting_key: m.key.clone(),
            author_id: me.person.clone(),
            text: req.text.trim().to_string(),
            created_at_ms: now.timestamp_millis(),
        };
        let recipients = self.people_of(&me.facts, &group_id, &me.person).await?;
        let notice = ev::GroupNotice {
            notice_id: row.id.clone(),
            group_id: group_id.clone(),
            kind: ev::NoticeKind::AgendaItem as i32,
            recipient_ids: recipients,
            meeting_key: m.key.clone(),
            title: "A new item for the agenda".into(),
            text: row.text.clone(),
            occurred_at: Some(to_timestamp(row.created_at_ms)),
            ..Default::default()
        };
        self.workflow
            .add_agenda_item(row.clone(), notice, &trace_of(&request))
            .await?;
        let names = self.names(&me.facts, &group_id).await?;
        Ok(agenda_to_wire(&row, &names, &me.person))
    }

    pub(super) async fn remove_agenda_item(
        &self,
        request: Request<pb::RemoveAgendaItemRequest>,
    ) -> Result<pb::RemoveAgendaItemResponse, ServiceError> {
        let req = request.get_ref();
        let (me, group_id, item_id) = self
            .member_with_id(&request, &req.group_id, "item_id", &req.item_id)
            .await?;
        let item = forum::find_agenda(&self.db, &item_id)
            .await?
            .filter(|i| i.group_id == group_id)
            .ok_or(ServiceError::NotFound("no agenda item with that id"))?;
        if !me.organiser {
            if item.author_id != me.person {
                return Err(ServiceError::PermissionDenied(
                    "only its author or an organiser may take an item off",
                ));
            }
            // A meeting no longer coming (cancelled, moved, past) is closed.
            let coming = self
                .forum_meetings(&group_id)
                .await?
                .into_iter()
                .find(|m| m.key == item.meeting_key);
            let settings = group_settings::get(&self.db, &group_id, 0).await?;
            if coming.is_none_or(|m| self.clock.now() >= agenda_closes(&m, &settings)) {
                return Err(ServiceError::FailedPrecondition(
                    "the agenda has closed: ask an organiser to take it off".into(),
                ));
            }
        }
        forum::remove_agenda(&self.db, &item.id).await?;
        Ok(pb::RemoveAgendaItemResponse {})
    }

    pub(super) async fn write_notes(
        &self,
        request: Request<pb::WriteMeetingNotesRequest>,
    ) -> Result<pb::MeetingNotes, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("meeting_key", req.meeting_key.trim(), true, 40);
        v.text("text", req.text.trim(), true, MAX_NOTES);
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let m = self
            .forum_meeting(&group_id, req.meeting_key.trim())
            .await?;
        let now = self.clock.now();
        if m.starts_at > now {
            return Err(ServiceError::FailedPrecondition(
                "notes are written once the meeting has begun".into(),
            ));
        }
        let taker = self.notes_taker(&group_id, &m).await?;
        if !me.organiser && taker.as_deref() != Some(me.person.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "the notes are written by whoever held the notes duty, or an organiser",
            ));
        }
        let row = forum::notes::Model {
            group_id: group_id.clone(),
            meeting_key: m.key.clone(),
            author_id: me.person.clone(),
            text: req.text.trim().to_string(),
            written_at_ms: now.timestamp_millis(),
        };
        let recipients = self.people_of(&me.facts, &group_id, &me.person).await?;
        let notice = ev::GroupNotice {
            notice_id: uuid::Uuid::new_v4().to_string(),
            group_id: group_id.clone(),
            kind: ev::NoticeKind::MeetingNotes as i32,
            recipient_ids: recipients,
            meeting_key: m.key.clone(),
            title: "Notes of a meeting".into(),
            text: row.text.clone(),
            occurred_at: Some(to_timestamp(row.written_at_ms)),
            ..Default::default()
        };
        self.workflow
            .write_notes(row.clone(), notice, &trace_of(&request))
            .await?;
        let names = self.names(&me.facts, &group_id).await?;
        Ok(pb::MeetingNotes {
            meeting_key: row.meeting_key,
            text: row.text,
            written_by: names.of(&row.author_id),
            written_at: Some(to_timestamp(row.written_at_ms)),
        })
    }

    pub(super) async fn mark_attendance(
        &self,
        request: Request<pb::MarkAttendanceRequest>,
    ) -> Result<pb::MarkAttendanceResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("meeting_key", req.meeting_key.trim(), true, 40);
        let other = if req.membership_id.trim().is_empty() {
            None
        } else {
            Some(uuid_field(&mut v, "membership_id", &req.membership_id))
        };
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let settings = group_settings::get(&self.db, &group_id, 0).await?;
        if !settings.attendance {
            return Err(ServiceError::FailedPrecondition(
                "this group does not keep attendance".into(),
            ));
        }
        let person = match other {
            None => me.person.clone(),
            Some(_) if !me.organiser => {
                return Err(ServiceError::PermissionDenied(
                    "members tick themselves in; organisers tick others",
                ));
            }
            Some(id) => {
                membership::find(&self.db, &id)
                    .await?
                    .filter(|m| m.group_id == group_id && m.state() == State::Active)
                    .ok_or(MEMBERSHIP_NOT_FOUND)?
                    .person_id
            }
        };
        let m = self
            .forum_meeting(&group_id, req.meeting_key.trim())
            .await?;
        let now = self.clock.now();
        if m.starts_at > now {
            return Err(ServiceError::FailedPrecondition(
                "attendance is ticked once the meeting has begun".into(),
            ));
        }
        let attended = forum::mark(
            &self.db,
            forum::attendance::Model {
                group_id,
                meeting_key: m.key,
                person_id: person,
                starts_at_ms: m.starts_at.timestamp_millis(),
                marked_at_ms: now.timestamp_millis(),
            },
            req.came,
        )
        .await?;
        Ok(pb::MarkAttendanceResponse {
            attended: attended as i32,
        })
    }

    pub(super) async fn knowledge(
        &self,
        request: Request<pb::ListKnowledgeRequest>,
    ) -> Result<pb::ListKnowledgeResponse, ServiceError> {
        let (me, group_id, names) = self
            .member_with_names(&request, &request.get_ref().group_id)
            .await?;
        Ok(pb::ListKnowledgeResponse {
            items: forum::knowledge_of(&self.db, &group_id)
                .await?
                .iter()
                .map(|k| knowledge_to_wire(k, &names, &me.person))
                .collect(),
            organiser: me.organiser,
        })
    }

    pub(super) async fn add_knowledge(
        &self,
        request: Request<pb::AddKnowledgeRequest>,
    ) -> Result<pb::KnowledgeItem, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("title", req.title.trim(), true, 120);
        let url = req.url.trim();
        v.line("url", url, false, 500);
        if !url.is_empty()
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace))
        {
            v.add("url", "must be a web address starting https://");
        }
        v.text("text", req.text.trim(), false, 2_000);
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        if forum::count_knowledge(&self.db, &group_id).await? >= MAX_KNOWLEDGE {
            return Err(ServiceError::FailedPrecondition(format!(
                "the group keeps at most {MAX_KNOWLEDGE} notes and links: remove some first"
            )));
        }
        let row = forum::knowledge::Model {
            id: uuid::Uuid::new_v4().to_string(),
            group_id: group_id.clone(),
            author_id: me.person.clone(),
            title: req.title.trim().to_string(),
            url: url.to_string(),
            text: req.text.trim().to_string(),
            created_at_ms: self.clock.now_ms(),
        };
        forum::add_knowledge(&self.db, row.clone()).await?;
        let names = self.names(&me.facts, &group_id).await?;
        Ok(knowledge_to_wire(&row, &names, &me.person))
    }

    pub(super) async fn remove_knowledge(
        &self,
        request: Request<pb::RemoveKnowledgeRequest>,
    ) -> Result<pb::RemoveKnowledgeResponse, ServiceError> {
        let req = request.get_ref();
        let (me, group_id, item_id) = self
            .member_with_id(&request, &req.group_id, "item_id", &req.item_id)
            .await?;
        let item = forum::find_knowledge(&self.db, &item_id)
            .await?
            .filter(|i| i.group_id == group_id)
            .ok_or(ServiceError::NotFound("no note or link with that id"))?;
        if !me.organiser && item.author_id != me.person {
            return Err(ServiceError::PermissionDenied(
                "only its author or an organiser may remove it",
            ));
        }
        forum::remove_knowledge(&self.db, &item.id).await?;
        Ok(pb::RemoveKnowledgeResponse {})
    }
}

/// When agenda items for `m` close.
fn agenda_closes(m: &Meeting, settings: &group_settings::Model) -> DateTime<Utc> {
    m.starts_at - chrono::Duration::hours(i64::from(settings.agenda_cutoff_hours))
}

fn agenda_to_wire(a: &forum::agenda::Model, names: &Names, me: &str) -> pb::AgendaItem {
    pb::AgendaItem {
        id: a.id.clone(),
        meeting_key: a.meeting_key.clone(),
        text: a.text.clone(),
        added_by: names.of(&a.author_id),
        mine: a.author_id == me,
        added_at: Some(to_timestamp(a.created_at_ms)),
    }
}

fn knowledge_to_wire(k: &forum::knowledge::Model, names: &Names, me: &str) -> pb::KnowledgeItem {
    pb::KnowledgeItem {
        id: k.id.clone(),
        title: k.title.clone(),
        url: k.url.clone(),
        text: k.text.clone(),
        added_by: names.of(&k.author_id),
        mine: k.author_id == me,
        added_at: Some(to_timestamp(k.created_at_ms)),
    }
}
