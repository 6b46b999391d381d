//! The idempotent inbox: (consumer, event id) is recorded in the same transaction
//! as the handler's effects, so a redelivered or duplicated event does nothing.

use futures::FutureExt;
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    TransactionTrait, TryInsertResult,
};

use crate::bus::IncomingEvent;
use crate::db::is_unique_violation;
use crate::migrations::entities::inbox;
use selfhelp_core::time::now_ms;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (a dependency or a read model not there yet): redeliver with backoff.
    #[error("retry later: {0}")]
    Retry(String),
    /// Needs what another stream has not delivered yet (a join for a group not
    /// yet heard of): redelivered with growing delays for as long as
    /// `consumer.wait_max_secs`, however many deliveries that takes.
    #[error("waiting for another stream: {0}")]
    Waiting(String),
    /// Will never work (undecodable payload): dead-letter it at once.
    #[error("poison message: {0}")]
    Poison(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Applies one event inside a transaction. Implemented by each service's consumers.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError>;

    /// Applies several events, in order, inside one transaction: all of them or
    /// (on an error) none. By default one after another; a handler whose
    /// events are many and alike does better with statements covering them
    /// all, since on a busy server each statement waits its turn.
    async fn handle_all(
        &self,
        txn: &DatabaseTransaction,
        events: &[&IncomingEvent],
    ) -> Result<(), HandlerError> {
        use tracing::Instrument;
        for event in events {
            // Each event's log lines name it, within the batch's span.
            self.handle(txn, event)
                .instrument(event_span(event))
                .await?;
        }
        Ok(())
    }
}

/// The span of handling `event`: its type, id and trace on every log line.
pub fn event_span(event: &IncomingEvent) -> tracing::Span {
    let trace = crate::trace::TraceParent::of_event(event.traceparent.as_deref());
    tracing::info_span!(
        "event",
        ce_type = %event.ce_type,
        ce_id = %event.id,
        trace_id = %trace.trace_id_hex(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
}

/// Records `event` as handled by `consumer` and applies `handler` in `txn`; a
/// duplicate (already recorded) does nothing. The caller commits, and may apply
/// several events in one transaction (a commit is the costly part of handling
/// an event).
pub async fn apply_in(
    txn: &DatabaseTransaction,
    consumer: &str,
    event: &IncomingEvent,
    handler: &dyn EventHandler,
) -> Result<Outcome, HandlerError> {
    let row = inbox::ActiveModel {
        consumer: Set(consumer.to_string()),
        event_id: Set(event.id.clone()),
        processed_at_ms: Set(now_ms()),
    };
    let inserted = inbox::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
    if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        return Ok(Outcome::Duplicate);
    }
    caught(handler.handle(txn, event), &event.id, &event.ce_type).await?;
    Ok(Outcome::Applied)
}

/// [`apply_in`] for several events at once: one statement records them all,
/// and the handler gets the ones not seen before in one call. The outcomes
/// are in the order of `events`; an error leaves the transaction to be rolled
/// back.
pub async fn apply_all_in(
    txn: &DatabaseTransaction,
    consumer: &str,
    events: &[&IncomingEvent],
    handler: &dyn EventHandler,
) -> Result<Vec<Outcome>, HandlerError> {
    let mut new_ids = record_all(txn, consumer, events).await?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut new_events = Vec::with_capacity(events.len());
    for event in events {
        // An id given twice in one batch is new once.
        if new_ids.remove(&event.id) {
            outcomes.push(Outcome::Applied);
            new_events.push(*event);
        } else {
            outcomes.push(Outcome::Duplicate);
        }
    }
    if !new_events.is_empty() {
        let first = new_events[0];
        caught(
            handler.handle_all(txn, &new_events),
            &first.id,
            &first.ce_type,
        )
        .await?;
    }
    Ok(outcomes)
}

/// Records each event as handled by `consumer` in one statement, and returns
/// the ids that were not recorded before.
async fn record_all(
    txn: &DatabaseTransaction,
    consumer: &str,
    events: &[&IncomingEvent],
) -> Result<std::collections::HashSet<String>, DbErr> {
    use sea_orm::sea_query::{OnConflict, Query};
    use sea_orm::{ConnectionTrait, Iterable};

    let now = now_ms();
    let mut new_ids = std::collections::HashSet::with_capacity(events.len());
    let size = |e: &&IncomingEvent| consumer.len() + e.id.len() + 8;
    for chunk in crate::db::statement_chunks(txn.get_database_backend(), events, size) {
        let mut insert = Query::insert();
        insert
            .into_table(inbox::Entity)
            .columns(inbox::Column::iter())
            .on_conflict(
                OnConflict::columns([inbox::Column::Consumer, inbox::Column::EventId])
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(inbox::Column::EventId);
        for event in chunk {
            insert.values_panic([consumer.into(), event.id.clone().into(), now.into()]);
        }
        for row in txn.query_all(&insert).await? {
            new_ids.insert(row.try_get::<String>("", "event_id")?);
        }
    }
    Ok(new_ids)
}

/// Runs a handler's future; a panic in it (a bug meeting one odd event) costs
/// that event, not the consumer task: it is parked like any event that never
/// applies.
async fn caught(
    handling: impl std::future::Future<Output = Result<(), HandlerError>>,
    event_id: &str,
    ce_type: &str,
) -> Result<(), HandlerError> {
    match std::panic::AssertUnwindSafe(handling).catch_unwind().await {
        Ok(handled) => handled,
        Err(panic) => {
            let reason = format!(
                "handler panicked: {}",
                crate::supervise::panic_text(panic.as_ref())
            );
            tracing::error!(ce_id = %event_id, %ce_type, %reason, "event handler panicked");
            Err(HandlerError::Poison(reason))
        }
    }
}

/// Runs `handler` for `event` exactly once per `consumer`: records the event id
/// and the handler's effects in one transaction.
pub async fn process_once(
    db: &DatabaseConnection,
    consumer: &str,
    event: &IncomingEvent,
    handler: &dyn EventHandler,
) -> Result<Outcome, HandlerError> {
    let txn = db.begin().await?;
    match apply_in(&txn, consumer, event, handler).await {
        Ok(Outcome::Applied) => match txn.commit().await {
            Ok(()) => Ok(Outcome::Applied),
            // Another replica committed the same event first.
            Err(e) if is_unique_violation(&e) => Ok(Outcome::Duplicate),
            Err(e) => Err(e.into()),
        },
        Ok(Outcome::Duplicate) => {
            txn.rollback().await?;
            Ok(Outcome::Duplicate)
        }
        Err(e) => {
            // The handler's error is what counts; a failed rollback ends with the connection.
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}
