//! `delivery`: the delivery log. One row per notification, channel (email,
//! webhook) and endpoint, created with the notification; a dispatcher on any
//! replica claims due rows with a lease, sends, and records the outcome.
//! Digest emails are rows of their own (`is_digest`, id = the digest's id), and
//! so are emails asking to confirm an address (`is_confirmation`, with a
//! notification id of their own that names no notification).

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery")]
pub struct Model {
    /// UUIDv7; also the `webhook-id` of a webhook delivery (the same on every retry).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The notification sent; the digest's id for a digest email.
    pub notification_id: String,
    pub is_digest: bool,
    pub recipient_id: String,
    /// `EMAIL` or `WEBHOOK`.
    pub channel: String,
    /// The endpoint for webhook deliveries, else empty.
    pub webhook_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
    /// A dispatcher holds the row until then; another may take it after (the
    /// holder died).
    pub claimed_until_ms: i64,
    /// The claim's token: only its holder may record the outcome.
    pub claimed_by: String,
    pub last_error: String,
    /// The digest that carried this item (status `IN_DIGEST`).
    pub digest_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    /// The email with the link that confirms the person's address.
    pub is_confirmation: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const PENDING: &str = "PENDING";
pub const HELD_FOR_DIGEST: &str = "HELD_FOR_DIGEST";
pub const SENT: &str = "SENT";
pub const IN_DIGEST: &str = "IN_DIGEST";
pub const FAILED: &str = "FAILED";
pub const CANCELLED: &str = "CANCELLED";

/// A delivery to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub notification_id: String,
    pub is_digest: bool,
    pub recipient_id: String,
    pub channel: &'static str,
    pub webhook_id: String,
    pub status: &'static str,
    pub next_attempt_at_ms: i64,
    pub is_confirmation: bool,
}

/// Stores `rows`; one already held for the same notification, channel and
/// endpoint is kept as it is.
pub async fn insert_all<C: ConnectionTrait>(
    conn: &C,
    rows: &[NewDelivery],
    now: i64,
) -> Result<(), DbErr> {
    // An id, three fixed strings and numbers besides these.
    let size =
        |d: &NewDelivery| 100 + d.notification_id.len() + d.recipient_id.len() + d.webhook_id.len();
    for chunk in selfhelp_platform::db::statement_chunks(conn.get_database_backend(), rows, size) {
        let models = chunk.iter().map(|d| ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            notification_id: Set(d.notification_id.clone()),
            is_digest: Set(d.is_digest),
            recipient_id: Set(d.recipient_id.clone()),
            channel: Set(d.channel.to_string()),
            webhook_id: Set(d.webhook_id.clone()),
            status: Set(d.status.to_string()),
            attempts: Set(0),
            next_attempt_at_ms: Set(d.next_attempt_at_ms),
            claimed_until_ms: Set(0),
            claimed_by: Set(String::new()),
            last_error: Set(String::new()),
            digest_id: Set(String::new()),
            created_at_ms: Set(now),
            updated_at_ms: Set(now),
            sent_at_ms: Set(None),
            is_confirmation: Set(d.is_confirmation),
        });
        Entity::insert_many(models)
            .on_conflict_do_nothing_on([Column::NotificationId, Column::Channel, Column::WebhookId])
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Claims up to `limit` deliveries that are due, each for `lease_ms`, under
/// the token `claim`. A row is taken by exactly one dispatcher: the claim is a
/// conditional update, and only the token's holder can record the outcome.
pub async fn claim_due<C: ConnectionTrait>(
    conn: &C,
    claim: &str,
    now: i64,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let candidates = Entity::find()
        .filter(Column::Status.eq(PENDING))
        .filter(Column::NextAttemptAtMs.lte(now))
        .filter(Column::ClaimedUntilMs.lt(now))
        .order_by_asc(Column::NextAttemptAtMs)
        .limit(limit)
        .all(conn)
        .await?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for mut row in candidates {
        let taken = Entity::update_many()
            .col_expr(Column::ClaimedUntilMs, Expr::value(now + lease_ms))
            .col_expr(Column::ClaimedBy, Expr::value(claim))
            .filter(Column::Id.eq(row.id.clone()))
            .filter(Column::Status.eq(PENDING))
            .filter(Column::ClaimedUntilMs.eq(row.claimed_until_ms))
            .exec(conn)
            .await?
            .rows_affected;
        if taken == 1 {
            row.claimed_until_ms = now + lease_ms;
            row.claimed_by = claim.to_string();
            claimed.push(row);
        }
    }
    Ok(claimed)
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    RetryAt {
        at_ms: i64,
        error: String,
    },
    /// Not tried: its time has not come (quiet hours began meanwhile).
    Later {
        at_ms: i64,
    },
    Failed {
        error: String,
    },
    Cancelled {
        why: String,
    },
}

/// Records the outcome of attempt number `attempts` of delivery `id`, if the
/// claim `claim` still holds it; `false` when it lapsed and another dispatcher
/// took the row over (its outcome counts, not this one).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    claim: &str,
    attempts: i32,
    outcome: &Outcome,
    now: i64,
) -> Result<bool, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::Attempts, Expr::value(attempts))
        .col_expr(Column::ClaimedUntilMs, Expr::value(0i64))
        .col_expr(Column::UpdatedAtMs, Expr::value(now));
    update = match outcome {
        Outcome::Sent => update
            .col_expr(Column::Status, Expr::value(SENT))
            .col_expr(Column::SentAtMs, Expr::value(now))
            .col_expr(Column::LastError, Expr::value("")),
        Outcome::RetryAt { at_ms, error } => update
            .col_expr(Column::Status, Expr::value(PENDING))
            .col_expr(Column::NextAttemptAtMs, Expr::value(*at_ms))
            .col_expr(Column::LastError, Expr::value(error.clone())),
        Outcome::Later { at_ms } => update
            .col_expr(Column::Status, Expr::value(PENDING))
            .col_expr(Column::NextAttemptAtMs, Expr::value(*at_ms)),
        Outcome::Failed { error } => update
            .col_expr(Column::Status, Expr::value(FAILED))
            .col_expr(Column::LastError, Expr::value(error.clone())),
        Outcome::Cancelled { why } => update
            .col_expr(Column::Status, Expr::value(CANCELLED))
            .col_expr(Column::LastError, Expr::value(why.clone())),
    };
    let changed = update
        .filter(Column::Id.eq(id))
        .filter(Column::ClaimedBy.eq(claim))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(changed == 1)
}

/// People with items waiting for a digest.
pub async fn people_with_held<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::RecipientId)
        .distinct()
        .filter(Column::Status.eq(HELD_FOR_DIGEST))
        .into_tuple::<String>()
        .all(conn)
        .await
}

/// The person's oldest items (at most `limit`) held for a digest that were
/// created before `before_ms`.
pub async fn held_before<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    before_ms: i64,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::RecipientId.eq(person))
        .filter(Column::Status.eq(HELD_FOR_DIGEST))
        .filter(Column::CreatedAtMs.lt(before_ms))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Sends the person's held items on their own now (they left digests).
pub async fn release_held<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    now: i64,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Status, Expr::value(PENDING))
        .col_expr(Column::NextAttemptAtMs, Expr::value(now))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::RecipientId.eq(person))
        .filter(Column::Status.eq(HELD_FOR_DIGEST))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Moves held items into digest `digest_id`; how many moved.
pub async fn move_into_digest<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
    digest_id: &str,
    now: i64,
) -> Result<u64, DbErr> {
    let mut moved = 0;
    let backend = conn.get_database_backend();
    for chunk in selfhelp_platform::db::statement_chunks(backend, ids, |id| id.len()) {
        moved += Entity::update_many()
            .col_expr(Column::Status, Expr::value(IN_DIGEST))
            .col_expr(Column::DigestId, Expr::value(digest_id))
            .col_expr(Column::UpdatedAtMs, Expr::value(now))
            .filter(Column::Id.is_in(chunk.iter().cloned()))
            .filter(Column::Status.eq(HELD_FOR_DIGEST))
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(moved)
}

/// The items that went out in digest `digest_id`, oldest first.
pub async fn in_digest<C: ConnectionTrait>(conn: &C, digest_id: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::DigestId.eq(digest_id))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

/// The log, newest first: one person's (`recipient`) or everyone's, optionally
/// only in `status`, after the page token `before_id`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    recipient: Option<&str>,
    status: Option<&str>,
    before_id: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find();
    if let Some(recipient) = recipient {
        query = query.filter(Column::RecipientId.eq(recipient));
    }
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(before) = before_id {
        query = query.filter(Column::Id.lt(before));
    }
    query.order_by_desc(Column::Id).limit(limit).all(conn).await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(id.to_string()).one(conn).await
}

/// Puts a failed delivery back in the queue with a fresh set of attempts;
/// `false` when it is not (or no longer) failed.
pub async fn replay<C: ConnectionTrait>(conn: &C, id: &str, now: i64) -> Result<bool, DbErr> {
    let changed = Entity::update_many()
        .col_expr(Column::Status, Expr::value(PENDING))
        .col_expr(Column::Attempts, Expr::value(0))
        .col_expr(Column::NextAttemptAtMs, Expr::value(now))
        .col_expr(Column::ClaimedUntilMs, Expr::value(0i64))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(FAILED))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(changed == 1)
}

/// Ends what is still waiting for webhook `webhook_id` with `status`:
/// `CANCELLED` when its owner removed it, `FAILED` when it was turned off (so
/// an operator can replay each once it works again).
pub async fn end_for_webhook<C: ConnectionTrait>(
    conn: &C,
    webhook_id: &str,
    status: &'static str,
    why: &str,
    now: i64,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::LastError, Expr::value(why))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::WebhookId.eq(webhook_id))
        .filter(Column::Status.eq(PENDING))
        // Rows being sent right now record their own outcome (and end up
        // failed on their next attempt, the webhook being off).
        .filter(Column::ClaimedUntilMs.lt(now))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Cancels the person's waiting emails (they removed their address).
pub async fn cancel_emails_for<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    why: &str,
    now: i64,
) -> Result<u64, DbErr> {
    Ok(Entity::update_many()
        .col_expr(Column::Status, Expr::value(CANCELLED))
        .col_expr(Column::LastError, Expr::value(why))
        .col_expr(Column::UpdatedAtMs, Expr::value(now))
        .filter(Column::RecipientId.eq(person))
        .filter(Column::Channel.eq("EMAIL"))
        .filter(Column::Status.is_in([PENDING, HELD_FOR_DIGEST]))
        // Rows being sent right now record their own outcome; a retry finds
        // the address gone or email off.
        .filter(Column::ClaimedUntilMs.lt(now))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The person's confirmation emails queued since `since_ms`, newest first.
pub async fn confirmations_since<C: ConnectionTrait>(
    conn: &C,
    person: &str,
    since_ms: i64,
) -> Result<Vec<i64>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::CreatedAtMs)
        .filter(Column::RecipientId.eq(person))
        .filter(Column::IsConfirmation.eq(true))
        .filter(Column::CreatedAtMs.gte(since_ms))
        .order_by_desc(Column::CreatedAtMs)
        .into_tuple::<i64>()
        .all(conn)
        .await
}

/// Digests whose email has not finished (waiting, or failed and replayable):
/// they and their items must stay.
pub async fn unfinished_digests<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::NotificationId)
        .filter(Column::IsDigest.eq(true))
        .filter(Column::Status.is_in([PENDING, FAILED]))
        .into_tuple::<String>()
        .all(conn)
        .await
}

/// Deletes finished deliveries (sent, cancelled, gone out in a digest) last
/// changed before `before_ms`, except the items of digests in `keep`; failed
/// ones wait for an operator.
pub async fn delete_finished_before<C: ConnectionTrait>(
    conn: &C,
    before_ms: i64,
    keep: &[String],
) -> Result<u64, DbErr> {
    let mut delete = Entity::delete_many()
        .filter(Column::Status.is_in([SENT, CANCELLED, IN_DIGEST]))
        .filter(Column::UpdatedAtMs.lt(before_ms));
    if !keep.is_empty() {
        delete = delete.filter(Column::DigestId.is_not_in(keep.iter().cloned()));
    }
    Ok(delete.exec(conn).await?.rows_affected)
}

/// Every delivery to `person` (for their data export).
pub async fn all_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::RecipientId.eq(person))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
}

pub async fn delete_for<C: ConnectionTrait>(conn: &C, person: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::RecipientId.eq(person))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deliveries due by `now` and not yet sent, by channel, with when the
/// longest-waiting of each became due (for the metrics).
pub async fn due_by_channel<C: ConnectionTrait>(
    conn: &C,
    now: i64,
) -> Result<Vec<(String, i64, i64)>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::Channel)
        .column_as(Column::Id.count(), "due")
        .column_as(Column::NextAttemptAtMs.min(), "oldest")
        .filter(Column::Status.eq(PENDING))
        .filter(Column::NextAttemptAtMs.lte(now))
        .group_by(Column::Channel)
        .into_tuple::<(String, i64, i64)>()
        .all(conn)
        .await
}
