//! The system benchmark: the whole of selfhelp as users run it, measured from
//! outside. It starts `selfhelp up` as a separate process (real gRPC over TCP,
//! a real nats-server, SQLite files — and, when `TEST_DATABASE_URL` is set, the
//! same again on PostgreSQL), lists a directory through the public API, then
//! loads it from this process with a tonic client: one call at a time for
//! latency, 64 in flight (4 connections × 16) for throughput. The floor,
//! `grpc.health.v1.Health/Check` on the same server, is measured in the same
//! run, and every figure is printed with its ratio to it. The gateway's pages
//! and ORUK API are timed over HTTP the same way, beside the gRPC calls they wrap.
//! Memory is measured for `up` and, on an empty directory and again after the
//! load, for each service in a process of its own (see `services_alone`); on
//! SQLite also for listings alone on the directory copied ten times (100,000
//! groups by default, see `listings_on_copies`). A person's own pages (my
//! groups, the inbox) are timed signed in on the web, with 100,000
//! memberships in the system, beside the calls to the services they make
//! (see `signed_in_pages`).
//!
//! ```text
//! cargo bench -p selfhelp --bench system                      # 10,000 groups, 2,000 joins
//! cargo bench -p selfhelp --bench system -- --groups 2000 --joins 500 --seconds 3
//! cargo bench -p selfhelp --bench system -- --backend sqlite  # skip PostgreSQL
//! cargo bench -p selfhelp --bench system -- --directory-copies 0  # skip the 100,000 groups
//! cargo bench -p selfhelp --bench system -- --memberships 0       # skip the signed-in pages
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::notifications::v1 as npb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const REGION: &str = "bench";
/// Connections × calls in flight on each, for the throughput figures.
const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 16;
const TOPICS: &[&str] = &[
    "bereavement",
    "carers",
    "diabetes",
    "cancer",
    "anxiety",
    "depression",
    "alcohol",
    "parenting",
];
/// (town, outward postcode, latitude, longitude): groups spread around Nottinghamshire.
const TOWNS: &[(&str, &str, f64, f64)] = &[
    ("Nottingham", "NG1", 52.9540, -1.1496),
    ("Beeston", "NG9", 52.9270, -1.2230),
    ("Carlton", "NG4", 52.9710, -1.0870),
    ("Hucknall", "NG15", 53.0390, -1.2040),
    ("Mansfield", "NG18", 53.1420, -1.1980),
    ("Newark", "NG24", 53.0760, -0.8090),
    ("Worksop", "S80", 53.3020, -1.1240),
    ("Retford", "DN22", 53.3220, -0.9430),
];
const WORDS: &[&str] = &[
    "support",
    "circle",
    "café",
    "peer",
    "friends",
    "walk",
    "talk",
    "coffee",
    "morning",
    "evening",
    "recovery",
    "wellbeing",
    "hope",
];

struct Options {
    groups: usize,
    /// Listings alone on the listed directory copied this many times (SQLite; 0: not measured).
    directory_copies: usize,
    joins: usize,
    /// Memberships in all before a person's own pages are timed (0: not timed).
    memberships: usize,
    seconds: u64,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        groups: 10_000,
        directory_copies: 10,
        joins: 2_000,
        memberships: 100_000,
        seconds: 5,
        backends: vec!["sqlite".into()],
    };
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    if postgres {
        o.backends.push("postgres".into());
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--bench" => {}
            "--groups" => o.groups = value("--groups").parse().expect("--groups N"),
            "--joins" => o.joins = value("--joins").parse().expect("--joins N"),
            "--memberships" => {
                o.memberships = value("--memberships").parse().expect("--memberships N")
            }
            "--directory-copies" => {
                o.directory_copies = value("--directory-copies")
                    .parse()
                    .expect("--directory-copies N")
            }
            "--seconds" => o.seconds = value("--seconds").parse().expect("--seconds S"),
            "--backend" => o.backends = vec![value("--backend")],
            other => panic!("unknown argument {other}"),
        }
    }
    if o.backends.iter().any(|b| b == "postgres") && !postgres {
        panic!("--backend postgres needs TEST_DATABASE_URL");
    }
    if !postgres {
        println!("TEST_DATABASE_URL not set: PostgreSQL NOT measured (SQLite only)");
    }
    o
}

fn main() {
    // Started again by `services_alone` as one service: the body of its binary.
    if let Ok(service) = std::env::var(SERVE_ALONE_ENV) {
        std::process::exit(serve_alone(&service));
    }
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut reports = Vec::new();
    for backend in &opts.backends {
        reports.push(runtime.block_on(run_backend(backend, &opts)));
    }
    println!();
    println!(
        "selfhelp system benchmark — {} groups with schedules, {} joins; {} cores; {}",
        opts.groups,
        opts.joins,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono_like_now()
    );
    print_table(&reports);
}

/// What one backend measured, as (label, value) rows.
struct Report {
    backend: String,
    rows: Vec<(String, String)>,
}

fn print_table(reports: &[Report]) {
    let labels: Vec<&String> = reports[0].rows.iter().map(|(l, _)| l).collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    print!("| {:width$} |", "", width = width);
    for r in reports {
        print!(" {} |", r.backend);
    }
    println!();
    print!("|{}|", "-".repeat(width + 2));
    for _ in reports {
        print!("---|");
    }
    println!();
    for label in &labels {
        print!("| {label:width$} |", width = width);
        for r in reports {
            // A row only one backend measures (the copied directory) is "—" for the other.
            let value = r
                .rows
                .iter()
                .find(|(l, _)| l == *label)
                .map_or("—", |(_, v)| v);
            print!(" {value} |");
        }
        println!();
    }
}

fn chrono_like_now() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d %H:%M %Z")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The running `selfhelp up`, stopped (SIGTERM) when dropped.
struct Up {
    child: Child,
    /// listings', membership's and notifications' gRPC ports, then the web port.
    ports: [u16; 4],
}

impl Up {
    /// Starts `selfhelp up` on ports the system picks and returns once it
    /// printed `ready:` (with the ports it printed), with how long that took.
    fn start(
        data_dir: &Path,
        databases: &[Option<String>; 3],
        gateway_database: Option<&str>,
    ) -> (Up, Duration) {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_selfhelp"));
        cmd.arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--region", REGION])
            .args(["--listings-port", "0"])
            .args(["--membership-port", "0"])
            .args(["--notifications-port", "0"])
            .args(["--unsubscribe-port", "0"])
            .args(["--web-port", "0"])
            .env("SELFHELP_LOG__LEVEL", "warn")
            // One client making thousands of calls a second is the point here.
            .env("SELFHELP_GRPC__RATE_PER_ADDRESS", "0")
            .env("SELFHELP_GRPC__RATE_PER_PERSON", "0")
            .env("SELFHELP_HTTP__RATE_LIMIT_PER_SECOND", "0")
            .env_remove("SELFHELP_NATS__URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (flag, db) in [
            "--listings-database",
            "--membership-database",
            "--notifications-database",
        ]
        .iter()
        .zip(databases)
        {
            if let Some(url) = db {
                cmd.arg(flag).arg(url);
            }
        }
        if let Some(url) = gateway_database {
            cmd.arg("--gateway-database").arg(url);
        }
        let mut child = cmd.spawn().expect("starting selfhelp up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("ready:") => break,
                Some(Ok(line)) => printed.push(line),
                _ => panic!("selfhelp up ended before it was ready"),
            }
        }
        let port = |name: &str, scheme: &str| -> u16 {
            let prefix = format!("{scheme}127.0.0.1:");
            printed
                .iter()
                .filter(|l| l.trim_start().starts_with(name))
                .find_map(|l| l.split_once(&prefix))
                .and_then(|(_, rest)| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("{name}'s address in {printed:#?}"))
        };
        let ports = [
            port("listings", "grpc://"),
            port("membership", "grpc://"),
            port("notifications", "grpc://"),
            port("web", "http://"),
        ];
        let elapsed = started.elapsed();
        // Keep reading so `up` never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (Up { child, ports }, elapsed)
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Resident memory of the process, in MiB.
    fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three fresh PostgreSQL databases on the server at TEST_DATABASE_URL, dropped at the end.
struct PgDatabases {
    admin: String,
    names: Vec<String>,
}

impl PgDatabases {
    /// The three services' databases, and the gateway's.
    async fn create() -> (PgDatabases, [Option<String>; 3], Option<String>) {
        let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
        let conn = selfhelp_platform::db::connect(&admin, 1)
            .await
            .expect("connecting to TEST_DATABASE_URL");
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let names: Vec<String> = ["listings", "membership", "notifications", "gateway"]
            .iter()
            .map(|s| format!("selfhelp_bench_{s}_{suffix}"))
            .collect();
        for n in &names {
            conn.execute_unprepared(&format!("CREATE DATABASE {n}"))
                .await
                .expect("creating a benchmark database");
        }
        let urls = names
            .iter()
            .map(|n| Some(with_database(&admin, n)))
            .collect::<Vec<_>>();
        (
            PgDatabases { admin, names },
            [urls[0].clone(), urls[1].clone(), urls[2].clone()],
            urls[3].clone(),
        )
    }

    async fn drop_all(self) {
        if let Ok(conn) = selfhelp_platform::db::connect(&self.admin, 1).await {
            for n in &self.names {
                let _ = conn
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn run_backend(backend: &str, opts: &Options) -> Report {
    println!("== {backend}");
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_path_buf();
    let secret = selfhelp_platform::auth::generate_secret();
    std::fs::write(data_dir.join("dev-secret"), &secret).expect("writing the secret");
    let (pg, databases, gateway_database) = if backend == "postgres" {
        let (pg, urls, gateway) = PgDatabases::create().await;
        (Some(pg), urls, gateway)
    } else {
        (None, [None, None, None], None)
    };
    let mut rows = Vec::new();

    println!("each service in a process of its own, on an empty directory…");
    let alone = services_alone(&data_dir, &databases).await;
    rows.push((
        "memory (anonymous), idle, each service alone, empty: listings / membership / notifications".into(),
        alone_memory(alone),
    ));

    let (up, first_start) = Up::start(&data_dir, &databases, gateway_database.as_deref());
    println!(
        "started (empty) in {first_start:.2?}; listing {} groups…",
        opts.groups
    );
    let tokens = Tokens { secret };
    let ids = seed(&up, &tokens, opts.groups).await;
    up.stop();

    let (up, restart) = Up::start(&data_dir, &databases, gateway_database.as_deref());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = up.rss_mib();
    rows.push((
        "`up` start-up with existing data, to ready".into(),
        format!("{:.0} ms", restart.as_secs_f64() * 1e3),
    ));
    rows.push((
        "resident memory, idle (three services, one process)".into(),
        format!("{idle_rss:.0} MiB"),
    ));
    wait_indexed(&up, opts.groups).await;

    let listings = channel(&up.url(0)).await;
    let ids = Arc::new(ids);
    let search = |i: usize| {
        let (_, outward, _, _) = TOWNS[i % TOWNS.len()];
        lpb::SearchGroupsRequest {
            query: format!("{} {}", TOPICS[i % TOPICS.len()], WORDS[i % WORDS.len()]),
            postcode: outward.into(),
            radius_km: 10.0,
            ..Default::default()
        }
    };

    // One call at a time.
    let health_lat = latency(2_000, {
        let ch = listings.clone();
        move |_| {
            let mut c = HealthClient::new(ch.clone());
            async move { c.check(HealthCheckRequest::default()).await.map(|_| ()) }
        }
    })
    .await;
    let get_lat = latency(2_000, {
        let (ch, ids) = (listings.clone(), ids.clone());
        move |i| get_group(ch.clone(), &ids, i)
    })
    .await;
    let search_lat = latency(2_000, {
        let ch = listings.clone();
        move |i| {
            let mut c = ListingsServiceClient::new(ch.clone());
            let req = search(i);
            async move { c.search_groups(req).await.map(|_| ()) }
        }
    })
    .await;
    rows.push((
        "Health/Check, one at a time: p50 / p99".into(),
        health_lat.p50_p99(),
    ));
    rows.push((
        "GetGroup, one at a time: p50 / p99".into(),
        get_lat.p50_p99(),
    ));
    rows.push((
        "SearchGroups (words + postcode), one at a time: p50 / p99".into(),
        search_lat.p50_p99(),
    ));

    // The front door, as a browser or an ORUK reader meets it: HTTP/1.1 with
    // keep-alive, one request at a time.
    let web = up.url(3);
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client");
    let search_page = latency(1_000, {
        let (http, web) = (http.clone(), web.clone());
        move |i| {
            let (_, outward, _, _) = TOWNS[i % TOWNS.len()];
            let path = format!(
                "/?q={}+{}&postcode={outward}",
                TOPICS[i % TOPICS.len()],
                WORDS[i % WORDS.len()]
            );
            http_get(http.clone(), format!("{web}{path}"))
        }
    })
    .await;
    let group_page = latency(1_000, {
        let (http, web, ids) = (http.clone(), web.clone(), ids.clone());
        move |i| {
            http_get(
                http.clone(),
                format!("{web}/groups/{}", ids[(i * 7919) % ids.len()]),
            )
        }
    })
    .await;
    let pages_of_50 = ids.len().div_ceil(50).max(1);
    let oruk_page = latency(500, {
        let (http, web) = (http.clone(), web.clone());
        move |i| {
            let page = 1 + (i * 31) % pages_of_50;
            http_get(
                http.clone(),
                format!("{web}/oruk/services?page={page}&per_page=50"),
            )
        }
    })
    .await;
    rows.push((
        "web search page (words + postcode), one at a time: p50 / p99".into(),
        search_page.p50_p99(),
    ));
    rows.push((
        "web group page, one at a time: p50 / p99".into(),
        group_page.p50_p99(),
    ));
    rows.push((
        "ORUK /services, pages of 50, one at a time: p50 / p99".into(),
        oruk_page.p50_p99(),
    ));
    rows.push((
        "gateway's own time (group page − GetGroup, p50)".into(),
        format!("{:.2} ms", group_page.pct(0.50) - get_lat.pct(0.50)),
    ));

    // 64 in flight.
    println!("Health/Check, GetGroup, SearchGroups, 64 in flight…");
    let seconds = Duration::from_secs(opts.seconds);
    let channels = channels(&up.url(0)).await;
    let floor = throughput(&channels, seconds, |ch, _| {
        let mut c = HealthClient::new(ch);
        async move { c.check(HealthCheckRequest::default()).await.map(|_| ()) }
    })
    .await;
    let get = throughput(&channels, seconds, {
        let ids = ids.clone();
        move |ch, i| get_group(ch, &ids, i)
    })
    .await;
    let found = throughput(&channels, seconds, move |ch, i| {
        let mut c = ListingsServiceClient::new(ch);
        let req = search(i);
        async move { c.search_groups(req).await.map(|_| ()) }
    })
    .await;
    rows.push((
        "Health/Check, 64 in flight (the floor)".into(),
        format!("{:.1}k/s", floor / 1e3),
    ));
    rows.push((
        "GetGroup, 64 in flight".into(),
        format!("{:.1}k/s = {:.2}×", get / 1e3, get / floor),
    ));
    rows.push((
        "SearchGroups, 64 in flight".into(),
        format!("{:.1}k/s = {:.2}×", found / 1e3, found / floor),
    ));

    // Joins: one at a time, then many: accepted, and every welcome in its inbox.
    let join_lat = latency(500, {
        let (ch, ids) = (channel(&up.url(1)).await, ids.clone());
        let people: Vec<String> = (0..550)
            .map(|i| tokens.mint(&format!("alone-{i}"), &[]))
            .collect();
        move |i| {
            let mut c = MembershipServiceClient::new(ch.clone());
            let req = authed(
                mpb::JoinGroupRequest {
                    group_id: ids[(i * 13 + 1) % ids.len()].clone(),
                    consent: consent(),
                    ..Default::default()
                },
                &people[i],
            );
            async move { c.join_group(req).await.map(|_| ()) }
        }
    })
    .await;
    rows.push((
        "JoinGroup, one at a time: p50 / p99".into(),
        join_lat.p50_p99(),
    ));
    println!("{} joins, 64 in flight…", opts.joins);
    let (accepted, welcomed) = join_burst(&up, &tokens, &ids, opts.joins).await;
    rows.push((
        format!("{} joins, 64 in flight: accepted", opts.joins),
        format!("{accepted:.0}/s"),
    ));
    rows.push((
        format!("{} joins: every welcome in its inbox", opts.joins),
        format!("{welcomed:.0}/s"),
    ));
    println!("joins at a steady 200/s…");
    let welcome_lat = join_latency(&up, &tokens, &ids, 200.0, Duration::from_secs(5)).await;
    rows.push((
        "JoinGroup → welcome in ListNotifications at 200 joins/s: p50 / p99".into(),
        welcome_lat.p50_p99(),
    ));
    if opts.memberships > 0 {
        rows.extend(signed_in_pages(&up, &tokens, &ids, opts.memberships, &data_dir).await);
    }
    rows.push((
        "resident memory after the load".into(),
        format!("{:.0} MiB", up.rss_mib()),
    ));
    up.stop();
    println!("each service in a process of its own, on this data…");
    let alone = services_alone(&data_dir, &databases).await;
    rows.push((
        format!(
            "memory (anonymous), idle, each service alone, {} groups: listings / membership / notifications",
            opts.groups
        ),
        alone_memory(alone),
    ));
    if backend == "sqlite" && opts.directory_copies > 1 {
        println!(
            "listings alone on the directory copied {}×…",
            opts.directory_copies
        );
        let (groups, ready, (rss, anon)) =
            listings_on_copies(&data_dir, opts.directory_copies).await;
        rows.push((
            format!("listings alone, {groups} groups (copies, longer descriptions): to ready; memory (anonymous)"),
            format!("{:.1} s; {rss:.0} ({anon:.0}) MiB", ready.as_secs_f64()),
        ));
    }
    if let Some(pg) = pg {
        pg.drop_all().await;
    }
    Report {
        backend: backend.to_string(),
        rows,
    }
}

/// Set when this program is started again as one service (`services_alone`).
const SERVE_ALONE_ENV: &str = "SELFHELP_BENCH_SERVE_ALONE";
const SERVICES: [&str; 3] = ["listings", "membership", "notifications"];

/// Runs `service` the way its own binary does (`selfhelp_platform::service::main`
/// on tokio's default runtime), configured from the environment.
fn serve_alone(service: &str) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async {
        match service {
            "listings" => selfhelp_platform::service::main(selfhelp_listings::run).await,
            "membership" => selfhelp_platform::service::main(selfhelp_membership::run).await,
            "notifications" => selfhelp_platform::service::main(selfhelp_notifications::run).await,
            other => panic!("no service {other}"),
        }
    });
    if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    }
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A size from `/proc/<pid>/status` (e.g. `RssAnon:`), in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Each service's resident memory with its anonymous part in brackets.
fn alone_memory(alone: [(f64, f64); 3]) -> String {
    alone
        .map(|(rss, anon)| format!("{rss:.0} ({anon:.0})"))
        .join(" / ")
        + " MiB"
}

/// A process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nats-server of their own for services started alone, in `data_dir`.
fn nats_for_alone(data_dir: &Path) -> selfhelp_nats_dev::NatsProcess {
    let binary =
        selfhelp_nats_dev::find_or_install(&data_dir.join("nats-bin"), |m| println!("{m}"))
            .expect("nats-server");
    selfhelp_nats_dev::NatsProcess::start_on_any_port(&binary, &data_dir.join("nats-alone"), None)
        .expect("starting nats-server")
}

/// Starts `name` in a process of its own on `database` (this program started
/// again: `serve_alone`), as the container image runs it, and returns it with
/// its URL once its health check says SERVING.
async fn start_alone(
    name: &str,
    database: &str,
    nats: &selfhelp_nats_dev::NatsProcess,
    listings_url: &str,
    data_dir: &Path,
) -> (KillOnDrop, String) {
    let service = match name {
        "listings" => selfhelp_listings::SERVICE_NAME,
        "membership" => selfhelp_membership::SERVICE_NAME,
        _ => selfhelp_notifications::SERVICE_NAME,
    };
    let address_file = data_dir.join(format!("{name}-alone.address"));
    let _ = std::fs::remove_file(&address_file);
    let mut cmd = Command::new(std::env::current_exe().expect("this program"));
    cmd.env(SERVE_ALONE_ENV, name)
        .env("SELFHELP_REGION", REGION)
        .env("SELFHELP_DATABASE__URL", database)
        .env("SELFHELP_NATS__URL", nats.url())
        .env_remove("SELFHELP_NATS__PASSWORD")
        .env("SELFHELP_GRPC__LISTEN", "127.0.0.1:0")
        .env("SELFHELP_GRPC__WRITE_ADDRESS_TO", &address_file)
        .env(
            "SELFHELP_AUTH__HS256_SECRET_FILE",
            data_dir.join("dev-secret"),
        )
        .env("SELFHELP_LOG__LEVEL", "warn")
        // As the container image runs them (deploy/Dockerfile).
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match name {
        "membership" => {
            cmd.env("SELFHELP_LISTINGS__URL", listings_url);
        }
        "notifications" => {
            cmd.env("SELFHELP_HTTP__LISTEN", "127.0.0.1:0")
                .env("SELFHELP_EMAIL__FILE_DIR", data_dir.join("mail"));
        }
        _ => {}
    }
    let process = KillOnDrop(cmd.spawn().expect("starting a service alone"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let address = loop {
        match std::fs::read_to_string(&address_file) {
            Ok(a) if !a.trim().is_empty() => break a.trim().to_string(),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{name} alone never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let url = format!("http://{address}");
    loop {
        let health = HealthClient::new(channel(&url).await)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await;
        if health.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
            break;
        }
        assert!(Instant::now() < deadline, "{name} alone never became ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (process, url)
}

/// Resident memory of `process` and the anonymous part of it, in MiB.
fn memory_of(process: &KillOnDrop) -> (f64, f64) {
    let pid = process.0.id();
    (rss_mib(pid), status_mib(pid, "RssAnon:"))
}

/// Stops `process` (SIGTERM) and waits for it.
fn stop_alone(mut process: KillOnDrop) {
    let _ = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status();
    let _ = process.0.wait();
}

/// SQLite URL of `name`'s database in `data_dir`, as `up` names it.
fn sqlite_url(data_dir: &Path, name: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join(format!("{name}.db")).display()
    )
}

/// Starts listings, membership and notifications each in a process of its own
/// on the data `up` left (and a nats-server of their own), waits until each is
/// ready and then 2 s more, and returns each one's resident memory and the
/// anonymous part of it (the heap and stacks, not the program's pages), in MiB.
async fn services_alone(data_dir: &Path, databases: &[Option<String>; 3]) -> [(f64, f64); 3] {
    let nats = nats_for_alone(data_dir);
    let mut processes = Vec::new();
    let mut listings_url = String::new();
    for (name, database) in SERVICES.iter().zip(databases) {
        let database = database
            .clone()
            .unwrap_or_else(|| sqlite_url(data_dir, name));
        let (process, url) = start_alone(name, &database, &nats, &listings_url, data_dir).await;
        if *name == "listings" {
            listings_url = url;
        }
        processes.push(process);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = [0, 1, 2].map(|i| memory_of(&processes[i]));
    processes.into_iter().for_each(stop_alone);
    memory
}

/// Words a real group's description has beyond the benchmark's short one, so a
/// directory made of copies weighs what a real one does (about 340 characters).
const LONGER_DESCRIPTION: &str = " We meet in a friendly, relaxed setting where you can \
    share your experience, listen to others who understand, and find practical \
    information. Newcomers are always welcome; you do not need to book. Tea, coffee \
    and biscuits are provided, and volunteers are on hand to help.";

/// Listings alone on a directory `copies` times the listed one (SQLite only):
/// a copy of its database where every group is there `copies` times under new
/// ids and names, each description lengthened to a real one's length. Listing
/// 100,000 groups through the API would take a quarter of an hour; starting on
/// them is what this measures. Returns the groups, the time to ready and the
/// memory as [`services_alone`] gives it.
async fn listings_on_copies(data_dir: &Path, copies: usize) -> (u64, Duration, (f64, f64)) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let copy = data_dir.join("listings-copies.db");
    let _ = std::fs::remove_file(&copy);
    let db = Database::connect(sqlite_url(data_dir, "listings"))
        .await
        .expect("listings' database");
    db.execute_unprepared(&format!("VACUUM INTO '{}'", copy.display()))
        .await
        .expect("copying listings' database");
    db.close().await.expect("closing");
    let url = format!("sqlite://{}?mode=rwc", copy.display());
    let db = Database::connect(&url).await.expect("the copy");
    let backend = db.get_database_backend();
    // New ids keep the id's first 24 characters (a UUID's time and version)
    // and number the rest; names get the copy's number.
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < ?) \
         INSERT INTO listing_group SELECT substr(id, 1, 24) || printf('%012d', k * 1000000 + rowid), \
         region, name || ' ' || k, summary, description, topics_json, format, join_policy, \
         venues_json, status, organiser_ids_json, created_by, review_note, version, \
         created_at_ms, updated_at_ms, schedule_json, assured_at_ms, assured_by, \
         review_due_for_ms, details_json, joining_details FROM listing_group, n",
        [(copies as i64 - 1).into()],
    ))
    .await
    .expect("copying the groups");
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE listing_group SET description = description || ?",
        [LONGER_DESCRIPTION.into()],
    ))
    .await
    .expect("lengthening descriptions");
    let groups = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM listing_group WHERE status = 'PUBLISHED'",
        ))
        .await
        .expect("counting")
        .and_then(|row| row.try_get::<i64>("", "n").ok())
        .unwrap_or(0) as u64;
    db.close().await.expect("closing");
    let nats = nats_for_alone(data_dir);
    let started = Instant::now();
    let (process, _) = start_alone("listings", &url, &nats, "", data_dir).await;
    let ready = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = memory_of(&process);
    stop_alone(process);
    let _ = std::fs::remove_file(&copy);
    (groups, ready, memory)
}

/// An anonymous GetGroup of one of `ids`, picked by `i`.
fn get_group(
    ch: Channel,
    ids: &[String],
    i: usize,
) -> impl std::future::Future<Output = Result<(), tonic::Status>> + use<> {
    let mut c = ListingsServiceClient::new(ch);
    let id = ids[(i * 7919) % ids.len()].clone();
    async move {
        c.get_group(lpb::GetGroupRequest { group_id: id })
            .await
            .map(|_| ())
    }
}

struct Tokens {
    secret: String,
}

impl Tokens {
    fn mint(&self, sub: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        selfhelp_platform::auth::mint_hs256(
            &self.secret,
            sub,
            REGION,
            &roles,
            Duration::from_secs(6 * 3600),
        )
        .expect("minting a token")
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    req
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connecting")
}

async fn channels(url: &str) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        out.push(channel(url).await);
    }
    out
}

/// Lists `count` open groups, each with a weekly or monthly schedule, through
/// the API as organisers and an operator would: create, set the schedule,
/// submit, approve. Returns their ids.
async fn seed(up: &Up, tokens: &Tokens, count: usize) -> Vec<String> {
    let operator = Arc::new(tokens.mint("bench-operator", &["operator"]));
    let organisers: Arc<Vec<String>> = Arc::new(
        (0..200)
            .map(|i| tokens.mint(&format!("organiser-{i}"), &[]))
            .collect(),
    );
    let chans = channels(&up.url(0)).await;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..CONNECTIONS * IN_FLIGHT_PER_CONNECTION {
        let ch = chans[w % chans.len()].clone();
        let (operator, organisers, done, next) = (
            operator.clone(),
            organisers.clone(),
            done.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let mut c = ListingsServiceClient::new(ch);
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return ids;
                }
                let organiser = &organisers[i % organisers.len()];
                let id = list_group(&mut c, i, organiser, &operator).await;
                ids.push(id);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 1000 == 0 || n == count {
                    println!(
                        "  listed {n}/{count} groups ({:.0}/s)",
                        n as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.expect("seeding task"));
    }
    ids.sort();
    ids
}

async fn list_group(
    c: &mut ListingsServiceClient<Channel>,
    i: usize,
    organiser: &str,
    operator: &str,
) -> String {
    let (town, outward, lat, lon) = TOWNS[i % TOWNS.len()];
    let topic = TOPICS[(i / TOWNS.len()) % TOPICS.len()];
    let spread = |n: usize, scale: f64| ((n * 7919 % 1000) as f64 / 1000.0 - 0.5) * scale;
    let name = format!(
        "{} {} {} group {i}",
        town,
        WORDS[i % WORDS.len()],
        topic.replace('-', " ")
    );
    let group = c
        .create_group(authed(
            lpb::CreateGroupRequest {
                name,
                summary: format!("Peer support: {} in {town}", topic.replace('-', " ")),
                description: format!(
                    "A friendly {} group meeting in {town}. {} and {} welcome.",
                    WORDS[(i + 3) % WORDS.len()],
                    WORDS[(i + 5) % WORDS.len()],
                    WORDS[(i + 7) % WORDS.len()]
                ),
                topics: vec![topic.into()],
                format: lpb::MeetingFormat::InPerson as i32,
                join_policy: lpb::JoinPolicy::Open as i32,
                venues: vec![lpb::Venue {
                    name: format!("{town} Community Centre"),
                    address: format!("{} High Street", 1 + i % 120),
                    town: town.into(),
                    postcode: format!("{outward} {}AB", 1 + i % 9),
                    latitude: Some(lat + spread(i, 0.04)),
                    longitude: Some(lon + spread(i + 1, 0.06)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            organiser,
        ))
        .await
        .expect("CreateGroup")
        .into_inner();
    let weekdays = [
        lpb::Weekday::Monday,
        lpb::Weekday::Tuesday,
        lpb::Weekday::Wednesday,
        lpb::Weekday::Thursday,
        lpb::Weekday::Friday,
        lpb::Weekday::Saturday,
    ];
    let schedule = if i.is_multiple_of(2) {
        lpb::Schedule {
            frequency: lpb::Frequency::Weekly as i32,
            weekday: weekdays[i % weekdays.len()] as i32,
            ..Default::default()
        }
    } else {
        lpb::Schedule {
            frequency: lpb::Frequency::Monthly as i32,
            weekday: weekdays[i % weekdays.len()] as i32,
            week_of_month: 1 + (i % 4) as i32,
            ..Default::default()
        }
    };
    let schedule = lpb::Schedule {
        valid_from: chrono::Utc::now().date_naive().to_string(),
        start_time: format!("{:02}:00", 10 + i % 10),
        end_time: format!("{:02}:30", 11 + i % 10),
        ..schedule
    };
    c.set_schedule(authed(
        lpb::SetScheduleRequest {
            group_id: group.id.clone(),
            schedule: Some(schedule),
        },
        organiser,
    ))
    .await
    .expect("SetSchedule");
    c.submit_group(authed(
        lpb::SubmitGroupRequest {
            group_id: group.id.clone(),
        },
        organiser,
    ))
    .await
    .expect("SubmitGroup");
    c.review_group(authed(
        lpb::ReviewGroupRequest {
            group_id: group.id.clone(),
            decision: lpb::ReviewDecision::Approve as i32,
            note: String::new(),
        },
        operator,
    ))
    .await
    .expect("ReviewGroup");
    group.id
}

/// Waits until an anonymous search sees every listed group.
async fn wait_indexed(up: &Up, count: usize) {
    let mut c = ListingsServiceClient::new(channel(&up.url(0)).await);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let total = c
            .search_groups(lpb::SearchGroupsRequest::default())
            .await
            .ok()
            .and_then(|r| r.into_inner().page)
            .map_or(0, |p| p.total_size as usize);
        if total >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {count} groups searchable after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Latencies in microseconds.
struct Latencies(Vec<u64>);

impl Latencies {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(0) as f64 / 1e3
    }

    fn p50_p99(&self) -> String {
        format!("{:.2} / {:.2} ms", self.pct(0.50), self.pct(0.99))
    }
}

/// One GET, read to the end; anything but 200 is a failure.
async fn http_get(http: reqwest::Client, url: String) -> Result<(), tonic::Status> {
    let failed = |e: String| tonic::Status::unavailable(format!("{url}: {e}"));
    let answer = http
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = answer.status();
    answer.bytes().await.map_err(|e| failed(e.to_string()))?;
    if status != reqwest::StatusCode::OK {
        return Err(failed(status.to_string()));
    }
    Ok(())
}

/// `n` calls one after another, each waiting for its answer (after 50 to warm up).
async fn latency<F, Fut>(n: usize, call: F) -> Latencies
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    for i in 0..50 {
        call(i).await.expect("warm-up call");
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        call(i).await.expect("call");
        out.push(t.elapsed().as_micros() as u64);
    }
    Latencies(out)
}

/// Calls per second with 16 calls in flight on each of the connections, for `span`.
async fn throughput<F, Fut>(channels: &[Channel], span: Duration, call: F) -> f64
where
    F: Fn(Channel, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let count = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let end = started + span;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..channels.len() * IN_FLIGHT_PER_CONNECTION {
        let (ch, call, count, errors) = (
            channels[w % channels.len()].clone(),
            call.clone(),
            count.clone(),
            errors.clone(),
        );
        tasks.spawn(async move {
            let mut i = w * 1_000_003;
            while Instant::now() < end {
                match call(ch.clone(), i).await {
                    Ok(()) => count.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let errors = errors.load(Ordering::Relaxed);
    assert_eq!(errors, 0, "{errors} calls failed under load");
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn consent() -> Option<mpb::Consent> {
    Some(mpb::Consent {
        version: "2026-11".into(),
        text: "The organisers will know I am a member.".into(),
    })
}

/// `n` new people join (64 in flight); returns joins accepted per second and
/// welcomes in inboxes per second (from the first join to the last welcome seen).
async fn join_burst(up: &Up, tokens: &Tokens, groups: &Arc<Vec<String>>, n: usize) -> (f64, f64) {
    let people: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| tokens.mint(&format!("joiner-{i}"), &[]))
            .collect(),
    );
    let members = channels(&up.url(1)).await;
    let inbox = channels(&up.url(2)).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..CONNECTIONS * IN_FLIGHT_PER_CONNECTION {
        let (ch, people, groups, next) = (
            members[w % members.len()].clone(),
            people.clone(),
            groups.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let mut c = MembershipServiceClient::new(ch);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= people.len() {
                    return;
                }
                c.join_group(authed(
                    mpb::JoinGroupRequest {
                        group_id: groups[(i * 31) % groups.len()].clone(),
                        consent: consent(),
                        ..Default::default()
                    },
                    &people[i],
                ))
                .await
                .expect("JoinGroup");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let accepted = n as f64 / started.elapsed().as_secs_f64();

    // Asking every inbox over and over would load the system being measured, so:
    // watch the last few people to join until their welcomes are there, then
    // check everyone once (and again for any still missing).
    let mut watch = NotificationsServiceClient::new(inbox[0].clone());
    for i in n.saturating_sub(8)..n {
        while !has_welcome(&mut watch, &people[i]).await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut done_at = started.elapsed();
    let mut waiting: Vec<usize> = (0..n).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut sweeps = 0;
    loop {
        sweeps += 1;
        let still = Arc::new(std::sync::Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let batch = Arc::new(std::mem::take(&mut waiting));
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..CONNECTIONS * 4 {
            let (ch, people, batch, next, still) = (
                inbox[w % inbox.len()].clone(),
                people.clone(),
                batch.clone(),
                next.clone(),
                still.clone(),
            );
            tasks.spawn(async move {
                let mut c = NotificationsServiceClient::new(ch);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = batch.get(k) else { return };
                    if !has_welcome(&mut c, &people[i]).await {
                        still.lock().unwrap().push(i);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        waiting = std::mem::take(&mut *still.lock().unwrap());
        if waiting.is_empty() {
            if sweeps > 1 {
                done_at = started.elapsed();
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} welcomes still missing after 300 s",
            waiting.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let welcomed = n as f64 / done_at.as_secs_f64();
    (accepted, welcomed)
}

async fn has_welcome(c: &mut NotificationsServiceClient<Channel>, token: &str) -> bool {
    c.list_notifications(authed(npb::ListNotificationsRequest::default(), token))
        .await
        .map(|r| {
            r.into_inner()
                .notifications
                .iter()
                .any(|n| n.kind == npb::NotificationKind::Welcome as i32)
        })
        .unwrap_or(false)
}

/// Joins at `rate` per second for `span` (each by a new person); each measures
/// from sending JoinGroup until ListNotifications shows the welcome (asked every
/// millisecond for the first 20 ms, less often after).
async fn join_latency(
    up: &Up,
    tokens: &Tokens,
    groups: &Arc<Vec<String>>,
    rate: f64,
    span: Duration,
) -> Latencies {
    let members = channel(&up.url(1)).await;
    let inbox = channel(&up.url(2)).await;
    let total = (rate * span.as_secs_f64()) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(gap);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let token = tokens.mint(&format!("steady-{i}"), &[]);
        let group = groups[(i * 17 + 5) % groups.len()].clone();
        let (mut m, mut nc) = (
            MembershipServiceClient::new(members.clone()),
            NotificationsServiceClient::new(inbox.clone()),
        );
        tasks.spawn(async move {
            let t = Instant::now();
            m.join_group(authed(
                mpb::JoinGroupRequest {
                    group_id: group,
                    consent: consent(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map_err(|e| format!("JoinGroup: {:?} {}", e.code(), e.message()))?;
            let deadline = t + Duration::from_secs(60);
            while !has_welcome(&mut nc, &token).await {
                if Instant::now() > deadline {
                    return Err("no welcome within 60 s".to_string());
                }
                // Every millisecond while it matters (the target is 20 ms), then
                // less often: asking must not itself swamp a system that has
                // fallen behind (hundreds of people asking 40 times a second
                // each did, and so measured the asking).
                let waited = t.elapsed();
                let pause = if waited < Duration::from_millis(20) {
                    1
                } else if waited < Duration::from_millis(200) {
                    10
                } else {
                    100
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Ok(t.elapsed().as_micros() as u64)
        });
    }
    let mut out = Vec::with_capacity(total);
    let mut failures = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.expect("join task") {
            Ok(us) => out.push(us),
            Err(e) => failures.push(e),
        }
    }
    if let Some(first) = failures.first() {
        println!(
            "  {} of {total} joins at {rate}/s failed, e.g. {first}",
            failures.len()
        );
    }
    Latencies(out)
}

/// A person's own pages, as they meet them: signed in on the web (by the link
/// `up` writes to its mail folder), a member of five groups, with `total`
/// memberships in the system. "My groups" and the inbox are timed over HTTP
/// one at a time, beside the same calls to the services made directly from
/// here (as the pages make them: the lists together, then each group's
/// meetings and rota together); the difference is the gateway's own share.
async fn signed_in_pages(
    up: &Up,
    tokens: &Tokens,
    ids: &Arc<Vec<String>>,
    total: usize,
    data_dir: &Path,
) -> Vec<(String, String)> {
    println!("{total} memberships (people in four groups each, 64 in flight)…");
    let per_person = 4;
    let people = total.div_ceil(per_person);
    let members = channels(&up.url(1)).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let minted: Arc<Vec<String>> = Arc::new(
        (0..people)
            .map(|i| tokens.mint(&format!("member-{i}"), &[]))
            .collect(),
    );
    for w in 0..CONNECTIONS * IN_FLIGHT_PER_CONNECTION {
        let (ch, minted, ids, next) = (
            members[w % members.len()].clone(),
            minted.clone(),
            ids.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            let mut c = MembershipServiceClient::new(ch);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= people * per_person {
                    return;
                }
                let (person, k) = (n / per_person, n % per_person);
                let group = ids[(person * 7 + k * 2_003) % ids.len()].clone();
                let request = authed(
                    mpb::JoinGroupRequest {
                        group_id: group,
                        consent: consent(),
                        ..Default::default()
                    },
                    &minted[person],
                );
                c.join_group(request).await.expect("a join");
                if (n + 1) % 20_000 == 0 {
                    println!(
                        "  {} joined ({:.0}/s)",
                        n + 1,
                        (n + 1) as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // The last welcomes told before anything is timed: nothing else runs.
    let mut inbox = NotificationsServiceClient::new(channel(&up.url(2)).await);
    let last = tokens.mint(&format!("member-{}", people - 1), &[]);
    let deadline = Instant::now() + Duration::from_secs(900);
    while !has_welcome(&mut inbox, &last).await {
        assert!(
            Instant::now() < deadline,
            "welcomes still coming after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // (Welcomes are told in lanes, not in order: a moment for the others.)
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "  {total} memberships and their welcomes in {:.0} s; signing in on the web…",
        started.elapsed().as_secs_f64()
    );

    // Signed in on the web, by the emailed link.
    let web = up.url(3);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client");
    let page = |path: &str| {
        let (browser, url) = (browser.clone(), format!("{web}{path}"));
        async move { browser.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let form = page("/sign-in").await;
    let email = "bench-person@example.org";
    let asked = browser
        .post(format!("{web}/sign-in"))
        .form(&[
            ("csrf", hidden(&form, "csrf")),
            ("email", email.into()),
            ("next", "/".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        asked.status(),
        reqwest::StatusCode::SEE_OTHER,
        "asking for a link"
    );
    let link = emailed_link(&data_dir.join("mail")).await;
    let token = link.rsplit('/').next().unwrap().to_string();
    let form = page(&format!("/sign-in/link/{token}")).await;
    let signed = browser
        .post(format!("{web}/sign-in/link"))
        .form(&[("csrf", hidden(&form, "csrf")), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.status(),
        reqwest::StatusCode::SEE_OTHER,
        "signing in"
    );
    // A member of five groups, joined on their pages.
    let mine: Vec<String> = (0..5)
        .map(|k| ids[(k * 1_009 + 3) % ids.len()].clone())
        .collect();
    for group in &mine {
        let form = page(&format!("/groups/{group}")).await;
        let joined = browser
            .post(format!("{web}/groups/{group}/join"))
            .form(&[("csrf", hidden(&form, "csrf")), ("agree", "1".into())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            joined.status(),
            reqwest::StatusCode::SEE_OTHER,
            "joining {group}"
        );
    }
    let download: serde_json::Value =
        serde_json::from_str(&page("/my/data/download").await).expect("the download");
    let person = download["person_id"]
        .as_str()
        .expect("a person id")
        .to_string();
    let as_them = Arc::new(tokens.mint(&person, &[]));

    let my_groups = latency(500, {
        let (browser, url) = (browser.clone(), format!("{web}/my/groups"));
        move |_| http_get(browser.clone(), url.clone())
    })
    .await;
    let inbox_page = latency(500, {
        let (browser, url) = (browser.clone(), format!("{web}/my/notifications"));
        move |_| http_get(browser.clone(), url.clone())
    })
    .await;
    let (listings, membership, notifications) = (
        channel(&up.url(0)).await,
        channel(&up.url(1)).await,
        channel(&up.url(2)).await,
    );
    let direct_groups = latency(500, {
        let (listings, membership, mine, as_them) = (
            listings.clone(),
            membership.clone(),
            mine.clone(),
            as_them.clone(),
        );
        move |_| {
            let (listings, membership, mine, as_them) = (
                listings.clone(),
                membership.clone(),
                mine.clone(),
                as_them.clone(),
            );
            async move {
                let page = || {
                    Some(selfhelp_proto::common::v1::PageRequest {
                        page_size: 100,
                        page_token: String::new(),
                    })
                };
                let (mut m1, mut m2) = (
                    MembershipServiceClient::new(membership.clone()),
                    MembershipServiceClient::new(membership.clone()),
                );
                let (a, b) = tokio::join!(
                    m1.list_my_memberships(authed(
                        mpb::ListMyMembershipsRequest { page: page() },
                        &as_them
                    )),
                    m2.list_my_follows(authed(
                        mpb::ListMyFollowsRequest { page: page() },
                        &as_them
                    )),
                );
                a?;
                b?;
                let each = mine.iter().map(|group| {
                    let (mut l, mut m) = (
                        ListingsServiceClient::new(listings.clone()),
                        MembershipServiceClient::new(membership.clone()),
                    );
                    let as_them = as_them.clone();
                    let group = group.clone();
                    async move {
                        let (g, r) = tokio::join!(
                            l.get_group(lpb::GetGroupRequest {
                                group_id: group.clone()
                            }),
                            m.get_rota(authed(
                                mpb::GetRotaRequest {
                                    group_id: group,
                                    duty: String::new(),
                                    meetings: 6
                                },
                                &as_them,
                            )),
                        );
                        g.map(|_| ())?;
                        r.map(|_| ())
                    }
                });
                futures::future::try_join_all(each).await.map(|_| ())
            }
        }
    })
    .await;
    let direct_inbox = latency(500, {
        let (notifications, as_them) = (notifications.clone(), as_them.clone());
        move |_| {
            let mut c = NotificationsServiceClient::new(notifications.clone());
            let request = authed(
                npb::ListNotificationsRequest {
                    page: Some(selfhelp_proto::common::v1::PageRequest {
                        page_size: 100,
                        page_token: String::new(),
                    }),
                    unread_only: false,
                },
                &as_them,
            );
            async move { c.list_notifications(request).await.map(|_| ()) }
        }
    })
    .await;
    vec![
        (
            format!(
                "signed in, 5 groups of {total} memberships: web \"my groups\", one at a time: p50 / p99"
            ),
            my_groups.p50_p99(),
        ),
        (
            "  the same calls to the services, made directly: p50 / p99".into(),
            direct_groups.p50_p99(),
        ),
        (
            "  gateway's own time (page − calls, p50)".into(),
            format!("{:.2} ms", my_groups.pct(0.50) - direct_groups.pct(0.50)),
        ),
        (
            "signed in: web inbox, one at a time: p50 / p99".into(),
            inbox_page.p50_p99(),
        ),
        (
            "  ListNotifications, made directly: p50 / p99".into(),
            direct_inbox.p50_p99(),
        ),
        (
            "  gateway's own time (page − call, p50)".into(),
            format!("{:.2} ms", inbox_page.pct(0.50) - direct_inbox.pct(0.50)),
        ),
    ]
}

/// A hidden field's value in a page's form.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in the page"))
        + marker.len();
    page[at..page[at..].find('"').map(|e| at + e).unwrap()].replace("&#x2f;", "/")
}

/// The sign-in link of the newest email in `up`'s mail folder.
async fn emailed_link(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let newest = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let at = e.metadata().ok()?.modified().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                let text = text.replace("=\r\n", "").replace("=\n", "");
                text.contains("/sign-in/link/").then_some((at, text))
            })
            .max_by_key(|(at, _)| *at);
        if let Some((_, text)) = newest {
            let at = text.find("/sign-in/link/").unwrap();
            let start = text[..at].rfind("http").unwrap();
            return text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "no sign-in email in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
