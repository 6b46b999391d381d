//! The `topic` table: each region's taxonomy.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use crate::domain::topic::{DEFAULT_TAXONOMY, TopicNode, stable_id};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "topic")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub region: String,
    pub code: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<String>,
    pub retired_at_ms: Option<i64>,
    pub replaced_by_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn node(&self) -> TopicNode {
        TopicNode {
            id: self.id.clone(),
            code: self.code.clone(),
            parent_id: self.parent_id.clone(),
            retired: self.retired_at_ms.is_some(),
            replaced_by: self.replaced_by_id.clone(),
        }
    }
}

/// Adds the default taxonomy's topics that a region lacks (idempotent; replicas
/// starting together insert the same ids).
pub async fn seed_defaults<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    now: i64,
) -> Result<u64, DbErr> {
    let mut added = 0;
    for (code, name, parent) in DEFAULT_TAXONOMY {
        let row = ActiveModel {
            id: Set(stable_id(region, code).to_string()),
            region: Set(region.to_string()),
            code: Set(String::from(*code)),
            name: Set(String::from(*name)),
            description: Set(String::new()),
            parent_id: Set(parent.map(|p| stable_id(region, p).to_string())),
            retired_at_ms: Set(None),
            replaced_by_id: Set(None),
            created_at_ms: Set(now),
            updated_at_ms: Set(now),
        };
        // No conflict target: replicas seeding at the same moment may collide
        // on the id or on (region, code), whichever index PostgreSQL checks first.
        let result = Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::new()
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_without_returning(conn)
            .await?;
        if matches!(result, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            added += 1;
        }
    }
    Ok(added)
}

pub async fn list<C: ConnectionTrait>(conn: &C, region: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Region.eq(region))
        .order_by_asc(Column::Code)
        .all(conn)
        .await
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string())
        .filter(Column::Region.eq(region))
        .one(conn)
        .await
}

pub async fn insert<C: ConnectionTrait>(conn: &C, row: Model) -> Result<Model, DbErr> {
    ActiveModel {
        id: Set(row.id),
        region: Set(row.region),
        code: Set(row.code),
        name: Set(row.name),
        description: Set(row.description),
        parent_id: Set(row.parent_id),
        retired_at_ms: Set(row.retired_at_ms),
        replaced_by_id: Set(row.replaced_by_id),
        created_at_ms: Set(row.created_at_ms),
        updated_at_ms: Set(row.updated_at_ms),
    }
    .insert(conn)
    .await
}

pub async fn save<C: ConnectionTrait>(conn: &C, row: Model) -> Result<Model, DbErr> {
    let mut active: ActiveModel = row.clone().into();
    active.name = Set(row.name);
    active.description = Set(row.description);
    active.parent_id = Set(row.parent_id);
    active.retired_at_ms = Set(row.retired_at_ms);
    active.replaced_by_id = Set(row.replaced_by_id);
    active.updated_at_ms = Set(row.updated_at_ms);
    active.update(conn).await
}
