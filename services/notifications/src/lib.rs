//! The notifications service: the right message, once, to the right person,
//! on the channel they chose. Events from listings and membership become inbox
//! items (`events`, `routing`); the delivery log is worked off by the
//! dispatcher (`dispatch`) over email and webhooks (`channels`); digests are
//! gathered by `digests`; `links` serves the links in emails (one-click
//! unsubscribe, confirming an address).

pub mod channels;
pub mod config;
pub mod digests;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod links;
pub mod live;
pub mod metrics;
pub mod routing;
pub mod store;
pub mod workflow;

use selfhelp_proto::streams;
use std::sync::Arc;
use std::time::Duration;

use selfhelp_core::time::Clock;
use selfhelp_platform::Shutdown;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::privacy::ErasureRequests;
use selfhelp_platform::service::{self, Eventing};
use selfhelp_platform::supervise::Supervisor;
use selfhelp_platform::{auth::Authenticator, grpc as platform_grpc};
use selfhelp_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use tokio::net::TcpListener;

pub use config::Config;

/// Full gRPC name; also the health readiness entry.
pub const SERVICE_NAME: &str = "selfhelp.notifications.v1.NotificationsService";

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
    let links_listener = if config.http.listen.is_empty() {
        None
    } else {
        Some(
            TcpListener::bind(&config.http.listen)
                .await
                .map_err(|e| anyhow::anyhow!("http.listen {}: {e}", config.http.listen))?,
        )
    };
    run_with_listeners(config, clock, listener, links_listener, shutdown).await
}

/// [`run_with_clock`] serving the email links' pages on a listener the caller
/// bound (`None`: no page), so that it may be on a port the system picked;
/// `http.listen` is not read, and `http.public_url` must lead to the listener.
pub async fn run_with_listeners(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    links_listener: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let common = &config.common;
    let dbs = service::open_databases::<store::Migrator>(&common.database, &shutdown).await?;
    let db = dbs.write.clone();
    let auth = Authenticator::from_config(&common.auth).await?;

    let outbox = Outbox::new(&common.region, "notifications");
    let timezone = common.tz()?;

    // Channels: a bad template, address or TLS mode stops the start-up here.
    let templates = Arc::new(channels::email::Templates::load(
        config.email.templates_dir.as_deref(),
        &config.http.web_url,
    )?);
    let mailer = Arc::new(channels::email::Mailer::from_config(&config.email)?);
    let webhooks = channels::webhook::WebhookSender::new(&config.webhooks)?;
    let links = links::LinkKey::load(&db, &config.http.public_url).await?;
    let names = selfhelp_platform::privacy::Pseudonyms::load(&db).await?;
    let mut parts = platform_grpc::health(SERVICE_NAME).await;
    let workers = Supervisor::new(
        parts.readiness.clone(),
        shutdown.clone(),
        common.workers.clone(),
    );
    if let Some(http) = links_listener {
        tracing::info!(addr = %http.local_addr()?, "email links (unsubscribe, confirm an address) served");
        let workflow = workflow::Workflow {
            db: db.clone(),
            clock: clock.clone(),
        };
        let router = links::router(workflow, links.clone(), names.clone(), &config.http.web_url);
        // axum's server only returns at shutdown (it rides out accept errors),
        // so it is owned and joined but has nothing to restart.
        workers.spawn_once(links::serve(http, router, shutdown.clone()));
    } else {
        tracing::warn!(
            "http.listen is empty: the links in emails lead nowhere here, so new email addresses cannot be confirmed unless another replica serves them"
        );
    }
    let dispatcher = Arc::new(dispatch::Dispatcher {
        db: db.clone(),
        mailer,
        templates,
        webhooks,
        links: links.clone(),
        config: config.delivery.clone(),
        region: common.region.clone(),
        timezone,
        names: names.clone(),
        clock: clock.clone(),
    });
    workers.spawn("deliveries", {
        let stop = shutdown.clone();
        let interval = Duration::from_millis(config.delivery.interval_ms);
        move || {
            let dispatcher = dispatcher.clone();
            service::repeat("deliveries", interval, stop.clone(), move || {
                let dispatcher = dispatcher.clone();
                async move { dispatcher.round().await }
            })
        }
    });
    let digests = Arc::new(digests::Digests::new(
        &config.digests,
        db.clone(),
        timezone,
        names.clone(),
        clock.clone(),
    )?);
    workers.spawn("digests", {
        let (digests, stop) = (digests.clone(), shutdown.clone());
        let interval = Duration::from_secs(config.digests.check_interval_secs);
        move || {
            let digests = digests.clone();
            service::repeat("digests", interval, stop.clone(), move || {
                let digests = digests.clone();
                async move { digests.round().await }
            })
        }
    });
    let retention_days = config.delivery.retention_days;
    workers.spawn("delivery log retention", {
        let stop = shutdown.clone();
        move || {
            let digests = digests.clone();
            service::repeat(
                "delivery log retention",
                Duration::from_secs(3_600),
                stop.clone(),
                move || {
                    let digests = digests.clone();
                    async move { digests.prune(retention_days).await }
                },
            )
        }
    });
    // Live inbox streams: one look a few times a second for everyone watching.
    let live = Arc::new(live::LiveInbox::default());
    workers.spawn("live inbox wake-ups", {
        let (live, db, stop) = (live.clone(), dbs.read.clone(), shutdown.clone());
        move || live.clone().run(db.clone(), stop.clone())
    });

    service::sample_metrics(&workers, common, "notifications", dbs.clone(), {
        let (db, region, clock) = (dbs.read.clone(), common.region.clone(), clock.clone());
        move || {
            let (db, region, now) = (db.clone(), region.clone(), clock.now_ms());
            async move { metrics::metrics().sample(&db, &region, now).await }
        }
    });
    let api = grpc::NotificationsApi::new(
        dbs,
        grpc::Settings {
            region: common.region.clone(),
            webhooks: config.webhooks.clone(),
            watch: config.watch.clone(),
            postcodes: std::sync::Arc::new(config.postcodes()?),
            clock: clock.clone(),
            names: names.clone(),
            timezone,
            contact: config.contact.clone(),
            links: links.clone(),
        },
        shutdown.clone(),
        live.clone(),
    );
    parts.add_service(
        NotificationsServiceServer::new(api)
            .max_decoding_message_size(common.grpc.max_message_bytes),
    );
    Eventing {
        service: "notifications",
        common: common.clone(),
        db,
        outbox: Some(outbox.clone()),
        // Only erasure confirmations.
        produces: vec![streams::PRIVACY],
        consumes: vec![
            (
                streams::LISTINGS,
                Arc::new(events::ListingsEvents {
                    clock: clock.clone(),
                    timezone,
                    names: names.clone(),
                    check_links: links::CheckLinks::new(links.clone(), &config.http.web_url),
                }),
            ),
            (
                streams::MEMBERSHIP,
                Arc::new(events::MembershipEvents {
                    clock: clock.clone(),
                    timezone,
                    names: names.clone(),
                }),
            ),
            (
                streams::PRIVACY,
                Arc::new(ErasureRequests {
                    service: "notifications",
                    outbox,
                    eraser: Arc::new(events::NotificationsEraser { names }),
                }),
            ),
        ],
        partner_consumers: Vec::new(),
    }
    .spawn(&mut parts, &workers);
    service::serve_until_shutdown(common, auth, listener, parts, workers, shutdown).await
}
