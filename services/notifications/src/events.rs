//! What notifications consumes: MEMBERSHIP events become inbox items. (LISTINGS
//! feeds the shared `group_view` read model: `selfhelp_platform::group_view`.)

use sea_orm::DatabaseTransaction;
use selfhelp_platform::bus::IncomingEvent;
use selfhelp_platform::group_view;
use selfhelp_platform::inbox::{EventHandler, HandlerError};
use selfhelp_platform::time::now_ms;
use selfhelp_proto::events::{types, v1 as ev};

use crate::domain::messages;
use crate::store::notification;

pub struct MembershipEvents;

#[async_trait::async_trait]
impl EventHandler for MembershipEvents {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        if event.ce_type != types::MEMBER_JOINED {
            return Ok(()); // not something this version tells anyone about
        }
        let joined: ev::MemberJoined = event
            .decode()
            .map_err(|e| HandlerError::Poison(format!("{}: {e}", event.ce_type)))?;
        // The group's name and organisers come from LISTINGS, a different stream:
        // if it is behind, try again shortly rather than tell people less.
        let Some(group) = group_view::find(txn, &joined.group_id).await? else {
            return Err(HandlerError::Retry(format!(
                "group {} not known yet",
                joined.group_id
            )));
        };
        let now = now_ms();
        for message in
            messages::member_joined(&joined.person_id, &group.name, &group.organiser_ids())
        {
            notification::insert(txn, &message, &joined.group_id, &event.id, now).await?;
        }
        Ok(())
    }
}
