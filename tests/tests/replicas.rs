//! Replicas of every service binary starting at once on one fresh PostgreSQL
//! database (what a Kubernetes rollout does), and migrations as a step of their
//! own (`--migrate`, then replicas with `database.migrate_on_start = false`).

use std::time::Duration;

use selfhelp_e2e::{LISTINGS, MEMBERSHIP, NOTIFICATIONS, ServiceProcess, run_to_end, service_env};
use selfhelp_testkit::{Backend, Nats, TestDb, wait_serving};

const REGION: &str = "notts";

const SERVICES: [(&str, &str); 3] = [LISTINGS, MEMBERSHIP, NOTIFICATIONS];

fn env(db: &TestDb, nats: &Nats) -> Vec<(&'static str, String)> {
    // Membership asks listings only when a join needs it; none does here.
    let mut env = service_env(REGION, &db.url, &nats.url(), "http://127.0.0.1:9");
    env.push(("SELFHELP_DATABASE__MAX_CONNECTIONS", "3".to_string()));
    env
}

/// Only PostgreSQL: SQLite is one process's file, not shared between replicas.
fn postgres() -> bool {
    selfhelp_testkit::postgres_available("the concurrent-start tests")
}

#[tokio::test]
async fn replicas_started_together_on_a_fresh_database_all_serve() {
    if !postgres() {
        return;
    }
    const REPLICAS: usize = 3;
    let nats = Nats::start();
    let mut dbs = Vec::new();
    for _ in SERVICES {
        dbs.push(TestDb::new(Backend::Postgres).await);
    }
    // Every replica of every service at the same moment, each service's
    // replicas sharing that service's new, empty database.
    let mut replicas: Vec<(ServiceProcess, &str)> = Vec::new();
    for _ in 0..REPLICAS {
        for ((binary, name), db) in SERVICES.iter().zip(&dbs) {
            replicas.push((ServiceProcess::spawn(binary, &env(db, &nats)), name));
        }
    }
    for (process, name) in &mut replicas {
        wait_serving(process.addr, name).await;
        assert!(process.exited().is_none(), "{name} replica ended");
    }
    eprintln!(
        "replicas: {} processes ({REPLICAS} per service) started together, all SERVING",
        replicas.len()
    );
}

#[tokio::test]
async fn replicas_that_do_not_migrate_wait_for_the_migrate_step() {
    if !postgres() {
        return;
    }
    let nats = Nats::start();
    for (binary, name) in SERVICES {
        let db = TestDb::new(Backend::Postgres).await;
        let mut no_migrate = env(&db, &nats);
        no_migrate.push(("SELFHELP_DATABASE__MIGRATE_ON_START", "false".to_string()));
        let mut replica = ServiceProcess::spawn(binary, &no_migrate);
        // Not serving while the schema is missing, but alive and waiting.
        let early =
            tokio::time::timeout(Duration::from_secs(3), wait_serving(replica.addr, name)).await;
        assert!(early.is_err(), "{name} served before its schema existed");
        assert!(
            replica.exited().is_none(),
            "{name} gave up instead of waiting"
        );

        let migrate = tokio::task::spawn_blocking({
            let env = env(&db, &nats);
            move || run_to_end(binary, &["--migrate"], &env)
        })
        .await
        .unwrap();
        assert!(migrate.success(), "{binary} --migrate: {migrate}");
        wait_serving(replica.addr, name).await;
        // A second run finds nothing to do and still succeeds.
        let again = run_to_end(binary, &["--migrate"], &env(&db, &nats));
        assert!(again.success(), "{binary} --migrate, second run: {again}");
    }
}
