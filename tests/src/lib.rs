//! Runs the real service binaries as separate processes for end-to-end tests.
//!
//! `cargo test --workspace` builds the binaries (each service package has
//! integration tests, so cargo builds its binary before any test runs); this
//! crate finds them next to the test executable.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The folder holding this build's binaries (`target/<profile>`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary, with a clear message when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds the service binaries",
        path.display()
    );
    path
}

/// Runs binary `name` with `args` and `env` to completion (e.g. `--migrate`).
pub fn run_to_end(name: &str, args: &[&str], env: &[(&str, String)]) -> std::process::ExitStatus {
    let work = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(binary(name));
    cmd.current_dir(work.path())
        .args(args)
        .env("SELFHELP_LOG__LEVEL", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    selfhelp_testkit::output_within(&mut cmd, std::time::Duration::from_secs(120)).status
}

/// A service process, killed when dropped.
pub struct ServiceProcess {
    pub name: &'static str,
    pub addr: std::net::SocketAddr,
    child: Option<Child>,
    /// The process's working folder: whatever it writes relative to it (e.g.
    /// emails as .eml files) goes with the test.
    _work: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts binary `name` with `env` (SELFHELP_* settings) and returns once it
    /// listens. It binds port 0 itself and writes the port it got to a file,
    /// so no port is chosen here and then lost to another test in between.
    pub fn spawn(name: &'static str, env: &[(&str, String)]) -> ServiceProcess {
        let work = tempfile::tempdir().expect("temp dir");
        let address_file = work.path().join("grpc-address");
        let mut cmd = Command::new(binary(name));
        cmd.current_dir(work.path())
            .env("SELFHELP_GRPC__LISTEN", "127.0.0.1:0")
            // Metrics too on any free port, so tests can run side by side.
            .env("SELFHELP_METRICS__LISTEN", "127.0.0.1:0")
            .env("SELFHELP_GRPC__WRITE_ADDRESS_TO", &address_file)
            // Notifications' unsubscribe page: any free port, so tests can run side by side.
            .env("SELFHELP_HTTP__LISTEN", "127.0.0.1:0")
            .env("SELFHELP_LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file) {
                break text
                    .parse()
                    .unwrap_or_else(|e| panic!("{name} wrote the address {text:?}: {e}"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} ended ({status}) before it listened");
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name} did not listen within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        ServiceProcess {
            name,
            addr,
            child: Some(child),
            _work: work,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash or an OOM kill would: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the process has ended (it should not have).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and returns whether the process exited successfully in time.
    pub fn terminate(&mut self) -> bool {
        self.send_term();
        self.wait_exited()
    }

    /// Sends SIGTERM, as a service manager's stop does.
    pub fn send_term(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Waits (up to 20 s, then kills it) for the process to end; whether it
    /// exited successfully in time.
    pub fn wait_exited(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates an open, in-person group as `organiser` through listings at `addr`,
/// submits it and has an operator of `region` approve it; returns its id.
pub async fn published_group(addr: std::net::SocketAddr, region: &str, organiser: &str) -> String {
    published_group_on(selfhelp_testkit::channel(addr).await, region, organiser).await
}

/// [`published_group`] through `channel` to listings (e.g. one over TLS).
pub async fn published_group_on(
    channel: tonic::transport::Channel,
    region: &str,
    organiser: &str,
) -> String {
    use selfhelp_proto::listings::v1 as lpb;
    use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
    use selfhelp_testkit::{token, with_token};
    let mut lc = ListingsServiceClient::new(channel);
    let organiser = token(organiser, region, &[]);
    let group = lc
        .create_group(with_token(
            lpb::CreateGroupRequest {
                name: "Thursday walking group".into(),
                summary: "Walks and talk".into(),
                topics: vec!["bereavement".into()],
                format: lpb::MeetingFormat::InPerson.into(),
                join_policy: lpb::JoinPolicy::Open.into(),
                venues: vec![lpb::Venue {
                    name: "Park gates".into(),
                    town: "Nottingham".into(),
                    postcode: "NG1 5JD".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &organiser,
        ))
        .await
        .expect("creating a group")
        .into_inner();
    submit_and_approve(&mut lc, region, &group.id, &organiser).await;
    group.id
}

/// `organiser` (a token) submits group `group_id` and an operator of `region`
/// approves it: it is published.
pub async fn submit_and_approve(
    listings: &mut selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient<
        tonic::transport::Channel,
    >,
    region: &str,
    group_id: &str,
    organiser: &str,
) {
    use selfhelp_proto::listings::v1 as lpb;
    use selfhelp_testkit::{token, with_token};
    let submit = lpb::SubmitGroupRequest {
        group_id: group_id.to_string(),
    };
    listings
        .submit_group(with_token(submit, organiser))
        .await
        .expect("submitting it");
    let approve = lpb::ReviewGroupRequest {
        group_id: group_id.to_string(),
        decision: lpb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    listings
        .review_group(with_token(approve, &token("olu", region, &["operator"])))
        .await
        .expect("approving it");
}

/// Joins of `joins` different people to one group, `in_flight` at a time, over
/// the membership replicas in `endpoints` (which a test may swap as it replaces
/// replicas). Each join is retried, on the next replica first, until answered
/// (a repeat after a lost answer is answered with the membership). Only a
/// passing fault ([`Refusal::is_passing_fault`]) may refuse a join: a lost
/// replica, connection or dependency is something to retry.
pub struct JoinBurst {
    pub endpoints: std::sync::Arc<tokio::sync::RwLock<Vec<tonic::transport::Channel>>>,
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub retried: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// How many calls were refused with each code (then retried).
    pub refusals: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

/// A channel that connects when first used and reconnects after failures.
pub fn lazy_channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        // Longer than the services' wait for a database connection (10 s), so
        // a call held up by a database outage gets the service's answer.
        .timeout(std::time::Duration::from_secs(20))
        .connect_lazy()
}

impl JoinBurst {
    pub fn start(
        endpoints: Vec<tonic::transport::Channel>,
        region: &str,
        group_id: &str,
        joins: usize,
        in_flight: usize,
    ) -> JoinBurst {
        use futures::StreamExt;
        use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
        use selfhelp_testkit::{join_request, token, with_token};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let endpoints = Arc::new(tokio::sync::RwLock::new(endpoints));
        let accepted = Arc::new(AtomicUsize::new(0));
        let retried = Arc::new(AtomicUsize::new(0));
        let refusals = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let (e, a, r, f) = (
            endpoints.clone(),
            accepted.clone(),
            retried.clone(),
            refusals.clone(),
        );
        let (region, group_id) = (region.to_string(), group_id.to_string());
        let task = tokio::spawn(async move {
            futures::stream::iter(0..joins)
                .map(|i| {
                    let (endpoints, accepted, retried) = (e.clone(), a.clone(), r.clone());
                    let refusals = f.clone();
                    let person = token(&format!("p{i:05}"), &region, &[]);
                    let group_id = group_id.clone();
                    async move {
                        for attempt in 0usize.. {
                            let ch = {
                                let endpoints = endpoints.read().await;
                                endpoints[(i + attempt) % endpoints.len()].clone()
                            };
                            let answer = MembershipServiceClient::new(ch)
                                .join_group(with_token(join_request(&group_id), &person))
                                .await;
                            match answer {
                                Ok(_) => break,
                                Err(e) => {
                                    assert!(attempt < 300, "join {i} still failing: {e:?}");
                                    // A repeat after a lost answer is answered with the
                                    // membership, so any other refusal (a group said to
                                    // be closed, INTERNAL) is a fault of the service.
                                    let refusal = Refusal::of(&e);
                                    assert!(
                                        refusal.is_passing_fault(),
                                        "join {i} refused for good: {e:?}"
                                    );
                                    retried.fetch_add(1, Ordering::Relaxed);
                                    *refusals
                                        .lock()
                                        .unwrap()
                                        .entry(format!("{:?}", e.code()))
                                        .or_insert(0) += 1;
                                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                }
                            }
                        }
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .buffer_unordered(in_flight)
                .collect::<Vec<()>>()
                .await;
        });
        JoinBurst {
            endpoints,
            accepted,
            retried,
            refusals,
            task,
        }
    }

    /// Waits until `n` joins have been accepted.
    pub async fn reached(&self, n: usize) {
        use std::sync::atomic::Ordering;
        selfhelp_testkit::eventually(
            &format!("{n} joins accepted"),
            std::time::Duration::from_secs(300),
            || async {
                // A join refused for good ends the burst (its panic is above):
                // say so now rather than wait out the timeout.
                assert!(
                    self.accepted.load(Ordering::Relaxed) >= n || !self.task.is_finished(),
                    "the burst of joins ended before {n} were accepted"
                );
                (self.accepted.load(Ordering::Relaxed) >= n).then_some(())
            },
        )
        .await
    }

    /// Waits for every join to be answered; returns how many calls were retried.
    pub async fn finish(self) -> usize {
        self.task.await.expect("every join answered");
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A single number from a query.
pub async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .expect("a row")
    .try_get_by_index::<i64>(0)
    .expect("a number")
}

/// Active memberships of `group_id` in membership's database at `url`.
pub async fn active_members(url: &str, group_id: &str) -> i64 {
    let db = sea_orm::Database::connect(url)
        .await
        .expect("connecting to membership's database");
    count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM membership WHERE group_id = '{group_id}' AND state = 'ACTIVE'"
        ),
    )
    .await
}

/// The URLs of listings', membership's and notifications' test databases.
pub fn urls(dbs: &[selfhelp_testkit::TestDb; 3]) -> [&str; 3] {
    [&dbs[0].url, &dbs[1].url, &dbs[2].url]
}

/// After `joins` joins of `group_id` (organised by `organiser`): waits until the
/// welcomes and the organiser's notes are in, every outbox has drained and
/// notifications has acknowledged every membership event (so no redelivery is
/// still to come), then checks that each count (of that group) is exactly
/// `joins` and nothing is dead-lettered. `database_urls` are listings',
/// membership's and notifications' databases; `notifications_js` may ask about
/// notifications' consumer of `region`.
pub async fn assert_every_join_counted_once(
    database_urls: [&str; 3],
    notifications_js: &async_nats::jetstream::Context,
    region: &str,
    group_id: &str,
    organiser: &str,
    joins: usize,
    label: &str,
) {
    use std::time::Duration;
    let mut connections = Vec::new();
    for url in database_urls {
        connections.push(
            sea_orm::Database::connect(url)
                .await
                .expect("connecting to a test database"),
        );
    }
    let dbs = &connections;
    let (membership, notifications) = (&connections[1], &connections[2]);
    let welcomes = format!(
        "SELECT COUNT(*) FROM notification WHERE kind = 'WELCOME' AND group_id = '{group_id}'"
    );
    let notes = format!(
        "SELECT COUNT(*) FROM notification WHERE recipient_id = '{organiser}' \
         AND kind = 'MEMBER_JOINED' AND group_id = '{group_id}'"
    );
    let members = format!(
        "SELECT COUNT(*) FROM membership WHERE group_id = '{group_id}' AND state = 'ACTIVE'"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let w = count(notifications, &welcomes).await;
        let n = count(notifications, &notes).await;
        if w >= joins as i64 && n >= joins as i64 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            // Where the missing ones are: never joined, still in an outbox,
            // parked, or waiting in notifications' consumer.
            let mut waiting = Vec::new();
            for db in dbs {
                waiting.push(
                    count(
                        db,
                        "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL",
                    )
                    .await,
                );
            }
            let mut dead = Vec::new();
            for db in dbs {
                dead.push(count(db, "SELECT COUNT(*) FROM dead_letter").await);
            }
            let durable = selfhelp_platform::consumer::ConsumerRunner::durable_name(
                "notifications",
                region,
                selfhelp_proto::streams::MEMBERSHIP,
            );
            let consumer = match notifications_js.get_stream("MEMBERSHIP").await {
                Ok(stream) => match stream.consumer_info(&durable).await {
                    Ok(info) => format!(
                        "{} not yet delivered, {} delivered and not acknowledged, {} redelivered",
                        info.num_pending, info.num_ack_pending, info.num_redelivered
                    ),
                    Err(e) => format!("unknown ({e})"),
                },
                Err(e) => format!("unknown ({e})"),
            };
            panic!(
                "{label}: after 180 s, {w} welcomes and {n} organiser's notes of {joins} joins; \
                 {} active memberships; unpublished outbox rows (listings, membership, \
                 notifications) {waiting:?}; dead letters {dead:?}; notifications' \
                 consumer of MEMBERSHIP: {consumer}",
                count(membership, &members).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    selfhelp_testkit::eventually("every outbox drained", Duration::from_secs(60), || async {
        for db in dbs {
            if count(
                db,
                "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL",
            )
            .await
                > 0
            {
                return None;
            }
        }
        Some(())
    })
    .await;
    // A handled event whose ack was lost comes again after the ack wait (30 s
    // by default): wait until nothing is left unacknowledged.
    selfhelp_testkit::wait_caught_up(
        notifications_js,
        "MEMBERSHIP",
        &selfhelp_platform::consumer::ConsumerRunner::durable_name(
            "notifications",
            region,
            selfhelp_proto::streams::MEMBERSHIP,
        ),
        Duration::from_secs(120),
    )
    .await;
    let counts = [
        (
            "active memberships",
            count(membership, &members).await,
        ),
        ("welcomes", count(notifications, &welcomes).await),
        (
            "people welcomed",
            count(
                notifications,
                &format!(
                    "SELECT COUNT(DISTINCT recipient_id) FROM notification \
                     WHERE kind = 'WELCOME' AND group_id = '{group_id}'"
                ),
            )
            .await,
        ),
        ("organiser's joined notes", count(notifications, &notes).await),
        (
            "joins the notes are about",
            count(
                notifications,
                &format!(
                    "SELECT COUNT(DISTINCT event_id) FROM notification WHERE \
                     recipient_id = '{organiser}' AND kind = 'MEMBER_JOINED' AND group_id = '{group_id}'"
                ),
            )
            .await,
        ),
    ];
    let mut dead = 0;
    for db in dbs {
        dead += count(db, "SELECT COUNT(*) FROM dead_letter").await;
    }
    eprintln!(
        "{label}: {}; dead letters {dead}",
        counts
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, n) in counts {
        assert_eq!(n, joins as i64, "{what}");
    }
    assert_eq!(dead, 0, "dead letters");
}

/// (binary, gRPC service name) of each service.
pub const LISTINGS: (&str, &str) = ("selfhelp-listings", "selfhelp.listings.v1.ListingsService");
pub const MEMBERSHIP: (&str, &str) = (
    "selfhelp-membership",
    "selfhelp.membership.v1.MembershipService",
);
pub const NOTIFICATIONS: (&str, &str) = (
    "selfhelp-notifications",
    "selfhelp.notifications.v1.NotificationsService",
);

/// What every service process in these tests is given: its region, database,
/// NATS (one server or several, comma-separated), the test secret, where
/// listings answers (for membership), and quick outbox polling and retries.
/// A test adds what it needs beyond that.
pub fn service_env(
    region: &str,
    database_url: &str,
    nats_url: &str,
    listings_url: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("SELFHELP_REGION", region.to_string()),
        ("SELFHELP_DATABASE__URL", database_url.to_string()),
        ("SELFHELP_NATS__URL", nats_url.to_string()),
        (
            "SELFHELP_AUTH__HS256_SECRET",
            selfhelp_testkit::secret().to_string(),
        ),
        ("SELFHELP_OUTBOX__POLL_INTERVAL_MS", "100".to_string()),
        ("SELFHELP_CONSUMER__RETRY_BASE_MS", "100".to_string()),
        ("SELFHELP_LISTINGS__URL", listings_url.to_string()),
    ]
}

/// One process of each service.
pub struct Trio {
    pub listings: ServiceProcess,
    pub membership: ServiceProcess,
    pub notifications: ServiceProcess,
}

impl Trio {
    /// Starts the three binaries at once (each creates its own streams and
    /// waits for the others') on `dbs` (listings', membership's and
    /// notifications'), with `env(service, database, listings_url)` for each
    /// (`service` is `listings`, `membership` or `notifications`), and waits
    /// until all three serve.
    pub async fn start(
        dbs: &[selfhelp_testkit::TestDb; 3],
        env: impl Fn(&str, &selfhelp_testkit::TestDb, &str) -> Vec<(&'static str, String)>,
    ) -> Trio {
        let listings = ServiceProcess::spawn(LISTINGS.0, &env("listings", &dbs[0], ""));
        let url = listings.url();
        let trio = Trio {
            membership: ServiceProcess::spawn(MEMBERSHIP.0, &env("membership", &dbs[1], &url)),
            notifications: ServiceProcess::spawn(
                NOTIFICATIONS.0,
                &env("notifications", &dbs[2], &url),
            ),
            listings,
        };
        for (process, name) in trio.named() {
            selfhelp_testkit::wait_serving(process.addr, name).await;
        }
        trio
    }

    /// Each process with its gRPC service name.
    pub fn named(&self) -> [(&ServiceProcess, &'static str); 3] {
        [
            (&self.listings, LISTINGS.1),
            (&self.membership, MEMBERSHIP.1),
            (&self.notifications, NOTIFICATIONS.1),
        ]
    }

    /// Panics if any of the three has ended.
    pub fn assert_all_running(&mut self) {
        for p in [
            &mut self.listings,
            &mut self.membership,
            &mut self.notifications,
        ] {
            assert!(p.exited().is_none(), "{} ended", p.name);
        }
    }
}

/// Joins by new people, `workers` at a time, each worker joining again and
/// again until a call is refused; for watching a service stop under load.
/// Worker `i` calls through `channels[i % channels.len()]`. Around sending the
/// stop, call [`stop_begins`](Self::stop_begins) just before and
/// [`stop_sent`](Self::stop_sent) just after: a call sent before the stop began
/// must then be answered, and one answered after the stop was sent shows the
/// service finished what it had taken.
pub struct JoinsUntilRefused {
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<StopTimes>,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    answered_after_stop: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Each refused call, and whether it was sent before the stop began.
    refused: std::sync::Arc<std::sync::Mutex<Vec<(Refusal, bool)>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct StopTimes {
    began: std::sync::OnceLock<std::time::Instant>,
    sent: std::sync::OnceLock<std::time::Instant>,
}

/// What [`JoinsUntilRefused`] saw.
#[derive(Debug)]
pub struct StopOutcome {
    /// Calls in flight when the stop began.
    pub in_flight_at_stop: usize,
    /// People whose join was answered OK.
    pub accepted: Vec<String>,
    /// Calls sent before the stop began and answered OK after it was sent.
    pub answered_after_stop: usize,
    /// What each worker's last call was refused with.
    pub refused: Vec<Refusal>,
    /// Refused calls that had been sent before the stop began: cut off.
    pub cut_off: usize,
}

impl JoinsUntilRefused {
    pub fn start(
        channels: Vec<tonic::transport::Channel>,
        region: &str,
        group_id: &str,
        workers: usize,
        first_person: usize,
    ) -> JoinsUntilRefused {
        use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
        use selfhelp_testkit::{join_request, token, with_token};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let next = Arc::new(AtomicUsize::new(first_person));
        let probe = JoinsUntilRefused {
            in_flight: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(StopTimes::default()),
            accepted: Arc::new(Mutex::new(Vec::new())),
            answered_after_stop: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(Mutex::new(Vec::new())),
            workers: Vec::new(),
        };
        let workers = (0..workers)
            .map(|w| {
                let channel = channels[w % channels.len()].clone();
                let (next, group_id, region) =
                    (next.clone(), group_id.to_string(), region.to_string());
                let (stop, in_flight) = (probe.stop.clone(), probe.in_flight.clone());
                let after_stop = probe.answered_after_stop.clone();
                let (accepted, refused) = (probe.accepted.clone(), probe.refused.clone());
                tokio::spawn(async move {
                    let mut client = MembershipServiceClient::new(channel);
                    loop {
                        let person = format!("p{:05}", next.fetch_add(1, Ordering::SeqCst));
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let sent_before_stop = stop.began.get().is_none();
                        let answer = client
                            .join_group(with_token(
                                join_request(&group_id),
                                &token(&person, &region, &[]),
                            ))
                            .await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        match answer {
                            Ok(_) => {
                                if sent_before_stop && stop.sent.get().is_some() {
                                    after_stop.fetch_add(1, Ordering::SeqCst);
                                }
                                accepted.lock().unwrap().push(person);
                            }
                            Err(e) => {
                                let refusal = Refusal::of(&e);
                                refused.lock().unwrap().push((refusal, sent_before_stop));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        JoinsUntilRefused { workers, ..probe }
    }

    /// Waits until `n` joins have been answered OK.
    pub async fn accepted_at_least(&self, n: usize) {
        selfhelp_testkit::eventually(
            &format!("{n} joins under way"),
            std::time::Duration::from_secs(120),
            || async { (self.accepted.lock().unwrap().len() >= n).then_some(()) },
        )
        .await
    }

    /// To call just before sending the stop: returns the calls in flight.
    pub fn stop_begins(&self) -> usize {
        let _ = self.stop.began.set(std::time::Instant::now());
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// To call as soon as the stop has been sent.
    pub fn stop_sent(&self) {
        let _ = self.stop.sent.set(std::time::Instant::now());
    }

    /// Waits for every worker to be refused once.
    pub async fn finish(self, in_flight_at_stop: usize) -> StopOutcome {
        for w in self.workers {
            w.await.expect("a join worker");
        }
        let refused = self.refused.lock().unwrap().clone();
        StopOutcome {
            in_flight_at_stop,
            accepted: self.accepted.lock().unwrap().clone(),
            answered_after_stop: self
                .answered_after_stop
                .load(std::sync::atomic::Ordering::SeqCst),
            cut_off: refused.iter().filter(|(_, before)| *before).count(),
            refused: refused.into_iter().map(|(refusal, _)| refusal).collect(),
        }
    }
}

impl StopOutcome {
    /// Calls were in flight at the stop and were answered, none was cut off;
    /// each worker was refused once, with a code a client retries on.
    pub fn assert_drained(&self, workers: usize) {
        assert!(
            self.answered_after_stop > 0,
            "calls in flight at the stop were answered after it was sent"
        );
        self.assert_refused_after(workers, Refusal::is_retryable);
    }

    /// [`StopOutcome::assert_drained`] for a stop sent through `docker kill` to
    /// a container reached through Docker's published port:
    /// - no answer after the stop is required, as the docker CLI's round trip
    ///   (tens of milliseconds) can outlast every call in flight now that joins
    ///   arriving together are written together;
    /// - a call sent after the stop may also fail as the connection is torn
    ///   down between Docker's proxy and the client (INTERNAL "h2 protocol
    ///   error" whose cause may not be a GOAWAY, seen once in CI), which a
    ///   client of an idempotent call retries.
    ///
    /// A call cut off still fails it; `graceful.rs` signals the process
    /// directly and holds it to [`StopOutcome::assert_drained`].
    pub fn assert_none_cut_off(&self, workers: usize) {
        self.assert_refused_after(workers, |r| {
            r.is_retryable()
                || (r.code == tonic::Code::Internal && r.message.starts_with("h2 protocol error"))
        });
    }

    fn assert_refused_after(&self, workers: usize, retried: impl Fn(&Refusal) -> bool) {
        assert!(
            self.in_flight_at_stop > 0,
            "calls were in flight when the stop came"
        );
        assert_eq!(
            self.cut_off, 0,
            "calls sent before the stop were cut off instead of answered"
        );
        assert_eq!(
            self.refused.len(),
            workers,
            "each caller was refused once, then stopped"
        );
        for refusal in &self.refused {
            assert!(
                retried(refusal),
                "a call refused at stop gets a code to retry on, not {refusal:?}"
            );
        }
    }
}

/// The code and message a call was refused with.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: tonic::Code,
    pub message: String,
    /// HTTP/2 refused the call's stream: a GOAWAY with NO_ERROR (the server's
    /// graceful stop) or a REFUSED_STREAM reset.
    pub refused_by_http2: bool,
}

impl Refusal {
    pub fn of(status: &tonic::Status) -> Refusal {
        Refusal {
            code: status.code(),
            message: status.message().to_string(),
            refused_by_http2: selfhelp_platform::grpc::never_started(status),
        }
    }

    /// Whether a client may send the call again: the server never ran it.
    ///
    /// A call that races the server's GOAWAY (graceful stop) is refused by
    /// HTTP/2 with NO_ERROR for a stream the server never started (RFC 9113
    /// §6.8: safe to retry), but tonic's client reports an h2 NO_ERROR as
    /// INTERNAL, with a message that depends on where the connection noticed
    /// it ("connection error received: not a result of an error", or "h2
    /// protocol error: http2 error" through hyper). So INTERNAL is let through
    /// only when the h2 error behind it says so.
    pub fn is_retryable(&self) -> bool {
        match self.code {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => true,
            tonic::Code::Internal => self.refused_by_http2,
            _ => false,
        }
    }

    /// Whether a call that may have run (a join, which is idempotent) is worth
    /// sending again: the service, or the way to it, was away for a moment or
    /// too busy. Anything else is the service's final word.
    pub fn is_passing_fault(&self) -> bool {
        self.is_retryable()
            || matches!(
                self.code,
                tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
                    | tonic::Code::ResourceExhausted
            )
    }
}

/// Waits (up to 30 s) until `person` of `region` has a notification of `kind`.
pub async fn notified(
    notifications: &selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient<tonic::transport::Channel>,
    region: &str,
    person: &str,
    kind: selfhelp_proto::notifications::v1::NotificationKind,
) -> selfhelp_proto::notifications::v1::Notification {
    let t = selfhelp_testkit::token(person, region, &[]);
    selfhelp_testkit::eventually(
        &format!("{person} to be told {kind:?}"),
        std::time::Duration::from_secs(30),
        || {
            let mut n = notifications.clone();
            let req = selfhelp_testkit::with_token(
                selfhelp_proto::notifications::v1::ListNotificationsRequest {
                    page: None,
                    unread_only: false,
                },
                &t,
            );
            async move {
                n.list_notifications(req)
                    .await
                    .ok()?
                    .into_inner()
                    .notifications
                    .into_iter()
                    .find(|x| x.kind() == kind)
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::Refusal;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A socket that keeps a copy of everything read from it.
    struct Recorded {
        inner: tokio::net::TcpStream,
        seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl tokio::io::AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            let read = buf.filled()[before..].to_vec();
            self.seen.lock().unwrap().extend_from_slice(&read);
            polled
        }
    }

    impl tokio::io::AsyncWrite for Recorded {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Whether the bytes a client sent (the connection preface, then frames)
    /// hold a HEADERS frame: a call.
    fn carries_headers(sent: &[u8]) -> bool {
        let mut at = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        while at + 9 <= sent.len() {
            let length = usize::from(sent[at]) << 16
                | usize::from(sent[at + 1]) << 8
                | usize::from(sent[at + 2]);
            if sent[at + 3] == 0x1 {
                return true;
            }
            at += 9 + length;
        }
        false
    }

    /// A call that reaches a server as it goes away (GOAWAY with NO_ERROR,
    /// naming no call it took, as a graceful stop does for calls that raced
    /// it): tonic's client says INTERNAL, and the refusal still reads as one to
    /// send again.
    #[tokio::test]
    async fn a_call_the_server_went_away_from_may_be_sent_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            // What HTTP/2 has read, and a second handle on the socket to see
            // what waits unread: together, everything the client sent.
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let std_socket = socket.into_std().unwrap();
            let peeker = std_socket.try_clone().unwrap();
            let socket = Recorded {
                inner: tokio::net::TcpStream::from_std(std_socket).unwrap(),
                seen: seen.clone(),
            };
            let mut connection = h2::server::handshake(socket).await.unwrap();
            // The call arrives while the server is not reading; it goes away
            // before it reads it.
            loop {
                let mut sent = seen.lock().unwrap().clone();
                let mut waiting = [0u8; 16 * 1024];
                if let Ok(n) = peeker.peek(&mut waiting) {
                    sent.extend_from_slice(&waiting[..n]);
                }
                if carries_headers(&sent) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            connection.abrupt_shutdown(h2::Reason::NO_ERROR);
            while connection.accept().await.is_some() {}
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap_err();
        let refusal = Refusal::of(&status);
        assert_eq!(refusal.code, tonic::Code::Internal, "{status:?}");
        assert!(refusal.refused_by_http2, "{status:?}");
        assert!(refusal.is_retryable(), "{refusal:?}");
        // Any other reason for an h2 error is not such a refusal.
        let refusal = Refusal::of(&tonic::Status::from(h2::Error::from(
            h2::Reason::PROTOCOL_ERROR,
        )));
        assert!(!refusal.is_retryable(), "{refusal:?}");
    }
}
