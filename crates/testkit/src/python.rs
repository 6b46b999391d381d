//! Python packages the tests use (aiosmtpd, Selenium…), installed with pip into
//! folders of ours when they are missing.

use std::path::Path;
use std::process::{Command, Stdio};

/// `python3`, or `python` where only that exists.
pub fn python() -> &'static str {
    let works = |p: &str| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works("python3") {
        "python3"
    } else {
        "python"
    }
}

/// Runs `pip install --target` once per entry of `installs` (each a list of pip
/// arguments: requirements and options such as `--no-deps`) into a staging
/// folder beside `dir`, then moves it to `dir`: tests running at the same time
/// never see half an installation. Nothing happens when `dir` already exists.
pub fn pip_install_into(dir: &Path, installs: &[&[&str]]) {
    if dir.exists() {
        return;
    }
    let parent = dir.parent().expect("an install folder has a parent");
    std::fs::create_dir_all(parent).expect("creating the install folder's parent");
    let staging = parent.join(format!(
        ".{}-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("pip"),
        uuid::Uuid::new_v4()
    ));
    for args in installs {
        eprintln!(
            "testkit: pip install {} into {}",
            args.join(" "),
            dir.display()
        );
        let status = Command::new(python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&staging)
            .args(*args)
            .stdout(Stdio::null())
            .status()
            .expect("running pip");
        assert!(status.success(), "pip install {args:?} failed: {status}");
    }
    if std::fs::rename(&staging, dir).is_err() {
        // Another test installed it first.
        let _ = std::fs::remove_dir_all(&staging);
    }
}
