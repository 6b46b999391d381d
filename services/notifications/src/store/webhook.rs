//! `webhook`: endpoints people (organisations) register to receive their
//! notifications as signed HTTP POSTs.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};

use crate::domain::messages::Kind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub owner_id: String,
    pub url: String,
    /// `whsec_` + base64 of the signing key.
    pub secret: String,
    /// Comma-separated notification kinds; empty for all.
    pub kinds: String,
    pub active: bool,
    pub disabled_reason: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn kinds(&self) -> Vec<Kind> {
        self.kinds.split(',').filter_map(Kind::parse).collect()
    }

    pub fn wants(&self, kind: Kind) -> bool {
        self.kinds.is_empty() || self.kinds().contains(&kind)
    }
}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

pub async fn of_owner<C: ConnectionTrait>(conn: &C, owner: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::OwnerId.eq(owner))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// Active endpoints of any of `owners`.
pub async fn active_of<C: ConnectionTrait>(conn: &C, owners: &[&str]) -> Result<Vec<Model>, DbErr> {
    let mut out = Vec::new();
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), owners, |o| o.len())
    {
        out.extend(
            Entity::find()
                .filter(Column::OwnerId.is_in(chunk.iter().copied()))
                .filter(Column::Active.eq(true))
                .all(conn)
                .await?,
        );
    }
    Ok(out)
}

/// Turns the endpoint off; `false` when it already was.
pub async fn disable<C: ConnectionTrait>(conn: &C, id: &str, reason: &str) -> Result<bool, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Active, Expr::value(false))
        .col_expr(Column::DisabledReason, Expr::value(reason))
        .filter(Column::Id.eq(id))
        .filter(Column::Active.eq(true))
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}

/// Turns the endpoint back on (an operator replays a delivery to it).
pub async fn enable<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Active, Expr::value(true))
        .col_expr(Column::DisabledReason, Expr::value(""))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(id.to_string()).exec(conn).await?;
    Ok(())
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, owner: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::OwnerId.eq(owner))
        .exec(conn)
        .await?;
    Ok(())
}
