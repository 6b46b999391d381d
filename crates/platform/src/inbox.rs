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
use crate::time::now_ms;

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
    // A panic in a handler (a bug meeting one odd event) must cost that event,
    // not the consumer task: it is parked like any event that never applies.
    match std::panic::AssertUnwindSafe(handler.handle(txn, event))
        .catch_unwind()
        .await
    {
        Ok(handled) => handled?,
        Err(panic) => {
            let reason = format!(
                "handler panicked: {}",
                crate::supervise::panic_text(panic.as_ref())
            );
            tracing::error!(ce_id = %event.id, ce_type = %event.ce_type, %reason, "event handler panicked");
            return Err(HandlerError::Poison(reason));
        }
    }
    Ok(Outcome::Applied)
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
