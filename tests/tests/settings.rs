//! A service binary given settings it cannot run with stops at once, naming
//! every bad key, before it touches a database or NATS.

use std::process::{Command, Stdio};

use selfhelp_e2e::binary;

/// A binary, the variables it is started with, and what its error must name.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn bad_settings_stop_each_service_with_every_bad_key_named() {
    let cases: [Case; 3] = [
        (
            "selfhelp-listings",
            &[
                ("SELFHELP_FRESHNESS__WARN_AFTER_DAYS", "400"),
                ("SELFHELP_CONSUMER__PULLERS", "0"),
            ],
            &["freshness.warn_after_days", "consumer.pullers"],
        ),
        (
            "selfhelp-membership",
            &[
                ("SELFHELP_ROTA__CHECK_INTERVAL_SECS", "0"),
                ("SELFHELP_TIMEZONE", "Mars/Olympus"),
            ],
            &["rota.check_interval_secs", "timezone"],
        ),
        (
            "selfhelp-notifications",
            &[
                ("SELFHELP_DELIVERY__INTERVAL_MS", "10"),
                ("SELFHELP_GRPC__MAX_CONCURRENT_STREAMS", "0"),
            ],
            &[
                "delivery.interval_ms must be at least 50",
                "grpc.max_concurrent_streams",
            ],
        ),
    ];
    for (name, env, keys) in cases {
        let work = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary(name));
        cmd.current_dir(work.path())
            // Nothing reachable: a service that got past its settings would
            // wait for these instead of exiting.
            .env(
                "SELFHELP_DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            )
            .env("SELFHELP_NATS__URL", "nats://127.0.0.1:1")
            .env("SELFHELP_GRPC__LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = selfhelp_testkit::output_within(&mut cmd, std::time::Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        for key in keys {
            assert!(stderr.contains(key), "{name}: {key} named in {stderr}");
        }
        // Nothing was created in its working folder (no SQLite file, no store).
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "{name}");
    }
}
