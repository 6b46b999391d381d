//! `follow`: people who follow a group for updates without joining it.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "follow")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// How many people follow `group_id`.
pub async fn count_for_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .count(conn)
        .await
}

/// Adds the follow; false when it was already there.
pub async fn add<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let row = ActiveModel {
        group_id: Set(group_id.to_string()),
        person_id: Set(person_id.to_string()),
        created_at_ms: Set(now),
    };
    let inserted = Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::GroupId, Column::PersonId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// Removes the follow; false when there was none.
pub async fn remove<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
) -> Result<bool, DbErr> {
    let r = Entity::delete_many()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::PersonId.eq(person_id))
        .exec(conn)
        .await?;
    Ok(r.rows_affected == 1)
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((group_id.to_string(), person_id.to_string()))
        .one(conn)
        .await
}

/// A person's follows, newest first.
pub async fn list_for_person<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find().filter(Column::PersonId.eq(person_id));
    let query = query
        .order_by_desc(Column::CreatedAtMs)
        .order_by_asc(Column::GroupId);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Every follow of a person, for export and erasure.
pub async fn all_for_person<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person_id))
        .order_by_asc(Column::GroupId)
        .all(conn)
        .await
}

pub async fn delete_for_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
