//! What listings tells the other services, through the outbox.

use sea_orm::{ConnectionTrait, DbErr};
use selfhelp_core::postcode::PostcodeTable;
use selfhelp_core::time::{now_ms, to_timestamp};
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::streams::{LISTINGS, PUBLIC};

use crate::domain::group::Format;
use crate::search::cards::Render;
use crate::store::exception;
use crate::store::group::Model;

/// The group events listings emits (`selfhelp.<region>.listings.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    Created,
    Started,
    Submitted,
    Published,
    Rejected,
    /// An operator approved a proposal: the public now sees it as being started.
    ProposalListed,
    Suspended,
    Reinstated,
    Archived,
}

impl GroupEvent {
    pub fn name(self) -> &'static str {
        match self {
            GroupEvent::Created => "group.created",
            GroupEvent::Started => "group.started",
            GroupEvent::Suspended => "group.suspended",
            GroupEvent::Reinstated => "group.reinstated",
            GroupEvent::Archived => "group.archived",
            GroupEvent::Submitted => "group.submitted",
            GroupEvent::Published => "group.published",
            GroupEvent::Rejected => "group.rejected",
            GroupEvent::ProposalListed => "group.proposal_listed",
        }
    }
}

/// Listings' outbox with what its events need besides the group: postcode
/// centroids, for venues given without coordinates, and the public card (what
/// a stranger's `GetGroup` shows) for the PUBLIC stream.
#[derive(Clone)]
pub struct EventLog {
    pub outbox: Outbox,
    pub postcodes: std::sync::Arc<PostcodeTable>,
    pub render: Render,
}

impl std::ops::Deref for EventLog {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.outbox
    }
}

/// Public directory data plus the organisers, which consumers need to authorise
/// and to notify, and where and how the group meets and its topics' broader
/// topics (for alerts about new groups). Read in `conn`'s transaction, so the
/// taxonomy is the one the change was made against.
pub async fn snapshot<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    postcodes: &PostcodeTable,
) -> Result<ev::GroupSnapshot, DbErr> {
    let taxonomy: Vec<_> = crate::store::topic::list(conn, &group.region)
        .await?
        .iter()
        .map(crate::store::topic::Model::node)
        .collect();
    let topics = group.topics();
    Ok(ev::GroupSnapshot {
        broader_topics: crate::domain::topic::broader_codes(&taxonomy, &topics),
        meets_online: matches!(
            Format::parse(&group.format),
            Some(Format::Online | Format::Phone | Format::Hybrid)
        ),
        group_id: group.id.clone(),
        region: group.region.clone(),
        name: group.name.clone(),
        status: group.status.clone(),
        join_policy: group.join_policy.clone(),
        organiser_ids: group.organiser_ids(),
        topics,
        version: group.version,
        capacity: group.details().capacity.map(|c| c as i32).unwrap_or(0),
        joining_details: group.joining_details.clone().unwrap_or_default(),
        welcome_with_joining_details: group.details().welcome_with_joining_details,
        places: group
            .venues()
            .iter()
            .filter_map(|v| match (v.latitude, v.longitude) {
                (Some(latitude), Some(longitude)) => Some((latitude, longitude)),
                _ => postcodes.lookup(&v.postcode),
            })
            .map(|(latitude, longitude)| ev::GeoPoint {
                latitude,
                longitude,
            })
            .collect(),
    })
}

/// Adds the event for `group`'s latest change to the outbox, in `conn`'s transaction.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    event: GroupEvent,
    group: &Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let occurred_at = Some(to_timestamp(now_ms()));
    let group_snapshot = Some(snapshot(conn, group, &outbox.postcodes).await?);
    let (id, name, trace) = (&group.id, event.name(), Some(trace));
    match event {
        GroupEvent::Created => {
            let msg = ev::GroupCreated {
                group: group_snapshot,
                occurred_at,
            };
            outbox.enqueue(conn, LISTINGS, name, id, &msg, trace).await
        }
        GroupEvent::Submitted => {
            let msg = ev::GroupSubmitted {
                group: group_snapshot,
                occurred_at,
            };
            outbox.enqueue(conn, LISTINGS, name, id, &msg, trace).await
        }
        GroupEvent::Published => {
            let msg = ev::GroupPublished {
                group: group_snapshot,
                occurred_at,
            };
            outbox.enqueue(conn, LISTINGS, name, id, &msg, trace).await
        }
        GroupEvent::Started
        | GroupEvent::ProposalListed
        | GroupEvent::Suspended
        | GroupEvent::Reinstated
        | GroupEvent::Archived => {
            let reason = group.review_note.clone().unwrap_or_default();
            let msg = ev::GroupStatusChanged {
                group: group_snapshot,
                reason,
                occurred_at,
            };
            outbox.enqueue(conn, LISTINGS, name, id, &msg, trace).await
        }
        GroupEvent::Rejected => {
            let note = group.review_note.clone().unwrap_or_default();
            let msg = ev::GroupRejected {
                group: group_snapshot,
                note,
                occurred_at,
            };
            outbox.enqueue(conn, LISTINGS, name, id, &msg, trace).await
        }
    }
}

/// Tells partners (the PUBLIC stream) how `group` looks to the public now, in
/// `conn`'s transaction: `public.group.changed` with its public card while it
/// is listed, `public.group.withdrawn` when it was (`was_public`) and is not
/// any more, nothing for a group the public never saw (drafts, reviews).
pub async fn record_public<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    was_public: bool,
    group: &Model,
    trace: &TraceParent,
) -> Result<(), DbErr> {
    let occurred_at = Some(to_timestamp(now_ms()));
    if group.status().is_public() {
        let exceptions = exception::list(conn, &group.id).await?;
        let msg = ev::PublicGroupChanged {
            group: Some((outbox.render)(group, &exceptions)),
            occurred_at,
        };
        outbox
            .enqueue(conn, PUBLIC, "group.changed", &group.id, &msg, Some(trace))
            .await?;
    } else if was_public {
        let msg = ev::PublicGroupWithdrawn {
            group_id: group.id.clone(),
            region: group.region.clone(),
            version: group.version,
            occurred_at,
        };
        outbox
            .enqueue(
                conn,
                PUBLIC,
                "group.withdrawn",
                &group.id,
                &msg,
                Some(trace),
            )
            .await?;
    }
    Ok(())
}

/// A change to a group's meetings, with what consumers need to tell people.
pub enum MeetingEvent {
    ScheduleChanged {
        rrule: String,
        description: String,
        timezone: String,
        /// Local dates and times of the schedule; empty when it was cleared.
        valid_from: String,
        valid_until: String,
        start_time: String,
        end_time: String,
    },
    Cancelled {
        date: String,
        note: String,
    },
    Moved {
        original_date: String,
        starts_at_ms: i64,
        ends_at_ms: i64,
        note: String,
    },
    Added {
        starts_at_ms: i64,
        ends_at_ms: i64,
        note: String,
    },
}

/// Adds the event for a change to `group`'s meetings to the outbox, in `conn`'s
/// transaction (`group` as it is after the change).
pub async fn record_meeting<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    event: MeetingEvent,
    group: &Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let occurred_at = Some(to_timestamp(now_ms()));
    let g = Some(snapshot(conn, group, &outbox.postcodes).await?);
    let (id, trace) = (&group.id, Some(trace));
    match event {
        MeetingEvent::ScheduleChanged {
            rrule,
            description,
            timezone,
            valid_from,
            valid_until,
            start_time,
            end_time,
        } => {
            let msg = ev::ScheduleChanged {
                group: g,
                rrule,
                description,
                timezone,
                occurred_at,
                valid_from,
                valid_until,
                start_time,
                end_time,
            };
            outbox
                .enqueue(conn, LISTINGS, "schedule.changed", id, &msg, trace)
                .await
        }
        MeetingEvent::Cancelled { date, note } => {
            let msg = ev::OccurrenceCancelled {
                group: g,
                date,
                note,
                occurred_at,
            };
            outbox
                .enqueue(conn, LISTINGS, "occurrence.cancelled", id, &msg, trace)
                .await
        }
        MeetingEvent::Moved {
            original_date,
            starts_at_ms,
            ends_at_ms,
            note,
        } => {
            let msg = ev::OccurrenceMoved {
                group: g,
                original_date,
                new_starts_at: Some(to_timestamp(starts_at_ms)),
                new_ends_at: Some(to_timestamp(ends_at_ms)),
                note,
                occurred_at,
            };
            outbox
                .enqueue(conn, LISTINGS, "occurrence.moved", id, &msg, trace)
                .await
        }
        MeetingEvent::Added {
            starts_at_ms,
            ends_at_ms,
            note,
        } => {
            let msg = ev::OccurrenceAdded {
                group: g,
                starts_at: Some(to_timestamp(starts_at_ms)),
                ends_at: Some(to_timestamp(ends_at_ms)),
                note,
                occurred_at,
            };
            outbox
                .enqueue(conn, LISTINGS, "occurrence.added", id, &msg, trace)
                .await
        }
    }
}

/// Records `group.updated` for an edit of `changed_fields`.
pub async fn record_updated<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    group: &Model,
    changed_fields: Vec<String>,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::GroupUpdated {
        group: Some(snapshot(conn, group, &outbox.postcodes).await?),
        changed_fields,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(
            conn,
            LISTINGS,
            "group.updated",
            &group.id,
            &msg,
            Some(trace),
        )
        .await
}

/// Records `group.review_due`, found due at `now` (on the service's clock): the
/// details were last confirmed at `assured_at_ms`.
pub async fn record_review_due<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    group: &Model,
    now: i64,
) -> Result<String, DbErr> {
    let msg = ev::GroupReviewDue {
        group: Some(snapshot(conn, group, &outbox.postcodes).await?),
        assured_at: group.assured_at_ms.map(to_timestamp),
        occurred_at: Some(to_timestamp(now)),
    };
    // A background check, not a request: it starts its own trace.
    outbox
        .enqueue(
            conn,
            LISTINGS,
            "group.review_due",
            &group.id,
            &msg,
            Some(&TraceParent::new_root()),
        )
        .await
}

/// Learns who may manage a listing from membership's role changes.
pub struct MembershipRoles {
    pub outbox: EventLog,
    pub region: String,
}

#[async_trait::async_trait]
impl selfhelp_platform::inbox::EventHandler for MembershipRoles {
    async fn handle(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        event: &selfhelp_platform::bus::IncomingEvent,
    ) -> Result<(), selfhelp_platform::inbox::HandlerError> {
        use selfhelp_platform::inbox::HandlerError;
        if event.ce_type != selfhelp_proto::events::types::MEMBER_ROLE_CHANGED {
            return Ok(()); // joins, leaves…: nothing for the listing
        }
        let change: ev::MemberRoleChanged = event
            .decode()
            .map_err(|e| HandlerError::Poison(format!("{}: {e}", event.ce_type)))?;
        let Some(group) = crate::store::group::find(txn, &change.group_id).await? else {
            return Ok(()); // not a group of ours
        };
        if group.region != self.region {
            return Ok(());
        }
        if !crate::store::roles::apply(
            txn,
            &group.id,
            &change.person_id,
            &change.role,
            change.version,
        )
        .await?
        {
            return Ok(()); // an older change arriving late
        }
        let roles: Vec<(String, String)> = crate::store::roles::for_group(txn, &group.id)
            .await?
            .into_iter()
            .map(|r| (r.person_id, r.role))
            .collect();
        let organisers = crate::domain::group::organisers(&group.created_by, &roles);
        if organisers == group.organiser_ids() {
            return Ok(());
        }
        let trace = TraceParent::of_event(event.traceparent.as_deref());
        let changed = crate::workflow::set_organisers(
            txn,
            &self.outbox,
            &group,
            &organisers,
            &trace,
            now_ms(),
        )
        .await?;
        if changed {
            Ok(())
        } else {
            Err(HandlerError::Retry("the group changed meanwhile".into()))
        }
    }
}

/// Records `group.confirmed`: the details were checked just now.
pub async fn record_confirmed<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    group: &Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::GroupConfirmed {
        group: Some(snapshot(conn, group, &outbox.postcodes).await?),
        assured_at: group.assured_at_ms.map(to_timestamp),
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(
            conn,
            LISTINGS,
            "group.confirmed",
            &group.id,
            &msg,
            Some(trace),
        )
        .await
}

/// Records `topic.created`, `topic.updated` or `topic.retired` (`change`).
pub async fn record_topic<C: ConnectionTrait>(
    conn: &C,
    outbox: &EventLog,
    change: &'static str,
    topic: &crate::store::topic::Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::TopicChanged {
        topic_id: topic.id.clone(),
        region: topic.region.clone(),
        code: topic.code.clone(),
        name: topic.name.clone(),
        description: topic.description.clone(),
        parent_id: topic.parent_id.clone().unwrap_or_default(),
        retired: topic.retired_at_ms.is_some(),
        replaced_by_id: topic.replaced_by_id.clone().unwrap_or_default(),
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(
            conn,
            LISTINGS,
            &format!("topic.{change}"),
            &topic.id,
            &msg,
            Some(trace),
        )
        .await
}
