//! How people come and go: join (by policy, invitation or waitlist), list their
//! memberships, leave.

use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, paging, uuid_field};
use crate::domain::membership::State;
use crate::error::ServiceError;
use crate::store::{follow, group_settings, membership};
use crate::workflow::join_writer::NewJoin;

pub(super) const MAX_DISPLAY_NAME: usize = 60;
const MAX_ANSWER: usize = 2_000;
const MAX_CONSENT_TEXT: usize = 4_000;
const MAX_CODE: usize = 64;

impl MembershipApi {
    pub(super) async fn join(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = super::trace_of(&request);
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        match &req.consent {
            None => v.add("consent", "joining needs the person's consent"),
            Some(c) => {
                v.line("consent.version", &c.version, true, 40);
                v.text("consent.text", &c.text, true, MAX_CONSENT_TEXT);
            }
        }
        v.text("answer", &req.answer, false, MAX_ANSWER);
        v.line("invitation_code", &req.invitation_code, false, MAX_CODE);
        v.line("display_name", &req.display_name, false, MAX_DISPLAY_NAME);
        v.into_result()?;
        // Published, and open to this join: a group the read model still
        // shows invitation-only may have opened since (its event on the way),
        // so without an invitation (or being its organiser) that is checked
        // with listings first.
        let has_code = !req.invitation_code.trim().is_empty();
        let facts = self
            .group_as_listed(&request, &group_id, |g| {
                g.status == "PUBLISHED"
                    && (has_code
                        || g.join_policy != "INVITE_ONLY"
                        || g.organiser_ids.contains(&caller.person_id))
            })
            .await?;
        let consent_given = req.consent.clone().expect("validated");
        let name = facts.name.clone();
        let join = NewJoin {
            group_id,
            person_id: caller.person_id,
            facts,
            consent_version: consent_given.version,
            consent_text: consent_given.text,
            answer: req.answer.clone(),
            display_name: req.display_name.clone(),
            hidden: req.hidden,
            code: req.invitation_code.trim().to_string(),
            trace,
        };
        let m = self.joins.write(join).await?;
        self.wire_named(&self.read, &m, name).await
    }

    pub(super) async fn my_memberships(
        &self,
        request: Request<pb::ListMyMembershipsRequest>,
    ) -> Result<pb::ListMyMembershipsResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let mut v = Violations::new();
        let page = paging(&mut v, request.into_inner().page);
        v.into_result()?;
        let (rows, total) =
            membership::list_for_person(&self.db, &caller.person_id, page.offset, page.limit)
                .await?;
        let mut memberships = Vec::with_capacity(rows.len());
        for m in &rows {
            let mut wire = self.wire(&self.db, m).await?;
            wire.joining_details = self.joining_details_for(m).await?;
            memberships.push(wire);
        }
        Ok(pb::ListMyMembershipsResponse {
            page: Some(page.answer(rows.len(), total)),
            memberships,
        })
    }

    pub(super) async fn leave(
        &self,
        request: Request<pb::LeaveGroupRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = super::trace_of(&request);
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        let m = self
            .workflow
            .end_own(&caller.person_id, &group_id, facts.capacity, &trace, None)
            .await?;
        self.wire(&self.db, &m).await
    }

    /// The caller's place in one group (see `GetMyPlace`).
    pub(super) async fn my_place(
        &self,
        request: Request<pb::GetMyPlaceRequest>,
    ) -> Result<pb::MyPlace, ServiceError> {
        let caller = self.caller(&request)?;
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        self.known_group(&request, &group_id).await?;
        let membership =
            match membership::find_for(&self.read, &group_id, &caller.person_id).await? {
                Some(m) => {
                    let mut wire = self.wire(&self.read, &m).await?;
                    wire.joining_details = self.joining_details_for(&m).await?;
                    Some(wire)
                }
                None => None,
            };
        let following = follow::find(&self.read, &group_id, &caller.person_id)
            .await?
            .is_some();
        let join_question = group_settings::get(&self.read, &group_id, 0)
            .await?
            .join_question;
        Ok(pb::MyPlace {
            membership,
            following,
            join_question,
        })
    }

    /// The group's joining details when `m` is an active membership.
    async fn joining_details_for(&self, m: &membership::Model) -> Result<String, ServiceError> {
        if m.state() != State::Active {
            return Ok(String::new());
        }
        Ok(selfhelp_group_view::find(&self.read, &m.group_id)
            .await?
            .map(|g| g.joining_details)
            .unwrap_or_default())
    }
}
