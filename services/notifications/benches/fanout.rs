//! Fan-out benchmark: a group with 10,000 followers has a meeting cancelled; how
//! long from publishing listings' event on NATS until every follower's inbox holds
//! the notification — through the real service (consumer, inbox table, batched
//! delivery) on a real nats-server and database. Side by side, the baseline: the
//! same number of inbox rows written straight into the same database in one
//! transaction, with nothing else (the floor any design pays). Prints both and
//! the ratio, on SQLite and, when `TEST_DATABASE_URL` is set, PostgreSQL.
//!
//! `cargo bench -p selfhelp-notifications --bench fanout` (add `-- 2000` for fewer followers).
//! With `--max-ratio R` it exits with a failure when, on any backend, the fan-out
//! takes more than R times the direct write: CI's regression check, a ratio of two
//! figures from one run rather than a time that depends on the machine.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use selfhelp_notifications::domain::messages::{Kind, Message};
use selfhelp_notifications::store::{audience, notification, preference};
use selfhelp_notifications::{Config, SERVICE_NAME, run};
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::streams::LISTINGS;
use selfhelp_testkit::{
    Nats, RunningService, TestDb, backends, publish_event, wait_consumer_caught_up,
};

const REGION: &str = "bench";

fn snapshot(group_id: &str, version: i64) -> Option<ev::GroupSnapshot> {
    Some(ev::GroupSnapshot {
        group_id: group_id.into(),
        region: REGION.into(),
        name: "Walk and talk".into(),
        status: "PUBLISHED".into(),
        join_policy: "OPEN".into(),
        organiser_ids: vec!["olive".into()],
        topics: vec![],
        version,
        capacity: 0,
        places: vec![],
        ..Default::default()
    })
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// `[FOLLOWERS] [--max-ratio R]`.
fn arguments() -> (usize, Option<f64>) {
    let (mut followers, mut max_ratio) = (10_000, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-ratio" => {
                let value = args.next().and_then(|v| v.parse().ok());
                max_ratio = Some(value.expect("--max-ratio needs a number"));
            }
            // cargo bench passes --bench to every bench program.
            "--bench" => {}
            other => match other.parse() {
                Ok(n) => followers = n,
                Err(_) => {
                    panic!("unknown argument {other:?}: expected [FOLLOWERS] [--max-ratio R]")
                }
            },
        }
    }
    (followers, max_ratio)
}

#[tokio::main]
async fn main() {
    let (followers, max_ratio) = arguments();
    let mut worst_ratio: f64 = 0.0;
    for backend in backends() {
        let nats = Nats::start();
        let tdb = TestDb::new(backend).await;
        let start = || {
            let mut config = Config {
                common: selfhelp_testkit::common_config(&tdb.url, &nats.url(), REGION),
                ..Default::default()
            };
            config.http.listen = String::new();
            config.email.file_dir = std::env::temp_dir().join("selfhelp-bench-mail");
            RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s))
        };
        let group = uuid::Uuid::now_v7().to_string();

        // The group, through the service; then its followers, written directly
        // while the service is stopped (seeding is not measured, and SQLite
        // allows one writer).
        let svc = start().await;
        let id = uuid::Uuid::now_v7().to_string();
        let known = ev::GroupUpdated {
            group: snapshot(&group, 1),
            changed_fields: vec![],
            occurred_at: None,
        };
        publish_event(
            &nats.url(),
            LISTINGS,
            REGION,
            "group.updated",
            &group,
            &known,
            &id,
            &id,
        )
        .await;
        let durable = format!("notifications-{REGION}-listings");
        wait_consumer_caught_up(&nats.url(), "LISTINGS", &durable).await;
        svc.stop().await.unwrap();
        let db = selfhelp_platform::db::connect(&tdb.url, 2).await.unwrap();
        let txn = db.begin().await.unwrap();
        for i in 0..followers {
            let person = format!("follower-{i:05}");
            audience::set(&txn, &group, &person, audience::FOLLOWER, true, 1)
                .await
                .unwrap();
            // One in ten gave (and confirmed) an email address: their email
            // is queued too.
            if i % 10 == 0 {
                let held = preference::Held {
                    email: format!("{person}@example.org"),
                    email_confirmed_at_ms: Some(0),
                    ..Default::default()
                };
                preference::put(&txn, &person, &held, 0).await.unwrap();
            }
        }
        txn.commit().await.unwrap();
        db.close().await.unwrap();
        let svc = start().await;
        let db = selfhelp_platform::db::connect(&tdb.url, 2).await.unwrap();

        // Fan-out through the service.
        let id = uuid::Uuid::now_v7().to_string();
        let cancelled = ev::OccurrenceCancelled {
            group: snapshot(&group, 2),
            date: "2026-12-09".into(),
            note: "The hall is closed.".into(),
            occurred_at: None,
        };
        let started = Instant::now();
        publish_event(
            &nats.url(),
            LISTINGS,
            REGION,
            "occurrence.cancelled",
            &group,
            &cancelled,
            &id,
            &id,
        )
        .await;
        let sql = format!("SELECT COUNT(*) AS n FROM notification WHERE event_id = '{id}'");
        let deadline = started + Duration::from_secs(300);
        while count(&db, &sql).await < followers as i64 {
            assert!(
                Instant::now() < deadline,
                "fan-out did not finish in 5 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let fanout = started.elapsed();
        let emails = count(
            &db,
            "SELECT COUNT(*) AS n FROM delivery WHERE channel = 'EMAIL'",
        )
        .await;

        svc.stop().await.unwrap();

        // Baseline: the same rows, straight into the database in one transaction.
        let messages: Vec<Message> = (0..followers)
            .map(|i| Message {
                recipient_id: format!("follower-{i:05}"),
                kind: Kind::MeetingChanged,
                title: "A meeting has changed".into(),
                body: "The Walk and talk meeting on 2026-12-09 is cancelled.".into(),
            })
            .collect();
        let baseline_event = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let txn = db.begin().await.unwrap();
        let outgoing: Vec<notification::Outgoing> = messages
            .iter()
            .map(|message| notification::Outgoing {
                message,
                group_id: &group,
                event_id: &baseline_event,
            })
            .collect();
        notification::insert_all(&txn, &outgoing, 0).await.unwrap();
        txn.commit().await.unwrap();
        let floor = started.elapsed();

        let ratio = fanout.as_secs_f64() / floor.as_secs_f64();
        worst_ratio = worst_ratio.max(ratio);
        println!(
            "{backend:?}: {followers} followers ({emails} emails queued with them) — \
             event to every inbox {:.0} ms; rows written directly {:.0} ms; ratio {ratio:.1}×",
            fanout.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
        );
        db.close().await.unwrap();
    }
    if let Some(max) = max_ratio {
        if worst_ratio > max {
            eprintln!(
                "REGRESSION: the fan-out took {worst_ratio:.1}x the direct write; at most {max}x expected"
            );
            std::process::exit(1);
        }
        println!("ratio check: {worst_ratio:.1}x ≤ {max}x");
    }
}
