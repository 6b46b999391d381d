//! One-click unsubscribe: every email carries a link with a signed token
//! naming the person and what to stop (a category, or all email). Following it
//! (GET, or the RFC 8058 POST a mail client makes) needs no login.

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
use selfhelp_platform::time::now_ms;
use serde::Deserialize;
use sha2::Sha256;

use crate::domain::preferences::{ALL_CATEGORIES, Category, Channel};
use crate::store::{delivery, preference, secret};

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

    fn categories(self) -> Vec<Category> {
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

/// Turns email off for what the token names; what it stopped, for the page.
pub async fn apply(db: &DatabaseConnection, person: &str, scope: Scope) -> Result<(), DbErr> {
    let mut held = preference::get(db, person).await?;
    held.preferences
        .turn_off(&scope.categories(), Channel::Email);
    preference::put(db, person, &held, now_ms()).await?;
    if scope == Scope::AllEmail {
        delivery::cancel_emails_for(db, person, "unsubscribed", now_ms()).await?;
    }
    Ok(())
}

#[derive(Clone)]
struct AppState {
    db: DatabaseConnection,
    key: UnsubscribeKey,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn unsubscribe(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let Some((person, scope)) = state.key.verify(&q.token) else {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "This link is not valid. Please use the link from the email as it is, or change your settings in the app.",
            ),
        );
    };
    match apply(&state.db, &person, scope).await {
        Ok(()) => {
            let what = match scope {
                Scope::Category(c) => format!("emails about {}", c.describe()),
                Scope::AllEmail => "any emails".to_string(),
            };
            (
                StatusCode::OK,
                page(&format!(
                    "Done: you will not get {what} any more. Your in-app notifications carry on; you can change this in the app at any time."
                )),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "unsubscribe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                page(
                    "Sorry, that did not work just now. Please try the link again in a few minutes.",
                ),
            )
        }
    }
}

fn page(text: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Email settings</title></head><body style=\"font-family: sans-serif; max-width: 36em;\"><p>{text}</p></body></html>"
    ))
}

pub fn router(db: DatabaseConnection, key: UnsubscribeKey) -> Router {
    Router::new()
        .route("/unsubscribe", get(unsubscribe).post(unsubscribe))
        .with_state(AppState { db, key })
}

/// Serves the unsubscribe page on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: Shutdown) {
    let stopped = async move { shutdown.wait().await };
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
