//! What a person changes about their own place: how they show in a group, and
//! following a group for its news.

use sea_orm::TransactionTrait;
use selfhelp_platform::trace::TraceParent;

use super::Workflow;
use crate::error::{NOT_A_MEMBER, ServiceError};
use crate::events;
use crate::store::{follow, membership};

impl Workflow {
    /// The name `person` shows in the group, and whether they hide from the
    /// member list (`None`: as it is).
    pub async fn present(
        &self,
        group_id: &str,
        person: &str,
        display_name: Option<String>,
        hidden: Option<bool>,
    ) -> Result<membership::Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        let m = membership::find_for(&txn, group_id, person)
            .await?
            .filter(|m| m.state().is_open())
            .ok_or(NOT_A_MEMBER)?;
        let m = membership::set_presentation(&txn, m, display_name, hidden, now).await?;
        txn.commit().await?;
        Ok(m)
    }

    /// `person` follows `group_id` (again: nothing changes); returns when they
    /// began to.
    pub async fn follow(
        &self,
        group_id: &str,
        person: &str,
        trace: &TraceParent,
    ) -> Result<follow::Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        if follow::add(&txn, group_id, person, now).await? {
            events::record_follow(&txn, &self.outbox, group_id, person, true, trace).await?;
        }
        let row = follow::find(&txn, group_id, person)
            .await?
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound("a follow just added".into()))?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(row)
    }

    /// `person` stops following `group_id` (nothing, if they did not).
    pub async fn unfollow(
        &self,
        group_id: &str,
        person: &str,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if follow::remove(&txn, group_id, person).await? {
            events::record_follow(&txn, &self.outbox, group_id, person, false, trace).await?;
        }
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}
