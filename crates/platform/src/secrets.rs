//! `service_secret`: keys a service makes for itself on first start and every
//! replica shares through the database (unsubscribe links, pseudonyms). A
//! platform table, so every service has it.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_secret")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The secret called `name`: the stored one, or `fresh` stored now. Two
/// replicas starting together agree: the second insert is ignored.
pub async fn get_or_create<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    fresh: String,
) -> Result<String, DbErr> {
    Entity::insert(ActiveModel {
        name: Set(name.to_string()),
        value: Set(fresh),
    })
    .on_conflict_do_nothing_on([Column::Name])
    .exec_without_returning(conn)
    .await?;
    Entity::find_by_id(name.to_string())
        .one(conn)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound(format!("service secret {name}")))
}
