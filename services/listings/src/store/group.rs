//! The `listing_group` table: one row per group card.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, Condition, ConnectionTrait, ExprTrait, QueryOrder, QuerySelect};

use crate::domain::group::{Details, Format, JoinPolicy, NewGroup, Status, Venue};
use crate::domain::schedule::Schedule;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "listing_group")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub region: String,
    pub name: String,
    pub summary: String,
    pub description: String,
    pub topics_json: String,
    pub format: String,
    pub join_policy: String,
    pub venues_json: String,
    pub status: String,
    pub organiser_ids_json: String,
    pub created_by: String,
    pub review_note: Option<String>,
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The recurring schedule (`domain::schedule::Schedule` as JSON), if any.
    pub schedule_json: Option<String>,
    /// When an organiser or operator last confirmed the details, and who.
    pub assured_at_ms: Option<i64>,
    pub assured_by: Option<String>,
    /// The `assured_at_ms` for which a review reminder went out (once per period).
    pub review_due_for_ms: Option<i64>,
    /// `domain::group::Details` as JSON.
    pub details_json: String,
    /// Member-only joining details; never on public reads.
    pub joining_details: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn status(&self) -> Status {
        // Only this service writes the column, always from `Status::as_str`.
        Status::parse(&self.status).unwrap_or(Status::Draft)
    }
    pub fn topics(&self) -> Vec<String> {
        serde_json::from_str(&self.topics_json).unwrap_or_default()
    }
    pub fn venues(&self) -> Vec<Venue> {
        serde_json::from_str(&self.venues_json).unwrap_or_default()
    }
    pub fn organiser_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.organiser_ids_json).unwrap_or_default()
    }
    /// The editable card, as the domain rules see it.
    pub fn card(&self) -> NewGroup {
        NewGroup {
            name: self.name.clone(),
            summary: self.summary.clone(),
            description: self.description.clone(),
            topics: self.topics(),
            format: Format::parse(&self.format).unwrap_or(Format::InPerson),
            join_policy: JoinPolicy::parse(&self.join_policy).unwrap_or(JoinPolicy::Open),
            venues: self.venues(),
            details: self.details(),
            joining_details: self.joining_details.clone().unwrap_or_default(),
        }
    }
    pub fn details(&self) -> Details {
        serde_json::from_str(&self.details_json).unwrap_or_default()
    }
    pub fn schedule(&self) -> Option<Schedule> {
        self.schedule_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
    }
}

pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    region: &str,
    creator: &str,
    group: &NewGroup,
    status: Status,
    now: i64,
) -> Result<Model, DbErr> {
    let row = ActiveModel {
        id: Set(id.to_string()),
        region: Set(region.to_string()),
        name: Set(group.name.clone()),
        summary: Set(group.summary.clone()),
        description: Set(group.description.clone()),
        topics_json: Set(serde_json::to_string(&group.topics).expect("strings serialise")),
        format: Set(group.format.as_str().to_string()),
        join_policy: Set(group.join_policy.as_str().to_string()),
        venues_json: Set(serde_json::to_string(&group.venues).expect("venues serialise")),
        status: Set(status.as_str().to_string()),
        organiser_ids_json: Set(serde_json::to_string(&[creator]).expect("strings serialise")),
        created_by: Set(creator.to_string()),
        review_note: Set(None),
        version: Set(1),
        created_at_ms: Set(now),
        updated_at_ms: Set(now),
        schedule_json: Set(None),
        // Entering the details counts as checking them.
        assured_at_ms: Set(Some(now)),
        assured_by: Set(Some(creator.to_string())),
        review_due_for_ms: Set(None),
        details_json: Set(serde_json::to_string(&group.details).expect("details serialise")),
        joining_details: Set(Some(group.joining_details.clone()).filter(|j| !j.is_empty())),
    };
    Entity::insert(row).exec_without_returning(conn).await?;
    find(conn, id)
        .await?
        .ok_or(DbErr::RecordNotFound(id.to_string()))
}

/// Makes a group just inserted by an import what the document said: its
/// schedule, no organisers (the region's operators manage it until an
/// organiser takes it on) and its last check.
pub async fn mark_imported<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    schedule: Option<&Schedule>,
    assured_at_ms: i64,
) -> Result<Model, DbErr> {
    let json = schedule.map(|s| serde_json::to_string(s).expect("schedules serialise"));
    let no_one: [&str; 0] = [];
    Entity::update_many()
        .col_expr(Column::ScheduleJson, Expr::value(json))
        .col_expr(
            Column::OrganiserIdsJson,
            Expr::value(serde_json::to_string(&no_one).expect("strings serialise")),
        )
        .col_expr(Column::AssuredAtMs, Expr::value(Some(assured_at_ms)))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await?;
    find(conn, id)
        .await?
        .ok_or(DbErr::RecordNotFound(id.to_string()))
}

/// The groups with these ids (those that exist), in no particular order.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: Vec<String>,
) -> Result<Vec<Model>, DbErr> {
    Entity::find().filter(Column::Id.is_in(ids)).all(conn).await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// Applies `set` to the group and bumps its version, if it is still at the version
/// the caller read (optimistic concurrency); `false` when someone else changed it.
async fn update_if_current<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    now: i64,
    set: impl FnOnce(sea_orm::UpdateMany<Entity>) -> sea_orm::UpdateMany<Entity>,
) -> Result<bool, DbErr> {
    let update = Entity::update_many()
        .col_expr(Column::Version, Expr::value(group.version + 1))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::Id.eq(group.id.clone()))
        .filter(Column::Version.eq(group.version));
    Ok(set(update).exec(conn).await?.rows_affected == 1)
}

/// Moves a group to `status` if it is still at `expected_version`; `false` when
/// someone else changed it first.
pub async fn set_status<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    status: Status,
    review_note: Option<String>,
    assured_by: Option<&str>,
    now: i64,
) -> Result<bool, DbErr> {
    update_if_current(conn, group, now, |u| {
        let u = u
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::ReviewNote, Expr::value(review_note));
        match assured_by {
            // An operator approving the details has checked them.
            Some(who) => u
                .col_expr(Column::AssuredAtMs, Expr::value(now))
                .col_expr(Column::AssuredBy, Expr::value(who)),
            None => u,
        }
    })
    .await
}

/// Replaces the group's schedule if it is still at its version; `false` when
/// someone else changed the group first.
pub async fn set_schedule<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    schedule: Option<&Schedule>,
    now: i64,
) -> Result<bool, DbErr> {
    let json = schedule.map(|s| serde_json::to_string(s).expect("schedules serialise"));
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::ScheduleJson, Expr::value(json))
    })
    .await
}

/// Replaces the card's editable fields if the group is still at its version.
pub async fn update_card<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    card: &NewGroup,
    now: i64,
) -> Result<bool, DbErr> {
    let topics = serde_json::to_string(&card.topics).expect("strings serialise");
    let venues = serde_json::to_string(&card.venues).expect("venues serialise");
    let details = serde_json::to_string(&card.details).expect("details serialise");
    let joining = Some(card.joining_details.clone()).filter(|j| !j.is_empty());
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::Name, Expr::value(card.name.clone()))
            .col_expr(Column::Summary, Expr::value(card.summary.clone()))
            .col_expr(Column::Description, Expr::value(card.description.clone()))
            .col_expr(Column::TopicsJson, Expr::value(topics))
            .col_expr(Column::Format, Expr::value(card.format.as_str()))
            .col_expr(Column::JoinPolicy, Expr::value(card.join_policy.as_str()))
            .col_expr(Column::VenuesJson, Expr::value(venues))
            .col_expr(Column::DetailsJson, Expr::value(details))
            .col_expr(Column::JoiningDetails, Expr::value(joining))
    })
    .await
}

/// Replaces the organiser list if the group is still at its version.
pub async fn set_organisers<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    organisers: &[String],
    now: i64,
) -> Result<bool, DbErr> {
    let json = serde_json::to_string(organisers).expect("strings serialise");
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::OrganiserIdsJson, Expr::value(json))
    })
    .await
}

/// Records that `who` confirmed the details now, if the group is still at its version.
pub async fn confirm<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    who: &str,
    now: i64,
) -> Result<bool, DbErr> {
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::AssuredAtMs, Expr::value(now))
            .col_expr(Column::AssuredBy, Expr::value(who))
    })
    .await
}

/// Published groups of `region` last confirmed before `cutoff_ms` whose reminder
/// for that confirmation has not gone out yet.
pub async fn due_for_review<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    cutoff_ms: i64,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::Published.as_str()))
        .filter(Column::AssuredAtMs.lt(cutoff_ms))
        .filter(
            Condition::any()
                .add(Column::ReviewDueForMs.is_null())
                .add(Expr::col(Column::ReviewDueForMs).ne(Expr::col(Column::AssuredAtMs))),
        )
        .order_by_asc(Column::AssuredAtMs)
        .limit(limit)
        .all(conn)
        .await
}

/// Claims the review reminder for the group's current confirmation; `false` when
/// another replica (or a confirmation) got there first.
pub async fn claim_review_due<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    now: i64,
) -> Result<bool, DbErr> {
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::ReviewDueForMs, Expr::value(group.assured_at_ms))
    })
    .await
}

/// Published groups of `region` last confirmed before `cutoff_ms`, or never,
/// the longest unchecked first (never checked before all), with the total.
pub async fn stale<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    cutoff_ms: i64,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::Published.as_str()))
        .filter(
            Condition::any()
                .add(Column::AssuredAtMs.is_null())
                .add(Column::AssuredAtMs.lt(cutoff_ms)),
        )
        // Never checked first on both backends: SQLite sorts NULL first in
        // ascending order and PostgreSQL last, so the order says it.
        .order_by_desc(Expr::col(Column::AssuredAtMs).is_null())
        .order_by_asc(Column::AssuredAtMs)
        .order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Published groups of `region` in a stable order (oldest first), with the total.
pub async fn published_page<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::Published.as_str()));
    let query = query.order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Up to `limit` published groups of `region` in id order, after the group
/// `after` (from the first when `None`): pages that cost the same however deep
/// they go, for reading every group.
pub async fn published_after<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::Published.as_str()));
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    query.order_by_asc(Column::Id).limit(limit).all(conn).await
}

/// Groups of `region` waiting for review, and listed groups with an edit
/// waiting for approval; the longest unchanged first.
pub async fn review_queue<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    use sea_orm::sea_query::Query;
    let with_pending_edit = Query::select()
        .column(super::pending_edit::Column::GroupId)
        .from(super::pending_edit::Entity)
        .to_owned();
    let query = Entity::find().filter(Column::Region.eq(region)).filter(
        Condition::any()
            .add(Column::Status.is_in(Status::AWAITING_REVIEW.map(Status::as_str)))
            .add(Column::Id.in_subquery(with_pending_edit)),
    );
    let query = query
        .order_by_asc(Column::UpdatedAtMs)
        .order_by_asc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Most groups one person is expected to organise; more are not listed.
pub const MANAGED_AT_MOST: u64 = 500;

/// Groups of `region` that `person` organises, but not archived ones, newest
/// first (ids are time-ordered UUIDv7s).
pub async fn managed_by<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    person: &str,
) -> Result<Vec<Model>, DbErr> {
    let quoted = serde_json::to_string(person).expect("strings serialise");
    let rows = Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.ne(Status::Archived.as_str()))
        .filter(Column::OrganiserIdsJson.contains(&quoted))
        .order_by_desc(Column::Id)
        .limit(MANAGED_AT_MOST)
        .all(conn)
        .await?;
    // `contains` is a text match on the JSON list (where `_` and `%` match
    // more): keep exact matches only.
    Ok(rows
        .into_iter()
        .filter(|g| g.organiser_ids().iter().any(|o| o == person))
        .collect())
}

/// Reviewed proposals of `region`, newest first (ids are time-ordered UUIDv7s,
/// so pages stay stable while proposals are edited), with the total.
pub async fn listed_proposals<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::ProposalListed.as_str()));
    let query = query.order_by_desc(Column::Id);
    selfhelp_platform::db::offset_page(conn, query, offset, limit).await
}

/// Bumps the group's version (a change to one of its meetings) if it is still
/// at its version.
pub async fn touch<C: ConnectionTrait>(conn: &C, group: &Model, now: i64) -> Result<bool, DbErr> {
    update_if_current(conn, group, now, |u| u).await
}

/// Groups that name `person` as creator, organiser or checker (for erasure).
pub async fn naming<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    use sea_orm::ExprTrait;
    let rows = Entity::find()
        .filter(
            Column::CreatedBy
                .eq(person)
                .or(Column::AssuredBy.eq(person))
                .or(Column::OrganiserIdsJson.contains(person)),
        )
        .all(conn)
        .await?;
    // `contains` is a text match on the JSON list: keep exact matches only.
    Ok(rows
        .into_iter()
        .filter(|g| {
            g.created_by == person
                || g.assured_by.as_deref() == Some(person)
                || g.organiser_ids().iter().any(|o| o == person)
        })
        .collect())
}

/// Replaces `person` in the group's creator and checker fields with `nobody`,
/// and sets its organisers, if the group is still at its version.
pub async fn forget_person<C: ConnectionTrait>(
    conn: &C,
    group: &Model,
    person: &str,
    nobody: &str,
    organisers: &[String],
    now: i64,
) -> Result<bool, DbErr> {
    let json = serde_json::to_string(organisers).expect("strings serialise");
    let created_by = if group.created_by == person {
        nobody
    } else {
        group.created_by.as_str()
    }
    .to_string();
    let assured_by = match group.assured_by.as_deref() {
        Some(p) if p == person => Some(nobody.to_string()),
        other => other.map(str::to_string),
    };
    update_if_current(conn, group, now, |u| {
        u.col_expr(Column::OrganiserIdsJson, Expr::value(json))
            .col_expr(Column::CreatedBy, Expr::value(created_by))
            .col_expr(Column::AssuredBy, Expr::value(assured_by))
    })
    .await
}

/// How many groups of the region are in each status (statuses with none left out).
pub async fn count_by_status<C: ConnectionTrait>(
    conn: &C,
    region: &str,
) -> Result<Vec<(String, i64)>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Status)
        .column_as(Column::Id.count(), "groups")
        .filter(Column::Region.eq(region))
        .group_by(Column::Status)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await
}

/// How many published groups of the region were last confirmed before `cutoff_ms`.
pub async fn published_confirmed_before<C: ConnectionTrait>(
    conn: &C,
    region: &str,
    cutoff_ms: i64,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find()
        .filter(Column::Region.eq(region))
        .filter(Column::Status.eq(Status::Published.as_str()))
        .filter(Column::AssuredAtMs.lt(cutoff_ms))
        .count(conn)
        .await
}
