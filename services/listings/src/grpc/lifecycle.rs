//! Editing, moderation and freshness of group cards over the wire.

use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_platform::bad_request::OffsetPage;
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::listings::served;
use selfhelp_proto::listings::v1 as pb;

use super::{
    ListingsApi, details_from_wire, format_from_wire, group_id, join_policy_from_wire,
    venue_from_wire,
};
use crate::config::SignificantEdits;
use crate::domain::group::{self as domain, Transition};
use crate::error::GROUP_CHANGED;
use crate::error::ServiceError;
use crate::store::group::{self as store, Model};
use crate::store::{history, pending_edit};

/// Longest reason accepted for a suspension or archiving.
const MAX_REASON: usize = 2_000;

impl ListingsApi {
    /// A group the caller may manage: its organisers and the region's operators.
    /// Others get NOT_FOUND for what they can't see, PERMISSION_DENIED otherwise.
    pub(super) async fn manageable(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Model, ServiceError> {
        let id = group_id("group_id", id)?;
        let group = self.visible_group(&id, Some(caller)).await?;
        if !domain::can_manage(&group.region, &group.organiser_ids(), caller) {
            return Err(ServiceError::PermissionDenied(
                "only the group's organisers or the region's operators can do this",
            ));
        }
        Ok(group)
    }

    pub(super) async fn update_group(
        &self,
        caller: &Caller,
        req: pb::UpdateGroupRequest,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let mut v = Violations::new();
        v.uuid("group_id", &req.group_id);
        if req.expected_version <= 0 {
            v.add(
                "expected_version",
                "must be the version you read (optimistic concurrency)",
            );
        }
        v.into_result()?;
        let (group_id, expected_version) = (req.group_id.clone(), req.expected_version);
        // Kept as sent, should the edit wait for an operator.
        let as_sent = prost::Message::encode_to_vec(&req);
        let taxonomy = self.taxonomy().await?;
        let card = domain::validate(card_draft!(req), &taxonomy)?;
        let group = self.manageable(caller, &group_id).await?;
        if group.version != expected_version {
            return Err(GROUP_CHANGED);
        }
        if group.status() == domain::Status::Archived {
            return Err(ServiceError::FailedPrecondition(
                "an archived group can't be edited".into(),
            ));
        }
        let changes = domain::changed_fields(&group.card(), &card);
        if changes.is_empty() {
            return self.managed_view(&group, caller).await;
        }
        let back_to = domain::back_to_review(group.status());
        let checked_first = !caller.is_operator_of(&self.region)
            && domain::is_significant(&changes)
            && back_to.is_some();
        let updated = match (checked_first, self.significant_edits, back_to) {
            (true, SignificantEdits::Approval, _) => {
                // The whole edit waits; the listing stays as it is.
                self.workflow
                    .hold_edit(&group, as_sent, &changes, &caller.person_id)
                    .await?;
                tracing::info!(group_id = %group.id, "significant edit held for approval");
                group
            }
            (true, SignificantEdits::Review, Some(back_to)) => {
                let updated = self
                    .workflow
                    .update_card_for_review(
                        &group,
                        &card,
                        &changes,
                        &caller.person_id,
                        back_to,
                        trace,
                    )
                    .await?;
                tracing::info!(group_id = %updated.id, status = %updated.status, "significant edit sent the listing back to review");
                updated
            }
            _ => {
                self.workflow
                    .update_card(&group, &card, &changes, &caller.person_id, trace)
                    .await?
            }
        };
        self.managed_view(&updated, caller).await
    }

    /// The group as its organisers and operators see it, with an edit waiting
    /// for approval if there is one.
    pub(super) async fn managed_view(
        &self,
        group: &Model,
        caller: &Caller,
    ) -> Result<pb::Group, ServiceError> {
        let mut wire = self.to_wire(group, Some(caller));
        wire.pending_edit = self.pending_edit_of(group, caller).await?;
        Ok(wire)
    }

    /// The edit of `group` waiting for approval, for those who manage it.
    pub(super) async fn pending_edit_of(
        &self,
        group: &Model,
        caller: &Caller,
    ) -> Result<Option<pb::PendingEdit>, ServiceError> {
        if !domain::can_manage(&group.region, &group.organiser_ids(), caller) {
            return Ok(None);
        }
        let Some(held) = pending_edit::find(&self.db, &group.id).await? else {
            return Ok(None);
        };
        let changes = held
            .changes()
            .into_iter()
            .map(|(field, old_value, new_value)| pb::FieldChange {
                field,
                old_value,
                new_value,
                changed_by: held.edited_by.clone(),
                changed_at: Some(to_timestamp(held.edited_at_ms)),
                version: held.base_version,
            })
            .collect();
        Ok(Some(pb::PendingEdit { changes }))
    }

    /// An operator's decision on the edit held for `group`: approving applies
    /// what it changed (as its organiser asked), rejecting drops it with `note`.
    pub(super) async fn decide_held_edit(
        &self,
        group: Model,
        held: pending_edit::Model,
        transition: Transition,
        note: Option<String>,
        caller: &Caller,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let decided = if transition == Transition::Approve {
            let req: pb::UpdateGroupRequest = prost::Message::decode(held.request.as_slice())
                .map_err(|e| {
                    ServiceError::FailedPrecondition(format!(
                        "the held edit cannot be read ({e}); reject it"
                    ))
                })?;
            let taxonomy = self.taxonomy().await?;
            let edit = domain::validate(card_draft!(req), &taxonomy).map_err(|v| {
                let problems: Vec<String> = v.iter().map(|(f, d)| format!("{f}: {d}")).collect();
                ServiceError::FailedPrecondition(format!(
                    "the held edit no longer passes the checks ({}); reject it",
                    problems.join("; ")
                ))
            })?;
            let fields: Vec<String> = held.changes().into_iter().map(|(f, _, _)| f).collect();
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let current = group.card();
            let card = domain::with_fields_of(&current, &edit, &fields);
            let changes = domain::changed_fields(&current, &card);
            self.workflow
                .approve_edit(
                    &group,
                    &card,
                    &changes,
                    &held.edited_by,
                    &caller.person_id,
                    trace,
                )
                .await?
        } else {
            let note = note.unwrap_or_default();
            self.workflow
                .reject_edit(&group, note, &caller.person_id, trace)
                .await?
        };
        tracing::info!(group_id = %decided.id, approved = transition == Transition::Approve, "held edit decided");
        self.managed_view(&decided, caller).await
    }

    pub(super) async fn group_history(
        &self,
        caller: &Caller,
        req: pb::GetGroupHistoryRequest,
    ) -> Result<pb::GetGroupHistoryResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 50, 200);
        v.into_result()?;
        let group = self.manageable(caller, &req.group_id).await?;
        let (rows, total) = history::list(&self.db, &group.id, page.offset, page.limit).await?;
        let page = page.answer(rows.len(), total);
        Ok(pb::GetGroupHistoryResponse {
            changes: rows
                .into_iter()
                .map(|c| pb::FieldChange {
                    field: c.field,
                    old_value: c.old_value,
                    new_value: c.new_value,
                    changed_by: c.changed_by,
                    changed_at: Some(to_timestamp(c.changed_at_ms)),
                    version: c.version,
                })
                .collect(),
            page: Some(page),
        })
    }

    /// Start (organisers), suspend and reinstate (operators), archive (either).
    pub(super) async fn lifecycle_step(
        &self,
        caller: &Caller,
        id: &str,
        transition: Transition,
        reason: &str,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let mut v = Violations::new();
        v.uuid("group_id", id);
        v.text(
            "reason",
            reason,
            transition == Transition::Suspend,
            MAX_REASON,
        );
        v.into_result()?;
        let operator_only = matches!(transition, Transition::Suspend | Transition::Reinstate);
        if operator_only && !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only operators of this region can do this",
            ));
        }
        let group = self.manageable(caller, id).await?;
        if transition == Transition::Start && !group.organiser_ids().contains(&caller.person_id) {
            return Err(ServiceError::PermissionDenied(
                "only the group's organisers can start it",
            ));
        }
        let note = (!reason.trim().is_empty()).then(|| reason.trim().to_string());
        let updated = self
            .transition(group, transition, note, caller, trace)
            .await?;
        tracing::info!(group_id = %updated.id, status = %updated.status, "group status changed");
        Ok(self.to_wire(&updated, Some(caller)))
    }

    pub(super) async fn review_queue(
        &self,
        caller: &Caller,
        req: pb::ListReviewQueueRequest,
    ) -> Result<served::ListReviewQueueResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 20, 100);
        v.into_result()?;
        if !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only operators of this region see the review queue",
            ));
        }
        let (rows, total) =
            store::review_queue(&self.db, &self.region, page.offset, page.limit).await?;
        let mut groups = Vec::with_capacity(rows.len());
        for g in &rows {
            groups.push(self.managed_view(g, caller).await?.into());
        }
        Ok(served::ListReviewQueueResponse {
            groups,
            page: Some(page.answer(rows.len(), total)),
        })
    }

    /// Published groups whose check lapsed, for operators to look at.
    pub(super) async fn stale_groups(
        &self,
        caller: &Caller,
        req: pb::ListStaleGroupsRequest,
    ) -> Result<served::ListStaleGroupsResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 20, 100);
        v.into_result()?;
        if !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only operators of this region see the listings not checked lately",
            ));
        }
        let now = self.clock.now_ms();
        let cutoff = now - self.freshness.max_age_days * domain::DAY_MS;
        let (rows, total) =
            store::stale(&self.db, &self.region, cutoff, page.offset, page.limit).await?;
        let out_after = self.freshness.out_of_search_after_days();
        let out_of_search_ids = rows
            .iter()
            .filter(|g| !domain::in_search(g.assured_at_ms, now, out_after))
            .map(|g| g.id.clone())
            .collect();
        let mut groups = Vec::with_capacity(rows.len());
        for g in &rows {
            groups.push(self.managed_view(g, caller).await?.into());
        }
        Ok(served::ListStaleGroupsResponse {
            groups,
            page: Some(page.answer(rows.len(), total)),
            out_of_search_ids,
        })
    }

    /// The groups `caller` organises here, newest first, as they see them.
    pub(super) async fn managed_groups(
        &self,
        caller: &Caller,
        req: pb::ListManagedGroupsRequest,
    ) -> Result<served::ListManagedGroupsResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 20, 100);
        v.into_result()?;
        let rows = store::managed_by(&self.db, &self.region, &caller.person_id).await?;
        let total = rows.len() as u64;
        let mut groups = Vec::new();
        for g in rows
            .iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
        {
            groups.push(self.managed_view(g, caller).await?.into());
        }
        let shown = groups.len();
        Ok(served::ListManagedGroupsResponse {
            groups,
            page: Some(page.answer(shown, total)),
        })
    }

    /// Reviewed proposals, newest first, as the public sees them.
    pub(super) async fn proposed_groups(
        &self,
        req: pb::ListProposedGroupsRequest,
    ) -> Result<served::ListProposedGroupsResponse, ServiceError> {
        let mut v = Violations::new();
        let page = OffsetPage::asked(&mut v, req.page.as_ref(), 20, 100);
        v.into_result()?;
        let (rows, total) =
            store::listed_proposals(&self.read, &self.region, page.offset, page.limit).await?;
        Ok(served::ListProposedGroupsResponse {
            groups: rows.iter().map(|g| self.to_wire(g, None).into()).collect(),
            page: Some(page.answer(rows.len(), total)),
        })
    }

    pub(super) async fn confirm_details(
        &self,
        caller: &Caller,
        id: &str,
        checked_at_ms: Option<i64>,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let group = self.manageable(caller, id).await?;
        if checked_at_ms.is_some() && checked_at_ms != group.assured_at_ms {
            return Err(ServiceError::FailedPrecondition(
                "these details were confirmed after this link was sent: nothing more to do".into(),
            ));
        }
        if group.status() == domain::Status::Archived {
            return Err(ServiceError::FailedPrecondition(
                "an archived group can't be confirmed".into(),
            ));
        }
        // Organisers keep their listing checked while it is fresh; once the
        // check is overdue, someone other than its authors must look again.
        let overdue = !domain::recently_checked(
            group.assured_at_ms,
            self.clock.now_ms(),
            self.freshness.max_age_days,
        );
        if overdue && !caller.is_operator_of(&self.region) {
            return Err(ServiceError::FailedPrecondition(format!(
                "this listing was last checked over {} days ago: an operator of the region checks it now",
                self.freshness.max_age_days
            )));
        }
        let updated = self
            .workflow
            .confirm(&group, &caller.person_id, trace)
            .await?;
        Ok(self.to_wire(&updated, Some(caller)))
    }
}
