//! `sign_in_link`: a link sent to an address, usable once within its life,
//! with a short code for opening it on another device.

use sea_orm::ConnectionTrait;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_link")]
pub struct Model {
    /// Public: names the link on the page that asks for its code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// SHA-256 of the secret in the link.
    pub token_digest: String,
    /// SHA-256 of the link id and its code.
    pub code_digest: String,
    /// The address asked for, lower-cased.
    pub email: String,
    /// Where to go once signed in (a path of this site).
    pub next_path: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    /// Wrong codes tried; the link is spent after a few.
    pub failed_codes: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn by_token<C: ConnectionTrait>(conn: &C, digest: &str) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::TokenDigest.eq(digest))
        .one(conn)
        .await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// Marks the link used, if nobody has (only one sign-in per link, whatever
/// races); true when this call did.
pub async fn spend<C: ConnectionTrait>(conn: &C, id: &str, now: i64) -> Result<bool, DbErr> {
    let done = Entity::update_many()
        .col_expr(Column::UsedAtMs, Expr::value(Some(now)))
        .filter(Column::Id.eq(id))
        .filter(Column::UsedAtMs.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

pub async fn count_failed_code<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::FailedCodes, Expr::col(Column::FailedCodes).add(1))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Links asked for `email` since `since` (how often an address may ask).
pub async fn count_for<C: ConnectionTrait>(
    conn: &C,
    email: &str,
    since: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::Email.eq(email))
        .filter(Column::CreatedAtMs.gte(since))
        .count(conn)
        .await
}

/// Forgets links that can no longer be used.
pub async fn delete_expired<C: ConnectionTrait>(conn: &C, before: i64) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::ExpiresAtMs.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Every link sent to `email` (erasure).
pub async fn delete_for<C: ConnectionTrait>(conn: &C, email: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::Email.eq(email))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The links sent to `email` that are still kept.
pub async fn sent_to<C: ConnectionTrait>(conn: &C, email: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Email.eq(email))
        .all(conn)
        .await
}
