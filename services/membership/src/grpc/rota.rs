//! Rotas: organisers set who volunteers for a duty; members see who does what at
//! the next meetings, skip a turn, or swap one once the other person agrees.

use std::collections::{HashMap, HashSet};

use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::events::v1::SwapStep;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, uuid_field};
use crate::domain::membership::{GroupFacts, Permission, Role, State, may};
use crate::domain::rota::{self, Turn, TurnChange};
use crate::error::ServiceError;
use crate::error::{ROTA_NOT_FOUND, SWAP_NOT_FOUND};
use crate::store::{group_settings, membership, rota as store};

const MAX_VOLUNTEERS: usize = 50;
const DEFAULT_MEETINGS: usize = 6;
/// How far ahead a skip or swap may reach.
const MAX_MEETINGS: usize = 52;

/// Duty names compare without case or surrounding space: "Chair" is "chair".
fn duty_name(v: &mut Violations, duty: &str) -> String {
    v.line("duty", duty.trim(), true, 40);
    duty.trim().to_lowercase()
}

impl MembershipApi {
    pub(super) async fn set_rota(
        &self,
        request: Request<pb::SetRotaRequest>,
    ) -> Result<pb::DutyRota, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let duty = duty_name(&mut v, &req.duty);
        let mut seen = HashSet::new();
        let volunteers: Vec<String> = req
            .volunteer_person_ids
            .iter()
            .map(|p| p.trim().to_string())
            .collect();
        if volunteers.len() > MAX_VOLUNTEERS {
            v.add(
                "volunteer_person_ids",
                format!("at most {MAX_VOLUNTEERS} volunteers"),
            );
        }
        for (i, p) in volunteers.iter().enumerate() {
            let field = format!("volunteer_person_ids[{i}]");
            if p.is_empty() {
                v.add(field, "must not be empty");
            } else if !seen.insert(p.clone()) {
                v.add(field, "is already on this rota");
            }
        }
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
        let mut not_members = Violations::new();
        for (i, p) in volunteers.iter().enumerate() {
            let active = membership::find_for(&self.db, &group_id, p)
                .await?
                .is_some_and(|m| m.state() == State::Active);
            if !active {
                not_members.add(
                    format!("volunteer_person_ids[{i}]"),
                    "is not an active member of the group",
                );
            }
        }
        not_members.into_result()?;

        match self
            .workflow
            .set_rota(&group_id, &duty, &volunteers)
            .await?
        {
            Some(saved) => {
                self.duty_rota(&saved, &caller.person_id, true, DEFAULT_MEETINGS)
                    .await
            }
            None => Ok(pb::DutyRota {
                group_id,
                duty,
                ..Default::default()
            }),
        }
    }

    pub(super) async fn rotas(
        &self,
        request: Request<pb::GetRotaRequest>,
    ) -> Result<pb::GetRotaResponse, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let duty = if req.duty.trim().is_empty() {
            None
        } else {
            Some(duty_name(&mut v, &req.duty))
        };
        let meetings = match req.meetings {
            0 => DEFAULT_MEETINGS,
            n if (1..=MAX_MEETINGS as i32).contains(&n) => n as usize,
            _ => {
                v.add("meetings", format!("must be between 1 and {MAX_MEETINGS}"));
                DEFAULT_MEETINGS
            }
        };
        v.into_result()?;
        let (_, role) = self
            .member_of(&request, &group_id, &caller.person_id)
            .await?;
        let manager = may(role, Permission::ManageGroup, false);
        let mut rotas = Vec::new();
        for r in store::for_group(&self.db, &group_id).await? {
            if duty.as_ref().is_none_or(|d| *d == r.duty) {
                rotas.push(
                    self.duty_rota(&r, &caller.person_id, manager, meetings)
                        .await?,
                );
            }
        }
        if duty.is_some() && rotas.is_empty() {
            return Err(ROTA_NOT_FOUND);
        }
        Ok(pb::GetRotaResponse { rotas })
    }

    pub(super) async fn skip_turn(
        &self,
        request: Request<pb::SkipMyTurnRequest>,
    ) -> Result<pb::DutyRota, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let duty = duty_name(&mut v, &req.duty);
        v.line("meeting_key", req.meeting_key.trim(), true, 40);
        v.into_result()?;
        let (_, role) = self
            .member_of(&request, &group_id, &caller.person_id)
            .await?;
        let r = store::find(&self.db, &group_id, &duty)
            .await?
            .ok_or(ROTA_NOT_FOUND)?;
        let turns = self.upcoming_turns(&r, MAX_MEETINGS).await?;
        let key = req.meeting_key.trim();
        let holds = |turns: &[Turn]| {
            turns
                .iter()
                .any(|t| t.meeting.key == key && t.person.as_deref() == Some(&caller.person_id))
        };
        if !holds(&turns) {
            return Err(ServiceError::FailedPrecondition(
                "you are not on duty at that meeting".into(),
            ));
        }
        // Skips act on the rotation, before swaps: a turn that came in a swap is
        // handed on by swapping again.
        let unswapped = self.upcoming_turns_without_swaps(&r, MAX_MEETINGS).await?;
        if !holds(&unswapped) {
            return Err(ServiceError::FailedPrecondition(
                "this turn came to you in a swap: swap it again instead".into(),
            ));
        }
        let change = TurnChange::Skip {
            meeting: key.to_string(),
            person: caller.person_id.clone(),
        };
        let handovers = self.handovers(&r, &turns, &change).await?;
        self.workflow
            .record_turn_change(
                &group_id,
                &duty,
                &change,
                &caller.person_id,
                &handovers,
                None,
            )
            .await?;
        let manager = may(role, Permission::ManageGroup, false);
        self.duty_rota(&r, &caller.person_id, manager, DEFAULT_MEETINGS)
            .await
    }

    pub(super) async fn swap(
        &self,
        request: Request<pb::SwapTurnsRequest>,
    ) -> Result<pb::DutyRota, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let duty = duty_name(&mut v, &req.duty);
        let (a, b) = (req.meeting_key.trim(), req.other_meeting_key.trim());
        v.line("meeting_key", a, true, 40);
        v.line("other_meeting_key", b, true, 40);
        if !a.is_empty() && a == b {
            v.add("other_meeting_key", "must be a different meeting");
        }
        v.into_result()?;
        let (_, role) = self
            .member_of(&request, &group_id, &caller.person_id)
            .await?;
        let manager = may(role, Permission::ManageGroup, false);
        let r = store::find(&self.db, &group_id, &duty)
            .await?
            .ok_or(ROTA_NOT_FOUND)?;
        let turns = self.upcoming_turns(&r, MAX_MEETINGS).await?;
        let holder = |key: &str| {
            turns
                .iter()
                .find(|t| t.meeting.key == key)
                .map(|t| t.person.clone())
        };
        let (Some(first), Some(second)) = (holder(a), holder(b)) else {
            return Err(ServiceError::FailedPrecondition(
                "both meetings must be among the rota's coming meetings".into(),
            ));
        };
        let involved = [&first, &second]
            .iter()
            .any(|p| p.as_deref() == Some(&caller.person_id));
        if !involved && !manager {
            return Err(ServiceError::PermissionDenied(
                "only the two people on duty or an organiser can swap these turns",
            ));
        }
        // One of the two people on duty asks: the other must agree first.
        let me = Some(caller.person_id.clone());
        let asked = if first == me && second.is_some() && second != me {
            Some((a, b, second))
        } else if second == me && first.is_some() && first != me {
            Some((b, a, first))
        } else {
            None
        };
        if let Some((mine, theirs, Some(other_person))) = asked {
            self.forget_lapsed_asks(&r, &turns, &caller.person_id)
                .await?;
            let starts = starts_of(&turns, [mine, theirs]);
            let ask = store::swap::Model {
                id: uuid::Uuid::now_v7().to_string(),
                group_id: group_id.clone(),
                duty: duty.clone(),
                meeting_key: mine.to_string(),
                other_meeting_key: theirs.to_string(),
                asked_by: caller.person_id.clone(),
                asked_of: other_person,
                created_at_ms: self.clock.now_ms(),
            };
            self.workflow.ask_swap(ask, starts).await?;
        } else {
            let change = TurnChange::Swap {
                meeting: a.to_string(),
                other: b.to_string(),
            };
            let handovers = self.handovers(&r, &turns, &change).await?;
            self.workflow
                .record_turn_change(
                    &group_id,
                    &duty,
                    &change,
                    &caller.person_id,
                    &handovers,
                    None,
                )
                .await?;
        }
        self.duty_rota(&r, &caller.person_id, manager, DEFAULT_MEETINGS)
            .await
    }

    pub(super) async fn answer_swap(
        &self,
        request: Request<pb::AnswerSwapRequest>,
    ) -> Result<pb::DutyRota, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        let swap_id = uuid_field(&mut v, "swap_id", &req.swap_id);
        v.into_result()?;
        let (_, role) = self
            .member_of(&request, &group_id, &caller.person_id)
            .await?;
        let me = caller.person_id.as_str();
        let ask = store::find_swap(&self.db, &swap_id)
            .await?
            .filter(|a| a.group_id == group_id && (a.asked_by == me || a.asked_of == me))
            .ok_or(SWAP_NOT_FOUND)?;
        if req.accept && ask.asked_of != me {
            return Err(ServiceError::PermissionDenied(
                "only the person asked can agree to a swap; you may withdraw it",
            ));
        }
        let r = store::find(&self.db, &group_id, &ask.duty)
            .await?
            .ok_or(ROTA_NOT_FOUND)?;
        let turns = self.upcoming_turns(&r, MAX_MEETINGS).await?;
        let stands = rota::swap_stands(
            &turns,
            &ask.meeting_key,
            &ask.asked_by,
            &ask.other_meeting_key,
            &ask.asked_of,
        );
        if !stands {
            self.workflow.forget_swap(&ask.id).await?;
            if req.accept {
                return Err(ServiceError::FailedPrecondition(
                    "the turns in that swap have passed or changed hands since it was asked".into(),
                ));
            }
        } else if req.accept {
            let change = TurnChange::Swap {
                meeting: ask.meeting_key.clone(),
                other: ask.other_meeting_key.clone(),
            };
            let handovers = self.handovers(&r, &turns, &change).await?;
            self.workflow
                .record_turn_change(&group_id, &ask.duty, &change, me, &handovers, Some(&ask))
                .await?;
        } else {
            let step = if ask.asked_of == me {
                SwapStep::Declined
            } else {
                SwapStep::Withdrawn
            };
            let starts = starts_of(&turns, [&ask.meeting_key, &ask.other_meeting_key]);
            self.workflow.drop_swap(&ask, starts, step).await?;
        }
        let manager = may(role, Permission::ManageGroup, false);
        self.duty_rota(&r, me, manager, DEFAULT_MEETINGS).await
    }

    /// Drops `person`'s asks on `r` that no longer stand in `turns`, so they
    /// do not count against the number one may have waiting.
    async fn forget_lapsed_asks(
        &self,
        r: &store::Model,
        turns: &[Turn],
        person: &str,
    ) -> Result<(), ServiceError> {
        for ask in store::swap_asks(&self.db, &r.group_id, &r.duty).await? {
            let stands = rota::swap_stands(
                turns,
                &ask.meeting_key,
                &ask.asked_by,
                &ask.other_meeting_key,
                &ask.asked_of,
            );
            if ask.asked_by == person && !stands {
                self.workflow.forget_swap(&ask.id).await?;
            }
        }
        Ok(())
    }

    /// The group and the caller's role in it, if they are an active member (or
    /// its creator); PERMISSION_DENIED otherwise: rotas name members.
    pub(super) async fn member_of<T>(
        &self,
        request: &Request<T>,
        group_id: &str,
        person: &str,
    ) -> Result<(GroupFacts, Role), ServiceError> {
        let facts = self.known_group(request, group_id).await?;
        match self.role_in(&self.db, &facts, group_id, person).await? {
            Some(role) => Ok((facts, role)),
            None => Err(ServiceError::PermissionDenied(
                "rotas are for the group's members",
            )),
        }
    }

    /// The turns of `r` at the next `count` meetings.
    async fn upcoming_turns(
        &self,
        r: &store::Model,
        count: usize,
    ) -> Result<Vec<Turn>, ServiceError> {
        self.turns_of(r, count, true).await
    }

    async fn upcoming_turns_without_swaps(
        &self,
        r: &store::Model,
        count: usize,
    ) -> Result<Vec<Turn>, ServiceError> {
        self.turns_of(r, count, false).await
    }

    /// The turns at the next few meetings (as the rota shows them) that
    /// `change` would hand from one person to another, given the coming turns
    /// `before` it. A skip changes the order for good, so turns further ahead
    /// change too: those people hear of them from the rota and its reminders.
    async fn handovers(
        &self,
        r: &store::Model,
        before: &[Turn],
        change: &TurnChange,
    ) -> Result<Vec<rota::Handover>, ServiceError> {
        let after = self.turns_with(r, MAX_MEETINGS, true, Some(change)).await?;
        let near = &before[..before.len().min(DEFAULT_MEETINGS)];
        Ok(rota::handovers(near, &after))
    }

    async fn turns_of(
        &self,
        r: &store::Model,
        count: usize,
        with_swaps: bool,
    ) -> Result<Vec<Turn>, ServiceError> {
        self.turns_with(r, count, with_swaps, None).await
    }

    /// The coming turns, with `extra` applied after the recorded changes.
    async fn turns_with(
        &self,
        r: &store::Model,
        count: usize,
        with_swaps: bool,
        extra: Option<&TurnChange>,
    ) -> Result<Vec<Turn>, ServiceError> {
        Ok(
            crate::workflow::coming_turns(&self.db, r, self.clock.now(), count, with_swaps, extra)
                .await?,
        )
    }

    async fn duty_rota(
        &self,
        r: &store::Model,
        caller: &str,
        manager: bool,
        count: usize,
    ) -> Result<pb::DutyRota, ServiceError> {
        let volunteers = r.volunteers();
        // Names as the member list would show them: fellow members see a
        // volunteer's name only where the group lets members see the list and
        // the volunteer has not hidden themselves.
        let members_see = group_settings::get(&self.db, &r.group_id, 0)
            .await?
            .members_see_list();
        let mut names = HashMap::new();
        for p in &volunteers {
            let m = membership::find_for(&self.db, &r.group_id, p).await?;
            let visible =
                manager || p == caller || (members_see && m.as_ref().is_some_and(|m| !m.hidden));
            let name = m
                .map(|m| m.display_name)
                .filter(|n| visible && !n.is_empty())
                .unwrap_or_else(|| "A member".to_string());
            names.insert(p.clone(), name);
        }
        let ahead = self.upcoming_turns(r, MAX_MEETINGS).await?;
        let swap_asks = store::swap_asks(&self.db, &r.group_id, &r.duty)
            .await?
            .into_iter()
            .filter(|a| manager || a.asked_by == caller || a.asked_of == caller)
            .filter(|a| {
                rota::swap_stands(
                    &ahead,
                    &a.meeting_key,
                    &a.asked_by,
                    &a.other_meeting_key,
                    &a.asked_of,
                )
            })
            .map(|a| {
                let [starts_at, other_starts_at] =
                    starts_of(&ahead, [&a.meeting_key, &a.other_meeting_key])
                        .map(|t| t.map(to_timestamp));
                let name = |p: &str| names.get(p).cloned().unwrap_or_else(|| "A member".into());
                pb::SwapAsk {
                    asked_by: name(&a.asked_by),
                    asked_of: name(&a.asked_of),
                    asked_by_me: a.asked_by == caller,
                    asked_of_me: a.asked_of == caller,
                    id: a.id,
                    meeting_key: a.meeting_key,
                    starts_at,
                    other_meeting_key: a.other_meeting_key,
                    other_starts_at,
                }
            })
            .collect();
        let turns = ahead
            .into_iter()
            .take(count)
            .map(|t| {
                let person = t.person.unwrap_or_default();
                pb::Turn {
                    meeting_key: t.meeting.key,
                    starts_at: Some(to_timestamp(t.meeting.starts_at.timestamp_millis())),
                    ends_at: Some(to_timestamp(t.meeting.ends_at.timestamp_millis())),
                    display_name: names.get(&person).cloned().unwrap_or_default(),
                    mine: person == caller,
                    person_id: if manager { person } else { String::new() },
                }
            })
            .collect();
        Ok(pb::DutyRota {
            group_id: r.group_id.clone(),
            duty: r.duty.clone(),
            volunteers: volunteers.iter().map(|p| names[p].clone()).collect(),
            turns,
            swap_asks,
        })
    }
}

/// When the meetings `keys` start (ms), among `turns`.
fn starts_of(turns: &[Turn], keys: [&str; 2]) -> [Option<i64>; 2] {
    keys.map(|key| {
        turns
            .iter()
            .find(|t| t.meeting.key == key)
            .map(|t| t.meeting.starts_at.timestamp_millis())
    })
}
