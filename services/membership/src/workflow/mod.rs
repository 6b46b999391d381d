//! The application layer: every change membership makes, each in one
//! transaction with its events written to the outbox in it (then the relay is
//! woken). The gRPC layer validates, checks who may ask, calls one of these and
//! maps the answer back to the wire; the event handlers use the same pieces
//! (`end`, `fill_places`, `end_all`, `leave_rotas`) inside their own
//! transactions, so a place freed either way is filled the same way.
//!
//! - [`Workflow`]'s methods, by area: `organising` (decide a request, invite,
//!   remove, give roles, the group's settings), `personal` (how a person shows
//!   in a group, following), `leaving`, `rota` (set a rota, record a skip or a
//!   swap), `erasure`;
//! - [`join_writer`]: joins, written together when they arrive together.

mod erasure;
mod group_life;
pub mod join_writer;
mod leaving;
mod organising;
mod personal;
mod rota_changes;

pub use organising::{Announce, Invite};

use sea_orm::DatabaseConnection;
use sea_orm::DatabaseTransaction;
use selfhelp_core::time::Clock;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::trace::TraceParent;

use crate::domain::membership::{Role, State, check_transition};
use crate::domain::rota as rota_rules;
use crate::error::ServiceError;
use crate::events::{self, Change, Note};
use crate::store::{group_settings, meetings, membership, rota, sharing};

/// Where the changes are written, and the clock that dates them.
#[derive(Clone)]
pub struct Workflow {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
}

impl Workflow {
    /// What a change made now under `trace` needs besides its transaction.
    fn ctx<'a>(&'a self, trace: &'a TraceParent, now: i64) -> Ctx<'a> {
        Ctx {
            outbox: &self.outbox,
            trace: Some(trace),
            now,
        }
    }
}

/// What every change needs besides the transaction.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub outbox: &'a Outbox,
    pub trace: Option<&'a TraceParent>,
    pub now: i64,
}

/// Moves `m` out of the group (`to` is LEFT, DECLINED, REMOVED or BANNED) with its
/// event, tells listings when someone with a role goes, and gives a freed place
/// to the next person waiting. The group must be locked by the caller.
pub async fn end(
    txn: &DatabaseTransaction,
    ctx: Ctx<'_>,
    m: membership::Model,
    to: State,
    change: Change,
    note: Note<'_>,
    capacity: i32,
) -> Result<membership::Model, ServiceError> {
    let from = m.state();
    check_transition(from, to).map_err(ServiceError::FailedPrecondition)?;
    let had_role = from == State::Active && m.role() != Role::Member;
    let ended = membership::move_to(txn, m, to, ctx.now).await?;
    events::record_change(txn, ctx.outbox, change, &ended, Some(from), note, ctx.trace).await?;
    if had_role {
        events::record_role_changed(txn, ctx.outbox, &ended, ctx.trace).await?;
    }
    if from == State::Active {
        leave_rotas(txn, &ended.person_id, Some(&ended.group_id), ctx.now).await?;
        crate::store::committee::leave(txn, &ended.person_id, Some(&ended.group_id)).await?;
        fill_places(txn, ctx, &ended.group_id, capacity).await?;
    }
    Ok(ended)
}

/// Takes `person` off the rotas of `group` (of every group when `None`). Each
/// rota carries on from where it stood: the others keep their places in the
/// rotation, and a rota left without volunteers ends.
pub async fn leave_rotas(
    txn: &DatabaseTransaction,
    person: &str,
    group: Option<&str>,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    let now_at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_else(chrono::Utc::now);
    rota::forget_swaps(txn, person, group).await?;
    for r in rota::containing(txn, person).await? {
        if group.is_some_and(|g| g != r.group_id) {
            continue;
        }
        // Answers to swaps wait while the rota starts afresh; the turns so
        // far are remembered first.
        selfhelp_platform::db::take_turns(txn, &format!("rota:{}:{}", r.group_id, r.duty)).await?;
        // Read again under the lock: a rota set meanwhile is the one to carry
        // on from.
        let Some(r) = rota::find(txn, &r.group_id, &r.duty).await? else {
            continue;
        };
        if !r.volunteers().iter().any(|v| v == person) {
            continue;
        }
        remember_turns(txn, &r, now_at).await?;
        let order = match meetings::load(txn, &r.group_id).await? {
            Some(m) => {
                let since =
                    chrono::DateTime::from_timestamp_millis(r.starts_at_ms).unwrap_or(now_at);
                let past = rota_rules::meetings(
                    m.schedule.as_ref(),
                    &m.exceptions,
                    m.tz,
                    since,
                    now_at,
                    0,
                );
                let changes = rota::changes(txn, &r.group_id, &r.duty).await?;
                rota_rules::order_after(&r.volunteers(), &past, &changes)
            }
            None => r.volunteers(),
        };
        let kept: Vec<String> = order.into_iter().filter(|p| p != person).collect();
        if kept.is_empty() {
            rota::delete(txn, &r.group_id, &r.duty).await?;
        } else {
            rota::restart(txn, r, &kept, person, now).await?;
        }
    }
    Ok(())
}

/// The turns of `r` at the next `count` meetings after `now`, with the
/// recorded skips (and swaps, when `with_swaps`) applied, and `extra` after
/// them.
pub async fn coming_turns<C: sea_orm::ConnectionTrait>(
    conn: &C,
    r: &rota::Model,
    now: chrono::DateTime<chrono::Utc>,
    count: usize,
    with_swaps: bool,
    extra: Option<&rota_rules::TurnChange>,
) -> Result<Vec<rota_rules::Turn>, sea_orm::DbErr> {
    let Some(m) = meetings::load(conn, &r.group_id).await? else {
        return Ok(Vec::new()); // no meetings known yet
    };
    let since = chrono::DateTime::from_timestamp_millis(r.starts_at_ms).unwrap_or(now);
    let all = rota_rules::meetings(m.schedule.as_ref(), &m.exceptions, m.tz, since, now, count);
    let mut changes = rota::changes(conn, &r.group_id, &r.duty).await?;
    changes.extend(extra.cloned());
    if !with_swaps {
        changes.retain(|c| !matches!(c, rota_rules::TurnChange::Swap { .. }));
    }
    Ok(rota_rules::turns(&r.volunteers(), &all, &changes)
        .into_iter()
        .filter(|t| t.meeting.starts_at > now)
        .collect())
}

/// Remembers who held `r`'s duty at each of its meetings that have begun by
/// `now` and are not remembered yet. Turns are worked out from the rota, so
/// this runs before anything restarts it (and on every reminder round).
pub async fn remember_turns<C: sea_orm::ConnectionTrait>(
    conn: &C,
    r: &rota::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sea_orm::DbErr> {
    let Some(m) = meetings::load(conn, &r.group_id).await? else {
        return Ok(());
    };
    let since = chrono::DateTime::from_timestamp_millis(r.starts_at_ms).unwrap_or(now);
    let past = rota_rules::meetings(m.schedule.as_ref(), &m.exceptions, m.tz, since, now, 0);
    let known: std::collections::HashSet<String> =
        sharing::recorded_keys(conn, &r.group_id, &r.duty, r.starts_at_ms)
            .await?
            .into_iter()
            .collect();
    if past.iter().all(|p| known.contains(&p.key)) {
        return Ok(());
    }
    let changes = rota::changes(conn, &r.group_id, &r.duty).await?;
    for turn in rota_rules::turns(&r.volunteers(), &past, &changes) {
        if turn.meeting.starts_at > now || known.contains(&turn.meeting.key) {
            continue;
        }
        sharing::remember(
            conn,
            sharing::record::Model {
                group_id: r.group_id.clone(),
                meeting_key: turn.meeting.key,
                duty: r.duty.clone(),
                person_id: turn.person.unwrap_or_default(),
                starts_at_ms: turn.meeting.starts_at.timestamp_millis(),
                corrected: false,
                recorded_at_ms: now.timestamp_millis(),
            },
        )
        .await?;
    }
    Ok(())
}

/// Who holds (or held) `duty` at the meeting `m` of `group_id`: the
/// remembered record for a meeting that has begun (remembered now if it was
/// not yet), else the rota's coming turn. `None` for nobody or no such rota.
pub async fn duty_holder<C: sea_orm::ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    m: &rota_rules::Meeting,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(r) = rota::find(conn, group_id, duty).await? else {
        return sharing::held(conn, group_id, &m.key, duty).await;
    };
    if m.starts_at <= now {
        remember_turns(conn, &r, now).await?;
        return sharing::held(conn, group_id, &m.key, duty).await;
    }
    Ok(coming_turns(conn, &r, now, 12, true, None)
        .await?
        .into_iter()
        .find(|t| t.meeting.key == m.key)
        .and_then(|t| t.person))
}

/// Promotes waitlisted people, first come first served, while the group has free
/// places (`capacity` 0 means no limit). Returns those promoted.
pub async fn fill_places(
    txn: &DatabaseTransaction,
    ctx: Ctx<'_>,
    group_id: &str,
    capacity: i32,
) -> Result<Vec<membership::Model>, ServiceError> {
    let mut promoted = Vec::new();
    loop {
        if capacity > 0 && membership::count_active(txn, group_id).await? >= capacity as u64 {
            break;
        }
        let Some(next) = membership::first_waitlisted(txn, group_id).await? else {
            break;
        };
        let m = membership::move_to(txn, next, State::Active, ctx.now).await?;
        events::record_change(
            txn,
            ctx.outbox,
            Change::Promoted,
            &m,
            Some(State::Waitlisted),
            Note::default(),
            ctx.trace,
        )
        .await?;
        promoted.push(m);
    }
    Ok(promoted)
}

/// An archived group keeps no members: every open membership ends, with an event
/// each so the people are told.
pub async fn end_all(
    txn: &DatabaseTransaction,
    ctx: Ctx<'_>,
    group_id: &str,
    reason: &str,
) -> Result<usize, ServiceError> {
    group_settings::lock(txn, group_id, ctx.now).await?;
    let open = membership::all_in_states(
        txn,
        group_id,
        &[
            State::Active,
            State::Invited,
            State::Requested,
            State::Waitlisted,
        ],
    )
    .await?;
    let count = open.len();
    rota::delete_group(txn, group_id).await?;
    for m in open {
        let from = m.state();
        let had_role = from == State::Active && m.role() != Role::Member;
        let ended = membership::move_to(txn, m, State::Left, ctx.now).await?;
        let note = Note {
            reason,
            message: "",
        };
        events::record_change(
            txn,
            ctx.outbox,
            Change::Ended,
            &ended,
            Some(from),
            note,
            ctx.trace,
        )
        .await?;
        if had_role {
            events::record_role_changed(txn, ctx.outbox, &ended, ctx.trace).await?;
        }
    }
    Ok(count)
}
