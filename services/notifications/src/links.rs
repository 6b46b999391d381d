//! The links in our emails, which work without a login: one-click
//! unsubscribe, and the link that confirms an email address.
//!
//! Every email carries an unsubscribe link with a signed token naming the
//! person and what to stop (a category, or all email). A mail client's
//! unsubscribe button POSTs it (RFC 8058) and that is all. The link itself
//! opens a page with one button that POSTs: mail scanners that follow links
//! (GET) must not switch people's email off — nor confirm an address its owner
//! never asked for.
//!
//! A new address gets one email only: a link, signed for that person and that
//! address and good for [`CONFIRM_VALID_MS`], that confirms it. Until then
//! nothing else is sent to it, so nobody can have our notifications sent to
//! someone else's inbox.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbErr};
use selfhelp_platform::Shutdown;
use serde::Deserialize;
use sha2::Sha256;

use crate::domain::preferences::{ALL_CATEGORIES, Category};
use crate::workflow::{Confirmed, Workflow};
use selfhelp_platform::secrets as secret;

/// What a link stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Category(Category),
    AllEmail,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Category(c) => c.as_str(),
            Scope::AllEmail => "ALL",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "ALL" => Some(Scope::AllEmail),
            other => Category::parse(other).map(Scope::Category),
        }
    }

    pub(crate) fn categories(self) -> Vec<Category> {
        match self {
            Scope::Category(c) => vec![c],
            Scope::AllEmail => ALL_CATEGORIES.to_vec(),
        }
    }
}

/// How long a confirmation link works.
pub const CONFIRM_VALID_MS: i64 = 7 * 24 * 3_600_000;

/// What a genuine confirmation link names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub person: String,
    /// [`address_digest`] of the address it confirms.
    pub address: String,
    pub expires_at_ms: i64,
}

/// An address as confirmation links name it: a digest, so that the link (and
/// the web server logs it passes through) does not carry the address.
pub fn address_digest(email: &str) -> String {
    use sha2::Digest;
    let hash = Sha256::digest(email.trim().to_lowercase().as_bytes());
    URL_SAFE_NO_PAD.encode(&hash[..18])
}

/// How long a link to confirm a listing's details works.
pub const LISTING_CHECK_VALID_MS: i64 = 30 * 24 * 3_600_000;

/// What a genuine listing-check link names: the organiser it was sent to, the
/// group, and the confirmation the reminder was about (so the listing
/// confirms it once: a later confirmation makes the link stale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingCheck {
    pub person: String,
    pub group: String,
    pub checked_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The service's key for the links' tokens, shared by replicas through the
/// database.
#[derive(Clone)]
pub struct LinkKey {
    key: Vec<u8>,
    /// Derived from `key` for confirmation links, so that no unsubscribe
    /// token can pass for one or the other way round.
    confirm_key: Vec<u8>,
    /// Derived likewise for links that confirm a listing is still right.
    check_key: Vec<u8>,
    public_url: String,
}

impl LinkKey {
    pub async fn load(db: &DatabaseConnection, public_url: &str) -> Result<Self, DbErr> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let stored = secret::get_or_create(db, "unsubscribe", STANDARD.encode(fresh)).await?;
        let key = STANDARD
            .decode(stored)
            .map_err(|e| DbErr::Custom(format!("unsubscribe secret: {e}")))?;
        Ok(LinkKey::new(key, public_url))
    }

    fn new(key: Vec<u8>, public_url: &str) -> LinkKey {
        let confirm_key = mac_with(&key, "email address confirmation")
            .finalize()
            .into_bytes()
            .to_vec();
        let check_key = mac_with(&key, "listing still right")
            .finalize()
            .into_bytes()
            .to_vec();
        LinkKey {
            key,
            confirm_key,
            check_key,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    fn mac(&self, claim: &str) -> Hmac<Sha256> {
        mac_with(&self.key, claim)
    }

    /// The link that confirms `email` as `person`'s address, until `expires_at_ms`.
    pub fn confirm_url(&self, person: &str, email: &str, expires_at_ms: i64) -> String {
        let claim = format!("{person}\n{}\n{expires_at_ms}", address_digest(email));
        let sig = mac_with(&self.confirm_key, &claim).finalize().into_bytes();
        format!(
            "{}/confirm-email?token={}.{}",
            self.public_url,
            URL_SAFE_NO_PAD.encode(claim),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// What a genuine confirmation token names (expired or not).
    pub fn verify_confirmation(&self, token: &str) -> Option<Confirmation> {
        let (claim, sig) = token.split_once('.')?;
        let claim = String::from_utf8(URL_SAFE_NO_PAD.decode(claim).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        mac_with(&self.confirm_key, &claim)
            .verify_slice(&sig)
            .ok()?;
        let mut parts = claim.rsplitn(3, '\n');
        let expires_at_ms = parts.next()?.parse().ok()?;
        let address = parts.next()?.to_string();
        let person = parts.next()?.to_string();
        Some(Confirmation {
            person,
            address,
            expires_at_ms,
        })
    }

    /// The token of a link for `check`, which the web turns into a
    /// confirmation by that organiser (through `OpenListingCheck`).
    pub fn check_token(&self, check: &ListingCheck) -> String {
        let claim = format!(
            "{}\n{}\n{}\n{}",
            check.person, check.group, check.checked_at_ms, check.expires_at_ms
        );
        let sig = mac_with(&self.check_key, &claim).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(claim),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// What a genuine listing-check token names (expired or not).
    pub fn verify_check(&self, token: &str) -> Option<ListingCheck> {
        let (claim, sig) = token.split_once('.')?;
        let claim = String::from_utf8(URL_SAFE_NO_PAD.decode(claim).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        mac_with(&self.check_key, &claim).verify_slice(&sig).ok()?;
        // The person id may hold anything but a line break; the rest are
        // an id and two numbers.
        let mut parts = claim.rsplitn(4, '\n');
        let expires_at_ms = parts.next()?.parse().ok()?;
        let checked_at_ms = parts.next()?.parse().ok()?;
        let group = parts.next()?.to_string();
        let person = parts.next()?.to_string();
        Some(ListingCheck {
            person,
            group,
            checked_at_ms,
            expires_at_ms,
        })
    }

    pub fn token(&self, person: &str, scope: Scope) -> String {
        let claim = format!("{person}:{}", scope.as_str());
        let sig = self.mac(&claim).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(claim),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    pub fn url(&self, person: &str, scope: Scope) -> String {
        format!(
            "{}/unsubscribe?token={}",
            self.public_url,
            self.token(person, scope)
        )
    }

    /// The person and scope a genuine token names.
    pub fn verify(&self, token: &str) -> Option<(String, Scope)> {
        let (claim, sig) = token.split_once('.')?;
        let claim = String::from_utf8(URL_SAFE_NO_PAD.decode(claim).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(&claim).verify_slice(&sig).ok()?;
        let (person, scope) = claim.rsplit_once(':')?;
        Some((person.to_string(), Scope::parse(scope)?))
    }
}

/// Links to the web's page where an organiser confirms with one click that
/// their listing is still right (`http.web_url`; none without a web).
#[derive(Clone)]
pub struct CheckLinks {
    key: LinkKey,
    web_url: String,
}

impl CheckLinks {
    pub fn new(key: LinkKey, web_url: &str) -> Option<CheckLinks> {
        let web_url = web_url.trim().trim_end_matches('/');
        (!web_url.is_empty()).then(|| CheckLinks {
            key,
            web_url: web_url.to_string(),
        })
    }

    pub fn url(&self, check: &ListingCheck) -> String {
        format!(
            "{}/groups/{}/still-right?token={}",
            self.web_url,
            check.group,
            self.key.check_token(check)
        )
    }
}

fn mac_with(key: &[u8], claim: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(claim.as_bytes());
    mac
}

#[derive(Clone)]
struct AppState {
    workflow: Workflow,
    key: LinkKey,
    names: selfhelp_platform::privacy::Pseudonyms,
    /// The person's settings on the web (`http.web_url`), empty for none.
    settings_url: String,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

const NOT_VALID: &str = "This link is not valid. Please use the link from the email as it is, or change your settings on the website.";

fn what(scope: Scope) -> String {
    match scope {
        Scope::Category(c) => format!("emails about {}", c.describe()),
        Scope::AllEmail => "any emails".to_string(),
    }
}

/// The link from the email: one button to confirm.
async fn confirm(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let Some((person, scope)) = state.key.verify(&q.token) else {
        return (StatusCode::BAD_REQUEST, state.page(NOT_VALID));
    };
    let action = state.key.url(&person, scope);
    let text = format!(
        "Stop {}? Your notifications on the website carry on.</p><form method=\"post\" action=\"{action}\"><button type=\"submit\">Stop these emails</button></form><p>",
        what(scope)
    );
    (StatusCode::OK, state.page(&text))
}

/// The button, or a mail client's one-click POST: switches the email off.
async fn unsubscribe(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let Some((person, scope)) = state.key.verify(&q.token) else {
        return (StatusCode::BAD_REQUEST, state.page(NOT_VALID));
    };
    match state
        .workflow
        .unsubscribe(&state.names, &person, scope)
        .await
    {
        Ok(()) => {
            let text = format!(
                "Done: you will not get {} any more. Your notifications on the website carry on; you can change this in your settings there at any time.",
                what(scope)
            );
            (StatusCode::OK, state.page(&text))
        }
        Err(e) => {
            tracing::warn!(error = %e, "unsubscribe failed");
            let text =
                "Sorry, that did not work just now. Please try the link again in a few minutes.";
            (StatusCode::SERVICE_UNAVAILABLE, state.page(text))
        }
    }
}

const CONFIRM_NOT_VALID: &str = "This link is not valid. Please use the link from the email as it is, or save your email address again in your settings for a new one.";

/// The confirmation link from the email: one button to confirm.
async fn confirm_page(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    if state.key.verify_confirmation(&q.token).is_none() {
        return (StatusCode::BAD_REQUEST, state.page(CONFIRM_NOT_VALID));
    }
    let action = format!("/confirm-email?token={}", q.token);
    let text = format!(
        "Confirm this email address for your notifications?</p><form method=\"post\" action=\"{action}\"><button type=\"submit\">Confirm my address</button></form><p>If you did not ask for this, close this page: nothing will be sent to you."
    );
    (StatusCode::OK, state.page(&text))
}

/// The button: confirms the address, if it is still the person's.
async fn confirm_email(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let Some(link) = state.key.verify_confirmation(&q.token) else {
        return (StatusCode::BAD_REQUEST, state.page(CONFIRM_NOT_VALID));
    };
    match state.workflow.confirm_email(&state.names, &link).await {
        Ok(Confirmed::Now | Confirmed::Already) => (
            StatusCode::OK,
            state.page(
                "Thank you: your email address is confirmed. Your notifications will come to it as your settings say.",
            ),
        ),
        Ok(Confirmed::Expired) => (
            StatusCode::GONE,
            state.page(
                "This link has expired. Save your email address again in your settings and we will send a new one.",
            ),
        ),
        Ok(Confirmed::NotTheAddress) => (
            StatusCode::CONFLICT,
            state.page(
                "This link is for an email address that is no longer the one in your settings. Use the link in the latest email we sent.",
            ),
        ),
        Ok(Confirmed::Erased) => (StatusCode::BAD_REQUEST, state.page(CONFIRM_NOT_VALID)),
        Err(e) => {
            tracing::warn!(error = %e, "confirming an email address failed");
            let text =
                "Sorry, that did not work just now. Please try the link again in a few minutes.";
            (StatusCode::SERVICE_UNAVAILABLE, state.page(text))
        }
    }
}

impl AppState {
    /// A page of `text` (trusted HTML of ours), with a link to the person's
    /// settings on the web when there is one.
    fn page(&self, text: &str) -> Html<String> {
        let settings = if self.settings_url.is_empty() {
            String::new()
        } else {
            format!(
                "<p><a href=\"{}\">All your notification settings</a></p>",
                self.settings_url
            )
        };
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Email settings</title></head><body style=\"font-family: sans-serif; line-height: 1.5; max-width: 36em; margin: 1rem auto; padding: 0 1rem;\"><main><h1 style=\"font-size: 1.4rem;\">Email settings</h1><p>{text}</p>{settings}</main></body></html>"
        ))
    }
}

pub fn router(
    workflow: Workflow,
    key: LinkKey,
    names: selfhelp_platform::privacy::Pseudonyms,
    web_url: &str,
) -> Router {
    Router::new()
        .route("/unsubscribe", get(confirm).post(unsubscribe))
        .route("/confirm-email", get(confirm_page).post(confirm_email))
        .with_state(AppState {
            workflow,
            key,
            names,
            settings_url: if web_url.is_empty() {
                String::new()
            } else {
                format!("{}/my/settings", web_url.trim_end_matches('/'))
            },
        })
}

/// Serves the links' pages on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: Shutdown) {
    use axum::serve::ListenerExt;
    let stopped = async move { shutdown.wait().await };
    // Same reason as the gRPC servers: no delayed-ACK wait on multi-part responses.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "email links' listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::new(
            b"0123456789abcdef0123456789abcdef".to_vec(),
            "https://n.example/",
        )
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let k = key();
        let t = k.token("p-1", Scope::Category(Category::Reminders));
        assert_eq!(
            k.verify(&t),
            Some(("p-1".into(), Scope::Category(Category::Reminders)))
        );
        let all = k.token("p-1", Scope::AllEmail);
        assert_eq!(k.verify(&all), Some(("p-1".into(), Scope::AllEmail)));
        // Someone else's id with this signature.
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode("p-2:REMINDERS"));
        assert_eq!(k.verify(&forged), None);
        assert_eq!(k.verify("garbage"), None);
        assert!(
            k.url("p-1", Scope::AllEmail)
                .starts_with("https://n.example/unsubscribe?token=")
        );
    }

    #[test]
    fn confirmation_links_name_person_address_and_expiry_and_are_no_unsubscribe_links() {
        let k = key();
        let url = k.confirm_url("p-1", " Ann@Example.org", 1_000);
        let token = url
            .strip_prefix("https://n.example/confirm-email?token=")
            .expect("the confirmation page");
        assert!(!url.contains("example.org"), "the address stays out: {url}");
        assert_eq!(
            k.verify_confirmation(token),
            Some(Confirmation {
                person: "p-1".into(),
                address: address_digest("ann@example.org"),
                expires_at_ms: 1_000,
            })
        );
        assert_ne!(
            address_digest("ann@example.org"),
            address_digest("bob@example.org")
        );
        // Neither kind of token passes for the other.
        assert_eq!(k.verify(token), None);
        let unsubscribe = k.token("p-1", Scope::AllEmail);
        assert_eq!(k.verify_confirmation(&unsubscribe), None);
        // A longer life or another person breaks the signature.
        let (claim, sig) = token.split_once('.').unwrap();
        let claim = String::from_utf8(URL_SAFE_NO_PAD.decode(claim).unwrap()).unwrap();
        for forged in [
            claim.replace("\n1000", "\n9999999999999"),
            claim.replace("p-1", "p-2"),
        ] {
            let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged));
            assert_eq!(k.verify_confirmation(&forged), None);
        }
    }

    #[test]
    fn listing_check_links_round_trip_and_pass_for_no_other_kind() {
        let k = key();
        let check = ListingCheck {
            person: "p-1".into(),
            group: "g-1".into(),
            checked_at_ms: 5_000,
            expires_at_ms: 9_000,
        };
        let token = k.check_token(&check);
        assert_eq!(k.verify_check(&token), Some(check));
        assert_eq!(k.verify(&token), None);
        assert_eq!(k.verify_confirmation(&token), None);
        assert_eq!(k.verify_check(&k.token("p-1", Scope::AllEmail)), None);
        let (claim, sig) = token.split_once('.').unwrap();
        let claim = String::from_utf8(URL_SAFE_NO_PAD.decode(claim).unwrap()).unwrap();
        for forged in [
            claim.replace("\n9000", "\n99999"),
            claim.replace("g-1", "g-2"),
            claim.replace("p-1", "p-2"),
        ] {
            let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged));
            assert_eq!(k.verify_check(&forged), None);
        }
    }
}
