//! Erasure in listings: a person's roles go; where they created, organised or
//! checked a group, the group stays (it is public directory data) without them.
//! Organiser lists change with a `group.updated` event, so the other services'
//! read models forget them too.

use crate::events::EventLog;
use sea_orm::{DatabaseTransaction, DbErr};
use selfhelp_core::time::now_ms;
use selfhelp_platform::privacy::Eraser;
use selfhelp_platform::trace::TraceParent;

use crate::events;
use crate::store::{group, history, pending_edit, roles};

/// Stands where an erased person's id was: no token has an empty subject, so it
/// cannot grant anyone anything.
pub const NOBODY: &str = "";

pub struct ListingsEraser {
    pub outbox: EventLog,
}

#[async_trait::async_trait]
impl Eraser for ListingsEraser {
    async fn erase(&self, txn: &DatabaseTransaction, person: &str) -> Result<(), DbErr> {
        roles::forget(txn, person).await?;
        history::forget(txn, person, NOBODY).await?;
        pending_edit::forget(txn, person).await?;
        let trace = TraceParent::new_root();
        for g in group::naming(txn, person).await? {
            let roles: Vec<(String, String)> = roles::for_group(txn, &g.id)
                .await?
                .into_iter()
                .map(|r| (r.person_id, r.role))
                .collect();
            let creator = if g.created_by == person {
                NOBODY
            } else {
                g.created_by.as_str()
            };
            let organisers = crate::domain::group::organisers(creator, &roles);
            if !group::forget_person(txn, &g, person, NOBODY, &organisers, now_ms()).await? {
                // Changed meanwhile: the consumer retries the whole erasure.
                return Err(DbErr::Custom(format!("group {} changed meanwhile", g.id)));
            }
            let updated = group::find(txn, &g.id)
                .await?
                .ok_or_else(|| DbErr::Custom(format!("group {} vanished", g.id)))?;
            events::record_updated(
                txn,
                &self.outbox,
                &updated,
                vec!["organisers".into()],
                &trace,
            )
            .await?;
        }
        Ok(())
    }
}
