//! The group's own life: agenda items, notes and sub-committees, each
//! written with the notice that tells its people, in one transaction.

use sea_orm::TransactionTrait;
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::v1 as ev;

use super::Workflow;
use crate::error::ServiceError;
use crate::events;
use crate::store::{committee, forum};

impl Workflow {
    async fn notify(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        notice: Option<ev::GroupNotice>,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        if let Some(n) = notice {
            events::record_notice(txn, &self.outbox, n, Some(trace)).await?;
        }
        Ok(())
    }

    /// Adds an item to a meeting's agenda; its members are told.
    pub async fn add_agenda_item(
        &self,
        row: forum::agenda::Model,
        notice: ev::GroupNotice,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        forum::add_agenda(&txn, row).await?;
        self.notify(&txn, Some(notice), trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Writes a meeting's notes; members are told the first time only.
    pub async fn write_notes(
        &self,
        row: forum::notes::Model,
        notice: ev::GroupNotice,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        let first = forum::write_notes(&txn, row).await?;
        self.notify(&txn, first.then_some(notice), trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Stores a committee with its members; those newly on it are told.
    pub async fn save_committee(
        &self,
        row: committee::Model,
        members: &[String],
        notice: Option<ev::GroupNotice>,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if let Some(other) = committee::named(&txn, &row.group_id, &row.name).await?
            && other.id != row.id
        {
            let mut v = selfhelp_core::validation::Violations::new();
            v.add("name", "is taken by another of the group's committees");
            return Err(v.into());
        }
        committee::save(&txn, row, members).await?;
        self.notify(&txn, notice, trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Closes a committee: it and its places go together.
    pub async fn close_committee(&self, id: &str) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        committee::delete(&txn, id).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Sends a notice (a committee's, say) that changes nothing else.
    pub async fn send_notice(
        &self,
        notice: ev::GroupNotice,
        trace: &TraceParent,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        self.notify(&txn, Some(notice), trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}
