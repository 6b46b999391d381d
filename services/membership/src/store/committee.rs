//! `committee` and `committee_member`: a group's sub-committees, each with
//! its members (members of the group), a lead and duties of its own.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "committee")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    pub name: String,
    /// A person id; empty once the lead left or was erased.
    pub lead_id: String,
    pub duties_json: String,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn duties(&self) -> Vec<String> {
        serde_json::from_str(&self.duties_json).unwrap_or_default()
    }
}

pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "committee_member")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub committee_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub person_id: String,
        pub group_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The group's committees, by name.
pub async fn for_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .order_by_asc(Column::Name)
        .all(conn)
        .await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// Another committee of the group with this name (names are compared
/// without case).
pub async fn named<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    name: &str,
) -> Result<Option<Model>, DbErr> {
    Ok(for_group(conn, group_id)
        .await?
        .into_iter()
        .find(|c| c.name.to_lowercase() == name.to_lowercase()))
}

/// Every committee member of the group's committees.
pub async fn members_in_group<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
) -> Result<Vec<member::Model>, DbErr> {
    member::Entity::find()
        .filter(member::Column::GroupId.eq(group_id))
        .all(conn)
        .await
}

pub async fn members_of<C: ConnectionTrait>(
    conn: &C,
    committee_id: &str,
) -> Result<Vec<String>, DbErr> {
    Ok(member::Entity::find()
        .filter(member::Column::CommitteeId.eq(committee_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.person_id)
        .collect())
}

/// Stores the committee and replaces its members.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    row: Model,
    members: &[String],
) -> Result<(), DbErr> {
    let (id, group_id) = (row.id.clone(), row.group_id.clone());
    if find(conn, &id).await?.is_some() {
        ActiveModel::from(row).reset_all().update(conn).await?;
    } else {
        Entity::insert(ActiveModel::from(row))
            .exec_without_returning(conn)
            .await?;
    }
    member::Entity::delete_many()
        .filter(member::Column::CommitteeId.eq(&id))
        .exec(conn)
        .await?;
    if !members.is_empty() {
        member::Entity::insert_many(members.iter().map(|p| {
            member::ActiveModel::from(member::Model {
                committee_id: id.clone(),
                person_id: p.clone(),
                group_id: group_id.clone(),
            })
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    member::Entity::delete_many()
        .filter(member::Column::CommitteeId.eq(id))
        .exec(conn)
        .await?;
    Entity::delete_by_id(id.to_string()).exec(conn).await?;
    Ok(())
}

/// The committees `person` is on (their data export).
pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    let ids: Vec<String> = member::Entity::find()
        .filter(member::Column::PersonId.eq(person))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.committee_id)
        .collect();
    Entity::find().filter(Column::Id.is_in(ids)).all(conn).await
}

/// `person` is off the group's committees (they left it, or were erased:
/// `group_id` `None` for every group); a committee they led has no lead.
pub async fn leave<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    group_id: Option<&str>,
) -> Result<(), DbErr> {
    let mut gone = member::Entity::delete_many().filter(member::Column::PersonId.eq(person));
    let mut led = Entity::update_many()
        .col_expr(Column::LeadId, sea_orm::sea_query::Expr::value(""))
        .filter(Column::LeadId.eq(person));
    if let Some(g) = group_id {
        gone = gone.filter(member::Column::GroupId.eq(g));
        led = led.filter(Column::GroupId.eq(g));
    }
    gone.exec(conn).await?;
    led.exec(conn).await?;
    Ok(())
}
