//! The application layer of listings: every change to a group or a topic in
//! one transaction with its event in the outbox; once committed, the outbox is
//! woken and this replica's search index refreshed (the others follow the
//! event). The RPCs call it after validating the request and deciding whether
//! the caller may make the change; the review reminders use it too.

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use selfhelp_core::time::Clock;
use selfhelp_platform::trace::TraceParent;

use crate::domain::group::{self as domain, FieldChange, NewGroup, Status, Transition};
use crate::domain::schedule::{Exception, Schedule};
use crate::error::{GROUP_CHANGED, GROUP_NOT_FOUND, ServiceError};
use crate::events::{self, EventLog, GroupEvent, MeetingEvent};
use crate::search::maintain::Indexer;
use crate::store::exception as exception_store;
use crate::store::group::{self as store, Model};
use crate::store::{history, pending_edit, topic as topic_store};

/// Another operator decided on the held edit first.
fn edit_decided() -> ServiceError {
    ServiceError::FailedPrecondition("the edit was approved or rejected meanwhile".into())
}

/// Cancelled, moved and one-off meetings to come, per group: each one is work
/// on every read of the group.
pub const MAX_CHANGED_MEETINGS: u64 = 100;

#[derive(Clone)]
pub struct Workflow {
    pub db: DatabaseConnection,
    pub outbox: EventLog,
    pub search: Indexer,
    pub clock: Clock,
}

impl Workflow {
    /// Lists a new group (a draft or a proposal) by `creator`.
    pub async fn create_group(
        &self,
        region: &str,
        creator: &str,
        new: &NewGroup,
        initial: Status,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let id = uuid::Uuid::now_v7().to_string();
        let txn = self.db.begin().await?;
        let group = store::insert(
            &txn,
            &id,
            region,
            creator,
            new,
            initial,
            self.clock.now_ms(),
        )
        .await?;
        events::record(&txn, &self.outbox, GroupEvent::Created, &group, trace).await?;
        self.finish(txn, None, group, trace).await
    }

    /// Adds a group from another directory's document, published at once by
    /// `operator`, with `id`; `None` when a group with that id is already
    /// here (imported before), which is left as it is.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_group(
        &self,
        region: &str,
        operator: &str,
        id: &str,
        new: &NewGroup,
        schedule: Option<(&Schedule, MeetingEvent)>,
        assured_at_ms: i64,
        trace: &TraceParent,
    ) -> Result<Option<Model>, ServiceError> {
        let txn = self.db.begin().await?;
        if store::find(&txn, id).await?.is_some() {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        match store::insert(&txn, id, region, operator, new, Status::Published, now).await {
            // Another replica (or import) added it meanwhile.
            Err(e) if selfhelp_platform::db::is_unique_violation(&e) => return Ok(None),
            other => other?,
        };
        let (schedule, meeting) = schedule.unzip();
        let group = store::mark_imported(&txn, id, schedule, assured_at_ms).await?;
        events::record(&txn, &self.outbox, GroupEvent::Created, &group, trace).await?;
        events::record(&txn, &self.outbox, GroupEvent::Published, &group, trace).await?;
        if let Some(meeting) = meeting {
            events::record_meeting(&txn, &self.outbox, meeting, &group, trace).await?;
        }
        self.finish(txn, None, group, trace).await.map(Some)
    }

    /// Takes `group` one lifecycle step. `note` is the reason shown to
    /// organisers (rejection, suspension, archiving); `by` is who made the step.
    pub async fn transition(
        &self,
        group: &Model,
        transition: Transition,
        note: Option<String>,
        by: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let next = domain::next_status(group.status(), transition)
            .map_err(ServiceError::FailedPrecondition)?;
        let event = match transition {
            Transition::Start => GroupEvent::Started,
            Transition::Submit => GroupEvent::Submitted,
            Transition::Approve if next == Status::ProposalListed => GroupEvent::ProposalListed,
            Transition::Approve => GroupEvent::Published,
            Transition::Reject => GroupEvent::Rejected,
            Transition::Suspend => GroupEvent::Suspended,
            Transition::Reinstate => GroupEvent::Reinstated,
            Transition::Archive => GroupEvent::Archived,
        };
        // The operator approving a listing has checked its details.
        let assured_by = (transition == Transition::Approve).then_some(by);
        let txn = self.db.begin().await?;
        let now = self.clock.now_ms();
        if !store::set_status(&txn, group, next, note, assured_by, now).await? {
            return Err(GROUP_CHANGED);
        }
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        // The decision in the history, beside the field edits.
        let mut decided = vec![decision("status", group.status().as_str(), next.as_str())];
        if updated.review_note != group.review_note {
            decided.push(decision(
                "review_note",
                group.review_note.as_deref().unwrap_or_default(),
                updated.review_note.as_deref().unwrap_or_default(),
            ));
        }
        history::record(&txn, &group.id, &decided, by, updated.version, now).await?;
        events::record(&txn, &self.outbox, event, &updated, trace).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Replaces the card of `group` by `card`, with its history (`changes`,
    /// made by `editor`).
    pub async fn update_card(
        &self,
        group: &Model,
        card: &NewGroup,
        changes: &[FieldChange],
        editor: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        let updated = self
            .apply_card(&txn, group, card, changes, editor, now, trace)
            .await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// [`Workflow::update_card`], then the listing goes back to review (to
    /// `back_to`): a significant edit when `edits.significant` is "review".
    pub async fn update_card_for_review(
        &self,
        group: &Model,
        card: &NewGroup,
        changes: &[FieldChange],
        editor: &str,
        back_to: Status,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        let edited = self
            .apply_card(&txn, group, card, changes, editor, now, trace)
            .await?;
        if !store::set_status(&txn, &edited, back_to, None, None, now).await? {
            return Err(GROUP_CHANGED);
        }
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        events::record(&txn, &self.outbox, GroupEvent::Submitted, &updated, trace).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Holds `request` (which would make `changes` to `group`) until an
    /// operator decides, replacing an edit already waiting; the listing stays
    /// as it is meanwhile.
    pub async fn hold_edit(
        &self,
        group: &Model,
        request: Vec<u8>,
        changes: &[FieldChange],
        editor: &str,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now_ms();
        pending_edit::hold(
            &self.db,
            &group.id,
            request,
            changes,
            editor,
            group.version,
            now,
        )
        .await?;
        Ok(())
    }

    /// Applies the held edit (its `card`, `changes` against the card now, by
    /// its `editor`) and lets it go.
    #[allow(clippy::too_many_arguments)]
    pub async fn approve_edit(
        &self,
        group: &Model,
        card: &NewGroup,
        changes: &[FieldChange],
        editor: &str,
        decided_by: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        if !pending_edit::drop_for(&txn, &group.id).await? {
            return Err(edit_decided());
        }
        let updated = if changes.is_empty() {
            group.clone()
        } else {
            self.apply_card(&txn, group, card, changes, editor, now, trace)
                .await?
        };
        let approved = decision("held_edit", "", "approved");
        history::record(
            &txn,
            &group.id,
            &[approved],
            decided_by,
            updated.version,
            now,
        )
        .await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Drops the held edit of `group`, telling its organisers why (`note`).
    pub async fn reject_edit(
        &self,
        group: &Model,
        note: String,
        decided_by: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        if !pending_edit::drop_for(&txn, &group.id).await? {
            return Err(edit_decided());
        }
        let rejected = [
            decision("held_edit", "", "rejected"),
            decision(
                "review_note",
                group.review_note.as_deref().unwrap_or_default(),
                &note,
            ),
        ];
        if !store::set_status(&txn, group, group.status(), Some(note), None, now).await? {
            return Err(GROUP_CHANGED);
        }
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        history::record(&txn, &group.id, &rejected, decided_by, updated.version, now).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Writes `card` over `group` with its history and `group.updated`, in `txn`.
    #[allow(clippy::too_many_arguments)]
    async fn apply_card(
        &self,
        txn: &DatabaseTransaction,
        group: &Model,
        card: &NewGroup,
        changes: &[FieldChange],
        editor: &str,
        now: i64,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        if !store::update_card(txn, group, card, now).await? {
            return Err(GROUP_CHANGED);
        }
        let updated = store::find(txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        history::record(txn, &group.id, changes, editor, updated.version, now).await?;
        let fields = changes.iter().map(|c| c.field.to_string()).collect();
        events::record_updated(txn, &self.outbox, &updated, fields, trace).await?;
        Ok(updated)
    }

    /// Records that `by` checked the details of `group` now.
    pub async fn confirm(
        &self,
        group: &Model,
        by: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let txn = self.db.begin().await?;
        let now = self.clock.now_ms();
        if !store::confirm(&txn, group, by, now).await? {
            return Err(GROUP_CHANGED);
        }
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        let checked = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let confirmed = decision(
            "checked",
            &checked(group.assured_at_ms),
            &checked(updated.assured_at_ms),
        );
        history::record(&txn, &group.id, &[confirmed], by, updated.version, now).await?;
        events::record_confirmed(&txn, &self.outbox, &updated, trace).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Stores a cancelled, moved or one-off meeting of `group`, at most
    /// [`MAX_CHANGED_MEETINGS`] of them from `today` (the region's date) on.
    pub async fn change_meeting(
        &self,
        group: &Model,
        exception: &Exception,
        event: MeetingEvent,
        today: &str,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let txn = self.db.begin().await?;
        // Touching the group row first makes changes to one group take turns,
        // so the count below cannot be raced past.
        if !store::touch(&txn, group, self.clock.now_ms()).await? {
            return Err(GROUP_CHANGED);
        }
        if exception_store::count_from(&txn, &group.id, today).await? >= MAX_CHANGED_MEETINGS {
            return Err(ServiceError::FailedPrecondition(format!(
                "a group may have at most {MAX_CHANGED_MEETINGS} cancelled, moved and one-off \
                 meetings to come; remove one first"
            )));
        }
        exception_store::insert(&txn, &group.id, exception, self.clock.now_ms()).await?;
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        events::record_meeting(&txn, &self.outbox, event, &updated, trace).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Sets (or, with `None`, removes) the regular meetings of `group`.
    pub async fn set_schedule(
        &self,
        group: &Model,
        schedule: Option<&Schedule>,
        event: MeetingEvent,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let txn = self.db.begin().await?;
        if !store::set_schedule(&txn, group, schedule, self.clock.now_ms()).await? {
            return Err(GROUP_CHANGED);
        }
        // Cancellations and moves named dates of the old rule.
        exception_store::clear_regular_changes(&txn, &group.id).await?;
        let updated = store::find(&txn, &group.id).await?.ok_or(GROUP_NOT_FOUND)?;
        events::record_meeting(&txn, &self.outbox, event, &updated, trace).await?;
        self.finish(txn, Some(group), updated, trace).await
    }

    /// Stores a topic (new for `change` "created") with its event.
    pub async fn save_topic(
        &self,
        row: topic_store::Model,
        change: &'static str,
        trace: &TraceParent,
    ) -> Result<topic_store::Model, ServiceError> {
        let txn = self.db.begin().await?;
        let saved = if change == "created" {
            topic_store::insert(&txn, row).await.map_err(|e| {
                if selfhelp_platform::db::is_unique_violation(&e) {
                    ServiceError::AlreadyExists("topic code is taken".into())
                } else {
                    ServiceError::from(e)
                }
            })?
        } else {
            topic_store::save(&txn, row).await?
        };
        events::record_topic(&txn, &self.outbox, change, &saved, trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(saved)
    }

    /// Sends `group.review_due` for `group` once per confirmation; false when
    /// another replica, or an edit, got there first.
    pub async fn remind_review_due(&self, group: &Model) -> Result<bool, ServiceError> {
        let txn = self.db.begin().await?;
        let now = self.clock.now_ms();
        if !store::claim_review_due(&txn, group, now).await? {
            txn.rollback().await?;
            return Ok(false);
        }
        let Some(updated) = store::find(&txn, &group.id).await? else {
            txn.rollback().await?;
            return Ok(false);
        };
        events::record_review_due(&txn, &self.outbox, &updated, now).await?;
        txn.commit().await?;
        // The caller wakes the outbox once for a whole round.
        Ok(true)
    }

    /// Commits the change that made `updated` from `before` (`None`: a new
    /// group), with what partners are told of it (the PUBLIC stream): the
    /// outbox woken, this replica's search index refreshed.
    async fn finish(
        &self,
        txn: DatabaseTransaction,
        before: Option<&Model>,
        updated: Model,
        trace: &TraceParent,
    ) -> Result<Model, ServiceError> {
        let was_public = before.is_some_and(|g| g.status().is_public());
        events::record_public(&txn, &self.outbox, was_public, &updated, trace).await?;
        txn.commit().await?;
        self.outbox.wake();
        if let Err(e) = self.search.refresh(&updated.id).await {
            tracing::warn!(error = %e, group_id = %updated.id, "search index refresh failed; the next rebuild catches up");
        }
        Ok(updated)
    }
}

/// Sets the organisers of `group` (as membership's roles say) with its
/// `group.updated` event, in the consumer's transaction `txn`. False when the
/// group changed meanwhile (the event is redelivered and tries again).
pub async fn set_organisers(
    txn: &DatabaseTransaction,
    outbox: &EventLog,
    group: &Model,
    organisers: &[String],
    trace: &TraceParent,
    now: i64,
) -> Result<bool, sea_orm::DbErr> {
    if !store::set_organisers(txn, group, organisers, now).await? {
        return Ok(false);
    }
    let Some(updated) = store::find(txn, &group.id).await? else {
        return Ok(false);
    };
    // How many, not who: the history outlives people's erasure. Membership's
    // roles decided it; who gave the role is membership's to know.
    let changed = FieldChange {
        field: "organisers",
        old_json: group.organiser_ids().len().to_string(),
        new_json: updated.organiser_ids().len().to_string(),
    };
    history::record(
        txn,
        &group.id,
        &[changed],
        "membership",
        updated.version,
        now,
    )
    .await?;
    let fields = vec!["organisers".to_string()];
    events::record_updated(txn, outbox, &updated, fields, trace).await?;
    Ok(true)
}

/// A decision kept in the history as a change of `field` from `old` to `new`
/// (each as a JSON string).
fn decision(field: &'static str, old: &str, new: &str) -> FieldChange {
    FieldChange {
        field,
        old_json: serde_json::Value::from(old).to_string(),
        new_json: serde_json::Value::from(new).to_string(),
    }
}
