//! NATS least privilege, proved against a real `nats-server` of the version
//! the container images ship, running `deploy/nats/nats.conf`: each service's
//! user may publish only its own events and use the JetStream API only for its
//! own streams and durables; the partner user reads listings and nothing else;
//! no user can make JetStream itself write into a stream by naming that
//! stream's subject as a reply subject. Then the three real service binaries
//! run with their own users and a join goes all the way to the member's
//! welcome, so the permissions are also enough.

use selfhelp_proto::streams;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sea_orm::Database;
use selfhelp_e2e::{Trio, count, published_group, service_env};
use selfhelp_platform::bus;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::streams::{LISTINGS, MEMBERSHIP, PRIVACY, PUBLIC};
use selfhelp_testkit::{Backend, TestDb, channel, eventually, join_request, token, with_token};

const REGION: &str = "notts";
const USERS: [(&str, &str); 6] = [
    ("listings", "LISTINGS_NATS_PASSWORD"),
    ("membership", "MEMBERSHIP_NATS_PASSWORD"),
    ("notifications", "NOTIFICATIONS_NATS_PASSWORD"),
    ("gateway", "GATEWAY_NATS_PASSWORD"),
    ("outside-subscriber", "OUTSIDE_NATS_PASSWORD"),
    ("operator", "OPERATOR_NATS_PASSWORD"),
];

fn password(user: &str) -> String {
    format!("pw-of-{user}")
}

/// Where JetStream's API answers the users of deploy/nats/accounts.conf.
const API: &str = "JS.API";

/// `nats-server` with `deploy/nats/nats.conf` and the `accounts.conf` it
/// includes, unchanged but for the port and the store folder (the file names
/// them, and the server refuses to take them twice).
struct Server {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl Server {
    /// `nats-server` with `deploy/nats/nats.conf` and the `accounts.conf` it
    /// includes.
    fn start() -> Server {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
        Server::with_accounts(&std::fs::read_to_string(deploy.join("accounts.conf")).unwrap())
    }

    /// `nats.conf` from deploy/nats with `accounts` in place of its
    /// `accounts.conf`.
    fn with_accounts(accounts: &str) -> Server {
        let store = tempfile::tempdir().unwrap();
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
        let original = std::fs::read_to_string(deploy.join("nats.conf")).unwrap();
        let data = store.path().join("js");
        // Port -1: the server picks one and reports it in a ports file.
        let conf = original
            .replace("port: 4222", "port: -1")
            .replace("http_port: 8222", "")
            .replace(
                "store_dir: \"/data\"",
                &format!("store_dir: {:?}", data.display().to_string()),
            );
        assert_ne!(conf, original, "nats.conf names a port and a store");
        std::fs::write(store.path().join("nats.conf"), conf).unwrap();
        std::fs::write(store.path().join("accounts.conf"), accounts).unwrap();
        let ports_dir = store.path().join("ports");
        std::fs::create_dir(&ports_dir).unwrap();
        let mut cmd = Command::new(selfhelp_testkit::shipped_nats_binary());
        cmd.arg("-c")
            .arg(store.path().join("nats.conf"))
            .args(["-a", "127.0.0.1"])
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (user, var) in USERS {
            // Quoted, as deploy/nats/with-generated-passwords.sh gives them.
            cmd.env(var, format!("\"{}\"", password(user)));
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Some(port) = selfhelp_testkit::nats_server::reported_port(&ports_dir, child.id())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server refused deploy/nats/nats.conf: {status}");
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            port,
            _store: store,
        }
    }

    fn url(&self, user: &str) -> String {
        format!("nats://{user}:{}@127.0.0.1:{}", password(user), self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(server: &Server, user: &str) -> jetstream::Context {
    let mut js = jetstream::with_prefix(client(server, user).await, API);
    // A refused request is never answered: wait for it as long as for a
    // core request (1 s), not JetStream's default 5 s.
    js.set_timeout(Duration::from_secs(1));
    js
}

async fn client(server: &Server, user: &str) -> async_nats::Client {
    let prefix = if user == "outside-subscriber" {
        "_INBOX_OUTSIDE".to_string()
    } else {
        format!("_INBOX_{user}")
    };
    async_nats::ConnectOptions::new()
        .user_and_password(user.to_string(), password(user))
        .custom_inbox_prefix(prefix)
        .request_timeout(Some(Duration::from_secs(1)))
        .connect(server.url(user).as_str())
        .await
        .unwrap_or_else(|e| panic!("{user} cannot connect: {e}"))
}

/// Whether `user` may publish an event on `subject` into its stream (stored
/// and acknowledged).
async fn may_publish(js: &jetstream::Context, subject: &str) -> bool {
    match js.publish(subject.to_string(), "{}".into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn each_nats_user_may_do_its_part_and_nothing_more() {
    let server = Server::start();
    let limits = bus::StreamLimits::default();
    let (listings, membership, notifications, gateway, outside) = (
        connect(&server, "listings").await,
        connect(&server, "membership").await,
        connect(&server, "notifications").await,
        connect(&server, "gateway").await,
        connect(&server, "outside-subscriber").await,
    );
    // Each creates the streams it writes; none may create another's.
    assert!(
        bus::ensure_stream(&notifications, LISTINGS, limits)
            .await
            .is_err()
    );
    assert!(
        bus::ensure_stream(&listings, MEMBERSHIP, limits)
            .await
            .is_err()
    );
    bus::ensure_stream(&listings, LISTINGS, limits)
        .await
        .unwrap();
    bus::ensure_stream(&membership, MEMBERSHIP, limits)
        .await
        .unwrap();
    bus::ensure_stream(&membership, PRIVACY, limits)
        .await
        .unwrap();
    assert!(
        bus::ensure_stream(&membership, PUBLIC, limits)
            .await
            .is_err()
    );
    bus::ensure_stream(&listings, PUBLIC, limits).await.unwrap();

    let s = |rest: &str| format!("selfhelp.{REGION}.{rest}");
    let cases = [
        (&listings, "listings", s("listings.group.created"), true),
        (&listings, "listings", s("membership.member.joined"), false),
        (&listings, "listings", s("privacy.erasure.requested"), false),
        (&listings, "listings", s("privacy.erasure.completed"), true),
        (&listings, "listings", s("public.group.changed"), true),
        (&membership, "membership", s("public.group.changed"), false),
        (
            &notifications,
            "notifications",
            s("public.group.changed"),
            false,
        ),
        (
            &outside,
            "outside-subscriber",
            s("public.group.changed"),
            false,
        ),
        (
            &membership,
            "membership",
            s("membership.member.joined"),
            true,
        ),
        (
            &membership,
            "membership",
            s("listings.group.created"),
            false,
        ),
        (
            &membership,
            "membership",
            s("privacy.erasure.requested"),
            true,
        ),
        (
            &notifications,
            "notifications",
            s("privacy.erasure.completed"),
            true,
        ),
        (
            &notifications,
            "notifications",
            s("listings.group.created"),
            false,
        ),
        (
            &notifications,
            "notifications",
            s("membership.member.joined"),
            false,
        ),
        (
            &notifications,
            "notifications",
            s("privacy.erasure.requested"),
            false,
        ),
        (
            &outside,
            "outside-subscriber",
            s("listings.group.created"),
            false,
        ),
        // The gateway confirms erasures and says nothing else.
        (&gateway, "gateway", s("privacy.erasure.completed"), true),
        (&gateway, "gateway", s("privacy.erasure.requested"), false),
        (&gateway, "gateway", s("membership.member.joined"), false),
        (&gateway, "gateway", s("listings.group.created"), false),
        (&gateway, "gateway", s("public.group.changed"), false),
    ];
    // Side by side: each refusal shows only as a request left unanswered.
    let answers = futures::future::join_all(
        cases
            .iter()
            .map(|(js, _, subject, _)| may_publish(js, subject)),
    )
    .await;
    for ((_, user, subject, allowed), may) in cases.iter().zip(answers) {
        assert_eq!(may, *allowed, "{user} publishing {subject}");
    }

    // Consumers: each on the streams it reads, none on others, and no user
    // may delete a stream or another's consumer.
    let durable = |service: &str, stream| {
        let js = match service {
            "listings" => &listings,
            "membership" => &membership,
            "gateway" => &gateway,
            _ => &notifications,
        };
        runner(service, stream, js.clone())
    };
    durable("notifications", MEMBERSHIP)
        .ensure()
        .await
        .expect("notifications reads MEMBERSHIP");
    durable("listings", MEMBERSHIP)
        .ensure()
        .await
        .expect("listings reads MEMBERSHIP");
    durable("membership", LISTINGS)
        .ensure()
        .await
        .expect("membership reads LISTINGS");
    assert!(
        durable("membership", MEMBERSHIP).ensure().await.is_err(),
        "membership has no consumer on its own stream"
    );
    durable("gateway", PRIVACY)
        .ensure()
        .await
        .expect("the gateway reads PRIVACY");
    for stream in [LISTINGS, MEMBERSHIP] {
        assert!(
            durable("gateway", stream).ensure().await.is_err(),
            "the gateway reads {}",
            stream.name
        );
    }
    for (js, user) in [
        (&listings, "listings"),
        (&membership, "membership"),
        (&notifications, "notifications"),
        (&gateway, "gateway"),
        (&outside, "outside-subscriber"),
    ] {
        assert!(
            js.delete_stream("LISTINGS").await.is_err(),
            "{user} deleted LISTINGS"
        );
        assert!(
            js.delete_consumer_from_stream("notifications-notts-membership", "MEMBERSHIP")
                .await
                .is_err(),
            "{user} deleted notifications' consumer"
        );
    }
    // The partner reads PUBLIC through the one consumer listings makes for
    // it, and nothing else: no way into LISTINGS (person ids, drafts, notes),
    // MEMBERSHIP or PRIVACY, and no consumer of its own making.
    for stream in ["LISTINGS", "MEMBERSHIP", "PRIVACY"] {
        assert!(
            outside.get_stream(stream).await.is_err(),
            "the partner looked at {stream}"
        );
    }
    assert!(
        bus::ensure_partner_consumer(&membership, PUBLIC, "outside-subscriber", REGION)
            .await
            .is_err(),
        "only listings makes partners' consumers"
    );
    bus::ensure_partner_consumer(&listings, PUBLIC, "outside-subscriber", REGION)
        .await
        .expect("listings makes the partner's consumer");
    for name in ["partner-own", "listings-notts-public"] {
        assert!(
            bus::ensure_partner_consumer(&outside, PUBLIC, name, REGION)
                .await
                .is_err(),
            "the partner made a consumer {name}"
        );
    }
    let public = outside
        .get_stream("PUBLIC")
        .await
        .expect("the partner may look at PUBLIC");
    // A push consumer would let it copy events to any subject: refused.
    let push = jetstream::consumer::push::Config {
        durable_name: Some("outside-subscriber-push".into()),
        deliver_subject: s("membership.member.joined"),
        ..Default::default()
    };
    assert!(public.create_consumer(push).await.is_err());
    let published = listings
        .publish(s("public.group.changed"), "{}".into())
        .await
        .unwrap();
    published.await.expect("stored in PUBLIC");
    let consumer: jetstream::consumer::PullConsumer = public
        .get_consumer("outside-subscriber")
        .await
        .expect("the partner's own consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("the partner pulls");
    use futures::StreamExt;
    let message = batch.next().await.expect("an event").expect("readable");
    assert_eq!(message.subject.as_str(), s("public.group.changed"));
    message.ack().await.expect("the partner acknowledges");
    assert!(
        outside
            .delete_consumer_from_stream("outside-subscriber", "PUBLIC")
            .await
            .is_err(),
        "the partner deleted its consumer"
    );
}

/// The operators' user follows events with `selfhelp events tail` (the real
/// binary, decoding them) and can do nothing else: no publishing, no
/// JetStream API.
#[tokio::test]
async fn the_operator_user_watches_events_and_does_nothing_else() {
    use std::io::{BufRead, BufReader};
    let server = Server::start();
    let listings = connect(&server, "listings").await;
    bus::ensure_stream(&listings, LISTINGS, bus::StreamLimits::default())
        .await
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("operator-nats-password");
    std::fs::write(&password_file, password("operator")).unwrap();
    let mut tail = Command::new(selfhelp_e2e::binary("selfhelp"))
        .args(["events", "tail", "--count", "1", "selfhelp.notts.>"])
        .env(
            "SELFHELP_NATS__URL",
            format!("nats://operator@127.0.0.1:{}", server.port),
        )
        .env("SELFHELP_NATS__PASSWORD_FILE", &password_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(tail.stderr.take().unwrap());
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert!(line.starts_with("following selfhelp.notts.>"), "{line}");
    assert!(!line.contains(&password("operator")), "{line}");

    let created = selfhelp_proto::events::v1::GroupCreated {
        group: Some(selfhelp_proto::events::v1::GroupSnapshot {
            group_id: "g-tail".into(),
            name: "Tailed group".into(),
            ..Default::default()
        }),
        occurred_at: None,
    };
    let ce_type = LISTINGS.ce_type("group.created");
    let schema = <selfhelp_proto::events::v1::GroupCreated as prost::Name>::full_name();
    // The tail's interest crosses from the operators' account to the
    // streams' asynchronously, after the tail says it follows: a core NATS
    // message sent before it arrives goes nowhere. So the event is sent again,
    // each a second apart, until the tail has printed one.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while tail.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = tail.kill();
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut said, &mut rest);
            panic!(
                "the event, sent {sent} times, never reached `selfhelp events tail`; it said: {rest}"
            );
        }
        sent += 1;
        let id = format!("tail-{sent}");
        let headers = bus::Envelope {
            id: &id,
            source: &format!("urn:selfhelp:{REGION}:listings"),
            ce_type: &ce_type,
            time: "2026-11-29T00:00:00.000Z",
            aggregate_id: "g-tail",
            data_schema: &schema,
            traceparent: None,
            stream: LISTINGS.name,
        }
        .headers();
        listings
            .publish_with_headers(
                LISTINGS.subject(REGION, "group.created"),
                headers,
                prost::Message::encode_to_vec(&created).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let wait_until = std::time::Instant::now() + Duration::from_secs(1);
        while tail.try_wait().unwrap().is_none() && std::time::Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let out = tail.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line per event");
    assert_eq!(printed["type"], ce_type);
    assert!(
        printed["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("tail-")),
        "{printed}"
    );
    assert_eq!(printed["data"]["group"]["name"], "Tailed group");

    // Publishing is refused to the operator where it would work for the
    // stream's own service: MEMBERSHIP exists and membership's event is stored.
    let membership = connect(&server, "membership").await;
    bus::ensure_stream(&membership, MEMBERSHIP, bus::StreamLimits::default())
        .await
        .unwrap();
    let operator = connect(&server, "operator").await;
    let s = |rest: &str| format!("selfhelp.{REGION}.{rest}");
    for (owner, subject) in [
        (&listings, s("listings.group.created")),
        (&membership, s("membership.member.joined")),
    ] {
        assert!(
            !may_publish(&operator, &subject).await,
            "the operator published on {subject}"
        );
        assert!(
            may_publish(owner, &subject).await,
            "its own service may publish on {subject}"
        );
    }
    assert!(operator.get_stream("LISTINGS").await.is_err());
    assert!(operator.delete_stream("LISTINGS").await.is_err());
    assert_eq!(
        listings
            .get_stream("LISTINGS")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages,
        2,
        "the tailed event and listings' own, not the operator's"
    );
}

/// The subjects a reply may name to reach each stream: one of each stream's
/// own events.
const TARGETS: [(&str, &str); 4] = [
    ("MEMBERSHIP", "membership.member.joined"),
    ("PRIVACY", "privacy.erasure.requested"),
    ("LISTINGS", "listings.group.created"),
    ("PUBLIC", "public.group.changed"),
];

/// A request JetStream answers, sent by `user` with the answer addressed to
/// `target`, one of the [`TARGETS`].
struct Trick {
    client: async_nats::Client,
    user: &'static str,
    kind: &'static str,
    subject: String,
    headers: Option<async_nats::HeaderMap>,
    payload: bytes::Bytes,
    target: (&'static str, &'static str),
}

/// The consumers each user pulls from: the services' own durables and the
/// partner's. The operator has none of its own and tries the partner's.
fn consumers_of(user: &str) -> Vec<(&'static str, String)> {
    let durable = |service: &str, stream: streams::StreamSpec| {
        (
            stream.name,
            selfhelp_platform::consumer::ConsumerRunner::durable_name(service, REGION, stream),
        )
    };
    match user {
        "listings" => vec![
            durable("listings", MEMBERSHIP),
            durable("listings", PRIVACY),
        ],
        "membership" => vec![
            durable("membership", LISTINGS),
            durable("membership", PRIVACY),
        ],
        "notifications" => vec![
            durable("notifications", LISTINGS),
            durable("notifications", MEMBERSHIP),
            durable("notifications", PRIVACY),
        ],
        "gateway" => vec![durable("gateway", PRIVACY)],
        _ => vec![("PUBLIC", "outside-subscriber".to_string())],
    }
}

/// A request each user may make that JetStream answers without taking a
/// message: a service publishing one of its own events again (a duplicate,
/// which the stream acknowledges without storing); the others asking about
/// the partners' stream.
fn plain_request(user: &str, api: &str) -> (String, Option<async_nats::HeaderMap>) {
    let event = |stream: streams::StreamSpec, event: &str| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(bus::headers::NATS_MSG_ID, seed_id(stream.name, 0).as_str());
        (stream.subject(REGION, event), Some(headers))
    };
    match user {
        "listings" => event(LISTINGS, "group.created"),
        "membership" => event(MEMBERSHIP, "member.joined"),
        "notifications" | "gateway" => event(PRIVACY, "erasure.completed"),
        _ => (format!("{api}.STREAM.INFO.PUBLIC"), None),
    }
}

fn seed_id(stream: &str, n: usize) -> String {
    format!("seed-{stream}-{n}")
}

/// Messages each stream needs for the probe: per user of a consumer, one per
/// pull trick, one per ack trick, one for the control ack and one for the pull
/// that ends the probe; the partner's consumer has two users (the partner, and
/// the operator trying it).
const SEEDS: usize = 2 * (TARGETS.len() * 2 + 2);

fn pull(batch: usize) -> bytes::Bytes {
    format!(r#"{{"batch":{batch},"expires":1000000000}}"#).into()
}

/// Ten events of each stream, published by the service that writes it.
async fn seed(server: &Server, api: &str) {
    let writers = [
        ("listings", LISTINGS, "group.created"),
        ("listings", PUBLIC, "group.changed"),
        ("membership", MEMBERSHIP, "member.joined"),
        ("membership", PRIVACY, "erasure.requested"),
    ];
    for (user, stream, event) in writers {
        let js = jetstream::with_prefix(client(server, user).await, api);
        for n in 0..SEEDS {
            // Only the first has an id (a plain request publishes it again):
            // a pulled message keeps its headers, and a stream would take a
            // copy of one of its own with its id for a duplicate.
            let mut headers = async_nats::HeaderMap::new();
            if n == 0 {
                headers.insert(bus::headers::NATS_MSG_ID, seed_id(stream.name, n).as_str());
            }
            js.publish_with_headers(stream.subject(REGION, event), headers, "{}".into())
                .await
                .unwrap()
                .await
                .unwrap_or_else(|e| panic!("{user} seeding {}: {e}", stream.name));
        }
    }
}

/// Every user's tricks: for each consumer it may use and each target, a pull
/// request and an acknowledgement (of a message the user pulled itself)
/// answered there, and a consumer info request; for each target, its plain
/// request. Each user that may make requests checks first that each kind is
/// answered at its own inbox, so the probe tries what JetStream really answers;
/// the operator may make none in the deployment (`operator_asks` false), and
/// acknowledges made-up messages.
async fn tricks(server: &Server, api: &str, operator_asks: bool) -> Vec<Trick> {
    let mut all = Vec::new();
    for (user, _) in USERS {
        let client = client(server, user).await;
        let asks = operator_asks || user != "operator";
        let trick =
            |kind, subject: &str, headers: Option<async_nats::HeaderMap>, payload, target| Trick {
                client: client.clone(),
                user,
                kind,
                subject: subject.to_string(),
                headers,
                payload,
                target,
            };
        for (stream, durable) in consumers_of(user) {
            let next = format!("{api}.CONSUMER.MSG.NEXT.{stream}.{durable}");
            let info = format!("{api}.CONSUMER.INFO.{stream}.{durable}");
            let acks: Vec<String> = if asks {
                // Messages to acknowledge, one per target and one for the
                // control, pulled to the user's own inbox.
                let mut acks: Vec<String> = pulled(&client, &next, TARGETS.len() + 1)
                    .await
                    .into_iter()
                    .map(|m| {
                        m.reply
                            .expect("a pulled message has an ack subject")
                            .to_string()
                    })
                    .collect();
                assert_eq!(
                    acks.len(),
                    TARGETS.len() + 1,
                    "{user} pulling from {stream}"
                );
                client
                    .request(acks.pop().unwrap(), "+ACK".into())
                    .await
                    .unwrap_or_else(|e| panic!("{user}'s ack on {stream} went unanswered: {e}"));
                client
                    .request(info.clone(), "".into())
                    .await
                    .unwrap_or_else(|e| panic!("{user}'s consumer info on {stream}: {e}"));
                acks
            } else {
                (1..=TARGETS.len())
                    .map(|n| format!("$JS.ACK.{stream}.{durable}.1.{n}.{n}.0.0"))
                    .collect()
            };
            for (target, ack) in TARGETS.into_iter().zip(acks) {
                all.push(trick("pull request", &next, None, pull(1), target));
                all.push(trick("ack", &ack, None, "+ACK".into(), target));
                all.push(trick(
                    "consumer info request",
                    &info,
                    None,
                    "".into(),
                    target,
                ));
            }
        }
        let (subject, headers) = plain_request(user, api);
        if asks {
            let answer = match &headers {
                Some(h) => {
                    client
                        .request_with_headers(subject.clone(), h.clone(), "{}".into())
                        .await
                }
                None => client.request(subject.clone(), "".into()).await,
            };
            answer.unwrap_or_else(|e| panic!("{user}'s plain request {subject}: {e}"));
        }
        for target in TARGETS {
            all.push(trick(
                "plain request",
                &subject,
                headers.clone(),
                "{}".into(),
                target,
            ));
        }
    }
    all
}

/// One message pulled with `next` to the client's own inbox (a pulled message
/// keeps its own subject, so a request's reply matching cannot take it).
async fn pull_one(client: &async_nats::Client, next: &str) -> Option<async_nats::Message> {
    pulled(client, next, 1).await.pop()
}

/// `batch` messages pulled with `next` to the client's own inbox, or fewer
/// if they do not come within 5 s.
async fn pulled(client: &async_nats::Client, next: &str, batch: usize) -> Vec<async_nats::Message> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(next.to_string(), inbox, pull(batch))
        .await
        .unwrap();
    let mut messages = Vec::new();
    while messages.len() < batch {
        match tokio::time::timeout(Duration::from_secs(5), answers.next()).await {
            Ok(Some(message)) if message.status.is_none() => messages.push(message),
            _ => break,
        }
    }
    messages
}

/// Sends `trick`, its answer addressed to its target's subject.
async fn play(trick: &Trick) {
    let reply = format!("selfhelp.{REGION}.{}", trick.target.1);
    let client = &trick.client;
    // A refused publish is only reported asynchronously by the server.
    let _ = match &trick.headers {
        Some(h) => {
            client
                .publish_with_reply_and_headers(
                    trick.subject.clone(),
                    reply,
                    h.clone(),
                    trick.payload.clone(),
                )
                .await
        }
        None => {
            client
                .publish_with_reply(trick.subject.clone(), reply, trick.payload.clone())
                .await
        }
    };
    client.flush().await.unwrap();
}

/// Each stream's message count, read through `reader`'s API imports.
async fn counts(reader: &jetstream::Context) -> Vec<(&'static str, u64)> {
    let mut counts = Vec::new();
    for (stream, _) in TARGETS {
        let mut s = reader.get_stream(stream).await.unwrap();
        counts.push((stream, s.info().await.unwrap().state.messages));
    }
    counts
}

/// Makes the streams, the services' consumers and the partner's, and seeds
/// each stream.
async fn streams_and_consumers(server: &Server, api: &str) {
    let limits = bus::StreamLimits::default();
    let js =
        |user: &'static str| async move { jetstream::with_prefix(client(server, user).await, api) };
    let (listings, membership, notifications, gateway) = (
        js("listings").await,
        js("membership").await,
        js("notifications").await,
        js("gateway").await,
    );
    for (writer, stream) in [
        (&listings, LISTINGS),
        (&listings, PUBLIC),
        (&membership, MEMBERSHIP),
        (&membership, PRIVACY),
    ] {
        bus::ensure_stream(writer, stream, limits).await.unwrap();
    }
    bus::ensure_partner_consumer(&listings, PUBLIC, "outside-subscriber", REGION)
        .await
        .unwrap();
    for (service, js) in [
        ("listings", &listings),
        ("membership", &membership),
        ("notifications", &notifications),
        ("gateway", &gateway),
    ] {
        for (stream, _) in consumers_of(service) {
            let stream = [LISTINGS, MEMBERSHIP, PRIVACY]
                .into_iter()
                .find(|s| s.name == stream)
                .unwrap();
            runner(service, stream, js.clone()).ensure().await.unwrap();
        }
    }
    seed(server, api).await;
}

fn runner(
    service: &str,
    stream: streams::StreamSpec,
    js: jetstream::Context,
) -> selfhelp_platform::consumer::ConsumerRunner {
    selfhelp_platform::consumer::ConsumerRunner {
        durable: selfhelp_platform::consumer::ConsumerRunner::durable_name(service, REGION, stream),
        stream,
        filter: stream.region_filter(REGION),
        stream_limits: bus::StreamLimits::default(),
        cfg: Default::default(),
        db: sea_orm::DatabaseConnection::default(),
        js,
        handler: std::sync::Arc::new(Nothing),
    }
}

/// The probe of issue 38, as every user, on every stream: a pull request, an
/// acknowledgement, a consumer info request and a plain request, each with
/// its answer addressed to an event subject of MEMBERSHIP, PRIVACY, LISTINGS
/// and PUBLIC. With the deployment's accounts no stream gains a message.
#[tokio::test]
async fn no_user_can_make_jetstream_answer_into_a_stream() {
    let server = Server::start();
    streams_and_consumers(&server, API).await;
    let listings = connect(&server, "listings").await;
    let before = counts(&listings).await;
    assert!(before.iter().all(|(_, n)| *n == SEEDS as u64), "{before:?}");

    let tricks = tricks(&server, API, false).await;
    for trick in &tricks {
        play(trick).await;
    }
    // JetStream answers a consumer's pull requests in turn: once a later pull
    // to the user's own inbox is answered, the tricks before it are done.
    for (user, _) in USERS.iter().filter(|(u, _)| *u != "operator") {
        let client = client(&server, user).await;
        for (stream, durable) in consumers_of(user) {
            pull_one(
                &client,
                &format!("{API}.CONSUMER.MSG.NEXT.{stream}.{durable}"),
            )
            .await
            .unwrap_or_else(|| panic!("{user}'s last pull on {durable} went unanswered"));
        }
    }
    // Then one event more in each stream, from its own service: each stream
    // holds what it held and that one, and nothing else.
    let mut expected = before.clone();
    for (writer, stream, event) in [
        ("listings", LISTINGS, "group.created"),
        ("listings", PUBLIC, "group.changed"),
        ("membership", MEMBERSHIP, "member.joined"),
        ("membership", PRIVACY, "erasure.requested"),
    ] {
        connect(&server, writer)
            .await
            .publish(stream.subject(REGION, event), "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        expected
            .iter_mut()
            .find(|(s, _)| *s == stream.name)
            .unwrap()
            .1 += 1;
    }
    assert_eq!(
        counts(&listings).await,
        expected,
        "after {} tricks by every user, a stream gained a message",
        tricks.len()
    );
    eprintln!(
        "nats_permissions: {} answers addressed to the four streams' subjects by every user; none stored",
        tricks.len()
    );
}

/// The same probe against one account holding the streams and every user (as
/// deploy/nats/accounts.conf was before issue 38) finds each trick land in
/// its target stream: the probe can see what it looks for.
#[tokio::test]
async fn the_probe_finds_injections_where_streams_and_users_share_an_account() {
    let users: String = USERS
        .iter()
        .map(|(user, var)| format!("      {{ user: {user:?}, password: ${var} }}\n"))
        .collect();
    let server = Server::with_accounts(&format!(
        "accounts {{\n  SELFHELP {{\n    jetstream: enabled\n    users: [\n{users}    ]\n  }}\n}}\n"
    ));
    let api = "$JS.API";
    streams_and_consumers(&server, api).await;
    let listings = jetstream::with_prefix(client(&server, "listings").await, api);
    let tricks = tricks(&server, api, true).await;
    let mut expected = counts(&listings).await;
    for trick in &tricks {
        play(trick).await;
        let (stream, target) = trick.target;
        expected.iter_mut().find(|(s, _)| *s == stream).unwrap().1 += 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = counts(&listings).await;
            if now == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s {} answered to {target} did not land in {stream}: {now:?}, expected {expected:?}",
                trick.user,
                trick.kind
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Nothing;

#[async_trait::async_trait]
impl selfhelp_platform::inbox::EventHandler for Nothing {
    async fn handle(
        &self,
        _: &sea_orm::DatabaseTransaction,
        _: &selfhelp_platform::bus::IncomingEvent,
    ) -> Result<(), selfhelp_platform::inbox::HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_services_work_with_their_own_users() {
    let server = Server::start();
    let dbs = [
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    ];
    let env = |user: &str, db: &TestDb, listings_url: &str| {
        let mut env = service_env(REGION, &db.url, &server.url(user), listings_url);
        env.push(("SELFHELP_NATS__JETSTREAM_API_PREFIX", API.to_string()));
        env
    };
    // All at once: each creates only its own streams and waits for the others'.
    let trio = Trio::start(&dbs, env).await;

    let group_id = published_group(trio.listings.addr, REGION, "alice").await;
    let mut mc = MembershipServiceClient::new(channel(trio.membership.addr).await);
    let bob = token("bob", REGION, &[]);
    eventually("bob's join accepted", Duration::from_secs(30), || {
        let mut mc = mc.clone();
        let req = with_token(join_request(&group_id), &bob);
        async move { mc.join_group(req).await.ok().map(|_| ()) }
    })
    .await;
    let _ = &mut mc;
    let notifications_db = Database::connect(&dbs[2].url).await.unwrap();
    eventually("bob's welcome", Duration::from_secs(30), || async {
        (count(
            &notifications_db,
            "SELECT COUNT(*) FROM notification WHERE recipient_id = 'bob' AND kind = 'WELCOME'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let dead: i64 = {
        let mut n = 0;
        for db in &dbs {
            n += count(
                &Database::connect(&db.url).await.unwrap(),
                "SELECT COUNT(*) FROM dead_letter",
            )
            .await;
        }
        n
    };
    assert_eq!(dead, 0);
}
