//! The notifications service: the right message, once, to the right person.
//! This version keeps an in-app inbox fed by membership events.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod store;

use std::sync::Arc;

use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::privacy::ErasureRequests;
use selfhelp_platform::service::{self, Eventing};
use selfhelp_platform::{auth::Authenticator, bus, grpc as platform_grpc};
use selfhelp_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tokio::net::TcpListener;

pub use config::Config;

/// Full gRPC name; also the health readiness entry.
pub const SERVICE_NAME: &str = "selfhelp.notifications.v1.NotificationsService";

/// Runs the service on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let common = &config.common;
    let db = service::open_database::<store::Migrator>(&common.database).await?;
    let auth = Authenticator::from_config(&common.auth).await?;

    let outbox = Outbox::new(&common.region, "notifications");

    let mut parts = platform_grpc::health(SERVICE_NAME).await;
    let api = grpc::NotificationsApi::new(db.clone(), common.region.clone(), shutdown.clone());
    parts.add_service(
        NotificationsServiceServer::new(api)
            .max_decoding_message_size(common.grpc.max_message_bytes),
    );
    let background = Eventing {
        service: "notifications",
        common: common.clone(),
        db,
        outbox: Some(outbox.clone()),
        // Only erasure confirmations.
        produces: vec![bus::PRIVACY],
        consumes: vec![
            (
                bus::LISTINGS,
                Arc::new(events::ListingsEvents {
                    timezone: common.tz()?,
                }),
            ),
            (bus::MEMBERSHIP, Arc::new(events::MembershipEvents)),
            (
                bus::PRIVACY,
                Arc::new(ErasureRequests {
                    service: "notifications",
                    outbox,
                    eraser: Arc::new(events::NotificationsEraser),
                }),
            ),
        ],
    }
    .spawn(parts.readiness.clone(), shutdown.clone());
    service::serve_until_shutdown(common, auth, listener, parts, background, shutdown).await
}
