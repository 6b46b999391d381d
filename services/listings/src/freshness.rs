//! Keeping the directory fresh: published groups whose details have not been
//! confirmed for `warn_after_days` get one `group.review_due` event per
//! confirmation, so notifications can ask their organisers to check them.
//! Safe with several replicas: each reminder is claimed with a versioned update.

use std::time::Duration;

use selfhelp_platform::Shutdown;

use crate::config::FreshnessConfig;
use crate::domain::group::DAY_MS;
use crate::error::ServiceError;
use crate::store::group as store;
use crate::workflow::Workflow;

/// Groups handled per round; the next round takes the rest.
const BATCH: u64 = 200;

/// Checks every `check_interval_secs` until `shutdown`.
pub async fn run(workflow: Workflow, region: String, cfg: FreshnessConfig, shutdown: Shutdown) {
    let interval = Duration::from_secs(cfg.check_interval_secs);
    selfhelp_platform::service::repeat("review reminders", interval, shutdown, || {
        check_once(&workflow, &region, &cfg)
    })
    .await
}

/// Sends the reminders due now (on the workflow's clock); returns how many.
pub async fn check_once(
    workflow: &Workflow,
    region: &str,
    cfg: &FreshnessConfig,
) -> Result<usize, ServiceError> {
    let cutoff = workflow.clock.now_ms() - cfg.warn_after_days * DAY_MS;
    let mut sent = 0;
    for group in store::due_for_review(&workflow.db, region, cutoff, BATCH).await? {
        // False when another replica, or an edit, got there first.
        if workflow.remind_review_due(&group).await? {
            sent += 1;
        }
    }
    if sent > 0 {
        workflow.outbox.wake();
    }
    Ok(sent)
}
