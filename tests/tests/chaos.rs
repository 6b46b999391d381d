//! Chaos with real processes: two replicas of every service binary on
//! PostgreSQL and one nats-server; 2,000 joins spread over both membership
//! replicas while, in turn, one replica of each service is killed (SIGKILL) and
//! started again, NATS is killed and restarted, and every database connection is
//! cut (`pg_terminate_backend`). Afterwards every count must be exact: nothing
//! lost, nothing twice, nothing left waiting, nothing parked.

use std::time::Duration;

use sea_orm::{Database, DatabaseConnection};
use selfhelp_e2e::{
    JoinBurst, LISTINGS, MEMBERSHIP, NOTIFICATIONS, ServiceProcess, assert_every_join_counted_once,
    count, lazy_channel, published_group, service_env, urls,
};
use selfhelp_testkit::{Backend, Nats, TestDb, eventually, wait_serving};

const REGION: &str = "notts";
const JOINS: usize = 2_000;
const IN_FLIGHT: usize = 16;

fn env(db: &TestDb, nats: &Nats, listings_url: &str) -> Vec<(&'static str, String)> {
    let mut env = service_env(REGION, &db.url, &nats.url(), listings_url);
    env.extend([
        ("SELFHELP_DATABASE__MAX_CONNECTIONS", "8".to_string()),
        ("SELFHELP_CONSUMER__RETRY_MAX_MS", "2000".to_string()),
        // A killed replica's unacknowledged messages come back soon.
        ("SELFHELP_CONSUMER__ACK_WAIT_MS", "3000".to_string()),
        ("SELFHELP_GRPC__SHUTDOWN_GRACE_MS", "2000".to_string()),
    ]);
    env
}

/// Both replicas of one service.
struct Replicas {
    binary: &'static str,
    name: &'static str,
    env: Vec<(&'static str, String)>,
    processes: Vec<ServiceProcess>,
}

impl Replicas {
    fn start(service: (&'static str, &'static str), env: Vec<(&'static str, String)>) -> Self {
        let processes = (0..2)
            .map(|_| ServiceProcess::spawn(service.0, &env))
            .collect();
        Replicas {
            binary: service.0,
            name: service.1,
            env,
            processes,
        }
    }

    async fn serving(&self) {
        for p in &self.processes {
            wait_serving(p.addr, self.name).await;
        }
    }

    /// SIGKILLs replica 0, and starts a new one in its place `after` later.
    async fn crash_and_replace(&mut self, after: Duration) -> &ServiceProcess {
        self.processes[0].kill();
        tokio::time::sleep(after).await;
        self.processes[0] = ServiceProcess::spawn(self.binary, &self.env);
        wait_serving(self.processes[0].addr, self.name).await;
        &self.processes[0]
    }
}

/// Cuts every connection to `db` from outside, as a failover or an
/// administrator would.
async fn terminate_connections(admin: &DatabaseConnection, db: &TestDb) -> i64 {
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    count(
        admin,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await
}

#[tokio::test]
async fn nothing_lost_or_doubled_when_processes_nats_and_connections_die() {
    if !selfhelp_testkit::postgres_available("the chaos test") {
        return;
    }
    let admin_url = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut nats = Nats::start();
    let dbs = [
        TestDb::new(Backend::Postgres).await,
        TestDb::new(Backend::Postgres).await,
        TestDb::new(Backend::Postgres).await,
    ];
    let mut listings = Replicas::start(LISTINGS, env(&dbs[0], &nats, ""));
    listings.serving().await;
    let listings_url = listings.processes[1].url();
    let mut membership = Replicas::start(MEMBERSHIP, env(&dbs[1], &nats, &listings_url));
    let mut notifications = Replicas::start(NOTIFICATIONS, env(&dbs[2], &nats, &listings_url));
    membership.serving().await;
    notifications.serving().await;

    let group_id = published_group(listings.processes[1].addr, REGION, "alice").await;
    // Notifications must know the group before the burst, or the first
    // welcomes wait for it (that case has a test of its own).
    let notifications_db = Database::connect(&dbs[2].url).await.unwrap();
    let group_known = format!(
        "SELECT COUNT(*) FROM group_view WHERE group_id = '{}'",
        group_id
    );
    eventually(
        "notifications to know the group",
        Duration::from_secs(30),
        || async { (count(&notifications_db, &group_known).await == 1).then_some(()) },
    )
    .await;

    // The burst, over both membership replicas.
    let burst = JoinBurst::start(
        vec![
            lazy_channel(membership.processes[0].addr),
            lazy_channel(membership.processes[1].addr),
        ],
        REGION,
        &group_id,
        JOINS,
        IN_FLIGHT,
    );

    burst.reached(JOINS / 5).await;
    eprintln!("chaos: SIGKILL one replica of each service, new ones 2 s later");
    listings.processes[0].kill();
    notifications.processes[0].kill();
    let replaced = membership
        .crash_and_replace(Duration::from_secs(2))
        .await
        .addr;
    burst.endpoints.write().await[0] = lazy_channel(replaced);
    listings.crash_and_replace(Duration::ZERO).await;
    notifications.crash_and_replace(Duration::ZERO).await;

    burst.reached(JOINS / 2).await;
    eprintln!("chaos: SIGKILL nats-server, restarted 2 s later");
    nats.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart();

    burst.reached(JOINS * 7 / 10).await;
    let admin = Database::connect(&admin_url).await.unwrap();
    let mut cut = 0;
    for db in &dbs {
        cut += terminate_connections(&admin, db).await;
    }
    eprintln!("chaos: {cut} database connections terminated");
    let retried = burst.finish().await;
    eprintln!("chaos: {JOINS} joins answered ({retried} calls retried)");

    assert_every_join_counted_once(
        urls(&dbs),
        &async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap()),
        REGION,
        &group_id,
        "alice",
        JOINS,
        "chaos",
    )
    .await;
    for p in listings
        .processes
        .iter_mut()
        .chain(membership.processes.iter_mut())
        .chain(notifications.processes.iter_mut())
    {
        assert!(p.exited().is_none(), "{} replica ended", p.name);
    }
}
