//! The `group_change` table: a field-level history of edits to each group.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use crate::domain::group::FieldChange;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "group_change")]
pub struct Model {
    /// UUIDv7: ordering by id is ordering by time.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    pub field: String,
    pub old_value: String,
    pub new_value: String,
    pub changed_by: String,
    pub changed_at_ms: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn record<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    changes: &[FieldChange],
    who: &str,
    version: i64,
    now: i64,
) -> Result<(), DbErr> {
    for change in changes {
        ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            group_id: Set(group_id.to_string()),
            field: Set(change.field.to_string()),
            old_value: Set(change.old_json.clone()),
            new_value: Set(change.new_json.clone()),
            changed_by: Set(who.to_string()),
            changed_at_ms: Set(now),
            version: Set(version),
        }
        .insert(conn)
        .await?;
    }
    Ok(())
}

/// A group's changes, newest first, with the total count.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find().filter(Column::GroupId.eq(group_id));
    let query = query.order_by_desc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Replaces `person` as the author of changes with `nobody` (for erasure): the
/// history of the listing stays, who made it does not.
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str, nobody: &str) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    Entity::update_many()
        .col_expr(Column::ChangedBy, Expr::value(nobody))
        .filter(Column::ChangedBy.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// Every change `person` made, oldest first (their data's download).
pub async fn by_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::ChangedBy.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}
