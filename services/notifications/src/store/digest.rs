//! `digest`: one row per person and period, created by whichever replica gets
//! there first. The unique (person, period) key is what keeps a digest from
//! going out twice.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "digest")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub person_id: String,
    /// e.g. `daily:2026-11-26`, `weekly:2026-11-23`.
    pub period: String,
    pub item_count: i32,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Creates the person's digest for `period` unless one exists; the new id, or
/// `None` when another replica (or an earlier round) already made it.
pub async fn create_once<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    period: &str,
    item_count: i32,
    now: i64,
) -> Result<Option<String>, DbErr> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = Entity::insert(ActiveModel {
        id: Set(id.clone()),
        person_id: Set(person.to_string()),
        period: Set(period.to_string()),
        item_count: Set(item_count),
        created_at_ms: Set(now),
    })
    .on_conflict_do_nothing_on([Column::PersonId, Column::Period])
    .exec_without_returning(conn)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)).then_some(id))
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// Deletes digests made before `before_ms` (their periods are long past),
/// except those in `keep` (their email has not finished).
pub async fn delete_before<C: ConnectionTrait>(
    conn: &C,
    before_ms: i64,
    keep: &[String],
) -> Result<u64, DbErr> {
    let mut delete = Entity::delete_many().filter(Column::CreatedAtMs.lt(before_ms));
    if !keep.is_empty() {
        delete = delete.filter(Column::Id.is_not_in(keep.iter().cloned()));
    }
    Ok(delete.exec(conn).await?.rows_affected)
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
