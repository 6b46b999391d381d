//! The right to erasure: a person erases themselves; operators see requests that
//! some service has not confirmed in time.

use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, paging, trace_of};
use crate::error::NO_ERASURE_REQUEST;
use crate::error::ServiceError;
use crate::store::erasure;

impl MembershipApi {
    pub(super) async fn erase(
        &self,
        request: Request<pb::EraseMeRequest>,
    ) -> Result<pb::ErasureStatus, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        if !request.get_ref().confirm {
            let mut v = Violations::new();
            v.add("confirm", "must be true: erasure cannot be undone");
            return Err(v.into());
        }
        let req = self
            .workflow
            .erase(
                &caller.person_id,
                &self.names,
                self.privacy.confirm_within_hours,
                &trace,
            )
            .await?;
        self.status_of(&req).await
    }

    pub(super) async fn erasure_status(
        &self,
        request: Request<pb::GetErasureStatusRequest>,
    ) -> Result<pb::ErasureStatus, ServiceError> {
        let caller = self.caller(&request)?;
        let req = erasure::latest_for(&self.db, &self.names.all_of(&caller.person_id))
            .await?
            .ok_or(NO_ERASURE_REQUEST)?;
        self.status_of(&req).await
    }

    pub(super) async fn overdue_erasures(
        &self,
        request: Request<pb::ListOverdueErasuresRequest>,
    ) -> Result<pb::ListOverdueErasuresResponse, ServiceError> {
        let caller = self.caller(&request)?;
        if !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only operators of this region see erasure requests",
            ));
        }
        let mut v = Violations::new();
        let page = paging(&mut v, request.into_inner().page);
        v.into_result()?;
        let (rows, total) =
            erasure::overdue(&self.db, self.clock.now_ms(), page.offset, page.limit).await?;
        let mut requests = Vec::with_capacity(rows.len());
        for r in &rows {
            requests.push(self.status_of(r).await?);
        }
        Ok(pb::ListOverdueErasuresResponse {
            page: Some(page.answer(rows.len(), total)),
            requests,
        })
    }

    async fn status_of(&self, req: &erasure::Model) -> Result<pb::ErasureStatus, ServiceError> {
        let confirmed = erasure::confirmations(&self.db, &req.id).await?;
        let waiting_for: Vec<String> = self
            .privacy
            .expected_services
            .iter()
            .filter(|s| !confirmed.iter().any(|c| &c.service == *s))
            .cloned()
            .collect();
        Ok(pb::ErasureStatus {
            request_id: req.id.clone(),
            requested_at: Some(to_timestamp(req.requested_at_ms)),
            confirmations: confirmed
                .iter()
                .map(|c| pb::ServiceConfirmation {
                    service: c.service.clone(),
                    confirmed_at: Some(to_timestamp(c.confirmed_at_ms)),
                })
                .collect(),
            complete: waiting_for.is_empty(),
            waiting_for,
        })
    }
}
