//! What organisers and co-organisers do: decide requests, invite, remove and ban,
//! give roles and duties, see the member list, set the group's settings.

use std::collections::HashSet;

use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, membership_to_wire, paging, state_from_wire, trace_of, uuid_field};
use crate::domain::membership::{GroupFacts, Permission, Role, State, may};
use crate::error::MEMBERSHIP_NOT_FOUND;
use crate::error::ServiceError;
use crate::store::{follow, group_settings, invitation, membership};
use crate::workflow::Invite;

const MAX_MESSAGE: usize = 1_000;
/// `ListGroupMembers.states`: one of each of the eight, at most.
const MAX_STATES: usize = 8;
const MAX_QUESTION: usize = 500;
const MAX_DUTIES: usize = 10;
const MAX_DUTY_CHARS: usize = 40;
const MAX_ANNOUNCEMENT_TITLE: usize = 120;
const MAX_ANNOUNCEMENT_BODY: usize = 4_000;

impl MembershipApi {
    /// The membership `id` names and its group, if the caller may `permission` there.
    async fn managed_membership<T>(
        &self,
        request: &Request<T>,
        person: &str,
        id: &str,
        permission: Permission,
    ) -> Result<(membership::Model, GroupFacts, Role), ServiceError> {
        let m = membership::find(&self.db, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        let facts = self
            .known_group(request, &m.group_id)
            .await
            .map_err(|_| MEMBERSHIP_NOT_FOUND)?;
        let role = self
            .require(&self.db, &facts, &m.group_id, person, permission)
            .await?;
        Ok((m, facts, role))
    }

    pub(super) async fn decide(
        &self,
        request: Request<pb::DecideRequestRequest>,
        approve: bool,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = uuid_field(&mut v, "membership_id", &req.membership_id);
        v.text("message", &req.message, false, MAX_MESSAGE);
        v.into_result()?;
        let (_, facts, _) = self
            .managed_membership(&request, &caller.person_id, &id, Permission::ManageMembers)
            .await?;
        let decided = self
            .workflow
            .decide(&id, approve, req.message.trim(), facts.capacity, &trace)
            .await?;
        self.wire(&self.db, &decided).await
    }

    pub(super) async fn invite(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<pb::Invitation, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let person = req.person_id.trim();
        v.line("person_id", person, false, 128);
        let max_uses = match req.max_uses {
            0 => 1,
            n if (1..=1_000).contains(&n) => n,
            _ => {
                v.add("max_uses", "must be between 1 and 1000");
                1
            }
        };
        if !person.is_empty() && max_uses != 1 {
            v.add("max_uses", "a personal invitation is used once");
        }
        if req.organiser && !person.is_empty() {
            v.add("person_id", "an invitation to organise is a code");
        }
        if req.organiser && max_uses != 1 {
            v.add("max_uses", "an invitation to organise is used once");
        }
        let hours = match req.valid_hours {
            0 => 168,
            n if (1..=2_160).contains(&n) => n,
            _ => {
                v.add("valid_hours", "must be between 1 and 2160 (90 days)");
                168
            }
        };
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        if req.organiser {
            // The region's staff hand a group nobody runs to someone who will.
            if !caller.is_operator_of(&self.region) {
                return Err(ServiceError::PermissionDenied(
                    "only operators of this region invite someone to organise a group",
                ));
            }
            // Listings' word (which may lag) or an organiser's membership here.
            if !facts.organiser_ids.is_empty()
                || membership::count_active_with_role(&self.db, &group_id, Role::Organiser).await?
                    > 0
            {
                return Err(ServiceError::FailedPrecondition(
                    "this group has organisers: they invite co-organisers".into(),
                ));
            }
        } else {
            self.require(
                &self.db,
                &facts,
                &group_id,
                &caller.person_id,
                Permission::ManageMembers,
            )
            .await?;
        }
        if facts.status != "PUBLISHED" {
            return Err(ServiceError::FailedPrecondition(
                "only a published group can invite people".into(),
            ));
        }

        let invite = Invite {
            group_id: &group_id,
            person,
            created_by: &caller.person_id,
            max_uses,
            valid_hours: hours,
            organiser: req.organiser,
        };
        let code = person.is_empty().then(new_code);
        let inv = self.workflow.invite(invite, code, &trace).await?;
        Ok(invitation_to_wire(&inv))
    }

    /// An organiser's message to the group's members (and followers).
    pub(super) async fn announce(
        &self,
        request: Request<pb::SendAnnouncementRequest>,
    ) -> Result<pb::Announcement, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("title", &req.title, true, MAX_ANNOUNCEMENT_TITLE);
        v.text("body", &req.body, true, MAX_ANNOUNCEMENT_BODY);
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        self.require(
            &self.db,
            &facts,
            &group_id,
            &caller.person_id,
            Permission::ManageGroup,
        )
        .await?;
        if facts.status != "PUBLISHED" {
            return Err(ServiceError::FailedPrecondition(
                "only a listed group can message its members".into(),
            ));
        }
        let sent = self
            .workflow
            .announce(
                crate::workflow::Announce {
                    group_id: &group_id,
                    title: req.title.trim(),
                    body: req.body.trim(),
                    include_followers: req.include_followers,
                    per_day: self.announcements.per_group_per_day,
                },
                &trace,
            )
            .await?;
        tracing::info!(group_id = %group_id, announcement_id = %sent.id, "group announced");
        Ok(pb::Announcement {
            id: sent.id,
            group_id,
            title: req.title.trim().to_string(),
            body: req.body.trim().to_string(),
            include_followers: req.include_followers,
            sent_at: Some(to_timestamp(sent.sent_at_ms)),
        })
    }

    pub(super) async fn remove(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = uuid_field(&mut v, "membership_id", &req.membership_id);
        v.text("message", &req.message, false, MAX_MESSAGE);
        v.into_result()?;
        let (target, facts, my_role) = self
            .managed_membership(&request, &caller.person_id, &id, Permission::ManageMembers)
            .await?;
        if target.person_id == caller.person_id {
            return Err(ServiceError::FailedPrecondition(
                "use LeaveGroup to leave a group yourself".into(),
            ));
        }
        let ended = self
            .workflow
            .remove(
                &id,
                req.ban,
                my_role,
                req.message.trim(),
                facts.capacity,
                &trace,
            )
            .await?;
        self.wire(&self.db, &ended).await
    }

    pub(super) async fn set_role(
        &self,
        request: Request<pb::AssignRoleRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let id = uuid_field(&mut v, "membership_id", &req.membership_id);
        let role = match pb::GroupRole::try_from(req.role) {
            Ok(pb::GroupRole::Member) => Some(Role::Member),
            Ok(pb::GroupRole::CoOrganiser) => Some(Role::CoOrganiser),
            Ok(pb::GroupRole::Organiser) => Some(Role::Organiser),
            Ok(pb::GroupRole::Unspecified) => {
                v.add("role", "must be set");
                None
            }
            Err(_) => {
                v.add("role", "is not a known role");
                None
            }
        };
        let duties = clean_duties(&mut v, &req.duties);
        v.into_result()?;
        let role = role.expect("validated");
        self.managed_membership(&request, &caller.person_id, &id, Permission::AssignRoles)
            .await?;
        let updated = self.workflow.set_role(&id, role, &duties, &trace).await?;
        self.wire(&self.db, &updated).await
    }

    pub(super) async fn members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<pb::ListGroupMembersResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        // Each state once: there are eight, so a longer list only repeats them
        // (and would grow the query's IN list without bound).
        let mut states = Vec::new();
        if req.states.len() > MAX_STATES {
            v.add("states", format!("at most {MAX_STATES} states"));
        } else {
            for (i, s) in req.states.iter().enumerate() {
                match pb::MembershipState::try_from(*s)
                    .ok()
                    .and_then(state_from_wire)
                {
                    Some(state) if !states.contains(&state) => states.push(state),
                    Some(_) => {}
                    None => v.add(format!("states[{i}]"), "is not a membership state"),
                }
            }
        }
        let page = paging(&mut v, req.page.clone());
        v.into_result()?;
        if states.is_empty() {
            states.push(State::Active);
        }
        let facts = self.known_group(&request, &group_id).await?;
        let settings = group_settings::get(&self.db, &group_id, 0).await?;
        let role = self
            .role_in(&self.db, &facts, &group_id, &caller.person_id)
            .await?;
        let manager = role.is_some_and(|r| may(r, Permission::ManageMembers, false));
        let may_see =
            role.is_some_and(|r| may(r, Permission::SeeMemberList, settings.members_see_list()));
        if !may_see || (!manager && states.iter().any(|s| *s != State::Active)) {
            return Err(ServiceError::PermissionDenied(
                "this group's member list is visible to its organisers only",
            ));
        }
        let (rows, total) = membership::list_for_group(
            &self.db,
            &group_id,
            &states,
            manager,
            page.offset,
            page.limit,
        )
        .await?;
        let name = self.group_name(&group_id).await?;
        let mut members = Vec::with_capacity(rows.len());
        for m in &rows {
            let position = membership::waitlist_position(&self.db, m).await?;
            let mut wire = membership_to_wire(m, name.clone(), position);
            if !manager {
                // Fellow members see a name and a role, nothing that identifies the account.
                wire.person_id.clear();
                wire.answer.clear();
            }
            members.push(wire);
        }
        Ok(pb::ListGroupMembersResponse {
            page: Some(page.answer(rows.len(), total)),
            members,
        })
    }

    pub(super) async fn settings(
        &self,
        request: Request<pb::GetGroupSettingsRequest>,
    ) -> Result<pb::GroupSettings, ServiceError> {
        let caller = self.caller(&request)?;
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        let s = group_settings::get(&self.db, &group_id, 0).await?;
        let mut wire = settings_to_wire(&s);
        // Who follows a group is not told; how many, only to those running it.
        let runs_it = self
            .require(
                &self.read,
                &facts,
                &group_id,
                &caller.person_id,
                Permission::ManageGroup,
            )
            .await;
        match runs_it {
            Ok(_) => wire.followers = follow::count_for_group(&self.read, &group_id).await? as i64,
            Err(ServiceError::PermissionDenied(_)) => {}
            Err(other) => return Err(other),
        }
        Ok(wire)
    }

    pub(super) async fn update_settings(
        &self,
        request: Request<pb::UpdateGroupSettingsRequest>,
    ) -> Result<pb::GroupSettings, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.text("join_question", &req.join_question, false, MAX_QUESTION);
        let visibility = match pb::MemberListVisibility::try_from(req.member_list_visibility) {
            Ok(pb::MemberListVisibility::Unspecified) => None,
            Ok(pb::MemberListVisibility::Organisers) => Some(group_settings::ORGANISERS),
            Ok(pb::MemberListVisibility::Members) => Some(group_settings::MEMBERS),
            Err(_) => {
                v.add("member_list_visibility", "is not a known visibility");
                None
            }
        };
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        self.require(
            &self.db,
            &facts,
            &group_id,
            &caller.person_id,
            Permission::ManageGroup,
        )
        .await?;
        let saved = self
            .workflow
            .save_settings(&group_id, visibility, req.join_question.trim())
            .await?;
        Ok(settings_to_wire(&saved))
    }
}

/// Trimmed duties, each checked; repeats (ignoring case) are refused.
fn clean_duties(v: &mut Violations, duties: &[String]) -> Vec<String> {
    if duties.len() > MAX_DUTIES {
        v.add("duties", format!("at most {MAX_DUTIES} duties"));
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, duty) in duties.iter().enumerate() {
        let field = format!("duties[{i}]");
        let duty = duty.trim();
        v.line(&field, duty, true, MAX_DUTY_CHARS);
        if !seen.insert(duty.to_lowercase()) {
            v.add(field, "is listed twice");
        }
        out.push(duty.to_string());
    }
    out
}

/// A code people can read out and type: no 0/O, 1/I/L.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    uuid::Uuid::new_v4().as_bytes()[..12]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn invitation_to_wire(inv: &invitation::Model) -> pb::Invitation {
    pb::Invitation {
        id: inv.id.clone(),
        group_id: inv.group_id.clone(),
        code: inv.code.clone().unwrap_or_default(),
        person_id: inv.person_id.clone().unwrap_or_default(),
        max_uses: inv.max_uses,
        uses: inv.uses,
        expires_at: Some(to_timestamp(inv.expires_at_ms)),
        organiser: inv.makes_organiser(),
    }
}

fn settings_to_wire(s: &group_settings::Model) -> pb::GroupSettings {
    pb::GroupSettings {
        group_id: s.group_id.clone(),
        member_list_visibility: if s.members_see_list() {
            pb::MemberListVisibility::Members
        } else {
            pb::MemberListVisibility::Organisers
        }
        .into(),
        join_question: s.join_question.clone(),
        followers: 0,
        practice: Some(super::forum::practice_to_wire(s)),
    }
}
