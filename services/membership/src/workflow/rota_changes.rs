//! Rotas: who volunteers for a duty, and the skips and swaps of turns.

use sea_orm::TransactionTrait;

use super::Workflow;
use crate::domain::rota::{Handover, TurnChange, swap_stands};
use crate::error::{ServiceError, swap_answered};
use crate::events;
use crate::store::rota as store;
use crate::store::rota::swap;
use selfhelp_proto::events::v1 as ev;

/// Skips and swaps to come per rota.
const MAX_CHANGES: u64 = 200;
/// How many meetings ahead a swap may reach (as the gRPC layer allows).
const SWAP_REACH: usize = 52;
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
        // Skips, swaps and answers wait while the rota starts afresh.
        selfhelp_platform::db::take_turns(&txn, &format!("rota:{group_id}:{duty}")).await?;
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
    /// goes with it: checked again here, under the rota's lock, so that a
    /// change that landed since it was read (another swap, a skip, a new
    /// rota) cannot leave someone with a turn they did not agree to. When it
    /// was answered meanwhile, or no longer stands, nothing changes.
    pub async fn record_turn_change(
        &self,
        group_id: &str,
        duty: &str,
        change: &TurnChange,
        by: &str,
        handovers: &[Handover],
        agreed: Option<&swap::Model>,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("rota:{group_id}:{duty}")).await?;
        if let Some(ask) = agreed {
            if !store::drop_swap(&txn, &ask.id).await? {
                return Err(swap_answered());
            }
            let stands = match store::find(&txn, group_id, duty).await? {
                Some(r) => {
                    let turns =
                        super::coming_turns(&txn, &r, self.clock.now(), SWAP_REACH, true, None)
                            .await?;
                    swap_stands(
                        &turns,
                        &ask.meeting_key,
                        &ask.asked_by,
                        &ask.other_meeting_key,
                        &ask.asked_of,
                    )
                }
                None => false,
            };
            if !stands {
                // The ask lapses with the refusal.
                txn.commit().await?;
                return Err(ServiceError::FailedPrecondition(
                    "the turns in that swap have passed or changed hands since it was asked".into(),
                ));
            }
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
    /// (`rota.swap_request`). Asking the same person the same again changes
    /// nothing and tells nobody twice; asking someone else for the same two
    /// turns replaces the earlier ask.
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
        let same = store::swap_asks(&txn, &ask.group_id, &ask.duty)
            .await?
            .into_iter()
            .find(|a| {
                (
                    &a.meeting_key,
                    &a.other_meeting_key,
                    &a.asked_by,
                    &a.asked_of,
                ) == (
                    &ask.meeting_key,
                    &ask.other_meeting_key,
                    &ask.asked_by,
                    &ask.asked_of,
                )
            });
        if let Some(same) = same {
            // Asked already, and told: asking again changes nothing.
            return Ok(same);
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
