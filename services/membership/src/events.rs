//! What membership emits, through the outbox, on restricted MEMBERSHIP subjects,
//! and what it consumes from LISTINGS. Events carry ids (and an organiser's note
//! to the person) only: consumers look up what else they need.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use selfhelp_platform::bus::{IncomingEvent, MEMBERSHIP};
use selfhelp_platform::group_view;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::time::{now_ms, to_timestamp};
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::v1 as ev;

use crate::domain::membership::State;
use crate::error::MembershipError;
use crate::store::{group_settings, membership};
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

/// Records `member.joined` for `m` in `conn`'s transaction.
pub async fn record_joined<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    m: &membership::Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::MemberJoined {
        membership_id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        version: m.version,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(conn, MEMBERSHIP, MEMBER_JOINED, &m.id, &msg, Some(trace))
        .await
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
    change: Change,
    m: &membership::Model,
    previous: Option<State>,
    note: Note<'_>,
    trace: Option<&TraceParent>,
) -> Result<String, DbErr> {
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
    outbox
        .enqueue(conn, MEMBERSHIP, change.name(), &m.id, &msg, trace)
        .await
}

/// Records `member.role_changed`: the role `m` now has, or `NONE` when it no
/// longer belongs to the group. Listings learns co-organisers from it.
pub async fn record_role_changed<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    m: &membership::Model,
    trace: Option<&TraceParent>,
) -> Result<String, DbErr> {
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
    outbox
        .enqueue(conn, MEMBERSHIP, MEMBER_ROLE_CHANGED, &m.id, &msg, trace)
        .await
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

/// Consumes listings' group events: keeps the shared `group_view` read model, ends
/// the memberships of an archived group, and fills places when capacity grows.
pub struct ListingsGroups {
    pub outbox: Outbox,
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
        // The events this causes continue the listings change's trace.
        let trace = TraceParent::continue_or_start(event.traceparent.as_deref()).child();
        let ctx = Ctx {
            outbox: &self.outbox,
            trace: Some(&trace),
            now: now_ms(),
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
            Err(MembershipError::Db(e)) => Err(HandlerError::Db(e)),
            Err(other) => Err(HandlerError::Poison(other.to_string())),
        }
    }
}
