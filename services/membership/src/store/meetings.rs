//! `meeting_plan` and `meeting_change`: membership's copy of each group's
//! schedule and its exceptions, from listings' schedule events, so rotas follow
//! the meetings. Versions come from listings' group version: an event older than
//! what is held changes nothing.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use selfhelp_schedule::{Exception, Schedule};

pub mod plan {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "meeting_plan")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        pub timezone: String,
        /// The recurring schedule; `None` when the group has none.
        pub schedule_json: Option<String>,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "meeting_change")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        /// The meeting it is about (see `domain::rota::Meeting::key`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub meeting_key: String,
        /// `CANCELLED`, `MOVED` or `ONE_OFF`.
        pub kind: String,
        pub exception_json: String,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What the rota needs to know of a group's meetings.
pub struct Meetings {
    pub tz: chrono_tz::Tz,
    pub schedule: Option<Schedule>,
    pub exceptions: Vec<Exception>,
}

pub async fn load<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Option<Meetings>, DbErr> {
    let Some(p) = plan::Entity::find_by_id(group_id.to_string())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let tz = p.timezone.parse().unwrap_or(chrono_tz::Europe::London);
    let schedule = p
        .schedule_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let exceptions = change::Entity::find()
        .filter(change::Column::GroupId.eq(group_id))
        .all(conn)
        .await?
        .iter()
        .filter_map(|c| serde_json::from_str(&c.exception_json).ok())
        .collect();
    Ok(Some(Meetings {
        tz,
        schedule,
        exceptions,
    }))
}

/// Replaces the schedule (unless a newer one is held). Cancellations and moves
/// named dates of the old rule and go with it, as in listings; one-offs stay.
pub async fn set_schedule<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    timezone: &str,
    schedule: Option<&Schedule>,
    version: i64,
) -> Result<bool, DbErr> {
    let held = plan::Entity::find_by_id(group_id.to_string())
        .one(conn)
        .await?;
    if held.as_ref().is_some_and(|h| h.version >= version) {
        return Ok(false);
    }
    let row = plan::ActiveModel {
        group_id: Set(group_id.to_string()),
        timezone: Set(timezone.to_string()),
        schedule_json: Set(schedule.map(|s| serde_json::to_string(s).expect("serialisable"))),
        version: Set(version),
    };
    plan::Entity::insert(row)
        .on_conflict(
            OnConflict::column(plan::Column::GroupId)
                .update_columns([
                    plan::Column::Timezone,
                    plan::Column::ScheduleJson,
                    plan::Column::Version,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    change::Entity::delete_many()
        .filter(change::Column::GroupId.eq(group_id))
        .filter(change::Column::Kind.is_in(["CANCELLED", "MOVED"]))
        .filter(change::Column::Version.lt(version))
        .exec(conn)
        .await?;
    Ok(true)
}

/// Records one meeting's exception under `key`; a later event for the same
/// meeting replaces it. A change older than the schedule it refers to is dropped.
pub async fn put_exception<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    timezone: &str,
    key: &str,
    exception: &Exception,
    version: i64,
) -> Result<(), DbErr> {
    let plan = plan::Entity::find_by_id(group_id.to_string())
        .one(conn)
        .await?;
    match plan {
        Some(p) if p.version > version => return Ok(()),
        Some(_) => {}
        // Exceptions before any schedule (one-offs of a group without one).
        None => {
            plan::Entity::insert(plan::ActiveModel {
                group_id: Set(group_id.to_string()),
                timezone: Set(timezone.to_string()),
                schedule_json: Set(None),
                version: Set(0),
            })
            .on_conflict(
                OnConflict::column(plan::Column::GroupId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
    }
    let kind = match exception {
        Exception::Cancelled { .. } => "CANCELLED",
        Exception::Moved { .. } => "MOVED",
        Exception::OneOff { .. } => "ONE_OFF",
    };
    let row = change::ActiveModel {
        group_id: Set(group_id.to_string()),
        meeting_key: Set(key.to_string()),
        kind: Set(kind.to_string()),
        exception_json: Set(serde_json::to_string(exception).expect("serialisable")),
        version: Set(version),
    };
    change::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([change::Column::GroupId, change::Column::MeetingKey])
                .update_columns([
                    change::Column::Kind,
                    change::Column::ExceptionJson,
                    change::Column::Version,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
