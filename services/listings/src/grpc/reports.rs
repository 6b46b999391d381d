//! What the public reports to the region's staff: a problem with a listing,
//! or a group the directory should list. Only the web's relay sends them (it
//! caps each client address and drops what bots fill in); only operators of
//! the region read and close them.

use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_platform::bad_request::OffsetPage;
use selfhelp_proto::listings::v1 as pb;

use super::ListingsApi;
use crate::domain::group::Status;
use crate::error::{GROUP_NOT_FOUND, ServiceError};
use crate::store::group as group_store;
use crate::store::report::{self as store, NewReport};

/// The role of the web's token when it passes on what the public sends.
pub const ROLE_REPORT_RELAY: &str = "report-relay";

const MAX_MESSAGE: usize = 2_000;
const REPORT_NOT_FOUND: ServiceError = ServiceError::NotFound("report not found");

impl ListingsApi {
    pub(super) async fn report_to_staff(
        &self,
        caller: &Caller,
        req: pb::ReportToStaffRequest,
    ) -> Result<pb::ReportToStaffResponse, ServiceError> {
        if !caller.has_role(ROLE_REPORT_RELAY) {
            return Err(ServiceError::PermissionDenied(
                "reports come to staff through the web",
            ));
        }
        let (group_id, name, message, reply_to) = (
            req.group_id.trim(),
            req.suggested_name.trim(),
            req.message.trim(),
            req.reply_to.trim(),
        );
        let mut v = Violations::new();
        if group_id.is_empty() {
            v.line("suggested_name", name, true, 200);
        } else {
            v.uuid("group_id", group_id);
            if !name.is_empty() {
                v.add(
                    "suggested_name",
                    "is for suggesting a group, not a report about one",
                );
            }
        }
        v.text("message", message, true, MAX_MESSAGE);
        v.line("reply_to", reply_to, false, 254);
        if !reply_to.is_empty() && !email_address::EmailAddress::is_valid(reply_to) {
            v.add("reply_to", "is not an email address");
        }
        v.into_result()?;
        if !group_id.is_empty() {
            let listed = group_store::find(&self.read, group_id).await?.filter(|g| {
                g.region == self.region && (req.about_message || g.status().is_public())
            });
            if listed.is_none() {
                return Err(GROUP_NOT_FOUND);
            }
        }
        if store::count_open(&self.db, &self.region).await? >= self.open_reports_per_region {
            return Err(ServiceError::Exhausted(
                "too many reports are waiting for staff: please try again in a few days".into(),
            ));
        }
        let report = NewReport {
            region: self.region.clone(),
            group_id: group_id.to_string(),
            suggested_name: name.to_string(),
            message: message.to_string(),
            reply_to: reply_to.to_string(),
        };
        let saved = store::insert(&self.db, report, self.clock.now_ms()).await?;
        // What was written stays out of the logs.
        tracing::info!(report_id = %saved.id, suggestion = group_id.is_empty(), reply = !reply_to.is_empty(), "a report for staff was queued");
        Ok(pb::ReportToStaffResponse {
            report_id: saved.id,
        })
    }

    fn operator_only(&self, caller: &Caller) -> Result<(), ServiceError> {
        if caller.is_operator_of(&self.region) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(
                "only operators of this region see reports",
            ))
        }
    }

    pub(super) async fn staff_reports(
        &self,
        caller: &Caller,
        req: pb::ListStaffReportsRequest,
    ) -> Result<pb::ListStaffReportsResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 20, 100);
        v.into_result()?;
        self.operator_only(caller)?;
        // The primary: the staff page is read right after a report is closed.
        let (rows, total) =
            store::open_page(&self.db, &self.region, page.offset, page.limit).await?;
        let ids: Vec<String> = rows
            .iter()
            .filter(|r| !r.group_id.is_empty())
            .map(|r| r.group_id.clone())
            .collect();
        let groups = group_store::find_many(&self.read, ids).await?;
        let reports = rows
            .iter()
            .map(|r| {
                let name = groups
                    .iter()
                    .find(|g| g.id == r.group_id && g.status() != Status::Archived)
                    .map(|g| g.name.clone());
                wire(r, name)
            })
            .collect();
        Ok(pb::ListStaffReportsResponse {
            reports,
            page: Some(page.answer(rows.len(), total)),
        })
    }

    pub(super) async fn close_staff_report(
        &self,
        caller: &Caller,
        req: pb::CloseStaffReportRequest,
    ) -> Result<pb::StaffReport, ServiceError> {
        let mut v = Violations::new();
        v.uuid("report_id", &req.report_id);
        v.text("note", req.note.trim(), true, MAX_MESSAGE);
        v.into_result()?;
        self.operator_only(caller)?;
        let report = store::find(&self.db, &req.report_id)
            .await?
            .filter(|r| r.region == self.region)
            .ok_or(REPORT_NOT_FOUND)?;
        if report.closed_at_ms.is_some() {
            return Err(ServiceError::FailedPrecondition(
                "this report was closed already".into(),
            ));
        }
        let now = self.clock.now_ms();
        if !store::close(&self.db, &report, &caller.person_id, req.note.trim(), now).await? {
            return Err(ServiceError::FailedPrecondition(
                "this report was closed already".into(),
            ));
        }
        let closed = store::find(&self.db, &report.id)
            .await?
            .ok_or(REPORT_NOT_FOUND)?;
        tracing::info!(report_id = %closed.id, "a report was closed");
        Ok(wire(&closed, None))
    }
}

/// A report as staff read it; `group_name`: the listing's name now.
fn wire(r: &store::Model, group_name: Option<String>) -> pb::StaffReport {
    let suggestion = r.group_id.is_empty();
    pb::StaffReport {
        id: r.id.clone(),
        group_id: r.group_id.clone(),
        group_name: if suggestion {
            r.suggested_name.clone()
        } else {
            group_name.unwrap_or_default()
        },
        suggestion,
        message: r.message.clone(),
        reply_to: r.reply_to.clone(),
        received_at: Some(to_timestamp(r.received_at_ms)),
        closed: r.closed_at_ms.is_some(),
        closing_note: r.closing_note.clone(),
    }
}
