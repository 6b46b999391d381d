//! What membership emits, through the outbox, on restricted MEMBERSHIP subjects,
//! and what it consumes from LISTINGS. Events carry ids (and an organiser's note
//! to the person) only: consumers look up what else they need.

use chrono::{NaiveDate, NaiveTime};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use selfhelp_core::time::{Clock, now_ms, to_timestamp};
use selfhelp_group_view as group_view;
use selfhelp_platform::bus::IncomingEvent;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::outbox::{Outbox, QueuedEvent};
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::{types, v1 as ev};
use selfhelp_proto::streams::MEMBERSHIP;
use selfhelp_schedule::{Exception, Schedule};

use crate::domain::membership::State;
use crate::error::ServiceError;
use crate::store::{group_settings, meetings, membership};
use crate::workflow::{self, Ctx};

pub const MEMBER_JOINED: &str = "member.joined";
pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";

/// A membership state change other than a plain join; the event name is its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Requested,
    Approved,
    Declined,
    Invited,
    Waitlisted,
    Promoted,
    Left,
    Removed,
    Banned,
    /// Ended by something other than the person or an organiser: the group was
    /// archived, or consent withdrawn.
    Ended,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Requested => "member.requested",
            Change::Approved => "member.approved",
            Change::Declined => "member.declined",
            Change::Invited => "member.invited",
            Change::Waitlisted => "member.waitlisted",
            Change::Promoted => "member.promoted",
            Change::Left => "member.left",
            Change::Removed => "member.removed",
            Change::Banned => "member.banned",
            Change::Ended => "member.ended",
        }
    }
}

/// `member.joined` for `m`.
fn joined(outbox: &Outbox, m: &membership::Model, trace: &TraceParent) -> QueuedEvent {
    let msg = ev::MemberJoined {
        membership_id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        version: m.version,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox.event(MEMBERSHIP, MEMBER_JOINED, &m.id, &msg, Some(trace))
}

/// The events of a join that took effect: `m` is in its new state, `previous`
/// its state before. Active: `member.joined`, and the role when it is more
/// than member (a group's creator); otherwise the request or waitlist place.
pub fn of_join(
    outbox: &Outbox,
    m: &membership::Model,
    previous: Option<State>,
    trace: &TraceParent,
) -> Vec<QueuedEvent> {
    match m.state() {
        State::Active if m.role() == crate::domain::membership::Role::Member => {
            vec![joined(outbox, m, trace)]
        }
        State::Active => vec![
            joined(outbox, m, trace),
            role_changed(outbox, m, Some(trace)),
        ],
        State::Requested => vec![change(
            outbox,
            Change::Requested,
            m,
            previous,
            Note::default(),
            Some(trace),
        )],
        State::Waitlisted => vec![change(
            outbox,
            Change::Waitlisted,
            m,
            previous,
            Note::default(),
            Some(trace),
        )],
        other => unreachable!("a join leads to active, requested or waitlisted, not {other:?}"),
    }
}

async fn write<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    event: QueuedEvent,
) -> Result<String, DbErr> {
    let id = event.id.clone();
    outbox.enqueue_all(conn, vec![event]).await?;
    Ok(id)
}

/// What a state change says beyond the membership itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Note<'a> {
    pub reason: &'a str,
    pub message: &'a str,
}

/// Records `change` of `m` (now in its new state) from `previous`.
pub async fn record_change<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    what: Change,
    m: &membership::Model,
    previous: Option<State>,
    note: Note<'_>,
    trace: Option<&TraceParent>,
) -> Result<String, DbErr> {
    let event = change(outbox, what, m, previous, note, trace);
    write(conn, outbox, event).await
}

fn change(
    outbox: &Outbox,
    change: Change,
    m: &membership::Model,
    previous: Option<State>,
    note: Note<'_>,
    trace: Option<&TraceParent>,
) -> QueuedEvent {
    let msg = ev::MembershipChanged {
        membership_id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        state: m.state.clone(),
        previous_state: previous.map(|s| s.as_str().to_string()).unwrap_or_default(),
        reason: note.reason.to_string(),
        message: note.message.to_string(),
        version: m.version,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox.event(MEMBERSHIP, change.name(), &m.id, &msg, trace)
}

/// Records `member.role_changed`: the role `m` now has, or `NONE` when it no
/// longer belongs to the group. Listings learns co-organisers from it.
pub async fn record_role_changed<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    m: &membership::Model,
    trace: Option<&TraceParent>,
) -> Result<String, DbErr> {
    write(conn, outbox, role_changed(outbox, m, trace)).await
}

fn role_changed(
    outbox: &Outbox,
    m: &membership::Model,
    trace: Option<&TraceParent>,
) -> QueuedEvent {
    let role = if m.state() == State::Active {
        m.role.clone()
    } else {
        "NONE".to_string()
    };
    let msg = ev::MemberRoleChanged {
        membership_id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        role,
        version: m.version,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox.event(MEMBERSHIP, MEMBER_ROLE_CHANGED, &m.id, &msg, trace)
}

/// Records `follow.started` / `follow.stopped`.
pub async fn record_follow<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    group_id: &str,
    person_id: &str,
    following: bool,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::FollowChanged {
        group_id: group_id.to_string(),
        person_id: person_id.to_string(),
        following,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    let name = if following {
        "follow.started"
    } else {
        "follow.stopped"
    };
    // Keyed by group and person, so the same person's follow events stay in order.
    let key = format!("{group_id}:{person_id}");
    outbox
        .enqueue(conn, MEMBERSHIP, name, &key, &msg, Some(trace))
        .await
}

pub const GROUP_ANNOUNCED: &str = "group.announced";

/// Records `group.announced` for the message `id`.
pub async fn record_announced<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    id: &str,
    announce: &crate::workflow::Announce<'_>,
    now: i64,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::GroupAnnounced {
        announcement_id: id.to_string(),
        group_id: announce.group_id.to_string(),
        title: announce.title.to_string(),
        body: announce.body.to_string(),
        include_followers: announce.include_followers,
        occurred_at: Some(to_timestamp(now)),
    };
    outbox
        .enqueue(
            conn,
            MEMBERSHIP,
            GROUP_ANNOUNCED,
            announce.group_id,
            &msg,
            Some(trace),
        )
        .await
}

pub const GROUP_NOTICE: &str = "group.notice";

/// Records `group.notice`: `notice` goes to its recipients (none: nothing is
/// recorded). Keyed by group, so one group's notices stay in order.
pub async fn record_notice<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    notice: ev::GroupNotice,
    trace: Option<&TraceParent>,
) -> Result<(), DbErr> {
    if notice.recipient_ids.is_empty() {
        return Ok(());
    }
    let group_id = notice.group_id.clone();
    outbox
        .enqueue(conn, MEMBERSHIP, GROUP_NOTICE, &group_id, &notice, trace)
        .await?;
    Ok(())
}

pub const ROTA_DUTY_DUE: &str = "rota.duty_due";

/// Records `rota.duty_due`: `person` is on `duty` at the meeting `key`.
pub async fn record_duty_due<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    group_id: &str,
    duty: &str,
    person: &str,
    meeting: &crate::domain::rota::Meeting,
) -> Result<String, DbErr> {
    let msg = ev::RotaDutyDue {
        group_id: group_id.to_string(),
        duty: duty.to_string(),
        person_id: person.to_string(),
        meeting_key: meeting.key.clone(),
        starts_at: Some(to_timestamp(meeting.starts_at.timestamp_millis())),
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(conn, MEMBERSHIP, ROTA_DUTY_DUE, group_id, &msg, None)
        .await
}

pub const ROTA_TURNS_CHANGED: &str = "rota.turns_changed";

/// Records `rota.turns_changed`: the turns of `duty` in `group_id` that
/// `changed_by`'s skip or swap hands from one person to another.
pub async fn record_turns_changed<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    group_id: &str,
    duty: &str,
    changed_by: &str,
    handovers: &[crate::domain::rota::Handover],
) -> Result<String, DbErr> {
    let msg = ev::RotaTurnsChanged {
        group_id: group_id.to_string(),
        duty: duty.to_string(),
        changed_by: changed_by.to_string(),
        handovers: handovers
            .iter()
            .map(|h| ev::TurnHandover {
                meeting_key: h.meeting.key.clone(),
                starts_at: Some(to_timestamp(h.meeting.starts_at.timestamp_millis())),
                from_person_id: h.from.clone().unwrap_or_default(),
                to_person_id: h.to.clone().unwrap_or_default(),
            })
            .collect(),
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(conn, MEMBERSHIP, ROTA_TURNS_CHANGED, group_id, &msg, None)
        .await
}

pub const ROTA_SWAP_REQUEST: &str = "rota.swap_request";

/// Records `rota.swap_request`: `ask` was made, declined or withdrawn (`step`),
/// so the other person is told. `starts` are the two meetings' start times,
/// when they are still to come.
pub async fn record_swap_request<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    ask: &crate::store::rota::swap::Model,
    starts: [Option<i64>; 2],
    step: ev::SwapStep,
) -> Result<String, DbErr> {
    let msg = ev::RotaSwapRequest {
        swap_id: ask.id.clone(),
        group_id: ask.group_id.clone(),
        duty: ask.duty.clone(),
        asked_by: ask.asked_by.clone(),
        asked_of: ask.asked_of.clone(),
        meeting_key: ask.meeting_key.clone(),
        starts_at: starts[0].map(to_timestamp),
        other_meeting_key: ask.other_meeting_key.clone(),
        other_starts_at: starts[1].map(to_timestamp),
        step: step as i32,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(
            conn,
            MEMBERSHIP,
            ROTA_SWAP_REQUEST,
            &ask.group_id,
            &msg,
            None,
        )
        .await
}

/// Consumes listings' group events: keeps the shared `group_view` read model and
/// the meetings rotas follow, ends the memberships of an archived group, and fills
/// places when capacity grows.
pub struct ListingsGroups {
    pub outbox: Outbox,
    /// Decides when places freed by a change are given out.
    pub clock: Clock,
    /// The region's time zone, for meeting times that come as instants.
    pub timezone: chrono_tz::Tz,
}

#[async_trait::async_trait]
impl EventHandler for ListingsGroups {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        let Some(snapshot) = selfhelp_proto::events::group_snapshot(&event.ce_type, &event.payload)
            .map_err(HandlerError::Poison)?
        else {
            return Ok(());
        };
        let before = group_view::find(txn, &snapshot.group_id).await?;
        if !group_view::apply(txn, &snapshot, now_ms()).await? {
            return Ok(()); // an old or repeated event: already acted on
        }
        self.follow_meetings(txn, event, &snapshot).await?;
        // The events this causes continue the listings change's trace.
        let trace = TraceParent::of_event(event.traceparent.as_deref());
        let ctx = Ctx {
            outbox: &self.outbox,
            trace: Some(&trace),
            now: self.clock.now_ms(),
        };
        let result = match snapshot.status.as_str() {
            "ARCHIVED" => workflow::end_all(txn, ctx, &snapshot.group_id, "GROUP_ARCHIVED")
                .await
                .map(|_| ()),
            "PUBLISHED" if before.is_some_and(|b| b.capacity != snapshot.capacity) => {
                group_settings::lock(txn, &snapshot.group_id, ctx.now).await?;
                workflow::fill_places(txn, ctx, &snapshot.group_id, snapshot.capacity)
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(ServiceError::Db(e)) => Err(HandlerError::Db(e)),
            Err(other) => Err(HandlerError::Poison(other.to_string())),
        }
    }
}

impl ListingsGroups {
    /// Keeps membership's copy of the group's meetings in step with listings.
    async fn follow_meetings(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
        group: &ev::GroupSnapshot,
    ) -> Result<(), HandlerError> {
        let poison = |e: String| HandlerError::Poison(format!("{}: {e}", event.ce_type));
        let decode_err = |e: prost::DecodeError| poison(e.to_string());
        let tz = meetings::load(txn, &group.group_id)
            .await?
            .map(|m| m.tz)
            .unwrap_or(self.timezone);
        let (id, version) = (group.group_id.as_str(), group.version);
        match event.ce_type.as_str() {
            types::SCHEDULE_CHANGED => {
                let e: ev::ScheduleChanged = event.decode().map_err(decode_err)?;
                let schedule = if e.rrule.is_empty() {
                    None
                } else {
                    Some(schedule_of(&e).map_err(poison)?)
                };
                let zone = if e.timezone.is_empty() {
                    self.timezone.name().to_string()
                } else {
                    e.timezone.clone()
                };
                meetings::set_schedule(txn, id, &zone, schedule.as_ref(), version).await?;
            }
            types::OCCURRENCE_CANCELLED => {
                let e: ev::OccurrenceCancelled = event.decode().map_err(decode_err)?;
                let date = parse_date(&e.date).map_err(poison)?;
                let exception = Exception::Cancelled { date, note: e.note };
                meetings::put_exception(txn, id, tz.name(), &e.date, &exception, version).await?;
            }
            types::OCCURRENCE_MOVED => {
                let e: ev::OccurrenceMoved = event.decode().map_err(decode_err)?;
                let date = parse_date(&e.original_date).map_err(poison)?;
                let (start, end) =
                    local_times(tz, e.new_starts_at, e.new_ends_at).map_err(poison)?;
                let exception = Exception::Moved {
                    date,
                    new_date: start.date_naive(),
                    start: start.time(),
                    end: end.time(),
                    venue_index: None,
                    note: e.note,
                };
                let key = date.to_string();
                meetings::put_exception(txn, id, tz.name(), &key, &exception, version).await?;
            }
            types::OCCURRENCE_ADDED => {
                let e: ev::OccurrenceAdded = event.decode().map_err(decode_err)?;
                let (start, end) = local_times(tz, e.starts_at, e.ends_at).map_err(poison)?;
                let exception = Exception::OneOff {
                    date: start.date_naive(),
                    start: start.time(),
                    end: end.time(),
                    venue_index: None,
                    note: e.note,
                };
                let key = start.format("%Y-%m-%dT%H:%M").to_string();
                meetings::put_exception(txn, id, tz.name(), &key, &exception, version).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("date {s:?}"))
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("time {s:?}"))
}

/// The schedule a `schedule.changed` event describes.
fn schedule_of(e: &ev::ScheduleChanged) -> Result<Schedule, String> {
    let until = if e.valid_until.is_empty() {
        None
    } else {
        Some(parse_date(&e.valid_until)?)
    };
    Schedule::from_rrule(
        &e.rrule,
        parse_date(&e.valid_from)?,
        until,
        parse_time(&e.start_time)?,
        parse_time(&e.end_time)?,
    )
}

/// Start and end instants as local date-times in `tz`.
fn local_times(
    tz: chrono_tz::Tz,
    start: Option<prost_types::Timestamp>,
    end: Option<prost_types::Timestamp>,
) -> Result<
    (
        chrono::DateTime<chrono_tz::Tz>,
        chrono::DateTime<chrono_tz::Tz>,
    ),
    String,
> {
    let local = |t: Option<prost_types::Timestamp>| {
        let t = t.ok_or("a meeting time is missing")?;
        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(|d| d.with_timezone(&tz))
            .ok_or_else(|| "a meeting time is out of range".to_string())
    };
    Ok((local(start)?, local(end)?))
}
