//! `calendar_feed`: the secret address of a person's own calendar (the
//! meetings of their groups). Renewing it makes the old address stop working.

use sea_orm::ConnectionTrait;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calendar_feed")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    /// SHA-256 of the secret in the address.
    pub token_digest: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn by_token<C: ConnectionTrait>(conn: &C, digest: &str) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::TokenDigest.eq(digest))
        .one(conn)
        .await
}

pub async fn find<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(person_id.to_string()).one(conn).await
}

/// Sets (or renews) the person's feed address.
pub async fn set<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::delete_by_id(row.person_id.clone())
        .exec(conn)
        .await?;
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(person_id.to_string())
        .exec(conn)
        .await?;
    Ok(())
}
