//! Visitors writing to a group's organisers from its page, relayed by the web
//! gateway: each organiser is told on their own channels, and nobody's
//! address is shown unless the visitor gave theirs for a reply.

use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use selfhelp_core::caller::Caller;
use selfhelp_core::validation::Violations;
use selfhelp_group_view as group_view;
use selfhelp_proto::notifications::v1 as pb;

use super::NotificationsApi;
use crate::domain::messages::{self, Kind};
use crate::error::ServiceError;
use crate::routing;
use crate::store::notification;

/// The role only the web gateway's relay token carries.
pub const ROLE_CONTACT_RELAY: &str = "contact-relay";
const MAX_NAME: usize = 80;
const MAX_MESSAGE: usize = 2_000;
const HOUR_MS: i64 = 3_600_000;

impl NotificationsApi {
    pub(super) async fn relay_to_organisers(
        &self,
        caller: &Caller,
        req: pb::ContactOrganisersRequest,
    ) -> Result<pb::ContactOrganisersResponse, ServiceError> {
        if !caller.has_role(ROLE_CONTACT_RELAY) {
            return Err(ServiceError::PermissionDenied(
                "only the web gateway relays visitors' messages",
            ));
        }
        let (name, message, reply_to) = (
            req.sender_name.trim(),
            req.message.trim(),
            req.reply_to.trim(),
        );
        let mut v = Violations::new();
        v.uuid("group_id", &req.group_id);
        v.line("sender_name", name, false, MAX_NAME);
        v.text("message", message, true, MAX_MESSAGE);
        v.line("reply_to", reply_to, false, 254);
        if !reply_to.is_empty() && reply_to.parse::<lettre::Address>().is_err() {
            v.add("reply_to", "is not an email address");
        }
        v.into_result()?;
        let group = group_view::find(&self.db, &req.group_id)
            .await?
            .filter(|g| g.status == "PUBLISHED")
            .ok_or(ServiceError::NotFound("no listed group has this id"))?;
        let organisers = group.organiser_ids();
        if organisers.is_empty() {
            return Err(ServiceError::FailedPrecondition(
                "this group has no organiser to write to yet; the region's staff can help".into(),
            ));
        }
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        // One group's messages are counted one at a time, so a burst cannot
        // all pass the cap together.
        selfhelp_platform::db::take_turns(&txn, &format!("contact:{}", group.group_id)).await?;
        // Each relayed message is one "event" for all its organisers.
        let relayed = notification::Entity::find()
            .select_only()
            .column(notification::Column::EventId)
            .distinct()
            .filter(notification::Column::GroupId.eq(&group.group_id))
            .filter(notification::Column::Kind.eq(Kind::OrganiserContact.as_str()))
            .filter(notification::Column::CreatedAtMs.gte(now.timestamp_millis() - HOUR_MS))
            .count(&txn)
            .await?;
        if relayed >= u64::from(self.contact.per_group_per_hour) {
            return Err(ServiceError::FailedPrecondition(
                "this group's organisers have had many messages in the last hour; please try again later".into(),
            ));
        }
        let told = messages::organiser_contact(&organisers, &group.name, name, message, reply_to);
        let relay_id = uuid::Uuid::now_v7().to_string();
        routing::deliver(
            &txn,
            &self.names,
            &told,
            &group.group_id,
            &relay_id,
            self.timezone,
            now,
        )
        .await?;
        txn.commit().await?;
        // Who wrote and what stays out of the log.
        tracing::info!(group_id = %group.group_id, reply = !reply_to.is_empty(), "a visitor's message was relayed to the organisers");
        Ok(pb::ContactOrganisersResponse {})
    }
}
