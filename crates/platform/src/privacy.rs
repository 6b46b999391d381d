//! The right to erasure across services. Membership takes the request and
//! publishes `privacy.erasure.requested`; every service (membership included)
//! consumes it with [`ErasureRequests`], erases what it holds through its own
//! [`Eraser`], and answers `privacy.erasure.completed` through its outbox in the
//! same transaction — so a confirmation is sent if and only if the erasure
//! happened, once.

use std::sync::Arc;

use sea_orm::{DatabaseTransaction, DbErr};
use selfhelp_proto::events::{types, v1 as ev};

use crate::bus::IncomingEvent;
use crate::inbox::{EventHandler, HandlerError};
use crate::outbox::Outbox;
use crate::trace::TraceParent;
use selfhelp_core::time::{now_ms, to_timestamp};
use selfhelp_proto::streams::PRIVACY;

pub const ERASURE_REQUESTED: &str = "erasure.requested";
pub const ERASURE_COMPLETED: &str = "erasure.completed";

/// What a service does to forget a person. Must be idempotent: a request may be
/// handled again after a crash before the acknowledgement.
#[async_trait::async_trait]
pub trait Eraser: Send + Sync {
    async fn erase(&self, txn: &DatabaseTransaction, person_id: &str) -> Result<(), DbErr>;
}

/// Handles `erasure.requested` for one service; other PRIVACY events pass by.
pub struct ErasureRequests {
    pub service: &'static str,
    pub outbox: Outbox,
    pub eraser: Arc<dyn Eraser>,
}

#[async_trait::async_trait]
impl EventHandler for ErasureRequests {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        if event.ce_type != types::ERASURE_REQUESTED {
            return Ok(());
        }
        // Only membership takes erasure requests; the stream lets every service
        // speak (to confirm), so the request's origin is checked here.
        if !event.source.ends_with(":membership") {
            return Err(HandlerError::Poison(format!(
                "an erasure request from {} is not membership's",
                event.source
            )));
        }
        let request: ev::ErasureRequested = event
            .decode()
            .map_err(|e| HandlerError::Poison(format!("{}: {e}", event.ce_type)))?;
        if request.person_id.is_empty() {
            return Err(HandlerError::Poison(
                "erasure request without a person".into(),
            ));
        }
        self.eraser.erase(txn, &request.person_id).await?;
        let purged = purge_traces(txn, &request.person_id).await?;
        let done = ev::ErasureCompleted {
            request_id: request.request_id.clone(),
            service: self.service.to_string(),
            completed_at: Some(to_timestamp(now_ms())),
        };
        let trace = TraceParent::of_event(event.traceparent.as_deref());
        self.outbox
            .enqueue(
                txn,
                PRIVACY,
                ERASURE_COMPLETED,
                &request.request_id,
                &done,
                Some(&trace),
            )
            .await?;
        tracing::info!(request_id = %request.request_id, purged, "personal data erased");
        Ok(())
    }
}

/// Deletes what the platform's own tables still hold about `person_id`: outbox
/// rows already published (kept a while for diagnosis) and dead letters that
/// name the person. Rows not yet published stay: they are events about the
/// erasure itself or changes still to be told, and go with the outbox's
/// retention. Returns how many rows went.
///
/// "Name the person" means the id as a whole protobuf string (its length
/// prefix, then its bytes) in the payload, or as a whole JSON string in the
/// headers — not as a substring, so erasing `p1` leaves `p10`'s letters alone.
pub async fn purge_traces(txn: &DatabaseTransaction, person_id: &str) -> Result<u64, DbErr> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};
    let backend = txn.get_database_backend();
    let mut in_payload = Vec::with_capacity(person_id.len() + 2);
    prost::encoding::encode_varint(person_id.len() as u64, &mut in_payload);
    in_payload.extend_from_slice(person_id.as_bytes());
    let in_headers = serde_json::Value::String(person_id.to_string()).to_string();
    let (outbox, dead_letters) = if backend == DatabaseBackend::Postgres {
        (
            "DELETE FROM outbox WHERE published_at_ms IS NOT NULL \
             AND position($1::bytea in payload) > 0",
            "DELETE FROM dead_letter WHERE position($1::bytea in payload) > 0 \
             OR strpos(headers_json, $2) > 0",
        )
    } else {
        (
            "DELETE FROM outbox WHERE published_at_ms IS NOT NULL AND instr(payload, ?) > 0",
            "DELETE FROM dead_letter WHERE instr(payload, ?) > 0 OR instr(headers_json, ?) > 0",
        )
    };
    let needle = || Value::Bytes(Some(in_payload.clone()));
    let one = txn
        .execute_raw(Statement::from_sql_and_values(backend, outbox, [needle()]))
        .await?
        .rows_affected();
    let two = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            dead_letters,
            [needle(), in_headers.into()],
        ))
        .await?
        .rows_affected();
    Ok(one + two)
}

/// Pseudonyms for records that must find a person again without naming them
/// (an erasure request, "this person was erased"): HMAC-SHA256 of the person id
/// under a key the service makes on first start and keeps in its database. A
/// key no one outside has means a list of candidate ids cannot be tried
/// against the pseudonyms, as it could against a hash with a public namespace.
#[derive(Clone)]
pub struct Pseudonyms {
    key: Arc<Vec<u8>>,
}

impl Pseudonyms {
    /// The service's key (`service_secret` "pseudonym-key"), made now if new.
    pub async fn load<C: sea_orm::ConnectionTrait>(db: &C) -> Result<Pseudonyms, DbErr> {
        use base64::Engine;
        use rand::RngCore;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let stored = crate::secrets::get_or_create(db, "pseudonym-key", b64.encode(fresh)).await?;
        let key = b64
            .decode(stored.trim())
            .map_err(|e| DbErr::Custom(format!("pseudonym key: {e}")))?;
        Ok(Pseudonyms::from_key(&key))
    }

    pub fn from_key(key: &[u8]) -> Pseudonyms {
        Pseudonyms {
            key: Arc::new(key.to_vec()),
        }
    }

    /// The person's pseudonym today.
    pub fn of(&self, person_id: &str) -> String {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(person_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(3 + digest.len() * 2);
        out.push_str("h1:");
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// Every pseudonym the person may be recorded under: today's, and the
    /// unkeyed one written before keys existed, so older records are found.
    pub fn all_of(&self, person_id: &str) -> [String; 2] {
        [self.of(person_id), legacy_pseudonym(person_id)]
    }
}

/// The unkeyed pseudonym of records written before [`Pseudonyms`] (UUIDv5):
/// only looked up, never written.
fn legacy_pseudonym(person_id: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5e1f_4e1b_0b1e_4c6a_9d2e_7a41_2c3b_9f10);
    uuid::Uuid::new_v5(&NAMESPACE, person_id.as_bytes()).to_string()
}
