//! `staff_sign_in`: a sign-in through the region's identity provider, begun
//! and waiting for the provider to send the person back. Named by the digest
//! of its `state`; used once; gone after ten minutes.

use sea_orm::ConnectionTrait;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_sign_in")]
pub struct Model {
    /// SHA-256 of the `state` sent to the provider.
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_digest: String,
    /// The PKCE verifier, sent with the code to prove this is the client
    /// that began it.
    pub pkce_verifier: String,
    /// What the ID token must carry back.
    pub nonce: String,
    pub next_path: String,
    pub expires_at_ms: i64,
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

/// Takes the sign-in named by `state_digest` (it can be taken once).
pub async fn take<C: ConnectionTrait>(
    conn: &C,
    state_digest: &str,
) -> Result<Option<Model>, DbErr> {
    let Some(row) = Entity::find_by_id(state_digest.to_string())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let gone = Entity::delete_by_id(state_digest.to_string())
        .exec(conn)
        .await?
        .rows_affected;
    // Another request took it between the two statements: not this one's.
    Ok((gone == 1).then_some(row))
}

/// Forgets sign-ins never finished.
pub async fn delete_expired<C: ConnectionTrait>(conn: &C, before: i64) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::ExpiresAtMs.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}
