//! Outbox, inbox and consumer runner against a real nats-server and real
//! databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait,
};
use sea_orm_migration::prelude::*;
use selfhelp_platform::bus::{self, Envelope, IncomingEvent};
use selfhelp_platform::config::{ConsumerConfig, OutboxConfig};
use selfhelp_platform::consumer::ConsumerRunner;
use selfhelp_platform::inbox::{EventHandler, HandlerError, Outcome, apply_all_in, process_once};
use selfhelp_platform::outbox::{Outbox, Relay};
use selfhelp_platform::trace::TraceParent;
use selfhelp_platform::{Shutdown, db};
use selfhelp_proto::events::v1::{GroupCreated, GroupSnapshot};
use selfhelp_proto::streams::LISTINGS;
use selfhelp_testkit::{Backend, Nats, TestDb, eventually, per_backend};

struct TestMigrator;

#[async_trait::async_trait]
impl MigratorTrait for TestMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        selfhelp_platform::migrations::migrations()
    }
}

async fn database(backend: Backend) -> (TestDb, DatabaseConnection) {
    let test_db = TestDb::new(backend).await;
    let conn = db::connect(&test_db.url, 5).await.expect("connect");
    TestMigrator::up(&conn, None).await.expect("migrate");
    conn.execute_unprepared("CREATE TABLE effect (event_id VARCHAR(64) NOT NULL)")
        .await
        .unwrap();
    (test_db, conn)
}

/// The handler's visible effect: one row per application, in the handler's transaction.
struct RecordEffect;

#[async_trait::async_trait]
impl EventHandler for RecordEffect {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        // ce-id is a UUID we checked, so inlining it is safe.
        let id =
            uuid::Uuid::parse_str(&event.id).map_err(|e| HandlerError::Poison(e.to_string()))?;
        txn.execute_unprepared(&format!("INSERT INTO effect (event_id) VALUES ('{id}')"))
            .await?;
        Ok(())
    }
}

async fn effects(conn: &DatabaseConnection) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM effect",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

fn group_created(name: &str) -> GroupCreated {
    GroupCreated {
        group: Some(GroupSnapshot {
            group_id: uuid::Uuid::now_v7().to_string(),
            region: "notts".into(),
            name: name.into(),
            status: "DRAFT".into(),
            join_policy: "OPEN".into(),
            organiser_ids: vec!["p1".into()],
            topics: vec![],
            version: 1,
            capacity: 0,
            places: vec![],
            ..Default::default()
        }),
        occurred_at: None,
    }
}

async fn enqueue(conn: &DatabaseConnection, outbox: &Outbox, name: &str) -> String {
    let txn = conn.begin().await.unwrap();
    let msg = group_created(name);
    let id = msg.group.as_ref().unwrap().group_id.clone();
    let ev = outbox
        .enqueue(
            &txn,
            LISTINGS,
            "group.created",
            &id,
            &msg,
            Some(&TraceParent::new_root()),
        )
        .await
        .unwrap();
    txn.commit().await.unwrap();
    ev
}

fn fast_outbox() -> OutboxConfig {
    OutboxConfig {
        poll_interval_ms: 50,
        ..Default::default()
    }
}

async fn jetstream_for(nats: &Nats) -> jetstream::Context {
    let client = bus::connect(
        &selfhelp_platform::config::NatsConfig {
            url: nats.url(),
            ..Default::default()
        },
        "test",
    )
    .await
    .unwrap();
    let js = jetstream::new(client);
    bus::ensure_stream(&js, LISTINGS, Default::default())
        .await
        .unwrap();
    js
}

async fn stream_messages(js: &jetstream::Context) -> u64 {
    js.get_stream(LISTINGS.name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

async fn relay_publishes_committed_events_as_cloudevents(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let mut outside = selfhelp_testkit::OutsideSubscriber::connect(&nats.url()).await;
    let outbox = Outbox::new("notts", "listings");

    // A rolled-back transaction leaves nothing to publish.
    let txn = conn.begin().await.unwrap();
    outbox
        .enqueue(
            &txn,
            LISTINGS,
            "group.created",
            "x",
            &group_created("never"),
            None,
        )
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    let id = enqueue(&conn, &outbox, "Carers' coffee").await;
    let relay = Relay::new(conn.clone(), js.clone(), fast_outbox(), &outbox);
    let report = relay.round().await.unwrap();
    assert_eq!((report.published, report.failed), (1, 0), "{backend:?}");
    assert_eq!(
        relay.round().await.unwrap().published,
        0,
        "published rows are not sent again"
    );
    assert_eq!(selfhelp_platform::outbox::backlog(&conn).await.unwrap(), 0);

    let m = outside
        .expect("selfhelp.notts.listings.group.created")
        .await;
    let ce_id = selfhelp_testkit::assert_cloudevent(
        &m,
        "org.selfhelp.listings.group.created.v1",
        "urn:selfhelp:notts:listings",
        "selfhelp.events.v1.GroupCreated",
    );
    assert_eq!(ce_id, id);
    let decoded: GroupCreated = prost::Message::decode(m.payload.clone()).unwrap();
    assert_eq!(decoded.group.unwrap().name, "Carers' coffee");
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(relay_publishes_committed_events_as_cloudevents);

async fn events_written_while_nats_is_down_arrive_after_it_returns(backend: Backend) {
    let mut nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let outbox = Outbox::new("notts", "listings");
    let relay = || Relay::new(conn.clone(), js.clone(), fast_outbox(), &outbox);

    nats.stop();
    // The write (what an RPC does) succeeds without NATS; a relay's round
    // cannot publish it and leaves it waiting.
    enqueue(&conn, &outbox, "written during the outage").await;
    let round = relay().round().await.unwrap();
    assert_eq!((round.published, round.failed), (0, 1), "{round:?}");
    assert_eq!(selfhelp_platform::outbox::backlog(&conn).await.unwrap(), 1);

    nats.restart();
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(relay().run(shutdown));
    eventually(
        "the event to reach the stream",
        Duration::from_secs(30),
        || async { (stream_messages(&js).await == 1).then_some(()) },
    )
    .await;
    eventually(
        "the row to be marked published",
        Duration::from_secs(10),
        || async { (selfhelp_platform::outbox::backlog(&conn).await.ok()? == 0).then_some(()) },
    )
    .await;
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(events_written_while_nats_is_down_arrive_after_it_returns);

/// A full stream refuses new events instead of dropping old ones that a
/// consumer may not have read; the outbox keeps the refused event and
/// publishes it once there is room. A stream made before streams refused new
/// events is changed by the service that writes it.
async fn a_full_stream_refuses_new_events_and_the_outbox_keeps_them(backend: Backend) {
    use async_nats::jetstream::stream::DiscardPolicy;
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let limits = bus::StreamLimits::default();
    let config = bus::stream_config(LISTINGS, limits);
    assert_eq!(config.discard, DiscardPolicy::New);
    js.create_stream(async_nats::jetstream::stream::Config {
        discard: DiscardPolicy::Old,
        ..config.clone()
    })
    .await
    .unwrap();
    let mut stream = bus::ensure_written_stream(&js, LISTINGS, limits)
        .await
        .unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.discard,
        DiscardPolicy::New
    );

    // Room for one event.
    js.update_stream(async_nats::jetstream::stream::Config {
        max_messages: 1,
        ..config.clone()
    })
    .await
    .unwrap();
    let outbox = Outbox::new("notts", "listings");
    let relay = Relay::new(conn.clone(), js.clone(), fast_outbox(), &outbox);
    let first = enqueue(&conn, &outbox, "the first").await;
    assert_eq!(relay.round().await.unwrap().published, 1);
    enqueue(&conn, &outbox, "the second").await;
    let round = relay.round().await.unwrap();
    assert_eq!(
        (round.published, round.failed),
        (0, 1),
        "{backend:?}: {round:?}"
    );
    assert_eq!(selfhelp_platform::outbox::backlog(&conn).await.unwrap(), 1);
    let kept = js
        .get_stream(LISTINGS.name)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .expect("the first event is still there");
    assert_eq!(
        kept.headers.get(bus::headers::ID).map(|v| v.as_str()),
        Some(first.as_str())
    );

    // Room again: the kept event goes out.
    js.update_stream(config).await.unwrap();
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(relay.clone().run(shutdown));
    eventually(
        "the refused event published",
        Duration::from_secs(10),
        || async { (selfhelp_platform::outbox::backlog(&conn).await.ok()? == 0).then_some(()) },
    )
    .await;
    assert_eq!(stream_messages(&js).await, 2);
    trigger.trigger();
}

per_backend!(a_full_stream_refuses_new_events_and_the_outbox_keeps_them);

async fn relays_side_by_side_publish_a_backlog_without_a_failed_round(backend: Backend) {
    // Replicas each run a relay on the one outbox table. Their claims met on
    // PostgreSQL once and deadlocked; a failed round is retried, but should
    // not happen at all.
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let outbox = Outbox::new("notts", "listings");
    const EVENTS: usize = 600;
    let txn = conn.begin().await.unwrap();
    for i in 0..EVENTS {
        let msg = group_created(&format!("group {i}"));
        let id = msg.group.as_ref().unwrap().group_id.clone();
        outbox
            .enqueue(&txn, LISTINGS, "group.created", &id, &msg, None)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    let small_batches = OutboxConfig {
        batch_size: 16,
        ..fast_outbox()
    };
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let relay = Relay::new(conn.clone(), js.clone(), small_batches.clone(), &outbox);
            tokio::spawn(async move {
                let mut published = 0;
                loop {
                    let round = relay.round().await.map_err(|e| e.to_string())?;
                    if round.failed > 0 {
                        return Err(format!("{} events not published", round.failed));
                    }
                    if round.published == 0 {
                        return Ok::<usize, String>(published);
                    }
                    published += round.published;
                }
            })
        })
        .collect();
    let mut published = 0;
    for relay in relays {
        published += relay
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{backend:?}: a relay's round failed: {e}"));
    }
    assert_eq!(selfhelp_platform::outbox::backlog(&conn).await.unwrap(), 0);
    // A lease held is not taken by another relay: each event went out once.
    assert_eq!(published, EVENTS, "{backend:?}");
    assert_eq!(stream_messages(&js).await, EVENTS as u64);
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(relays_side_by_side_publish_a_backlog_without_a_failed_round);

fn runner(
    conn: &DatabaseConnection,
    js: &jetstream::Context,
    durable: &str,
    cfg: ConsumerConfig,
) -> ConsumerRunner {
    ConsumerRunner {
        durable: durable.to_string(),
        stream: LISTINGS,
        filter: LISTINGS.region_filter("notts"),
        stream_limits: Default::default(),
        cfg,
        db: conn.clone(),
        js: js.clone(),
        handler: Arc::new(RecordEffect),
    }
}

/// Publishes a CloudEvent directly; `nats_msg_id` lets a test send the same
/// event twice past JetStream's de-duplication, as a late redelivery would.
async fn publish_raw(js: &jetstream::Context, ce_id: &str, nats_msg_id: &str) {
    publish_about(js, ce_id, nats_msg_id, "g").await
}

/// [`publish_raw`] about the aggregate `aggregate_id`.
async fn publish_about(
    js: &jetstream::Context,
    ce_id: &str,
    nats_msg_id: &str,
    aggregate_id: &str,
) {
    let env = Envelope {
        id: ce_id,
        source: "urn:selfhelp:notts:listings",
        ce_type: "org.selfhelp.listings.group.created.v1",
        time: "2026-11-26T00:00:00.000Z",
        aggregate_id,
        data_schema: "selfhelp.events.v1.GroupCreated",
        traceparent: None,
        stream: LISTINGS.name,
    };
    let mut headers = env.headers();
    headers.insert("Nats-Msg-Id", nats_msg_id);
    js.publish_with_headers(
        "selfhelp.notts.listings.group.created",
        headers,
        prost::Message::encode_to_vec(&group_created("g")).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn consumer_settled(js: &jetstream::Context, durable: &str, acked: u64) -> bool {
    let Ok(mut consumer) = js
        .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(durable, LISTINGS.name)
        .await
    else {
        return false;
    };
    let Ok(info) = consumer.info().await else {
        return false;
    };
    info.ack_floor.stream_sequence >= acked && info.num_ack_pending == 0 && info.num_pending == 0
}

/// Waits until `durable` has acknowledged `acked` messages and has none pending.
async fn settled(js: &jetstream::Context, durable: &str, acked: u64) {
    eventually(
        &format!("{durable} to settle {acked} deliveries"),
        Duration::from_secs(30),
        || async { consumer_settled(js, durable, acked).await.then_some(()) },
    )
    .await
}

/// Publishes `n` distinct events; returns their ids in order.
async fn backlog(js: &jetstream::Context, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for id in &ids {
        publish_raw(js, id, id).await;
    }
    ids
}

/// One fetch loop taking everything waiting in one batch.
fn one_batch() -> ConsumerConfig {
    ConsumerConfig {
        batch: 64,
        pullers: 1,
        ..Default::default()
    }
}

/// Runs `r` until the returned trigger fires.
fn start(
    r: ConsumerRunner,
) -> (
    selfhelp_platform::shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
) {
    let (trigger, shutdown) = Shutdown::new();
    (trigger, tokio::spawn(r.run(shutdown)))
}

async fn the_same_event_delivered_twice_has_one_effect(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let ce_id = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &ce_id, "first").await;
    publish_raw(&js, &ce_id, "second").await;
    assert_eq!(
        stream_messages(&js).await,
        2,
        "both copies are in the stream"
    );

    let (trigger, _) = start(runner(&conn, &js, "dup-test", ConsumerConfig::default()));
    settled(&js, "dup-test", 2).await;
    assert_eq!(
        effects(&conn).await,
        1,
        "{backend:?}: one effect for two deliveries"
    );
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(the_same_event_delivered_twice_has_one_effect);

async fn a_consumer_killed_before_its_ack_applies_the_event_once_after_redelivery(
    backend: Backend,
) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let cfg = ConsumerConfig {
        ack_wait_ms: 1_000,
        ..Default::default()
    };
    let first = runner(&conn, &js, "crash-test", cfg.clone());
    let consumer = first.ensure().await.unwrap();
    let ce_id = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &ce_id, &ce_id).await;

    // The first process: applies and commits, then dies before acking.
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let message = batch.next().await.unwrap().unwrap();
    let event = IncomingEvent::from_message(
        message.subject.as_str(),
        message.headers.as_ref(),
        message.payload.clone(),
    )
    .unwrap();
    assert_eq!(
        process_once(&conn, "crash-test", &event, &RecordEffect)
            .await
            .unwrap(),
        Outcome::Applied
    );
    drop(message);
    drop(batch);
    drop(first);

    // The replacement process gets the redelivery and must not apply it again.
    let (trigger, _) = start(runner(&conn, &js, "crash-test", cfg));
    settled(&js, "crash-test", 1).await;
    assert_eq!(effects(&conn).await, 1, "{backend:?}: effect applied once");
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(a_consumer_killed_before_its_ack_applies_the_event_once_after_redelivery);

/// A handler that can never succeed, to exhaust redeliveries.
struct AlwaysRetry;

#[async_trait::async_trait]
impl EventHandler for AlwaysRetry {
    async fn handle(&self, _: &DatabaseTransaction, _: &IncomingEvent) -> Result<(), HandlerError> {
        Err(HandlerError::Retry("dependency not there".into()))
    }
}

async fn dead_letters(
    conn: &DatabaseConnection,
) -> Vec<selfhelp_platform::migrations::entities::dead_letter::Model> {
    use sea_orm::EntityTrait;
    selfhelp_platform::migrations::entities::dead_letter::Entity::find()
        .all(conn)
        .await
        .unwrap()
}

async fn poison_and_exhausted_messages_go_to_dead_letters_and_can_be_replayed(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    // No CloudEvent headers at all: poison.
    js.publish("selfhelp.notts.listings.group.created", "garbage".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Injected into our stream by something that is not listings: refused.
    let mut foreign = Envelope {
        id: "f1",
        source: "urn:selfhelp:notts:membership",
        ce_type: "org.selfhelp.membership.member.joined.v1",
        time: "",
        aggregate_id: "",
        data_schema: "",
        traceparent: None,
        stream: LISTINGS.name,
    }
    .headers();
    foreign.insert("Nats-Msg-Id", "f1");
    js.publish_with_headers("selfhelp.notts.listings.group.created", foreign, "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let ce_id = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &ce_id, &ce_id).await;

    let cfg = ConsumerConfig {
        max_deliver: 3,
        retry_base_ms: 50,
        retry_max_ms: 200,
        ..Default::default()
    };
    let mut r = runner(&conn, &js, "dlq-test", cfg.clone());
    r.handler = Arc::new(AlwaysRetry);
    let (trigger, _) = start(r);
    eventually("three dead letters", Duration::from_secs(20), || async {
        (dead_letters(&conn).await.len() == 3).then_some(())
    })
    .await;
    let letters = dead_letters(&conn).await;
    let exhausted = letters
        .iter()
        .find(|d| d.event_id == ce_id)
        .expect("exhausted event parked");
    assert_eq!(
        exhausted.deliveries, 3,
        "{backend:?}: delivered max_deliver times"
    );
    assert!(
        letters
            .iter()
            .any(|d| d.error.contains("missing header") || d.error.contains("no headers"))
    );
    assert!(letters.iter().any(|d| d.error.contains("does not belong")));
    trigger.trigger();

    // After a fix, replay applies the parked event once; the poison stays parked.
    let fixed = runner(&conn, &js, "dlq-test", cfg);
    let report = fixed.replay_dead_letters().await.unwrap();
    assert_eq!(
        (report.replayed, report.still_parked),
        (1, 2),
        "{backend:?}"
    );
    assert_eq!(
        effects(&conn).await,
        1,
        "{backend:?}: replayed event applied"
    );
    let again = fixed.replay_dead_letters().await.unwrap();
    assert_eq!(again.replayed, 0);
    assert_eq!(effects(&conn).await, 1);
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(poison_and_exhausted_messages_go_to_dead_letters_and_can_be_replayed);

/// Applies every event but one, which it refuses as poison.
struct RefuseOne {
    bad: String,
}

#[async_trait::async_trait]
impl EventHandler for RefuseOne {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        if event.id == self.bad {
            return Err(HandlerError::Poison("this one never applies".into()));
        }
        RecordEffect.handle(txn, event).await
    }
}

async fn one_bad_event_in_a_batch_neither_holds_back_nor_doubles_the_others(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let ids = backlog(&js, 20).await;
    // One fetch loop and a batch larger than the backlog: all twenty arrive
    // together, are tried in one transaction, which the bad one spoils.
    let cfg = one_batch();
    let mut r = runner(&conn, &js, "batch-test", cfg);
    r.handler = Arc::new(RefuseOne {
        bad: ids[7].clone(),
    });
    let (trigger, _) = start(r);
    settled(&js, "batch-test", 20).await;
    assert_eq!(
        effects(&conn).await,
        19,
        "{backend:?}: the other nineteen applied, each once"
    );
    let letters = dead_letters(&conn).await;
    assert_eq!(letters.len(), 1, "{backend:?}");
    assert_eq!(letters[0].event_id, ids[7]);
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(one_bad_event_in_a_batch_neither_holds_back_nor_doubles_the_others);

async fn several_fetch_loops_apply_a_backlog_once(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    backlog(&js, 200).await;
    let cfg = ConsumerConfig {
        batch: 8,
        pullers: 4,
        ..Default::default()
    };
    let (trigger, _) = start(runner(&conn, &js, "pullers-test", cfg));
    settled(&js, "pullers-test", 200).await;
    assert_eq!(effects(&conn).await, 200, "{backend:?}: each event once");
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(several_fetch_loops_apply_a_backlog_once);

/// Takes events in batches: records each call's ids, then applies them one by one.
#[derive(Default)]
struct RecordCalls {
    calls: std::sync::Mutex<Vec<Vec<String>>>,
}

#[async_trait::async_trait]
impl EventHandler for RecordCalls {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        self.handle_all(txn, &[event]).await
    }

    async fn handle_all(
        &self,
        txn: &DatabaseTransaction,
        events: &[&IncomingEvent],
    ) -> Result<(), HandlerError> {
        let ids = events.iter().map(|e| e.id.clone()).collect();
        self.calls.lock().unwrap().push(ids);
        for event in events {
            RecordEffect.handle(txn, event).await?;
        }
        Ok(())
    }
}

fn incoming(id: &str) -> IncomingEvent {
    IncomingEvent {
        id: id.into(),
        ce_type: "test.v1.thing_happened".into(),
        source: "test".into(),
        subject: "test".into(),
        aggregate_id: "a".into(),
        time: String::new(),
        data_schema: String::new(),
        traceparent: None,
        payload: Default::default(),
    }
}

async fn events_applied_together_are_recorded_in_one_go_and_each_once(backend: Backend) {
    let (_db, conn) = database(backend).await;
    let [seen, a, b, c] = [(); 4].map(|_| uuid::Uuid::now_v7().to_string());
    let recorder = RecordCalls::default();
    assert_eq!(
        process_once(&conn, "together", &incoming(&seen), &recorder)
            .await
            .unwrap(),
        Outcome::Applied
    );
    // One seen before, one given twice, two new.
    let batch = [
        incoming(&a),
        incoming(&seen),
        incoming(&b),
        incoming(&a),
        incoming(&c),
    ];
    let refs: Vec<&IncomingEvent> = batch.iter().collect();
    let txn = conn.begin().await.unwrap();
    let outcomes = apply_all_in(&txn, "together", &refs, &recorder)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    use Outcome::{Applied, Duplicate};
    assert_eq!(
        outcomes,
        vec![Applied, Duplicate, Applied, Duplicate, Applied],
        "{backend:?}"
    );
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![vec![seen.clone()], vec![a.clone(), b.clone(), c.clone()]],
        "{backend:?}: the new events reach the handler in one call, in order"
    );
    assert_eq!(effects(&conn).await, 4, "{backend:?}");

    // The same batch again: all recorded, nothing reaches the handler.
    let txn = conn.begin().await.unwrap();
    let again = apply_all_in(&txn, "together", &refs, &recorder)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert!(again.iter().all(|o| *o == Duplicate), "{backend:?}");
    assert_eq!(recorder.calls.lock().unwrap().len(), 2, "{backend:?}");
    // Another consumer has an inbox of its own.
    let txn = conn.begin().await.unwrap();
    let other = apply_all_in(&txn, "another", &refs[..1], &recorder)
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(other, vec![Applied], "{backend:?}");
}

per_backend!(events_applied_together_are_recorded_in_one_go_and_each_once);

/// Records the order events are applied in, and how many were being applied
/// at once at most. With `meet`, an event waits (up to 10 s) in its handler
/// until another is being applied beside it, until that has happened once: lanes
/// that work side by side are then seen to, whatever the machine's pace.
#[derive(Default)]
struct RecordOrder {
    applied: std::sync::Mutex<Vec<(String, String)>>,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    meet: bool,
    company: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl EventHandler for RecordOrder {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        use std::sync::atomic::Ordering::SeqCst;
        let at_once = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(at_once, SeqCst);
        self.company.notify_waiters();
        self.applied
            .lock()
            .unwrap()
            .push((event.aggregate_id.clone(), event.id.clone()));
        let handled = RecordEffect.handle(txn, event).await;
        if self.meet {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let company = self.company.notified();
                    tokio::pin!(company);
                    company.as_mut().enable();
                    if self.most.load(SeqCst) > 1 {
                        return;
                    }
                    company.await;
                }
            })
            .await;
        }
        self.now.fetch_sub(1, SeqCst);
        handled
    }
}

async fn lanes_apply_each_aggregates_events_in_order_side_by_side(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    // 240 events about six aggregates, interleaved; ids (UUIDv7) rise in
    // publishing order.
    let mut published = Vec::new();
    for i in 0..240 {
        let id = uuid::Uuid::now_v7().to_string();
        let aggregate = format!("group-{}", i % 6);
        publish_about(&js, &id, &id, &aggregate).await;
        published.push(id);
    }
    // On PostgreSQL lanes must meet; on SQLite (one writer) none may wait.
    let recorder = Arc::new(RecordOrder {
        meet: backend == Backend::Postgres,
        ..Default::default()
    });
    let cfg = ConsumerConfig {
        batch: 32,
        lanes: 4,
        ..Default::default()
    };
    let mut r = runner(&conn, &js, "lanes-test", cfg);
    r.handler = recorder.clone();
    let (trigger, _) = start(r);
    settled(&js, "lanes-test", 240).await;
    trigger.trigger();
    assert_eq!(effects(&conn).await, 240, "{backend:?}: each event once");

    let applied = recorder.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 240, "{backend:?}: no event applied twice");
    for aggregate in (0..6).map(|i| format!("group-{i}")) {
        let order: Vec<&String> = applied
            .iter()
            .filter(|(a, _)| *a == aggregate)
            .map(|(_, id)| id)
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(
            order, sorted,
            "{backend:?}: {aggregate}'s events applied in publishing order"
        );
    }
    let most = recorder.most.load(std::sync::atomic::Ordering::SeqCst);
    match backend {
        // One writer: a batch is one transaction.
        Backend::Sqlite => assert_eq!(most, 1, "SQLite applies one event at a time"),
        Backend::Postgres => assert!(
            most > 1,
            "PostgreSQL lanes apply side by side (at most {most} at once)"
        ),
    }
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(lanes_apply_each_aggregates_events_in_order_side_by_side);

/// Applies every event but one, on which it panics (a bug meeting an odd event).
struct PanicOnOne {
    bad: String,
}

#[async_trait::async_trait]
impl EventHandler for PanicOnOne {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        if event.id == self.bad {
            // The kind of slip that once sat in the schedule parser: a byte
            // index into a multibyte character.
            let weekday = std::hint::black_box("MÖ");
            std::hint::black_box(&weekday[..2]);
        }
        RecordEffect.handle(txn, event).await
    }
}

async fn a_handler_panic_parks_that_event_and_the_consumer_goes_on(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let ids = backlog(&js, 10).await;
    let cfg = one_batch();
    let mut r = runner(&conn, &js, "panic-test", cfg);
    r.handler = Arc::new(PanicOnOne {
        bad: ids[3].clone(),
    });
    let (trigger, task) = start(r);
    settled(&js, "panic-test", 10).await;
    assert_eq!(
        effects(&conn).await,
        9,
        "{backend:?}: the other nine applied"
    );
    let letters = dead_letters(&conn).await;
    assert_eq!(letters.len(), 1, "{backend:?}");
    assert_eq!(letters[0].event_id, ids[3]);
    assert!(
        letters[0].error.contains("panicked") && letters[0].error.contains("char boundary"),
        "the panic's text is kept: {}",
        letters[0].error
    );
    // The same consumer is still there for what comes next.
    let later = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &later, &later).await;
    settled(&js, "panic-test", 11).await;
    assert_eq!(effects(&conn).await, 10, "{backend:?}");
    assert!(!task.is_finished(), "the consumer task is still running");
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(a_handler_panic_parks_that_event_and_the_consumer_goes_on);

/// Waits for "another stream" for its first `waits` calls, then applies.
struct WaitsFirst {
    waits: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventHandler for WaitsFirst {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &IncomingEvent,
    ) -> Result<(), HandlerError> {
        use std::sync::atomic::Ordering;
        let left = self.waits.load(Ordering::SeqCst);
        if left > 0 {
            self.waits.store(left - 1, Ordering::SeqCst);
            return Err(HandlerError::Waiting("group not known yet".into()));
        }
        RecordEffect.handle(txn, event).await
    }
}

async fn an_event_waiting_for_another_stream_is_retried_by_time_not_by_count(backend: Backend) {
    let nats = Nats::start();
    let (_db, conn) = database(backend).await;
    let js = jetstream_for(&nats).await;
    let id = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &id, &id).await;
    // Far more deliveries than max_deliver allows a plain retry.
    let cfg = ConsumerConfig {
        max_deliver: 2,
        retry_base_ms: 10,
        retry_max_ms: 40,
        ..Default::default()
    };
    let mut r = runner(&conn, &js, "wait-test", cfg.clone());
    r.handler = Arc::new(WaitsFirst { waits: 6.into() });
    let (trigger, _) = start(r);
    eventually("the event to apply", Duration::from_secs(20), || async {
        (effects(&conn).await == 1).then_some(())
    })
    .await;
    assert!(dead_letters(&conn).await.is_empty(), "{backend:?}");
    trigger.trigger();

    // Waiting ends after wait_max_secs: then the event is parked.
    let id = uuid::Uuid::now_v7().to_string();
    publish_raw(&js, &id, &id).await;
    let cfg = ConsumerConfig {
        wait_max_secs: 1,
        ..cfg
    };
    let mut r = runner(&conn, &js, "wait-test-2", cfg);
    r.handler = Arc::new(WaitsFirst {
        waits: usize::MAX.into(),
    });
    let (trigger, _) = start(r);
    // (This new durable reads the stream from its start: the first event
    // waits again too, and is parked as well.)
    let letter = eventually(
        "the event to be parked",
        Duration::from_secs(20),
        || async {
            dead_letters(&conn)
                .await
                .into_iter()
                .find(|l| l.event_id == id)
        },
    )
    .await;
    assert!(letter.error.contains("waited"), "{}", letter.error);
    trigger.trigger();
    js.delete_stream(LISTINGS.name).await.unwrap();
}

per_backend!(an_event_waiting_for_another_stream_is_retried_by_time_not_by_count);

async fn erasure_purges_published_outbox_rows_and_dead_letters_that_name_the_person(
    backend: Backend,
) {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use selfhelp_platform::migrations::entities::dead_letter;
    let (_db, conn) = database(backend).await;
    let outbox = Outbox::new("notts", "listings");
    let person = "erase-me-7731";
    // Published and naming the person (as an organiser); published and
    // naming someone whose id begins with theirs; not yet published.
    let enqueue_by = |organiser: String| {
        let (conn, outbox) = (conn.clone(), outbox.clone());
        async move {
            let mut msg = group_created("A group");
            msg.group.as_mut().unwrap().organiser_ids = vec![organiser];
            let id = msg.group.as_ref().unwrap().group_id.clone();
            let txn = conn.begin().await.unwrap();
            let ev = outbox
                .enqueue(&txn, LISTINGS, "group.created", &id, &msg, None)
                .await
                .unwrap();
            txn.commit().await.unwrap();
            ev
        }
    };
    let named = enqueue_by(person.to_string()).await;
    let other = enqueue_by(format!("{person}0")).await;
    conn.execute_unprepared("UPDATE outbox SET published_at_ms = 1")
        .await
        .unwrap();
    let pending = enqueue_by(person.to_string()).await;
    // A protobuf string field holding an id: tag, length, bytes.
    let field = |id: &str| [vec![0x0a, id.len() as u8], id.as_bytes().to_vec()].concat();
    for (payload, headers) in [
        (field(person), "{}".to_string()),
        (
            b"nothing".to_vec(),
            format!(r#"{{"ce-subject":"{person}"}}"#),
        ),
        (b"nobody".to_vec(), "{}".to_string()),
        // Someone whose id begins with the erased one's: not them.
        (
            field(&format!("{person}0")),
            format!(r#"{{"ce-subject":"{person}0"}}"#),
        ),
    ] {
        dead_letter::Entity::insert(dead_letter::ActiveModel {
            consumer: Set("c".into()),
            event_id: Set(uuid::Uuid::now_v7().to_string()),
            subject: Set("selfhelp.notts.listings.group.created".into()),
            headers_json: Set(headers),
            payload: Set(payload),
            error: Set("poison".into()),
            deliveries: Set(1),
            created_at_ms: Set(1),
            replayed_at_ms: Set(None),
            ..Default::default()
        })
        .exec_without_returning(&conn)
        .await
        .unwrap();
    }

    let txn = conn.begin().await.unwrap();
    let purged = selfhelp_platform::privacy::purge_traces(&txn, person)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(purged, 3, "{backend:?}: one outbox row, two dead letters");
    let left: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT event_id FROM outbox ORDER BY seq",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "event_id").unwrap())
        .collect();
    assert!(!left.contains(&named), "{backend:?}");
    assert_eq!(left, vec![other, pending], "{backend:?}: the rest stays");
    assert_eq!(
        dead_letters(&conn).await.len(),
        2,
        "{backend:?}: nobody's and p…0's stay"
    );
}

per_backend!(erasure_purges_published_outbox_rows_and_dead_letters_that_name_the_person);

async fn pseudonyms_are_keyed_per_service_and_stable_across_restarts(backend: Backend) {
    use selfhelp_platform::privacy::Pseudonyms;
    let (_db, conn) = database(backend).await;
    let first = Pseudonyms::load(&conn).await.unwrap();
    let again = Pseudonyms::load(&conn).await.unwrap();
    assert_eq!(
        first.of("p-42"),
        again.of("p-42"),
        "{backend:?}: the key is kept"
    );
    assert_ne!(first.of("p-42"), first.of("p-43"));
    // Another service (another database) has another key: no pseudonym
    // can be matched across services, or tried from outside.
    let (_other_db, other) = database(backend).await;
    let elsewhere = Pseudonyms::load(&other).await.unwrap();
    assert_ne!(first.of("p-42"), elsewhere.of("p-42"));
    // Records from before keys are still found.
    let [today, before] = first.all_of("p-42");
    assert_eq!(today, first.of("p-42"));
    assert_ne!(before, today);
    assert_eq!(
        before,
        elsewhere.all_of("p-42")[1],
        "the unkeyed one is the same everywhere"
    );
}

per_backend!(pseudonyms_are_keyed_per_service_and_stable_across_restarts);
