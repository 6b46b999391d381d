//! The group's open forum and shared knowledge: `agenda_item`,
//! `meeting_notes`, `attendance` (where the group keeps it) and
//! `knowledge_item`. Members only; nothing here is public.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ConnectionTrait, QueryOrder};

pub mod agenda {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agenda_item")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub group_id: String,
        pub meeting_key: String,
        /// `former:…` once its author was erased.
        pub author_id: String,
        pub text: String,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod notes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "meeting_notes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub meeting_key: String,
        pub author_id: String,
        pub text: String,
        pub written_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attendance {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "attendance")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub meeting_key: String,
        /// `former:…` once erased: the meeting's count stays.
        #[sea_orm(primary_key, auto_increment = false)]
        pub person_id: String,
        pub starts_at_ms: i64,
        pub marked_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod knowledge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "knowledge_item")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub group_id: String,
        pub author_id: String,
        pub title: String,
        pub url: String,
        pub text: String,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The agenda items of `keys`' meetings, oldest first.
pub async fn agenda_of<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    keys: &[String],
) -> Result<Vec<agenda::Model>, DbErr> {
    agenda::Entity::find()
        .filter(agenda::Column::GroupId.eq(group_id))
        .filter(agenda::Column::MeetingKey.is_in(keys.iter().cloned()))
        .order_by_asc(agenda::Column::CreatedAtMs)
        .order_by_asc(agenda::Column::Id)
        .all(conn)
        .await
}

pub async fn count_agenda<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    key: &str,
) -> Result<u64, DbErr> {
    agenda::Entity::find()
        .filter(agenda::Column::GroupId.eq(group_id))
        .filter(agenda::Column::MeetingKey.eq(key))
        .count(conn)
        .await
}

pub async fn add_agenda<C: ConnectionTrait>(conn: &C, row: agenda::Model) -> Result<(), DbErr> {
    agenda::Entity::insert(agenda::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find_agenda<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> Result<Option<agenda::Model>, DbErr> {
    agenda::Entity::find_by_id(id.to_string()).one(conn).await
}

pub async fn remove_agenda<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    agenda::Entity::delete_by_id(id.to_string())
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn notes_of<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    keys: &[String],
) -> Result<Vec<notes::Model>, DbErr> {
    notes::Entity::find()
        .filter(notes::Column::GroupId.eq(group_id))
        .filter(notes::Column::MeetingKey.is_in(keys.iter().cloned()))
        .all(conn)
        .await
}

/// Writes a meeting's notes; true when there were none before (members are
/// told of the first writing only).
pub async fn write_notes<C: ConnectionTrait>(conn: &C, row: notes::Model) -> Result<bool, DbErr> {
    let key = (row.group_id.clone(), row.meeting_key.clone());
    let first = notes::Entity::find_by_id(key).one(conn).await?.is_none();
    notes::Entity::insert(notes::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([notes::Column::GroupId, notes::Column::MeetingKey])
                .update_columns([
                    notes::Column::AuthorId,
                    notes::Column::Text,
                    notes::Column::WrittenAtMs,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(first)
}

pub async fn attendance_of<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    keys: &[String],
) -> Result<Vec<attendance::Model>, DbErr> {
    attendance::Entity::find()
        .filter(attendance::Column::GroupId.eq(group_id))
        .filter(attendance::Column::MeetingKey.is_in(keys.iter().cloned()))
        .all(conn)
        .await
}

/// Ticks `row.person_id` in (`came`) or out of a meeting; returns how many came.
pub async fn mark<C: ConnectionTrait>(
    conn: &C,
    row: attendance::Model,
    came: bool,
) -> Result<u64, DbErr> {
    let (group_id, key) = (row.group_id.clone(), row.meeting_key.clone());
    if came {
        attendance::Entity::insert(attendance::ActiveModel::from(row))
            .on_conflict(
                OnConflict::columns([
                    attendance::Column::GroupId,
                    attendance::Column::MeetingKey,
                    attendance::Column::PersonId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    } else {
        attendance::Entity::delete_by_id((group_id.clone(), key.clone(), row.person_id))
            .exec(conn)
            .await?;
    }
    attendance::Entity::find()
        .filter(attendance::Column::GroupId.eq(group_id))
        .filter(attendance::Column::MeetingKey.eq(key))
        .count(conn)
        .await
}

pub async fn knowledge_of<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
) -> Result<Vec<knowledge::Model>, DbErr> {
    knowledge::Entity::find()
        .filter(knowledge::Column::GroupId.eq(group_id))
        .order_by_desc(knowledge::Column::CreatedAtMs)
        .order_by_desc(knowledge::Column::Id)
        .all(conn)
        .await
}

pub async fn count_knowledge<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<u64, DbErr> {
    knowledge::Entity::find()
        .filter(knowledge::Column::GroupId.eq(group_id))
        .count(conn)
        .await
}

pub async fn add_knowledge<C: ConnectionTrait>(
    conn: &C,
    row: knowledge::Model,
) -> Result<(), DbErr> {
    knowledge::Entity::insert(knowledge::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find_knowledge<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> Result<Option<knowledge::Model>, DbErr> {
    knowledge::Entity::find_by_id(id.to_string())
        .one(conn)
        .await
}

pub async fn remove_knowledge<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    knowledge::Entity::delete_by_id(id.to_string())
        .exec(conn)
        .await?;
    Ok(())
}

/// What `person` wrote and where they came (their data export).
pub struct Written {
    pub agenda: Vec<agenda::Model>,
    pub notes: Vec<notes::Model>,
    pub attendance: Vec<attendance::Model>,
    pub knowledge: Vec<knowledge::Model>,
}

pub async fn written_by<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Written, DbErr> {
    Ok(Written {
        agenda: agenda::Entity::find()
            .filter(agenda::Column::AuthorId.eq(person))
            .all(conn)
            .await?,
        notes: notes::Entity::find()
            .filter(notes::Column::AuthorId.eq(person))
            .all(conn)
            .await?,
        attendance: attendance::Entity::find()
            .filter(attendance::Column::PersonId.eq(person))
            .all(conn)
            .await?,
        knowledge: knowledge::Entity::find()
            .filter(knowledge::Column::AuthorId.eq(person))
            .all(conn)
            .await?,
    })
}

/// Erasure: what `person` wrote goes, except a meeting's notes, which are
/// the group's record (they stay, by "a former member"); their attendance
/// stays counted under an id that names nobody.
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str, former: &str) -> Result<(), DbErr> {
    agenda::Entity::delete_many()
        .filter(agenda::Column::AuthorId.eq(person))
        .exec(conn)
        .await?;
    knowledge::Entity::delete_many()
        .filter(knowledge::Column::AuthorId.eq(person))
        .exec(conn)
        .await?;
    notes::Entity::update_many()
        .col_expr(notes::Column::AuthorId, Expr::value(former))
        .filter(notes::Column::AuthorId.eq(person))
        .exec(conn)
        .await?;
    attendance::Entity::update_many()
        .col_expr(attendance::Column::PersonId, Expr::value(former))
        .filter(attendance::Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
