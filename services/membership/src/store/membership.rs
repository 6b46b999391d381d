//! The `membership` table: one row per (group, person), whatever its state.

use sea_orm::ExprTrait;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use crate::domain::membership::{Role, State};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "membership")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    pub person_id: String,
    pub state: String,
    pub role: String,
    pub joined_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
    pub display_name: String,
    pub hidden: bool,
    pub duties_json: String,
    pub answer: String,
    /// Set while WAITLISTED: the order of promotion.
    pub waitlisted_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Left)
    }
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }
    pub fn duties(&self) -> Vec<String> {
        serde_json::from_str(&self.duties_json).unwrap_or_default()
    }
}

/// A membership about to be created or re-entered.
pub struct Entry<'a> {
    pub group_id: &'a str,
    pub person_id: &'a str,
    pub state: State,
    pub role: Role,
    pub answer: &'a str,
    pub display_name: &'a str,
    /// Hidden from other members (organisers still see them).
    pub hidden: bool,
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

pub async fn find_for<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::PersonId.eq(person_id))
        .one(conn)
        .await
}

/// Creates the membership, or moves an earlier one (left, declined…) into the
/// entry's state. The caller has checked the transition.
pub async fn enter<C: ConnectionTrait>(
    conn: &C,
    existing: Option<Model>,
    entry: Entry<'_>,
    now: i64,
) -> Result<Model, DbErr> {
    let waitlisted_at = (entry.state == State::Waitlisted).then_some(now);
    match existing {
        Some(old) => {
            let version = old.version + 1;
            let mut row: ActiveModel = old.into();
            row.state = Set(entry.state.as_str().into());
            row.role = Set(entry.role.as_str().into());
            row.joined_at_ms = Set(now);
            row.updated_at_ms = Set(now);
            row.version = Set(version);
            row.answer = Set(entry.answer.to_string());
            if !entry.display_name.is_empty() {
                row.display_name = Set(entry.display_name.to_string());
            }
            row.hidden = Set(entry.hidden);
            row.waitlisted_at_ms = Set(waitlisted_at);
            row.update(conn).await
        }
        None => fresh(entry, now).insert(conn).await,
    }
}

/// A new membership row for `entry`, not yet written.
pub fn fresh(entry: Entry<'_>, now: i64) -> ActiveModel {
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        group_id: Set(entry.group_id.to_string()),
        person_id: Set(entry.person_id.to_string()),
        state: Set(entry.state.as_str().into()),
        role: Set(entry.role.as_str().into()),
        joined_at_ms: Set(now),
        updated_at_ms: Set(now),
        version: Set(1),
        display_name: Set(entry.display_name.to_string()),
        hidden: Set(entry.hidden),
        duties_json: Set("[]".into()),
        answer: Set(entry.answer.to_string()),
        waitlisted_at_ms: Set((entry.state == State::Waitlisted).then_some(now)),
    }
}

/// Writes new memberships (from [`fresh`]), as few statements as
/// [`selfhelp_platform::db::statement_chunks`] allows.
pub async fn insert_all<C: ConnectionTrait>(conn: &C, rows: &[Model]) -> Result<(), DbErr> {
    let size = |m: &Model| {
        m.id.len()
            + m.group_id.len()
            + m.person_id.len()
            + m.display_name.len()
            + m.answer.len()
            + 160
    };
    for chunk in selfhelp_platform::db::statement_chunks(conn.get_database_backend(), rows, size) {
        Entity::insert_many(chunk.iter().map(|m| ActiveModel::from(m.clone())))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Every membership, in any state, of the people in `person_ids`.
pub async fn of_people<C: ConnectionTrait>(
    conn: &C,
    person_ids: &[&str],
) -> Result<Vec<Model>, DbErr> {
    let mut found = Vec::new();
    let size = |p: &&str| p.len();
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), person_ids, size)
    {
        found.extend(
            Entity::find()
                .filter(Column::PersonId.is_in(chunk.iter().copied()))
                .all(conn)
                .await?,
        );
    }
    Ok(found)
}

/// Active members of each group in `group_ids` that has any.
pub async fn count_active_in<C: ConnectionTrait>(
    conn: &C,
    group_ids: &[&str],
) -> Result<std::collections::HashMap<String, u64>, DbErr> {
    use sea_orm::QuerySelect;
    let mut counts = std::collections::HashMap::new();
    let size = |g: &&str| g.len();
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), group_ids, size)
    {
        let rows: Vec<(String, i64)> = Entity::find()
            .select_only()
            .column(Column::GroupId)
            .column_as(Column::Id.count(), "active")
            .filter(Column::GroupId.is_in(chunk.iter().copied()))
            .filter(Column::State.eq(State::Active.as_str()))
            .group_by(Column::GroupId)
            .into_tuple()
            .all(conn)
            .await?;
        counts.extend(rows.into_iter().map(|(g, n)| (g, n as u64)));
    }
    Ok(counts)
}

/// Moves `m` to `to` (checked by the caller). Leaving the group drops its role
/// and duties, so a returning person starts as a member again.
pub async fn move_to<C: ConnectionTrait>(
    conn: &C,
    m: Model,
    to: State,
    now: i64,
) -> Result<Model, DbErr> {
    let version = m.version + 1;
    let mut row: ActiveModel = m.into();
    row.state = Set(to.as_str().into());
    row.updated_at_ms = Set(now);
    row.version = Set(version);
    match to {
        State::Active => {
            row.joined_at_ms = Set(now);
            row.waitlisted_at_ms = Set(None);
        }
        State::Waitlisted => row.waitlisted_at_ms = Set(Some(now)),
        _ => {
            row.waitlisted_at_ms = Set(None);
            if !to.is_open() {
                row.role = Set(Role::Member.as_str().into());
                row.duties_json = Set("[]".into());
            }
        }
    }
    row.update(conn).await
}

/// Sets role and duties; returns the new row.
pub async fn set_role<C: ConnectionTrait>(
    conn: &C,
    m: Model,
    role: Role,
    duties: &[String],
    now: i64,
) -> Result<Model, DbErr> {
    let version = m.version + 1;
    let mut row: ActiveModel = m.into();
    row.role = Set(role.as_str().into());
    row.duties_json = Set(serde_json::to_string(duties).expect("strings serialise"));
    row.updated_at_ms = Set(now);
    row.version = Set(version);
    row.update(conn).await
}

/// Sets the person's own presentation in the group.
pub async fn set_presentation<C: ConnectionTrait>(
    conn: &C,
    m: Model,
    display_name: Option<String>,
    hidden: Option<bool>,
    now: i64,
) -> Result<Model, DbErr> {
    let version = m.version + 1;
    let mut row: ActiveModel = m.into();
    if let Some(name) = display_name {
        row.display_name = Set(name);
    }
    if let Some(hidden) = hidden {
        row.hidden = Set(hidden);
    }
    row.updated_at_ms = Set(now);
    row.version = Set(version);
    row.update(conn).await
}

/// A person's memberships, newest first.
pub async fn list_for_person<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find().filter(Column::PersonId.eq(person_id));
    let query = query
        .order_by_desc(Column::JoinedAtMs)
        .order_by_desc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Every membership of a person, for export and erasure.
pub async fn all_for_person<C: ConnectionTrait>(
    conn: &C,
    person_id: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person_id))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// A group's memberships in `states`, oldest first; `include_hidden` false leaves
/// out members who hid themselves.
pub async fn list_for_group<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    states: &[State],
    include_hidden: bool,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let mut query = Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::State.is_in(states.iter().map(|s| s.as_str())));
    if !include_hidden {
        query = query.filter(Column::Hidden.eq(false));
    }
    let query = query
        .order_by_asc(Column::WaitlistedAtMs)
        .order_by_asc(Column::JoinedAtMs)
        .order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Memberships of a group in `states`, oldest first (no paging: for bulk changes).
pub async fn all_in_states<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    states: &[State],
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::State.is_in(states.iter().map(|s| s.as_str())))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

pub async fn count_active<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::State.eq(State::Active.as_str()))
        .count(conn)
        .await
}

pub async fn count_active_with_role<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    role: Role,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::State.eq(State::Active.as_str()))
        .filter(Column::Role.eq(role.as_str()))
        .count(conn)
        .await
}

/// The person first in line on a group's waitlist.
pub async fn first_waitlisted<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::State.eq(State::Waitlisted.as_str()))
        .order_by_asc(Column::WaitlistedAtMs)
        .order_by_asc(Column::Id)
        .one(conn)
        .await
}

/// 1-based place of `m` on its group's waitlist (0 when not waitlisted).
pub async fn waitlist_position<C: ConnectionTrait>(conn: &C, m: &Model) -> Result<i32, DbErr> {
    let Some(at) = m
        .waitlisted_at_ms
        .filter(|_| m.state() == State::Waitlisted)
    else {
        return Ok(0);
    };
    let ahead = Entity::find()
        .filter(Column::GroupId.eq(&m.group_id))
        .filter(Column::State.eq(State::Waitlisted.as_str()))
        .filter(
            Column::WaitlistedAtMs
                .lt(at)
                .or(Column::WaitlistedAtMs.eq(at).and(Column::Id.lt(&m.id))),
        )
        .count(conn)
        .await?;
    Ok(ahead as i32 + 1)
}

pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(id.to_string()).exec(conn).await?;
    Ok(())
}
