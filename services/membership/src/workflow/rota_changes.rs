//! Rotas: who volunteers for a duty, and the skips and swaps of turns.

use sea_orm::TransactionTrait;

use super::Workflow;
use crate::domain::rota::{Handover, TurnChange};
use crate::error::ServiceError;
use crate::events;
use crate::store::rota as store;

/// Skips and swaps to come per rota.
const MAX_CHANGES: u64 = 200;

impl Workflow {
    /// Sets who volunteers for `duty` in `group_id`, in turn order; nobody
    /// ends the rota (`None` returned).
    pub async fn set_rota(
        &self,
        group_id: &str,
        duty: &str,
        volunteers: &[String],
    ) -> Result<Option<store::Model>, ServiceError> {
        let txn = self.db.begin().await?;
        let saved = if volunteers.is_empty() {
            store::delete(&txn, group_id, duty).await?;
            None
        } else {
            Some(store::set(&txn, group_id, duty, volunteers, self.clock.now_ms()).await?)
        };
        txn.commit().await?;
        Ok(saved)
    }

    /// Records a skip or a swap by `by`, unless the rota already has its fill
    /// of them for meetings to come (each is applied on every read of the
    /// rota), with `rota.turns_changed` naming the turns it hands on, so the
    /// people affected are told.
    pub async fn record_turn_change(
        &self,
        group_id: &str,
        duty: &str,
        change: &TurnChange,
        by: &str,
        handovers: &[Handover],
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("rota:{group_id}:{duty}")).await?;
        let today = self.clock.now().date_naive().to_string();
        if store::count_changes_from(&txn, group_id, duty, &today).await? >= MAX_CHANGES {
            return Err(ServiceError::FailedPrecondition(format!(
                "this rota has {MAX_CHANGES} skips and swaps to come already"
            )));
        }
        store::add_change(&txn, group_id, duty, change, self.clock.now_ms()).await?;
        if !handovers.is_empty() {
            events::record_turns_changed(&txn, &self.outbox, group_id, duty, by, handovers).await?;
        }
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}
