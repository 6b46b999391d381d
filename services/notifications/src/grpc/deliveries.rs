//! The delivery log: people see their own deliveries; the region's operators
//! see everyone's and replay failed ones.

use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::{self, Violations};
use selfhelp_proto::common::v1::PageResponse;
use selfhelp_proto::notifications::v1 as pb;

use super::NotificationsApi;
use crate::error::ServiceError;
use crate::store::delivery;

fn status_to_wire(status: &str) -> pb::DeliveryStatus {
    pb::DeliveryStatus::from_str_name(&format!("DELIVERY_STATUS_{status}"))
        .unwrap_or(pb::DeliveryStatus::Unspecified)
}

fn to_wire(d: &delivery::Model) -> pb::Delivery {
    pb::Delivery {
        id: d.id.clone(),
        notification_id: if d.is_digest || d.is_confirmation {
            String::new()
        } else {
            d.notification_id.clone()
        },
        recipient_id: d.recipient_id.clone(),
        channel: pb::Channel::from_str_name(&format!("CHANNEL_{}", d.channel))
            .unwrap_or(pb::Channel::Unspecified)
            .into(),
        webhook_id: d.webhook_id.clone(),
        status: status_to_wire(&d.status).into(),
        attempts: d.attempts,
        last_error: d.last_error.clone(),
        next_attempt_at: (d.status == delivery::PENDING)
            .then(|| to_timestamp(d.next_attempt_at_ms)),
        sent_at: d.sent_at_ms.map(to_timestamp),
        created_at: Some(to_timestamp(d.created_at_ms)),
        digest_id: if d.is_digest {
            d.notification_id.clone()
        } else {
            d.digest_id.clone()
        },
        confirms_email: d.is_confirmation,
    }
}

impl NotificationsApi {
    pub(super) async fn deliveries_for(
        &self,
        caller: &Caller,
        req: pb::ListDeliveriesRequest,
    ) -> Result<pb::ListDeliveriesResponse, ServiceError> {
        let page = req.page.unwrap_or_default();
        let mut v = Violations::new();
        let limit = validation::page_size(&mut v, "page.page_size", page.page_size, 20, 100);
        let before = (!page.page_token.is_empty())
            .then(|| v.uuid("page.page_token", &page.page_token))
            .flatten()
            .map(|u| u.to_string());
        let status = match pb::DeliveryStatus::try_from(req.status) {
            Ok(pb::DeliveryStatus::Unspecified) => None,
            Ok(s) => s.as_str_name().strip_prefix("DELIVERY_STATUS_"),
            Err(_) => {
                v.add("status", "unknown delivery status");
                None
            }
        };
        v.line("recipient_id", &req.recipient_id, false, 256);
        if req.all && !req.recipient_id.is_empty() {
            v.add("recipient_id", "give either recipient_id or all, not both");
        }
        v.into_result()?;
        let others =
            req.all || (!req.recipient_id.is_empty() && req.recipient_id != caller.person_id);
        if others && !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only the region's operators see other people's deliveries",
            ));
        }
        let recipient = if req.all {
            None
        } else if req.recipient_id.is_empty() {
            Some(caller.person_id.as_str())
        } else {
            Some(req.recipient_id.as_str())
        };
        let rows =
            delivery::list(&self.db, recipient, status, before.as_deref(), limit + 1).await?;
        let has_more = rows.len() as u64 > limit;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        Ok(pb::ListDeliveriesResponse {
            deliveries: rows.iter().map(to_wire).collect(),
            page: Some(PageResponse {
                next_page_token: if has_more {
                    rows.last().map(|r| r.id.clone()).unwrap_or_default()
                } else {
                    String::new()
                },
                total_size: 0,
            }),
        })
    }

    pub(super) async fn replay(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<pb::Delivery, ServiceError> {
        let mut v = Violations::new();
        let id = v.uuid("delivery_id", id);
        v.into_result()?;
        if !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only the region's operators replay deliveries",
            ));
        }
        let id = id.map(|u| u.to_string()).unwrap_or_default();
        let Some(row) = delivery::find(&self.db, &id).await? else {
            return Err(ServiceError::NotFound("delivery not found"));
        };
        if row.status != delivery::FAILED {
            return Err(ServiceError::FailedPrecondition(format!(
                "only failed deliveries are replayed; this one is {}",
                row.status.to_lowercase()
            )));
        }
        self.workflow.replay(&row).await?;
        let row = delivery::find(&self.db, &id)
            .await?
            .ok_or(ServiceError::NotFound("delivery not found"))?;
        Ok(to_wire(&row))
    }
}
