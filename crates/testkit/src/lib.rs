//! Test kit: real infrastructure for integration tests.
//!
//! - [`Nats`]: a `nats-server -js` on a free port with its own store, which a test
//!   may stop and restart; killed when dropped, even when the test fails.
//! - [`TestDb`]: a fresh database per test: a SQLite file always, and a fresh
//!   PostgreSQL database when `TEST_DATABASE_URL` is set (dropped afterwards).
//! - [`token`]: development bearer tokens signed with [`SECRET`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use selfhelp_platform::nats_server::{self, NatsProcess};

/// The HS256 secret test services are configured with.
pub const SECRET: &str = "selfhelp-test-secret";

/// A bearer token for `sub` in `region` with `roles`.
pub fn token(sub: &str, region: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    selfhelp_platform::auth::mint_hs256(SECRET, sub, region, &roles, Duration::from_secs(3600))
        .expect("minting a test token")
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

/// Where the kit installs `nats-server` when it is not on PATH (shared by tests).
fn install_dir() -> PathBuf {
    std::env::temp_dir().join("selfhelp-testkit-nats")
}

/// A private `nats-server` with JetStream.
pub struct Nats {
    process: NatsProcess,
    _store: tempfile::TempDir,
}

impl Nats {
    pub fn start() -> Nats {
        let binary =
            nats_server::find_or_install(&install_dir(), |msg| eprintln!("testkit: {msg}"))
                .expect("nats-server is needed for integration tests");
        let store = tempfile::tempdir().expect("temp dir");
        // A port can be taken between choosing and binding it; try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = nats_server::free_port().expect("free port");
            match NatsProcess::start(&binary, port, &store.path().join("js"), None) {
                Ok(process) => {
                    return Nats {
                        process,
                        _store: store,
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("cannot start nats-server: {last:?}");
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn restart(&mut self) {
        self.process.restart().expect("restarting nats-server");
    }
}

/// The database backends a storage test must run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set. Says so when not,
/// so a green run never hides an untested backend.
pub fn backends() -> Vec<Backend> {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!("testkit: TEST_DATABASE_URL not set: PostgreSQL variant NOT run (SQLite only)");
        vec![Backend::Sqlite]
    }
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = sqlite_url(&dir.path().join("test.db"));
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_admin: None,
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let name = format!("selfhelp_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(&admin)
                    .await
                    .expect("connecting to TEST_DATABASE_URL");
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating a test database");
                conn.close().await.ok();
                let url = replace_db_name(&admin, &name);
                TestDb {
                    url,
                    backend,
                    _dir: None,
                    pg_admin: Some((admin, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside async context; use a short-lived runtime on a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(conn) = Database::connect(&admin).await {
                            let _ = conn
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Swaps the database name in a PostgreSQL URL, keeping any query string.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_names() {
        assert_eq!(
            replace_db_name("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_db_name("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_db_name("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
