//! `erased_subject`: people who asked to be erased, under a pseudonym, so that
//! events about them still in flight do not bring their notifications back.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use selfhelp_platform::privacy::Pseudonyms;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erased_subject")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject_key: String,
    pub erased_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn mark<C: ConnectionTrait>(
    conn: &C,
    names: &Pseudonyms,
    person: &str,
    now: i64,
) -> Result<(), DbErr> {
    let row = ActiveModel {
        subject_key: Set(names.of(person)),
        erased_at_ms: Set(now),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::SubjectKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Which of `people` were erased (one query per few hundred people).
pub async fn among<C: ConnectionTrait>(
    conn: &C,
    names: &Pseudonyms,
    people: &[&str],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let mut erased = std::collections::HashSet::new();
    // Two keys a person.
    for chunk in selfhelp_platform::db::statement_chunks(conn.get_database_backend(), people, |p| {
        2 * p.len().max(64)
    }) {
        let keys: std::collections::HashMap<String, &str> = chunk
            .iter()
            .flat_map(|p| names.all_of(p).map(|key| (key, *p)))
            .collect();
        let found = Entity::find()
            .filter(Column::SubjectKey.is_in(keys.keys().cloned()))
            .all(conn)
            .await?;
        erased.extend(found.iter().map(|f| keys[&f.subject_key].to_string()));
    }
    Ok(erased)
}

pub async fn contains<C: ConnectionTrait>(
    conn: &C,
    names: &Pseudonyms,
    person: &str,
) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .filter(Column::SubjectKey.is_in(names.all_of(person)))
        .one(conn)
        .await?
        .is_some())
}
