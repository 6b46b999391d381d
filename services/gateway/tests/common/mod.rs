//! What the gateway's test files share: a real listings (SQLite, a real
//! nats-server) with a small directory in it, and the gateway in front of it.
#![allow(dead_code)]

pub mod oidc;
pub mod web;

use std::net::SocketAddr;

use selfhelp_gateway::Config as GatewayConfig;
use selfhelp_listings::{Config as ListingsConfig, SERVICE_NAME, run as run_listings};
use selfhelp_platform::Shutdown;
use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_testkit::{Backend, Nats, RunningService, TestDb, token, with_token};
use tonic::transport::Channel;

pub const REGION: &str = "notts";

pub struct Gateway {
    pub addr: SocketAddr,
    pub _stop: selfhelp_platform::shutdown::ShutdownTrigger,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Its database and mail folder, unless the test gave its own.
    pub _dir: tempfile::TempDir,
}

impl Gateway {
    /// A gateway in front of `listings_url`, its sign-in state in a SQLite
    /// file of its own and its emails written as files, as `tweak` changes it.
    pub async fn start(listings_url: &str, tweak: impl FnOnce(&mut GatewayConfig)) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GatewayConfig {
            listings_url: listings_url.to_string(),
            area_name: "Nottinghamshire".into(),
            ..Default::default()
        };
        config.region = REGION.into();
        config.database.url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("gateway.db").display()
        );
        config.email.file_dir = dir.path().join("mail");
        config.http.rate_limit_per_second = 0;
        // No NATS unless the test gives one (erasure only).
        config.nats.url = String::new();
        tweak(&mut config);
        Self::start_with(config, selfhelp_core::time::Clock::system(), dir).await
    }

    pub async fn start_with(
        config: GatewayConfig,
        clock: selfhelp_core::time::Clock,
        dir: tempfile::TempDir,
    ) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, config, clock, dir).await
    }

    /// On a listener bound already (its address given to the services first).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        config: GatewayConfig,
        clock: selfhelp_core::time::Clock,
        dir: tempfile::TempDir,
    ) -> Gateway {
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(selfhelp_gateway::run_with_clock(
            config, clock, listener, shutdown,
        ));
        // Serving once the health check answers.
        let http = reqwest::Client::new();
        let mut tries = 0;
        while http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
        {
            tries += 1;
            assert!(tries < 500, "the gateway did not start");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Gateway {
            addr,
            _stop: trigger,
            task,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A TCP relay in front of `target` that passes what it is sent at once and
/// holds each piece of the answer back for `delay`: calls through it are
/// surely in flight for that long. Counts the bytes it passed on.
pub struct SlowRelay {
    addr: SocketAddr,
    forwarded: std::sync::Arc<(std::sync::atomic::AtomicU64, tokio::sync::Notify)>,
    _task: tokio::task::JoinHandle<()>,
}

impl SlowRelay {
    pub async fn start(target: SocketAddr, delay: std::time::Duration) -> SlowRelay {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = std::sync::Arc::new((
            std::sync::atomic::AtomicU64::new(0),
            tokio::sync::Notify::new(),
        ));
        let counts = forwarded.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from_client.read(&mut buf).await {
                        if n == 0 || to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counts.0.fetch_add(n as u64, Ordering::SeqCst);
                        counts.1.notify_waiters();
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from_server.read(&mut buf).await {
                        tokio::time::sleep(delay).await;
                        if n == 0 || to_client.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SlowRelay {
            addr,
            forwarded,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes passed on towards the target so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until more than `bytes` have been passed on towards the target.
    pub async fn wait_forwarded_beyond(&self, bytes: u64) {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let notified = self.forwarded.1.notified();
                tokio::pin!(notified);
                // Registered before the check, so a count in between wakes it.
                notified.as_mut().enable();
                if self.forwarded() > bytes {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("nothing passed through the relay within 10 s");
    }
}

pub struct System {
    pub _nats: Nats,
    pub _db: TestDb,
    pub listings: RunningService,
    pub client: ListingsServiceClient<Channel>,
}

pub async fn system() -> System {
    system_trusting(None).await
}

/// [`system`] with listings also taking the tokens of the gateway that will
/// serve at `web_url` (its keys fetched when first needed).
pub async fn system_trusting(web_url: Option<&str>) -> System {
    let nats = Nats::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = ListingsConfig {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    if let Some(web) = web_url {
        config.common.auth.jwks_url = Some(format!("{web}/.well-known/jwks.json"));
        config.common.auth.issuer = Some("selfhelp-gateway".into());
        config.common.auth.audience = Some("selfhelp".into());
    }
    let listings =
        RunningService::start(SERVICE_NAME, move |l, s| run_listings(config, l, s)).await;
    let client = ListingsServiceClient::new(listings.channel().await);
    System {
        _nats: nats,
        _db: db,
        listings,
        client,
    }
}

pub fn venue(name: &str, postcode: &str) -> pb::Venue {
    pb::Venue {
        name: name.into(),
        address: "1 Market Street".into(),
        town: "Nottingham".into(),
        postcode: postcode.into(),
        accessibility: "Step-free access, hearing loop".into(),
        travel_notes: "Buses 35 and 36 stop outside".into(),
        ..Default::default()
    }
}

pub async fn create(
    client: &mut ListingsServiceClient<Channel>,
    req: pb::CreateGroupRequest,
    publish: bool,
) -> pb::Group {
    create_as(client, req, publish, "olive-organiser").await
}

/// A group organised by `organiser` (a person id), published if asked.
pub async fn create_as(
    client: &mut ListingsServiceClient<Channel>,
    req: pb::CreateGroupRequest,
    publish: bool,
    organiser: &str,
) -> pb::Group {
    let organiser = token(organiser, REGION, &[]);
    let g = client
        .create_group(with_token(req, &organiser))
        .await
        .unwrap()
        .into_inner();
    if !publish {
        return g;
    }
    client
        .submit_group(with_token(
            pb::SubmitGroupRequest {
                group_id: g.id.clone(),
            },
            &organiser,
        ))
        .await
        .unwrap();
    let operator = token("operator-1", REGION, &["operator"]);
    client
        .review_group(with_token(
            pb::ReviewGroupRequest {
                group_id: g.id,
                decision: pb::ReviewDecision::Approve.into(),
                note: String::new(),
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner()
}

pub fn group_request(name: &str, topics: &[&str], postcode: &str) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        name: name.into(),
        summary: format!("{name}: a friendly peer-support group"),
        description: "We meet to talk and listen.\n\nEveryone is welcome.".into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        format: pb::MeetingFormat::InPerson.into(),
        join_policy: pb::JoinPolicy::Open.into(),
        venues: vec![venue("Community hall", postcode)],
        contact: Some(pb::Contact {
            name: "Group coordinator".into(),
            email: "hello@example.org".into(),
            phone: "0115 496 0000".into(),
            website: "https://example.org/group".into(),
        }),
        cost: Some(pb::Cost {
            kind: pb::CostKind::Donation.into(),
            description: "£2 towards tea".into(),
        }),
        languages: vec!["en".into(), "pl".into()],
        ..Default::default()
    }
}

pub async fn weekly(
    client: &mut ListingsServiceClient<Channel>,
    group_id: &str,
    weekday: pb::Weekday,
    start: &str,
    end: &str,
) -> pb::Group {
    let organiser = token("olive-organiser", REGION, &[]);
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    client
        .set_schedule(with_token(
            pb::SetScheduleRequest {
                group_id: group_id.into(),
                schedule: Some(pb::Schedule {
                    frequency: pb::Frequency::Weekly.into(),
                    weekday: weekday.into(),
                    valid_from: today,
                    start_time: start.into(),
                    end_time: end.into(),
                    ..Default::default()
                }),
            },
            &organiser,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The directory the tests read: three published groups and a draft.
pub struct Directory {
    /// Ages 18–25, Wednesday evenings, central Nottingham, topic bereavement.
    pub young: pb::Group,
    /// No age limits, Monday mornings, Mansfield (about 22 km away), anxiety.
    pub mansfield: pb::Group,
    /// Online only (no venue), no schedule.
    pub online: pb::Group,
    pub draft: pb::Group,
    /// A reviewed proposal: public as a group being started.
    pub proposal: pb::Group,
    /// A proposal nobody has reviewed: private.
    pub unreviewed_proposal: pb::Group,
}

pub async fn directory(client: &mut ListingsServiceClient<Channel>) -> Directory {
    let mut young = group_request("Young bereaved", &["bereavement"], "NG1 5FS");
    young.eligibility = Some(pb::Eligibility {
        description: "Young adults who lost someone close".into(),
        minimum_age: 18,
        maximum_age: 25,
        carers_welcome: true,
        family_welcome: false,
    });
    let young = create(client, young, true).await;
    let young = weekly(client, &young.id, pb::Weekday::Wednesday, "19:00", "21:00").await;
    let mansfield = create(
        client,
        group_request("Mansfield anxiety circle", &["anxiety"], "NG18 1AA"),
        true,
    )
    .await;
    let mansfield = weekly(client, &mansfield.id, pb::Weekday::Monday, "10:00", "11:30").await;
    let mut online = group_request("Carers online", &["carers"], "");
    online.venues.clear();
    online.format = pb::MeetingFormat::Online.into();
    online.joining_details = "https://video.example/secret-room".into();
    let online = create(client, online, true).await;
    let draft = create(
        client,
        group_request("Unfinished draft group", &["bereavement"], "NG1 5FS"),
        false,
    )
    .await;
    let mut proposal = group_request("Dads walking group", &["mens-groups"], "NG1 5FS");
    proposal.proposed = true;
    let proposal = create(client, proposal, true).await;
    let mut unreviewed = group_request("Hidden proposal circle", &["anxiety"], "NG1 5FS");
    unreviewed.proposed = true;
    let unreviewed_proposal = create(client, unreviewed, false).await;
    Directory {
        young,
        mansfield,
        online,
        draft,
        proposal,
        unreviewed_proposal,
    }
}

/// Everything, for real: NATS, the three services (each on its own database
/// of `backend`) trusting the gateway's keys, an SMTP server, and the
/// gateway in front of them taking part in erasure.
pub struct WholeSystem {
    pub nats: Nats,
    pub smtp: selfhelp_testkit::SmtpServer,
    pub dbs: [TestDb; 4],
    pub listings: RunningService,
    pub membership: RunningService,
    pub notifications: RunningService,
    pub gateway: Gateway,
    pub client: ListingsServiceClient<Channel>,
}

impl WholeSystem {
    pub async fn start(backend: Backend) -> WholeSystem {
        WholeSystem::start_with(backend, |_, _| {}).await
    }

    /// The same, with the gateway's settings as `tweak` changes them (given
    /// the gateway's address before it starts).
    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut GatewayConfig, &str),
    ) -> WholeSystem {
        WholeSystem::start_tweaked(backend, tweak, |_| {}).await
    }

    /// [`WholeSystem::start_with`], with listings' settings as
    /// `tweak_listings` changes them too.
    pub async fn start_tweaked(
        backend: Backend,
        tweak: impl FnOnce(&mut GatewayConfig, &str),
        tweak_listings: impl FnOnce(&mut ListingsConfig),
    ) -> WholeSystem {
        let nats = Nats::start();
        let smtp = selfhelp_testkit::SmtpServer::start();
        let dbs = [
            TestDb::new(backend).await,
            TestDb::new(backend).await,
            TestDb::new(backend).await,
            TestDb::new(backend).await,
        ];
        // Every address first: the gateway (whose clients connect lazily)
        // starts before the services, which fetch its keys as they start.
        let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let (web, l, m, n) = (bind().await, bind().await, bind().await, bind().await);
        let url = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
        let web_url = url(&web);
        let dir = tempfile::tempdir().unwrap();
        let mut config = GatewayConfig {
            listings_url: url(&l),
            membership_url: url(&m),
            notifications_url: url(&n),
            area_name: "Nottinghamshire".into(),
            region: REGION.into(),
            ..Default::default()
        };
        config.database.url = dbs[3].url.clone();
        config.http.rate_limit_per_second = 0;
        config.nats.url = nats.url();
        config.outbox.poll_interval_ms = 100;
        web::smtp_config(&smtp, &mut config);
        tweak(&mut config, &web_url);
        let gateway =
            Gateway::start_on(web, config, selfhelp_core::time::Clock::system(), dir).await;
        let common = |db: &TestDb| {
            let mut c = selfhelp_testkit::common_config(&db.url, &nats.url(), REGION);
            c.auth.jwks_url = Some(format!("{web_url}/.well-known/jwks.json"));
            c.auth.issuer = Some("selfhelp-gateway".into());
            c.auth.audience = Some("selfhelp".into());
            c
        };
        let mut listings_config = ListingsConfig {
            common: common(&dbs[0]),
            ..Default::default()
        };
        tweak_listings(&mut listings_config);
        let listings = RunningService::start_on(l, SERVICE_NAME, move |l, s| {
            run_listings(listings_config, l, s)
        })
        .await;
        let mut membership_config = selfhelp_membership::Config {
            common: common(&dbs[1]),
            ..Default::default()
        };
        membership_config.listings.url = listings.url();
        let membership =
            RunningService::start_on(m, selfhelp_membership::SERVICE_NAME, move |l, s| {
                selfhelp_membership::run(membership_config, l, s)
            })
            .await;
        let mut notifications_config = selfhelp_notifications::Config {
            common: common(&dbs[2]),
            ..Default::default()
        };
        notifications_config.email.transport = "smtp".into();
        notifications_config.email.smtp.host = "127.0.0.1".into();
        notifications_config.email.smtp.port = smtp.port();
        notifications_config.email.smtp.tls = "none".into();
        notifications_config.email.from = "Selfhelp Notts <no-reply@selfhelp.test>".into();
        notifications_config.http.listen = String::new();
        notifications_config.http.web_url = web_url.clone();
        notifications_config.delivery.interval_ms = 100;
        let notifications =
            RunningService::start_on(n, selfhelp_notifications::SERVICE_NAME, move |l, s| {
                selfhelp_notifications::run(notifications_config, l, s)
            })
            .await;
        let client = ListingsServiceClient::new(listings.channel().await);
        WholeSystem {
            nats,
            smtp,
            dbs,
            listings,
            membership,
            notifications,
            gateway,
            client,
        }
    }
}
