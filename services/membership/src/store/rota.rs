//! `rota`, `rota_change`, `swap_request` and `rota_reminder`: who volunteers
//! for each duty, the skips and swaps they made, the swaps waiting for the
//! other person's yes, and which reminders went out (once per turn, whichever
//! replica sends it).

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

use crate::domain::rota::TurnChange;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rota")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub duty: String,
    pub volunteers_json: String,
    /// Turns count from the first meeting after this.
    pub starts_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn volunteers(&self) -> Vec<String> {
        serde_json::from_str(&self.volunteers_json).unwrap_or_default()
    }
}

pub mod change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rota_change")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub group_id: String,
        pub duty: String,
        /// `SKIP` or `SWAP`.
        pub kind: String,
        pub meeting_key: String,
        /// SKIP: who skips. SWAP: the other meeting.
        pub other: String,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod swap {
    use sea_orm::entity::prelude::*;

    /// A swap one person on duty asked of another, until answered.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "swap_request")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub group_id: String,
        pub duty: String,
        /// The asker's turn, which `asked_of` would take.
        pub meeting_key: String,
        /// `asked_of`'s turn, which the asker would take.
        pub other_meeting_key: String,
        pub asked_by: String,
        pub asked_of: String,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reminder {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rota_reminder")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub duty: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub meeting_key: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub person_id: String,
        pub sent_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((group_id.to_string(), duty.to_string()))
        .one(conn)
        .await
}

pub async fn for_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .order_by_asc(Column::Duty)
        .all(conn)
        .await
}

/// Every rota, for the reminder round.
pub async fn all<C: ConnectionTrait>(conn: &C) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_asc(Column::GroupId)
        .order_by_asc(Column::Duty)
        .all(conn)
        .await
}

/// Sets the volunteers and starts counting turns afresh from `now`; earlier skips
/// and swaps no longer apply.
pub async fn set<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    volunteers: &[String],
    now: i64,
) -> Result<Model, DbErr> {
    clear_changes(conn, group_id, duty).await?;
    let row = ActiveModel {
        group_id: Set(group_id.to_string()),
        duty: Set(duty.to_string()),
        volunteers_json: Set(serde_json::to_string(volunteers).expect("strings serialise")),
        starts_at_ms: Set(now),
        updated_at_ms: Set(now),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::GroupId, Column::Duty])
                .update_columns([
                    Column::VolunteersJson,
                    Column::StartsAtMs,
                    Column::UpdatedAtMs,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(find(conn, group_id, duty).await?.expect("just stored"))
}

pub async fn delete<C: ConnectionTrait>(conn: &C, group_id: &str, duty: &str) -> Result<(), DbErr> {
    clear_changes(conn, group_id, duty).await?;
    Entity::delete_by_id((group_id.to_string(), duty.to_string()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Drops the rota's skips, swaps and swaps asked: its turns start afresh.
async fn clear_changes<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
) -> Result<(), DbErr> {
    change::Entity::delete_many()
        .filter(change::Column::GroupId.eq(group_id))
        .filter(change::Column::Duty.eq(duty))
        .exec(conn)
        .await?;
    swap::Entity::delete_many()
        .filter(swap::Column::GroupId.eq(group_id))
        .filter(swap::Column::Duty.eq(duty))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records that `asked_by` asks `asked_of` to take `meeting_key` in exchange
/// for `other_meeting_key`; an earlier ask for the same two turns is replaced.
pub async fn ask_swap<C: ConnectionTrait>(
    conn: &C,
    ask: swap::Model,
) -> Result<swap::Model, DbErr> {
    swap::Entity::delete_many()
        .filter(swap::Column::GroupId.eq(&ask.group_id))
        .filter(swap::Column::Duty.eq(&ask.duty))
        .filter(swap::Column::MeetingKey.eq(&ask.meeting_key))
        .filter(swap::Column::OtherMeetingKey.eq(&ask.other_meeting_key))
        .exec(conn)
        .await?;
    swap::ActiveModel::from(ask).insert(conn).await
}

/// The swaps waiting for an answer on a rota, oldest first.
pub async fn swap_asks<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
) -> Result<Vec<swap::Model>, DbErr> {
    swap::Entity::find()
        .filter(swap::Column::GroupId.eq(group_id))
        .filter(swap::Column::Duty.eq(duty))
        .order_by_asc(swap::Column::CreatedAtMs)
        .order_by_asc(swap::Column::Id)
        .all(conn)
        .await
}

pub async fn find_swap<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> Result<Option<swap::Model>, DbErr> {
    swap::Entity::find_by_id(id.to_string()).one(conn).await
}

/// Removes a swap ask; false when it was already gone (answered meanwhile).
pub async fn drop_swap<C: ConnectionTrait>(conn: &C, id: &str) -> Result<bool, DbErr> {
    let gone = swap::Entity::delete_by_id(id.to_string())
        .exec(conn)
        .await?;
    Ok(gone.rows_affected == 1)
}

/// The swaps waiting that `person` asked or was asked.
pub async fn swaps_of<C: ConnectionTrait>(
    conn: &C,
    person: &str,
) -> Result<Vec<swap::Model>, DbErr> {
    swap::Entity::find()
        .filter(involving(person))
        .order_by_asc(swap::Column::CreatedAtMs)
        .all(conn)
        .await
}

fn involving(person: &str) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(swap::Column::AskedBy.eq(person))
        .add(swap::Column::AskedOf.eq(person))
}

/// Drops the swaps `person` asked or was asked, in `group` (every group when
/// `None`): they left its rotas, or are erased.
pub async fn forget_swaps<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    group: Option<&str>,
) -> Result<(), DbErr> {
    let mut delete = swap::Entity::delete_many().filter(involving(person));
    if let Some(group) = group {
        delete = delete.filter(swap::Column::GroupId.eq(group));
    }
    delete.exec(conn).await?;
    Ok(())
}

pub async fn changes<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
) -> Result<Vec<TurnChange>, DbErr> {
    Ok(change::Entity::find()
        .filter(change::Column::GroupId.eq(group_id))
        .filter(change::Column::Duty.eq(duty))
        .order_by_asc(change::Column::CreatedAtMs)
        .order_by_asc(change::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|c| match c.kind.as_str() {
            "SKIP" => Some(TurnChange::Skip {
                meeting: c.meeting_key,
                person: c.other,
            }),
            "SWAP" => Some(TurnChange::Swap {
                meeting: c.meeting_key,
                other: c.other,
            }),
            _ => None,
        })
        .collect())
}

/// Skips and swaps of the rota about meetings on `from` (`YYYY-MM-DD`) or later
/// (meeting keys begin with the date).
pub async fn count_changes_from<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    from: &str,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    change::Entity::find()
        .filter(change::Column::GroupId.eq(group_id))
        .filter(change::Column::Duty.eq(duty))
        .filter(change::Column::MeetingKey.gte(from))
        .count(conn)
        .await
}

pub async fn add_change<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    change: &TurnChange,
    now: i64,
) -> Result<(), DbErr> {
    let (kind, meeting, other) = match change {
        TurnChange::Skip { meeting, person } => ("SKIP", meeting, person),
        TurnChange::Swap { meeting, other } => ("SWAP", meeting, other),
    };
    change::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        group_id: Set(group_id.to_string()),
        duty: Set(duty.to_string()),
        kind: Set(kind.to_string()),
        meeting_key: Set(meeting.clone()),
        other: Set(other.clone()),
        created_at_ms: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Claims the reminder for one turn: true the first time only.
pub async fn claim_reminder<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    meeting_key: &str,
    person_id: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let row = reminder::ActiveModel {
        group_id: Set(group_id.to_string()),
        duty: Set(duty.to_string()),
        meeting_key: Set(meeting_key.to_string()),
        person_id: Set(person_id.to_string()),
        sent_at_ms: Set(now),
    };
    let inserted = reminder::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                reminder::Column::GroupId,
                reminder::Column::Duty,
                reminder::Column::MeetingKey,
                reminder::Column::PersonId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// The rotas `person` volunteers on.
pub async fn containing<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Ok(Entity::find()
        .filter(Column::VolunteersJson.contains(person))
        .all(conn)
        .await?
        .into_iter()
        // `contains` is a text match on the JSON list: keep exact matches.
        .filter(|r| r.volunteers().iter().any(|v| v == person))
        .collect())
}

/// Starts `r` afresh from `now` with `volunteers` (already in the order they
/// stand), without `gone`'s skips and reminders; others' skips and swaps stay.
pub async fn restart<C: ConnectionTrait>(
    conn: &C,
    r: Model,
    volunteers: &[String],
    gone: &str,
    now: i64,
) -> Result<(), DbErr> {
    let (group_id, duty) = (r.group_id.clone(), r.duty.clone());
    let mut row: ActiveModel = r.into();
    row.volunteers_json = Set(serde_json::to_string(volunteers).expect("strings serialise"));
    row.starts_at_ms = Set(now);
    row.updated_at_ms = Set(now);
    row.update(conn).await?;
    change::Entity::delete_many()
        .filter(change::Column::GroupId.eq(&group_id))
        .filter(change::Column::Duty.eq(&duty))
        .filter(change::Column::Kind.eq("SKIP"))
        .filter(change::Column::Other.eq(gone))
        .exec(conn)
        .await?;
    reminder::Entity::delete_many()
        .filter(reminder::Column::GroupId.eq(&group_id))
        .filter(reminder::Column::PersonId.eq(gone))
        .exec(conn)
        .await?;
    Ok(())
}

/// Drops every rota of a group (it was archived).
pub async fn delete_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<(), DbErr> {
    change::Entity::delete_many()
        .filter(change::Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    swap::Entity::delete_many()
        .filter(swap::Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    reminder::Entity::delete_many()
        .filter(reminder::Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    Entity::delete_many()
        .filter(Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes the reminders sent to `person` (for erasure; their rota places go
/// through `workflow::leave_rotas`).
pub async fn forget_reminders<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    reminder::Entity::delete_many()
        .filter(reminder::Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
