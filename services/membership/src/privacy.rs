//! Erasure in membership: what "forget this person" means here, and recording
//! which services confirmed a request (membership consumes PRIVACY for both).

use std::sync::Arc;

use sea_orm::{DatabaseTransaction, DbErr};
use selfhelp_core::time::now_ms;
use selfhelp_group_view as group_view;
use selfhelp_platform::bus::IncomingEvent;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::privacy::{Eraser, ErasureRequests};
use selfhelp_proto::events::{types, v1 as ev};

use crate::domain::membership::State;
use crate::error::ServiceError;
use crate::store::{
    committee, consent, erasure, follow, forum, group_settings, invitation, membership, role_watch,
    rota, sharing,
};
use crate::workflow::{self, Ctx};

/// What stands where an erased person's id was kept for others' sake.
pub const ERASED: &str = "erased";

/// Deletes the person's memberships, consents, follows, invitations for them,
/// rota and committee places, agenda items and shared knowledge; a place they
/// held goes to the next person waiting.
pub struct MembershipEraser {
    pub outbox: Outbox,
}

#[async_trait::async_trait]
impl Eraser for MembershipEraser {
    async fn erase(&self, txn: &DatabaseTransaction, person: &str) -> Result<(), DbErr> {
        let now = now_ms();
        let ctx = Ctx {
            outbox: &self.outbox,
            trace: None,
            now,
        };
        let memberships = membership::all_for_person(txn, person).await?;
        // Every group at once, in the order joins written together lock them,
        // so the two cannot wait for each other.
        let mut groups: Vec<&str> = memberships.iter().map(|m| m.group_id.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        group_settings::lock_all(txn, &groups, now).await?;
        for m in &memberships {
            membership::delete(txn, &m.id).await?;
            if m.state() == State::Active {
                let capacity = group_view::find(txn, &m.group_id)
                    .await?
                    .map(|g| g.capacity)
                    .unwrap_or(0);
                workflow::fill_places(txn, ctx, &m.group_id, capacity)
                    .await
                    .map_err(|e| match e {
                        ServiceError::Db(e) => e,
                        other => DbErr::Custom(other.to_string()),
                    })?;
            }
        }
        consent::delete_for_person(txn, person).await?;
        follow::delete_for_person(txn, person).await?;
        invitation::forget(txn, person, ERASED).await?;
        workflow::leave_rotas(txn, person, None, now).await?;
        rota::forget_reminders(txn, person).await?;
        // After leaving the rotas, which remembers their turns so far.
        sharing::forget(txn, person).await?;
        // What they wrote goes; notes they took stay with the group, by "a
        // former member"; meetings they came to stay counted.
        let former = format!("{}{}", sharing::FORMER, uuid::Uuid::new_v4());
        forum::forget(txn, person, &former).await?;
        committee::leave(txn, person, None).await?;
        role_watch::forget(txn, person).await?;
        Ok(())
    }
}

/// Membership's PRIVACY consumer: acts on erasure requests like every service,
/// and records each service's confirmation.
pub struct PrivacyEvents {
    pub requests: ErasureRequests,
    /// Services that must confirm before a request is complete.
    pub expected: Vec<String>,
}

impl PrivacyEvents {
    pub fn new(outbox: Outbox, expected: Vec<String>) -> Self {
        PrivacyEvents {
            requests: ErasureRequests {
                service: "membership",
                outbox: outbox.clone(),
                eraser: Arc::new(MembershipEraser { outbox }),
            },
            expected,
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for PrivacyEvents {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        if event.ce_type != types::ERASURE_COMPLETED {
            return self.requests.handle(txn, event).await;
        }
        let done: ev::ErasureCompleted = event
            .decode()
            .map_err(|e| HandlerError::Poison(format!("{}: {e}", event.ce_type)))?;
        let Some(request) = erasure::find(txn, &done.request_id).await? else {
            return Ok(()); // another region's, or one this database never held
        };
        let now = now_ms();
        let confirmed = erasure::confirm(txn, &request.id, &done.service, now).await?;
        let all_in = self
            .expected
            .iter()
            .all(|s| confirmed.iter().any(|c| &c.service == s));
        if all_in {
            erasure::mark_complete(txn, &request.id, now).await?;
        }
        Ok(())
    }
}
