//! `duty_record` and `member_sharing`: who held each duty at each meeting
//! that took place, and what each member is willing to do (and whether they
//! are counted at all).

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

/// Marks an erased person's records: their turns stay counted, as "a former
/// member", under an id that leads nowhere.
pub const FORMER: &str = "former:";
/// Marks the records of someone erased who had asked not to be counted in
/// that group: they stay out of its figures.
pub const UNCOUNTED: &str = "uncounted:";

pub mod record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "duty_record")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub meeting_key: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub duty: String,
        /// Empty for nobody; `former:…` for someone since erased.
        pub person_id: String,
        pub starts_at_ms: i64,
        /// Set by an organiser after the meeting.
        pub corrected: bool,
        pub recorded_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "member_sharing")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub person_id: String,
    pub willing_json: String,
    pub skills: String,
    pub counted: bool,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn willing(&self) -> Vec<String> {
        serde_json::from_str(&self.willing_json).unwrap_or_default()
    }
}

/// The meeting keys of `duty` in `group_id` already recorded from `from_ms` on.
pub async fn recorded_keys<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    duty: &str,
    from_ms: i64,
) -> Result<Vec<String>, DbErr> {
    Ok(record::Entity::find()
        .filter(record::Column::GroupId.eq(group_id))
        .filter(record::Column::Duty.eq(duty))
        .filter(record::Column::StartsAtMs.gte(from_ms))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.meeting_key)
        .collect())
}

/// Remembers who held `duty` at a meeting that took place; a meeting already
/// remembered (perhaps corrected) stays as it is.
pub async fn remember<C: ConnectionTrait>(conn: &C, row: record::Model) -> Result<(), DbErr> {
    record::Entity::insert(record::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([
                record::Column::GroupId,
                record::Column::MeetingKey,
                record::Column::Duty,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Sets who held a remembered duty; `None` when that meeting's duty is not
/// remembered.
pub async fn correct<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    meeting_key: &str,
    duty: &str,
    person_id: &str,
) -> Result<Option<record::Model>, DbErr> {
    let key = (
        group_id.to_string(),
        meeting_key.to_string(),
        duty.to_string(),
    );
    let Some(found) = record::Entity::find_by_id(key).one(conn).await? else {
        return Ok(None);
    };
    let mut row: record::ActiveModel = found.into();
    row.person_id = Set(person_id.to_string());
    row.corrected = Set(true);
    Ok(Some(row.update(conn).await?))
}

/// Who held `duty` at the remembered meeting `key`; `None` for nobody or
/// not remembered.
pub async fn held<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    key: &str,
    duty: &str,
) -> Result<Option<String>, DbErr> {
    Ok(
        record::Entity::find_by_id((group_id.to_string(), key.to_string(), duty.to_string()))
            .one(conn)
            .await?
            .map(|r| r.person_id)
            .filter(|p| !p.is_empty()),
    )
}

/// The group's remembered duties of meetings starting in `[from_ms, to_ms)`,
/// newest first.
pub async fn records<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<record::Model>, DbErr> {
    record::Entity::find()
        .filter(record::Column::GroupId.eq(group_id))
        .filter(record::Column::StartsAtMs.gte(from_ms))
        .filter(record::Column::StartsAtMs.lt(to_ms))
        .order_by_desc(record::Column::StartsAtMs)
        .order_by_asc(record::Column::Duty)
        .all(conn)
        .await
}

/// Every duty `person` is remembered holding (their data).
pub async fn records_of<C: ConnectionTrait>(
    conn: &C,
    person: &str,
) -> Result<Vec<record::Model>, DbErr> {
    record::Entity::find()
        .filter(record::Column::PersonId.eq(person))
        .order_by_asc(record::Column::StartsAtMs)
        .all(conn)
        .await
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    person: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((group_id.to_string(), person.to_string()))
        .one(conn)
        .await
}

pub async fn for_group<C: ConnectionTrait>(conn: &C, group_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::GroupId.eq(group_id))
        .all(conn)
        .await
}

pub async fn of_person<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::PersonId.eq(person))
        .all(conn)
        .await
}

pub async fn set<C: ConnectionTrait>(conn: &C, row: Model) -> Result<Model, DbErr> {
    let key = (row.group_id.clone(), row.person_id.clone());
    Entity::insert(ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([Column::GroupId, Column::PersonId])
                .update_columns([
                    Column::WillingJson,
                    Column::Skills,
                    Column::Counted,
                    Column::UpdatedAtMs,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(Entity::find_by_id(key)
        .one(conn)
        .await?
        .expect("just stored"))
}

/// Erasure: `person`'s willingness goes; their remembered turns stay, under
/// an id of their own that names nobody.
pub async fn forget<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    // Where they had asked not to be counted, they stay out of the figures.
    let not_counted: Vec<String> = of_person(conn, person)
        .await?
        .into_iter()
        .filter(|s| !s.counted)
        .map(|s| s.group_id)
        .collect();
    let made_up = uuid::Uuid::new_v4();
    if !not_counted.is_empty() {
        record::Entity::update_many()
            .col_expr(
                record::Column::PersonId,
                Expr::value(format!("{UNCOUNTED}{made_up}")),
            )
            .filter(record::Column::PersonId.eq(person))
            .filter(record::Column::GroupId.is_in(not_counted))
            .exec(conn)
            .await?;
    }
    record::Entity::update_many()
        .col_expr(
            record::Column::PersonId,
            Expr::value(format!("{FORMER}{made_up}")),
        )
        .filter(record::Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Entity::delete_many()
        .filter(Column::PersonId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}
