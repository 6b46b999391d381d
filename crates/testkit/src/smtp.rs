//! A real SMTP server for tests: Python's `aiosmtpd` on a free port, storing
//! what it receives in a Maildir. Installed with pip into a folder of ours when
//! Python cannot import it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats_server::free_port;
use crate::python::python;

/// Where the kit installs `aiosmtpd` when Python lacks it (shared by tests).
fn install_dir() -> PathBuf {
    std::env::temp_dir().join("selfhelp-testkit-aiosmtpd")
}

fn importable(python: &str, pythonpath: Option<&Path>) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// The PYTHONPATH that makes `aiosmtpd` importable (`None`: it already is).
fn ensure_aiosmtpd(python: &str) -> Option<PathBuf> {
    if importable(python, None) {
        return None;
    }
    let dir = install_dir();
    if importable(python, Some(&dir)) {
        return Some(dir);
    }
    crate::python::pip_install_into(&dir, &[&["aiosmtpd"]]);
    assert!(
        importable(python, Some(&dir)),
        "aiosmtpd installed but not importable"
    );
    Some(dir)
}

/// An SMTP server on 127.0.0.1, stopped when dropped.
pub struct SmtpServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let python = python();
        let pythonpath = ensure_aiosmtpd(python);
        let store = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("free port");
        let mut cmd = Command::new(python);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(store.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        let child = cmd.spawn().expect("starting aiosmtpd");
        let server = SmtpServer { child, port, store };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, raw, in no particular order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.store.path().join("maildir").join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    out.push(bytes);
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
