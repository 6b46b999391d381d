//! `signing_key`: the region's keys for the tokens the gateway gives the
//! services on a signed-in person's behalf (ES256). The newest signs; older
//! ones stay published until every token they signed has expired.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// PKCS#8 PEM of the private key.
    pub private_pem: String,
    /// The public key as a JWK (JSON).
    pub public_jwk: String,
    pub created_at_ms: i64,
    /// When it stops signing (a newer key takes over).
    pub signs_until_ms: i64,
    /// When it leaves the JWKS (after the last token it signed expired).
    pub published_until_ms: i64,
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

/// Keys still published at `now`, newest first.
pub async fn published<C: ConnectionTrait>(conn: &C, now: i64) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PublishedUntilMs.gt(now))
        .order_by_desc(Column::CreatedAtMs)
        .order_by_desc(Column::Kid)
        .all(conn)
        .await
}

pub async fn delete_unpublished<C: ConnectionTrait>(conn: &C, now: i64) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::PublishedUntilMs.lte(now))
        .exec(conn)
        .await?
        .rows_affected)
}
