//! The `selfhelp` binary as a person runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use selfhelp_platform::auth::Authenticator;
use selfhelp_platform::config::AuthConfig;

fn selfhelp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_selfhelp"))
}

#[tokio::test]
async fn token_is_signed_with_the_data_folder_secret() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let out = selfhelp()
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "operator",
            "--region",
            "notts",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data folder is its owner's alone");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the token alone on stdout");
    let auth = Authenticator::from_config(&AuthConfig {
        hs256_secret_file: Some(dir.join("dev-secret")),
        ..Default::default()
    })
    .await
    .unwrap();
    let caller = auth.authenticate(token).await.unwrap();
    assert_eq!(caller.person_id, "alice");
    assert!(caller.is_operator_of("notts"));

    let bad = selfhelp()
        .args(["token", "--sub", " ", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sub"));
}

#[tokio::test]
async fn token_can_be_signed_with_the_secret_file_the_services_were_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hs256-secret");
    std::fs::write(&file, "a-secret-the-compose-services-share\n").unwrap();
    let out = selfhelp()
        .args(["token", "--sub", "alice", "--region", "notts"])
        .env("SELFHELP_AUTH__HS256_SECRET_FILE", &file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let auth = Authenticator::from_config(&AuthConfig {
        hs256_secret_file: Some(file.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        auth.authenticate(token.trim()).await.unwrap().person_id,
        "alice"
    );
    assert!(
        !dir.path().join("selfhelp-data").exists(),
        "no data folder secret made when a secret file is given"
    );

    let missing = selfhelp()
        .args(["token", "--sub", "alice", "--secret-file"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nowhere"));
}

/// What a NATS server at `port` answers a client that logs in with the
/// `CONNECT` options `options` (JSON) and then pings: `PONG`, or an error.
fn nats_says(port: u16, options: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    // The server speaks first (INFO); then our login and a ping.
    let n = conn.read(&mut buf).unwrap();
    answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    write!(conn, "CONNECT {options}\r\nPING\r\n").unwrap();
    while !(answer.contains("PONG") || answer.contains("-ERR")) {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    answer
}

/// One HTTP/1.0 GET over a plain socket: the answer's head and body as text.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A running `selfhelp up`, stopped like Ctrl-C (then killed) if the test
/// fails first: a failed run leaves nothing behind, not even its nats-server.
struct Up(std::process::Child);

impl Up {
    fn interrupt(&self) {
        Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
    }

    /// Its exit status, once it has stopped within `limit`.
    fn wait_stopped(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.interrupt();
            if self.wait_stopped(Duration::from_secs(15)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

/// The port of the address printed after `label` (e.g. `grpc://127.0.0.1:`).
fn printed_port(output: &str, label: &str) -> u16 {
    let at = output
        .find(label)
        .unwrap_or_else(|| panic!("{label} printed: {output}"));
    output[at + label.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn up_starts_everything_reports_ready_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // Every port is picked by the system (0) and read back from what `up` prints.
    let child = selfhelp()
        .arg("up")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listings-port", "0"])
        .args(["--membership-port", "0"])
        .args(["--notifications-port", "0"])
        .args(["--web-port", "0"])
        .args(["--unsubscribe-port", "0"])
        .args(["--demo", "--demo-groups", "3"])
        .env_remove("SELFHELP_NATS__URL")
        .env("SELFHELP_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut up = Up(child);
    let stdout = up.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen.iter().any(|l: &String| l.starts_with("ready:")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no ready line; output so far: {seen:#?}"),
        }
    }
    let all = seen.join("\n");
    let endpoint = |name: &str, scheme: &str| {
        let line = seen
            .iter()
            .find(|l| l.trim_start().starts_with(name) && l.contains(scheme))
            .unwrap_or_else(|| panic!("{name}'s endpoint printed: {all}"));
        printed_port(line, &format!("{scheme}127.0.0.1:"))
    };
    let ports: Vec<u16> = ["listings", "membership", "notifications"]
        .iter()
        .map(|name| endpoint(name, "grpc://"))
        .collect();
    let web_port = endpoint("web", "http://");
    let unsubscribe_port = endpoint("email", "http://");
    assert!(
        ports
            .iter()
            .chain([&web_port, &unsubscribe_port])
            .all(|p| *p != 0),
        "{ports:?}"
    );
    // The unsubscribe page answers where it was said to be (a bad token: 400).
    assert!(
        http_get(unsubscribe_port, "/unsubscribe?token=x.y")
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 400 ")),
        "the unsubscribe page at the printed port"
    );
    assert!(all.contains("demo data: 3 of 3 groups listed"), "{all}");
    // The web directory and the ORUK API answer at the printed address.
    let web = format!("http://127.0.0.1:{web_port}/");
    assert!(all.contains(&web), "the web address is printed: {all}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let feed = http_get(web_port, "/oruk/services");
        if feed.contains("\"total_items\":3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo groups in /oruk/services: {feed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(http_get(web_port, "/").contains("<form"));
    assert!(dir.path().join("listings.db").is_file());
    assert!(dir.path().join("dev-secret").is_file());

    // Its NATS lets in only the user `up` made, with the password kept in the
    // data folder (its owner's alone).
    let nats_line = seen
        .iter()
        .find(|l| l.trim_start().starts_with("nats") && l.contains("nats://"))
        .unwrap_or_else(|| panic!("NATS printed: {all}"));
    assert!(
        nats_line.contains("nats://selfhelp@127.0.0.1:"),
        "{nats_line}"
    );
    let nats_port = printed_port(nats_line, "@127.0.0.1:");
    let password_file = dir.path().join("nats-password");
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert_eq!(password.trim().len(), 64);
    assert!(
        !all.contains(password.trim()),
        "the password is never printed"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "nats-password is its owner's alone: {mode:o}"
        );
    }
    assert!(
        nats_says(nats_port, "{}").contains("Authorization Violation"),
        "a client without the login is refused"
    );
    let wrong = r#"{"user":"selfhelp","pass":"guess"}"#;
    assert!(nats_says(nats_port, wrong).contains("Authorization Violation"));
    let login = format!(r#"{{"user":"selfhelp","pass":"{}"}}"#, password.trim());
    assert!(nats_says(nats_port, &login).contains("PONG"));

    // `selfhelp call` talks to it with JSON, minting a token from the same secret.
    let call = |args: &[&str]| {
        selfhelp()
            .arg("call")
            .args(args)
            .args(["--addr", &format!("http://127.0.0.1:{}", ports[0])])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let created = call(&[
        "listings",
        "CreateGroup",
        r#"{"name":"Carers' coffee","format":"MEETING_FORMAT_ONLINE","join_policy":"JOIN_POLICY_OPEN"}"#,
        "--as",
        "alice",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(json["status"], "GROUP_STATUS_DRAFT");
    assert_eq!(json["organiserIds"][0], "alice");
    let invalid = call(&["listings", "CreateGroup", r#"{"name":""}"#, "--as", "alice"]);
    assert!(!invalid.status.success());
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        stderr.contains("InvalidArgument")
            && stderr.contains("name:")
            && stderr.contains("format:"),
        "{stderr}"
    );
    let anonymous = call(&["listings", "CreateGroup", "{}"]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("Unauthenticated"));
    let unknown = call(&["listings", "Nope", "{}"]);
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("CreateGroup"),
        "lists the methods there are"
    );

    // Ctrl-C.
    up.interrupt();
    let status = up
        .wait_stopped(Duration::from_secs(30))
        .expect("selfhelp up stops within 30 s of Ctrl-C");
    assert!(status.success(), "exit status {status}");
    // The rest of its output, up to the end of the stream.
    let rest: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok()).collect();
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
}
