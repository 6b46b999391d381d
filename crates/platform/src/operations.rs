//! `selfhelp.operations.v1.OperationsService`, served by every service beside
//! its own API: a replica's status (version, readiness, outbox, consumers) and
//! its consumers' dead letters, listed and replayed. Only the region's
//! operators may call it. `selfhelp status` and `selfhelp dead-letters` are
//! its clients.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use selfhelp_proto::operations::v1 as pb;
use selfhelp_proto::operations::v1::operations_service_server::OperationsService;
use tonic::{Request, Response, Status};

use crate::consumer::DeadLetters;
use crate::error::ServiceError;
use crate::grpc::{Readiness, answer, caller_in_region};
use crate::migrations::entities::dead_letter;
use selfhelp_core::time::{now_ms, to_timestamp};
use selfhelp_core::validation::Violations;

const DEFAULT_LIST: u32 = 50;
const MAX_LIST: u32 = 500;
const MAX_IDS: usize = 500;

pub struct OperationsApi {
    pub service: &'static str,
    pub region: String,
    pub db: DatabaseConnection,
    pub readiness: Readiness,
    /// Whether the service has an outbox (notifications' is small, but there).
    pub has_outbox: bool,
    /// One per durable consumer of the service.
    pub consumers: Vec<DeadLetters>,
}

impl OperationsApi {
    fn operator<T>(&self, request: &Request<T>) -> Result<(), ServiceError> {
        let caller = caller_in_region(request, &self.region)?;
        if caller.is_operator_of(&self.region) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(
                "only the region's operators look after its services",
            ))
        }
    }

    /// The durables `consumer` names (all when empty); a violation when it
    /// names none of this service's.
    fn consumers_named(&self, v: &mut Violations, consumer: &str) -> Vec<&DeadLetters> {
        v.line("consumer", consumer, false, 200);
        if consumer.is_empty() {
            return self.consumers.iter().collect();
        }
        let found: Vec<_> = self
            .consumers
            .iter()
            .filter(|c| c.durable == consumer)
            .collect();
        if found.is_empty() {
            let known: Vec<_> = self.consumers.iter().map(|c| c.durable.as_str()).collect();
            v.add(
                "consumer",
                format!(
                    "not a consumer of {}; it has {}",
                    self.service,
                    known.join(", ")
                ),
            );
        }
        found
    }

    async fn status(&self) -> Result<pb::ServiceStatus, ServiceError> {
        let (waiting, oldest) = if self.has_outbox {
            crate::outbox::waiting(&self.db).await?
        } else {
            (0, None)
        };
        let mut consumers = Vec::new();
        for c in &self.consumers {
            let parked = dead_letter::Entity::find()
                .filter(dead_letter::Column::Consumer.eq(c.durable.clone()))
                .filter(dead_letter::Column::ReplayedAtMs.is_null());
            consumers.push(pb::ConsumerStatus {
                durable: c.durable.clone(),
                pending: crate::metrics::metrics()
                    .pending_of(&c.durable)
                    .unwrap_or_default(),
                dead_letters: sea_orm::PaginatorTrait::count(parked, &self.db).await?,
            });
        }
        Ok(pb::ServiceStatus {
            service: self.service.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            region: self.region.clone(),
            ready: self.readiness.is_serving(),
            outbox_waiting: waiting,
            outbox_oldest_age_seconds: oldest
                .map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0),
            consumers,
            not_ready: self.readiness.failing(),
        })
    }

    async fn list(
        &self,
        req: pb::ListDeadLettersRequest,
    ) -> Result<pb::ListDeadLettersResponse, ServiceError> {
        let mut v = Violations::new();
        let durables: Vec<String> = self
            .consumers_named(&mut v, &req.consumer)
            .iter()
            .map(|c| c.durable.clone())
            .collect();
        if req.limit > MAX_LIST {
            v.add("limit", format!("at most {MAX_LIST}"));
        }
        v.into_result()?;
        let limit = if req.limit == 0 {
            DEFAULT_LIST
        } else {
            req.limit
        };
        let mut query =
            dead_letter::Entity::find().filter(dead_letter::Column::Consumer.is_in(durables));
        if !req.include_replayed {
            query = query.filter(dead_letter::Column::ReplayedAtMs.is_null());
        }
        let rows = query
            .order_by_desc(dead_letter::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await?;
        Ok(pb::ListDeadLettersResponse {
            dead_letters: rows.into_iter().map(to_wire).collect(),
        })
    }

    async fn replay(
        &self,
        req: pb::ReplayDeadLettersRequest,
    ) -> Result<pb::ReplayDeadLettersResponse, ServiceError> {
        let mut v = Violations::new();
        let consumers = self.consumers_named(&mut v, &req.consumer);
        match (req.all, req.ids.is_empty()) {
            (true, false) => v.add("ids", "give either ids or all, not both"),
            (false, true) => v.add("ids", "give the letters to replay, or all"),
            _ => {}
        }
        if req.ids.len() > MAX_IDS {
            v.add("ids", format!("at most {MAX_IDS} at once"));
        }
        for (i, id) in req.ids.iter().enumerate() {
            if *id <= 0 {
                v.add(format!("ids[{i}]"), "must be a dead letter's id (above 0)");
            }
        }
        v.into_result()?;
        let ids = (!req.all).then_some(req.ids.as_slice());
        let mut answer = pb::ReplayDeadLettersResponse::default();
        for c in consumers {
            let report = c.replay(ids).await?;
            answer.replayed += u32::try_from(report.replayed).unwrap_or(u32::MAX);
            answer.still_parked += u32::try_from(report.still_parked).unwrap_or(u32::MAX);
        }
        if let Some(ids) = ids {
            let found = answer.replayed.saturating_add(answer.still_parked);
            answer.not_found = u32::try_from(ids.len())
                .unwrap_or(u32::MAX)
                .saturating_sub(found);
        }
        tracing::info!(
            replayed = answer.replayed,
            still_parked = answer.still_parked,
            "dead letters replayed by an operator"
        );
        Ok(answer)
    }
}

fn to_wire(row: dead_letter::Model) -> pb::DeadLetter {
    let headers: std::collections::HashMap<String, String> =
        serde_json::from_str(&row.headers_json).unwrap_or_default();
    pb::DeadLetter {
        id: row.id,
        consumer: row.consumer,
        event_id: row.event_id,
        event_type: headers.get("ce-type").cloned().unwrap_or_default(),
        subject: row.subject,
        error: row.error,
        deliveries: row.deliveries,
        parked_at: Some(to_timestamp(row.created_at_ms)),
        replayed_at: row.replayed_at_ms.map(to_timestamp),
    }
}

#[tonic::async_trait]
impl OperationsService for OperationsApi {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ServiceStatus>, Status> {
        answer(async {
            self.operator(&request)?;
            self.status().await
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        answer(async {
            self.operator(&request)?;
            self.list(request.into_inner()).await
        })
        .await
    }

    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        answer(async {
            self.operator(&request)?;
            self.replay(request.into_inner()).await
        })
        .await
    }
}
