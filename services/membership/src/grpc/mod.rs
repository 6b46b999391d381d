//! The MembershipService RPCs: wire ↔ domain, authorisation, one transaction per
//! change with its event in the outbox.

use std::time::Duration;

use sea_orm::{DatabaseConnection, TransactionTrait};
use selfhelp_platform::auth::Caller;
use selfhelp_platform::grpc::{require_caller, trace_parent};
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::time::{now_ms, to_timestamp};
use selfhelp_platform::trace::TraceParent;
use selfhelp_platform::validation::{self, Violations};
use selfhelp_proto::common::v1::PageResponse;
use selfhelp_proto::listings::v1 as listings_pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_proto::membership::v1::membership_service_server::MembershipService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::domain::membership::{GroupFacts, JoinDecision, Role, State, decide_join};
use crate::error::MembershipError;
use crate::events;
use crate::store::membership;
use selfhelp_platform::group_view;

pub struct MembershipApi {
    db: DatabaseConnection,
    outbox: Outbox,
    region: String,
    listings: Option<ListingsServiceClient<Channel>>,
}

impl MembershipApi {
    pub fn new(
        db: DatabaseConnection,
        outbox: Outbox,
        region: String,
        listings_url: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let listings = if listings_url.is_empty() {
            None
        } else {
            // Lazy: listings may start after us; each call has its own deadline.
            let channel = Channel::from_shared(listings_url.to_string())?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_lazy();
            Some(ListingsServiceClient::new(channel))
        };
        Ok(Self {
            db,
            outbox,
            region,
            listings,
        })
    }

    fn check_region(&self, caller: &Caller) -> Result<(), MembershipError> {
        if caller.region == self.region {
            Ok(())
        } else {
            Err(MembershipError::PermissionDenied(
                "your token is for another region",
            ))
        }
    }

    /// The group as the read model knows it, unless that is behind: a group not
    /// (yet) known or not (yet) published there is checked with listings directly,
    /// so a join right after publishing works. The caller's own token is passed on,
    /// so listings shows them exactly what it would show them (an organiser sees
    /// their draft and the organiser list; others see published groups only).
    async fn group_facts(
        &self,
        group_id: &str,
        authorization: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        trace: &TraceParent,
    ) -> Result<GroupFacts, MembershipError> {
        let view = group_view::find(&self.db, group_id)
            .await?
            .map(|v| GroupFacts {
                organiser_ids: v.organiser_ids(),
                region: v.region,
                status: v.status,
                join_policy: v.join_policy,
            });
        if view.as_ref().is_some_and(|v| v.status == "PUBLISHED") {
            return Ok(view.expect("checked"));
        }
        let Some(mut client) = self.listings.clone() else {
            return view.ok_or(MembershipError::GroupNotFound);
        };
        let mut request = tonic::Request::new(listings_pb::GetGroupRequest {
            group_id: group_id.to_string(),
        });
        if let Some(auth) = authorization {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        // Same trace across the hop, so the logs of both services line up.
        if let Ok(value) = trace.child().to_string().parse() {
            request
                .metadata_mut()
                .insert(selfhelp_platform::trace::HEADER, value);
        }
        match client.get_group(request).await {
            Ok(resp) => {
                let g = resp.into_inner();
                let organiser_ids = match (&view, g.organiser_ids.is_empty()) {
                    // Listings hides organisers from non-organisers; the read model knows them.
                    (Some(v), true) => v.organiser_ids.clone(),
                    _ => g.organiser_ids,
                };
                Ok(GroupFacts {
                    region: g.region,
                    status: status_name(g.status),
                    join_policy: join_policy_name(g.join_policy),
                    organiser_ids,
                })
            }
            // Not visible to this caller in listings: the read model's answer stands.
            Err(s) if s.code() == Code::NotFound => view.ok_or(MembershipError::GroupNotFound),
            Err(s) => {
                tracing::warn!(status = %s, "listings fallback failed");
                view.ok_or(MembershipError::ListingsUnavailable)
            }
        }
    }
}

fn status_name(v: i32) -> String {
    listings_pb::GroupStatus::try_from(v)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("GROUP_STATUS_")
                .to_string()
        })
        .unwrap_or_default()
}

fn join_policy_name(v: i32) -> String {
    listings_pb::JoinPolicy::try_from(v)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOIN_POLICY_")
                .to_string()
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MembershipService for MembershipApi {
    async fn join_group(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let caller = require_caller(&request)?;
        let trace = trace_parent(&request);
        let mut v = Violations::new();
        let group_id = v.uuid("group_id", &request.get_ref().group_id);
        v.into_result().map_err(MembershipError::from)?;
        let group_id = group_id.expect("checked").to_string();
        self.check_region(&caller)?;

        let authorization = request.metadata().get("authorization").cloned();
        let facts = self
            .group_facts(&group_id, authorization.as_ref(), &trace)
            .await?;
        if facts.region != self.region {
            return Err(MembershipError::GroupNotFound.into());
        }
        let result: Result<membership::Model, MembershipError> = async {
            let txn = self.db.begin().await?;
            let existing = membership::find_for(&txn, &group_id, &caller.person_id).await?;
            let decision = decide_join(
                &facts,
                &caller.person_id,
                existing.as_ref().map(|m| m.state()),
            )
            .map_err(MembershipError::FailedPrecondition)?;
            let m = match decision {
                JoinDecision::AlreadyActive => existing.expect("active implies a row"),
                JoinDecision::Activate(role) => {
                    let m = membership::activate(
                        &txn,
                        existing,
                        &group_id,
                        &caller.person_id,
                        role,
                        now_ms(),
                    )
                    .await?;
                    events::record_joined(&txn, &self.outbox, &m, &trace).await?;
                    m
                }
            };
            txn.commit().await?;
            Ok(m)
        }
        .await;
        let m = match result {
            // A simultaneous join by the same person won the race: answer with it.
            Err(MembershipError::Db(e)) if selfhelp_platform::db::is_unique_violation(&e) => {
                membership::find_for(&self.db, &group_id, &caller.person_id)
                    .await
                    .map_err(MembershipError::from)?
                    .ok_or(MembershipError::Db(e))?
            }
            other => other?,
        };
        self.outbox.wake();
        let name = group_view::find(&self.db, &group_id)
            .await
            .ok()
            .flatten()
            .map(|g| g.name);
        Ok(Response::new(membership_to_wire(
            &m,
            name.unwrap_or_default(),
        )))
    }

    async fn list_my_memberships(
        &self,
        request: Request<pb::ListMyMembershipsRequest>,
    ) -> Result<Response<pb::ListMyMembershipsResponse>, Status> {
        let caller = require_caller(&request)?;
        self.check_region(&caller)?;
        let page = request.into_inner().page.unwrap_or_default();
        let mut v = Violations::new();
        let limit = validation::page_size(&mut v, "page.page_size", page.page_size, 20, 100);
        let offset = validation::page_offset(&mut v, "page.page_token", &page.page_token);
        v.into_result().map_err(MembershipError::from)?;
        let (rows, total) = membership::list_for_person(&self.db, &caller.person_id, offset, limit)
            .await
            .map_err(MembershipError::from)?;
        let mut memberships = Vec::with_capacity(rows.len());
        for m in &rows {
            let name = group_view::find(&self.db, &m.group_id)
                .await
                .map_err(MembershipError::from)?
                .map(|g| g.name)
                .unwrap_or_default();
            memberships.push(membership_to_wire(m, name));
        }
        let next = offset + rows.len() as u64;
        Ok(Response::new(pb::ListMyMembershipsResponse {
            memberships,
            page: Some(PageResponse {
                next_page_token: if next < total {
                    validation::encode_page_offset(next)
                } else {
                    String::new()
                },
                total_size: total as i64,
            }),
        }))
    }
}

fn membership_to_wire(m: &membership::Model, group_name: String) -> pb::Membership {
    let state = match m.state() {
        State::Invited => pb::MembershipState::Invited,
        State::Requested => pb::MembershipState::Requested,
        State::Active => pb::MembershipState::Active,
        State::Declined => pb::MembershipState::Declined,
        State::Left => pb::MembershipState::Left,
        State::Removed => pb::MembershipState::Removed,
        State::Banned => pb::MembershipState::Banned,
    };
    let role = match m.role() {
        Role::Member => pb::GroupRole::Member,
        Role::Organiser => pb::GroupRole::Organiser,
        Role::CoOrganiser => pb::GroupRole::CoOrganiser,
    };
    pb::Membership {
        id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        state: state.into(),
        role: role.into(),
        group_name,
        joined_at: Some(to_timestamp(m.joined_at_ms)),
        version: m.version,
    }
}
