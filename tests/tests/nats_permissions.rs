//! NATS least privilege, proved against a real `nats-server` running
//! `deploy/nats/nats.conf`: each service's user may publish only its own
//! events and use the JetStream API only for its own streams and durables;
//! the partner user reads listings and nothing else. Then the three real
//! service binaries run with their own users and a join goes all the way to
//! the member's welcome, so the permissions are also enough.

use selfhelp_proto::streams;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use sea_orm::Database;
use selfhelp_e2e::{Trio, count, published_group, service_env};
use selfhelp_platform::bus;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::streams::{LISTINGS, MEMBERSHIP, PRIVACY, PUBLIC};
use selfhelp_testkit::{Backend, TestDb, channel, eventually, join_request, token, with_token};

const REGION: &str = "notts";
const USERS: [(&str, &str); 5] = [
    ("listings", "LISTINGS_NATS_PASSWORD"),
    ("membership", "MEMBERSHIP_NATS_PASSWORD"),
    ("notifications", "NOTIFICATIONS_NATS_PASSWORD"),
    ("outside-subscriber", "OUTSIDE_NATS_PASSWORD"),
    ("operator", "OPERATOR_NATS_PASSWORD"),
];

fn password(user: &str) -> String {
    format!("pw-of-{user}")
}

/// `nats-server` with `deploy/nats/nats.conf` and the `accounts.conf` it
/// includes, unchanged but for the port and the store folder (the file names
/// them, and the server refuses to take them twice).
struct Server {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
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
        std::fs::copy(
            deploy.join("accounts.conf"),
            store.path().join("accounts.conf"),
        )
        .unwrap();
        let ports_dir = store.path().join("ports");
        std::fs::create_dir(&ports_dir).unwrap();
        let mut cmd = Command::new(selfhelp_testkit::nats_binary());
        cmd.arg("-c")
            .arg(store.path().join("nats.conf"))
            .args(["-a", "127.0.0.1"])
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (user, var) in USERS {
            cmd.env(var, password(user));
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Some(port) = selfhelp_testkit::nats_server::reported_port(&ports_dir, child.id())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server refused deploy/nats/nats.conf: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
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
    let prefix = if user == "outside-subscriber" {
        "_INBOX_OUTSIDE".to_string()
    } else {
        format!("_INBOX_{user}")
    };
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.to_string(), password(user))
        .custom_inbox_prefix(prefix)
        .request_timeout(Some(Duration::from_secs(1)))
        .connect(server.url(user).as_str())
        .await
        .unwrap_or_else(|e| panic!("{user} cannot connect: {e}"));
    jetstream::new(client)
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
    let (listings, membership, notifications, outside) = (
        connect(&server, "listings").await,
        connect(&server, "membership").await,
        connect(&server, "notifications").await,
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
    ];
    for (js, user, subject, allowed) in cases {
        assert_eq!(
            may_publish(js, &subject).await,
            allowed,
            "{user} publishing {subject}"
        );
    }

    // Consumers: each on the streams it reads, none on others, and no user
    // may delete a stream or another's consumer.
    let durable =
        |service: &str, stream: streams::StreamSpec| selfhelp_platform::consumer::ConsumerRunner {
            durable: selfhelp_platform::consumer::ConsumerRunner::durable_name(
                service, REGION, stream,
            ),
            stream,
            filter: stream.region_filter(REGION),
            stream_limits: limits,
            cfg: Default::default(),
            db: sea_orm::DatabaseConnection::default(),
            js: match service {
                "listings" => listings.clone(),
                "membership" => membership.clone(),
                _ => notifications.clone(),
            },
            handler: std::sync::Arc::new(Nothing),
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
    for (js, user) in [
        (&listings, "listings"),
        (&membership, "membership"),
        (&notifications, "notifications"),
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
    let headers = bus::Envelope {
        id: "tail-1",
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
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tail.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = tail.kill();
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut said, &mut rest);
            panic!("the event never reached `selfhelp events tail`; it said: {rest}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tail.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line per event");
    assert_eq!(printed["type"], ce_type);
    assert_eq!(printed["id"], "tail-1");
    assert_eq!(printed["data"]["group"]["name"], "Tailed group");

    let operator = connect(&server, "operator").await;
    let s = |rest: &str| format!("selfhelp.{REGION}.{rest}");
    for subject in [s("listings.group.created"), s("membership.member.joined")] {
        assert!(
            !may_publish(&operator, &subject).await,
            "the operator published on {subject}"
        );
    }
    assert!(operator.get_stream("LISTINGS").await.is_err());
    assert!(operator.delete_stream("LISTINGS").await.is_err());
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
        service_env(REGION, &db.url, &server.url(user), listings_url)
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
