//! The `staff_report` table: problems the public reports with a listing, and
//! groups they suggest, waiting for the region's staff. No person id is kept;
//! a reply address only when the sender allowed one, and only until the
//! report is closed.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_report")]
pub struct Model {
    /// A UUIDv7: ids sort as the reports came.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub region: String,
    /// Empty for a suggested group.
    pub group_id: String,
    /// A suggested group's name; empty for a report about a listing.
    pub suggested_name: String,
    pub message: String,
    /// Empty without the sender's leave, and once closed.
    pub reply_to: String,
    pub received_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub closed_by: String,
    pub closing_note: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What the public sends.
pub struct NewReport {
    pub region: String,
    pub group_id: String,
    pub suggested_name: String,
    pub message: String,
    pub reply_to: String,
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    report: NewReport,
    now_ms: i64,
) -> Result<Model, DbErr> {
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        region: Set(report.region),
        group_id: Set(report.group_id),
        suggested_name: Set(report.suggested_name),
        message: Set(report.message),
        reply_to: Set(report.reply_to),
        received_at_ms: Set(now_ms),
        closed_at_ms: Set(None),
        closed_by: Set(String::new()),
        closing_note: Set(String::new()),
    }
    .insert(conn)
    .await
}

fn open_in(region: &str) -> Select<Entity> {
    Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::ClosedAtMs.is_null())
}

/// How many reports of `region` wait.
pub async fn count_open<C: ConnectionTrait>(conn: &C, region: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    open_in(region).count(conn).await
}

/// The reports of `region` waiting, oldest first, with the total.
pub async fn open_page<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = open_in(region).order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// Closes `report` if it is still open, erasing its reply address; false
/// when someone closed it first.
pub async fn close<C: ConnectionTrait>(
    conn: &C,
    report: &Model,
    by: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, DbErr> {
    let done = Entity::update_many()
        .col_expr(Column::ClosedAtMs, Expr::value(now_ms))
        .col_expr(Column::ClosedBy, Expr::value(by))
        .col_expr(Column::ClosingNote, Expr::value(note))
        .col_expr(Column::ReplyTo, Expr::value(""))
        .filter(Column::Id.eq(&report.id))
        .filter(Column::ClosedAtMs.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}
