//! `audience`: who hears about a group's meetings — its active members and its
//! followers — learned from membership's events. Versioned per person and
//! relation, so a late event cannot undo a newer one.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Alias, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, ExprTrait, QueryOrder, QuerySelect};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audience")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    /// `MEMBER` or `FOLLOWER`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub relation: String,
    pub active: bool,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const MEMBER: &str = "MEMBER";
pub const FOLLOWER: &str = "FOLLOWER";

/// A person's joining or leaving a group's audience, as of `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub group_id: String,
    pub person_id: String,
    /// [`MEMBER`] or [`FOLLOWER`].
    pub relation: &'static str,
    pub active: bool,
    pub version: i64,
}

/// Records that `person` is (or no longer is) in the group's audience as
/// `relation`, unless a newer change is held.
pub async fn set<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
    relation: &'static str,
    active: bool,
    version: i64,
) -> Result<(), DbErr> {
    let change = Change {
        group_id: group_id.to_string(),
        person_id: person_id.to_string(),
        relation,
        active,
        version,
    };
    set_all(conn, &[change]).await
}

/// Records each change, in one statement per few hundred, unless a newer
/// change of the same person, group and relation is held or comes later in
/// `changes` (the first of equal versions counts, as if applied in turn).
pub async fn set_all<C: ConnectionTrait>(conn: &C, changes: &[Change]) -> Result<(), DbErr> {
    // One statement may not touch a row twice: keep the newest change of each.
    let mut newest: Vec<&Change> = Vec::with_capacity(changes.len());
    let mut at: std::collections::HashMap<(&str, &str, &str), usize> =
        std::collections::HashMap::new();
    for change in changes {
        let key = (
            change.group_id.as_str(),
            change.person_id.as_str(),
            change.relation,
        );
        match at.get(&key) {
            Some(&i) if newest[i].version < change.version => newest[i] = change,
            Some(_) => {}
            None => {
                at.insert(key, newest.len());
                newest.push(change);
            }
        }
    }
    let size = |c: &&Change| c.group_id.len() + c.person_id.len() + 20;
    for chunk in selfhelp_platform::db::statement_chunks(conn.get_database_backend(), &newest, size)
    {
        let rows = chunk.iter().map(|c| ActiveModel {
            group_id: Set(c.group_id.clone()),
            person_id: Set(c.person_id.clone()),
            relation: Set(c.relation.to_string()),
            active: Set(c.active),
            version: Set(c.version),
        });
        Entity::insert_many(rows)
            .on_conflict(
                // The held row changes only for a newer version.
                OnConflict::columns([Column::GroupId, Column::PersonId, Column::Relation])
                    .update_columns([Column::Active, Column::Version])
                    .action_and_where(
                        Expr::col((Entity, Column::Version))
                            .lt(Expr::col((Alias::new("excluded"), Column::Version))),
                    )
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Everyone who hears about the group's meetings, each once.
pub async fn of_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<String>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::PersonId)
        .distinct()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Active.eq(true))
        .order_by_asc(Column::PersonId)
        .into_tuple::<String>()
        .all(conn)
        .await
}

/// The group's active members, and its followers too when `followers`,
/// each once.
pub async fn members_of_group<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    followers: bool,
) -> Result<Vec<String>, DbErr> {
    if followers {
        return of_group(conn, group_id).await;
    }
    Entity::find()
        .select_only()
        .column(Column::PersonId)
        .distinct()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Relation.eq(MEMBER))
        .filter(Column::Active.eq(true))
        .order_by_asc(Column::PersonId)
        .into_tuple::<String>()
        .all(conn)
        .await
}

/// The groups a person hears about, for their data export.
pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .filter(Column::Active.eq(true))
        .order_by_asc(Column::GroupId)
        .all(conn)
        .await
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
