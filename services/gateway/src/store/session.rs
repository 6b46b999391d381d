//! `session`: someone signed in on one browser. The cookie holds a random
//! id; only its digest is stored.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{Condition, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session")]
pub struct Model {
    /// SHA-256 of the cookie's value.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_digest: String,
    pub person_id: String,
    /// Comma-separated roles the services are told (`operator` for staff the
    /// identity provider vouches for).
    pub roles: String,
    /// The token forms carry against cross-site requests.
    pub csrf_token: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    /// The absolute end, whatever the activity.
    pub expires_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn roles(&self) -> Vec<String> {
        self.roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect()
    }
}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(conn: &C, id_digest: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id_digest.to_string()).one(conn).await
}

/// Notes activity (so the idle limit starts again), at most once a minute.
pub async fn touch<C: ConnectionTrait>(conn: &C, id_digest: &str, now: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastSeenAtMs, Expr::value(now))
        .filter(Column::IdDigest.eq(id_digest))
        .filter(Column::LastSeenAtMs.lt(now - 60_000))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id_digest: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(id_digest.to_string())
        .exec(conn)
        .await?;
    Ok(())
}

/// Every session of `person_id` (signing out everywhere, erasure).
pub async fn delete_all_of<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::PersonId.eq(person_id))
        .exec(conn)
        .await?
        .rows_affected)
}

pub async fn count_of<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person_id))
        .count(conn)
        .await
}

/// Forgets sessions past their absolute end or idle since `idle_before`.
pub async fn delete_stale<C: ConnectionTrait>(
    conn: &C,
    now: i64,
    idle_before: i64,
) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(
            Condition::any()
                .add(Column::ExpiresAtMs.lt(now))
                .add(Column::LastSeenAtMs.lt(idle_before)),
        )
        .exec(conn)
        .await?
        .rows_affected)
}

pub async fn of_person<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person_id))
        .all(conn)
        .await
}
