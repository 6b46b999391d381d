//! `announcement`: when each group's messages to its members were sent, so a
//! group sends at most so many a day. The message itself travels in the
//! event and is not kept here; nor is who sent it (nothing to erase).

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, PaginatorTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "announcement")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    pub sent_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    group_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    Entity::insert(ActiveModel {
        id: Set(id.to_string()),
        group_id: Set(group_id.to_string()),
        sent_at_ms: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// How many messages `group_id` has sent since `since_ms`.
pub async fn sent_since<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    since_ms: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::SentAtMs.gte(since_ms))
        .count(conn)
        .await
}

/// When the oldest of the messages `group_id` sent since `since_ms` was sent.
pub async fn oldest_since<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    since_ms: i64,
) -> Result<Option<i64>, DbErr> {
    use sea_orm::QueryOrder;
    Ok(Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::SentAtMs.gte(since_ms))
        .order_by_asc(Column::SentAtMs)
        .one(conn)
        .await?
        .map(|a| a.sent_at_ms))
}
