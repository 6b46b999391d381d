//! The membership service: people and the groups they belong to.
//!
//! Membership of a health-related group is special-category personal data: every
//! RPC needs a token, a person sees only their own memberships, and events about
//! members travel on restricted subjects.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod handover;
pub mod privacy;
pub mod reminders;
pub mod store;
pub mod workflow;

use selfhelp_proto::streams;
use std::sync::Arc;

use selfhelp_core::time::Clock;
use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::service::{self, Eventing};
use selfhelp_platform::supervise::Supervisor;
use selfhelp_platform::{auth::Authenticator, grpc as platform_grpc};
use selfhelp_proto::membership::v1::membership_service_server::MembershipServiceServer;
use tokio::net::TcpListener;

pub use config::Config;

/// Full gRPC name; also the health readiness entry.
pub const SERVICE_NAME: &str = "selfhelp.membership.v1.MembershipService";

/// Runs the service on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    run_with_clock(config, Clock::system(), listener, shutdown).await
}

/// [`run`] on `clock`: tests move it forward instead of waiting.
pub async fn run_with_clock(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let common = &config.common;
    let dbs = service::open_databases::<store::Migrator>(&common.database, &shutdown).await?;
    let db = dbs.write.clone();
    let auth = Authenticator::from_config(&common.auth).await?;
    let outbox = Outbox::new(&common.region, "membership");

    let mut parts = platform_grpc::health(SERVICE_NAME).await;
    let names = selfhelp_platform::privacy::Pseudonyms::load(&db).await?;
    let pools = dbs.clone();
    let workers = Supervisor::new(
        parts.readiness.clone(),
        shutdown.clone(),
        common.workers.clone(),
    );
    let api =
        grpc::MembershipApi::new(dbs, outbox.clone(), &config, names, clock.clone(), &workers)?;
    parts.add_service(
        MembershipServiceServer::new(api).max_decoding_message_size(common.grpc.max_message_bytes),
    );
    service::sample_metrics(&workers, common, "membership", pools, || async { Ok(()) });
    workers.spawn("rota reminders", {
        let (db, outbox) = (db.clone(), outbox.clone());
        let (rota, stop) = (config.rota.clone(), shutdown.clone());
        let clock = clock.clone();
        move || {
            reminders::run(
                db.clone(),
                outbox.clone(),
                rota.clone(),
                clock.clone(),
                stop.clone(),
            )
        }
    });
    Eventing {
        service: "membership",
        common: common.clone(),
        db,
        outbox: Some(outbox.clone()),
        produces: vec![streams::MEMBERSHIP, streams::PRIVACY],
        consumes: vec![
            (
                streams::LISTINGS,
                Arc::new(events::ListingsGroups {
                    outbox: outbox.clone(),
                    clock: clock.clone(),
                    timezone: common.tz()?,
                }),
            ),
            (
                streams::PRIVACY,
                Arc::new(privacy::PrivacyEvents::new(
                    outbox.clone(),
                    config.privacy.expected_services.clone(),
                )),
            ),
        ],
        partner_consumers: Vec::new(),
    }
    .spawn(&mut parts, &workers);
    service::serve_until_shutdown(common, auth, listener, parts, workers, shutdown).await
}
