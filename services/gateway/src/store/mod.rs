//! What the gateway keeps: who may sign in (a person's sign-in address and
//! their stable id), the sign-in links sent, sessions, the region's signing
//! keys, and the secret addresses of people's calendar feeds. Business data
//! stays in the services; see ADR 27.

pub mod account;
pub mod calendar_feed;
pub mod migrations;
pub mod session;
pub mod sign_in_link;
pub mod signing_key;
pub mod staff_sign_in;

pub use migrations::Migrator;

use sha2::Digest;

/// The SHA-256 of a secret, hex: what is stored of a token, so a copy of the
/// database signs no one in.
pub fn digest(secret: &str) -> String {
    let hash = sha2::Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random secret of `bytes` bytes, URL-safe base64 without padding.
pub fn random_secret(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Forgets everything the gateway holds about a person, in `conn`'s
/// transaction: their account (and so their sign-in address), sessions, the
/// links sent to their address, and their calendar feed's address. Doing it
/// again finds nothing and does nothing.
pub async fn forget_person<C: sea_orm::ConnectionTrait>(
    conn: &C,
    person_id: &str,
) -> Result<(), sea_orm::DbErr> {
    if let Some(found) = account::find(conn, person_id).await?
        && let Some(email) = found.email
    {
        sign_in_link::delete_for(conn, &email).await?;
    }
    account::delete(conn, person_id).await?;
    session::delete_all_of(conn, person_id).await?;
    calendar_feed::delete(conn, person_id).await?;
    Ok(())
}

/// What the gateway holds about a person, for their download: their sign-in
/// address, their sessions (when made and last used, never their ids), the
/// links sent to their address, and whether they have a calendar feed.
pub async fn export_person(
    db: &sea_orm::DatabaseConnection,
    person_id: &str,
) -> Result<serde_json::Value, sea_orm::DbErr> {
    use selfhelp_core::time::to_rfc3339;
    let found = account::find(db, person_id).await?;
    let sessions: Vec<serde_json::Value> = session::of_person(db, person_id)
        .await?
        .iter()
        .map(|s| {
            serde_json::json!({
                "started_at": to_rfc3339(s.created_at_ms),
                "last_used_at": to_rfc3339(s.last_seen_at_ms),
                "ends_at": to_rfc3339(s.expires_at_ms),
                "staff": s.roles().iter().any(|r| r == selfhelp_core::caller::ROLE_OPERATOR),
            })
        })
        .collect();
    let links: Vec<serde_json::Value> = match found.as_ref().and_then(|a| a.email.as_deref()) {
        Some(email) => sign_in_link::sent_to(db, email)
            .await?
            .iter()
            .map(|l| {
                serde_json::json!({
                    "sent_at": to_rfc3339(l.created_at_ms),
                    "used_at": l.used_at_ms.map(to_rfc3339),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let feed = calendar_feed::find(db, person_id).await?;
    Ok(serde_json::json!({
        "sign_in_address": found.as_ref().and_then(|a| a.email.clone()),
        "signs_in_through_identity_provider": found.as_ref().is_some_and(|a| a.external_subject.is_some()),
        "account_created_at": found.as_ref().map(|a| to_rfc3339(a.created_at_ms)),
        "last_sign_in_at": found.as_ref().map(|a| to_rfc3339(a.last_sign_in_at_ms)),
        "sessions": sessions,
        "sign_in_links": links,
        "calendar_feed_made_at": feed.map(|f| to_rfc3339(f.created_at_ms)),
    }))
}
