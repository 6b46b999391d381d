//! Runs the real service binaries as separate processes for end-to-end tests.
//!
//! `cargo test --workspace` builds the binaries (each service package has
//! integration tests, so cargo builds its binary before any test runs); this
//! crate finds them next to the test executable.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The folder holding this build's binaries (`target/<profile>`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary, with a clear message when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds the service binaries",
        path.display()
    );
    path
}

/// Runs binary `name` with `args` and `env` to completion (e.g. `--migrate`).
pub fn run_to_end(name: &str, args: &[&str], env: &[(&str, String)]) -> std::process::ExitStatus {
    let work = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(binary(name));
    cmd.current_dir(work.path())
        .args(args)
        .env("SELFHELP_LOG__LEVEL", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status()
        .unwrap_or_else(|e| panic!("running {name}: {e}"))
}

/// A service process, killed when dropped.
pub struct ServiceProcess {
    pub name: &'static str,
    pub addr: std::net::SocketAddr,
    child: Option<Child>,
    /// The process's working folder: whatever it writes relative to it (e.g.
    /// emails as .eml files) goes with the test.
    _work: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts binary `name` listening on a free port with `env` (SELFHELP_* settings).
    pub fn spawn(name: &'static str, env: &[(&str, String)]) -> ServiceProcess {
        let port = selfhelp_platform::nats_server::free_port().expect("free port");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let work = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(binary(name));
        cmd.current_dir(work.path())
            .env("SELFHELP_GRPC__LISTEN", addr.to_string())
            // Notifications' unsubscribe page: any free port, so tests can run side by side.
            .env("SELFHELP_HTTP__LISTEN", "127.0.0.1:0")
            .env("SELFHELP_LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        ServiceProcess {
            name,
            addr,
            child: Some(child),
            _work: work,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash or an OOM kill would: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the process has ended (it should not have).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and returns whether the process exited successfully in time.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
