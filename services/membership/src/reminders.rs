//! Rota reminders: every so often (and, after them, the watch on long-held
//! roles in `crate::handover`), each turn that starts within the lead time
//! gets one `rota.duty_due` event for the person on duty, and the turns of
//! meetings that have begun are remembered (`duty_record`); swaps asked for
//! turns now past are dropped. Safe with several
//! replicas: a turn's reminder is claimed by inserting its row first.

use std::time::Duration;

use sea_orm::{DatabaseConnection, TransactionTrait};
use selfhelp_core::time::Clock;
use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;

use crate::config::RotaConfig;
use crate::domain::rota;
use crate::error::ServiceError;
use crate::events;
use crate::store::{meetings, rota as rota_store};

/// Sends due reminders every `check_interval_secs` until `shutdown`.
pub async fn run(
    db: DatabaseConnection,
    outbox: Outbox,
    cfg: RotaConfig,
    clock: Clock,
    shutdown: Shutdown,
) {
    let interval = Duration::from_secs(cfg.check_interval_secs);
    let lead = chrono::Duration::hours(i64::from(cfg.reminder_lead_hours));
    selfhelp_platform::service::repeat("rota reminders", interval, shutdown, || async {
        let now = clock.now();
        let sent = send_due(&db, &outbox, lead, now).await?;
        // Who has held a role too long is seen from the turns just remembered.
        Ok::<_, ServiceError>(
            sent + crate::handover::check(&db, &outbox, cfg.sole_organiser_months, now).await?,
        )
    })
    .await
}

/// Drops the swaps asked on `r` for a turn that is no longer to come (it has
/// begun, or is gone): nobody can agree to them, and they link two people to
/// a group for nothing. Meetings are found by their start, not their key (a
/// moved meeting keeps its first date as its key).
async fn drop_lapsed_swaps(
    db: &DatabaseConnection,
    r: &rota_store::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ServiceError> {
    let asks = rota_store::swap_asks(db, &r.group_id, &r.duty).await?;
    if asks.is_empty() {
        return Ok(());
    }
    let coming: std::collections::HashSet<String> =
        crate::workflow::coming_turns(db, r, now, 52, true, None)
            .await?
            .into_iter()
            .map(|t| t.meeting.key)
            .collect();
    for ask in asks {
        if !coming.contains(&ask.meeting_key) || !coming.contains(&ask.other_meeting_key) {
            rota_store::drop_swap(db, &ask.id).await?;
        }
    }
    Ok(())
}

/// Sends the reminders for turns starting within `lead` from `now`; returns how many.
pub async fn send_due(
    db: &DatabaseConnection,
    outbox: &Outbox,
    lead: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ServiceError> {
    let mut sent = 0;
    for r in rota_store::all(db).await? {
        // Meetings that have begun are remembered with who held the duty.
        crate::workflow::remember_turns(db, &r, now).await?;
        drop_lapsed_swaps(db, &r, now).await?;
        let Some(m) = meetings::load(db, &r.group_id).await? else {
            continue;
        };
        let since = chrono::DateTime::from_timestamp_millis(r.starts_at_ms).unwrap_or(now);
        let upcoming = rota::meetings(m.schedule.as_ref(), &m.exceptions, m.tz, since, now, 3);
        let changes = rota_store::changes(db, &r.group_id, &r.duty).await?;
        for turn in rota::turns(&r.volunteers(), &upcoming, &changes) {
            let starts = turn.meeting.starts_at;
            let (Some(person), true) = (turn.person, starts > now && starts - now <= lead) else {
                continue;
            };
            let txn = db.begin().await?;
            let key = &turn.meeting.key;
            if rota_store::claim_reminder(
                &txn,
                &r.group_id,
                &r.duty,
                key,
                &person,
                now.timestamp_millis(),
            )
            .await?
            {
                events::record_duty_due(&txn, outbox, &r.group_id, &r.duty, &person, &turn.meeting)
                    .await?;
                sent += 1;
            }
            txn.commit().await?;
        }
    }
    if sent > 0 {
        outbox.wake();
    }
    Ok(sent)
}
