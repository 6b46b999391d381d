//! `alert`: saved searches that tell people when a matching group is listed.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};

use crate::domain::alerts::AlertRule;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub person_id: String,
    /// Comma-separated topic codes; empty for any.
    pub topics: String,
    /// The centre of the alert's area; with `radius_km` 0 the alert has no
    /// area (groups anywhere in the region).
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
    pub label: String,
    pub created_at_ms: i64,
    /// The postcode the area was given by (normalised), empty when given by
    /// coordinates or without an area.
    pub postcode: String,
    /// Groups meeting online or by phone match wherever they are.
    pub include_online: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn topics(&self) -> Vec<String> {
        self.topics
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn rule(&self) -> AlertRule {
        AlertRule {
            topics: self.topics(),
            area: (self.radius_km > 0.0)
                .then_some(((self.latitude, self.longitude), self.radius_km)),
            include_online: self.include_online,
        }
    }
}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<(), DbErr> {
    Entity::insert(ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

pub async fn count_of<C: ConnectionTrait>(conn: &C, person: &str) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .count(conn)
        .await
}

/// Every saved alert, a page at a time, for matching a newly listed group.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    after_id: &str,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    use sea_orm::QuerySelect;
    Entity::find()
        .filter(Column::Id.gt(after_id))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Deletes the alert if it is `person`'s; whether it was.
pub async fn delete_own<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    id: &str,
) -> Result<bool, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
