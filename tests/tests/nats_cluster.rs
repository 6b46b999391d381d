//! NATS that survives a node: three `nats-server` processes as one JetStream
//! cluster (the settings of deploy/nats/cluster.conf), streams kept at three
//! replicas, the three services connected to all three nodes. In the middle of
//! a burst of joins the node leading the MEMBERSHIP stream is killed and stays
//! dead; the services carry on through the other two without a restart, and
//! every join is counted exactly once.

use std::time::Duration;

use sea_orm::Database;
use selfhelp_e2e::{
    JoinBurst, Trio, assert_every_join_counted_once, count, lazy_channel, published_group,
    service_env, urls,
};
use selfhelp_testkit::{Backend, NatsCluster, TestDb, eventually};

const REGION: &str = "notts";
const JOINS: usize = 600;

#[test]
fn the_deployment_nats_configurations_load() {
    let binary = selfhelp_testkit::nats_binary();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
    for (file, node) in [("nats.conf", None), ("cluster.conf", Some("nats-2"))] {
        let mut check = std::process::Command::new(&binary);
        check
            .arg("-t")
            .arg("-c")
            .arg(deploy.join(file))
            .env("LISTINGS_NATS_PASSWORD", "a-password")
            .env("MEMBERSHIP_NATS_PASSWORD", "b-password")
            .env("NOTIFICATIONS_NATS_PASSWORD", "c-password")
            .env("GATEWAY_NATS_PASSWORD", "d-password")
            .env("OUTSIDE_NATS_PASSWORD", "another-password")
            .env("OPERATOR_NATS_PASSWORD", "a-fifth-password");
        if let Some(node) = node {
            check.env("NATS_SERVER_NAME", node);
        }
        let out = selfhelp_testkit::output_within(&mut check, std::time::Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn the_services_carry_on_when_the_stream_leader_node_dies() {
    let mut cluster = NatsCluster::start(3);
    let dbs = [
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    ];
    let env = |db: &TestDb, listings_url: &str| {
        let mut env = service_env(REGION, &db.url, &cluster.url(), listings_url);
        env.extend([
            ("SELFHELP_NATS__STREAM_REPLICAS", "3".to_string()),
            ("SELFHELP_CONSUMER__RETRY_MAX_MS", "2000".to_string()),
            ("SELFHELP_CONSUMER__ACK_WAIT_MS", "3000".to_string()),
        ]);
        env
    };
    // Readiness waits for the streams, which wait for the cluster's leaders.
    let mut trio = Trio::start(&dbs, |_, db, listings_url| env(db, listings_url)).await;
    let group_id = published_group(trio.listings.addr, REGION, "alice").await;
    let notifications_db = Database::connect(&dbs[2].url).await.unwrap();
    let known = format!("SELECT COUNT(*) FROM group_view WHERE group_id = '{group_id}'");
    eventually(
        "notifications to know the group",
        Duration::from_secs(30),
        || async { (count(&notifications_db, &known).await == 1).then_some(()) },
    )
    .await;

    // Three copies of each stream, one leader among the nodes.
    let js = async_nats::jetstream::new(
        async_nats::connect(cluster.url().split(',').collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    let mut led = Vec::new();
    let mut leader_of_membership = String::new();
    for name in ["LISTINGS", "MEMBERSHIP", "PRIVACY"] {
        let info = js
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.config.num_replicas, 3, "{name}");
        // Streams that name people keep them 72 hours, the directory 30 days.
        let days = if name == "LISTINGS" { 30 * 24 } else { 72 };
        assert_eq!(
            info.config.max_age,
            Duration::from_secs(days * 3_600),
            "{name}"
        );
        let leader = info.cluster.and_then(|c| c.leader).expect("a leader");
        if name == "MEMBERSHIP" {
            leader_of_membership = leader.clone();
        }
        led.push(format!("{name} by {leader}"));
    }
    drop(js);

    let burst = JoinBurst::start(
        vec![lazy_channel(trio.membership.addr)],
        REGION,
        &group_id,
        JOINS,
        16,
    );
    burst.reached(JOINS / 3).await;
    eprintln!(
        "cluster: streams led {}; SIGKILL {leader_of_membership}",
        led.join(", ")
    );
    cluster.kill(&leader_of_membership);
    let retried = burst.finish().await;
    eprintln!("cluster: {JOINS} joins answered ({retried} calls retried)");

    assert_every_join_counted_once(
        urls(&dbs),
        &async_nats::jetstream::new(
            async_nats::connect(cluster.url().split(',').collect::<Vec<_>>())
                .await
                .unwrap(),
        ),
        REGION,
        &group_id,
        "alice",
        JOINS,
        "cluster",
    )
    .await;
    // Carried on without a restart.
    trio.assert_all_running();
}

/// The NATS container's entrypoint hands each password over quoted: NATS
/// reads a variable's value as configuration, and unquoted a generated
/// password such as `6e12ab…` reads as a number (nats-server 2.10 then refuses
/// to start: about one deployment in four). A password holding a quote is
/// refused by name.
#[test]
fn the_nats_entrypoint_hands_passwords_over_as_strings() {
    use std::os::unix::fs::PermissionsExt;
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
    let work = tempfile::tempdir().unwrap();
    let (secrets, bin) = (work.path().join("secrets"), work.path().join("bin"));
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let seen = work.path().join("env");
    // Stands in for nats-server: notes its environment, then has the real one
    // check the deployment's configuration with it.
    let fake = bin.join("nats-server");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nenv > '{}'\nexec '{}' -t -c '{}'\n",
            seen.display(),
            selfhelp_testkit::nats_binary().display(),
            deploy.join("nats.conf").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let users = [
        "listings",
        "membership",
        "notifications",
        "gateway",
        "outside",
        "operator",
    ];
    let run = |listings_password: &str| {
        for user in users {
            let password = if user == "listings" {
                listings_password.to_string()
            } else {
                format!("{user}0123456789abcdef")
            };
            std::fs::write(secrets.join(format!("{user}-nats-password")), password).unwrap();
        }
        std::process::Command::new("sh")
            .arg(deploy.join("with-generated-passwords.sh"))
            .env("SELFHELP_SECRETS_DIR", &secrets)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap()
    };
    let out = run("6e12abcdef0123456789");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(
        env.lines()
            .any(|l| l == "LISTINGS_NATS_PASSWORD=\"6e12abcdef0123456789\""),
        "{env}"
    );
    assert!(env.contains("OPERATOR_NATS_PASSWORD=\"operator0123456789abcdef\""));
    let out = run("with\"quote");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listings-nats-password may not hold"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
