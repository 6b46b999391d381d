//! The `membership` table: one row per (group, person).

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

use crate::domain::membership::{Role, State};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "membership")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    pub person_id: String,
    pub state: String,
    pub role: String,
    pub joined_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Left)
    }
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }
}

pub async fn find_for<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::PersonId.eq(person_id))
        .one(conn)
        .await
}

/// Makes `person` an active member with `role`, reusing an earlier row (left,
/// declined…) if there is one. Returns the stored membership.
pub async fn activate<C: ConnectionTrait>(
    conn: &C,
    existing: Option<Model>,
    group_id: &str,
    person_id: &str,
    role: Role,
    now: i64,
) -> Result<Model, DbErr> {
    match existing {
        Some(old) => {
            let version = old.version + 1;
            let mut row: ActiveModel = old.into();
            row.state = Set(State::Active.as_str().into());
            row.role = Set(role.as_str().into());
            row.joined_at_ms = Set(now);
            row.updated_at_ms = Set(now);
            row.version = Set(version);
            row.update(conn).await
        }
        None => {
            ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                group_id: Set(group_id.to_string()),
                person_id: Set(person_id.to_string()),
                state: Set(State::Active.as_str().into()),
                role: Set(role.as_str().into()),
                joined_at_ms: Set(now),
                updated_at_ms: Set(now),
                version: Set(1),
            }
            .insert(conn)
            .await
        }
    }
}

/// A person's memberships, newest first.
pub async fn list_for_person<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find().filter(Column::PersonId.eq(person_id));
    let total = query.clone().count(conn).await?;
    let rows = query
        .order_by_desc(Column::JoinedAtMs)
        .order_by_desc(Column::Id)
        .offset(offset)
        .limit(limit)
        .all(conn)
        .await?;
    Ok((rows, total))
}
