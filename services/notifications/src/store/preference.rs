//! `preference`: each person's email address for notifications and their
//! choices (JSON of `domain::preferences::Preferences`). No row: the defaults,
//! and no email.

use std::collections::HashMap;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

use crate::domain::preferences::Preferences;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "preference")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    pub email: String,
    pub doc: String,
    pub updated_at_ms: i64,
    /// When `email` was confirmed through its link; `None` until then.
    pub email_confirmed_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A person's settings as routing needs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    pub email: String,
    /// When `email` was confirmed; nothing but the confirmation link goes to
    /// an address that is not.
    pub email_confirmed_at_ms: Option<i64>,
    pub preferences: Preferences,
}

impl Held {
    /// An address that may be sent notifications.
    pub fn confirmed_email(&self) -> Option<&str> {
        (!self.email.is_empty() && self.email_confirmed_at_ms.is_some())
            .then_some(self.email.as_str())
    }
}

impl From<Model> for Held {
    fn from(row: Model) -> Held {
        Held {
            email: row.email,
            email_confirmed_at_ms: row.email_confirmed_at_ms,
            // A document this version cannot read falls back to the defaults
            // rather than silencing the person.
            preferences: serde_json::from_str(&row.doc).unwrap_or_default(),
        }
    }
}

pub async fn get<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Held, DbErr> {
    Ok(Entity::find_by_id(person.to_string())
        .one(conn)
        .await?
        .map(Held::from)
        .unwrap_or_default())
}

pub async fn put<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    held: &Held,
    now: i64,
) -> Result<(), DbErr> {
    let row = ActiveModel {
        person_id: Set(person.to_string()),
        email: Set(held.email.clone()),
        doc: Set(serde_json::to_string(&held.preferences).expect("preferences serialise")),
        updated_at_ms: Set(now),
        email_confirmed_at_ms: Set(held.email_confirmed_at_ms),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::PersonId)
                .update_columns([
                    Column::Email,
                    Column::Doc,
                    Column::UpdatedAtMs,
                    Column::EmailConfirmedAtMs,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The settings of those of `people` who have any (the rest use defaults).
pub async fn of_people<C: ConnectionTrait>(
    conn: &C,
    people: &[&str],
) -> Result<HashMap<String, Held>, DbErr> {
    let mut out = HashMap::new();
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), people, |p| p.len())
    {
        let rows = Entity::find()
            .filter(Column::PersonId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        out.extend(
            rows.into_iter()
                .map(|r| (r.person_id.clone(), Held::from(r))),
        );
    }
    Ok(out)
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(person.to_string()).exec(conn).await?;
    Ok(())
}
