//! Sub-committees: named parts of a group with their own members, a lead,
//! duties and notices. Every member sees their names and duties; who is on
//! one, only its members and the organisers.

use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::forum::Names;
use super::{MembershipApi, trace_of, uuid_field};
use crate::domain::membership::State;
use crate::error::ServiceError;
use crate::store::{committee, membership};

const MAX_NAME: usize = 60;
const MAX_DUTIES: usize = 10;
const MAX_DUTY: usize = 80;
const MAX_MEMBERS: usize = 50;
const MAX_COMMITTEES: usize = 30;

const COMMITTEE_NOT_FOUND: ServiceError = ServiceError::NotFound("no committee with that id");

impl MembershipApi {
    pub(super) async fn committees(
        &self,
        request: Request<pb::ListCommitteesRequest>,
    ) -> Result<pb::ListCommitteesResponse, ServiceError> {
        let (me, group_id, names) = self
            .member_with_names(&request, &request.get_ref().group_id)
            .await?;
        let members = membership::all_in_states(&self.db, &group_id, &[State::Active]).await?;
        let mut out = Vec::new();
        for c in committee::for_group(&self.db, &group_id).await? {
            let people = committee::members_of(&self.db, &c.id).await?;
            out.push(committee_to_wire(
                &c,
                &people,
                &members,
                &names,
                &me.person,
                me.organiser,
            ));
        }
        Ok(pb::ListCommitteesResponse {
            committees: out,
            organiser: me.organiser,
        })
    }

    pub(super) async fn save_committee(
        &self,
        request: Request<pb::SaveCommitteeRequest>,
    ) -> Result<pb::Committee, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let id = if req.committee_id.trim().is_empty() {
            None
        } else {
            Some(uuid_field(&mut v, "committee_id", &req.committee_id))
        };
        let name = req.name.trim();
        v.line("name", name, true, MAX_NAME);
        if req.duties.len() > MAX_DUTIES {
            v.add("duties", format!("at most {MAX_DUTIES}"));
        }
        let mut duties: Vec<String> = Vec::new();
        for (i, d) in req.duties.iter().enumerate() {
            v.line(&format!("duties[{i}]"), d.trim(), true, MAX_DUTY);
            if !duties.contains(&d.trim().to_string()) {
                duties.push(d.trim().to_string());
            }
        }
        if req.member_membership_ids.len() > MAX_MEMBERS {
            v.add("member_membership_ids", format!("at most {MAX_MEMBERS}"));
        }
        let mut wanted: Vec<String> = Vec::new();
        for (i, m) in req.member_membership_ids.iter().enumerate() {
            let m = uuid_field(&mut v, &format!("member_membership_ids[{i}]"), m);
            if !wanted.contains(&m) {
                wanted.push(m);
            }
        }
        let lead = uuid_field(&mut v, "lead_membership_id", &req.lead_membership_id);
        if !lead.is_empty() && !wanted.contains(&lead) {
            v.add(
                "lead_membership_id",
                "must be one of the committee's members",
            );
        }
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let held = match &id {
            Some(id) => Some(
                committee::find(&self.db, id)
                    .await?
                    .filter(|c| c.group_id == group_id)
                    .ok_or(COMMITTEE_NOT_FOUND)?,
            ),
            None => None,
        };
        let leads_it = held.as_ref().is_some_and(|c| c.lead_id == me.person);
        if !me.organiser && !leads_it {
            return Err(ServiceError::PermissionDenied(
                "committees are set up by the organisers (and changed by their lead)",
            ));
        }
        // Everyone on it must be an active member of this group.
        let mut people = Vec::with_capacity(wanted.len());
        let mut lead_person = String::new();
        let mut v = Violations::new();
        for (i, mid) in wanted.iter().enumerate() {
            match membership::find(&self.db, mid)
                .await?
                .filter(|m| m.group_id == group_id && m.state() == State::Active)
            {
                Some(m) => {
                    if *mid == lead {
                        lead_person = m.person_id.clone();
                    }
                    people.push(m.person_id);
                }
                None => v.add(
                    format!("member_membership_ids[{i}]"),
                    "is not an active member of this group",
                ),
            }
        }
        if let Some(c) = &held
            && !me.organiser
            && (c.name != name || c.lead_id != lead_person)
        {
            v.add("name", "only an organiser may rename it or change its lead");
        }
        v.into_result()?;
        if held.is_none()
            && committee::for_group(&self.db, &group_id).await?.len() >= MAX_COMMITTEES
        {
            return Err(ServiceError::FailedPrecondition(format!(
                "a group may have at most {MAX_COMMITTEES} committees"
            )));
        }
        let before = match &held {
            Some(c) => committee::members_of(&self.db, &c.id).await?,
            None => Vec::new(),
        };
        let row = committee::Model {
            id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            group_id: group_id.clone(),
            name: name.to_string(),
            lead_id: lead_person,
            duties_json: serde_json::to_string(&duties).expect("strings serialise"),
            created_at_ms: held
                .as_ref()
                .map_or_else(|| self.clock.now_ms(), |c| c.created_at_ms),
        };
        let added: Vec<String> = people
            .iter()
            .filter(|p| !before.contains(p) && **p != me.person)
            .cloned()
            .collect();
        let notice = (!added.is_empty()).then(|| ev::GroupNotice {
            notice_id: uuid::Uuid::new_v4().to_string(),
            group_id: group_id.clone(),
            kind: ev::NoticeKind::CommitteeJoined as i32,
            recipient_ids: added,
            committee: row.name.clone(),
            title: "You are on a committee".into(),
            text: duties.join("; "),
            occurred_at: Some(to_timestamp(self.clock.now_ms())),
            ..Default::default()
        });
        self.workflow
            .save_committee(row.clone(), &people, notice, &trace_of(&request))
            .await?;
        let names = self.names(&me.facts, &group_id).await?;
        let members = membership::all_in_states(&self.db, &group_id, &[State::Active]).await?;
        Ok(committee_to_wire(
            &row,
            &people,
            &members,
            &names,
            &me.person,
            me.organiser,
        ))
    }

    pub(super) async fn delete_committee(
        &self,
        request: Request<pb::DeleteCommitteeRequest>,
    ) -> Result<pb::DeleteCommitteeResponse, ServiceError> {
        let req = request.get_ref();
        let (me, group_id, id) = self
            .member_with_id(&request, &req.group_id, "committee_id", &req.committee_id)
            .await?;
        if !me.organiser {
            return Err(ServiceError::PermissionDenied(
                "only an organiser may close a committee",
            ));
        }
        committee::find(&self.db, &id)
            .await?
            .filter(|c| c.group_id == group_id)
            .ok_or(COMMITTEE_NOT_FOUND)?;
        self.workflow.close_committee(&id).await?;
        Ok(pb::DeleteCommitteeResponse {})
    }

    pub(super) async fn committee_notice(
        &self,
        request: Request<pb::SendCommitteeNoticeRequest>,
    ) -> Result<pb::CommitteeNotice, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let id = uuid_field(&mut v, "committee_id", &req.committee_id);
        v.line("title", req.title.trim(), true, 120);
        v.text("body", req.body.trim(), true, 4_000);
        v.into_result()?;
        let me = self.forum_member(&request, caller, &group_id).await?;
        let c = committee::find(&self.db, &id)
            .await?
            .filter(|c| c.group_id == group_id)
            .ok_or(COMMITTEE_NOT_FOUND)?;
        if !me.organiser && c.lead_id != me.person {
            return Err(ServiceError::PermissionDenied(
                "notices are sent by the committee's lead or an organiser",
            ));
        }
        let recipients: Vec<String> = committee::members_of(&self.db, &c.id)
            .await?
            .into_iter()
            .filter(|p| *p != me.person)
            .collect();
        let told = recipients.len() as i32;
        let notice_id = uuid::Uuid::new_v4().to_string();
        self.workflow
            .send_notice(
                ev::GroupNotice {
                    notice_id: notice_id.clone(),
                    group_id: group_id.clone(),
                    kind: ev::NoticeKind::CommitteeNotice as i32,
                    recipient_ids: recipients,
                    committee: c.name.clone(),
                    title: req.title.trim().to_string(),
                    text: req.body.trim().to_string(),
                    occurred_at: Some(to_timestamp(self.clock.now_ms())),
                    ..Default::default()
                },
                &trace_of(&request),
            )
            .await?;
        tracing::info!(group_id = %group_id, committee_id = %c.id, told, "committee notice sent");
        Ok(pb::CommitteeNotice {
            id: notice_id,
            committee_id: c.id,
            told,
        })
    }
}

/// A committee as `me` may see it: who is on it only for its members and
/// the organisers.
fn committee_to_wire(
    c: &committee::Model,
    people: &[String],
    members: &[membership::Model],
    names: &Names,
    me: &str,
    organiser: bool,
) -> pb::Committee {
    let mine = people.iter().any(|p| p == me);
    let sees = mine || organiser;
    let membership_of = |person: &str| {
        members
            .iter()
            .find(|m| m.person_id == person)
            .map(|m| m.id.clone())
            .unwrap_or_default()
    };
    pb::Committee {
        id: c.id.clone(),
        group_id: c.group_id.clone(),
        name: c.name.clone(),
        duties: c.duties(),
        member_count: people.len() as i32,
        mine,
        lead: if sees {
            names.of(&c.lead_id)
        } else {
            String::new()
        },
        lead_membership_id: if sees {
            membership_of(&c.lead_id)
        } else {
            String::new()
        },
        members: if sees {
            people
                .iter()
                .map(|p| pb::CommitteeMember {
                    membership_id: membership_of(p),
                    display_name: names.of(p),
                })
                .collect()
        } else {
            Vec::new()
        },
        may_send: organiser || (!c.lead_id.is_empty() && c.lead_id == me),
    }
}
