//! What organisers change: a request decided, an invitation, a member removed
//! or banned, a role given, the group's settings.

use sea_orm::TransactionTrait;
use selfhelp_platform::trace::TraceParent;

use super::{Workflow, end};
use crate::domain::membership::{Role, State, check_transition};
use crate::error::{MEMBERSHIP_NOT_FOUND, ServiceError};
use crate::events::{self, Change, Note};
use crate::store::{announcement, group_settings, invitation, membership};

/// An invitation to make: a code anyone may use (`person` empty), or one
/// person's.
pub struct Invite<'a> {
    pub group_id: &'a str,
    pub person: &'a str,
    pub created_by: &'a str,
    pub max_uses: i32,
    pub valid_hours: i32,
    /// A code that makes whoever uses it the group's organiser.
    pub organiser: bool,
}

/// An organiser's message to send to a group, at most `per_day` a day.
pub struct Announce<'a> {
    pub group_id: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub include_followers: bool,
    pub per_day: u32,
}

const DAY_MS: i64 = 86_400_000;

impl Workflow {
    /// Records `announce` and its `group.announced` event together, unless
    /// the group has sent its day's messages (counted over the last 24
    /// hours, under the group's lock so two at once cannot both pass).
    pub async fn announce(
        &self,
        announce: Announce<'_>,
        trace: &TraceParent,
    ) -> Result<announcement::Model, ServiceError> {
        let now = self.clock.now_ms();
        let since = now - DAY_MS;
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, announce.group_id, now).await?;
        let sent = announcement::sent_since(&txn, announce.group_id, since).await?;
        if sent >= u64::from(announce.per_day) {
            let oldest = announcement::oldest_since(&txn, announce.group_id, since)
                .await?
                .unwrap_or(now);
            let hours = ((oldest + DAY_MS - now) as f64 / 3_600_000.0)
                .ceil()
                .max(1.0);
            return Err(ServiceError::FailedPrecondition(format!(
                "this group has sent its {} messages for the last 24 hours; the next can go in about {hours} hours",
                announce.per_day
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        announcement::insert(&txn, &id, announce.group_id, now).await?;
        events::record_announced(&txn, &self.outbox, &id, &announce, now, trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(announcement::Model {
            id,
            group_id: announce.group_id.to_string(),
            sent_at_ms: now,
        })
    }

    /// Approves (a place, or the waiting list when the group is full) or
    /// declines the open request `id` in a group of `capacity`, with the
    /// organiser's `message` for the person.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        message: &str,
        capacity: i32,
        trace: &TraceParent,
    ) -> Result<membership::Model, ServiceError> {
        let now = self.clock.now_ms();
        let seen = membership::find(&self.db, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        let txn = self.db.begin().await?;
        // Lock the group, then re-read: the request may have been withdrawn meanwhile.
        group_settings::lock(&txn, &seen.group_id, now).await?;
        let m = membership::find(&txn, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        if m.state() != State::Requested {
            return Err(ServiceError::FailedPrecondition(format!(
                "there is no open request: the membership is {}",
                m.state().as_str().to_lowercase()
            )));
        }
        let note = Note {
            reason: "",
            message,
        };
        let decided = if approve {
            let full = capacity > 0
                && membership::count_active(&txn, &m.group_id).await? >= capacity as u64;
            let to = if full {
                State::Waitlisted
            } else {
                State::Active
            };
            check_transition(State::Requested, to).map_err(ServiceError::FailedPrecondition)?;
            let decided = membership::move_to(&txn, m, to, now).await?;
            events::record_change(
                &txn,
                &self.outbox,
                Change::Approved,
                &decided,
                Some(State::Requested),
                note,
                Some(trace),
            )
            .await?;
            decided
        } else {
            let ctx = self.ctx(trace, now);
            end(
                &txn,
                ctx,
                m,
                State::Declined,
                Change::Declined,
                note,
                capacity,
            )
            .await?
        };
        txn.commit().await?;
        self.outbox.wake();
        Ok(decided)
    }

    /// Makes `invite`: a personal one also puts the person in the group as
    /// invited (inviting again renews it).
    pub async fn invite(
        &self,
        invite: Invite<'_>,
        code: Option<String>,
        trace: &TraceParent,
    ) -> Result<invitation::Model, ServiceError> {
        let Invite {
            group_id,
            person,
            created_by,
            max_uses,
            valid_hours,
            organiser,
        } = invite;
        let now = self.clock.now_ms();
        let expires_at_ms = now + i64::from(valid_hours) * 3_600_000;
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, group_id, now).await?;
        if !person.is_empty() {
            let existing = membership::find_for(&txn, group_id, person).await?;
            let previous = existing.as_ref().map(|m| m.state());
            let m = match (existing, previous) {
                // Inviting again renews the invitation (a new expiry below).
                (Some(m), Some(State::Invited)) => m,
                (existing, _) => {
                    if let Some(from) = previous {
                        check_transition(from, State::Invited)
                            .map_err(ServiceError::FailedPrecondition)?;
                    }
                    let entry = membership::Entry {
                        group_id,
                        person_id: person,
                        state: State::Invited,
                        role: Role::Member,
                        answer: "",
                        display_name: "",
                        hidden: false,
                    };
                    membership::enter(&txn, existing, entry, now).await?
                }
            };
            events::record_change(
                &txn,
                &self.outbox,
                Change::Invited,
                &m,
                previous,
                Note::default(),
                Some(trace),
            )
            .await?;
        }
        let inv = invitation::insert(
            &txn,
            invitation::NewInvitation {
                group_id,
                code,
                person_id: (!person.is_empty()).then_some(person),
                created_by,
                max_uses,
                expires_at_ms,
                organiser,
            },
            now,
        )
        .await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(inv)
    }

    /// Removes (or, with `ban`, bans) the membership `id` on behalf of someone
    /// holding `their_role`, in a group of `capacity`. A co-organiser cannot
    /// remove an organiser or another co-organiser; the only organiser cannot be
    /// removed.
    pub async fn remove(
        &self,
        id: &str,
        ban: bool,
        their_role: Role,
        message: &str,
        capacity: i32,
        trace: &TraceParent,
    ) -> Result<membership::Model, ServiceError> {
        let (to, change) = if ban {
            (State::Banned, Change::Banned)
        } else {
            (State::Removed, Change::Removed)
        };
        let now = self.clock.now_ms();
        let seen = membership::find(&self.db, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, &seen.group_id, now).await?;
        let m = membership::find(&txn, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        if m.state() == State::Active && m.role() >= their_role && their_role != Role::Organiser {
            return Err(ServiceError::PermissionDenied(
                "only an organiser can remove someone with that role",
            ));
        }
        if m.state() == State::Active
            && m.role() == Role::Organiser
            && membership::count_active_with_role(&txn, &m.group_id, Role::Organiser).await? <= 1
        {
            return Err(ServiceError::FailedPrecondition(
                "the group's only organiser cannot be removed".into(),
            ));
        }
        let note = Note {
            reason: "",
            message,
        };
        let ctx = self.ctx(trace, now);
        let ended = end(&txn, ctx, m, to, change, note, capacity).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(ended)
    }

    /// Gives the active member `id` the `role` and `duties`; the only organiser
    /// keeps the role until someone else has it.
    pub async fn set_role(
        &self,
        id: &str,
        role: Role,
        duties: &[String],
        trace: &TraceParent,
    ) -> Result<membership::Model, ServiceError> {
        let now = self.clock.now_ms();
        let seen = membership::find(&self.db, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, &seen.group_id, now).await?;
        let m = membership::find(&txn, id)
            .await?
            .ok_or(MEMBERSHIP_NOT_FOUND)?;
        if m.state() != State::Active {
            return Err(ServiceError::FailedPrecondition(
                "roles are for active members only".into(),
            ));
        }
        if m.role() == Role::Organiser
            && role != Role::Organiser
            && membership::count_active_with_role(&txn, &m.group_id, Role::Organiser).await? <= 1
        {
            return Err(ServiceError::FailedPrecondition(
                "make someone else organiser before changing the only organiser's role".into(),
            ));
        }
        let role_changed = m.role() != role;
        let updated = membership::set_role(&txn, m, role, duties, now).await?;
        if role_changed {
            events::record_role_changed(&txn, &self.outbox, &updated, Some(trace)).await?;
        }
        txn.commit().await?;
        self.outbox.wake();
        Ok(updated)
    }

    /// Saves the group's settings; `visibility` none keeps the current one.
    pub async fn save_settings(
        &self,
        group_id: &str,
        visibility: Option<&str>,
        join_question: &str,
    ) -> Result<group_settings::Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        let current = group_settings::get(&txn, group_id, now).await?;
        let visibility = visibility.unwrap_or(current.member_list_visibility.as_str());
        let saved = group_settings::save(&txn, group_id, visibility, join_question, now).await?;
        txn.commit().await?;
        Ok(saved)
    }
}
