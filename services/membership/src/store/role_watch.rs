//! `role_watch`: how long someone has held a role (organiser, chair) or been
//! a group's only organiser, and when they were told, so a term's end or the
//! only-organiser nudge is sent once.

use sea_orm::ConnectionTrait;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};

/// Kinds of watch.
pub const ORGANISER: &str = "ORGANISER";
pub const CHAIR: &str = "CHAIR";
pub const SOLE_ORGANISER: &str = "SOLE_ORGANISER";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_watch")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    pub since_ms: i64,
    /// 0 until they were told.
    pub told_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn of_kind<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    kind: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Kind.eq(kind))
        .all(conn)
        .await
}

/// Starts watching `person` in the role from `since_ms`, unless they are
/// already watched (a watch keeps its start).
pub async fn start<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    kind: &str,
    person: &str,
    since_ms: i64,
) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(Model {
        group_id: group_id.to_string(),
        kind: kind.to_string(),
        person_id: person.to_string(),
        since_ms,
        told_at_ms: 0,
    }))
    .on_conflict(
        OnConflict::columns([Column::GroupId, Column::Kind, Column::PersonId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Stops watching everyone in the role but `keep`.
pub async fn stop_others<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    kind: &str,
    keep: &[String],
) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Kind.eq(kind))
        .filter(Column::PersonId.is_not_in(keep.iter().cloned()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Stops watching anyone in `kind` but `person`, and `person` too when
/// their watch began before `since_at_least`. Judged in the statement, so a
/// watch another replica just moved on is not undone on an old reading.
pub async fn stop_stale<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    kind: &str,
    person: &str,
    since_at_least: Option<i64>,
) -> Result<(), DbErr> {
    let mut stale = sea_orm::Condition::any().add(Column::PersonId.ne(person));
    if let Some(at_least) = since_at_least {
        stale = stale.add(Column::SinceMs.lt(at_least));
    }
    Entity::delete_many()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Kind.eq(kind))
        .filter(stale)
        .exec(conn)
        .await?;
    Ok(())
}

/// Claims the telling of one watch: true for the one caller (of several
/// replicas) that gets to tell.
pub async fn claim_telling<C: ConnectionTrait>(
    conn: &C,
    w: &Model,
    now: i64,
) -> Result<bool, DbErr> {
    let done = Entity::update_many()
        .col_expr(Column::ToldAtMs, Expr::value(now))
        .filter(Column::GroupId.eq(&w.group_id))
        .filter(Column::Kind.eq(&w.kind))
        .filter(Column::PersonId.eq(&w.person_id))
        .filter(Column::ToldAtMs.eq(0))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Every watch on `person` (their data export).
pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .all(conn)
        .await
}

/// Erasure: `person` is watched nowhere.
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// Claims the end of `w`'s term: its next term starts at `next_since_ms`.
/// True for the one caller (of several replicas) that moved it on.
pub async fn next_term<C: ConnectionTrait>(
    conn: &C,
    w: &Model,
    next_since_ms: i64,
) -> Result<bool, DbErr> {
    let done = Entity::update_many()
        .col_expr(Column::SinceMs, Expr::value(next_since_ms))
        .filter(Column::GroupId.eq(&w.group_id))
        .filter(Column::Kind.eq(&w.kind))
        .filter(Column::PersonId.eq(&w.person_id))
        .filter(Column::SinceMs.eq(w.since_ms))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}
