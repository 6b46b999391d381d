//! Chaos with real processes: two replicas of every service binary on
//! PostgreSQL and one nats-server; 2,000 joins spread over both membership
//! replicas while, in turn, one replica of each service is killed (SIGKILL) and
//! started again, NATS is killed and restarted, and every database connection is
//! cut (`pg_terminate_backend`). Afterwards every count must be exact: nothing
//! lost, nothing twice, nothing left waiting, nothing parked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use selfhelp_e2e::ServiceProcess;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_testkit::{
    Backend, Nats, SECRET, TestDb, channel, eventually, join_request, token, wait_serving,
    with_token,
};
use tokio::sync::RwLock;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const REGION: &str = "notts";
const JOINS: usize = 2_000;
const IN_FLIGHT: usize = 16;

const LISTINGS: (&str, &str) = ("selfhelp-listings", "selfhelp.listings.v1.ListingsService");
const MEMBERSHIP: (&str, &str) = (
    "selfhelp-membership",
    "selfhelp.membership.v1.MembershipService",
);
const NOTIFICATIONS: (&str, &str) = (
    "selfhelp-notifications",
    "selfhelp.notifications.v1.NotificationsService",
);

fn env(db: &TestDb, nats: &Nats, listings_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SELFHELP_REGION", REGION.to_string()),
        ("SELFHELP_DATABASE__URL", db.url.clone()),
        ("SELFHELP_DATABASE__MAX_CONNECTIONS", "8".to_string()),
        ("SELFHELP_NATS__URL", nats.url()),
        ("SELFHELP_AUTH__HS256_SECRET", SECRET.to_string()),
        ("SELFHELP_OUTBOX__POLL_INTERVAL_MS", "100".to_string()),
        ("SELFHELP_CONSUMER__RETRY_BASE_MS", "100".to_string()),
        ("SELFHELP_CONSUMER__RETRY_MAX_MS", "2000".to_string()),
        // A killed replica's unacknowledged messages come back soon.
        ("SELFHELP_CONSUMER__ACK_WAIT_MS", "3000".to_string()),
        ("SELFHELP_GRPC__SHUTDOWN_GRACE_MS", "2000".to_string()),
        ("SELFHELP_LISTINGS__URL", listings_url.to_string()),
    ]
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

fn lazy(addr: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
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
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("chaos: TEST_DATABASE_URL not set: the chaos test on PostgreSQL NOT run");
        return;
    };
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

    // A published, open group.
    let mut lc = ListingsServiceClient::new(channel(listings.processes[1].addr).await);
    let alice = token("alice", REGION, &[]);
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
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    lc.submit_group(with_token(
        lpb::SubmitGroupRequest {
            group_id: group.id.clone(),
        },
        &alice,
    ))
    .await
    .unwrap();
    lc.review_group(with_token(
        lpb::ReviewGroupRequest {
            group_id: group.id.clone(),
            decision: lpb::ReviewDecision::Approve.into(),
            note: String::new(),
        },
        &token("olu", REGION, &["operator"]),
    ))
    .await
    .unwrap();
    // Notifications must know the group before the burst, or the first
    // welcomes wait for it (that case has a test of its own).
    let notifications_db = Database::connect(&dbs[2].url).await.unwrap();
    let group_known = format!(
        "SELECT COUNT(*) FROM group_view WHERE group_id = '{}'",
        group.id
    );
    eventually(
        "notifications to know the group",
        Duration::from_secs(30),
        || async { (count(&notifications_db, &group_known).await == 1).then_some(()) },
    )
    .await;

    // The burst: each join retried (on the other replica first) until it is
    // answered; "already a member" means an earlier try got through.
    let endpoints = Arc::new(RwLock::new(vec![
        lazy(membership.processes[0].addr),
        lazy(membership.processes[1].addr),
    ]));
    let accepted = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let burst = {
        let (endpoints, accepted, retried, group_id) = (
            endpoints.clone(),
            accepted.clone(),
            retried.clone(),
            group.id.clone(),
        );
        tokio::spawn(async move {
            futures::stream::iter(0..JOINS)
                .map(|i| {
                    let (endpoints, accepted, retried, group_id) = (
                        endpoints.clone(),
                        accepted.clone(),
                        retried.clone(),
                        group_id.clone(),
                    );
                    async move {
                        let person = token(&format!("p{i:04}"), REGION, &[]);
                        for attempt in 0.. {
                            let ch = endpoints.read().await[(i + attempt) % 2].clone();
                            let answer = MembershipServiceClient::new(ch)
                                .join_group(with_token(join_request(&group_id), &person))
                                .await;
                            match answer {
                                Ok(_) => break,
                                Err(e) if e.code() == Code::FailedPrecondition && attempt > 0 => {
                                    break;
                                }
                                Err(e) => {
                                    assert!(
                                        attempt < 200,
                                        "join {i} still failing after 200 tries: {e:?}"
                                    );
                                    // A broken connection or a lost replica is
                                    // UNAVAILABLE (or a transport error), never
                                    // an INTERNAL the client cannot act on.
                                    assert_ne!(e.code(), Code::Internal, "join {i}: {e:?}");
                                    retried.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                        }
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
        })
    };
    let reached = |n: usize| {
        let accepted = accepted.clone();
        async move {
            eventually(
                &format!("{n} joins accepted"),
                Duration::from_secs(300),
                || {
                    let accepted = accepted.clone();
                    async move { (accepted.load(Ordering::Relaxed) >= n).then_some(()) }
                },
            )
            .await
        }
    };

    reached(JOINS / 5).await;
    eprintln!("chaos: SIGKILL one replica of each service, new ones 2 s later");
    listings.processes[0].kill();
    notifications.processes[0].kill();
    let replaced = membership
        .crash_and_replace(Duration::from_secs(2))
        .await
        .addr;
    endpoints.write().await[0] = lazy(replaced);
    listings.crash_and_replace(Duration::ZERO).await;
    notifications.crash_and_replace(Duration::ZERO).await;

    reached(JOINS / 2).await;
    eprintln!("chaos: SIGKILL nats-server, restarted 2 s later");
    nats.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart();

    reached(JOINS * 7 / 10).await;
    let admin = Database::connect(&admin_url).await.unwrap();
    let mut cut = 0;
    for db in &dbs {
        cut += terminate_connections(&admin, db).await;
    }
    eprintln!("chaos: {cut} database connections terminated");
    burst.await.expect("every join answered");

    // Everything settles to exact counts.
    let membership_db = Database::connect(&dbs[1].url).await.unwrap();
    let active = format!(
        "SELECT COUNT(*) FROM membership WHERE group_id = '{}' AND state = 'ACTIVE'",
        group.id
    );
    let welcomes = "SELECT COUNT(*) FROM notification WHERE kind = 'WELCOME'";
    let joined_notes =
        "SELECT COUNT(*) FROM notification WHERE recipient_id = 'alice' AND kind = 'MEMBER_JOINED'";
    eventually(
        "every welcome and note in place",
        Duration::from_secs(180),
        || async {
            let w = count(&notifications_db, welcomes).await;
            let n = count(&notifications_db, joined_notes).await;
            (w >= JOINS as i64 && n >= JOINS as i64).then_some(())
        },
    )
    .await;
    let all_dbs = [
        Database::connect(&dbs[0].url).await.unwrap(),
        membership_db.clone(),
        notifications_db.clone(),
    ];
    eventually("every outbox drained", Duration::from_secs(60), || async {
        for db in &all_dbs {
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
    // Give any straggling duplicate the time a redelivery would take.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let counts = [
        ("active memberships", count(&membership_db, &active).await),
        ("welcomes", count(&notifications_db, welcomes).await),
        (
            "people welcomed",
            count(
                &notifications_db,
                "SELECT COUNT(DISTINCT recipient_id) FROM notification WHERE kind = 'WELCOME'",
            )
            .await,
        ),
        (
            "organiser's joined notes",
            count(&notifications_db, joined_notes).await,
        ),
        (
            "joins the notes are about",
            count(
                &notifications_db,
                "SELECT COUNT(DISTINCT event_id) FROM notification \
                 WHERE recipient_id = 'alice' AND kind = 'MEMBER_JOINED'",
            )
            .await,
        ),
    ];
    let mut dead = 0;
    for db in &all_dbs {
        dead += count(db, "SELECT COUNT(*) FROM dead_letter").await;
    }
    eprintln!(
        "chaos: {JOINS} joins ({} retried calls); {}; dead letters {dead}",
        retried.load(Ordering::Relaxed),
        counts
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, n) in counts {
        assert_eq!(n, JOINS as i64, "{what}");
    }
    assert_eq!(dead, 0, "dead letters");
    for p in listings
        .processes
        .iter_mut()
        .chain(membership.processes.iter_mut())
        .chain(notifications.processes.iter_mut())
    {
        assert!(p.exited().is_none(), "{} replica ended", p.name);
    }
}
