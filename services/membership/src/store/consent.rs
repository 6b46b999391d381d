//! `consent`: what a person was shown and agreed to when joining a group, and
//! when they withdrew it. Kept as a record of the lawful basis.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub membership_id: String,
    pub group_id: String,
    pub person_id: String,
    pub version: String,
    pub text: String,
    pub given_at_ms: i64,
    pub withdrawn_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A consent given on joining, about to be recorded.
pub struct Given<'a> {
    pub membership_id: &'a str,
    pub group_id: &'a str,
    pub person_id: &'a str,
    pub version: &'a str,
    pub text: &'a str,
}

/// Records every consent in `given`, as few statements as
/// [`selfhelp_platform::db::statement_chunks`] allows.
pub async fn record_all<C: ConnectionTrait>(
    conn: &C,
    given: &[Given<'_>],
    now: i64,
) -> Result<(), DbErr> {
    let size = |g: &Given| {
        g.membership_id.len()
            + g.group_id.len()
            + g.person_id.len()
            + g.version.len()
            + g.text.len()
            + 80
    };
    for chunk in selfhelp_platform::db::statement_chunks(conn.get_database_backend(), given, size) {
        let rows = chunk.iter().map(|g| ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            membership_id: Set(g.membership_id.to_string()),
            group_id: Set(g.group_id.to_string()),
            person_id: Set(g.person_id.to_string()),
            version: Set(g.version.to_string()),
            text: Set(g.text.to_string()),
            given_at_ms: Set(now),
            withdrawn_at_ms: Set(None),
        });
        Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Marks every consent of the membership that is still in force as withdrawn.
pub async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    membership_id: &str,
    now: i64,
) -> Result<u64, DbErr> {
    let r = Entity::update_many()
        .col_expr(Column::WithdrawnAtMs, Expr::value(now))
        .filter(Column::MembershipId.eq(membership_id))
        .filter(Column::WithdrawnAtMs.is_null())
        .exec(conn)
        .await?;
    Ok(r.rows_affected)
}

pub async fn all_for_person<C: ConnectionTrait>(
    conn: &C,
    person: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

pub async fn delete_for_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
