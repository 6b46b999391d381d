//! One-click unsubscribe: every email carries a link with a signed token
//! naming the person and what to stop (a category, or all email); no login.
//! A mail client's unsubscribe button POSTs it (RFC 8058) and that is all. The
//! link itself opens a page with one button that POSTs: mail scanners that
//! follow links (GET) must not switch people's email off.

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
use crate::workflow::Workflow;
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

/// The service's key for unsubscribe tokens, shared by replicas through the
/// database.
#[derive(Clone)]
pub struct UnsubscribeKey {
    key: Vec<u8>,
    public_url: String,
}

impl UnsubscribeKey {
    pub async fn load(db: &DatabaseConnection, public_url: &str) -> Result<Self, DbErr> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let stored = secret::get_or_create(db, "unsubscribe", STANDARD.encode(fresh)).await?;
        let key = STANDARD
            .decode(stored)
            .map_err(|e| DbErr::Custom(format!("unsubscribe secret: {e}")))?;
        Ok(UnsubscribeKey {
            key,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    fn mac(&self, claim: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(claim.as_bytes());
        mac
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

#[derive(Clone)]
struct AppState {
    workflow: Workflow,
    key: UnsubscribeKey,
    names: selfhelp_platform::privacy::Pseudonyms,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

const NOT_VALID: &str = "This link is not valid. Please use the link from the email as it is, or change your settings in the app.";

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
        return (StatusCode::BAD_REQUEST, page(NOT_VALID));
    };
    let action = state.key.url(&person, scope);
    let text = format!(
        "Stop {}? Your in-app notifications carry on.</p><form method=\"post\" action=\"{action}\"><button type=\"submit\">Stop these emails</button></form><p>",
        what(scope)
    );
    (StatusCode::OK, page(&text))
}

/// The button, or a mail client's one-click POST: switches the email off.
async fn unsubscribe(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let Some((person, scope)) = state.key.verify(&q.token) else {
        return (StatusCode::BAD_REQUEST, page(NOT_VALID));
    };
    match state
        .workflow
        .unsubscribe(&state.names, &person, scope)
        .await
    {
        Ok(()) => {
            let text = format!(
                "Done: you will not get {} any more. Your in-app notifications carry on; you can change this in the app at any time.",
                what(scope)
            );
            (StatusCode::OK, page(&text))
        }
        Err(e) => {
            tracing::warn!(error = %e, "unsubscribe failed");
            let text =
                "Sorry, that did not work just now. Please try the link again in a few minutes.";
            (StatusCode::SERVICE_UNAVAILABLE, page(text))
        }
    }
}

fn page(text: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Email settings</title></head><body style=\"font-family: sans-serif; max-width: 36em;\"><p>{text}</p></body></html>"
    ))
}

pub fn router(
    workflow: Workflow,
    key: UnsubscribeKey,
    names: selfhelp_platform::privacy::Pseudonyms,
) -> Router {
    Router::new()
        .route("/unsubscribe", get(confirm).post(unsubscribe))
        .with_state(AppState {
            workflow,
            key,
            names,
        })
}

/// Serves the unsubscribe page on `listener` until `shutdown`.
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
        tracing::error!(error = %e, "unsubscribe listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UnsubscribeKey {
        UnsubscribeKey {
            key: b"0123456789abcdef0123456789abcdef".to_vec(),
            public_url: "https://n.example".into(),
        }
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
}
