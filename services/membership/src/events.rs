//! What membership emits, through the outbox. (It consumes LISTINGS into the
//! shared `group_view` read model: `selfhelp_platform::group_view`.)

use sea_orm::{ConnectionTrait, DbErr};
use selfhelp_platform::bus::MEMBERSHIP;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::time::{now_ms, to_timestamp};
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::events::v1 as ev;

use crate::store::membership;

pub const MEMBER_JOINED: &str = "member.joined";

/// Records `member.joined` for `m` in `conn`'s transaction. Carries ids only: the
/// subject is restricted, and consumers look up what else they need.
pub async fn record_joined<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    m: &membership::Model,
    trace: &TraceParent,
) -> Result<String, DbErr> {
    let msg = ev::MemberJoined {
        membership_id: m.id.clone(),
        group_id: m.group_id.clone(),
        person_id: m.person_id.clone(),
        version: m.version,
        occurred_at: Some(to_timestamp(now_ms())),
    };
    outbox
        .enqueue(conn, MEMBERSHIP, MEMBER_JOINED, &m.id, &msg, Some(trace))
        .await
}
