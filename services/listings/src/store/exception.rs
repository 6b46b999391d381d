//! The `schedule_exception` table: changes to single meetings of a group.

use chrono::{NaiveDate, NaiveTime};
use sea_orm::PaginatorTrait;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use crate::domain::schedule::Exception;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_exception")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    /// `CANCELLED`, `MOVED` or `ONE_OFF`.
    pub kind: String,
    /// The regular meeting's date, or the one-off's.
    pub date: String,
    pub new_date: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub venue_index: Option<i32>,
    pub note: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn time(s: Option<&str>) -> Option<NaiveTime> {
    s.and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok())
}

impl Model {
    /// The domain view; rows this code did not write are skipped.
    pub fn exception(&self) -> Option<Exception> {
        let venue_index = self.venue_index.map(|i| i as u32);
        let note = self.note.clone();
        Some(match self.kind.as_str() {
            "CANCELLED" => Exception::Cancelled {
                date: date(&self.date)?,
                note,
            },
            "MOVED" => Exception::Moved {
                date: date(&self.date)?,
                new_date: date(self.new_date.as_deref()?)?,
                start: time(self.start_time.as_deref())?,
                end: time(self.end_time.as_deref())?,
                venue_index,
                note,
            },
            "ONE_OFF" => Exception::OneOff {
                date: date(&self.date)?,
                start: time(self.start_time.as_deref())?,
                end: time(self.end_time.as_deref())?,
                venue_index,
                note,
            },
            _ => return None,
        })
    }
}

/// How many of the group's changes are about `from` (a `YYYY-MM-DD` date) or later.
pub async fn count_from<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    from: &str,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Date.gte(from))
        .count(conn)
        .await
}

pub async fn list<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .order_by_asc(Column::Date)
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// Every group's exceptions, by group id (for rebuilding the public cards).
pub async fn all_by_group<C: ConnectionTrait>(
    conn: &C,
) -> Result<std::collections::HashMap<String, Vec<Model>>, DbErr> {
    let mut by_group: std::collections::HashMap<String, Vec<Model>> = Default::default();
    for row in Entity::find()
        .order_by_asc(Column::Date)
        .order_by_asc(Column::Id)
        .all(conn)
        .await?
    {
        by_group.entry(row.group_id.clone()).or_default().push(row);
    }
    Ok(by_group)
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    e: &Exception,
    now: i64,
) -> Result<Model, DbErr> {
    let fmt_date = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
    let fmt_time = |t: &NaiveTime| Some(t.format("%H:%M").to_string());
    let (kind, day, new_date, start, end, venue, note) = match e {
        Exception::Cancelled { date, note } => {
            ("CANCELLED", fmt_date(date), None, None, None, None, note)
        }
        Exception::Moved {
            date,
            new_date,
            start,
            end,
            venue_index,
            note,
        } => (
            "MOVED",
            fmt_date(date),
            Some(fmt_date(new_date)),
            fmt_time(start),
            fmt_time(end),
            *venue_index,
            note,
        ),
        Exception::OneOff {
            date,
            start,
            end,
            venue_index,
            note,
        } => (
            "ONE_OFF",
            fmt_date(date),
            None,
            fmt_time(start),
            fmt_time(end),
            *venue_index,
            note,
        ),
    };
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        group_id: Set(group_id.to_string()),
        kind: Set(kind.to_string()),
        date: Set(day),
        new_date: Set(new_date),
        start_time: Set(start),
        end_time: Set(end),
        venue_index: Set(venue.map(|v| v as i32)),
        note: Set(note.clone()),
        created_at_ms: Set(now),
    }
    .insert(conn)
    .await
}

/// Drops cancellations and moves (they refer to the old rule's dates); one-off
/// meetings stay. Used when the schedule is replaced.
pub async fn clear_regular_changes<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
) -> Result<u64, DbErr> {
    let res = Entity::delete_many()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Kind.is_in(["CANCELLED", "MOVED"]))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
