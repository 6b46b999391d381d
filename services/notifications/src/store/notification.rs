//! The `notification` table: the in-app inbox.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder, QuerySelect};

use selfhelp_platform::db::statement_chunks;

use crate::domain::messages::Message;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub recipient_id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub group_id: String,
    pub event_id: String,
    pub created_at_ms: i64,
    pub read_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A message about to be stored: for whom, about which group, caused by which event.
pub struct Outgoing<'a> {
    pub message: &'a Message,
    pub group_id: &'a str,
    pub event_id: &'a str,
}

/// Stores the messages, a few hundred rows per statement, with ids in the
/// order given; a message already stored for the same event, recipient and
/// kind is skipped (redelivery). Returns the rows stored for these events.
pub async fn insert_all<C: ConnectionTrait>(
    conn: &C,
    outgoing: &[Outgoing<'_>],
    now: i64,
) -> Result<Vec<Model>, DbErr> {
    let rows: Vec<Model> = outgoing
        .iter()
        .map(|o| Model {
            id: uuid::Uuid::now_v7().to_string(),
            recipient_id: o.message.recipient_id.clone(),
            kind: o.message.kind.as_str().to_string(),
            title: o.message.title.clone(),
            body: o.message.body.clone(),
            group_id: o.group_id.to_string(),
            event_id: o.event_id.to_string(),
            created_at_ms: now,
            read_at_ms: None,
        })
        .collect();
    let mut inserted = 0;
    for chunk in statement_chunks(conn.get_database_backend(), &rows, |r| {
        r.id.len()
            + r.recipient_id.len()
            + r.kind.len()
            + r.title.len()
            + r.body.len()
            + r.group_id.len()
            + r.event_id.len()
            + 24
    }) {
        inserted += match Entity::insert_many(chunk.iter().cloned().map(ActiveModel::from))
            .on_conflict_do_nothing_on([Column::EventId, Column::RecipientId, Column::Kind])
            .exec_without_returning(conn)
            .await?
        {
            sea_orm::TryInsertResult::Inserted(n) => n,
            sea_orm::TryInsertResult::Empty | sea_orm::TryInsertResult::Conflicted => 0,
        };
    }
    // Every row went in as made: they are the rows stored, without reading them
    // back. Otherwise some were there already (the same message twice, or an
    // event applied again) and the stored ones are read.
    if inserted == rows.len() as u64 {
        return Ok(rows);
    }
    let mut events: Vec<&str> = outgoing.iter().map(|o| o.event_id).collect();
    events.sort_unstable();
    events.dedup();
    let mut stored = Vec::new();
    for chunk in statement_chunks(conn.get_database_backend(), &events, |e| e.len()) {
        stored.extend(
            Entity::find()
                .filter(Column::EventId.is_in(chunk.iter().copied()))
                .order_by_asc(Column::Id)
                .all(conn)
                .await?,
        );
    }
    Ok(stored)
}

/// A recipient's notifications, newest first, starting after `before_id` if given.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
    unread_only: bool,
    before_id: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().filter(Column::RecipientId.eq(recipient));
    if unread_only {
        query = query.filter(Column::ReadAtMs.is_null());
    }
    if let Some(before) = before_id {
        query = query.filter(Column::Id.lt(before));
    }
    query.order_by_desc(Column::Id).limit(limit).all(conn).await
}

/// Notification `id` if it is `recipient`'s.
pub async fn find_owned<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
    id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string())
        .filter(Column::RecipientId.eq(recipient))
        .one(conn)
        .await
}

pub async fn unread_count<C: ConnectionTrait>(conn: &C, recipient: &str) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::RecipientId.eq(recipient))
        .filter(Column::ReadAtMs.is_null())
        .count(conn)
        .await
}

/// How many of `ids` belong to `recipient`.
pub async fn count_owned<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
    ids: &[String],
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::RecipientId.eq(recipient))
        .filter(Column::Id.is_in(ids.iter().cloned()))
        .count(conn)
        .await
}

/// Marks the recipient's notifications read: the given ones, or all when `ids` is `None`.
pub async fn mark_read<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
    ids: Option<&[String]>,
    now: i64,
) -> Result<u64, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::ReadAtMs, Expr::value(now))
        .filter(Column::RecipientId.eq(recipient))
        .filter(Column::ReadAtMs.is_null());
    if let Some(ids) = ids {
        update = update.filter(Column::Id.is_in(ids.iter().cloned()));
    }
    Ok(update.exec(conn).await?.rows_affected)
}

/// Deletes every notification addressed to `person` (for erasure).
pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::RecipientId.eq(person))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The recipient's notifications after `after_id` (all when `None`), oldest first.
pub async fn after<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
    after_id: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().filter(Column::RecipientId.eq(recipient));
    if let Some(after) = after_id {
        query = query.filter(Column::Id.gt(after));
    }
    query.order_by_asc(Column::Id).limit(limit).all(conn).await
}

/// The newest notification id of each of `recipients` that has any, in one
/// query (the `(recipient_id, id)` index answers it).
pub async fn newest_ids<C: ConnectionTrait>(
    conn: &C,
    recipients: &[String],
) -> Result<Vec<(String, String)>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::RecipientId)
        .column_as(Column::Id.max(), "newest")
        .filter(Column::RecipientId.is_in(recipients.iter().cloned()))
        .group_by(Column::RecipientId)
        .into_tuple()
        .all(conn)
        .await
}

/// The id of the recipient's newest notification.
pub async fn newest_id<C: ConnectionTrait>(
    conn: &C,
    recipient: &str,
) -> Result<Option<String>, DbErr> {
    Ok(Entity::find()
        .filter(Column::RecipientId.eq(recipient))
        .order_by_desc(Column::Id)
        .one(conn)
        .await?
        .map(|n| n.id))
}

/// Every notification of the recipient, oldest first (for their data export).
pub async fn all_for<C: ConnectionTrait>(conn: &C, recipient: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::RecipientId.eq(recipient))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// Those of `among` who already have a notification of `kind` about `group_id`.
pub async fn recipients_of_kind<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    kind: crate::domain::messages::Kind,
    among: &[String],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let mut out = std::collections::HashSet::new();
    let backend = conn.get_database_backend();
    for chunk in statement_chunks(backend, among, |p| p.len()) {
        let people: Vec<String> = Entity::find()
            .select_only()
            .column(Column::RecipientId)
            .filter(Column::RecipientId.is_in(chunk.iter().cloned()))
            .filter(Column::GroupId.eq(group_id))
            .filter(Column::Kind.eq(kind.as_str()))
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(people);
    }
    Ok(out)
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// The notifications with these ids, oldest first (missing ones are skipped).
pub async fn find_many<C: ConnectionTrait>(conn: &C, ids: &[String]) -> Result<Vec<Model>, DbErr> {
    let mut out = Vec::new();
    for chunk in statement_chunks(conn.get_database_backend(), ids, |id| id.len()) {
        out.extend(
            Entity::find()
                .filter(Column::Id.is_in(chunk.iter().cloned()))
                .all(conn)
                .await?,
        );
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
