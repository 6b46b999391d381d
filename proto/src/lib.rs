//! Generated protobuf types and gRPC stubs for every selfhelp contract.
//!
//! The `.proto` sources live next to this crate under `selfhelp/`; see
//! `docs/events/` for the event catalogue built on `events::v1`.

/// Encoded `FileDescriptorSet` of all contracts, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/selfhelp_descriptor.bin"));

pub mod streams;

pub mod operations {
    pub mod v1 {
        tonic::include_proto!("selfhelp.operations.v1");
    }
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("selfhelp.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("selfhelp.events.v1");
    }

    /// `ce-type` values of the events in `v1`.
    pub mod types {
        pub const GROUP_CREATED: &str = "org.selfhelp.listings.group.created.v1";
        pub const GROUP_SUBMITTED: &str = "org.selfhelp.listings.group.submitted.v1";
        pub const GROUP_PUBLISHED: &str = "org.selfhelp.listings.group.published.v1";
        pub const GROUP_REJECTED: &str = "org.selfhelp.listings.group.rejected.v1";
        pub const GROUP_UPDATED: &str = "org.selfhelp.listings.group.updated.v1";
        pub const GROUP_STARTED: &str = "org.selfhelp.listings.group.started.v1";
        pub const GROUP_SUSPENDED: &str = "org.selfhelp.listings.group.suspended.v1";
        pub const GROUP_REINSTATED: &str = "org.selfhelp.listings.group.reinstated.v1";
        pub const GROUP_ARCHIVED: &str = "org.selfhelp.listings.group.archived.v1";
        pub const GROUP_PROPOSAL_LISTED: &str = "org.selfhelp.listings.group.proposal_listed.v1";
        pub const GROUP_CONFIRMED: &str = "org.selfhelp.listings.group.confirmed.v1";
        pub const GROUP_REVIEW_DUE: &str = "org.selfhelp.listings.group.review_due.v1";
        pub const SCHEDULE_CHANGED: &str = "org.selfhelp.listings.schedule.changed.v1";
        pub const OCCURRENCE_CANCELLED: &str = "org.selfhelp.listings.occurrence.cancelled.v1";
        pub const OCCURRENCE_MOVED: &str = "org.selfhelp.listings.occurrence.moved.v1";
        pub const OCCURRENCE_ADDED: &str = "org.selfhelp.listings.occurrence.added.v1";
        pub const MEMBER_JOINED: &str = "org.selfhelp.membership.member.joined.v1";
        pub const MEMBER_ROLE_CHANGED: &str = "org.selfhelp.membership.member.role_changed.v1";
        pub const MEMBER_REQUESTED: &str = "org.selfhelp.membership.member.requested.v1";
        pub const MEMBER_APPROVED: &str = "org.selfhelp.membership.member.approved.v1";
        pub const MEMBER_DECLINED: &str = "org.selfhelp.membership.member.declined.v1";
        pub const MEMBER_INVITED: &str = "org.selfhelp.membership.member.invited.v1";
        pub const MEMBER_WAITLISTED: &str = "org.selfhelp.membership.member.waitlisted.v1";
        pub const MEMBER_PROMOTED: &str = "org.selfhelp.membership.member.promoted.v1";
        pub const MEMBER_LEFT: &str = "org.selfhelp.membership.member.left.v1";
        pub const MEMBER_REMOVED: &str = "org.selfhelp.membership.member.removed.v1";
        pub const MEMBER_BANNED: &str = "org.selfhelp.membership.member.banned.v1";
        pub const MEMBER_ENDED: &str = "org.selfhelp.membership.member.ended.v1";
        pub const FOLLOW_STARTED: &str = "org.selfhelp.membership.follow.started.v1";
        pub const FOLLOW_STOPPED: &str = "org.selfhelp.membership.follow.stopped.v1";
        pub const ROTA_DUTY_DUE: &str = "org.selfhelp.membership.rota.duty_due.v1";
        pub const ROTA_TURNS_CHANGED: &str = "org.selfhelp.membership.rota.turns_changed.v1";
        pub const ROTA_SWAP_REQUEST: &str = "org.selfhelp.membership.rota.swap_request.v1";
        pub const GROUP_ANNOUNCED: &str = "org.selfhelp.membership.group.announced.v1";
        pub const GROUP_NOTICE: &str = "org.selfhelp.membership.group.notice.v1";
        pub const ERASURE_REQUESTED: &str = "org.selfhelp.privacy.erasure.requested.v1";
        pub const ERASURE_COMPLETED: &str = "org.selfhelp.privacy.erasure.completed.v1";
        pub const PUBLIC_GROUP_CHANGED: &str = "org.selfhelp.public.group.changed.v1";
        pub const PUBLIC_GROUP_WITHDRAWN: &str = "org.selfhelp.public.group.withdrawn.v1";
    }

    /// The group snapshot carried by any listings group event; `Ok(None)` for
    /// other event types. Consumers that keep a read model of groups use it.
    pub fn group_snapshot(
        ce_type: &str,
        payload: &[u8],
    ) -> Result<Option<v1::GroupSnapshot>, String> {
        use prost::Message;
        let decoded = match ce_type {
            types::GROUP_CREATED => v1::GroupCreated::decode(payload).map(|e| e.group),
            types::GROUP_SUBMITTED => v1::GroupSubmitted::decode(payload).map(|e| e.group),
            types::GROUP_PUBLISHED => v1::GroupPublished::decode(payload).map(|e| e.group),
            types::GROUP_REJECTED => v1::GroupRejected::decode(payload).map(|e| e.group),
            types::GROUP_UPDATED => v1::GroupUpdated::decode(payload).map(|e| e.group),
            types::GROUP_STARTED
            | types::GROUP_SUSPENDED
            | types::GROUP_REINSTATED
            | types::GROUP_ARCHIVED
            | types::GROUP_PROPOSAL_LISTED => {
                v1::GroupStatusChanged::decode(payload).map(|e| e.group)
            }
            types::GROUP_REVIEW_DUE => v1::GroupReviewDue::decode(payload).map(|e| e.group),
            types::GROUP_CONFIRMED => v1::GroupConfirmed::decode(payload).map(|e| e.group),
            types::SCHEDULE_CHANGED => v1::ScheduleChanged::decode(payload).map(|e| e.group),
            types::OCCURRENCE_CANCELLED => {
                v1::OccurrenceCancelled::decode(payload).map(|e| e.group)
            }
            types::OCCURRENCE_MOVED => v1::OccurrenceMoved::decode(payload).map(|e| e.group),
            types::OCCURRENCE_ADDED => v1::OccurrenceAdded::decode(payload).map(|e| e.group),
            _ => return Ok(None),
        };
        match decoded {
            Ok(Some(group)) => Ok(Some(group)),
            Ok(None) => Err(format!("{ce_type} carries no group")),
            Err(e) => Err(format!("{ce_type}: {e}")),
        }
    }
}

pub mod listings {
    pub mod v1 {
        tonic::include_proto!("selfhelp.listings.v1");
    }

    pub mod served;
}

pub mod membership {
    pub mod v1 {
        tonic::include_proto!("selfhelp.membership.v1");
    }
}

pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("selfhelp.notifications.v1");
    }
}
