//! `membership_group`: what membership keeps per group — the organisers'
//! settings, and a counter row every change to the group's places updates first.

use sea_orm::ConnectionTrait;
use sea_orm::ExprTrait;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "membership_group")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_id: String,
    /// `ORGANISERS` (default) or `MEMBERS`.
    pub member_list_visibility: String,
    pub join_question: String,
    pub seq: i64,
    pub updated_at_ms: i64,
    /// 0 for no term.
    pub organiser_term_months: i32,
    pub chair_term_months: i32,
    pub agenda_cutoff_hours: i32,
    /// Whether the group keeps who came to each meeting.
    pub attendance: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Agenda items close a day before the meeting unless the group says otherwise.
pub const DEFAULT_AGENDA_CUTOFF_HOURS: i32 = 24;

pub const ORGANISERS: &str = "ORGANISERS";
pub const MEMBERS: &str = "MEMBERS";

impl Model {
    pub fn members_see_list(&self) -> bool {
        self.member_list_visibility == MEMBERS
    }
}

fn defaults(group_id: &str, now: i64) -> Model {
    Model {
        group_id: group_id.to_string(),
        member_list_visibility: ORGANISERS.into(),
        join_question: String::new(),
        seq: 0,
        updated_at_ms: now,
        organiser_term_months: 0,
        chair_term_months: 0,
        agenda_cutoff_hours: DEFAULT_AGENDA_CUTOFF_HOURS,
        attendance: false,
    }
}

/// The group's settings; defaults when none were stored.
pub async fn get<C: ConnectionTrait>(conn: &C, group_id: &str, now: i64) -> Result<Model, DbErr> {
    Ok(Entity::find_by_id(group_id.to_string())
        .one(conn)
        .await?
        .unwrap_or_else(|| defaults(group_id, now)))
}

/// Serialises changes to one group's places: the upsert takes the row's lock
/// (PostgreSQL) or the database's write lock (SQLite) until the transaction ends,
/// so two joins cannot both take the last place.
pub async fn lock<C: ConnectionTrait>(conn: &C, group_id: &str, now: i64) -> Result<(), DbErr> {
    lock_all(conn, &[group_id], now).await
}

/// [`lock`] for every group in `group_ids`, one statement a run. Pass them
/// sorted and without repeats: transactions that lock in the same order cannot
/// deadlock, and one statement cannot update a row twice.
pub async fn lock_all<C: ConnectionTrait>(
    conn: &C,
    group_ids: &[&str],
    now: i64,
) -> Result<(), DbErr> {
    let size = |g: &&str| g.len() + 64;
    for chunk in
        selfhelp_platform::db::statement_chunks(conn.get_database_backend(), group_ids, size)
    {
        let rows = chunk.iter().map(|g| ActiveModel::from(defaults(g, now)));
        Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(Column::GroupId)
                    .value(Column::Seq, Expr::col((Entity, Column::Seq)).add(1))
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub async fn save<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    visibility: &str,
    join_question: &str,
    now: i64,
) -> Result<Model, DbErr> {
    lock(conn, group_id, now).await?;
    Entity::update_many()
        .col_expr(Column::MemberListVisibility, Expr::value(visibility))
        .col_expr(Column::JoinQuestion, Expr::value(join_question))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    get(conn, group_id, now).await
}

/// Sets how the group shares its running (see `GroupPractice`).
pub async fn save_practice<C: ConnectionTrait>(
    conn: &C,
    group_id: &str,
    practice: &Model,
    now: i64,
) -> Result<Model, DbErr> {
    lock(conn, group_id, now).await?;
    Entity::update_many()
        .col_expr(
            Column::OrganiserTermMonths,
            Expr::value(practice.organiser_term_months),
        )
        .col_expr(
            Column::ChairTermMonths,
            Expr::value(practice.chair_term_months),
        )
        .col_expr(
            Column::AgendaCutoffHours,
            Expr::value(practice.agenda_cutoff_hours),
        )
        .col_expr(Column::Attendance, Expr::value(practice.attendance))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::GroupId.eq(group_id))
        .exec(conn)
        .await?;
    get(conn, group_id, now).await
}

/// The settings of every group with a term set for a role.
pub async fn with_terms<C: ConnectionTrait>(conn: &C) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(
            Column::OrganiserTermMonths
                .gt(0)
                .or(Column::ChairTermMonths.gt(0)),
        )
        .all(conn)
        .await
}
