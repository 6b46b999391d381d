//! The notifications service: the right message, once, to the right person.
//! This version keeps an in-app inbox fed by membership events.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use selfhelp_platform::Shutdown;
use selfhelp_platform::group_view::GroupViewUpdater;
use selfhelp_platform::service::Eventing;
use selfhelp_platform::{auth::Authenticator, bus, db, grpc as platform_grpc};
use selfhelp_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tokio::net::TcpListener;

pub use config::Config;

/// Full gRPC name; also the health readiness entry.
pub const SERVICE_NAME: &str = "selfhelp.notifications.v1.NotificationsService";

/// Runs the service on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let common = &config.common;
    let db = db::connect(&common.database.url, common.database.max_connections).await?;
    store::Migrator::up(&db, None).await?;
    let auth = Authenticator::from_config(&common.auth).await?;

    let mut parts = platform_grpc::health(SERVICE_NAME).await;
    let api = grpc::NotificationsApi::new(db.clone(), common.region.clone());
    parts.add_service(
        NotificationsServiceServer::new(api)
            .max_decoding_message_size(common.grpc.max_message_bytes),
    );
    let background = Eventing {
        service: "notifications",
        common: common.clone(),
        db,
        outbox: None,
        produces: vec![],
        consumes: vec![
            (bus::LISTINGS, Arc::new(GroupViewUpdater)),
            (bus::MEMBERSHIP, Arc::new(events::MembershipEvents)),
        ],
    }
    .spawn(parts.readiness.clone(), shutdown.clone());
    tracing::info!(addr = %listener.local_addr()?, region = %common.region, "notifications serving");
    let served = platform_grpc::serve(&common.grpc, auth, listener, parts, shutdown).await;
    // Background work stops on the same signal; wait for it within the grace period.
    if tokio::time::timeout(common.grpc.shutdown_grace(), background)
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within the shutdown grace period");
    }
    served
}
