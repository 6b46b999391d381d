//! `erasure_request` and `erasure_confirmation`: erasure requests, kept under a
//! pseudonym of the person, and which services confirmed each.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erasure_request")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `privacy::Pseudonyms` of the person: finds their request, names no one.
    pub subject_key: String,
    pub requested_at_ms: i64,
    /// When every service should have confirmed.
    pub due_at_ms: i64,
    /// Set once every expected service confirmed.
    pub completed_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub mod confirmation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "erasure_confirmation")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub service: String,
        pub confirmed_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    subject_key: &str,
    now: i64,
    due_at_ms: i64,
) -> Result<Model, DbErr> {
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        subject_key: Set(subject_key.to_string()),
        requested_at_ms: Set(now),
        due_at_ms: Set(due_at_ms),
        completed_at_ms: Set(None),
    }
    .insert(conn)
    .await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// The person's latest request.
/// The newest request filed under any of `keys` (a person's pseudonyms).
pub async fn latest_for<C: ConnectionTrait>(
    conn: &C,
    keys: &[String],
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::SubjectKey.is_in(keys.iter().cloned()))
        .order_by_desc(Column::RequestedAtMs)
        .order_by_desc(Column::Id)
        .one(conn)
        .await
}

/// Requests still open after their due time, oldest first.
pub async fn overdue<C: ConnectionTrait>(
    conn: &C,
    now: i64,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find()
        .filter(Column::CompletedAtMs.is_null())
        .filter(Column::DueAtMs.lte(now));
    let query = query
        .order_by_asc(Column::RequestedAtMs)
        .order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Records `service`'s confirmation (once); returns the request's confirmations.
pub async fn confirm<C: ConnectionTrait>(
    conn: &C,
    request_id: &str,
    service: &str,
    now: i64,
) -> Result<Vec<confirmation::Model>, DbErr> {
    let row = confirmation::ActiveModel {
        request_id: Set(request_id.to_string()),
        service: Set(service.to_string()),
        confirmed_at_ms: Set(now),
    };
    confirmation::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                confirmation::Column::RequestId,
                confirmation::Column::Service,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    confirmations(conn, request_id).await
}

pub async fn confirmations<C: ConnectionTrait>(
    conn: &C,
    request_id: &str,
) -> Result<Vec<confirmation::Model>, DbErr> {
    confirmation::Entity::find()
        .filter(confirmation::Column::RequestId.eq(request_id))
        .order_by_asc(confirmation::Column::ConfirmedAtMs)
        .all(conn)
        .await
}

pub async fn mark_complete<C: ConnectionTrait>(conn: &C, id: &str, now: i64) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    Entity::update_many()
        .col_expr(Column::CompletedAtMs, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::CompletedAtMs.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
