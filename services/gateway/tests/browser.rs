//! The web directory in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) runs `browser/check_pages.py` against the gateway in
//! front of a real listings — axe-core's WCAG 2.2 AA rules on every page type at
//! desktop width, 360 px and 200 % zoom, no sideways scrolling, search with the
//! keyboard alone, and a screenshot of each view to look at.
//!
//! Without Chromium this test says loudly that it did not run; with
//! `SELFHELP_NO_SKIPS=1` (CI sets it) a missing browser is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Gateway, directory, system};
use selfhelp_testkit::eventually;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Pinned: the checker uses only its bundled axe-core (4.12).
const PYTHON_PACKAGES: &[&str] = &["selenium==4.27.1"];
const AXE_PACKAGE: &str = "axe-playwright-python==0.1.8";

/// Selenium and the axe-core bundle, installed with pip into the target folder once.
fn python_packages() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-python-selenium-4.27.1-axe-0.1.8");
    // Only axe-playwright-python's axe.min.js is used: not Playwright, which it
    // would pull in.
    selfhelp_testkit::python::pip_install_into(
        &dir,
        &[PYTHON_PACKAGES, &["--no-deps", AXE_PACKAGE]],
    );
    dir
}

#[tokio::test]
async fn every_page_type_passes_axe_at_every_width_and_works_by_keyboard() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        selfhelp_testkit::not_run(
            "the browser checks of the web directory",
            &format!("{missing:?} not installed (apt-get install chromium chromium-driver)"),
        );
        return;
    }
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();

    let mut sys = system().await;
    let dir = directory(&mut sys.client).await;
    let gateway = Gateway::start(&sys.listings.url(), |_| {}).await;
    let http = reqwest::Client::new();
    eventually("groups searchable", Duration::from_secs(20), || {
        let (http, url) = (http.clone(), gateway.url("/?q=support"));
        async move {
            let body = http.get(url).send().await.ok()?.text().await.ok()?;
            body.contains("Young bereaved").then_some(())
        }
    })
    .await;

    // Each page with the status and heading it must have, and text only its
    // real content shows: an error page, which axe would pass as readily,
    // fails here.
    let home = "Find a self-help or peer-support group";
    let pages = serde_json::json!([
        {"name": "home", "path": "/", "status": 200, "h1": home, "shows": "Search"},
        {"name": "results", "path": "/?q=support&postcode=NG1+5FS&distance=50",
         "status": 200, "h1": home, "shows": "found"},
        {"name": "search-error", "path": "/?postcode=ZZ99+9ZZ&age=200",
         "status": 400, "h1": home, "shows": "There is a problem"},
        {"name": "group", "path": format!("/groups/{}", dir.young.id),
         "status": 200, "h1": "Young bereaved", "shows": "Young adults who lost someone close"},
        {"name": "group-online", "path": format!("/groups/{}", dir.online.id),
         "status": 200, "h1": "Carers online", "shows": "Online"},
        {"name": "topics", "path": "/topics", "status": 200, "h1": "Browse groups by topic",
         "shows": "Bereavement"},
        {"name": "proposed", "path": "/proposed", "status": 200, "h1": "Groups being started",
         "shows": "Dads walking group"},
        {"name": "proposal", "path": format!("/groups/{}", dir.proposal.id),
         "status": 200, "h1": "Dads walking group", "shows": "being started"},
        {"name": "topic", "path": "/topics/mental-health", "status": 200,
         "h1": "Mental health groups", "shows": "found"},
        {"name": "not-found", "path": "/no/such/page", "status": 404, "h1": "Page not found",
         "shows": "Page not found"},
    ]);
    // The status, which the browser does not tell the script, read first.
    for page in pages.as_array().unwrap() {
        let answer = http
            .get(gateway.url(page["path"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            u64::from(answer.status().as_u16()),
            page["status"].as_u64().unwrap(),
            "{}",
            page["name"]
        );
    }
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_pages.py");
    let base = gateway.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(selfhelp_testkit::python::python())
            .arg(script)
            .args(["--base", &base])
            .args(["--pages", &pages.to_string()])
            .arg("--screenshots")
            .arg(&screenshots)
            .args(["--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER])
            .env("PYTHONPATH", packages)
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser checks failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&report).expect("the JSON report");
    // 10 pages × 3 views: every one loaded and checked.
    assert_eq!(
        report["checked"].as_array().unwrap().len(),
        30,
        "{report:#}"
    );
    println!(
        "browser checks passed; screenshots in {}",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("browser-screenshots")
            .display()
    );
    drop(gateway.task);
}
