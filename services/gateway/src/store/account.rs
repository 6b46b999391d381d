//! `account`: a person who has signed in — the stable id the services know
//! them by, and the address they sign in with (never sent to the services,
//! logged or put in an event).

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, Set};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    /// The person id every service knows (UUIDv7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    /// Lower-cased; unique. None for staff who sign in only through the
    /// region's identity provider.
    pub email: Option<String>,
    /// The identity provider's subject for staff (`issuer|sub`); none for
    /// people signing in by email.
    pub external_subject: Option<String>,
    pub created_at_ms: i64,
    pub last_sign_in_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn find<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(person_id.to_string()).one(conn).await
}

pub async fn by_email<C: ConnectionTrait>(conn: &C, email: &str) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::Email.eq(email))
        .one(conn)
        .await
}

pub async fn by_external_subject<C: ConnectionTrait>(
    conn: &C,
    subject: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::ExternalSubject.eq(subject))
        .one(conn)
        .await
}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn signed_in<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    Entity::update(ActiveModel {
        person_id: Set(person_id.to_string()),
        last_sign_in_at_ms: Set(now),
        ..Default::default()
    })
    .exec(conn)
    .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(conn: &C, person_id: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_by_id(person_id.to_string())
        .exec(conn)
        .await?
        .rows_affected)
}
