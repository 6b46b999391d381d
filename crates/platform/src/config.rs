//! Configuration: defaults, then an optional TOML file, then `SELFHELP_*`
//! environment variables (`__` nests: `SELFHELP_DATABASE__URL`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use selfhelp_core::validation::Violations;

/// Settings every service has. Services embed it with `#[serde(flatten)]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// The region this deployment serves, e.g. `notts`; part of every event subject.
    pub region: String,
    /// The region's IANA time zone: meeting times are local to it.
    pub timezone: String,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub grpc: GrpcConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub outbox: OutboxConfig,
    pub consumer: ConsumerConfig,
    pub workers: WorkersConfig,
    pub metrics: MetricsConfig,
    pub traces: TracesConfig,
}

/// OpenTelemetry traces: a span for every RPC, every event published and
/// every event handled, sent over OTLP/gRPC.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TracesConfig {
    /// The OTLP/gRPC endpoint to send spans to, e.g. `http://otel-collector:4317`;
    /// empty: no spans are made or sent.
    pub otlp_endpoint: String,
}

/// Prometheus metrics over HTTP (`GET /metrics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Address to serve them on, e.g. `0.0.0.0:9151`; empty: not served.
    pub listen: String,
    /// Like `grpc.write_address_to`, for the metrics port.
    pub write_address_to: Option<PathBuf>,
    /// How often the gauges read from the database (pools, backlogs, counts
    /// by status) are sampled.
    pub sample_interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            write_address_to: None,
            sample_interval_ms: 15_000,
        }
    }
}

impl MetricsConfig {
    pub fn sample_interval(&self) -> Duration {
        Duration::from_millis(self.sample_interval_ms)
    }
}

impl CommonConfig {
    /// Adds what is wrong with the shared settings to `v`, named by key (so a
    /// bad value stops the start-up with its name instead of being clamped
    /// somewhere it is used).
    pub fn check(&self, v: &mut Violations) {
        if self.region.trim().is_empty() {
            v.add("region", "must not be empty");
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            v.add(
                "timezone",
                "must be an IANA time zone such as Europe/London",
            );
        }
        at_least(
            v,
            "database.max_connections",
            self.database.max_connections.into(),
            1,
        );
        at_least(
            v,
            "metrics.sample_interval_ms",
            self.metrics.sample_interval_ms,
            100,
        );
        at_least(
            v,
            "database.sqlite_readers",
            self.database.sqlite_readers.into(),
            1,
        );
        at_least(
            v,
            "nats.stream_replicas",
            self.nats.stream_replicas as u64,
            1,
        );
        if self.nats.stream_replicas > 5 {
            v.add("nats.stream_replicas", "must be at most 5");
        }
        let prefix = &self.nats.jetstream_api_prefix;
        if prefix.is_empty()
            || prefix.split('.').any(str::is_empty)
            || prefix.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        {
            v.add(
                "nats.jetstream_api_prefix",
                "must be a subject without wildcards, such as $JS.API or JS.API",
            );
        }
        self.nats.tls.check("nats.tls", v);
        self.grpc.tls.check("grpc.tls", v);
        at_least(
            v,
            "grpc.max_concurrent_streams",
            self.grpc.max_concurrent_streams.into(),
            1,
        );
        at_least(
            v,
            "grpc.concurrency_limit",
            self.grpc.concurrency_limit as u64,
            1,
        );
        at_least(
            v,
            "grpc.request_timeout_ms",
            self.grpc.request_timeout_ms,
            1,
        );
        at_least(
            v,
            "grpc.max_message_bytes",
            self.grpc.max_message_bytes as u64,
            1_024,
        );
        at_least(
            v,
            "outbox.poll_interval_ms",
            self.outbox.poll_interval_ms,
            1,
        );
        at_least(v, "outbox.batch_size", self.outbox.batch_size, 1);
        at_least(v, "consumer.pullers", self.consumer.pullers as u64, 1);
        at_least(v, "consumer.batch", self.consumer.batch as u64, 1);
        at_least(v, "consumer.lanes", self.consumer.lanes as u64, 1);
        at_least(v, "consumer.ack_wait_ms", self.consumer.ack_wait_ms, 1);
        at_least(v, "workers.restart_max_ms", self.workers.restart_max_ms, 1);
    }

    /// The configured time zone, or a message naming the setting.
    pub fn tz(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.timezone.parse().map_err(|_| {
            anyhow::anyhow!(
                "timezone {:?} is not an IANA time zone such as Europe/London",
                self.timezone
            )
        })
    }
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            timezone: "Europe/London".into(),
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            grpc: GrpcConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            outbox: OutboxConfig::default(),
            consumer: ConsumerConfig::default(),
            workers: WorkersConfig::default(),
            metrics: MetricsConfig::default(),
            traces: TracesConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db?mode=rwc` (embedded default) or `postgres://…`.
    pub url: String,
    /// PostgreSQL: the password, when it is not in `url` (e.g. from a file,
    /// `SELFHELP_DATABASE__PASSWORD_FILE`); it takes the place of one there.
    pub password: Option<String>,
    /// Pool size for PostgreSQL; SQLite always uses one connection (one writer).
    pub max_connections: u32,
    /// SQLite only: read-only connections beside the writer for plain reads.
    pub sqlite_readers: u32,
    /// Apply pending migrations at start (safe with replicas starting together).
    /// `false`: wait until a separate `--migrate` run has applied them, for
    /// deployments that migrate in a step of their own with a privileged user.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            password: None,
            max_connections: 10,
            sqlite_readers: 4,
            migrate_on_start: true,
        }
    }
}

impl DatabaseConfig {
    /// `url` with `password` in it, when one is set.
    pub fn connect_url(&self) -> anyhow::Result<String> {
        let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(self.url.clone());
        };
        let mut url = reqwest::Url::parse(&self.url)
            .map_err(|e| anyhow::anyhow!("database.url is not a URL: {e}"))?;
        anyhow::ensure!(
            !url.username().is_empty(),
            "database.password is set but database.url names no user"
        );
        url.set_password(Some(password))
            .map_err(|()| anyhow::anyhow!("database.url cannot carry a password"))?;
        Ok(url.to_string())
    }
}

/// Supervision of background workers (see `supervise`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkersConfig {
    /// A worker down (ended or panicked, not yet running steadily again) longer
    /// than this turns readiness NOT_SERVING until it recovers.
    pub unhealthy_after_ms: u64,
    /// The longest pause before restarting a worker that keeps failing.
    pub restart_max_ms: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            unhealthy_after_ms: 30_000,
            restart_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    pub url: String,
    /// How long streams keep events, so late subscribers can replay.
    pub stream_max_age_days: u64,
    /// How long MEMBERSHIP and PRIVACY keep events, which name people: after an
    /// erasure nothing about the person stays longer than this. A consumer
    /// down for longer misses what expired.
    pub restricted_max_age_hours: u64,
    /// Copies of each stream in a JetStream cluster: 1 on a single server, 3 on
    /// a three-node cluster (survives one node lost). Applies when a stream is
    /// created.
    pub stream_replicas: usize,
    /// Largest size of one stream in bytes; once reached, the stream refuses new
    /// events (the outbox keeps and retries them) instead of dropping old ones.
    pub stream_max_bytes: i64,
    /// TLS to the servers (`tls://` addresses require it): the CA that signs
    /// their certificates, and this service's certificate when they ask for one.
    pub tls: ClientTlsConfig,
    /// The password (or token, when `url` names no user), when it is not in
    /// `url` (e.g. from a file, `SELFHELP_NATS__PASSWORD_FILE`).
    pub password: Option<String>,
    /// Where JetStream's API answers for this service: `$JS.API` on a server
    /// without accounts; `JS.API` with deploy/nats/accounts.conf, where each
    /// service reaches the streams' accounts through imports under that prefix.
    pub jetstream_api_prefix: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream_max_age_days: 30,
            restricted_max_age_hours: 72,
            stream_replicas: 1,
            stream_max_bytes: 2 * 1024 * 1024 * 1024,
            tls: ClientTlsConfig::default(),
            password: None,
            jetstream_api_prefix: "$JS.API".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// Address to listen on, e.g. `0.0.0.0:50051`.
    pub listen: String,
    /// When set, the address actually listened on is written to this file once
    /// the port is bound: how a supervisor or a test that gives port 0 (any
    /// free port) learns which one it got, without a race for the port. (Not
    /// `address_file`: a `…_FILE` variable reads a setting from a file.)
    pub write_address_to: Option<std::path::PathBuf>,
    /// Deadline for a request whose client set none.
    pub request_timeout_ms: u64,
    /// Requests handled at once; beyond it calls are shed with RESOURCE_EXHAUSTED.
    pub concurrency_limit: usize,
    /// Largest request message accepted.
    pub max_message_bytes: usize,
    /// Hard deadline for draining in-flight requests on shutdown.
    pub shutdown_grace_ms: u64,
    /// HTTP/2 streams (calls) one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Calls per second one signed-in person may make (bursts of twice that);
    /// 0: no limit.
    pub rate_per_person: u32,
    /// Anonymous calls per second from one peer address (bursts of twice
    /// that); 0: no limit. Behind a proxy every caller shares its address.
    pub rate_per_address: u32,
    /// TLS on this server; off unless a certificate is given.
    pub tls: ServerTlsConfig,
}

/// TLS a gRPC server speaks: on when `cert_file` and `key_file` are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerTlsConfig {
    /// PEM certificate (chain) the server shows.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate(s): clients must show a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: clients without a certificate are served too
    /// (public callers with tokens); one that shows a certificate must show a
    /// valid one.
    pub client_auth_optional: bool,
}

impl ServerTlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    fn check(&self, key: &str, v: &mut Violations) {
        if self.cert_file.is_some() != self.key_file.is_some() {
            v.add(
                format!("{key}.key_file"),
                "cert_file and key_file go together",
            );
        }
        for (name, file) in [
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("client_ca_file", &self.client_ca_file),
        ] {
            readable(v, &format!("{key}.{name}"), file.as_deref());
        }
        if self.client_ca_file.is_some() && self.cert_file.is_none() {
            v.add(
                format!("{key}.client_ca_file"),
                "client certificates need the server's own (cert_file)",
            );
        }
    }
}

/// TLS for a connection this service makes (to NATS, or to another service at
/// an `https://` address).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTlsConfig {
    /// PEM CA certificate(s) that sign the server's certificate; unset: the
    /// public web's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate shown to servers that ask for client certificates.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// Anything set: the connection should be TLS even if its address does
    /// not say so.
    pub fn configured(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some()
    }

    pub fn check(&self, key: &str, v: &mut Violations) {
        if self.cert_file.is_some() != self.key_file.is_some() {
            v.add(
                format!("{key}.key_file"),
                "cert_file and key_file go together",
            );
        }
        for (name, file) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            readable(v, &format!("{key}.{name}"), file.as_deref());
        }
    }
}

/// Adds "cannot be read" for `key` when `file` is set and is no readable file.
fn readable(v: &mut Violations, key: &str, file: Option<&Path>) {
    if let Some(file) = file
        && std::fs::File::open(file).is_err()
    {
        v.add(key, format!("{} cannot be read", file.display()));
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            write_address_to: None,
            request_timeout_ms: 10_000,
            concurrency_limit: 256,
            // Ample for any request of ours; anonymous callers included.
            max_message_bytes: 256 * 1024,
            shutdown_grace_ms: 10_000,
            max_concurrent_streams: 100,
            rate_per_person: 50,
            rate_per_address: 200,
            tls: ServerTlsConfig::default(),
        }
    }
}

impl GrpcConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Development: shared HS256 secret (`selfhelp up` generates one).
    pub hs256_secret: Option<String>,
    /// Development: file holding the HS256 secret.
    pub hs256_secret_file: Option<PathBuf>,
    /// Production: JSON Web Key Set file with the identity provider's public keys.
    pub jwks_file: Option<PathBuf>,
    /// Production: JWKS URL, fetched at start and again for an unknown key id.
    pub jwks_url: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// Further issuers whose tokens are accepted, each with its own keys,
    /// issuer and audience: e.g. the gateway's keys above (the website's
    /// tokens) and the region's identity provider here (staff tools). In
    /// the environment, `SELFHELP_AUTH__ALSO_TRUST='[{jwks_url = "…",
    /// issuer = "…", audience = "…"}]'`.
    pub also_trust: Vec<TrustedIssuer>,
}

/// An issuer of tokens and where its public keys are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustedIssuer {
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,selfhelp_platform=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info,sea_orm_migration=warn,async_nats=warn".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// How often the relay looks for rows when nothing woke it.
    pub poll_interval_ms: u64,
    /// Rows claimed and published per round (publishes are pipelined).
    pub batch_size: u64,
    /// How long a claim lasts before another replica may take the rows over.
    pub lease_ms: i64,
    /// Published rows are deleted after this long.
    pub retention_hours: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 500,
            batch_size: 256,
            lease_ms: 30_000,
            retention_hours: 72,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Deliveries of one message before it goes to the dead-letter table.
    pub max_deliver: i64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// First retry delay; doubles with every delivery.
    pub retry_base_ms: u64,
    /// Cap on the retry delay.
    pub retry_max_ms: u64,
    /// How long an event that waits for another stream (see
    /// `HandlerError::Waiting`) is retried before it is dead-lettered.
    pub wait_max_secs: u64,
    /// Messages fetched per pull, applied in one transaction: with one fetch
    /// loop, a busy stream is applied a batch at a time, so the batch bounds
    /// throughput (32 held PostgreSQL's welcomes near 1,700/s on the system
    /// benchmark; 128 let them keep up with the joins). Small enough that a
    /// batch is handled well within `ack_wait_ms`, even one event at a time.
    pub batch: usize,
    /// Fetch loops per replica, side by side (as several replicas would be).
    /// With 1 a replica applies events in the order they were published, so a
    /// person's inbox lists them in that order; more loops apply several at once
    /// (faster on PostgreSQL, where each event waits on many round trips) but
    /// events published moments apart may then land in an inbox the other way
    /// round, as they may across replicas. State is safe either way: events
    /// carry versions.
    pub pullers: usize,
    /// Transactions each fetched batch is split into, applied side by side
    /// (PostgreSQL only: SQLite has one writer). The events of one aggregate —
    /// one membership, one group — always share a lane, so they apply in the
    /// order they were published; events of different aggregates published
    /// moments apart may land the other way round, as they may across replicas.
    /// More lanes keep up with more events on PostgreSQL, where each event
    /// waits on many round trips and its commit on the disk. Off (1) by
    /// default: notifications of different aggregates to one person (an
    /// organiser's "new member" notices) may then be listed out of order, and
    /// a live inbox stream resuming after the newest id it saw can miss one
    /// committed a moment late (see ADR 22).
    pub lanes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_deliver: 8,
            ack_wait_ms: 30_000,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            wait_max_secs: 6 * 3_600,
            batch: 128,
            pullers: 1,
            lanes: 1,
        }
    }
}

/// Loads a service's configuration: `T::default()`, then the TOML `file` if given,
/// then `SELFHELP_*` environment variables.
pub fn load<T>(file: Option<&Path>) -> Result<T, Box<figment::Error>>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(Env::prefixed("SELFHELP_").split("__").ignore(&["config"]));
    // Secrets may come from files: `SELFHELP_DATABASE__URL_FILE=/run/secrets/db`
    // sets `database.url` to that file's contents.
    for (key, path) in std::env::vars().filter_map(|(k, v)| secret_file_var(&k).map(|key| (key, v)))
    {
        let value = std::fs::read_to_string(&path).map_err(|e| {
            Box::new(figment::Error::from(format!(
                "reading {key} from file {path}: {e}"
            )))
        })?;
        figment = figment.merge((key, value.trim_end_matches(['\n', '\r']).to_string()));
    }
    figment.extract().map_err(Box::new)
}

/// Adds "must be at least `min`" for `key` when `value` is below it.
pub fn at_least(v: &mut Violations, key: &str, value: u64, min: u64) {
    if value < min {
        v.add(key, format!("must be at least {min}"));
    }
}

/// Settings whose values are checked once, when they are loaded.
pub trait Checked {
    /// Adds what is wrong to `v`, each problem named by its key.
    fn check(&self, v: &mut Violations);
}

/// [`load`], then [`Checked::check`]: every bad setting named in one error.
pub fn load_checked<T>(file: Option<&Path>) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default + Checked,
{
    let config: T = load(file)?;
    let mut v = Violations::new();
    config.check(&mut v);
    if !v.is_empty() {
        let problems: Vec<String> = v.iter().map(|(key, why)| format!("{key} {why}")).collect();
        anyhow::bail!("{}", problems.join("; "));
    }
    Ok(config)
}

/// `SELFHELP_A__B_FILE` → `a.b`; `None` for other variables.
fn secret_file_var(name: &str) -> Option<String> {
    let key = name.strip_prefix("SELFHELP_")?.strip_suffix("_FILE")?;
    if key.is_empty() || key.ends_with('_') {
        return None;
    }
    Some(key.to_ascii_lowercase().replace("__", "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Sample {
        #[serde(flatten)]
        common: CommonConfig,
        extra: String,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn env_overrides_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "svc.toml",
                "region = \"notts\"\nextra = \"x\"\n[grpc]\nlisten = \"127.0.0.1:1\"\n",
            )?;
            jail.set_env("SELFHELP_GRPC__LISTEN", "127.0.0.1:2");
            jail.set_env("SELFHELP_DATABASE__URL", "sqlite::memory:");
            let cfg: Sample = load(Some(Path::new("svc.toml"))).map_err(|e| *e)?;
            assert_eq!(cfg.common.region, "notts");
            assert_eq!(cfg.extra, "x");
            assert_eq!(cfg.common.grpc.listen, "127.0.0.1:2");
            assert_eq!(cfg.common.database.url, "sqlite::memory:");
            assert_eq!(cfg.common.grpc.request_timeout_ms, 10_000);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn secrets_can_come_from_files() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("db-url", "postgres://u:secret@db/listings\n")?;
            let path = jail.directory().join("db-url");
            jail.set_env("SELFHELP_DATABASE__URL_FILE", path.display());
            let cfg: Sample = load(None).map_err(|e| *e)?;
            assert_eq!(cfg.common.database.url, "postgres://u:secret@db/listings");
            jail.set_env("SELFHELP_DATABASE__URL_FILE", "/nonexistent/secret");
            assert!(load::<Sample>(None).is_err());
            Ok(())
        });
        assert_eq!(
            secret_file_var("SELFHELP_AUTH__HS256_SECRET_FILE").as_deref(),
            Some("auth.hs256_secret")
        );
        assert_eq!(secret_file_var("SELFHELP_REGION"), None);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn passwords_from_files_join_the_urls_without_being_written_in_them() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pg-password", "p@ss/word:1\n")?;
            jail.create_file("nats-password", "n4ts\n")?;
            jail.set_env(
                "SELFHELP_DATABASE__URL",
                "postgres://selfhelp@db:5432/listings",
            );
            jail.set_env(
                "SELFHELP_DATABASE__PASSWORD_FILE",
                jail.directory().join("pg-password").display(),
            );
            jail.set_env(
                "SELFHELP_NATS__PASSWORD_FILE",
                jail.directory().join("nats-password").display(),
            );
            let cfg: Sample = load(None).map_err(|e| *e)?;
            assert_eq!(
                cfg.common.database.connect_url().unwrap(),
                "postgres://selfhelp:p%40ss%2Fword%3A1@db:5432/listings"
            );
            assert_eq!(cfg.common.nats.password.as_deref(), Some("n4ts"));
            Ok(())
        });
        let no_user = DatabaseConfig {
            url: "postgres://db/listings".into(),
            password: Some("x".into()),
            ..Default::default()
        };
        assert!(no_user.connect_url().is_err());
        let plain = DatabaseConfig {
            url: "sqlite://a.db?mode=rwc".into(),
            ..Default::default()
        };
        assert_eq!(plain.connect_url().unwrap(), "sqlite://a.db?mode=rwc");
    }

    impl Checked for Sample {
        fn check(&self, v: &mut Violations) {
            self.common.check(v);
        }
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn bad_settings_stop_the_load_each_named_by_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "svc.toml",
                "timezone = \"Mars/Olympus\"\n[consumer]\npullers = 0\n[grpc]\nmax_concurrent_streams = 0\n\
                 [grpc.tls]\ncert_file = \"/nonexistent/cert.pem\"\n\
                 [nats.tls]\nca_file = \"/nonexistent/ca.pem\"\n",
            )?;
            let err = load_checked::<Sample>(Some(Path::new("svc.toml")))
                .unwrap_err()
                .to_string();
            for key in [
                "timezone",
                "consumer.pullers must be at least 1",
                "grpc.max_concurrent_streams",
                "grpc.tls.key_file cert_file and key_file go together",
                "grpc.tls.cert_file /nonexistent/cert.pem cannot be read",
                "nats.tls.ca_file /nonexistent/ca.pem cannot be read",
            ] {
                assert!(err.contains(key), "{key} in {err}");
            }
            jail.create_file("good.toml", "region = \"notts\"\n")?;
            assert!(load_checked::<Sample>(Some(Path::new("good.toml"))).is_ok());
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(load::<Sample>(Some(Path::new("/nonexistent/selfhelp.toml"))).is_err());
    }
}
