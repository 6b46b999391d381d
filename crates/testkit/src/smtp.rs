//! A real SMTP server for tests: Python's `aiosmtpd` on a port the system
//! picks (it prints it), storing what it receives in a Maildir. Installed with
//! pip into a folder of ours when Python cannot import it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::python::python;

/// Serves SMTP on 127.0.0.1, port 0, into the Maildir `argv[1]`; prints the
/// port it got once it listens.
const SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main(maildir):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Mailbox(maildir)), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main(sys.argv[1]))
"#;

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
        let mut cmd = Command::new(python);
        cmd.args(["-c", SERVER])
            .arg(store.path().join("maildir"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        let mut child = cmd.spawn().expect("starting aiosmtpd");
        // The first line is the port; read on a thread so a server that hangs
        // before printing fails the test instead of blocking it.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            panic!("aiosmtpd did not report its port within 20 s (printed {line:?})");
        };
        SmtpServer { child, port, store }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, raw, oldest first (a maildir lists its
    /// files in no order: they are sorted by when each was written).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.store.path().join("maildir").join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let written = entry.metadata().and_then(|m| m.modified()).ok();
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    found.push((written, entry.file_name(), bytes));
                }
            }
        }
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        found.into_iter().map(|(_, _, bytes)| bytes).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
