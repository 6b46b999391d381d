//! The `organiser_role` table: people's roles in groups as membership reports
//! them, so listings knows who may edit a listing besides its creator.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organiser_role")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    pub role: String,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records `role` unless a newer change for the same person is held; `true` when stored.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
    role: &str,
    version: i64,
) -> Result<bool, DbErr> {
    let row = ActiveModel {
        group_id: Set(group_id.to_string()),
        person_id: Set(person_id.to_string()),
        role: Set(role.to_string()),
        version: Set(version),
    };
    match Entity::find_by_id((group_id.to_string(), person_id.to_string()))
        .one(conn)
        .await?
    {
        None => {
            Entity::insert(row).exec_without_returning(conn).await?;
            Ok(true)
        }
        Some(held) if held.version < version => {
            Entity::update(row).exec(conn).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

pub async fn for_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .all(conn)
        .await
}

/// Deletes every role `person` holds (for erasure).
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// Every role `person` holds (their data's download).
pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .all(conn)
        .await
}
