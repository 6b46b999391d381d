//! Rotas: who volunteers for a duty, and the skips and swaps of turns.

use sea_orm::TransactionTrait;

use super::Workflow;
use crate::domain::rota::{Handover, TurnChange};
use crate::error::{ServiceError, swap_answered};
use crate::events;
use crate::store::rota as store;
use crate::store::rota::swap;
use selfhelp_proto::events::v1 as ev;

/// Skips and swaps to come per rota.
const MAX_CHANGES: u64 = 200;
/// Swaps one person may have waiting for answers on one rota.
const MAX_ASKS: usize = 10;

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
        // The turns so far are remembered before the rota starts afresh.
        if let Some(before) = store::find(&txn, group_id, duty).await? {
            super::remember_turns(&txn, &before, self.clock.now()).await?;
        }
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
    /// people affected are told. `agreed` is the swap ask this answers, which
    /// goes with it; when it is gone already (answered meanwhile) nothing
    /// changes.
    pub async fn record_turn_change(
        &self,
        group_id: &str,
        duty: &str,
        change: &TurnChange,
        by: &str,
        handovers: &[Handover],
        agreed: Option<&str>,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("rota:{group_id}:{duty}")).await?;
        if let Some(ask) = agreed
            && !store::drop_swap(&txn, ask).await?
        {
            return Err(swap_answered());
        }
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

impl Workflow {
    /// Holds `ask` until the person asked answers, and tells them
    /// (`rota.swap_request`). Asking again for the same two turns replaces
    /// the earlier ask.
    pub async fn ask_swap(
        &self,
        ask: swap::Model,
        starts: [Option<i64>; 2],
    ) -> Result<swap::Model, ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("rota:{}:{}", ask.group_id, ask.duty))
            .await?;
        let open = store::swap_asks(&txn, &ask.group_id, &ask.duty)
            .await?
            .into_iter()
            .filter(|a| {
                a.asked_by == ask.asked_by
                    && (&a.meeting_key, &a.other_meeting_key)
                        != (&ask.meeting_key, &ask.other_meeting_key)
            })
            .count();
        if open >= MAX_ASKS {
            return Err(ServiceError::FailedPrecondition(format!(
                "you have {MAX_ASKS} swaps waiting for answers on this rota already"
            )));
        }
        let saved = store::ask_swap(&txn, ask).await?;
        events::record_swap_request(&txn, &self.outbox, &saved, starts, ev::SwapStep::Asked)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(saved)
    }

    /// Drops `ask`, declined by the person asked or withdrawn by the asker
    /// (`step`), and tells the other one; nothing when it was answered
    /// meanwhile.
    pub async fn drop_swap(
        &self,
        ask: &swap::Model,
        starts: [Option<i64>; 2],
        step: ev::SwapStep,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if !store::drop_swap(&txn, &ask.id).await? {
            return Err(swap_answered());
        }
        events::record_swap_request(&txn, &self.outbox, ask, starts, step).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Drops an ask that no longer stands (its turns passed or changed hands),
    /// telling nobody: both can see the rota as it is.
    pub async fn forget_swap(&self, id: &str) -> Result<(), ServiceError> {
        store::drop_swap(&self.db, id).await?;
        Ok(())
    }
}
