//! Staff sign in through a real OpenID Connect provider (issue 32):
//! `oidc/provider.py`, written with Authlib from PyPI, requiring PKCE and a
//! nonce. Only someone whose configured claim says so becomes an operator
//! and sees the staff page (which calls listings as them: the operator role
//! is in the gateway's token); anyone else the provider signs in is an
//! ordinary person. Used, forged and declined returns sign no one in.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;

use common::web::{browser, get};
use common::{Gateway, REGION, create, group_request, system_trusting};
use selfhelp_proto::listings::v1 as pb;
use selfhelp_testkit::{token, with_token};

const CLIENT_ID: &str = "selfhelp-gateway";
const CLIENT_SECRET: &str = "a-client-secret-for-tests-only";
const OPERATORS: &str = "selfhelp-notts-operators";

/// Authlib and Flask, installed with pip into the target folder once.
fn python_packages() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oidc-authlib-1.9.10-flask-3.1.3");
    selfhelp_testkit::python::pip_install_into(&dir, &[&["authlib==1.9.10", "flask==3.1.3"]]);
    dir
}

/// The provider, killed when dropped.
struct Provider {
    child: Child,
    url: String,
}

impl Provider {
    fn start(packages: &Path, redirect_uri: &str) -> Provider {
        let users = serde_json::json!({
            "sam": {"email": "sam@council.example", "groups": [OPERATORS, "everyone"]},
            "pat": {"email": "pat@council.example", "groups": ["everyone"]},
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.py");
        let mut child = Command::new(selfhelp_testkit::python::python())
            .arg(script)
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--redirect-uri", redirect_uri])
            .args(["--users", &users.to_string()])
            .env("PYTHONPATH", packages)
            // Plain HTTP on loopback, for the test only.
            .env("AUTHLIB_INSECURE_TRANSPORT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the OpenID Connect provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the provider's port");
        Provider {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs `sub` in at the provider for `b`, from the gateway's staff sign-in
/// to the provider's answer: the gateway's callback address it sends back.
async fn through_provider(b: &reqwest::Client, gateway: &Gateway, sub: &str) -> String {
    let begun = b
        .get(gateway.url("/staff/sign-in?next=/staff"))
        .send()
        .await
        .unwrap();
    assert_eq!(begun.status().as_u16(), 303);
    let authorize = begun.headers()["location"].to_str().unwrap().to_string();
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let form = b.get(&authorize).send().await.unwrap();
    assert_eq!(form.status().as_u16(), 200, "the provider's sign-in form");
    let answered = b
        .post(&authorize)
        .form(&[("sub", sub)])
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status().as_u16(), 302);
    answered.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn staff_sign_in_through_the_regions_provider_and_only_operators_see_staff_pages() {
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();
    // The gateway's address first: listings takes its tokens.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_url = format!("http://{}", web.local_addr().unwrap());
    let mut sys = system_trusting(Some(&web_url)).await;
    // A listing waiting for review, which the staff page shows.
    let waiting = create(
        &mut sys.client,
        group_request("Queued circle", &["carers"], "NG1 5FS"),
        false,
    )
    .await;
    sys.client
        .submit_group(with_token(
            pb::SubmitGroupRequest {
                group_id: waiting.id.clone(),
            },
            &token("olive-organiser", REGION, &[]),
        ))
        .await
        .unwrap();

    let callback = format!("{web_url}/staff/callback");
    let provider = Provider::start(&packages, &callback);
    let dir = tempfile::tempdir().unwrap();
    let mut config = selfhelp_gateway::Config {
        listings_url: sys.listings.url(),
        area_name: "Nottinghamshire".into(),
        region: REGION.into(),
        ..Default::default()
    };
    config.database.url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    );
    config.email.file_dir = dir.path().join("mail");
    config.nats.url = String::new();
    config.http.rate_limit_per_second = 0;
    config.staff.issuer_url = provider.url.clone();
    config.staff.client_id = CLIENT_ID.into();
    config.staff.client_secret = CLIENT_SECRET.into();
    config.staff.operator_claim = "groups".into();
    config.staff.operator_values = vec![OPERATORS.into()];
    let gateway = Gateway::start_on(web, config, selfhelp_core::time::Clock::system(), dir).await;

    // Not signed in: the staff page sends to the staff sign-in.
    let sam = browser();
    let (status, _) = get(&sam, &gateway, "/staff").await;
    assert_eq!(status, 303);
    let (_, sign_in) = get(&sam, &gateway, "/sign-in").await;
    assert!(
        sign_in.contains("href=\"/staff/sign-in\""),
        "offered to staff"
    );

    // Sam's claim names the operators' group: an operator of the region.
    let back = through_provider(&sam, &gateway, "sam").await;
    assert!(back.starts_with(&callback), "{back}");
    let signed = sam.get(&back).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 303);
    assert_eq!(signed.headers()["location"], "/staff");
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (status, page) = get(&sam, &gateway, "/staff").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Queued circle"),
        "listings answered as an operator: {page}"
    );
    let (_, account) = get(&sam, &gateway, "/account").await;
    assert!(account.contains("signed in as staff"));

    // The same return again, or one never begun here: nobody signed in.
    let stranger = browser();
    let again = stranger.get(&back).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 410, "a used sign-in");
    let forged = stranger
        .get(gateway.url("/staff/callback?code=made-up&state=made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 410);
    let (status, _) = get(&stranger, &gateway, "/account").await;
    assert_eq!(status, 303, "still signed out");

    // Pat is signed in by the same provider, but not an operator here.
    let pat = browser();
    let back = through_provider(&pat, &gateway, "pat").await;
    assert_eq!(pat.get(&back).send().await.unwrap().status().as_u16(), 303);
    let (status, _) = get(&pat, &gateway, "/account").await;
    assert_eq!(status, 200, "signed in");
    let (status, page) = get(&pat, &gateway, "/staff").await;
    assert_eq!(status, 403, "only operators: {page}");
    assert!(!page.contains("Queued circle"));

    // Someone the provider does not know is declined, and told so.
    let nobody = browser();
    let back = through_provider(&nobody, &gateway, "mallory").await;
    assert!(back.contains("error="), "{back}");
    let declined = nobody.get(&back).send().await.unwrap();
    assert_eq!(declined.status().as_u16(), 403);

    // The provider requires PKCE: a code exchanged without its verifier is
    // refused, so each sign-in above proved the gateway sent it.
    let other = browser();
    let back = through_provider(&other, &gateway, "sam").await;
    let code = back
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .to_string();
    let tokens = reqwest::Client::new()
        .post(format!("{}/token", provider.url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status().as_u16(), 400, "no verifier, no tokens");
}
