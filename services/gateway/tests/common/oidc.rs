//! A real OpenID Connect provider for staff sign-in: `oidc/provider.py`,
//! written with Authlib from PyPI, requiring PKCE and a nonce.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::Gateway;

pub const CLIENT_ID: &str = "selfhelp-gateway";
pub const CLIENT_SECRET: &str = "a-client-secret-for-tests-only";
pub const OPERATORS: &str = "selfhelp-notts-operators";

/// Authlib and Flask, installed with pip into the target folder once.
pub fn python_packages() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oidc-authlib-1.9.10-flask-3.1.3");
    selfhelp_testkit::python::pip_install_into(&dir, &[&["authlib==1.9.10", "flask==3.1.3"]]);
    dir
}

/// The provider, killed when dropped.
pub struct Provider {
    child: Child,
    pub url: String,
}

impl Provider {
    pub fn start(packages: &Path, redirect_uri: &str) -> Provider {
        let users = serde_json::json!({
            "sam": {"email": "sam@council.example", "groups": [OPERATORS, "everyone"]},
            "pat": {"email": "pat@council.example", "groups": ["everyone"]},
            // An operator of another region, whose provider staff share.
            "dora": {"email": "dora@derby.example", "groups": ["selfhelp-derby-operators", "everyone"]},
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
pub async fn through_provider(b: &reqwest::Client, gateway: &Gateway, sub: &str) -> String {
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

/// Sets `config` to sign staff in at `provider`, operators by the `groups` claim.
pub fn staff_config(provider: &Provider, config: &mut selfhelp_gateway::Config) {
    config.staff.issuer_url = provider.url.clone();
    config.staff.client_id = CLIENT_ID.into();
    config.staff.client_secret = CLIENT_SECRET.into();
    config.staff.operator_claim = "groups".into();
    config.staff.operator_values = vec![OPERATORS.into()];
}

/// Signs `sub` in as staff in `b`, all the way back to the gateway.
pub async fn staff_sign_in(b: &reqwest::Client, gateway: &Gateway, sub: &str) {
    let back = through_provider(b, gateway, sub).await;
    let signed = b.get(&back).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 303, "{sub} signed in as staff");
}
