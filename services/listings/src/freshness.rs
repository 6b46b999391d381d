//! Keeping the directory fresh: published groups whose details have not been
//! confirmed for `warn_after_days` get one `group.review_due` event per
//! confirmation, so notifications can ask their organisers to check them.
//! Safe with several replicas: each reminder is claimed with a versioned update.

use std::time::Duration;

use crate::events::EventLog;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use selfhelp_platform::Shutdown;
use selfhelp_platform::time::Clock;

use crate::config::FreshnessConfig;
use crate::events;
use crate::store::group as store;

const DAY_MS: i64 = 86_400_000;
/// Groups handled per round; the next round takes the rest.
const BATCH: u64 = 200;

/// Checks every `check_interval_secs` until `shutdown`.
pub async fn run(
    db: DatabaseConnection,
    outbox: EventLog,
    region: String,
    cfg: FreshnessConfig,
    clock: Clock,
    shutdown: Shutdown,
) {
    let interval = Duration::from_secs(cfg.check_interval_secs);
    selfhelp_platform::service::repeat("review reminders", interval, shutdown, || {
        check_once(&db, &outbox, &region, &cfg, clock.now_ms())
    })
    .await
}

/// Sends the reminders due at `now`; returns how many.
pub async fn check_once(
    db: &DatabaseConnection,
    outbox: &EventLog,
    region: &str,
    cfg: &FreshnessConfig,
    now: i64,
) -> Result<usize, DbErr> {
    let cutoff = now - cfg.warn_after_days * DAY_MS;
    let mut sent = 0;
    for group in store::due_for_review(db, region, cutoff, BATCH).await? {
        let txn = db.begin().await?;
        if !store::claim_review_due(&txn, &group, now).await? {
            // Another replica, or an edit, got there first.
            txn.rollback().await?;
            continue;
        }
        let Some(updated) = store::find(&txn, &group.id).await? else {
            txn.rollback().await?;
            continue;
        };
        events::record_review_due(&txn, outbox, &updated).await?;
        txn.commit().await?;
        sent += 1;
    }
    if sent > 0 {
        outbox.wake();
    }
    Ok(sent)
}
