//! `invitation`: codes organisers hand out, and personal invitations.

use sea_orm::ExprTrait;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    /// Set for a code invitation (unique).
    pub code: Option<String>,
    /// Set for a personal invitation.
    pub person_id: Option<String>,
    pub created_by: String,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
    /// What whoever uses it becomes: `MEMBER`, or `ORGANISER`.
    pub role: String,
}

/// The role of an invitation to organise a group.
pub const ORGANISER: &str = "ORGANISER";
const MEMBER: &str = "MEMBER";

impl Model {
    /// Whoever uses it becomes the group's organiser.
    pub fn makes_organiser(&self) -> bool {
        self.role == ORGANISER
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub struct NewInvitation<'a> {
    pub group_id: &'a str,
    pub code: Option<String>,
    pub person_id: Option<&'a str>,
    pub created_by: &'a str,
    pub max_uses: i32,
    pub expires_at_ms: i64,
    /// Whoever uses it becomes an organiser.
    pub organiser: bool,
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    new: NewInvitation<'_>,
    now: i64,
) -> Result<Model, DbErr> {
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        group_id: Set(new.group_id.to_string()),
        code: Set(new.code),
        person_id: Set(new.person_id.map(str::to_string)),
        created_by: Set(new.created_by.to_string()),
        max_uses: Set(new.max_uses),
        uses: Set(0),
        expires_at_ms: Set(new.expires_at_ms),
        created_at_ms: Set(now),
        role: Set(if new.organiser { ORGANISER } else { MEMBER }.to_string()),
    }
    .insert(conn)
    .await
}

pub async fn find_by_code<C: ConnectionTrait>(
    conn: &C,
    code: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::Code.eq(code)).one(conn).await
}

/// Counts one use, only if one is left: returns false when the code was used up
/// in the meantime.
pub async fn use_once<C: ConnectionTrait>(conn: &C, inv: &Model) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::Uses, Expr::col(Column::Uses).add(1))
        .filter(Column::Id.eq(&inv.id))
        .filter(Column::Uses.lt(inv.max_uses))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Invitations a person made, for their data export.
pub async fn created_by<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::CreatedBy.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// Forgets `person` in invitations: those made for them go, those they made
/// stay (a code may still be in use) without their name.
pub async fn forget<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    placeholder: &str,
) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Entity::update_many()
        .col_expr(Column::CreatedBy, Expr::value(placeholder))
        .filter(Column::CreatedBy.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// The newest personal invitation of `person` to the group.
pub async fn personal_for<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::PersonId.eq(person))
        .order_by_desc(Column::CreatedAtMs)
        .order_by_desc(Column::Id)
        .one(conn)
        .await
}
