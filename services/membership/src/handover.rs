//! Nobody runs everything for ever. Each reminder round watches who holds a
//! group's roles: an organiser (or the chair, whoever chaired every meeting
//! in a row) whose term ends is told how to hand over and the group is
//! reminded to choose who is next, once a term; someone who has been a
//! group's only organiser for `sole_after_months` is nudged, once, to invite
//! a co-organiser. Safe with several replicas: each telling is claimed by an
//! update only one of them wins.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Months, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};
use selfhelp_core::time::to_timestamp;
use selfhelp_group_view as group_view;
use selfhelp_platform::outbox::Outbox;
use selfhelp_proto::events::v1 as ev;

use crate::domain::membership::State;
use crate::error::ServiceError;
use crate::events;
use crate::store::role_watch::{self, CHAIR, ORGANISER, SOLE_ORGANISER};
use crate::store::{group_settings, membership, sharing};

/// The duty whose holder chairs a meeting.
pub const CHAIR_DUTY: &str = "chair";

/// What one round works with.
struct Round<'a> {
    db: &'a DatabaseConnection,
    outbox: &'a Outbox,
    now: DateTime<Utc>,
}

/// `since` plus `months`, or never.
fn after(since_ms: i64, months: u32) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(since_ms)?.checked_add_months(Months::new(months))
}

/// Watches and tells; returns how many notices were sent.
pub async fn check(
    db: &DatabaseConnection,
    outbox: &Outbox,
    sole_after_months: u32,
    now: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let now_ms = now.timestamp_millis();
    let groups = group_view::Entity::find()
        .filter(group_view::Column::Status.eq("PUBLISHED"))
        .all(db)
        .await?;
    let watched: Vec<role_watch::Model> = role_watch::Entity::find()
        .filter(role_watch::Column::Kind.is_in([ORGANISER, SOLE_ORGANISER]))
        .all(db)
        .await?;
    let mut by_group: HashMap<&str, Vec<&role_watch::Model>> = HashMap::new();
    for w in &watched {
        by_group.entry(w.group_id.as_str()).or_default().push(w);
    }
    let terms: HashMap<String, group_settings::Model> = group_settings::with_terms(db)
        .await?
        .into_iter()
        .map(|s| (s.group_id.clone(), s))
        .collect();
    let round = Round { db, outbox, now };
    let mut told = 0;
    for g in &groups {
        let organisers = g.organiser_ids();
        let held = by_group.remove(g.group_id.as_str()).unwrap_or_default();
        keep_watches(db, &g.group_id, ORGANISER, &organisers, &held, now_ms).await?;
        let sole: Vec<String> = if organisers.len() == 1 {
            organisers.clone()
        } else {
            Vec::new()
        };
        keep_watches(db, &g.group_id, SOLE_ORGANISER, &sole, &held, now_ms).await?;
        // The watches as the round found them: one just started is not due.
        let term = terms.get(&g.group_id);
        for w in held {
            match w.kind.as_str() {
                SOLE_ORGANISER
                    if sole.contains(&w.person_id)
                        && w.told_at_ms == 0
                        && after(w.since_ms, sole_after_months)
                            .is_some_and(|due| sole_after_months > 0 && due <= now) =>
                {
                    told += usize::from(nudge(&round, w, sole_after_months).await?);
                }
                ORGANISER if organisers.contains(&w.person_id) => {
                    let months = term.map_or(0, |t| t.organiser_term_months.max(0) as u32);
                    told += usize::from(
                        end_term(&round, w, months, "organiser", &organisers, now).await?,
                    );
                }
                _ => {}
            }
        }
        if let Some(t) = term.filter(|t| t.chair_term_months > 0) {
            told += usize::from(check_chair(&round, &g.group_id, &organisers, t).await?);
        }
    }
    if told > 0 {
        outbox.wake();
    }
    Ok(told)
}

/// Starts watching `people` in `kind` (from now) and stops watching others.
async fn keep_watches(
    db: &DatabaseConnection,
    group_id: &str,
    kind: &str,
    people: &[String],
    held: &[&role_watch::Model],
    now_ms: i64,
) -> Result<(), ServiceError> {
    let watched: HashSet<&str> = held
        .iter()
        .filter(|w| w.kind == kind)
        .map(|w| w.person_id.as_str())
        .collect();
    if watched.iter().any(|p| !people.iter().any(|o| o == p)) {
        role_watch::stop_others(db, group_id, kind, people).await?;
    }
    for p in people.iter().filter(|p| !watched.contains(p.as_str())) {
        role_watch::start(db, group_id, kind, p, now_ms).await?;
    }
    Ok(())
}

/// Nudges `w`'s only organiser, once, to invite a co-organiser. The claim
/// and the notice are one transaction: both happen, or neither.
async fn nudge(r: &Round<'_>, w: &role_watch::Model, months: u32) -> Result<bool, ServiceError> {
    let now_ms = r.now.timestamp_millis();
    let txn = r.db.begin().await?;
    if !role_watch::claim_telling(&txn, w, now_ms).await? {
        return Ok(false);
    }
    let willing = sharing::for_group(&txn, &w.group_id)
        .await?
        .iter()
        .filter(|s| s.counted && !s.willing().is_empty())
        .count();
    let notice = ev::GroupNotice {
        kind: ev::NoticeKind::SoleOrganiser as i32,
        recipient_ids: vec![w.person_id.clone()],
        months: months as i32,
        willing: willing as i32,
        ..notice_base(&w.group_id, &w.person_id, "organiser", now_ms)
    };
    events::record_notice(&txn, r.outbox, notice, None).await?;
    txn.commit().await?;
    Ok(true)
}

/// The last end of a term of `months` from `since_ms` that is not after
/// `ends_by`; `None` before the first term has ended.
fn last_term_end(since_ms: i64, months: u32, ends_by: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut last = None;
    // Each end counted from the start, so month ends do not drift.
    for k in 1..=1_200u32 {
        match after(since_ms, months.checked_mul(k)?) {
            Some(end) if end <= ends_by => last = Some(end),
            _ => break,
        }
    }
    last
}

fn notice_base(group_id: &str, holder: &str, role: &str, now_ms: i64) -> ev::GroupNotice {
    ev::GroupNotice {
        notice_id: uuid::Uuid::new_v4().to_string(),
        group_id: group_id.to_string(),
        holder_id: holder.to_string(),
        title: role.to_string(),
        occurred_at: Some(to_timestamp(now_ms)),
        ..Default::default()
    }
}

/// When a term of `months` of `w`'s has ended by `ends_by`: the next term
/// starts at the last such end (however many passed unseen: one notice, not
/// one a term), the person is told how to hand over and the group is
/// reminded. The claim and the notice are one transaction. True when this
/// call told them.
async fn end_term(
    r: &Round<'_>,
    w: &role_watch::Model,
    months: u32,
    role: &str,
    organisers: &[String],
    ends_by: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    if months == 0 {
        return Ok(false);
    }
    let Some(ended) = last_term_end(w.since_ms, months, ends_by) else {
        return Ok(false);
    };
    let txn = r.db.begin().await?;
    if !role_watch::next_term(&txn, w, ended.timestamp_millis()).await? {
        return Ok(false);
    }
    let mut recipients: Vec<String> =
        membership::all_in_states(&txn, &w.group_id, &[State::Active])
            .await?
            .into_iter()
            .map(|m| m.person_id)
            .collect();
    recipients.push(w.person_id.clone());
    recipients.extend(organisers.iter().cloned());
    recipients.sort();
    recipients.dedup();
    let notice = ev::GroupNotice {
        kind: ev::NoticeKind::TermEnded as i32,
        recipient_ids: recipients,
        months: months as i32,
        ..notice_base(&w.group_id, &w.person_id, role, r.now.timestamp_millis())
    };
    events::record_notice(&txn, r.outbox, notice, None).await?;
    txn.commit().await?;
    Ok(true)
}

/// The chair is whoever holds the "chair" duty: one person, still a member,
/// chairing every remembered meeting in a row (a meeting nobody chaired
/// breaks the run) for the chair's term ends the term.
async fn check_chair(
    r: &Round<'_>,
    group_id: &str,
    organisers: &[String],
    settings: &group_settings::Model,
) -> Result<bool, ServiceError> {
    let (db, now) = (r.db, r.now);
    let months = settings.chair_term_months.max(0) as u32;
    // A run longer than a term needs no more than a term and a little of
    // history: the watch remembers where the run began.
    let look_back = now
        .checked_sub_months(Months::new(months.saturating_mul(2).max(1)))
        .unwrap_or(now);
    let records = sharing::records(
        db,
        group_id,
        look_back.timestamp_millis(),
        now.timestamp_millis() + 1,
    )
    .await?;
    // Newest first: the run of meetings the latest chair chaired.
    let mut chaired = records.iter().filter(|r| r.duty == CHAIR_DUTY);
    let latest = chaired.next();
    let active: HashSet<String> = membership::all_in_states(db, group_id, &[State::Active])
        .await?
        .into_iter()
        .map(|m| m.person_id)
        .collect();
    let Some(latest) = latest else {
        // No meeting in the window (a break): the run, if any, stands.
        return Ok(false);
    };
    if !active.contains(&latest.person_id) {
        // Nobody chaired the latest meeting, or someone since gone: no run.
        role_watch::stop_others(db, group_id, CHAIR, &[]).await?;
        return Ok(false);
    }
    let mut run_start = latest.starts_at_ms;
    // Whether the run's first meeting was seen, or it began before the
    // history read here.
    let mut began_here = false;
    for r in chaired {
        if r.person_id != latest.person_id {
            began_here = true;
            break;
        }
        run_start = r.starts_at_ms;
    }
    // Another chair, or the same one after a break: a new run.
    role_watch::stop_stale(
        db,
        group_id,
        CHAIR,
        &latest.person_id,
        began_here.then_some(run_start),
    )
    .await?;
    role_watch::start(db, group_id, CHAIR, &latest.person_id, run_start).await?;
    let Some(w) = role_watch::of_kind(db, group_id, CHAIR).await?.pop() else {
        return Ok(false);
    };
    let chaired_last = DateTime::from_timestamp_millis(latest.starts_at_ms).unwrap_or(now);
    end_term(r, &w, months, "chair", organisers, chaired_last).await
}
