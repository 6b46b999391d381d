//! The container deployment run for real: `deploy/compose.yaml` brings up NATS,
//! PostgreSQL and the three services as containers (the images
//! `deploy/local-images.sh` makes, named in `deploy/local-images.env`, unless
//! SELFHELP_IMAGE, NATS_IMAGE and POSTGRES_IMAGE say otherwise), with two
//! replicas of membership and of notifications, and the test reaches it only
//! through the ports compose publishes:
//!
//! 1. the journey: a group created, submitted, approved, found anonymously,
//!    joined, and the organiser told; a partner logged in to NATS as
//!    `outside-subscriber` reads the public events through the consumer
//!    listings made for it and is refused a consumer of its own and the
//!    listings, membership and privacy ones;
//! 2. scaling: 1,000 joins over both membership replicas give exactly 1,000
//!    memberships and welcomes, and both notifications replicas did work;
//! 3. faults, each in the middle of a burst of joins: one replica of each
//!    service killed and started again; NATS cut off the network for 10 s;
//!    PostgreSQL restarted (calls meanwhile refused as UNAVAILABLE, never
//!    INTERNAL); after each, every count exact and the outboxes drained;
//! 4. a stop of both membership replicas while calls are in flight (SIGTERM, as
//!    `docker-compose stop` sends, with compose's 15 s grace): the calls sent
//!    before it are answered, none is cut off, and the replicas exit cleanly.
//!
//! It needs a Docker engine and the images, so `cargo test` lists it as
//! ignored; `.ci/run` builds the images and runs it whenever an engine answers:
//! `cargo test -p selfhelp-e2e --test containers -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futures::StreamExt;
use selfhelp_e2e::{
    JoinBurst, JoinsUntilRefused, active_members, assert_every_join_counted_once, lazy_channel,
    notified, published_group,
};
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::notifications::v1 as npb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_testkit::{channel, eventually, join_request, token, with_token};

/// The region compose's services serve by default.
const REGION: &str = "notts";
const JOINS: usize = 1000;
const IN_FLIGHT: usize = 16;
/// Each service, its gRPC port in the container and its health service name.
const SERVICES: [(&str, u16, &str); 3] = [
    ("listings", 50051, "selfhelp.listings.v1.ListingsService"),
    (
        "membership",
        50052,
        "selfhelp.membership.v1.MembershipService",
    ),
    (
        "notifications",
        50053,
        "selfhelp.notifications.v1.NotificationsService",
    ),
];
/// Test settings laid over compose.yaml: quicker outbox polling and retries,
/// and notifications logging each batch it handles (to see both replicas work).
const TEST_OVERRIDE: &str = r#"version: "3.8"
services:
  listings:
    environment: &quick
      SELFHELP_OUTBOX__POLL_INTERVAL_MS: "100"
      SELFHELP_CONSUMER__RETRY_BASE_MS: "100"
  membership:
    environment: *quick
  notifications:
    environment:
      SELFHELP_OUTBOX__POLL_INTERVAL_MS: "100"
      SELFHELP_CONSUMER__RETRY_BASE_MS: "100"
      SELFHELP_LOG__LEVEL: "info,selfhelp_platform::consumer=debug"
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command to its end, without holding up the runtime's other tasks
/// (the joins in flight) meanwhile.
fn run(cmd: &mut Command) -> Output {
    let out = tokio::task::block_in_place(|| cmd.output())
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn docker(args: &[&str]) -> String {
    String::from_utf8(run(Command::new("docker").args(args)).stdout).expect("utf-8")
}

/// Whether `name` answers SERVING at `addr` now (within a few seconds).
async fn serving(addr: SocketAddr, name: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let check = selfhelp_testkit::is_serving(&endpoint, name);
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .unwrap_or(false)
}

/// Projects of earlier runs whose process was killed before it could take
/// them down (containers and volumes would pile up on a CI machine).
fn remove_stacks_left_behind() {
    let projects = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Label \"com.docker.compose.project\"}}",
    ]);
    let mut left: Vec<&str> = projects
        .lines()
        .filter(|p| p.starts_with("selfhelp-ct-"))
        .collect();
    left.sort_unstable();
    left.dedup();
    for project in left {
        eprintln!("containers: removing {project}, left behind by an earlier run");
        let label = format!("label=com.docker.compose.project={project}");
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.split_whitespace());
        docker(&args);
        for volume in docker(&["volume", "ls", "-q", "--filter", &label]).split_whitespace() {
            docker(&["volume", "rm", volume]);
        }
        let network = format!("{project}_default");
        let _ = Command::new("docker")
            .args(["network", "rm", &network])
            .output();
    }
}

/// One compose project of the stack, taken down (volumes too) when dropped.
struct Stack {
    project: String,
    files: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    /// The secrets the stack made at its first start, read once it serves.
    postgres_password: String,
    outside_password: String,
    notifications_nats_password: String,
}

impl Stack {
    fn new() -> Stack {
        remove_stacks_left_behind();
        let files = tempfile::tempdir().expect("temp dir");
        std::fs::write(files.path().join("test.yaml"), TEST_OVERRIDE).unwrap();
        let run = format!("{:08x}", rand::random::<u32>());
        // Nothing secret is given: the stack makes its own at the first start.
        let mut env = Vec::new();
        // Every published port on a free one, so nothing clashes with a stack
        // already running here and replicas can each publish theirs.
        for publish in [
            "NATS_PUBLISH",
            "NATS_MONITOR_PUBLISH",
            "POSTGRES_PUBLISH",
            "LISTINGS_PUBLISH",
            "MEMBERSHIP_PUBLISH",
            "NOTIFICATIONS_PUBLISH",
            "UNSUBSCRIBE_PUBLISH",
            "GATEWAY_PUBLISH",
        ] {
            env.push((publish, "127.0.0.1:".to_string()));
        }
        Stack {
            project: format!("selfhelp-ct-{run}"),
            files,
            env,
            postgres_password: String::new(),
            outside_password: String::new(),
            notifications_nats_password: String::new(),
        }
    }

    /// The secret `name` the stack made, as its containers read it.
    fn made_secret(&self, name: &str) -> String {
        let path = format!("/run/selfhelp-secrets/{name}");
        let secret = self.compose(&["exec", "-T", "listings", "cat", &path]);
        let secret = secret.trim().to_string();
        assert!(
            secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()),
            "{name} was not made at the first start: {} characters",
            secret.len()
        );
        secret
    }

    /// Reads the secrets the stack made; tokens are signed with its HS256 secret.
    fn learn_secrets(&mut self) {
        selfhelp_testkit::use_secret(&self.made_secret("hs256-secret"));
        self.postgres_password = self.made_secret("postgres-password");
        self.outside_password = self.made_secret("outside-nats-password");
        self.notifications_nats_password = self.made_secret("notifications-nats-password");
        let listings = self.made_secret("listings-nats-password");
        let distinct: std::collections::BTreeSet<&str> = [
            self.postgres_password.as_str(),
            &self.outside_password,
            &self.notifications_nats_password,
            &listings,
        ]
        .into();
        assert_eq!(distinct.len(), 4, "each secret is made on its own");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p")
            .arg(&self.project)
            .arg("--env-file")
            .arg(repo().join("deploy/local-images.env"))
            .arg("-f")
            .arg(repo().join("deploy/compose.yaml"))
            .arg("-f")
            .arg(self.files.path().join("test.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    fn compose(&self, args: &[&str]) -> String {
        String::from_utf8(run(&mut self.command(args)).stdout).expect("utf-8")
    }

    /// The host address publishing `port` of replica `index` (from 1) of `service`.
    fn addr(&self, service: &str, port: u16, index: usize) -> SocketAddr {
        let out = self.compose(&[
            "port",
            "--index",
            &index.to_string(),
            service,
            &port.to_string(),
        ]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{service} #{index} port {port}: {out:?}: {e}"))
    }

    /// The container id of replica `index` (from 1) of `service`.
    fn container(&self, service: &str, index: usize) -> String {
        let id = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--filter",
            &format!("label=com.docker.compose.container-number={index}"),
        ]);
        let id = id.trim().to_string();
        assert!(!id.is_empty(), "no container for {service} #{index}");
        id
    }

    /// Waits until every replica of every service answers SERVING on its
    /// published port. The port is looked up again on every try: a container
    /// that restarted (e.g. started before its database was up) publishes on
    /// a new one. On a timeout the stack's state and the replica's log are
    /// shown.
    async fn wait_serving(&self, replicas: [usize; 3]) {
        let deadline = Instant::now() + Duration::from_secs(180);
        for ((service, port, name), n) in SERVICES.into_iter().zip(replicas) {
            for index in 1..=n {
                loop {
                    if let Some(addr) = self.published(service, port, index)
                        && serving(addr, name).await
                    {
                        break;
                    }
                    if Instant::now() > deadline {
                        let state = self.command(&["ps"]).output().unwrap();
                        // Every service's last lines: the cause may be another's.
                        let log = self
                            .command(&["logs", "--no-color", "--tail", "25"])
                            .output()
                            .unwrap();
                        panic!(
                            "{service} #{index} not SERVING after 180 s\n{}\n{}",
                            String::from_utf8_lossy(&state.stdout),
                            String::from_utf8_lossy(&log.stdout)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// [`Stack::addr`], or `None` while the replica publishes no port.
    fn published(&self, service: &str, port: u16, index: usize) -> Option<SocketAddr> {
        let out = tokio::task::block_in_place(|| {
            self.command(&[
                "port",
                "--index",
                &index.to_string(),
                service,
                &port.to_string(),
            ])
            .output()
        })
        .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// A lazily connecting channel to each replica of membership.
    fn membership_channels(&self) -> Vec<tonic::transport::Channel> {
        (1..=2)
            .map(|i| lazy_channel(self.addr("membership", 50052, i)))
            .collect()
    }

    /// A new published group of alice's, and JOINS joins to it, IN_FLIGHT at a
    /// time, over both membership replicas.
    async fn burst_of_joins(&self) -> (String, JoinBurst) {
        let group_id = published_group(self.addr("listings", 50051, 1), REGION, "alice").await;
        let burst = JoinBurst::start(
            self.membership_channels(),
            REGION,
            &group_id,
            JOINS,
            IN_FLIGHT,
        );
        (group_id, burst)
    }

    /// listings', membership's and notifications' databases, through the published port.
    fn database_urls(&self) -> [String; 3] {
        let pg = self.addr("postgres", 5432, 1);
        ["listings", "membership", "notifications"]
            .map(|db| format!("postgres://selfhelp:{}@{pg}/{db}", self.postgres_password))
    }

    async fn assert_counted_once(&self, group_id: &str, label: &str) {
        let urls = self.database_urls();
        // Logged in as notifications, which may ask about its own consumers
        // through its account's JetStream imports (deploy/nats/accounts.conf).
        let notifications = async_nats::ConnectOptions::new()
            .user_and_password(
                "notifications".into(),
                self.notifications_nats_password.clone(),
            )
            .custom_inbox_prefix("_INBOX_notifications")
            .connect(self.addr("nats", 4222, 1).to_string())
            .await
            .expect("logging in to NATS as notifications");
        assert_every_join_counted_once(
            [&urls[0], &urls[1], &urls[2]],
            &async_nats::jetstream::with_prefix(notifications, "JS.API"),
            REGION,
            group_id,
            "alice",
            JOINS,
            label,
        )
        .await;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self
                .command(&["logs", "--no-color", "--tail", "60"])
                .status();
            // The warnings and errors of the whole run, last: what went wrong
            // is seldom in the tail of every log.
            // Services log to stderr, which newer docker-compose keeps apart;
            // the logs come container by container, so they are put in time order.
            if let Ok(all) = self
                .command(&["logs", "--no-color", "--timestamps"])
                .output()
            {
                let all = [all.stdout, all.stderr]
                    .map(|out| String::from_utf8_lossy(&out).into_owned())
                    .join("\n");
                let mut troubles: Vec<&str> = all
                    .lines()
                    .filter(|l| {
                        [" WARN ", " ERROR ", "\"WARN\"", "\"ERROR\""]
                            .iter()
                            .any(|mark| l.contains(mark))
                    })
                    .collect();
                // "name | TIMESTAMP message": by the timestamp docker added.
                troubles.sort_by_key(|l| l.split_once("| ").map_or(*l, |(_, rest)| rest));
                eprintln!(
                    "containers: the last warnings and errors of {} in all:",
                    troubles.len()
                );
                for line in &troubles[troubles.len().saturating_sub(60)..] {
                    eprintln!("{line}");
                }
            }
        }
        let _ = self
            .command(&["down", "--volumes", "--remove-orphans", "--timeout", "5"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the images deploy/local-images.sh makes; .ci/run runs it"]
async fn the_compose_stack_journey_scaling_faults_and_a_graceful_stop() {
    let started = Instant::now();
    let mut stack = Stack::new();
    stack.compose(&[
        "up",
        "-d",
        "--no-build",
        "--scale",
        "membership=2",
        "--scale",
        "notifications=2",
    ]);
    stack.wait_serving([1, 2, 2]).await;
    stack.learn_secrets();
    eprintln!(
        "containers: NATS, PostgreSQL, listings, 2 × membership, 2 × notifications serving (with the secrets they made at the first start) after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    journey(&stack).await;
    scaling(&stack).await;
    kill_and_start_one_replica_of_each(&stack).await;
    cut_nats_off(&stack).await;
    restart_postgres(&stack).await;
    graceful_stop(&stack).await;
    eprintln!(
        "containers: all phases passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

async fn journey(stack: &Stack) {
    let listings = stack.addr("listings", 50051, 1);
    let group_id = published_group(listings, REGION, "alice").await;

    // Anyone finds it, with no token at all.
    let mut lc = ListingsServiceClient::new(channel(listings).await);
    eventually(
        "the group in anonymous search",
        Duration::from_secs(30),
        || {
            let mut lc = lc.clone();
            let group_id = group_id.clone();
            async move {
                let found = lc
                    .search_groups(lpb::SearchGroupsRequest {
                        query: "walking".into(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                found.groups.iter().any(|g| g.id == group_id).then_some(())
            }
        },
    )
    .await;
    let card = lc
        .get_group(lpb::GetGroupRequest {
            group_id: group_id.clone(),
        })
        .await
        .expect("the public card")
        .into_inner();
    assert_eq!(card.name, "Thursday walking group");

    // And through the front door: its web page and its ORUK document.
    let web = format!("http://{}", stack.addr("gateway", 8080, 1));
    let http = reqwest::Client::new();
    eventually("the gateway ready", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), format!("{web}/readyz"));
        async move {
            let answer = http.get(url).send().await.ok()?;
            (answer.status().as_u16() == 200).then_some(())
        }
    })
    .await;
    let page = http
        .get(format!("{web}/groups/{group_id}"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Thursday walking group")
    );
    let service: serde_json::Value = http
        .get(format!("{web}/oruk/services/{group_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("ORUK JSON");
    assert_eq!(service["id"], group_id.as_str());
    web_sign_in_and_erasure(stack, &web).await;

    // Bob joins; the organiser is told, bob welcomed.
    let mut mc = MembershipServiceClient::new(channel(stack.addr("membership", 50052, 1)).await);
    mc.join_group(with_token(
        join_request(&group_id),
        &token("bob", REGION, &[]),
    ))
    .await
    .expect("bob joins");
    let nc = NotificationsServiceClient::new(channel(stack.addr("notifications", 50053, 1)).await);
    let told = notified(&nc, REGION, "alice", npb::NotificationKind::MemberJoined).await;
    assert_eq!(told.group_id, group_id);
    notified(&nc, REGION, "bob", npb::NotificationKind::Welcome).await;
    eprintln!(
        "containers: journey done: created, approved, found anonymously (gRPC, web page, ORUK), joined, organiser told"
    );

    partner_reads_the_public_stream_only(stack, &group_id).await;
}

/// A partner's system logged in to the published NATS port as `outside-subscriber`.
async fn partner_reads_the_public_stream_only(stack: &Stack, group_id: &str) {
    let violations = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = violations.clone();
    let client = async_nats::ConnectOptions::new()
        .user_and_password("outside-subscriber".into(), stack.outside_password.clone())
        .custom_inbox_prefix("_INBOX_OUTSIDE")
        .request_timeout(Some(Duration::from_secs(2)))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(stack.addr("nats", 4222, 1).to_string())
        .await
        .expect("the partner logs in to NATS");
    // Its account reaches PUBLIC through imports under the prefix JS.API
    // (deploy/nats/accounts.conf).
    let js = async_nats::jetstream::with_prefix(client.clone(), "JS.API");

    // The directory as the public sees it, through the pull consumer
    // listings made for the partner (it may not make one).
    let stream = js
        .get_stream("PUBLIC")
        .await
        .expect("the partner sees PUBLIC");
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer("outside-subscriber")
        .await
        .expect("listings made the partner's consumer");
    let listed = format!("selfhelp.{REGION}.public.group.changed");
    let mut messages = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("the partner fetches");
    let mut saw_listed = false;
    while let Some(message) = messages.next().await {
        let message = message.expect("a public event");
        let about_it = message
            .headers
            .as_ref()
            .and_then(|h| h.get("ce-subject"))
            .is_some_and(|s| s.as_str() == group_id);
        saw_listed |= message.subject.as_str() == listed && about_it;
        message.ack().await.expect("ack");
    }
    assert!(saw_listed, "the partner read {listed} for the group");
    let own = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("outside-subscriber-own".into()),
        ..Default::default()
    };
    assert!(
        stream.create_consumer(own).await.is_err(),
        "the partner made a consumer"
    );

    // Listings (person ids, drafts, notes), membership and privacy: neither
    // the streams nor the subjects.
    for stream in ["LISTINGS", "MEMBERSHIP", "PRIVACY"] {
        assert!(
            js.get_stream(stream).await.is_err(),
            "the partner may not look at {stream}"
        );
        refused_to_partner(&violations, &format!("JS.API.STREAM.INFO.{stream}")).await;
    }
    for subject in [
        format!("selfhelp.{REGION}.listings.>"),
        format!("selfhelp.{REGION}.membership.>"),
        format!("selfhelp.{REGION}.privacy.>"),
    ] {
        let _subscription = client
            .subscribe(subject.clone())
            .await
            .expect("subscribe sent");
        refused_to_partner(&violations, &subject).await;
    }
    eprintln!(
        "containers: the partner read {listed} and was refused a consumer of its own, LISTINGS, MEMBERSHIP, PRIVACY and their subjects"
    );
}

/// Waits for the server to tell the partner it may not use `subject`.
async fn refused_to_partner(violations: &std::sync::Mutex<Vec<String>>, subject: &str) {
    eventually(
        &format!("the server refusing the partner {subject}"),
        Duration::from_secs(10),
        || async {
            violations
                .lock()
                .unwrap()
                .iter()
                .any(|v| v.contains("Permissions Violation") && v.contains(subject))
                .then_some(())
        },
    )
    .await;
}

async fn scaling(stack: &Stack) {
    let started = Instant::now();
    let (group_id, burst) = stack.burst_of_joins().await;
    let retried = burst.finish().await;
    eprintln!(
        "containers: {JOINS} joins over 2 membership replicas answered in {:.1} s ({retried} retried)",
        started.elapsed().as_secs_f64()
    );
    stack
        .assert_counted_once(&group_id, "containers, scaled")
        .await;
    for index in 1..=2 {
        // The services log to stderr.
        let out =
            run(Command::new("docker").args(["logs", &stack.container("notifications", index)]));
        let logs = String::from_utf8_lossy(&out.stderr).into_owned();
        let batches = logs
            .lines()
            .filter(|l| l.contains("batch handled") && l.contains("notifications-notts-membership"))
            .count();
        eprintln!(
            "containers: notifications #{index} handled {batches} batches of membership events"
        );
        assert!(
            batches > 0,
            "notifications replica {index} consumed nothing"
        );
    }
    // What each container holds after the load (sizes the Kubernetes limits).
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", stack.project),
    ]);
    let mut args = vec![
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}: {{.MemUsage}}",
    ];
    args.extend(ids.split_whitespace());
    eprintln!(
        "containers: memory after the load:\n{}",
        docker(&args).trim_end()
    );
}

/// Runs a burst of joins to a new group, calls `fault` once a third of them
/// are in, then checks every count once the burst is over; returns how many
/// calls were refused with each code (and retried).
async fn burst_through(
    stack: &Stack,
    label: &str,
    fault: impl AsyncFnOnce(&JoinBurst),
) -> BTreeMap<String, usize> {
    let (group_id, burst) = stack.burst_of_joins().await;
    burst.reached(JOINS / 3).await;
    fault(&burst).await;
    let refusals = burst.refusals.clone();
    let retried = burst.finish().await;
    let refusals = refusals.lock().unwrap().clone();
    eprintln!("containers: {label}: every join answered ({retried} calls retried: {refusals:?})");
    stack
        .assert_counted_once(&group_id, &format!("containers, {label}"))
        .await;
    refusals
}

async fn kill_and_start_one_replica_of_each(stack: &Stack) {
    burst_through(
        stack,
        "one replica of each killed",
        async |burst: &JoinBurst| {
            let killed: Vec<String> = ["listings", "membership", "notifications"]
                .iter()
                .map(|service| stack.container(service, 1))
                .collect();
            for id in &killed {
                docker(&["kill", id]);
            }
            eprintln!("containers: docker kill listings #1, membership #1, notifications #1");
            tokio::time::sleep(Duration::from_secs(2)).await;
            for id in &killed {
                docker(&["start", id]);
            }
            // A started container publishes on a new free port.
            stack.wait_serving([1, 2, 2]).await;
            *burst.endpoints.write().await = stack.membership_channels();
        },
    )
    .await;
}

async fn cut_nats_off(stack: &Stack) {
    burst_through(stack, "NATS cut off for 10 s", async |_: &JoinBurst| {
        let network = format!("{}_default", stack.project);
        let nats = stack.container("nats", 1);
        docker(&["network", "disconnect", &network, &nats]);
        eprintln!("containers: NATS disconnected from the network");
        tokio::time::sleep(Duration::from_secs(10)).await;
        docker(&["network", "connect", "--alias", "nats", &network, &nats]);
        eprintln!("containers: NATS connected again");
    })
    .await;
}

async fn restart_postgres(stack: &Stack) {
    let refusals = burst_through(stack, "PostgreSQL restarted", async |_: &JoinBurst| {
        docker(&["restart", "--time", "5", &stack.container("postgres", 1)]);
        eprintln!("containers: docker restart postgres");
    })
    .await;
    // JoinBurst fails on any INTERNAL; while the database was away the calls
    // were refused, and only as UNAVAILABLE.
    assert!(
        refusals.get("Unavailable").is_some_and(|n| *n > 0),
        "calls were refused while the database was away: {refusals:?}"
    );
    assert!(
        refusals.keys().all(|code| code == "Unavailable"),
        "refused as UNAVAILABLE only: {refusals:?}"
    );
}

async fn graceful_stop(stack: &Stack) {
    let group_id = published_group(stack.addr("listings", 50051, 1), REGION, "alice").await;
    let workers = 32;
    let joins = JoinsUntilRefused::start(
        stack.membership_channels(),
        REGION,
        &group_id,
        workers,
        50_000,
    );
    joins.accepted_at_least(200).await;
    // What `docker-compose stop` does, SIGTERM then up to stop_grace_period for
    // the process to end, with the moment the signal left known to the test.
    let replicas = [
        stack.container("membership", 1),
        stack.container("membership", 2),
    ];
    for id in &replicas {
        let grace = docker(&["inspect", "-f", "{{.Config.StopTimeout}}", id]);
        assert_eq!(grace.trim(), "15", "compose gives membership 15 s to stop");
    }
    let busy = joins.stop_begins();
    docker(&["kill", "--signal", "TERM", &replicas[0], &replicas[1]]);
    joins.stop_sent();
    let outcome = joins.finish(busy).await;
    let exits = docker(&["wait", &replicas[0], &replicas[1]]);
    eprintln!(
        "containers: SIGTERM to both membership replicas with {busy} calls in flight: {} accepted, \
         {} answered after the signal, {} cut off; refused {:?}; exit codes {:?}",
        outcome.accepted.len(),
        outcome.answered_after_stop,
        outcome.cut_off,
        outcome.refused,
        exits.split_whitespace().collect::<Vec<_>>(),
    );
    outcome.assert_none_cut_off(workers);
    assert!(
        exits.split_whitespace().all(|code| code == "0"),
        "both replicas exited cleanly within their drain deadline: {exits}"
    );
    stack.compose(&["start", "membership"]);
    let active = active_members(&stack.database_urls()[1], &group_id).await;
    assert!(
        active >= outcome.accepted.len() as i64,
        "every accepted join is there"
    );
}

/// No deployment file carries a secret: every password and secret compose
/// hands a container is a file in the volume `selfhelp secrets init` fills at
/// the first start, and none has a default written in the file. (Runs without
/// Docker.)
#[test]
fn compose_reads_every_secret_from_the_volume_made_at_first_start() {
    let compose = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    let mut seen = 0;
    for (n, line) in compose.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !(key.contains("PASSWORD") || key.contains("SECRET")) || key.contains(' ') {
            continue;
        }
        seen += 1;
        assert!(
            key.ends_with("_FILE") && value.trim().starts_with("/run/selfhelp-secrets/"),
            "line {}: {line}: secrets come from the generated volume",
            n + 1
        );
    }
    assert!(
        seen >= 5,
        "the services, NATS and PostgreSQL read their secrets"
    );
    for url in compose
        .lines()
        .filter(|l| l.contains("://") && !l.trim().starts_with('#'))
    {
        assert!(
            !url.contains(":${") && !url.contains("-password"),
            "a password in a URL: {url}"
        );
    }
    assert!(
        !repo().join("deploy/secrets").exists(),
        "deploy/secrets held a committed development secret"
    );
    let nats =
        std::fs::read_to_string(repo().join("deploy/nats/with-generated-passwords.sh")).unwrap();
    for user in [
        "LISTINGS",
        "MEMBERSHIP",
        "NOTIFICATIONS",
        "GATEWAY",
        "OUTSIDE",
    ] {
        assert!(
            nats.contains(&format!("{user}_NATS_PASSWORD=$(read_secret")),
            "{user}"
        );
    }
}

/// The observability profile's Prometheus configuration and alert rules load,
/// and every alert fires when it should and only then (`alerts.test.yml`), by
/// Prometheus's own `promtool`. CI installs it (Debian's `prometheus`); without
/// it this says so loudly, and fails where SELFHELP_NO_SKIPS is set.
#[test]
fn prometheus_configuration_and_alerts_pass_promtool() {
    let dir = repo().join("deploy/prometheus");
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let found = Command::new(&promtool).arg("--version").output().is_ok();
    if !found {
        selfhelp_testkit::not_run(
            "the promtool checks of deploy/prometheus",
            "promtool not found (apt-get install prometheus)",
        );
        return;
    }
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Metric names (`selfhelp_…`, `grpc_server_…`) written in `text`, without the
/// suffixes Prometheus adds to histograms.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["selfhelp_", "grpc_server_"] {
        for (at, _) in text.match_indices(prefix) {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let name = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            names.insert(name);
        }
    }
    names
}

/// What the alerts and the dashboard use is what the services serve: each
/// metric is registered in the code and explained in docs/operations.md.
#[test]
fn the_alerts_and_the_dashboard_use_metrics_that_exist_and_are_documented() {
    let read = |path: &str| std::fs::read_to_string(repo().join(path)).unwrap();
    let docs = read("docs/operations.md");
    let mut code = String::new();
    for path in [
        "crates/platform/src/metrics.rs",
        "services/listings/src/metrics.rs",
        "services/notifications/src/metrics.rs",
    ] {
        code.push_str(&read(path));
    }
    let used: Vec<(String, &str)> = [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboards/selfhelp.json",
    ]
    .into_iter()
    .flat_map(|file| {
        metric_names(&read(file))
            .into_iter()
            .map(move |n| (n, file))
    })
    .collect();
    assert!(used.len() > 15, "{used:?}");
    for (name, file) in used {
        // Counters are registered without `_total`, which the encoder adds.
        let registered = name.strip_suffix("_total").unwrap_or(&name);
        assert!(
            code.contains(&format!("\"{registered}\"")),
            "{file} uses {name}, which no service registers"
        );
        assert!(
            docs.contains(&format!("`{name}`")),
            "{file} uses {name}, which docs/operations.md does not explain"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/selfhelp.json")).unwrap();
    assert_eq!(dashboard["uid"], "selfhelp-overview");
}

/// The website as the stack runs it: a sign-in link (written to the mail
/// volume, as `deploy/compose.yaml` sends email unless SMTP is set), a
/// signed-in page that calls membership with the gateway's token (the
/// services trust its keys), and an erasure every service confirms through
/// NATS (the gateway as its own NATS user).
async fn web_sign_in_and_erasure(stack: &Stack, web: &str) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let hidden = |page: &str, name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let rest = &page[page
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {page}"))
            + marker.len()..];
        rest[..rest.find('"').unwrap()].replace("&#x2f;", "/")
    };
    let form = browser
        .get(format!("{web}/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let asked = browser
        .post(format!("{web}/sign-in"))
        .form(&[
            ("csrf", hidden(&form, "csrf")),
            ("email", "web-person@example.org".into()),
            ("next", "/my/groups".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 303, "the sign-in form");
    let link_token = eventually(
        "the sign-in email in the mail volume",
        Duration::from_secs(30),
        || {
            let mail = stack.compose(&[
                "exec",
                "-T",
                "gateway",
                "sh",
                "-c",
                "cat /var/lib/selfhelp/mail/*.eml 2>/dev/null || true",
            ]);
            async move {
                let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
                let at = unfolded.find("/sign-in/link/")? + "/sign-in/link/".len();
                Some(
                    unfolded[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect::<String>(),
                )
            }
        },
    )
    .await;
    let page = browser
        .get(format!("{web}/sign-in/link/{link_token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed = browser
        .post(format!("{web}/sign-in/link"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("token", link_token.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303, "signed in");
    // The gateway's token, checked by membership against the gateway's keys.
    let mine = browser
        .get(format!("{web}/my/groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        mine.status().as_u16(),
        200,
        "a signed-in page calling membership"
    );
    let download: serde_json::Value = browser
        .get(format!("{web}/my/data/download"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("the download");
    let person = download["person_id"].as_str().unwrap().to_string();
    let data = browser
        .get(format!("{web}/my/data"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let erased = browser
        .post(format!("{web}/my/data/erase"))
        .form(&[("csrf", hidden(&data, "csrf")), ("confirm", "1".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status().as_u16(), 200);
    let erased = erased.text().await.unwrap();
    assert!(erased.contains("erased</h1>"), "{erased}");
    // Every service confirms, the gateway among them.
    let mut mc = MembershipServiceClient::new(channel(stack.addr("membership", 50052, 1)).await);
    let status = eventually(
        "every service to confirm the erasure",
        Duration::from_secs(60),
        || {
            let request = with_token(
                mpb::GetErasureStatusRequest {},
                &token(&person, REGION, &[]),
            );
            let mut mc = mc.clone();
            async move {
                let status = mc.get_erasure_status(request).await.ok()?.into_inner();
                status.complete.then_some(status)
            }
        },
    )
    .await;
    assert!(
        status.confirmations.iter().any(|c| c.service == "gateway"),
        "{status:?}"
    );
    let _ = &mut mc;
    eprintln!(
        "containers: signed in on the web by the emailed link, read a page as the person, erased everywhere"
    );
}
