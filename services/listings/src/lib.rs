//! The listings service: the directory of self-help groups of one region.
//!
//! `grpc.rs` maps the wire to the domain, `domain/` holds the rules (no I/O),
//! `store/` the tables and queries, `events.rs` what the service emits.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod freshness;
pub mod grpc;
pub mod metrics;
pub mod oruk;
pub mod privacy;
pub mod search;
pub mod store;
pub mod workflow;

use selfhelp_core::time::Clock;
use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::service::{self, Eventing};
use selfhelp_platform::supervise::Supervisor;
use selfhelp_platform::{auth::Authenticator, grpc as platform_grpc};
use selfhelp_proto::listings::served::listings_service_server::ListingsServiceServer;
use selfhelp_proto::streams;
use tokio::net::TcpListener;

pub use config::Config;

/// Full gRPC name; also the health readiness entry.
pub const SERVICE_NAME: &str = "selfhelp.listings.v1.ListingsService";

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
    let tz = config.common.tz()?;
    let dbs = service::open_databases::<store::Migrator>(&common.database, &shutdown).await?;
    let db = dbs.write.clone();
    let seeded =
        store::topic::seed_defaults(&db, &common.region, selfhelp_core::time::now_ms()).await?;
    if seeded > 0 {
        tracing::info!(topics = seeded, "seeded the default topic taxonomy");
    }
    let auth = Authenticator::from_config(&common.auth).await?;
    let postcodes = std::sync::Arc::new(config.postcodes()?);
    let indexer = search::maintain::Indexer {
        db: db.clone(),
        region: common.region.clone(),
        tz,
        index: Default::default(),
        postcodes: postcodes.clone(),
        cards: Default::default(),
        render: grpc::public_card_render(tz),
        refreshes: Default::default(),
        out_of_search_after_days: config.freshness.out_of_search_after_days(),
        clock: clock.clone(),
    };
    let building = std::time::Instant::now();
    let indexed = indexer.rebuild().await?;
    tracing::info!(
        groups = indexed,
        postcodes = postcodes.len(),
        took_ms = building.elapsed().as_millis() as u64,
        "search index built"
    );
    let mut parts = platform_grpc::health(SERVICE_NAME).await;
    let workers = Supervisor::new(
        parts.readiness.clone(),
        shutdown.clone(),
        common.workers.clone(),
    );
    indexer.clone().spawn(
        common.nats.clone(),
        std::time::Duration::from_secs(config.search.rebuild_interval_secs),
        &workers,
    );
    let outbox = Outbox::new(&common.region, "listings");
    let event_log = events::EventLog {
        outbox: outbox.clone(),
        postcodes: postcodes.clone(),
        render: grpc::public_card_render(tz),
    };

    let workflow = workflow::Workflow {
        db: db.clone(),
        outbox: event_log.clone(),
        search: indexer.clone(),
        clock: clock.clone(),
    };
    service::sample_metrics(&workers, common, "listings", dbs.clone(), {
        let (db, region, freshness) = (
            dbs.read.clone(),
            common.region.clone(),
            config.freshness.clone(),
        );
        let clock = clock.clone();
        move || {
            let (db, region, freshness) = (db.clone(), region.clone(), freshness.clone());
            let now = clock.now_ms();
            async move {
                metrics::metrics()
                    .sample(&db, &region, &freshness, now)
                    .await
            }
        }
    });
    let api = grpc::ListingsApi::new(
        dbs,
        workflow.clone(),
        indexer,
        postcodes,
        grpc::Settings {
            region: common.region.clone(),
            tz,
            freshness: config.freshness.clone(),
            significant_edits: config.edits.significant,
            open_reports_per_region: config.reports.open_per_region,
            clock: clock.clone(),
        },
    );
    parts.add_service(
        ListingsServiceServer::new(api).max_decoding_message_size(common.grpc.max_message_bytes),
    );
    workers.spawn("review reminders", {
        let (region, freshness) = (common.region.clone(), config.freshness.clone());
        let stop = shutdown.clone();
        move || {
            freshness::run(
                workflow.clone(),
                region.clone(),
                freshness.clone(),
                stop.clone(),
            )
        }
    });
    Eventing {
        service: "listings",
        common: common.clone(),
        db,
        outbox: Some(outbox.clone()),
        produces: vec![streams::LISTINGS, streams::PRIVACY, streams::PUBLIC],
        consumes: vec![
            (
                streams::MEMBERSHIP,
                std::sync::Arc::new(events::MembershipRoles {
                    outbox: event_log.clone(),
                    region: common.region.clone(),
                }),
            ),
            (
                streams::PRIVACY,
                std::sync::Arc::new(selfhelp_platform::privacy::ErasureRequests {
                    service: "listings",
                    outbox: outbox.clone(),
                    eraser: std::sync::Arc::new(privacy::ListingsEraser {
                        outbox: event_log.clone(),
                    }),
                }),
            ),
        ],
        partner_consumers: config
            .partners
            .consumers
            .iter()
            .map(|name| (streams::PUBLIC, name.clone()))
            .collect(),
    }
    .spawn(&mut parts, &workers);
    service::serve_until_shutdown(common, auth, listener, parts, workers, shutdown).await
}
