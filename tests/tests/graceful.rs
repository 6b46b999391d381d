//! Stopping a service (SIGTERM) while calls are in flight: the calls it took are
//! finished, not cut off, the process exits cleanly, and every change it
//! committed reaches NATS once it runs again. One test per database.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use sea_orm::Database;
use selfhelp_e2e::{ServiceProcess, count, published_group, service_env};
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_testkit::{
    Backend, Nats, TestDb, eventually, join_request, token, wait_serving, with_token,
};
use tonic::Code;
use tonic::transport::Endpoint;

const REGION: &str = "notts";
const IN_FLIGHT: usize = 32;

fn env(db: &TestDb, nats: &Nats, listings_url: &str) -> Vec<(&'static str, String)> {
    let mut env = service_env(REGION, &db.url, &nats.url(), listings_url);
    env.push(("SELFHELP_GRPC__SHUTDOWN_GRACE_MS", "5000".to_string()));
    env
}

async fn stop_while_joins_are_in_flight(backend: Backend) {
    let nats = Nats::start();
    let dbs = [TestDb::new(backend).await, TestDb::new(backend).await];
    let listings = ServiceProcess::spawn("selfhelp-listings", &env(&dbs[0], &nats, ""));
    wait_serving(listings.addr, "selfhelp.listings.v1.ListingsService").await;
    let group_id = published_group(listings.addr, REGION, "alice").await;
    let membership_env = env(&dbs[1], &nats, &listings.url());
    let mut membership = ServiceProcess::spawn("selfhelp-membership", &membership_env);
    let name = "selfhelp.membership.v1.MembershipService";
    wait_serving(membership.addr, name).await;

    // Joins, IN_FLIGHT at a time, until the server stops taking them.
    let channel = Endpoint::from_shared(format!("http://{}", membership.addr))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy();
    let next = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(Vec::<Code>::new()));
    let stopping = Arc::new(AtomicBool::new(false));
    let finished_after_stop = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (channel, group_id) = (channel.clone(), group_id.clone());
            let (next, in_flight, accepted, refused) = (
                next.clone(),
                in_flight.clone(),
                accepted.clone(),
                refused.clone(),
            );
            let (stopping, finished_after_stop) = (stopping.clone(), finished_after_stop.clone());
            tokio::spawn(async move {
                let mut client = MembershipServiceClient::new(channel);
                loop {
                    let person = format!("p{:05}", next.fetch_add(1, Ordering::SeqCst));
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let sent_before_stop = !stopping.load(Ordering::SeqCst);
                    let answer = client
                        .join_group(with_token(
                            join_request(&group_id),
                            &token(&person, REGION, &[]),
                        ))
                        .await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match answer {
                        Ok(_) => {
                            if sent_before_stop && stopping.load(Ordering::SeqCst) {
                                finished_after_stop.fetch_add(1, Ordering::SeqCst);
                            }
                            accepted.lock().unwrap().push(person);
                        }
                        Err(e) => {
                            refused.lock().unwrap().push(e.code());
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    eventually("joins under way", Duration::from_secs(60), || async {
        (accepted.lock().unwrap().len() >= 100).then_some(())
    })
    .await;

    stopping.store(true, Ordering::SeqCst);
    let busy = in_flight.load(Ordering::SeqCst);
    let clean = tokio::task::spawn_blocking(move || membership.terminate())
        .await
        .unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    eprintln!(
        "graceful ({backend:?}): {busy} calls in flight at SIGTERM; {} accepted in all, {} of them \
         answered after it; refused: {refused:?}",
        accepted.len(),
        finished_after_stop.load(Ordering::SeqCst),
    );
    assert!(busy > 0, "calls were in flight when the stop came");
    assert!(
        finished_after_stop.load(Ordering::SeqCst) > 0,
        "calls in flight at the stop were answered, not cut off"
    );
    assert!(
        clean,
        "the process exited cleanly within its drain deadline"
    );
    assert_eq!(
        refused.len(),
        IN_FLIGHT,
        "each caller was refused once, then stopped"
    );
    for code in &refused {
        assert!(
            matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled),
            "a call refused at stop gets a code to retry on, not {code:?}"
        );
    }

    // Started again, it publishes whatever it had committed but not yet sent.
    let again = ServiceProcess::spawn("selfhelp-membership", &membership_env);
    wait_serving(again.addr, name).await;
    let db = Database::connect(&dbs[1].url).await.unwrap();
    let active = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM membership WHERE group_id = '{group_id}' AND state = 'ACTIVE'"
        ),
    )
    .await;
    // Every accepted join is there; a call cut off at the very end may have
    // committed without its answer arriving.
    assert!(
        active >= accepted.len() as i64,
        "{active} < {}",
        accepted.len()
    );
    assert!(active <= (accepted.len() + refused.len()) as i64);
    eventually("the outbox drained", Duration::from_secs(30), || async {
        (count(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    let written = count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE stream = 'MEMBERSHIP'",
    )
    .await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream("MEMBERSHIP").await.unwrap();
    let on_nats = stream.info().await.unwrap().state.messages as i64;
    assert!(written >= active, "an event for every join");
    assert_eq!(on_nats, written, "every event on NATS, once");
}

#[tokio::test]
async fn a_stop_under_load_finishes_its_calls_and_loses_no_event_sqlite() {
    stop_while_joins_are_in_flight(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_stop_under_load_finishes_its_calls_and_loses_no_event_postgres() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("graceful: TEST_DATABASE_URL not set: the PostgreSQL variant NOT run");
        return;
    }
    stop_while_joins_are_in_flight(Backend::Postgres).await;
}
