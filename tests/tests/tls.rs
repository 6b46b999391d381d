//! TLS wherever a connection leaves a process, proved with throw-away
//! certificate authorities made for the test: the three service binaries talk
//! to a nats-server that accepts only TLS clients with a certificate it trusts;
//! listings serves gRPC over TLS and asks every client for a certificate,
//! which membership shows when it asks listings about a group; and, with
//! `TEST_DATABASE_URL`, every service reaches PostgreSQL over TLS that checks
//! the server's certificate. Whoever lacks the right certificate gets nothing.

use std::time::Duration;

use selfhelp_e2e::{
    LISTINGS, MEMBERSHIP, NOTIFICATIONS, ServiceProcess, notified, published_group_on, service_env,
};
use selfhelp_platform::config::{ClientTlsConfig, NatsConfig};
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::notifications::v1::NotificationKind;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_testkit::tls::{Issued, TestCa};
use selfhelp_testkit::{
    Backend, Nats, TestDb, channel, join_request, postgres_available, token, wait_serving,
    wait_serving_on, with_token,
};
use tonic::Code;
use tonic::transport::Endpoint;

const REGION: &str = "notts";

fn client_tls(ca: &TestCa, shown: Option<&Issued>) -> ClientTlsConfig {
    ClientTlsConfig {
        ca_file: Some(ca.ca_file()),
        cert_file: shown.map(|i| i.cert_file.clone()),
        key_file: shown.map(|i| i.key_file.clone()),
    }
}

/// An endpoint for `https://localhost:<port>` trusting `ca`, showing `shown`.
fn tls_endpoint(port: u16, ca: &TestCa, shown: Option<&Issued>) -> Endpoint {
    selfhelp_platform::tls::endpoint(
        "test",
        &format!("https://localhost:{port}"),
        &client_tls(ca, shown),
    )
    .expect("a TLS endpoint")
    .timeout(Duration::from_secs(5))
}

/// The PostgreSQL server's own certificate when it speaks TLS and the file
/// can be read here (Debian's cluster: its self-signed "snakeoil"
/// certificate, which then serves as the CA to check it against); otherwise
/// why not. Only called with `TEST_DATABASE_URL` set.
async fn postgres_server_cert() -> Result<std::path::PathBuf, String> {
    use sea_orm::{ConnectionTrait, Statement};
    let admin = std::env::var("TEST_DATABASE_URL").map_err(|e| e.to_string())?;
    let db = selfhelp_platform::db::connect(&admin, 1)
        .await
        .map_err(|e| format!("cannot connect to TEST_DATABASE_URL: {e}"))?;
    let show = |sql: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .map_err(|e| format!("{sql}: {e}"))?
                .ok_or(format!("{sql}: no row"))?
                .try_get_by_index::<String>(0)
                .map_err(|e| format!("{sql}: {e}"))
        }
    };
    if show("SHOW ssl").await? != "on" {
        return Err("the PostgreSQL server does not speak TLS (ssl is off)".into());
    }
    let cert = std::path::PathBuf::from(show("SHOW ssl_cert_file").await?);
    if !cert.is_absolute() || std::fs::read(&cert).is_err() {
        return Err(format!(
            "the server's certificate {} cannot be read here",
            cert.display()
        ));
    }
    Ok(cert)
}

fn with_tls(url: &str, root: &std::path::Path) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=verify-ca&sslrootcert={}", root.display())
}

#[tokio::test]
async fn services_speak_tls_to_nats_to_each_other_and_to_postgres() {
    let ca = TestCa::new("selfhelp");
    let stranger = TestCa::new("stranger");
    let nats = Nats::start_tls(&ca);
    let certs = [
        ca.issue("listings"),
        ca.issue("membership"),
        ca.issue("notifications"),
    ];

    // PostgreSQL over TLS when there is one whose certificate can be checked.
    // Without one, the rest runs on SQLite and says so (fails under
    // SELFHELP_NO_SKIPS, as in CI).
    let pg_root = if postgres_available("services over TLS to PostgreSQL") {
        match postgres_server_cert().await {
            Ok(cert) => Some(cert),
            Err(why) => {
                selfhelp_testkit::not_run("services on PostgreSQL over TLS (SQLite instead)", &why);
                None
            }
        }
    } else {
        None
    };
    let backend = if pg_root.is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let dbs = [
        TestDb::new(backend).await,
        TestDb::new(backend).await,
        TestDb::new(backend).await,
    ];
    let url_of = |i: usize| match &pg_root {
        Some(root) => with_tls(&dbs[i].url, root),
        None => dbs[i].url.clone(),
    };
    let env = |i: usize, listings_url: &str| {
        let mut env = service_env(REGION, &url_of(i), &nats.url(), listings_url);
        env.extend([
            (
                "SELFHELP_NATS__TLS__CA_FILE",
                ca.ca_file().display().to_string(),
            ),
            (
                "SELFHELP_NATS__TLS__CERT_FILE",
                certs[i].cert_file.display().to_string(),
            ),
            (
                "SELFHELP_NATS__TLS__KEY_FILE",
                certs[i].key_file.display().to_string(),
            ),
        ]);
        env
    };

    // Listings serves TLS only, to clients with a certificate the CA signed.
    let mut listings_env = env(0, "");
    listings_env.extend([
        (
            "SELFHELP_GRPC__TLS__CERT_FILE",
            certs[0].cert_file.display().to_string(),
        ),
        (
            "SELFHELP_GRPC__TLS__KEY_FILE",
            certs[0].key_file.display().to_string(),
        ),
        (
            "SELFHELP_GRPC__TLS__CLIENT_CA_FILE",
            ca.ca_file().display().to_string(),
        ),
    ]);
    let listings = ServiceProcess::spawn(LISTINGS.0, &listings_env);
    let port = listings.addr.port();
    let trusted = tls_endpoint(port, &ca, Some(&certs[1]));
    wait_serving_on(trusted.clone(), LISTINGS.1, Duration::from_secs(60)).await;

    // Membership asks listings over TLS, showing its own certificate.
    let mut membership_env = env(1, &format!("https://localhost:{port}"));
    membership_env.extend([
        (
            "SELFHELP_LISTINGS__TLS__CA_FILE",
            ca.ca_file().display().to_string(),
        ),
        (
            "SELFHELP_LISTINGS__TLS__CERT_FILE",
            certs[1].cert_file.display().to_string(),
        ),
        (
            "SELFHELP_LISTINGS__TLS__KEY_FILE",
            certs[1].key_file.display().to_string(),
        ),
    ]);
    let membership = ServiceProcess::spawn(MEMBERSHIP.0, &membership_env);
    let notifications = ServiceProcess::spawn(NOTIFICATIONS.0, &env(2, ""));
    // Ready means connected to NATS (over TLS) with their streams in place.
    wait_serving(membership.addr, MEMBERSHIP.1).await;
    wait_serving(notifications.addr, NOTIFICATIONS.1).await;

    // Without a certificate, with one from another CA, or trusting another
    // CA, or in plain text: no call gets through.
    let health = |endpoint: Endpoint| async move {
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        tonic_health_check(channel).await
    };
    for (what, endpoint) in [
        ("no client certificate", tls_endpoint(port, &ca, None)),
        (
            "a certificate another CA signed",
            tls_endpoint(port, &ca, Some(&stranger.issue("intruder"))),
        ),
        (
            "trusting another CA",
            tls_endpoint(port, &stranger, Some(&certs[1])),
        ),
        (
            "plain text",
            Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .timeout(Duration::from_secs(5)),
        ),
    ] {
        assert!(health(endpoint).await.is_err(), "{what} was let in");
    }
    health(trusted.clone()).await.expect("the trusted client");

    // NATS lets in only TLS clients showing a certificate the CA signed.
    let nats_with = |url: String, tls: ClientTlsConfig| NatsConfig {
        url,
        tls,
        ..Default::default()
    };
    let plain = nats.url().replace("tls://", "nats://");
    for (what, cfg) in [
        (
            "no certificate",
            nats_with(nats.url(), client_tls(&ca, None)),
        ),
        (
            "another CA's certificate",
            nats_with(
                nats.url(),
                client_tls(&ca, Some(&stranger.issue("intruder"))),
            ),
        ),
        ("plain text", nats_with(plain, ClientTlsConfig::default())),
    ] {
        let client = selfhelp_platform::bus::connect(&cfg, "intruder").await.ok();
        let refused = match client {
            None => true,
            Some(c) => tokio::time::timeout(Duration::from_secs(3), c.flush())
                .await
                .map_or(true, |r| r.is_err()),
        };
        assert!(refused, "NATS let in a client with {what}");
    }

    // End to end: a group listed over TLS, a join, and the welcome that the
    // events (over TLS) bring to the inbox.
    let group = published_group_on(trusted.connect().await.unwrap(), REGION, "olive").await;
    let mut members = MembershipServiceClient::new(channel(membership.addr).await);
    members
        .join_group(with_token(join_request(&group), &token("sam", REGION, &[])))
        .await
        .expect("joining");
    let inbox = NotificationsServiceClient::new(channel(notifications.addr).await);
    notified(&inbox, REGION, "sam", NotificationKind::Welcome).await;
    // A group membership's read model has never seen is asked of listings
    // directly: NOT_FOUND is listings' answer over TLS (were listings out of
    // reach it would be UNAVAILABLE).
    let unknown = uuid::Uuid::now_v7().to_string();
    let refused = members
        .join_group(with_token(
            join_request(&unknown),
            &token("sam", REGION, &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
}

async fn tonic_health_check(channel: tonic::transport::Channel) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|s| s.to_string())
}

#[tokio::test]
async fn postgres_connections_check_the_server_certificate() {
    if !postgres_available("PostgreSQL over TLS") {
        return;
    }
    let root = match postgres_server_cert().await {
        Ok(root) => root,
        Err(why) => {
            selfhelp_testkit::not_run("PostgreSQL connections over TLS", &why);
            return;
        }
    };
    use sea_orm::{ConnectionTrait, Statement};
    let db = TestDb::new(Backend::Postgres).await;
    let conn = selfhelp_platform::db::connect(&with_tls(&db.url, &root), 1)
        .await
        .expect("TLS to the server whose certificate we trust");
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .expect("our connection is listed");
    assert!(row.try_get_by_index::<bool>(0).unwrap(), "not encrypted");
    conn.close().await.ok();
    // A server whose certificate the given CA did not sign is refused.
    let stranger = TestCa::new("stranger");
    let refused = selfhelp_platform::db::connect(&with_tls(&db.url, &stranger.ca_file()), 1).await;
    assert!(
        refused.is_err(),
        "connected to a server the CA did not vouch for"
    );
}
