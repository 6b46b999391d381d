//! The MembershipService RPCs: wire ↔ domain and who may ask; each change is
//! one call to the application layer (`crate::workflow`), which owns its
//! transaction and events. `joining` holds how people come and go, `managing`
//! what organisers do, `personal` what a person does about their own data,
//! `rota` the shared duties.

mod committees;
mod erasure;
mod forum;
mod joining;
mod managing;
mod personal;
mod rota;
mod sharing;

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use selfhelp_core::caller::Caller;
use selfhelp_core::time::{Clock, to_timestamp};
use selfhelp_core::validation::Violations;
use selfhelp_group_view as group_view;
use selfhelp_platform::bad_request::OffsetPage;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::supervise::Supervisor;
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as listings_pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_proto::membership::v1::membership_service_server::MembershipService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::config::{AnnouncementsConfig, Config, PrivacyConfig};
use crate::domain::membership::{GroupFacts, Permission, Role, State, may};
use crate::error::ServiceError;
use crate::error::{GROUP_NOT_FOUND, LISTINGS_UNAVAILABLE};
use crate::store::{group_settings, membership};
use crate::workflow::Workflow;
use crate::workflow::join_writer::JoinWriter;
use selfhelp_platform::db::Databases;

/// How long a call to listings refused before it started waits to be sent again.
const LISTINGS_RETRY_AFTER: Duration = Duration::from_millis(100);
/// Only a refusal this quick is retried: a listings that does not answer at all
/// (a connection timing out) is not waited for twice.
const LISTINGS_QUICK_REFUSAL: Duration = Duration::from_millis(500);

pub struct MembershipApi {
    db: DatabaseConnection,
    /// Plain reads on the hot paths (the group's facts, a membership's card):
    /// never behind a write.
    read: DatabaseConnection,
    /// Every change, each in its transaction with its events.
    workflow: Workflow,
    /// Writes joins, many in one transaction when they come together.
    joins: JoinWriter,
    region: String,
    listings: Option<ListingsServiceClient<Channel>>,
    privacy: PrivacyConfig,
    announcements: AnnouncementsConfig,
    /// How erasure requests are filed without naming the person.
    names: selfhelp_platform::privacy::Pseudonyms,
    /// Decides what is overdue and which duty turn is next.
    clock: Clock,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl MembershipService for MembershipApi {
    async fn join_group(&self, r: Request<pb::JoinGroupRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.join(r).await?))
    }
    async fn list_my_memberships(
        &self,
        r: Request<pb::ListMyMembershipsRequest>,
    ) -> Reply<pb::ListMyMembershipsResponse> {
        Ok(Response::new(self.my_memberships(r).await?))
    }
    async fn get_my_place(&self, r: Request<pb::GetMyPlaceRequest>) -> Reply<pb::MyPlace> {
        Ok(Response::new(self.my_place(r).await?))
    }
    async fn approve_request(&self, r: Request<pb::DecideRequestRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.decide(r, true).await?))
    }
    async fn decline_request(&self, r: Request<pb::DecideRequestRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.decide(r, false).await?))
    }
    async fn create_invitation(
        &self,
        r: Request<pb::CreateInvitationRequest>,
    ) -> Reply<pb::Invitation> {
        Ok(Response::new(self.invite(r).await?))
    }
    async fn leave_group(&self, r: Request<pb::LeaveGroupRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.leave(r).await?))
    }
    async fn remove_member(&self, r: Request<pb::RemoveMemberRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.remove(r).await?))
    }
    async fn assign_role(&self, r: Request<pb::AssignRoleRequest>) -> Reply<pb::Membership> {
        Ok(Response::new(self.set_role(r).await?))
    }
    async fn send_announcement(
        &self,
        r: Request<pb::SendAnnouncementRequest>,
    ) -> Reply<pb::Announcement> {
        Ok(Response::new(self.announce(r).await?))
    }
    async fn list_group_members(
        &self,
        r: Request<pb::ListGroupMembersRequest>,
    ) -> Reply<pb::ListGroupMembersResponse> {
        Ok(Response::new(self.members(r).await?))
    }
    async fn update_my_membership(
        &self,
        r: Request<pb::UpdateMyMembershipRequest>,
    ) -> Reply<pb::Membership> {
        Ok(Response::new(self.update_mine(r).await?))
    }
    async fn get_group_settings(
        &self,
        r: Request<pb::GetGroupSettingsRequest>,
    ) -> Reply<pb::GroupSettings> {
        Ok(Response::new(self.settings(r).await?))
    }
    async fn update_group_settings(
        &self,
        r: Request<pb::UpdateGroupSettingsRequest>,
    ) -> Reply<pb::GroupSettings> {
        Ok(Response::new(self.update_settings(r).await?))
    }
    async fn follow_group(&self, r: Request<pb::FollowGroupRequest>) -> Reply<pb::Follow> {
        Ok(Response::new(self.follow(r).await?))
    }
    async fn unfollow_group(
        &self,
        r: Request<pb::FollowGroupRequest>,
    ) -> Reply<pb::UnfollowGroupResponse> {
        Ok(Response::new(self.unfollow(r).await?))
    }
    async fn list_my_follows(
        &self,
        r: Request<pb::ListMyFollowsRequest>,
    ) -> Reply<pb::ListMyFollowsResponse> {
        Ok(Response::new(self.my_follows(r).await?))
    }
    async fn withdraw_consent(
        &self,
        r: Request<pb::WithdrawConsentRequest>,
    ) -> Reply<pb::Membership> {
        Ok(Response::new(self.withdraw(r).await?))
    }
    async fn export_my_data(
        &self,
        r: Request<pb::ExportMyDataRequest>,
    ) -> Reply<pb::ExportMyDataResponse> {
        Ok(Response::new(self.export(r).await?))
    }
    async fn set_rota(&self, r: Request<pb::SetRotaRequest>) -> Reply<pb::DutyRota> {
        Ok(Response::new(self.set_rota(r).await?))
    }
    async fn get_rota(&self, r: Request<pb::GetRotaRequest>) -> Reply<pb::GetRotaResponse> {
        Ok(Response::new(self.rotas(r).await?))
    }
    async fn skip_my_turn(&self, r: Request<pb::SkipMyTurnRequest>) -> Reply<pb::DutyRota> {
        Ok(Response::new(self.skip_turn(r).await?))
    }
    async fn swap_turns(&self, r: Request<pb::SwapTurnsRequest>) -> Reply<pb::DutyRota> {
        Ok(Response::new(self.swap(r).await?))
    }

    async fn answer_swap(&self, r: Request<pb::AnswerSwapRequest>) -> Reply<pb::DutyRota> {
        Ok(Response::new(self.answer_swap(r).await?))
    }

    async fn get_sharing(&self, r: Request<pb::GetSharingRequest>) -> Reply<pb::Sharing> {
        Ok(Response::new(self.sharing(r).await?))
    }

    async fn correct_duty_record(
        &self,
        r: Request<pb::CorrectDutyRecordRequest>,
    ) -> Reply<pb::DutyRecord> {
        Ok(Response::new(self.correct_record(r).await?))
    }

    async fn get_my_sharing(&self, r: Request<pb::GetMySharingRequest>) -> Reply<pb::MySharing> {
        Ok(Response::new(self.my_sharing(r).await?))
    }

    async fn set_my_sharing(&self, r: Request<pb::SetMySharingRequest>) -> Reply<pb::MySharing> {
        Ok(Response::new(self.set_my_sharing(r).await?))
    }
    async fn update_group_practice(
        &self,
        r: Request<pb::UpdateGroupPracticeRequest>,
    ) -> Reply<pb::GroupPractice> {
        Ok(Response::new(self.update_practice(r).await?))
    }
    async fn get_forum(&self, r: Request<pb::GetForumRequest>) -> Reply<pb::Forum> {
        Ok(Response::new(self.forum(r).await?))
    }
    async fn add_agenda_item(&self, r: Request<pb::AddAgendaItemRequest>) -> Reply<pb::AgendaItem> {
        Ok(Response::new(self.add_agenda_item(r).await?))
    }
    async fn remove_agenda_item(
        &self,
        r: Request<pb::RemoveAgendaItemRequest>,
    ) -> Reply<pb::RemoveAgendaItemResponse> {
        Ok(Response::new(self.remove_agenda_item(r).await?))
    }
    async fn write_meeting_notes(
        &self,
        r: Request<pb::WriteMeetingNotesRequest>,
    ) -> Reply<pb::MeetingNotes> {
        Ok(Response::new(self.write_notes(r).await?))
    }
    async fn mark_attendance(
        &self,
        r: Request<pb::MarkAttendanceRequest>,
    ) -> Reply<pb::MarkAttendanceResponse> {
        Ok(Response::new(self.mark_attendance(r).await?))
    }
    async fn list_knowledge(
        &self,
        r: Request<pb::ListKnowledgeRequest>,
    ) -> Reply<pb::ListKnowledgeResponse> {
        Ok(Response::new(self.knowledge(r).await?))
    }
    async fn add_knowledge(&self, r: Request<pb::AddKnowledgeRequest>) -> Reply<pb::KnowledgeItem> {
        Ok(Response::new(self.add_knowledge(r).await?))
    }
    async fn remove_knowledge(
        &self,
        r: Request<pb::RemoveKnowledgeRequest>,
    ) -> Reply<pb::RemoveKnowledgeResponse> {
        Ok(Response::new(self.remove_knowledge(r).await?))
    }
    async fn list_committees(
        &self,
        r: Request<pb::ListCommitteesRequest>,
    ) -> Reply<pb::ListCommitteesResponse> {
        Ok(Response::new(self.committees(r).await?))
    }
    async fn save_committee(&self, r: Request<pb::SaveCommitteeRequest>) -> Reply<pb::Committee> {
        Ok(Response::new(self.save_committee(r).await?))
    }
    async fn delete_committee(
        &self,
        r: Request<pb::DeleteCommitteeRequest>,
    ) -> Reply<pb::DeleteCommitteeResponse> {
        Ok(Response::new(self.delete_committee(r).await?))
    }
    async fn send_committee_notice(
        &self,
        r: Request<pb::SendCommitteeNoticeRequest>,
    ) -> Reply<pb::CommitteeNotice> {
        Ok(Response::new(self.committee_notice(r).await?))
    }
    async fn erase_me(&self, r: Request<pb::EraseMeRequest>) -> Reply<pb::ErasureStatus> {
        Ok(Response::new(self.erase(r).await?))
    }
    async fn get_erasure_status(
        &self,
        r: Request<pb::GetErasureStatusRequest>,
    ) -> Reply<pb::ErasureStatus> {
        Ok(Response::new(self.erasure_status(r).await?))
    }
    async fn list_overdue_erasures(
        &self,
        r: Request<pb::ListOverdueErasuresRequest>,
    ) -> Reply<pb::ListOverdueErasuresResponse> {
        Ok(Response::new(self.overdue_erasures(r).await?))
    }
}

impl MembershipApi {
    pub fn new(
        db: Databases,
        outbox: Outbox,
        config: &Config,
        names: selfhelp_platform::privacy::Pseudonyms,
        clock: Clock,
        workers: &Supervisor,
    ) -> anyhow::Result<Self> {
        let url = &config.listings.url;
        let listings = if url.is_empty() {
            None
        } else {
            // Lazy: listings may start after us; each call has its own deadline
            // (a quick refusal is asked once more: see `group_as_listed`).
            let timeout = Duration::from_millis(config.listings.timeout_ms);
            let channel = selfhelp_platform::tls::endpoint("listings", url, &config.listings.tls)?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_lazy();
            Some(ListingsServiceClient::new(channel))
        };
        Ok(Self {
            joins: JoinWriter::start(db.write.clone(), outbox.clone(), clock.clone(), workers),
            workflow: Workflow {
                db: db.write.clone(),
                outbox,
                clock: clock.clone(),
            },
            db: db.write,
            read: db.read,
            region: config.common.region.clone(),
            listings,
            privacy: config.privacy.clone(),
            announcements: config.announcements.clone(),
            names,
            clock,
        })
    }

    /// The signed-in caller, if their token is for this region. Operators of other
    /// regions see nothing here.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ServiceError> {
        selfhelp_platform::grpc::caller_in_region(request, &self.region)
    }

    /// The group as the read model knows it, in any status; for everything but
    /// joining and following. A group the read model does not know (yet: its
    /// event may still be on the way) is asked of listings as
    /// [`current_group`](Self::current_group) does, so an organiser who acts on
    /// a group at once is not told it does not exist.
    async fn known_group<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
    ) -> Result<GroupFacts, ServiceError> {
        self.group_as_listed(request, group_id, |_| true).await
    }

    /// The group as the read model knows it, unless that is behind: a group not
    /// (yet) known there, or not (yet) in one of the `open` statuses the call
    /// needs, is checked with listings directly, so a join right after
    /// publishing works. The caller's own token is passed on, so listings shows
    /// them exactly what it would show them. When listings cannot be asked, a
    /// read model that does not show the group open is no answer: UNAVAILABLE
    /// (retry), never a refusal.
    async fn current_group<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
        open: &[&str],
    ) -> Result<GroupFacts, ServiceError> {
        self.group_as_listed(request, group_id, |g| open.contains(&g.status.as_str()))
            .await
    }

    /// The read model's view of the group when `enough` says it will do, else
    /// listings' (see [`current_group`](Self::current_group)): a call that the
    /// read model's view would refuse passes `enough` false for it, so it is
    /// never refused on a view that may only be behind.
    pub(super) async fn group_as_listed<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
        enough: impl Fn(&GroupFacts) -> bool,
    ) -> Result<GroupFacts, ServiceError> {
        let view = group_view::find(&self.read, group_id).await?.map(facts_of);
        if let Some(v) = view.as_ref().filter(|v| enough(v)) {
            if v.region != self.region {
                return Err(GROUP_NOT_FOUND);
            }
            return Ok(view.expect("checked"));
        }
        let Some(mut client) = self.listings.clone() else {
            return view.ok_or(GROUP_NOT_FOUND);
        };
        // Same trace across the hop (a client span of its own), so the logs
        // and traces of both services line up.
        let (trace, mut hop) = selfhelp_platform::otel::hop(
            "selfhelp.listings.v1.ListingsService/GetGroup",
            opentelemetry::trace::SpanKind::Client,
            Some(&selfhelp_platform::grpc::trace_parent(request)),
            selfhelp_platform::otel::rpc_attributes(
                "/selfhelp.listings.v1.ListingsService/GetGroup",
            ),
        );
        let ask = || {
            let mut ask = Request::new(listings_pb::GetGroupRequest {
                group_id: group_id.to_string(),
            });
            if let Some(auth) = request.metadata().get("authorization") {
                ask.metadata_mut().insert("authorization", auth.clone());
            }
            if let Ok(value) = trace.to_string().parse() {
                ask.metadata_mut()
                    .insert(selfhelp_platform::trace::HEADER, value);
            }
            ask
        };
        let asked = std::time::Instant::now();
        let mut answer = client.get_group(ask()).await;
        // A listings replica that is stopping refuses calls it never started,
        // and one that is restarting refuses connections; the next replica (or
        // the same one, back) answers a moment later. A read is safe to repeat.
        if let Err(status) = &answer
            && asked.elapsed() < LISTINGS_QUICK_REFUSAL
            && (status.code() == Code::Unavailable
                || selfhelp_platform::grpc::never_started(status))
        {
            tokio::time::sleep(LISTINGS_RETRY_AFTER).await;
            answer = client.get_group(ask()).await;
        }
        if let Err(status) = &answer {
            hop.fail(format!("{:?}", status.code()));
        }
        drop(hop);
        let facts = match answer {
            Ok(resp) => {
                let g = resp.into_inner();
                let organiser_ids = match (&view, g.organiser_ids.is_empty()) {
                    // Listings hides organisers from non-organisers; the read model knows them.
                    (Some(v), true) => v.organiser_ids.clone(),
                    _ => g.organiser_ids,
                };
                GroupFacts {
                    name: g.name,
                    region: g.region,
                    status: status_name(g.status),
                    join_policy: join_policy_name(g.join_policy),
                    organiser_ids,
                    capacity: g.capacity,
                }
            }
            // Not visible to this caller in listings: the read model's answer stands.
            Err(s) if s.code() == Code::NotFound => view.ok_or(GROUP_NOT_FOUND)?,
            // The read model does not show the group open, and it may only be
            // behind (its event still on the way, or held by a replica that
            // died): refusing on it would turn a passing outage into a final no.
            // Any failure counts: one that is not a lost connection (a token
            // listings refuses, say) is in the warning for operators to see.
            Err(s) => {
                tracing::warn!(status = %s, "listings fallback failed");
                return Err(LISTINGS_UNAVAILABLE);
            }
        };
        if facts.region != self.region {
            return Err(GROUP_NOT_FOUND);
        }
        Ok(facts)
    }

    /// The caller's role in the group: from their active membership, or — for a
    /// group's creator who has no membership yet — from listings' organiser list.
    async fn role_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        group: &GroupFacts,
        group_id: &str,
        person: &str,
    ) -> Result<Option<Role>, ServiceError> {
        Ok(match membership::find_for(conn, group_id, person).await? {
            Some(m) if m.state() == State::Active => Some(m.role()),
            Some(_) => None,
            None if group.organiser_ids.iter().any(|o| o == person) => Some(Role::Organiser),
            None => None,
        })
    }

    /// The caller's role, if it allows `permission`; PERMISSION_DENIED otherwise.
    /// The group, when `person` may manage it (set its rotas and settings).
    async fn managing<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
        person: &str,
    ) -> Result<GroupFacts, ServiceError> {
        let facts = self.known_group(request, group_id).await?;
        self.require(&self.db, &facts, group_id, person, Permission::ManageGroup)
            .await?;
        Ok(facts)
    }

    async fn require<C: ConnectionTrait>(
        &self,
        conn: &C,
        group: &GroupFacts,
        group_id: &str,
        person: &str,
        permission: Permission,
    ) -> Result<Role, ServiceError> {
        let settings = group_settings::get(conn, group_id, 0).await?;
        match self.role_in(conn, group, group_id, person).await? {
            Some(role) if may(role, permission, settings.members_see_list()) => Ok(role),
            _ => Err(ServiceError::PermissionDenied(
                "your role in this group does not allow that",
            )),
        }
    }

    async fn group_name(&self, group_id: &str) -> Result<String, ServiceError> {
        Ok(group_view::find(&self.read, group_id)
            .await?
            .map(|g| g.name)
            .unwrap_or_default())
    }

    /// The wire form of `m`, with the group's name and waitlist place.
    async fn wire<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &membership::Model,
    ) -> Result<pb::Membership, ServiceError> {
        let name = self.group_name(&m.group_id).await?;
        self.wire_named(conn, m, name).await
    }

    /// [`MembershipApi::wire`] when the group's name is known.
    async fn wire_named<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &membership::Model,
        name: String,
    ) -> Result<pb::Membership, ServiceError> {
        let position = membership::waitlist_position(conn, m).await?;
        Ok(membership_to_wire(m, name, position))
    }
}

fn facts_of(v: group_view::Model) -> GroupFacts {
    GroupFacts {
        organiser_ids: v.organiser_ids(),
        name: v.name,
        region: v.region,
        status: v.status,
        join_policy: v.join_policy,
        capacity: v.capacity,
    }
}

/// `GROUP_STATUS_PUBLISHED` → `PUBLISHED`: the names listings' events use.
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

/// Validated paging: 20 a page by default, at most 100.
fn paging(v: &mut Violations, page: Option<PageRequest>) -> OffsetPage {
    OffsetPage::asked(v, page.as_ref(), 20, 100)
}

/// Checks an id field and returns it in canonical form.
fn uuid_field(v: &mut Violations, field: &str, value: &str) -> String {
    v.uuid(field, value)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

fn state_to_wire(s: State) -> pb::MembershipState {
    match s {
        State::Invited => pb::MembershipState::Invited,
        State::Requested => pb::MembershipState::Requested,
        State::Waitlisted => pb::MembershipState::Waitlisted,
        State::Active => pb::MembershipState::Active,
        State::Declined => pb::MembershipState::Declined,
        State::Left => pb::MembershipState::Left,
        State::Removed => pb::MembershipState::Removed,
        State::Banned => pb::MembershipState::Banned,
    }
}

fn state_from_wire(s: pb::MembershipState) -> Option<State> {
    Some(match s {
        pb::MembershipState::Unspecified => return None,
        pb::MembershipState::Invited => State::Invited,
        pb::MembershipState::Requested => State::Requested,
        pb::MembershipState::Waitlisted => State::Waitlisted,
        pb::MembershipState::Active => State::Active,
        pb::MembershipState::Declined => State::Declined,
        pb::MembershipState::Left => State::Left,
        pb::MembershipState::Removed => State::Removed,
        pb::MembershipState::Banned => State::Banned,
    })
}

fn role_to_wire(r: Role) -> pb::GroupRole {
    match r {
        Role::Member => pb::GroupRole::Member,
        Role::Organiser => pb::GroupRole::Organiser,
        Role::CoOrganiser => pb::GroupRole::CoOrganiser,
    }
}

fn membership_to_wire(m: &membership::Model, group_name: String, position: i32) -> pb::Membership {
    pb::Membership {
        id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        state: state_to_wire(m.state()).into(),
        role: role_to_wire(m.role()).into(),
        group_name,
        joined_at: Some(to_timestamp(m.joined_at_ms)),
        version: m.version,
        display_name: m.display_name.clone(),
        hidden: m.hidden,
        duties: m.duties(),
        waitlist_position: position,
        answer: m.answer.clone(),
        joining_details: String::new(),
    }
}

/// The trace of the request, for the events it causes.
fn trace_of<T>(request: &Request<T>) -> TraceParent {
    selfhelp_platform::grpc::trace_parent(request)
}
