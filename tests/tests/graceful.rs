//! Stopping a service (SIGTERM) while calls are in flight: the calls it took are
//! finished, not cut off, the process exits cleanly, and every change it
//! committed reaches NATS once it runs again. One test per database.

use std::time::Duration;

use async_nats::jetstream;
use sea_orm::Database;
use selfhelp_e2e::{
    JoinsUntilRefused, ServiceProcess, active_members, count, published_group, service_env,
};
use selfhelp_testkit::{Backend, Nats, TestDb, eventually, wait_serving};
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
    let joins = JoinsUntilRefused::start(vec![channel], REGION, &group_id, IN_FLIGHT, 0);
    joins.accepted_at_least(100).await;

    let busy = joins.stop_begins();
    membership.send_term();
    joins.stop_sent();
    let clean = tokio::task::spawn_blocking(move || membership.wait_exited())
        .await
        .unwrap();
    let outcome = joins.finish(busy).await;
    eprintln!(
        "graceful ({backend:?}): {busy} calls in flight at SIGTERM; {} accepted in all, {} of them \
         answered after it; refused: {:?}",
        outcome.accepted.len(),
        outcome.answered_after_stop,
        outcome.refused,
    );
    outcome.assert_drained(IN_FLIGHT);
    assert!(
        clean,
        "the process exited cleanly within its drain deadline"
    );
    let (accepted, refused) = (outcome.accepted, outcome.refused);

    // Started again, it publishes whatever it had committed but not yet sent.
    let again = ServiceProcess::spawn("selfhelp-membership", &membership_env);
    wait_serving(again.addr, name).await;
    let active = active_members(&dbs[1].url, &group_id).await;
    let db = Database::connect(&dbs[1].url).await.unwrap();
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
    if !selfhelp_testkit::postgres_available("a stop under load") {
        return;
    }
    stop_while_joins_are_in_flight(Backend::Postgres).await;
}
