//! The transactional outbox: a state change and its event row are written in one
//! transaction; a relay in every replica claims rows with a lease, publishes them
//! to JetStream with `Nats-Msg-Id`, awaits the acks and marks the rows published.
//! Nothing is published "after commit" any other way.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use sea_orm::ExprTrait;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::Notify;

use crate::Shutdown;
use crate::bus::{Envelope, StreamLimits, ensure_stream};
use crate::config::OutboxConfig;
use crate::migrations::entities::outbox;
use crate::trace::TraceParent;
use selfhelp_core::time::{now_ms, to_rfc3339};
use selfhelp_proto::streams::StreamSpec;

/// How often the relay measures what waits, for the metrics.
const METRICS_EVERY_MS: i64 = 5_000;

/// Writes events into the outbox of one service. Clone freely.
#[derive(Clone)]
pub struct Outbox {
    region: String,
    source: String,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(region: &str, service: &str) -> Self {
        Self {
            region: region.to_string(),
            source: format!("urn:selfhelp:{region}:{service}"),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Adds an event row using `conn` — pass the transaction that makes the state
    /// change, so both commit or neither does. Returns the event id (UUIDv7).
    pub async fn enqueue<C, M>(
        &self,
        conn: &C,
        stream: StreamSpec,
        event: &str,
        aggregate_id: &str,
        payload: &M,
        traceparent: Option<&TraceParent>,
    ) -> Result<String, DbErr>
    where
        C: ConnectionTrait,
        M: prost::Message + prost::Name,
    {
        let queued = self.event(stream, event, aggregate_id, payload, traceparent);
        let id = queued.id.clone();
        self.enqueue_all(conn, vec![queued]).await?;
        Ok(id)
    }

    /// The event row for [`Outbox::enqueue_all`], which writes many in one
    /// statement (a batch of changes made in one transaction).
    pub fn event<M>(
        &self,
        stream: StreamSpec,
        event: &str,
        aggregate_id: &str,
        payload: &M,
        traceparent: Option<&TraceParent>,
    ) -> QueuedEvent
    where
        M: prost::Message + prost::Name,
    {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let payload = payload.encode_to_vec();
        let subject = stream.subject(&self.region, event);
        let bytes = payload.len() + subject.len() + aggregate_id.len() + 200;
        let row = outbox::ActiveModel {
            event_id: Set(id.clone()),
            stream: Set(stream.name.to_string()),
            subject: Set(subject),
            ce_type: Set(stream.ce_type(event)),
            ce_source: Set(self.source.clone()),
            ce_subject: Set(aggregate_id.to_string()),
            ce_time: Set(to_rfc3339(now)),
            data_schema: Set(M::full_name()),
            payload: Set(payload),
            traceparent: Set(traceparent.map(|t| t.to_string())),
            created_at_ms: Set(now),
            published_at_ms: Set(None),
            lease_owner: Set(None),
            lease_until_ms: Set(None),
            attempts: Set(0),
            last_error: Set(None),
            ..Default::default()
        };
        QueuedEvent { id, row, bytes }
    }

    /// Adds `events` (from [`Outbox::event`]) using `conn`, in as few statements
    /// as [`crate::db::statement_chunks`] allows, in their order.
    pub async fn enqueue_all<C: ConnectionTrait>(
        &self,
        conn: &C,
        events: Vec<QueuedEvent>,
    ) -> Result<(), DbErr> {
        for chunk in crate::db::statement_chunks(conn.get_database_backend(), &events, |e| e.bytes)
        {
            outbox::Entity::insert_many(chunk.iter().map(|e| e.row.clone()))
                .exec_without_returning(conn)
                .await?;
        }
        Ok(())
    }

    /// Wakes the relay now instead of at its next poll; call after commit.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// An event row made by [`Outbox::event`], not yet written.
#[derive(Clone, Debug)]
pub struct QueuedEvent {
    /// The event's id (UUIDv7).
    pub id: String,
    row: outbox::ActiveModel,
    /// About how many bytes it adds to a statement.
    bytes: usize,
}

/// Publishes outbox rows. One per replica; replicas coordinate through leases.
#[derive(Clone)]
pub struct Relay {
    db: DatabaseConnection,
    js: jetstream::Context,
    cfg: OutboxConfig,
    owner: String,
    wake: Arc<Notify>,
    /// Streams this outbox writes to, recreated if a publish fails.
    streams: Vec<StreamSpec>,
    stream_limits: StreamLimits,
    /// The service whose outbox it is, for its metrics.
    service: String,
}

/// What one relay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub published: usize,
    pub failed: usize,
}

impl Relay {
    pub fn new(
        db: DatabaseConnection,
        js: jetstream::Context,
        cfg: OutboxConfig,
        outbox: &Outbox,
    ) -> Self {
        Self {
            db,
            js,
            cfg,
            owner: uuid::Uuid::new_v4().to_string(),
            wake: outbox.wake.clone(),
            streams: Vec::new(),
            stream_limits: StreamLimits::default(),
            service: outbox
                .source
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Streams to create again when publishing fails (e.g. NATS lost its store).
    pub fn with_streams(mut self, streams: Vec<StreamSpec>, limits: StreamLimits) -> Self {
        self.streams = streams;
        self.stream_limits = limits;
        self
    }

    /// Runs until `shutdown`, publishing whatever is pending.
    pub async fn run(self, shutdown: Shutdown) {
        let poll = Duration::from_millis(self.cfg.poll_interval_ms);
        let mut last_cleanup = 0i64;
        let mut last_sample = 0i64;
        let mut failures = 0u32;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            // What waits, for the metrics: a few times a minute is enough.
            if now_ms() - last_sample >= METRICS_EVERY_MS {
                last_sample = now_ms();
                match self.waiting().await {
                    Ok((count, oldest_ms)) => {
                        let age =
                            oldest_ms.map_or(0.0, |t| Ord::max(now_ms() - t, 0) as f64 / 1000.0);
                        crate::metrics::metrics().outbox(&self.service, count, age);
                    }
                    Err(e) => tracing::debug!(error = %e, "outbox not measured"),
                }
            }
            let pause = match self.round().await {
                Ok(report) if report.failed == 0 => {
                    failures = 0;
                    if report.published > 0 {
                        continue;
                    }
                    poll
                }
                Ok(report) => {
                    failures += 1;
                    tracing::warn!(failed = report.failed, "outbox publish failed; will retry");
                    backoff(failures)
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay round failed");
                    backoff(failures)
                }
            };
            if now_ms() - last_cleanup > 600_000 {
                last_cleanup = now_ms();
                if let Err(e) = self
                    .delete_published_before(now_ms() - self.cfg.retention_hours * 3_600_000)
                    .await
                {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep(pause) => {},
                _ = shutdown.wait() => break,
            }
        }
    }

    /// Claims a batch, publishes it with acks in flight together, marks what was acked.
    pub async fn round(&self) -> Result<RoundReport, DbErr> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(RoundReport::default());
        }
        // Publishing in order on one connection keeps the stream in outbox order;
        // awaiting the acks together avoids one round trip per event.
        let mut pending = Vec::with_capacity(rows.len());
        let mut hops = std::collections::HashMap::new();
        for row in &rows {
            // With traces on, publishing is a span of its own, under the
            // request (or event) that wrote the row; consumers continue it.
            let traceparent = if crate::otel::enabled() {
                let parent = row.traceparent.as_deref().and_then(TraceParent::parse);
                let (trace, hop) = crate::otel::hop(
                    format!("publish {}", row.ce_type),
                    opentelemetry::trace::SpanKind::Producer,
                    parent.as_ref(),
                    vec![
                        opentelemetry::KeyValue::new("messaging.system", "nats"),
                        opentelemetry::KeyValue::new("messaging.operation.type", "send"),
                        opentelemetry::KeyValue::new(
                            "messaging.destination.name",
                            row.subject.clone(),
                        ),
                        opentelemetry::KeyValue::new("messaging.message.id", row.event_id.clone()),
                    ],
                );
                hops.insert(row.seq, hop);
                Some(trace.to_string())
            } else {
                row.traceparent.clone()
            };
            let envelope = Envelope {
                id: &row.event_id,
                source: &row.ce_source,
                ce_type: &row.ce_type,
                time: &row.ce_time,
                aggregate_id: &row.ce_subject,
                data_schema: &row.data_schema,
                traceparent: traceparent.as_deref(),
                stream: &row.stream,
            };
            let sent = self
                .js
                .publish_with_headers(
                    row.subject.clone(),
                    envelope.headers(),
                    row.payload.clone().into(),
                )
                .await;
            pending.push((row.seq, sent));
        }
        // All acks are awaited together, so a NATS that is down costs one ack
        // timeout per round, not one per event.
        let outcomes =
            futures::future::join_all(pending.into_iter().map(|(seq, sent)| async move {
                let outcome = match sent {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (seq, outcome)
            }))
            .await;
        let mut published = Vec::new();
        let mut failed = Vec::new();
        for (seq, outcome) in outcomes {
            match outcome {
                Ok(()) => published.push(seq),
                Err(e) => {
                    if let Some(hop) = hops.get_mut(&seq) {
                        hop.fail(e.clone());
                    }
                    failed.push((seq, e))
                }
            }
        }
        let now = now_ms();
        if !published.is_empty() {
            // A mark lost in a crash only means a repeat publish, which
            // JetStream and the inboxes drop: no need to wait for the disk.
            let txn = crate::db::begin_lightly(&self.db).await?;
            outbox::Entity::update_many()
                .col_expr(outbox::Column::PublishedAtMs, Expr::value(now))
                .col_expr(
                    outbox::Column::LeaseOwner,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    outbox::Column::LeaseUntilMs,
                    Expr::value(Option::<i64>::None),
                )
                .filter(outbox::Column::Seq.is_in(published.clone()))
                .exec(&txn)
                .await?;
            txn.commit().await?;
        }
        for (seq, error) in &failed {
            // Release the claim but keep everyone off the row for a moment, so a
            // dead NATS isn't hammered; the next claim takes a fresh lease.
            outbox::Entity::update_many()
                .col_expr(
                    outbox::Column::Attempts,
                    Expr::col(outbox::Column::Attempts).add(1),
                )
                .col_expr(outbox::Column::LastError, Expr::value(Some(error.clone())))
                .col_expr(
                    outbox::Column::LeaseOwner,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(outbox::Column::LeaseUntilMs, Expr::value(Some(now + 1_000)))
                .filter(outbox::Column::Seq.eq(*seq))
                .exec(&self.db)
                .await?;
        }
        if !failed.is_empty() {
            // A stream lost with NATS's store is created again, or nothing could
            // ever be published to it.
            for stream in &self.streams {
                if let Err(e) = ensure_stream(&self.js, *stream, self.stream_limits).await {
                    tracing::debug!(stream = stream.name, error = %e, "cannot ensure stream");
                }
            }
        }

        Ok(RoundReport {
            published: published.len(),
            failed: failed.len(),
        })
    }

    /// Takes a lease on up to `batch_size` unpublished rows whose lease is free or
    /// expired, and returns the rows this relay now holds: the free rows are
    /// picked and locked, then leased with a re-check that they are still free.
    ///
    /// On PostgreSQL the pick locks its rows in order and skips rows another
    /// relay has locked (`FOR UPDATE SKIP LOCKED`): two relays whose UPDATEs met
    /// the same rows in different orders deadlocked, and one's round failed.
    /// SQLite has one writer and no row locks; there the clause is left out.
    async fn claim(&self) -> Result<Vec<outbox::Model>, DbErr> {
        let now = now_ms();
        let free = outbox::Column::PublishedAtMs.is_null().and(
            outbox::Column::LeaseUntilMs
                .is_null()
                .or(outbox::Column::LeaseUntilMs.lt(now)),
        );
        // A lease lost in a crash is taken again by the next relay; a repeat
        // publish is dropped downstream. So its commit need not wait for the disk.
        let txn = crate::db::begin_lightly(&self.db).await?;
        let candidates: Vec<i64> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Seq)
            .filter(free.clone())
            .order_by_asc(outbox::Column::Seq)
            .limit(self.cfg.batch_size)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_tuple()
            .all(&txn)
            .await?;
        if candidates.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LeaseOwner,
                Expr::value(Some(self.owner.clone())),
            )
            .col_expr(
                outbox::Column::LeaseUntilMs,
                Expr::value(Some(now + self.cfg.lease_ms)),
            )
            .filter(outbox::Column::Seq.is_in(candidates))
            .filter(free)
            .exec(&txn)
            .await?;
        let held = outbox::Entity::find()
            .filter(outbox::Column::LeaseOwner.eq(self.owner.clone()))
            .filter(outbox::Column::PublishedAtMs.is_null())
            .filter(outbox::Column::LeaseUntilMs.gte(now))
            .order_by_asc(outbox::Column::Seq)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(held)
    }

    /// Events not yet published, and when the oldest of them was written.
    pub async fn waiting(&self) -> Result<(u64, Option<i64>), DbErr> {
        waiting(&self.db).await
    }

    async fn delete_published_before(&self, cutoff_ms: i64) -> Result<u64, DbErr> {
        let res = outbox::Entity::delete_many()
            .filter(outbox::Column::PublishedAtMs.lt(cutoff_ms))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }
}

/// Rows not yet published (a health signal for operators).
pub async fn backlog(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_null())
        .count(db)
        .await
}

/// The relay's pause after `failures` failed rounds in a row (0: the first).
fn backoff(failures: u32) -> Duration {
    selfhelp_core::time::Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
        .after(failures.saturating_add(1))
}

/// Events in `db`'s outbox not yet published, and when the oldest of them was
/// written.
pub async fn waiting(db: &DatabaseConnection) -> Result<(u64, Option<i64>), DbErr> {
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
    let unpublished = || outbox::Entity::find().filter(outbox::Column::PublishedAtMs.is_null());
    let count = unpublished().count(db).await?;
    let oldest = unpublished()
        .select_only()
        .column(outbox::Column::CreatedAtMs)
        .order_by_asc(outbox::Column::CreatedAtMs)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok((count, oldest))
}
