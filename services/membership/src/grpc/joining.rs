//! How people come and go: join (by policy, invitation or waitlist), list their
//! memberships, leave.

use sea_orm::TransactionTrait;
use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::joins::NewJoin;
use super::{MembershipApi, paging, uuid_field};
use crate::domain::membership::{Role, State};
use crate::error::NOT_A_MEMBER;
use crate::error::ServiceError;
use crate::events::{Change, Note};
use crate::store::{consent, group_settings, invitation, membership};
use crate::workflow::{self, Ctx};

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
            memberships.push(self.wire(&self.db, m).await?);
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
            .end_own(&caller.person_id, &group_id, facts.capacity, &trace, None)
            .await?;
        self.wire(&self.db, &m).await
    }

    /// The caller leaves `group_id` (or withdraws a request, an invitation, a
    /// waitlist place); `reason` set means it ends for that reason instead (consent
    /// withdrawn). The last organiser must hand over first.
    pub(super) async fn end_own(
        &self,
        person: &str,
        group_id: &str,
        capacity: i32,
        trace: &selfhelp_platform::trace::TraceParent,
        reason: Option<&str>,
    ) -> Result<membership::Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, group_id, now).await?;
        let m = membership::find_for(&txn, group_id, person)
            .await?
            .ok_or(NOT_A_MEMBER)?;
        // Withdrawn consent ends even the last organiser's membership: the group
        // is then left to the region's operators.
        if reason.is_none()
            && m.state() == State::Active
            && m.role() == Role::Organiser
            && membership::count_active_with_role(&txn, group_id, Role::Organiser).await? <= 1
        {
            return Err(ServiceError::FailedPrecondition(
                "you are the group's only organiser: give the organiser role to someone else first"
                    .into(),
            ));
        }
        let ctx = Ctx {
            outbox: &self.outbox,
            trace: Some(trace),
            now,
        };
        let (change, note) = match reason {
            None => (Change::Left, Note::default()),
            Some(reason) => (
                Change::Ended,
                Note {
                    reason,
                    message: "",
                },
            ),
        };
        if reason.is_some() {
            consent::withdraw(&txn, &m.id, now).await?;
        }
        let ended = workflow::end(&txn, ctx, m, State::Left, change, note, capacity).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(ended)
    }
}

/// The invitation behind `code`, if it is for this group and still usable.
pub(super) async fn valid_code<C: sea_orm::ConnectionTrait>(
    conn: &C,
    code: &str,
    group_id: &str,
    now: i64,
) -> Result<invitation::Model, ServiceError> {
    let inv = invitation::find_by_code(conn, code)
        .await?
        .filter(|i| i.group_id == group_id)
        .ok_or_else(|| code_violation("is not an invitation to this group"))?;
    if inv.expires_at_ms <= now {
        return Err(code_violation("has expired"));
    }
    if inv.uses >= inv.max_uses {
        return Err(code_violation("has been used up"));
    }
    Ok(inv)
}

pub(super) fn code_violation(why: &str) -> ServiceError {
    let mut v = Violations::new();
    v.add("invitation_code", why);
    ServiceError::Invalid(v)
}
