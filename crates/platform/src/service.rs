//! The parts of a service's life that are the same everywhere: the thin binary's
//! start-up, and bringing up eventing (NATS, streams, outbox relay, consumers) in
//! the background while readiness reports NOT_SERVING until it is all there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Shutdown;
use crate::bus;
use crate::config::CommonConfig;
use crate::consumer::ConsumerRunner;
use crate::grpc::Readiness;
use crate::inbox::EventHandler;
use crate::outbox::{Outbox, Relay};
use crate::supervise::Supervisor;
use selfhelp_proto::streams::StreamSpec;

/// Command line of every service binary.
#[derive(Debug, clap::Parser)]
pub struct ServiceArgs {
    /// TOML configuration file; `SELFHELP_*` environment variables override it.
    #[arg(long, env = "SELFHELP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Apply pending database migrations, then exit: the deployment step that
    /// goes with `database.migrate_on_start = false` (e.g. a Kubernetes Job).
    #[arg(long)]
    pub migrate: bool,
}

/// Implemented by each service's configuration so the shared `main` can run it.
pub trait ServiceConfig:
    Serialize + DeserializeOwned + Default + Send + crate::config::Checked + 'static
{
    /// The service's database migrations (platform tables first).
    type Migrator: sea_orm_migration::MigratorTrait;
    fn common(&self) -> &CommonConfig;
}

/// The body of every service binary: parse arguments, load configuration, start
/// logging, bind the listener and run until SIGINT/SIGTERM.
pub async fn main<C, F, Fut>(run: F) -> std::process::ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, tokio::net::TcpListener, Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use clap::Parser;
    let args = ServiceArgs::parse();
    let config: C = match crate::config::load_checked(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    crate::telemetry::init(&config.common().log);
    // Spans are named after the binary (`selfhelp-listings`, …).
    let service_name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "selfhelp".into());
    if let Err(e) = crate::otel::init(&config.common().traces, &service_name) {
        tracing::error!(error = %format!("{e:#}"), "cannot send traces");
        return std::process::ExitCode::from(2);
    }
    if args.migrate {
        return migrate_and_exit::<C>(&config.common().database).await;
    }
    let listen = config.common().grpc.listen.clone();
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(path) = &config.common().grpc.write_address_to
        && let Err(e) = write_address_file(path, &listener)
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the address file");
        return std::process::ExitCode::FAILURE;
    }
    let shutdown = Shutdown::from_future(crate::shutdown::os_signal());
    let outcome = run(config, listener, shutdown).await;
    // The last spans go out before the process ends.
    let _ = tokio::task::spawn_blocking(crate::otel::shutdown).await;
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "service stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes the bound address to `path` whole or not at all (a reader polling
/// for the file never sees half an address).
fn write_address_file(
    path: &std::path::Path,
    listener: &tokio::net::TcpListener,
) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, listener.local_addr()?.to_string())?;
    std::fs::rename(&partial, path)
}

/// `--migrate`: one run of the service's migrations, under the same lock as a
/// start-up migration, so it is safe beside replicas that are starting.
async fn migrate_and_exit<C: ServiceConfig>(
    cfg: &crate::config::DatabaseConfig,
) -> std::process::ExitCode {
    let result = async {
        let url = cfg.connect_url()?;
        let db = crate::db::connect(&url, 1).await?;
        let applied = crate::schema::migrate::<C::Migrator>(&url, &db).await?;
        db.close().await.ok();
        anyhow::Ok(applied)
    }
    .await;
    match result {
        Ok(applied) => {
            tracing::info!(applied, "database schema is current");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "migrations failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What a service publishes and consumes.
pub struct Eventing {
    pub service: &'static str,
    pub common: CommonConfig,
    pub db: DatabaseConnection,
    /// The service's outbox, relayed to NATS when set.
    pub outbox: Option<Outbox>,
    /// Streams this service writes to (created if missing).
    pub produces: Vec<StreamSpec>,
    /// Streams this service reads, each with the handler for its events.
    pub consumes: Vec<(StreamSpec, Arc<dyn EventHandler>)>,
    /// Durable pull consumers made for partners on a stream this service
    /// writes (partners may not make their own).
    pub partner_consumers: Vec<(StreamSpec, String)>,
}

impl Eventing {
    /// Adds the operators' service (status, dead letters) to `parts`, then
    /// connects to NATS and creates streams (retrying until shutdown), then
    /// starts the relay, the consumers and a watch on the connection as
    /// supervised workers; readiness turns on once they run and afterwards
    /// follows the NATS connection.
    pub fn spawn(self, parts: &mut crate::grpc::ServerParts, supervisor: &Supervisor) {
        let readiness = parts.readiness.clone();
        parts.add_service(
            selfhelp_proto::operations::v1::operations_service_server::OperationsServiceServer::new(
                self.operations(readiness.clone()),
            )
            .max_decoding_message_size(self.common.grpc.max_message_bytes),
        );
        self.start(readiness, supervisor);
    }

    /// [`spawn`](Self::spawn) without the operators' service, for a process
    /// that serves no gRPC (the gateway): connects, creates streams, starts
    /// the relay and the consumers; `readiness` follows the NATS connection.
    pub fn start(self, readiness: Readiness, supervisor: &Supervisor) {
        let workers = supervisor.clone();
        supervisor.spawn_once(async move {
            let shutdown = workers.shutdown().clone();
            let client = loop {
                match bus::connect(&self.common.nats, self.service).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(error = %e, url = %bus::redact(&self.common.nats.url), "NATS not reachable; retrying");
                        tokio::select! {
                            _ = shutdown.wait() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            let js = bus::jetstream(client.clone(), &self.common.nats);
            let limits = bus::StreamLimits::from_config(&self.common.nats);
            for spec in &self.produces {
                loop {
                    match bus::ensure_written_stream(&js, *spec, limits).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(stream = spec.name, error = %e, "stream not ready; retrying");
                            tokio::select! {
                                _ = shutdown.wait() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
            for (spec, name) in &self.partner_consumers {
                loop {
                    match bus::ensure_partner_consumer(&js, *spec, name, &self.common.region).await
                    {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(stream = spec.name, consumer = %name, error = %e, "partner consumer not ready; retrying");
                            tokio::select! {
                                _ = shutdown.wait() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
            if let Some(outbox) = &self.outbox {
                let relay = Relay::new(
                    self.db.clone(),
                    js.clone(),
                    self.common.outbox.clone(),
                    outbox,
                )
                .with_streams(self.produces.clone(), limits);
                let stop = shutdown.clone();
                workers.spawn("outbox relay", move || relay.clone().run(stop.clone()));
            }
            for (stream, handler) in self.consumes {
                let runner = ConsumerRunner {
                    durable: ConsumerRunner::durable_name(
                        self.service,
                        &self.common.region,
                        stream,
                    ),
                    stream,
                    filter: stream.region_filter(&self.common.region),
                    stream_limits: limits,
                    cfg: self.common.consumer.clone(),
                    db: self.db.clone(),
                    js: js.clone(),
                    handler,
                };
                // Streams we read exist before we report ready.
                loop {
                    match runner.ensure().await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(durable = %runner.durable, error = %e, "consumer not ready; retrying");
                            tokio::select! {
                                _ = shutdown.wait() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
                crate::metrics::metrics().consumer_started(&runner.durable);
                let stop = shutdown.clone();
                workers.spawn(format!("consumer {}", runner.durable), move || {
                    runner.clone().run(stop.clone())
                });
            }
            tracing::info!(service = self.service, "eventing ready");
            let stop = shutdown.clone();
            let service = self.service;
            workers.spawn("NATS connection watch", move || {
                follow_connection(client.clone(), readiness.clone(), service, stop.clone())
            });
        });
    }
}

impl Eventing {
    fn operations(&self, readiness: Readiness) -> crate::operations::OperationsApi {
        crate::operations::OperationsApi {
            service: self.service,
            region: self.common.region.clone(),
            db: self.db.clone(),
            readiness,
            has_outbox: self.outbox.is_some(),
            consumers: self
                .consumes
                .iter()
                .map(|(stream, handler)| crate::consumer::DeadLetters {
                    durable: ConsumerRunner::durable_name(
                        self.service,
                        &self.common.region,
                        *stream,
                    ),
                    stream: *stream,
                    db: self.db.clone(),
                    handler: handler.clone(),
                })
                .collect(),
        }
    }
}

/// Keeps readiness in step with the NATS connection.
async fn follow_connection(
    client: async_nats::Client,
    readiness: Readiness,
    service: &'static str,
    shutdown: Shutdown,
) {
    let mut ready = None;
    loop {
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        crate::metrics::metrics().nats_connected(service, connected);
        if ready != Some(connected) {
            readiness.set(connected).await;
            ready = Some(connected);
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Connects to a service's database and brings its schema up to date: migrates
/// (under a lock, so replicas may start together) when
/// `database.migrate_on_start`, otherwise waits until a `--migrate` step has.
pub async fn open_database<M: sea_orm_migration::MigratorTrait>(
    cfg: &crate::config::DatabaseConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<DatabaseConnection> {
    let url = cfg.connect_url()?;
    let db = crate::db::connect(&url, cfg.max_connections).await?;
    if cfg.migrate_on_start {
        let applied = crate::schema::migrate::<M>(&url, &db).await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
    } else {
        crate::schema::wait_until_current::<M>(&db, Duration::from_secs(2), shutdown).await?;
    }
    Ok(db)
}

/// [`open_database`], plus the read connections beside it (after migrating, so
/// readers find the schema in place).
pub async fn open_databases<M: sea_orm_migration::MigratorTrait>(
    cfg: &crate::config::DatabaseConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<crate::db::Databases> {
    let write = open_database::<M>(cfg, shutdown).await?;
    let url = cfg.connect_url()?;
    let read = crate::db::connect_readers(&url, &write, cfg.sqlite_readers).await?;
    Ok(crate::db::Databases {
        write,
        read,
        read_apart: crate::db::readers_apart(&url),
    })
}

/// Serves the service's gRPC API until `shutdown`, then waits for its background
/// workers (`workers`) within the shutdown grace period.
pub async fn serve_until_shutdown(
    common: &CommonConfig,
    auth: Arc<crate::auth::Authenticator>,
    listener: tokio::net::TcpListener,
    parts: crate::grpc::ServerParts,
    workers: Supervisor,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(
        service = parts.readiness.service_name(),
        addr = %listener.local_addr()?,
        region = %common.region,
        "serving"
    );
    if !common.metrics.listen.is_empty() {
        let metrics = tokio::net::TcpListener::bind(&common.metrics.listen)
            .await
            .map_err(|e| anyhow::anyhow!("metrics.listen {}: {e}", common.metrics.listen))?;
        if let Some(path) = &common.metrics.write_address_to {
            write_address_file(path, &metrics)?;
        }
        tracing::info!(addr = %metrics.local_addr()?, "metrics served at /metrics");
        workers.spawn_once(crate::metrics::serve(metrics, shutdown.clone()));
    }
    let served = crate::grpc::serve(&common.grpc, auth, listener, parts, shutdown).await;
    if !workers.join(common.grpc.shutdown_grace()).await {
        tracing::warn!("background workers did not stop within the shutdown grace period");
    }
    served
}

/// Samples `service`'s database pools, then its own gauges with `more`, every
/// `metrics.sample_interval_ms` until shutdown, as a supervised worker.
pub fn sample_metrics<F, Fut>(
    workers: &Supervisor,
    common: &CommonConfig,
    service: &'static str,
    dbs: crate::db::Databases,
    more: F,
) where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), sea_orm::DbErr>> + Send + 'static,
{
    let (stop, interval) = (workers.shutdown().clone(), common.metrics.sample_interval());
    let region = common.region.clone();
    workers.spawn("metrics sampling", move || {
        let (dbs, more, region) = (dbs.clone(), more.clone(), region.clone());
        repeat("metrics sampling", interval, stop.clone(), move || {
            let (dbs, more, region) = (dbs.clone(), more.clone(), region.clone());
            async move {
                let metrics = crate::metrics::metrics();
                metrics.sample_pools(service, &dbs).await;
                metrics
                    .sample_dead_letters(service, &region, &dbs.read)
                    .await?;
                more().await.map(|()| 0)
            }
        })
    });
}

/// Runs `round` now and then every `interval` until `shutdown`: housekeeping
/// such as reminders. A round returns how much it did (logged when not 0); a
/// failed round is logged and tried again next time.
pub async fn repeat<F, Fut, E>(
    what: &'static str,
    interval: Duration,
    shutdown: Shutdown,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
    E: std::fmt::Display,
{
    loop {
        match round().await {
            Ok(0) => {}
            Ok(done) => tracing::info!(task = what, done, "periodic round"),
            Err(e) => tracing::warn!(task = what, error = %e, "periodic round failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
