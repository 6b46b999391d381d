//! The gateway's part in erasure: when membership asks every service to
//! forget a person (whether they erased themselves here or through another
//! client), the gateway forgets their sign-in address, sessions, sign-in
//! links and calendar address, and confirms it as `gateway` — through its
//! outbox, in the same transaction, like every service.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::privacy::{Eraser, ErasureRequests};
use selfhelp_platform::service::Eventing;
use selfhelp_platform::supervise::Supervisor;
use selfhelp_proto::streams;

use crate::config::Config;

/// The name the gateway confirms erasures under (`privacy.expected_services`).
pub const SERVICE: &str = "gateway";

struct GatewayEraser;

#[async_trait::async_trait]
impl Eraser for GatewayEraser {
    async fn erase(&self, txn: &DatabaseTransaction, person_id: &str) -> Result<(), DbErr> {
        crate::store::forget_person(txn, person_id).await
    }
}

/// Starts the erasure consumer and the outbox relay (retrying NATS until it
/// answers) as supervised workers, returned to be joined at the stop; none
/// when `nats.url` is empty. The website does not wait for NATS: pages serve
/// whether or not it is there.
pub async fn start(
    config: &Config,
    db: DatabaseConnection,
    shutdown: &Shutdown,
) -> Option<Supervisor> {
    if config.nats.url.trim().is_empty() {
        tracing::warn!(
            "nats.url is empty: erasures asked for outside this website will not reach it"
        );
        return None;
    }
    let common = config.eventing();
    let readiness = selfhelp_platform::grpc::health("selfhelp.gateway")
        .await
        .readiness;
    let workers = Supervisor::new(readiness.clone(), shutdown.clone(), common.workers.clone());
    let outbox = Outbox::new(&common.region, SERVICE);
    Eventing {
        service: SERVICE,
        common,
        db,
        outbox: Some(outbox.clone()),
        produces: vec![streams::PRIVACY],
        consumes: vec![(
            streams::PRIVACY,
            Arc::new(ErasureRequests {
                service: SERVICE,
                outbox,
                eraser: Arc::new(GatewayEraser),
            }),
        )],
        partner_consumers: Vec::new(),
    }
    .start(readiness, &workers);
    Some(workers)
}
