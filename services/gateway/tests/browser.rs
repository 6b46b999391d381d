//! The web directory in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) runs `browser/check_pages.py` against the gateway in
//! front of a real listings — axe-core's WCAG 2.2 AA rules on every page type at
//! desktop width, 360 px and 200 % zoom, no sideways scrolling, search with the
//! keyboard alone, and a screenshot of each view to look at.
//!
//! `browser/walk.py` walks a person through taking part (issue 32) against
//! the whole system, on SQLite and on PostgreSQL: search, sign in by the
//! link read from a real SMTP server, join with consent, their groups, the
//! welcome, settings, an alert by postcode, their calendar, the download of
//! everything and erasure, each page checked the same way, and the same
//! pages as someone else sees theirs.
//!
//! Without Chromium these tests say loudly that they did not run; with
//! `SELFHELP_NO_SKIPS=1` (CI sets it) a missing browser is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::web::mails_to;
use common::{Gateway, WholeSystem, create, directory, group_request, system, weekly};
use selfhelp_testkit::{Backend, eventually, per_backend};

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

/// Whether Chromium and its driver are here; says loudly when not.
fn browser_installed(what: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        selfhelp_testkit::not_run(
            what,
            &format!("{missing:?} not installed (apt-get install chromium chromium-driver)"),
        );
    }
    missing.is_empty()
}

#[tokio::test]
async fn every_page_type_passes_axe_at_every_width_and_works_by_keyboard() {
    if !browser_installed("the browser checks of the web directory") {
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
        {"name": "contact", "path": format!("/groups/{}/contact", dir.young.id),
         "status": 200, "h1": "Contact the organisers", "shows": "You may reply to me"},
        {"name": "report", "path": format!("/groups/{}/report", dir.young.id),
         "status": 200, "h1": "Report a problem with this listing", "shows": "What is wrong"},
        {"name": "still-right", "path": format!("/groups/{}/still-right?token=t", dir.young.id),
         "status": 200, "h1": "Are these details still right?", "shows": "Edit the details"},
        {"name": "tell-us", "path": "/tell-us", "status": 200, "h1": "Tell us about a group",
         "shows": "The group's name"},
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
    // 14 pages × 3 views: every one loaded and checked.
    assert_eq!(
        report["checked"].as_array().unwrap().len(),
        42,
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

/// The sign-in link of the next sign-in email to `email`: the first after the
/// `seen` such emails it had.
async fn next_sign_in_link(sys: &WholeSystem, email: &str, seen: usize) -> String {
    let mail = eventually("a sign-in email", Duration::from_secs(30), || {
        let found = mails_to(&sys.smtp, email)
            .into_iter()
            .filter(|m| m.contains("/sign-in/link/"))
            .nth(seen);
        async move { found }
    })
    .await;
    mail.split_whitespace()
        .find(|w| w.contains("/sign-in/link/"))
        .expect("a link")
        .to_string()
}

/// Runs the walk `script` (in tests/browser) in headless Chromium against
/// `sys` with `args`, feeding it the sign-in links it asks for from the SMTP
/// server; its report, once it has passed.
async fn run_walk(
    sys: &WholeSystem,
    script: &str,
    screenshots: &Path,
    args: &[(&str, &str)],
    python_path: &std::ffi::OsStr,
) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let mut command = tokio::process::Command::new(selfhelp_testkit::python::python());
    command
        .arg(script_path)
        .args(["--base", &sys.gateway.url("")])
        .arg("--screenshots")
        .arg(screenshots);
    for (name, value) in args {
        command.args([name, value]);
    }
    let mut walk = command
        .args(["--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER])
        .env("PYTHONPATH", python_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut to_walk = walk.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(walk.stdout.take().unwrap()).lines();
    let mut links_sent: std::collections::HashMap<String, usize> = Default::default();
    let mut report = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await
        .expect("the walk said nothing for 5 minutes")
        .unwrap()
    {
        let said: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if said["need"] == "link" {
            let email = said["email"].as_str().unwrap().to_string();
            let seen = links_sent.entry(email.clone()).or_default();
            let link = next_sign_in_link(sys, &email, *seen).await;
            *seen += 1;
            to_walk
                .write_all(format!("{link}\n").as_bytes())
                .await
                .unwrap();
            to_walk.flush().await.unwrap();
        } else {
            report = line;
        }
    }
    let status = walk.wait().await.unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).expect("the walk's report");
    assert!(
        status.success(),
        "{script}: the walk failed: {:#}",
        report["failures"]
    );
    report
}

async fn a_person_walks_the_web_in_a_browser(backend: Backend) {
    if !browser_installed("the browser walk of a person taking part") {
        return;
    }
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();
    let sys = WholeSystem::start(backend).await;
    let mut client = sys.client.clone();
    let details = "Room 4 at the back; ring the bell";
    let mut req = group_request("Riverside bereavement circle", &["bereavement"], "NG1 5FS");
    req.joining_details = details.into();
    let group = create(&mut client, req, true).await;
    weekly(
        &mut client,
        &group.id,
        selfhelp_proto::listings::v1::Weekday::Wednesday,
        "19:00",
        "20:30",
    )
    .await;
    let http = reqwest::Client::new();
    eventually("the group searchable", Duration::from_secs(20), || {
        let (http, url) = (http.clone(), sys.gateway.url("/?q=bereavement"));
        async move {
            let body = http.get(url).send().await.ok()?.text().await.ok()?;
            body.contains("Riverside bereavement circle").then_some(())
        }
    })
    .await;

    let screenshots =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-walk-{backend:?}"));
    let report = run_walk(
        &sys,
        "walk.py",
        &screenshots,
        &[
            ("--group-name", "Riverside bereavement circle"),
            ("--details", details),
            ("--email", "ann@example.org"),
            ("--search-words", "bereavement"),
        ],
        packages.as_os_str(),
    )
    .await;
    let pages: std::collections::BTreeSet<&str> = report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["page"].as_str())
        .collect();
    for page in [
        "sign-in",
        "sign-in-link",
        "group-signed-in",
        "my-groups",
        "notifications",
        "settings",
        "alerts",
        "calendar",
        "my-data",
        "erased",
    ] {
        assert!(pages.contains(page), "{page} not checked: {pages:?}");
    }
    // Nothing of her is left on the web's side.
    let web = sea_orm::Database::connect(&sys.dbs[3].url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let left = web
        .query_one_raw(Statement::from_string(
            web.get_database_backend(),
            "SELECT COUNT(*) FROM account WHERE email = 'ann@example.org'".to_string(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(left, 0, "{backend:?}: her account is gone");
    println!(
        "browser walk passed on {backend:?}; screenshots in {}",
        screenshots.display()
    );
}

per_backend!(a_person_walks_the_web_in_a_browser);

/// Organisers and staff in a browser (issue 33): `browser/organise.py`.
async fn organisers_and_staff_walk_the_web_in_a_browser(backend: Backend) {
    if !browser_installed("the browser walk of organisers and staff") {
        return;
    }
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();
    let oidc = tokio::task::spawn_blocking(common::oidc::python_packages)
        .await
        .unwrap();
    let mut provider = None;
    let sys = WholeSystem::start_with(backend, |config, web_url| {
        let p = common::oidc::Provider::start(&oidc, &format!("{web_url}/staff/callback"));
        common::oidc::staff_config(&p, config);
        provider = Some(p);
    })
    .await;
    // An imported group nobody organises, last checked long ago: on the
    // staff page's stale list, with the form to invite an organiser.
    let doc = serde_json::json!({
        "id": "svc-imported-walkers",
        "name": "Imported walkers",
        "description": "Walks for people living with grief",
        "schedules": [{"freq": "WEEKLY", "byday": "SA", "opens_at": "10:00",
            "closes_at": "12:00", "attending_type": "Online", "interval": 1,
            "valid_from": "2026-01-03"}],
        "assured_date": "2024-06-01",
    });
    let imported = sys
        .client
        .clone()
        .import_open_referral(selfhelp_testkit::with_token(
            selfhelp_proto::listings::v1::ImportOpenReferralRequest {
                services_json: vec![doc.to_string()],
                dry_run: false,
            },
            &selfhelp_testkit::token("sam-import", common::REGION, &["operator"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !imported.results[0].group_id.is_empty(),
        "imported: {imported:?}"
    );
    let screenshots =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-organise-{backend:?}"));
    let python_path = std::env::join_paths([&packages, &oidc]).unwrap();
    let report = run_walk(
        &sys,
        "organise.py",
        &screenshots,
        &[
            ("--group-name", "Lakeside carers circle"),
            ("--email", "olive@example.org"),
        ],
        &python_path,
    )
    .await;
    let pages: std::collections::BTreeSet<(&str, &str)> = report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| Some((c["page"].as_str()?, c["who"].as_str()?)))
        .collect();
    for page in [
        ("organise", "owner"),
        ("group-form", "owner"),
        ("group-form-error", "owner"),
        ("organise-group", "owner"),
        ("staff", "owner"),
        ("staff-review", "operator"),
        ("staff-reviewed", "operator"),
        ("organise-preview", "owner"),
        ("organise-saved", "owner"),
        ("organise-confirmed", "owner"),
        ("organise-announced", "owner"),
        ("report-message", "member"),
        ("report-message-error", "member"),
        ("report-message-sent", "member"),
        ("group-edit", "owner"),
        ("tell-us-sent", "visitor"),
        ("staff-reports", "operator"),
        ("staff-reports-error", "operator"),
        ("staff-reports-closed", "operator"),
        ("staff-topics", "operator"),
        ("staff-topics-error", "operator"),
        ("staff-topic", "operator"),
        ("staff-import", "operator"),
        ("staff-import-checked", "operator"),
        ("staff-dead-letters", "operator"),
        ("staff-stale", "operator"),
        ("staff-review-unorganised", "operator"),
        ("staff-invite-error", "operator"),
        ("staff-invited", "operator"),
        ("organise-group", "someone-else"),
        ("staff-review", "someone-else"),
        ("search-listed", "visitor"),
        ("contact-sent", "visitor"),
        ("organise-cancelled", "owner"),
        ("organise-approved", "owner"),
        ("organise-edit-waiting", "owner"),
        ("staff-review-edit", "operator"),
        ("staff-edit-approved", "operator"),
        ("my-groups-swap-asked", "member"),
        ("organise-swap-waiting", "owner"),
        ("my-groups-swap-to-answer", "member"),
        ("my-groups-swap-agreed", "member"),
        ("my-sharing", "member"),
        ("my-sharing-saved", "member"),
        ("organise-sharing", "owner"),
        ("organise-offered", "owner"),
        ("organise-sharing", "someone-else"),
        ("forum-organiser", "owner"),
        ("forum-practice-error", "owner"),
        ("forum-practice-saved", "owner"),
        ("forum", "member"),
        ("forum-agenda-error", "member"),
        ("forum-agenda-added", "member"),
        ("forum-notes-taker", "member"),
        ("forum-notes-saved", "member"),
        ("forum-notes-read", "member"),
        ("forum-knowledge-added", "member"),
        ("forum-committee-error", "owner"),
        ("forum-committee-saved", "owner"),
        ("forum-committee-lead", "member"),
        ("forum-committee-notice", "member"),
        ("forum-attendance", "owner"),
        ("forum", "someone-else"),
    ] {
        assert!(pages.contains(&page), "{page:?} not checked: {pages:?}");
    }
    // Members are told of the agenda item and the notes under their
    // preferences (email here); the committee's notice reaches Bea, on it.
    for (who, what) in [
        ("ann@example.org", "Ideas for the spring walk"),
        (
            "bea@example.org",
            "We chose the canal path for the spring walk.",
        ),
        ("bea@example.org", "Saturday at ten"),
    ] {
        eventually(
            "a forum notice by email",
            Duration::from_secs(30),
            || async {
                mails_to(&sys.smtp, who)
                    .iter()
                    .any(|m| m.contains(what))
                    .then_some(())
            },
        )
        .await;
    }
    // The message reached Bea, a member, by email, and not Ann, who joined
    // later; the visitor's message reached Olive without the address typed.
    eventually(
        "the message in Bea's email",
        Duration::from_secs(30),
        || async {
            mails_to(&sys.smtp, "bea@example.org")
                .iter()
                .any(|m| m.contains("Mince pies at the next meeting"))
                .then_some(())
        },
    )
    .await;
    assert!(
        !mails_to(&sys.smtp, "ann@example.org")
            .iter()
            .any(|m| m.contains("Mince pies")),
        "{backend:?}: not to someone who was not a member"
    );
    let asked = eventually(
        "the visitor's message to Olive",
        Duration::from_secs(30),
        || async {
            mails_to(&sys.smtp, "olive@example.org")
                .into_iter()
                .find(|m| m.contains("Is there parking near the library?"))
        },
    )
    .await;
    assert!(
        !asked.contains("visitor@example.org"),
        "{backend:?}: the address stays behind unless allowed: {asked}"
    );
    drop(provider);
    println!(
        "browser walk of organisers and staff passed on {backend:?}; screenshots in {}",
        screenshots.display()
    );
}

per_backend!(organisers_and_staff_walk_the_web_in_a_browser);
