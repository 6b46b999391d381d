//! A person leaving a group, or ending their place by withdrawing consent.

use sea_orm::TransactionTrait;
use selfhelp_platform::trace::TraceParent;

use super::{Workflow, end};
use crate::domain::membership::{Role, State};
use crate::error::{NOT_A_MEMBER, ServiceError};
use crate::events::{Change, Note};
use crate::store::{consent, group_settings, membership};

impl Workflow {
    /// `person` leaves `group_id` (or withdraws a request, an invitation, a
    /// waitlist place); `reason` set means it ends for that reason instead
    /// (consent withdrawn). The last organiser must hand over first.
    pub async fn end_own(
        &self,
        person: &str,
        group_id: &str,
        capacity: i32,
        trace: &TraceParent,
        reason: Option<&str>,
    ) -> Result<membership::Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, group_id, now).await?;
        let m = membership::find_for(&txn, group_id, person)
            .await?
            .ok_or(NOT_A_MEMBER)?;
        // Withdrawn consent ends even the last organiser's membership: the group
        // is then left to the region's operators.
        if reason.is_none()
            && m.state() == State::Active
            && m.role() == Role::Organiser
            && membership::count_active_with_role(&txn, group_id, Role::Organiser).await? <= 1
        {
            return Err(ServiceError::FailedPrecondition(
                "you are the group's only organiser: give the organiser role to someone else first"
                    .into(),
            ));
        }
        let (change, note) = match reason {
            None => (Change::Left, Note::default()),
            Some(reason) => (
                Change::Ended,
                Note {
                    reason,
                    message: "",
                },
            ),
        };
        if reason.is_some() {
            consent::withdraw(&txn, &m.id, now).await?;
        }
        let ctx = self.ctx(trace, now);
        let ended = end(&txn, ctx, m, State::Left, change, note, capacity).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(ended)
    }

    /// Consent withdrawn by someone already out of the group: only the
    /// consent record changes.
    pub async fn withdraw_consent(&self, membership_id: &str) -> Result<(), ServiceError> {
        consent::withdraw(&self.db, membership_id, self.clock.now_ms()).await?;
        Ok(())
    }
}
