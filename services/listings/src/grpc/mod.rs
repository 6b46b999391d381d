//! The ListingsService RPCs: wire ↔ domain, authorisation, one transaction per
//! change with its event in the outbox.

use sea_orm::DatabaseConnection;
use selfhelp_core::caller::Caller;
use selfhelp_core::time::{Clock, to_timestamp};
use selfhelp_core::validation::Violations;
use selfhelp_platform::db::Databases;
use selfhelp_platform::grpc::{answer, caller, caller_in_region, require_caller, trace_parent};
use selfhelp_proto::listings::served::{
    self, EncodedGroup, listings_service_server::ListingsService,
};
use selfhelp_proto::listings::v1 as pb;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::config::{FreshnessConfig, SignificantEdits};
use crate::domain::group::{self as domain, Status as GroupStatus, Transition};
use crate::domain::topic as topics;
use crate::error::ServiceError;
use crate::error::{GROUP_NOT_FOUND, TOPIC_NOT_FOUND};
use crate::search::cards::Render;
use crate::search::maintain::Indexer;
use crate::store::group::{self as store, Model};
use crate::store::{pending_edit, topic as topic_store};
use crate::workflow::Workflow;
use selfhelp_core::postcode::PostcodeTable;

/// Builds the domain draft from CreateGroupRequest or UpdateGroupRequest: both
/// carry the whole card under the same field names.
macro_rules! card_draft {
    ($req:expr) => {{
        let req = $req;
        $crate::domain::group::GroupDraft {
            name: req.name,
            summary: req.summary,
            description: req.description,
            topics: req.topics,
            format: format_from_wire(req.format),
            join_policy: join_policy_from_wire(req.join_policy),
            venues: req.venues.into_iter().map(venue_from_wire).collect(),
            details: details_from_wire(
                req.eligibility,
                req.area_served,
                req.contact,
                req.cost,
                req.languages,
                req.capacity,
                req.welcome_with_joining_details,
            ),
            joining_details: req.joining_details,
        }
    }};
}

mod lifecycle;
mod oruk;
mod privacy;
mod reports;
mod schedule;
mod search;

pub struct ListingsApi {
    db: DatabaseConnection,
    /// Plain reads (group cards, search pages, the taxonomy): never behind a write.
    read: DatabaseConnection,
    /// Every change: its transaction, its event, the index refreshed.
    workflow: Workflow,
    region: String,
    tz: chrono_tz::Tz,
    freshness: FreshnessConfig,
    /// What an organiser's significant edit of a listed group waits for.
    significant_edits: SignificantEdits,
    search: Indexer,
    postcodes: Arc<PostcodeTable>,
    /// Decides what is overdue and which meetings are next.
    clock: Clock,
    open_reports_per_region: u64,
}

/// What the region's settings give the API.
pub struct Settings {
    pub region: String,
    pub tz: chrono_tz::Tz,
    pub freshness: FreshnessConfig,
    pub significant_edits: SignificantEdits,
    pub open_reports_per_region: u64,
    pub clock: Clock,
}

impl ListingsApi {
    pub fn new(
        db: Databases,
        workflow: Workflow,
        search: Indexer,
        postcodes: Arc<PostcodeTable>,
        settings: Settings,
    ) -> Self {
        let Settings {
            region,
            tz,
            freshness,
            significant_edits,
            open_reports_per_region,
            clock,
        } = settings;
        Self {
            db: db.write,
            read: db.read,
            workflow,
            region,
            tz,
            freshness,
            significant_edits,
            search,
            postcodes,
            clock,
            open_reports_per_region,
        }
    }

    /// The region's taxonomy, as the domain rules see it.
    async fn taxonomy(&self) -> Result<Vec<topics::TopicNode>, ServiceError> {
        Ok(topic_store::list(&self.read, &self.region)
            .await?
            .iter()
            .map(topic_store::Model::node)
            .collect())
    }

    /// Only operators of this region manage the taxonomy.
    fn require_operator(&self, request_caller: &Caller) -> Result<(), ServiceError> {
        if request_caller.is_operator_of(&self.region) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(
                "only operators of this region can manage topics",
            ))
        }
    }

    /// Loads a topic of this region, or NOT_FOUND naming what was missing.
    async fn topic(&self, field: &str, id: &str) -> Result<topic_store::Model, ServiceError> {
        let mut v = Violations::new();
        let id = v.uuid(field, id);
        v.into_result()?;
        topic_store::find(&self.db, &self.region, &id.expect("checked").to_string())
            .await?
            .ok_or(TOPIC_NOT_FOUND)
    }

    /// Loads a group the caller may see; anything else is NOT_FOUND.
    async fn visible_group(
        &self,
        id: &str,
        caller: Option<&Caller>,
    ) -> Result<Model, ServiceError> {
        let group = store::find(&self.read, id).await?.ok_or(GROUP_NOT_FOUND)?;
        if domain::can_view(
            group.status(),
            &group.region,
            &group.organiser_ids(),
            caller,
        ) {
            Ok(group)
        } else {
            Err(GROUP_NOT_FOUND)
        }
    }

    /// Takes `group` one lifecycle step on behalf of `caller`.
    async fn transition(
        &self,
        group: Model,
        transition: Transition,
        note: Option<String>,
        caller: &Caller,
        trace: &selfhelp_platform::trace::TraceParent,
    ) -> Result<Model, ServiceError> {
        self.workflow
            .transition(&group, transition, note, &caller.person_id, trace)
            .await
    }
}

/// A group answer, encoded once for the server (ADR 25).
fn sent(group: pb::Group) -> Response<EncodedGroup> {
    Response::new(group.into())
}

fn group_id(field: &str, value: &str) -> Result<String, ServiceError> {
    let mut v = Violations::new();
    let id = v.uuid(field, value);
    v.into_result()?;
    Ok(id.expect("valid when no violation").to_string())
}

#[tonic::async_trait]
impl ListingsService for ListingsApi {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let trace = trace_parent(&request);
            let req = request.into_inner();
            let initial = if req.proposed {
                GroupStatus::Proposed
            } else {
                GroupStatus::Draft
            };
            let taxonomy = self.taxonomy().await?;
            let new = domain::validate(card_draft!(req), &taxonomy)?;
            let group = self
                .workflow
                .create_group(&self.region, &caller.person_id, &new, initial, &trace)
                .await?;
            tracing::info!(group_id = %group.id, "group created");
            Ok(self.to_wire(&group, Some(&caller)))
        })
        .await
        .map(|answered| answered.map(EncodedGroup::from))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let id = group_id("group_id", &request.get_ref().group_id)?;
        let caller = caller(&request);
        // The public (anyone who does not manage the group) reads a published
        // group's card from memory; its managers see more, from the database.
        if let Some(card) = self.search.card(&id)
            && !caller.is_some_and(|c| domain::can_manage(&card.region, &card.organisers, c))
        {
            return Ok(Response::new(self.public_answer(
                &card,
                schedule::NEXT_MEETINGS,
                true,
            )));
        }
        let group = self.visible_group(&id, caller).await?;
        Ok(sent(self.with_meetings(&group, caller).await?))
    }

    async fn submit_group(
        &self,
        request: Request<pb::SubmitGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let id = group_id("group_id", &request.get_ref().group_id)?;
        let group = self.visible_group(&id, Some(&caller)).await?;
        if !group.organiser_ids().contains(&caller.person_id) {
            return Err(ServiceError::PermissionDenied(
                "only the group's organisers can submit it",
            )
            .into());
        }
        let group = self
            .transition(group, Transition::Submit, None, &caller, &trace)
            .await?;
        Ok(sent(self.to_wire(&group, Some(&caller))))
    }

    async fn review_group(
        &self,
        request: Request<pb::ReviewGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        answer(async {
            let caller = require_caller(&request)?;
            let trace = trace_parent(&request);
            let req = request.into_inner();
            let mut v = Violations::new();
            let id = v.uuid("group_id", &req.group_id);
            let decision = pb::ReviewDecision::try_from(req.decision).ok();
            let transition = match decision {
                Some(pb::ReviewDecision::Approve) => Some(Transition::Approve),
                Some(pb::ReviewDecision::Reject) => Some(Transition::Reject),
                _ => {
                    v.add("decision", "must be APPROVE or REJECT");
                    None
                }
            };
            v.text(
                "note",
                &req.note,
                transition == Some(Transition::Reject),
                2_000,
            );
            v.into_result()?;
            let (id, transition) = (
                id.expect("checked").to_string(),
                transition.expect("checked"),
            );
            if !caller.is_operator_of(&self.region) {
                return Err(ServiceError::PermissionDenied(
                    "only operators of this region can review groups",
                ));
            }
            let group = self.visible_group(&id, Some(&caller)).await?;
            let note = (transition == Transition::Reject).then(|| req.note.trim().to_string());
            // A listed group is reviewed for the edit it holds, if any.
            if group.status().is_public()
                && let Some(held) = pending_edit::find(&self.db, &group.id).await?
            {
                return self
                    .decide_held_edit(group, held, transition, note, &caller, &trace)
                    .await;
            }
            let group = self
                .transition(group, transition, note, &caller, &trace)
                .await?;
            tracing::info!(group_id = %group.id, status = %group.status, "group reviewed");
            self.managed_view(&group, &caller).await
        })
        .await
        .map(|answered| answered.map(EncodedGroup::from))
    }

    async fn search_groups(
        &self,
        request: Request<pb::SearchGroupsRequest>,
    ) -> Result<Response<served::SearchGroupsResponse>, Status> {
        Ok(Response::new(
            self.search_groups(request.into_inner()).await?,
        ))
    }

    async fn set_schedule(
        &self,
        request: Request<pb::SetScheduleRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        Ok(sent(
            self.set_schedule(&caller, request.into_inner(), &trace)
                .await?,
        ))
    }

    async fn cancel_occurrence(
        &self,
        request: Request<pb::CancelOccurrenceRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        Ok(sent(
            self.cancel_occurrence(&caller, request.into_inner(), &trace)
                .await?,
        ))
    }

    async fn move_occurrence(
        &self,
        request: Request<pb::MoveOccurrenceRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        Ok(sent(
            self.move_occurrence(&caller, request.into_inner(), &trace)
                .await?,
        ))
    }

    async fn add_one_off_meeting(
        &self,
        request: Request<pb::AddOneOffMeetingRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        Ok(sent(
            self.add_one_off(&caller, request.into_inner(), &trace)
                .await?,
        ))
    }

    async fn export_group_calendar(
        &self,
        request: Request<pb::ExportGroupCalendarRequest>,
    ) -> Result<Response<pb::ExportGroupCalendarResponse>, Status> {
        let id = group_id("group_id", &request.get_ref().group_id)?;
        let group = self.visible_group(&id, caller(&request)).await?;
        Ok(Response::new(self.export_calendar(&group).await?))
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        Ok(sent(
            self.update_group(&caller, request.into_inner(), &trace)
                .await?,
        ))
    }

    async fn export_my_data(
        &self,
        request: Request<pb::ExportMyDataRequest>,
    ) -> Result<Response<pb::ExportMyDataResponse>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(self.export_my_data(&caller).await?))
    }

    async fn get_group_history(
        &self,
        request: Request<pb::GetGroupHistoryRequest>,
    ) -> Result<Response<pb::GetGroupHistoryResponse>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(
            self.group_history(&caller, request.into_inner()).await?,
        ))
    }

    async fn start_group(
        &self,
        request: Request<pb::StartGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let id = request.into_inner().group_id;
        Ok(sent(
            self.lifecycle_step(&caller, &id, Transition::Start, "", &trace)
                .await?,
        ))
    }

    async fn suspend_group(
        &self,
        request: Request<pb::SuspendGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let req = request.into_inner();
        Ok(sent(
            self.lifecycle_step(
                &caller,
                &req.group_id,
                Transition::Suspend,
                &req.reason,
                &trace,
            )
            .await?,
        ))
    }

    async fn reinstate_group(
        &self,
        request: Request<pb::ReinstateGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let id = request.into_inner().group_id;
        Ok(sent(
            self.lifecycle_step(&caller, &id, Transition::Reinstate, "", &trace)
                .await?,
        ))
    }

    async fn archive_group(
        &self,
        request: Request<pb::ArchiveGroupRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let req = request.into_inner();
        Ok(sent(
            self.lifecycle_step(
                &caller,
                &req.group_id,
                Transition::Archive,
                &req.reason,
                &trace,
            )
            .await?,
        ))
    }

    async fn list_review_queue(
        &self,
        request: Request<pb::ListReviewQueueRequest>,
    ) -> Result<Response<served::ListReviewQueueResponse>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(
            self.review_queue(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_stale_groups(
        &self,
        request: Request<pb::ListStaleGroupsRequest>,
    ) -> Result<Response<served::ListStaleGroupsResponse>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(
            self.stale_groups(&caller, request.into_inner()).await?,
        ))
    }

    async fn report_to_staff(
        &self,
        request: Request<pb::ReportToStaffRequest>,
    ) -> Result<Response<pb::ReportToStaffResponse>, Status> {
        let caller = caller_in_region(&request, &self.region)?;
        Ok(Response::new(
            self.report_to_staff(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_staff_reports(
        &self,
        request: Request<pb::ListStaffReportsRequest>,
    ) -> Result<Response<pb::ListStaffReportsResponse>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(
            self.staff_reports(&caller, request.into_inner()).await?,
        ))
    }

    async fn close_staff_report(
        &self,
        request: Request<pb::CloseStaffReportRequest>,
    ) -> Result<Response<pb::StaffReport>, Status> {
        let caller = require_caller(&request)?;
        Ok(Response::new(
            self.close_staff_report(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn list_managed_groups(
        &self,
        request: Request<pb::ListManagedGroupsRequest>,
    ) -> Result<Response<served::ListManagedGroupsResponse>, Status> {
        let caller = caller_in_region(&request, &self.region)?;
        Ok(Response::new(
            self.managed_groups(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_proposed_groups(
        &self,
        request: Request<pb::ListProposedGroupsRequest>,
    ) -> Result<Response<served::ListProposedGroupsResponse>, Status> {
        Ok(Response::new(
            self.proposed_groups(request.into_inner()).await?,
        ))
    }

    async fn confirm_group_details(
        &self,
        request: Request<pb::ConfirmGroupDetailsRequest>,
    ) -> Result<Response<EncodedGroup>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let req = request.into_inner();
        let checked_at_ms = match &req.checked_at {
            None => None,
            Some(t) => {
                let ms = selfhelp_core::time::timestamp_ms(t);
                if ms.is_none() {
                    let mut v = Violations::new();
                    v.add("checked_at", "is not a time");
                    return Err(ServiceError::from(v).into());
                }
                ms
            }
        };
        Ok(sent(
            self.confirm_details(&caller, &req.group_id, checked_at_ms, &trace)
                .await?,
        ))
    }

    async fn export_open_referral(
        &self,
        request: Request<pb::ExportOpenReferralRequest>,
    ) -> Result<Response<pb::ExportOpenReferralResponse>, Status> {
        answer(async {
            let req = request.into_inner();
            let mut v = Violations::new();
            let (page, per_page) = oruk::numbered_page(&mut v, req.page, req.per_page);
            v.into_result()?;
            let (rows, total) =
                store::published_page(&self.db, &self.region, (page - 1) * per_page, per_page)
                    .await?;
            let topics = topic_store::list(&self.db, &self.region).await?;
            let contents = rows.iter().map(|g| self.service_doc(g, &topics)).collect();
            let doc = crate::oruk::page(contents, total, page, per_page);
            Ok(pb::ExportOpenReferralResponse {
                page_json: doc.to_string(),
            })
        })
        .await
    }

    async fn export_open_referral_taxonomy(
        &self,
        _request: Request<pb::ExportOpenReferralTaxonomyRequest>,
    ) -> Result<Response<pb::ExportOpenReferralTaxonomyResponse>, Status> {
        answer(async {
            let topics = topic_store::list(&self.db, &self.region).await?;
            let taxonomy_id = crate::oruk::taxonomy_id(&self.region);
            let terms: Vec<_> = topics
                .iter()
                .filter(|t| t.retired_at_ms.is_none())
                .map(|t| crate::oruk::term_doc(t, &taxonomy_id))
                .collect();
            Ok(pb::ExportOpenReferralTaxonomyResponse {
                taxonomy_json: crate::oruk::taxonomy_doc(&self.region).to_string(),
                taxonomy_terms_json: serde_json::Value::Array(terms).to_string(),
            })
        })
        .await
    }

    async fn export_directory_calendar(
        &self,
        request: Request<pb::ExportDirectoryCalendarRequest>,
    ) -> Result<Response<pb::ExportGroupCalendarResponse>, Status> {
        Ok(Response::new(
            self.export_directory_calendar(request.into_inner()).await?,
        ))
    }

    async fn search_open_referral(
        &self,
        request: Request<pb::SearchOpenReferralRequest>,
    ) -> Result<Response<pb::SearchOpenReferralResponse>, Status> {
        Ok(Response::new(
            self.search_open_referral(request.into_inner()).await?,
        ))
    }

    async fn import_open_referral(
        &self,
        request: Request<pb::ImportOpenReferralRequest>,
    ) -> Result<Response<pb::ImportOpenReferralResponse>, Status> {
        answer(async {
            let caller = caller_in_region(&request, &self.region)?;
            let trace = trace_parent(&request);
            self.import_open_referral(&caller, request.into_inner(), &trace)
                .await
        })
        .await
    }

    async fn get_open_referral_service(
        &self,
        request: Request<pb::GetOpenReferralServiceRequest>,
    ) -> Result<Response<pb::GetOpenReferralServiceResponse>, Status> {
        Ok(Response::new(
            self.get_open_referral_service(request.into_inner()).await?,
        ))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        answer(async {
            let include_retired = request.get_ref().include_retired;
            let rows = topic_store::list(&self.read, &self.region).await?;
            let ordered =
                topics::parents_first(rows.iter().map(topic_store::Model::node).collect());
            let topics = ordered
                .iter()
                .filter(|n| include_retired || !n.retired)
                .filter_map(|n| rows.iter().find(|r| r.id == n.id))
                .map(topic_to_wire)
                .collect();
            Ok(pb::ListTopicsResponse { topics })
        })
        .await
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::Topic>, Status> {
        answer(async {
            let caller = require_caller(&request)?;
            let trace = trace_parent(&request);
            let req = request.into_inner();
            let mut v = Violations::new();
            let code = req.code.trim().to_ascii_lowercase();
            topics::check_code(&mut v, "code", &code);
            v.line("name", &req.name, true, topics::MAX_NAME);
            v.text(
                "description",
                &req.description,
                false,
                topics::MAX_DESCRIPTION,
            );
            if !req.parent_id.is_empty() {
                v.uuid("parent_id", &req.parent_id);
            }
            v.into_result()?;
            self.require_operator(&caller)?;
            let parent = if req.parent_id.is_empty() {
                None
            } else {
                Some(self.topic("parent_id", &req.parent_id).await?)
            };
            if parent.as_ref().is_some_and(|p| p.retired_at_ms.is_some()) {
                return Err(ServiceError::FailedPrecondition(
                    "the parent topic is retired".into(),
                ));
            }
            let taxonomy = self.taxonomy().await?;
            if taxonomy.iter().any(|t| t.code == code) {
                return Err(ServiceError::AlreadyExists(format!(
                    "topic code {code} is taken"
                )));
            }
            let now = self.clock.now_ms();
            let row = topic_store::Model {
                id: topics::stable_id(&self.region, &code).to_string(),
                region: self.region.clone(),
                code,
                name: req.name.trim().to_string(),
                description: req.description.trim().to_string(),
                parent_id: parent.map(|p| p.id),
                retired_at_ms: None,
                replaced_by_id: None,
                created_at_ms: now,
                updated_at_ms: now,
            };
            let created = self.workflow.save_topic(row, "created", &trace).await?;
            tracing::info!(topic = %created.code, "topic created");
            Ok(topic_to_wire(&created))
        })
        .await
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::Topic>, Status> {
        answer(async {
            let caller = require_caller(&request)?;
            let trace = trace_parent(&request);
            let req = request.into_inner();
            let mut v = Violations::new();
            v.uuid("topic_id", &req.topic_id);
            v.line("name", &req.name, true, topics::MAX_NAME);
            v.text(
                "description",
                &req.description,
                false,
                topics::MAX_DESCRIPTION,
            );
            if !req.parent_id.is_empty() {
                v.uuid("parent_id", &req.parent_id);
            }
            v.into_result()?;
            self.require_operator(&caller)?;
            let mut topic = self.topic("topic_id", &req.topic_id).await?;
            let parent_id = if req.parent_id.is_empty() {
                None
            } else {
                let parent = self.topic("parent_id", &req.parent_id).await?;
                if topics::would_cycle(&self.taxonomy().await?, &topic.id, &parent.id) {
                    let mut v = Violations::new();
                    v.add("parent_id", "would put the topic below itself");
                    return Err(ServiceError::from(v));
                }
                Some(parent.id)
            };
            topic.name = req.name.trim().to_string();
            topic.description = req.description.trim().to_string();
            topic.parent_id = parent_id;
            topic.updated_at_ms = self.clock.now_ms();
            let saved = self.workflow.save_topic(topic, "updated", &trace).await?;
            Ok(topic_to_wire(&saved))
        })
        .await
    }

    async fn retire_topic(
        &self,
        request: Request<pb::RetireTopicRequest>,
    ) -> Result<Response<pb::Topic>, Status> {
        answer(async {
            let caller = require_caller(&request)?;
            let trace = trace_parent(&request);
            let req = request.into_inner();
            let mut v = Violations::new();
            v.uuid("topic_id", &req.topic_id);
            v.uuid("replacement_id", &req.replacement_id);
            if req.topic_id.trim() == req.replacement_id.trim() {
                v.add("replacement_id", "must be another topic");
            }
            v.into_result()?;
            self.require_operator(&caller)?;
            let mut topic = self.topic("topic_id", &req.topic_id).await?;
            let replacement = self.topic("replacement_id", &req.replacement_id).await?;
            if topic.retired_at_ms.is_some() {
                return Err(ServiceError::FailedPrecondition(
                    "the topic is already retired".into(),
                ));
            }
            if replacement.retired_at_ms.is_some() {
                return Err(ServiceError::FailedPrecondition(
                    "the replacement is retired too".into(),
                ));
            }
            let taxonomy = self.taxonomy().await?;
            let has_live_children = taxonomy
                .iter()
                .any(|t| t.parent_id.as_deref() == Some(topic.id.as_str()) && !t.retired);
            if has_live_children {
                return Err(ServiceError::FailedPrecondition(
                    "move or retire the topics below it first".into(),
                ));
            }
            let now = self.clock.now_ms();
            topic.retired_at_ms = Some(now);
            topic.replaced_by_id = Some(replacement.id);
            topic.updated_at_ms = now;
            let saved = self.workflow.save_topic(topic, "retired", &trace).await?;
            tracing::info!(topic = %saved.code, "topic retired");
            Ok(topic_to_wire(&saved))
        })
        .await
    }
}

fn format_from_wire(value: i32) -> Option<domain::Format> {
    match pb::MeetingFormat::try_from(value).ok()? {
        pb::MeetingFormat::InPerson => Some(domain::Format::InPerson),
        pb::MeetingFormat::Online => Some(domain::Format::Online),
        pb::MeetingFormat::Phone => Some(domain::Format::Phone),
        pb::MeetingFormat::Hybrid => Some(domain::Format::Hybrid),
        pb::MeetingFormat::Unspecified => None,
    }
}

fn format_to_wire(value: &str) -> pb::MeetingFormat {
    match domain::Format::parse(value) {
        Some(domain::Format::InPerson) => pb::MeetingFormat::InPerson,
        Some(domain::Format::Online) => pb::MeetingFormat::Online,
        Some(domain::Format::Phone) => pb::MeetingFormat::Phone,
        Some(domain::Format::Hybrid) => pb::MeetingFormat::Hybrid,
        None => pb::MeetingFormat::Unspecified,
    }
}

fn join_policy_from_wire(value: i32) -> Option<domain::JoinPolicy> {
    match pb::JoinPolicy::try_from(value).ok()? {
        pb::JoinPolicy::Open => Some(domain::JoinPolicy::Open),
        pb::JoinPolicy::Approval => Some(domain::JoinPolicy::Approval),
        pb::JoinPolicy::InviteOnly => Some(domain::JoinPolicy::InviteOnly),
        pb::JoinPolicy::Unspecified => None,
    }
}

fn join_policy_to_wire(value: &str) -> pb::JoinPolicy {
    match domain::JoinPolicy::parse(value) {
        Some(domain::JoinPolicy::Open) => pb::JoinPolicy::Open,
        Some(domain::JoinPolicy::Approval) => pb::JoinPolicy::Approval,
        Some(domain::JoinPolicy::InviteOnly) => pb::JoinPolicy::InviteOnly,
        None => pb::JoinPolicy::Unspecified,
    }
}

fn status_to_wire(status: GroupStatus) -> pb::GroupStatus {
    match status {
        GroupStatus::Proposed => pb::GroupStatus::Proposed,
        GroupStatus::ProposalPendingReview => pb::GroupStatus::ProposalPendingReview,
        GroupStatus::ProposalListed => pb::GroupStatus::ProposalListed,
        GroupStatus::Draft => pb::GroupStatus::Draft,
        GroupStatus::PendingReview => pb::GroupStatus::PendingReview,
        GroupStatus::Published => pb::GroupStatus::Published,
        GroupStatus::Suspended => pb::GroupStatus::Suspended,
        GroupStatus::Archived => pb::GroupStatus::Archived,
    }
}

fn venue_from_wire(v: pb::Venue) -> domain::Venue {
    domain::Venue {
        name: v.name,
        address: v.address,
        town: v.town,
        postcode: v.postcode,
        latitude: v.latitude,
        longitude: v.longitude,
        accessibility: v.accessibility,
        travel_notes: v.travel_notes,
    }
}

fn venue_to_wire(v: domain::Venue) -> pb::Venue {
    pb::Venue {
        name: v.name,
        address: v.address,
        town: v.town,
        postcode: v.postcode,
        latitude: v.latitude,
        longitude: v.longitude,
        accessibility: v.accessibility,
        travel_notes: v.travel_notes,
    }
}

fn details_from_wire(
    eligibility: Option<pb::Eligibility>,
    area_served: String,
    contact: Option<pb::Contact>,
    cost: Option<pb::Cost>,
    languages: Vec<String>,
    capacity: i32,
    welcome_with_joining_details: bool,
) -> domain::DetailsDraft {
    let eligibility = eligibility.unwrap_or_default();
    let contact = contact.unwrap_or_default();
    let cost = cost.unwrap_or_default();
    let (kind, unknown) = match pb::CostKind::try_from(cost.kind) {
        Ok(pb::CostKind::Unspecified) => (None, false),
        Ok(pb::CostKind::Free) => (Some(domain::CostKind::Free), false),
        Ok(pb::CostKind::Donation) => (Some(domain::CostKind::Donation), false),
        Ok(pb::CostKind::Fee) => (Some(domain::CostKind::Fee), false),
        Err(_) => (None, true),
    };
    domain::DetailsDraft {
        eligibility: eligibility.description,
        minimum_age: eligibility.minimum_age,
        maximum_age: eligibility.maximum_age,
        carers_welcome: eligibility.carers_welcome,
        family_welcome: eligibility.family_welcome,
        area_served,
        contact: domain::Contact {
            name: contact.name,
            email: contact.email,
            phone: contact.phone,
            website: contact.website,
        },
        cost: kind,
        cost_unknown: unknown,
        cost_description: cost.description,
        languages,
        capacity,
        welcome_with_joining_details,
    }
}

impl ListingsApi {
    /// The card as a client sees it.
    pub(crate) fn to_wire(&self, g: &Model, caller: Option<&Caller>) -> pb::Group {
        let mut wire = group_to_wire(g, caller, &self.tz);
        wire.assured_date = assured_date(g, &self.tz);
        wire.recently_checked = domain::recently_checked(
            g.assured_at_ms,
            self.clock.now_ms(),
            self.freshness.max_age_days,
        );
        wire
    }
}

/// Renders a group as the public sees it, for the cards kept in memory
/// (`search::cards`): what `GetGroup` shows a stranger, but the next meetings.
pub fn public_card_render(tz: chrono_tz::Tz) -> Render {
    Arc::new(
        move |g: &Model, exceptions: &[crate::store::exception::Model]| {
            let mut wire = group_to_wire(g, None, &tz);
            wire.assured_date = assured_date(g, &tz);
            wire.exceptions = exceptions.iter().map(schedule::exception_to_wire).collect();
            wire
        },
    )
}

fn assured_date(g: &Model, tz: &chrono_tz::Tz) -> String {
    g.assured_at_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.with_timezone(tz).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The card as a client sees it. Organiser ids link a person to a possibly
/// health-related group, so only the group's managers see them.
fn group_to_wire(g: &Model, caller: Option<&Caller>, tz: &chrono_tz::Tz) -> pb::Group {
    let show_organisers =
        caller.is_some_and(|c| domain::can_manage(&g.region, &g.organiser_ids(), c));
    let details = g.details();
    pb::Group {
        id: g.id.clone(),
        region: g.region.clone(),
        name: g.name.clone(),
        summary: g.summary.clone(),
        description: g.description.clone(),
        topics: g.topics(),
        format: format_to_wire(&g.format).into(),
        join_policy: join_policy_to_wire(&g.join_policy).into(),
        venues: g.venues().into_iter().map(venue_to_wire).collect(),
        status: status_to_wire(g.status()).into(),
        organiser_ids: if show_organisers {
            g.organiser_ids()
        } else {
            Vec::new()
        },
        version: g.version,
        created_at: Some(to_timestamp(g.created_at_ms)),
        updated_at: Some(to_timestamp(g.updated_at_ms)),
        review_note: g.review_note.clone().unwrap_or_default(),
        schedule: g.schedule().map(|s| schedule::schedule_to_wire(&s, tz)),
        next_occurrences: Vec::new(),
        exceptions: Vec::new(),
        assured_date: String::new(),
        recently_checked: false,
        eligibility: Some(pb::Eligibility {
            description: details.eligibility.clone(),
            minimum_age: details.minimum_age.map(i32::from).unwrap_or(0),
            maximum_age: details.maximum_age.map(i32::from).unwrap_or(0),
            carers_welcome: details.carers_welcome,
            family_welcome: details.family_welcome,
        }),
        area_served: details.area_served.clone(),
        contact: Some(pb::Contact {
            name: details.contact.name.clone(),
            email: details.contact.email.clone(),
            phone: details.contact.phone.clone(),
            website: details.contact.website.clone(),
        }),
        cost: Some(pb::Cost {
            kind: match details.cost {
                None => pb::CostKind::Unspecified,
                Some(domain::CostKind::Free) => pb::CostKind::Free,
                Some(domain::CostKind::Donation) => pb::CostKind::Donation,
                Some(domain::CostKind::Fee) => pb::CostKind::Fee,
            }
            .into(),
            description: details.cost_description.clone(),
        }),
        languages: details.languages.clone(),
        capacity: details.capacity.map(|c| c as i32).unwrap_or(0),
        // Member-only: only the group's managers see it here.
        joining_details: if show_organisers {
            g.joining_details.clone().unwrap_or_default()
        } else {
            String::new()
        },
        welcome_with_joining_details: show_organisers && details.welcome_with_joining_details,
        // Read separately, for those who manage the group (`managed_view`).
        pending_edit: None,
    }
}

fn topic_to_wire(t: &topic_store::Model) -> pb::Topic {
    pb::Topic {
        id: t.id.clone(),
        code: t.code.clone(),
        name: t.name.clone(),
        description: t.description.clone(),
        parent_id: t.parent_id.clone().unwrap_or_default(),
        retired: t.retired_at_ms.is_some(),
        replaced_by_id: t.replaced_by_id.clone().unwrap_or_default(),
    }
}
