//! The right to erasure: membership's own part now, and the request every
//! service acts on.

use sea_orm::TransactionTrait;
use selfhelp_core::time::to_timestamp;
use selfhelp_platform::privacy::{ERASURE_REQUESTED, Eraser, Pseudonyms};
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::streams::PRIVACY;

use super::Workflow;
use crate::error::ServiceError;
use crate::privacy::MembershipEraser;
use crate::store::erasure;

impl Workflow {
    /// Erases what membership holds about `person` and asks every service to
    /// do the same, filed under the person's pseudonym and due within
    /// `confirm_within_hours`.
    pub async fn erase(
        &self,
        person: &str,
        names: &Pseudonyms,
        confirm_within_hours: u32,
        trace: &TraceParent,
    ) -> Result<erasure::Model, ServiceError> {
        let now = self.clock.now_ms();
        let due = now + i64::from(confirm_within_hours) * 3_600_000;
        let txn = self.db.begin().await?;
        // Membership's own part happens now; the event asks everyone (this
        // service too, which then confirms like the others).
        let eraser = MembershipEraser {
            outbox: self.outbox.clone(),
        };
        eraser.erase(&txn, person).await?;
        let req = erasure::insert(&txn, &names.of(person), now, due).await?;
        let msg = ev::ErasureRequested {
            request_id: req.id.clone(),
            person_id: person.to_string(),
            requested_at: Some(to_timestamp(now)),
        };
        self.outbox
            .enqueue(&txn, PRIVACY, ERASURE_REQUESTED, &req.id, &msg, Some(trace))
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(req)
    }
}
