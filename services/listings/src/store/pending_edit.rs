//! The `pending_edit` table: an organiser's significant edit of a listed group,
//! held until an operator approves or drops it (`edits.significant =
//! "approval"`). At most one per group: a newer edit replaces the one waiting.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QuerySelect};

use crate::domain::group::FieldChange;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_edit")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    /// The `UpdateGroupRequest` as sent (protobuf): checked again on approval,
    /// since topics may have been retired meanwhile.
    pub request: Vec<u8>,
    /// JSON `[[field, old, new], …]` against the card it was made on.
    pub changes_json: String,
    pub edited_by: String,
    pub edited_at_ms: i64,
    /// The group version it was made against.
    pub base_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// (field, old JSON, new JSON) of each change.
    pub fn changes(&self) -> Vec<(String, String, String)> {
        serde_json::from_str(&self.changes_json).unwrap_or_default()
    }
}

pub async fn find<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(group_id.to_string()).one(conn).await
}

/// Holds `request` (making `changes`) for `group_id`, replacing any edit
/// already waiting.
pub async fn hold<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    request: Vec<u8>,
    changes: &[FieldChange],
    by: &str,
    base_version: i64,
    now: i64,
) -> Result<(), DbErr> {
    drop_for(conn, group_id).await?;
    let changes: Vec<(&str, &str, &str)> = changes
        .iter()
        .map(|c| (c.field, c.old_json.as_str(), c.new_json.as_str()))
        .collect();
    ActiveModel {
        group_id: Set(group_id.to_string()),
        request: Set(request),
        changes_json: Set(serde_json::to_string(&changes).expect("strings serialise")),
        edited_by: Set(by.to_string()),
        edited_at_ms: Set(now),
        base_version: Set(base_version),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Removes the edit waiting for `group_id`, if any; true when there was one.
pub async fn drop_for<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<bool, DbErr> {
    let done = Entity::delete_by_id(group_id.to_string())
        .exec(conn)
        .await?;
    Ok(done.rows_affected > 0)
}

/// The groups of `among` that have an edit waiting.
pub async fn groups_with_edits<C: ConnectionTrait>(
    conn: &C,
    among: &[String],
) -> Result<Vec<String>, DbErr> {
    if among.is_empty() {
        return Ok(Vec::new());
    }
    Entity::find()
        .select_only()
        .column(Column::GroupId)
        .filter(Column::GroupId.is_in(among.iter().cloned()))
        .into_tuple()
        .all(conn)
        .await
}

/// Drops the edits `person` asked for (erasure): what they wrote and that they
/// wrote it both go.
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::EditedBy.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// The edits `person` asked for that wait for review (their data's download).
pub async fn by_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::EditedBy.eq(person))
        .all(conn)
        .await
}
