//! The consumer runner: a durable pull consumer shared by a service's replicas,
//! explicit acks, bounded redelivery with exponential backoff, poison messages to
//! the dead-letter table, small batches, and a supervisor loop that recreates the
//! consumer after reconnects or deletion.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, TransactionTrait};
use tracing::Instrument;

use crate::Shutdown;
use crate::bus::{IncomingEvent, StreamLimits, ensure_stream};
use crate::config::ConsumerConfig;
use crate::inbox::{EventHandler, HandlerError, Outcome, apply_all_in, event_span, process_once};
use crate::migrations::entities::dead_letter;
use crate::trace::TraceParent;
use selfhelp_core::time::now_ms;
use selfhelp_proto::streams::StreamSpec;

/// How long one pull request waits for messages on the server.
const FETCH_EXPIRY: Duration = Duration::from_secs(2);
/// How much longer the client waits before it treats the fetch as lost.
const FETCH_GRACE: Duration = Duration::from_secs(3);
/// After a fetch's first message, how long to wait for the next before handling
/// what has come.
const GATHER: Duration = Duration::from_millis(2);

/// One durable consumer of one stream for one region.
#[derive(Clone)]
pub struct ConsumerRunner {
    pub durable: String,
    pub stream: StreamSpec,
    pub filter: String,
    pub stream_limits: StreamLimits,
    pub cfg: ConsumerConfig,
    pub db: DatabaseConnection,
    pub js: jetstream::Context,
    pub handler: Arc<dyn EventHandler>,
}

impl ConsumerRunner {
    /// `<service>-<region>-<stream>`, e.g. `notifications-notts-membership`.
    pub fn durable_name(service: &str, region: &str, stream: StreamSpec) -> String {
        format!("{service}-{region}-{}", stream.context)
    }

    /// Creates (or finds) the stream and the durable consumer.
    pub async fn ensure(&self) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
        let stream = ensure_stream(&self.js, self.stream, self.stream_limits).await?;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_millis(self.cfg.ack_wait_ms),
            // Unlimited on the server: the runner enforces `cfg.max_deliver` itself,
            // so a message is never dropped without being parked first.
            max_deliver: -1,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        };
        Ok(stream.get_or_create_consumer(&self.durable, config).await?)
    }

    /// Supervises the consumer until `shutdown` with `pullers` fetch loops side
    /// by side: handling an event is mostly waiting for the database, so several
    /// loops (like several replicas, which share the durable consumer too) keep
    /// it busy. Any error (NATS restarted, consumer deleted, stream gone) leads a
    /// loop to recreate the consumer after a pause.
    pub async fn run(self, shutdown: Shutdown) {
        let pullers = self.cfg.pullers;
        futures::future::join_all((0..pullers).map(|_| self.supervise(&shutdown))).await;
    }

    async fn supervise(&self, shutdown: &Shutdown) {
        let mut failures = 0u32;
        while !shutdown.is_triggered() {
            let consumer = match self.ensure().await {
                Ok(c) => c,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(durable = %self.durable, error = %e, "cannot set up consumer; retrying");
                    if pause(shutdown, retry_pause(failures)).await {
                        break;
                    }
                    continue;
                }
            };
            failures = 0;
            if let Err(e) = self.pull_until_error(&consumer, shutdown).await {
                tracing::warn!(durable = %self.durable, error = %e, "consumer interrupted; recreating");
                if pause(shutdown, Duration::from_millis(500)).await {
                    break;
                }
            }
        }
    }

    async fn pull_until_error(
        &self,
        consumer: &jetstream::consumer::Consumer<pull::Config>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            // Short fetches instead of one endless stream. A pull request that was
            // lost (the server restarted while it waited) is never answered, so a
            // fetch that stays silent past its expiry counts as broken.
            let mut batch = consumer
                .fetch()
                .max_messages(self.cfg.batch)
                .expires(FETCH_EXPIRY)
                .messages()
                .await?;
            loop {
                // Stop taking work at shutdown; fetched but unhandled messages are
                // redelivered to another replica after ack_wait.
                let next = tokio::select! {
                    next = tokio::time::timeout(FETCH_EXPIRY + FETCH_GRACE, batch.next()) => match next {
                        Ok(next) => next,
                        Err(_) => anyhow::bail!("fetch went silent (lost pull request?)"),
                    },
                    _ = shutdown.wait() => return Ok(()),
                };
                let Some(message) = next else { break };
                // The rest of what the server sends for this fetch follows within
                // moments: take it too (up to the batch size), so the events share
                // one transaction. The server ends a fetch once it has sent what
                // was waiting; nothing more within GATHER means nothing more now.
                let mut messages = vec![message.map_err(|e| anyhow::anyhow!(e))?];
                let mut fetch_over = false;
                while messages.len() < self.cfg.batch {
                    match tokio::time::timeout(GATHER, batch.next()).await {
                        Ok(Some(Ok(m))) => messages.push(m),
                        Ok(Some(Err(e))) => anyhow::bail!(e),
                        Ok(None) => {
                            fetch_over = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.handle_batch(messages).await;
                if fetch_over {
                    break;
                }
            }
        }
    }

    /// Applies the events of `messages` and acknowledges what was applied. The
    /// batch is split into lanes by aggregate (see `ConsumerConfig::lanes`), and
    /// each lane is one transaction, the lanes side by side. A message that
    /// fails is dealt with alone (redelivered later or dead-lettered); if a
    /// commit fails, its lane's messages are redelivered and the inbox drops
    /// any repeat.
    async fn handle_batch(&self, messages: Vec<jetstream::Message>) {
        let started = std::time::Instant::now();
        if let Some(info) = messages.last().and_then(|m| m.info().ok()) {
            crate::metrics::metrics().pending(&self.durable, info.pending);
        }
        let lanes = self.lanes();
        let mut lane_events: Vec<Vec<Fetched>> = (0..lanes).map(|_| Vec::new()).collect();
        let mut count = 0;
        for message in messages {
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            let event = match IncomingEvent::from_message(
                message.subject.as_str(),
                message.headers.as_ref(),
                message.payload.clone(),
            ) {
                Ok(event) => event,
                Err(reason) => {
                    self.dead_letter(&message, "", &reason, delivered).await;
                    continue;
                }
            };
            match self.check_origin(&event) {
                Ok(()) => {
                    let mut event = event;
                    let hop = self.hop(&mut event);
                    let lane = lane_of(&event.aggregate_id, lanes);
                    lane_events[lane].push(Fetched {
                        message,
                        event,
                        delivered,
                        hop,
                    });
                    count += 1;
                }
                Err(reason) => {
                    self.dead_letter(&message, &event.id, &reason, delivered)
                        .await
                }
            }
        }
        // Each lane a task of its own: side by side on every core, and each
        // with its own turn on a busy runtime rather than one turn for all.
        let lanes: Vec<_> = lane_events
            .into_iter()
            .filter(|lane| !lane.is_empty())
            .map(|lane| {
                let runner = self.clone();
                tokio::spawn(async move { runner.handle_lane(lane).await })
            })
            .collect();
        for lane in lanes {
            if let Err(e) = lane.await {
                // Unacknowledged messages come back after ack_wait.
                tracing::error!(consumer = %self.durable, error = %e, "a lane of events stopped");
            }
        }
        // Which replica handled what (the container test counts these per replica).
        tracing::debug!(consumer = %self.durable, events = count, took = ?started.elapsed(), "batch handled");
    }

    /// How many transactions a batch is split into. SQLite has one writer, so
    /// there a batch stays one transaction.
    fn lanes(&self) -> usize {
        if self.db.get_database_backend() == sea_orm::DbBackend::Sqlite {
            1
        } else {
            self.cfg.lanes.max(1)
        }
    }

    /// Applies one lane's events in one transaction, then settles each.
    async fn handle_lane(&self, mut lane: Vec<Fetched>) {
        let outcomes: Vec<Result<Outcome, HandlerError>> = match self.apply_together(&lane).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) if lane.len() == 1 => vec![Err(e)],
            // One of them failed: each goes alone, so the others are not held back.
            Err(e) => {
                tracing::debug!(consumer = %self.durable, error = %e, "batch not applied whole; applying its events one by one");
                let mut outcomes = Vec::with_capacity(lane.len());
                for fetched in &lane {
                    let outcome = process_once(
                        &self.db,
                        &self.durable,
                        &fetched.event,
                        self.handler.as_ref(),
                    )
                    .instrument(self.span(&fetched.event))
                    .await;
                    outcomes.push(outcome);
                }
                outcomes
            }
        };
        for (fetched, outcome) in lane.iter_mut().zip(outcomes) {
            if let Err(e) = &outcome {
                fetched.hop.fail(e.to_string());
            }
            self.settle(&fetched.message, &fetched.event, fetched.delivered, outcome)
                .await;
        }
    }

    /// Applies every event in one transaction, with statements covering them
    /// all where the handler can; the first failure undoes them all.
    async fn apply_together(&self, events: &[Fetched]) -> Result<Vec<Outcome>, HandlerError> {
        // Handlers that take events one by one give each its own span within.
        let span = tracing::info_span!("events", consumer = %self.durable, count = events.len());
        let txn = self.db.begin().await?;
        let all: Vec<&IncomingEvent> = events.iter().map(|f| &f.event).collect();
        match apply_all_in(&txn, &self.durable, &all, self.handler.as_ref())
            .instrument(span)
            .await
        {
            Ok(outcomes) => {
                txn.commit().await?;
                Ok(outcomes)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    /// Starts the span of handling `event` under the one that published it,
    /// and gives the event its `traceparent`, so what the handler writes
    /// continues the trace from here.
    fn hop(&self, event: &mut IncomingEvent) -> crate::otel::Hop {
        use opentelemetry::KeyValue;
        let parent = event.traceparent.as_deref().and_then(TraceParent::parse);
        let (trace, hop) = crate::otel::hop(
            format!("process {}", event.ce_type),
            opentelemetry::trace::SpanKind::Consumer,
            parent.as_ref(),
            vec![
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", event.subject.clone()),
                KeyValue::new("messaging.consumer.group.name", self.durable.clone()),
                KeyValue::new("messaging.message.id", event.id.clone()),
                KeyValue::new("cloudevents.event_type", event.ce_type.clone()),
            ],
        );
        event.traceparent = Some(trace.to_string());
        hop
    }

    fn span(&self, event: &IncomingEvent) -> tracing::Span {
        tracing::info_span!("consumer", consumer = %self.durable).in_scope(|| event_span(event))
    }

    /// Acknowledges, redelivers later or dead-letters one message after its outcome.
    async fn settle(
        &self,
        message: &jetstream::Message,
        event: &IncomingEvent,
        delivered: i64,
        outcome: Result<Outcome, HandlerError>,
    ) {
        match outcome {
            Ok(outcome) => {
                if outcome == Outcome::Duplicate {
                    tracing::debug!(ce_id = %event.id, "duplicate delivery ignored");
                }
                crate::metrics::metrics().handled(&self.durable, delivered);
                // If this ack is lost the event is redelivered and the inbox skips it.
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, "ack failed");
                }
            }
            Err(HandlerError::Poison(reason)) => {
                self.dead_letter(message, &event.id, &reason, delivered)
                    .await;
            }
            // Only the handler's own verdicts count towards the limit: a database
            // that is down is retried for as long as it takes.
            Err(HandlerError::Retry(reason)) if delivered >= self.cfg.max_deliver => {
                self.dead_letter(message, &event.id, &reason, delivered)
                    .await;
            }
            // Another stream is behind: wait for it by time, not by count.
            Err(HandlerError::Waiting(reason)) => {
                let waited = self.waited_through(delivered);
                if waited >= Duration::from_secs(self.cfg.wait_max_secs) {
                    let reason = format!("{reason} (waited {}s)", waited.as_secs());
                    self.dead_letter(message, &event.id, &reason, delivered)
                        .await;
                    return;
                }
                let delay = self.retry_delay(delivered);
                if delivered >= self.cfg.max_deliver {
                    // Once the delay has grown to its cap, about one line a minute.
                    tracing::warn!(consumer = %self.durable, ce_id = %event.id, %reason, waited_secs = waited.as_secs(), delivered, "event still waiting for another stream");
                } else {
                    tracing::info!(ce_id = %event.id, %reason, delivered, ?delay, "event waits for another stream; will be redelivered");
                }
                if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "nak failed");
                }
            }
            Err(e) => {
                let delay = self.retry_delay(delivered);
                tracing::info!(ce_id = %event.id, error = %e, delivered, ?delay, "event not applied; will be redelivered");
                if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "nak failed");
                }
            }
        }
    }

    fn check_origin(&self, event: &IncomingEvent) -> Result<(), String> {
        check_origin(self.stream, event)
    }

    /// Re-runs the handler for this consumer's dead letters (after a fix), once
    /// each. Letters that still cannot apply stay parked.
    pub async fn replay_dead_letters(&self) -> anyhow::Result<ReplayReport> {
        Ok(self.dead_letters().replay(None).await?)
    }

    /// This consumer's parked events.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters {
            durable: self.durable.clone(),
            stream: self.stream,
            db: self.db.clone(),
            handler: self.handler.clone(),
        }
    }

    /// How long a message delivered `delivered` times has waited in retries:
    /// the delays it was given. (Not its age in the stream: after an outage, or
    /// for a new durable reading from the start, old events are not overdue.)
    fn waited_through(&self, delivered: i64) -> Duration {
        (1..delivered).map(|d| self.retry_delay(d)).sum()
    }

    fn retry_delay(&self, delivered: i64) -> Duration {
        let backoff = selfhelp_core::time::Backoff::new(
            Duration::from_millis(self.cfg.retry_base_ms),
            Duration::from_millis(self.cfg.retry_max_ms),
        );
        backoff.after(u32::try_from(delivered).unwrap_or(0))
    }

    /// Parks a message that will never apply, then terminates its redelivery.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        event_id: &str,
        error: &str,
        delivered: i64,
    ) {
        tracing::error!(consumer = %self.durable, subject = %message.subject, %error, "event dead-lettered");
        crate::metrics::metrics().dead_lettered(&self.durable);
        let headers: serde_json::Map<String, serde_json::Value> = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| {
                let k: &str = k.as_ref();
                (
                    k.to_string(),
                    serde_json::Value::String(
                        v.first()
                            .map(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            })
            .collect();
        let row = dead_letter::ActiveModel {
            consumer: Set(self.durable.clone()),
            event_id: Set(event_id.to_string()),
            subject: Set(message.subject.to_string()),
            headers_json: Set(serde_json::Value::Object(headers).to_string()),
            payload: Set(message.payload.to_vec()),
            error: Set(error.to_string()),
            deliveries: Set(delivered),
            created_at_ms: Set(now_ms()),
            replayed_at_ms: Set(None),
            ..Default::default()
        };
        match dead_letter::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => {
                if let Err(e) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "term failed");
                }
            }
            // Not recorded: have it redelivered later rather than lose it.
            Err(e) => {
                tracing::error!(error = %e, "cannot record dead letter; will retry");
                let delay = Duration::from_millis(self.cfg.retry_max_ms);
                if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "nak failed");
                }
            }
        }
    }
}

/// A message fetched, read and let through, waiting to be applied.
struct Fetched {
    message: jetstream::Message,
    event: IncomingEvent,
    delivered: i64,
    /// The span of handling it (traces).
    hop: crate::otel::Hop,
}

/// The lane of an aggregate's events: the same for every event of it, so they
/// are applied one after another in the order they were published.
fn lane_of(aggregate_id: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if lanes <= 1 {
        return 0;
    }
    // Any stable spread will do; DefaultHasher with no keys is the same
    // within a process, which is all a lane needs.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    aggregate_id.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// Only the stream's speakers may speak on it: anything else was injected
/// (e.g. by a consumer delivering into our subjects) and is parked, not applied.
fn check_origin(stream: StreamSpec, event: &IncomingEvent) -> Result<(), String> {
    // selfhelp.<region>.<context>.… must come from urn:selfhelp:<region>:<speaker>.
    let mut parts = event.subject.split('.');
    let region = parts.nth(1).unwrap_or_default();
    let from_speaker = stream
        .speakers
        .iter()
        .any(|s| event.source == format!("urn:selfhelp:{region}:{s}"));
    let expected_type = format!("org.selfhelp.{}.", stream.context);
    if from_speaker && event.ce_type.starts_with(&expected_type) {
        Ok(())
    } else {
        Err(format!(
            "event type {} from {} does not belong on {} (stream {})",
            event.ce_type, event.source, event.subject, stream.name
        ))
    }
}

/// One durable consumer's parked events: what [`ConsumerRunner`] could not
/// apply, kept in the service's `dead_letter` table for an operator.
#[derive(Clone)]
pub struct DeadLetters {
    pub durable: String,
    pub stream: StreamSpec,
    pub db: DatabaseConnection,
    pub handler: Arc<dyn EventHandler>,
}

impl DeadLetters {
    /// Applies the letters not yet replayed (only `ids` of them, when given)
    /// again, once each, in the order they were parked. One that still fails
    /// stays parked with its new error.
    pub async fn replay(&self, ids: Option<&[i64]>) -> Result<ReplayReport, sea_orm::DbErr> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        let mut query = dead_letter::Entity::find()
            .filter(dead_letter::Column::Consumer.eq(self.durable.clone()))
            .filter(dead_letter::Column::ReplayedAtMs.is_null());
        if let Some(ids) = ids {
            query = query.filter(dead_letter::Column::Id.is_in(ids.iter().copied()));
        }
        let rows = query
            .order_by_asc(dead_letter::Column::Id)
            .all(&self.db)
            .await?;
        let mut report = ReplayReport::default();
        for row in rows {
            let headers: std::collections::HashMap<String, String> =
                serde_json::from_str(&row.headers_json).unwrap_or_default();
            let mut map = async_nats::HeaderMap::new();
            for (k, v) in &headers {
                map.insert(k.as_str(), v.as_str());
            }
            let event =
                IncomingEvent::from_message(&row.subject, Some(&map), row.payload.clone().into())
                    .and_then(|e| check_origin(self.stream, &e).map(|()| e));
            let outcome = match event {
                Ok(event) => process_once(&self.db, &self.durable, &event, self.handler.as_ref())
                    .await
                    .map_err(|e| e.to_string()),
                Err(reason) => Err(reason),
            };
            // Updates, not the row itself: the handler may have deleted it
            // (an erasure purges letters naming the person).
            let update =
                dead_letter::Entity::update_many().filter(dead_letter::Column::Id.eq(row.id));
            match outcome {
                Ok(_) => {
                    update
                        .col_expr(
                            dead_letter::Column::ReplayedAtMs,
                            sea_orm::sea_query::Expr::value(now_ms()),
                        )
                        .exec(&self.db)
                        .await?;
                    report.replayed += 1;
                }
                Err(error) => {
                    tracing::warn!(id = row.id, %error, "dead letter still fails");
                    update
                        .col_expr(
                            dead_letter::Column::Error,
                            sea_orm::sea_query::Expr::value(error),
                        )
                        .exec(&self.db)
                        .await?;
                    report.still_parked += 1;
                }
            }
        }
        Ok(report)
    }
}

/// What a replay of dead letters did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: usize,
    pub still_parked: usize,
}

/// The pause before setting up a consumer again after `failures` failures.
fn retry_pause(failures: u32) -> Duration {
    selfhelp_core::time::Backoff::new(Duration::from_millis(500), Duration::from_secs(5))
        .after(failures)
}

/// Sleeps for `d`; true when shutdown came first.
async fn pause(shutdown: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.wait() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
