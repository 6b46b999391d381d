//! What a person does about their own data: how they appear in a group, follows,
//! consent, and a copy of everything held about them.

use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use serde_json::json;
use tonic::Request;

use super::joining::MAX_DISPLAY_NAME;
use super::{MembershipApi, paging, trace_of, uuid_field};
use crate::error::NOT_A_MEMBER;
use crate::error::ServiceError;

/// The statuses of a group that can be followed: a proposed group collects
/// interest through its followers.
const FOLLOWABLE: [&str; 4] = [
    "PUBLISHED",
    "PROPOSED",
    "PROPOSAL_PENDING_REVIEW",
    "PROPOSAL_LISTED",
];
use crate::store::{
    committee, consent, follow, forum, invitation, membership, role_watch, rota, sharing,
};

impl MembershipApi {
    pub(super) async fn update_mine(
        &self,
        request: Request<pb::UpdateMyMembershipRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        if let Some(name) = &req.display_name {
            v.line("display_name", name, false, MAX_DISPLAY_NAME);
        }
        v.into_result()?;
        let display_name = req.display_name.as_ref().map(|n| n.trim().to_string());
        let m = self
            .workflow
            .present(&group_id, &caller.person_id, display_name, req.hidden)
            .await?;
        self.wire(&self.db, &m).await
    }

    pub(super) async fn follow(
        &self,
        request: Request<pb::FollowGroupRequest>,
    ) -> Result<pb::Follow, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        let facts = self.current_group(&request, &group_id, &FOLLOWABLE).await?;
        if !FOLLOWABLE.contains(&facts.status.as_str()) {
            return Err(ServiceError::FailedPrecondition(
                "only published or proposed groups can be followed".into(),
            ));
        }
        let row = self
            .workflow
            .follow(&group_id, &caller.person_id, &trace)
            .await?;
        Ok(pb::Follow {
            group_name: self.group_name(&group_id).await?,
            group_id,
            followed_at: Some(to_timestamp(row.created_at_ms)),
        })
    }

    pub(super) async fn unfollow(
        &self,
        request: Request<pb::FollowGroupRequest>,
    ) -> Result<pb::UnfollowGroupResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        self.workflow
            .unfollow(&group_id, &caller.person_id, &trace)
            .await?;
        Ok(pb::UnfollowGroupResponse {})
    }

    pub(super) async fn my_follows(
        &self,
        request: Request<pb::ListMyFollowsRequest>,
    ) -> Result<pb::ListMyFollowsResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let mut v = Violations::new();
        let page = paging(&mut v, request.into_inner().page);
        v.into_result()?;
        let (rows, total) =
            follow::list_for_person(&self.db, &caller.person_id, page.offset, page.limit).await?;
        let mut follows = Vec::with_capacity(rows.len());
        for f in &rows {
            follows.push(pb::Follow {
                group_id: f.group_id.clone(),
                group_name: self.group_name(&f.group_id).await?,
                followed_at: Some(to_timestamp(f.created_at_ms)),
            });
        }
        Ok(pb::ListMyFollowsResponse {
            page: Some(page.answer(rows.len(), total)),
            follows,
        })
    }

    pub(super) async fn withdraw(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<pb::Membership, ServiceError> {
        let caller = self.caller(&request)?;
        let trace = trace_of(&request);
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        let facts = self.known_group(&request, &group_id).await?;
        let held = membership::find_for(&self.db, &group_id, &caller.person_id)
            .await?
            .ok_or(NOT_A_MEMBER)?;
        if !held.state().is_open() {
            // Already out of the group: the consent is withdrawn, nothing else changes.
            self.workflow.withdraw_consent(&held.id).await?;
            return self.wire(&self.db, &held).await;
        }
        let m = self
            .workflow
            .end_own(
                &caller.person_id,
                &group_id,
                facts.capacity,
                &trace,
                Some("CONSENT_WITHDRAWN"),
            )
            .await?;
        self.wire(&self.db, &m).await
    }

    pub(super) async fn export(
        &self,
        request: Request<pb::ExportMyDataRequest>,
    ) -> Result<pb::ExportMyDataResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let person = caller.person_id.as_str();
        let mut memberships = Vec::new();
        for m in membership::all_for_person(&self.db, person).await? {
            memberships.push(json!({
                "id": m.id,
                "group_id": m.group_id,
                "group_name": self.group_name(&m.group_id).await?,
                "state": m.state,
                "role": m.role,
                "duties": m.duties(),
                "display_name": m.display_name,
                "hidden": m.hidden,
                "answer": m.answer,
                "joined_at": millis_to_rfc3339(m.joined_at_ms),
                "updated_at": millis_to_rfc3339(m.updated_at_ms),
            }));
        }
        let consents: Vec<_> = consent::all_for_person(&self.db, person)
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "membership_id": c.membership_id,
                    "group_id": c.group_id,
                    "version": c.version,
                    "text": c.text,
                    "given_at": millis_to_rfc3339(c.given_at_ms),
                    "withdrawn_at": c.withdrawn_at_ms.map(millis_to_rfc3339),
                })
            })
            .collect();
        let follows: Vec<_> = follow::all_for_person(&self.db, person)
            .await?
            .into_iter()
            .map(|f| json!({"group_id": f.group_id, "followed_at": millis_to_rfc3339(f.created_at_ms)}))
            .collect();
        let invitations: Vec<_> = invitation::created_by(&self.db, person)
            .await?
            .into_iter()
            .map(|i| {
                json!({
                    "group_id": i.group_id,
                    "person_invited": i.person_id.is_some(),
                    "max_uses": i.max_uses,
                    "uses": i.uses,
                    "created_at": millis_to_rfc3339(i.created_at_ms),
                    "expires_at": millis_to_rfc3339(i.expires_at_ms),
                })
            })
            .collect();
        let rotas: Vec<_> = rota::containing(&self.db, person)
            .await?
            .into_iter()
            .map(|r| json!({"group_id": r.group_id, "duty": r.duty}))
            .collect();
        // The other person of each swap is theirs to know, not in this file.
        let swap_asks: Vec<_> = rota::swaps_of(&self.db, person)
            .await?
            .into_iter()
            .map(|a| {
                json!({
                    "group_id": a.group_id,
                    "duty": a.duty,
                    "asked_by_you": a.asked_by == person,
                    "asker_turn": a.meeting_key,
                    "asked_turn": a.other_meeting_key,
                    "asked_at": millis_to_rfc3339(a.created_at_ms),
                })
            })
            .collect();
        let duties_held: Vec<_> = sharing::records_of(&self.db, person)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "group_id": r.group_id,
                    "duty": r.duty,
                    "meeting": r.meeting_key,
                    "corrected_by_organiser": r.corrected,
                })
            })
            .collect();
        let willing: Vec<_> = sharing::of_person(&self.db, person)
            .await?
            .into_iter()
            .map(|s| {
                json!({
                    "group_id": s.group_id,
                    "willing": s.willing(),
                    "skills": s.skills,
                    "counted": s.counted,
                })
            })
            .collect();
        let written = forum::written_by(&self.db, person).await?;
        let agenda_items: Vec<_> = written
            .agenda
            .iter()
            .map(|a| json!({"group_id": a.group_id, "meeting": a.meeting_key, "text": a.text, "added_at": millis_to_rfc3339(a.created_at_ms)}))
            .collect();
        let notes_written: Vec<_> = written
            .notes
            .iter()
            .map(|n| json!({"group_id": n.group_id, "meeting": n.meeting_key, "text": n.text, "written_at": millis_to_rfc3339(n.written_at_ms)}))
            .collect();
        let attended: Vec<_> = written
            .attendance
            .iter()
            .map(|a| json!({"group_id": a.group_id, "meeting": a.meeting_key, "meeting_started_at": millis_to_rfc3339(a.starts_at_ms), "ticked_at": millis_to_rfc3339(a.marked_at_ms)}))
            .collect();
        let knowledge: Vec<_> = written
            .knowledge
            .iter()
            .map(|k| json!({"group_id": k.group_id, "title": k.title, "url": k.url, "text": k.text, "added_at": millis_to_rfc3339(k.created_at_ms)}))
            .collect();
        // Who else is on a committee is theirs to know, not in this file.
        let committees: Vec<_> = committee::of_person(&self.db, person)
            .await?
            .into_iter()
            .map(|c| json!({"group_id": c.group_id, "name": c.name, "lead": c.lead_id == person}))
            .collect();
        // How long they have held a role, as the reminders of terms count it.
        let roles_watched: Vec<_> = role_watch::of_person(&self.db, person)
            .await?
            .into_iter()
            .map(|w| json!({"group_id": w.group_id, "watch": w.kind, "since": millis_to_rfc3339(w.since_ms), "told_at": (w.told_at_ms > 0).then(|| millis_to_rfc3339(w.told_at_ms))}))
            .collect();
        let doc = json!({
            "service": "membership",
            "person_id": person,
            "exported_at": millis_to_rfc3339(self.clock.now_ms()),
            "memberships": memberships,
            "consents": consents,
            "follows": follows,
            "invitations_created": invitations,
            "rotas": rotas,
            "swap_asks": swap_asks,
            "duties_held": duties_held,
            "willing": willing,
            "agenda_items": agenda_items,
            "meeting_notes_written": notes_written,
            "attended": attended,
            "knowledge_shared": knowledge,
            "committees": committees,
            "roles_watched": roles_watched,
        });
        Ok(pb::ExportMyDataResponse {
            json: serde_json::to_string_pretty(&doc).expect("JSON values serialise"),
        })
    }
}

/// RFC 3339 in UTC.
fn millis_to_rfc3339(ms: i64) -> String {
    to_timestamp(ms).to_string()
}
