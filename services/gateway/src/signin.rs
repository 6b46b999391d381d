//! Signing in by a link sent by email, with no password: the form asks for an
//! address; whatever it is, the answer is the same ("check your email"), so
//! nobody learns whether someone has an account. The email carries a link,
//! usable once within `sign_in.link_valid_minutes`, and a short code for
//! opening it on another device. The first sign-in makes the person (a stable
//! id, never the address), and the address counts as confirmed for the
//! emails notifications sends.

use std::sync::Arc;

use lettre::Message;
use lettre::message::Mailbox;
use sea_orm::{DatabaseConnection, TransactionTrait};
use selfhelp_core::time::Clock;

use crate::config::SignInConfig;
use crate::store::{self, account, sign_in_link};

/// The characters of a code: none that read alike (0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_LENGTH: usize = 8;

/// What a sign-in request became.
pub enum Asked {
    /// Sent (or silently not, when the address asked too often): the page
    /// that asks for the code names this link.
    Link { id: String },
    /// Not an email address: the form says so.
    NotAnAddress,
}

/// Why a link or code does not sign anyone in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, used, expired, or out of tries: the person asks for another.
    Spent,
    /// A wrong code (some tries left).
    WrongCode,
}

/// Someone who has just signed in.
pub struct SignedIn {
    pub person_id: String,
    pub email: String,
    pub next_path: String,
    /// Their first sign-in made them.
    pub new: bool,
}

#[derive(Clone)]
pub struct SignIn {
    db: DatabaseConnection,
    clock: Clock,
    cfg: SignInConfig,
    mail: Arc<selfhelp_platform::email::Sender>,
    area_name: String,
}

impl SignIn {
    pub fn new(
        db: DatabaseConnection,
        clock: Clock,
        cfg: SignInConfig,
        mail: Arc<selfhelp_platform::email::Sender>,
        area_name: String,
    ) -> SignIn {
        SignIn {
            db,
            clock,
            cfg,
            mail,
            area_name,
        }
    }

    /// Sends a sign-in link to `email` (unless it has asked too often this
    /// hour), to come back to `next` (a path of this site) once used. `base`
    /// is the site's address, for the link.
    pub async fn ask(&self, email: &str, next: &str, base: &str) -> anyhow::Result<Asked> {
        let Some(email) = normalise(email) else {
            return Ok(Asked::NotAnAddress);
        };
        let now = self.clock.now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        let token = store::random_secret(32);
        let code = new_code();
        let recent = sign_in_link::count_for(&self.db, &email, now - 3_600_000).await?;
        if recent >= self.cfg.links_per_address_per_hour {
            // The same answer as for any address: nothing tells the asker.
            tracing::info!("sign-in link not sent: the address asked too often");
            return Ok(Asked::Link { id });
        }
        sign_in_link::insert(
            &self.db,
            sign_in_link::Model {
                id: id.clone(),
                token_digest: store::digest(&token),
                code_digest: code_digest(&id, &code),
                email: email.clone(),
                next_path: safe_next(next).to_string(),
                created_at_ms: now,
                expires_at_ms: now + (self.cfg.link_valid_minutes * 60_000) as i64,
                used_at_ms: None,
                failed_codes: 0,
            },
        )
        .await?;
        let link = format!("{base}/sign-in/link/{token}");
        if let Err(e) = self.send(&email, &link, &code).await {
            // Logged without the address; the person can ask again.
            tracing::warn!(error = %e, "a sign-in link could not be sent");
        }
        Ok(Asked::Link { id })
    }

    async fn send(&self, to: &str, link: &str, code: &str) -> anyhow::Result<()> {
        let to: Mailbox = to.parse()?;
        let minutes = self.cfg.link_valid_minutes;
        let area = &self.area_name;
        let text = format!(
            "Someone asked to sign in to {area} self-help groups with this address.\n\n\
             To sign in, open this link within {minutes} minutes:\n{link}\n\n\
             Or, on the device where you asked, enter this code: {code}\n\n\
             The link and the code work once. If it was not you, do nothing: \
             nobody can sign in without them.\n"
        );
        let message = Message::builder()
            .from(self.mail.from().clone())
            .to(to)
            // No group or health condition in a subject line.
            .subject(format!("Your sign-in link for {area} self-help groups"))
            .body(text)?;
        self.mail
            .send(message)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))
    }

    /// Signs in with the link's secret.
    pub async fn with_link(&self, token: &str) -> anyhow::Result<Result<SignedIn, Refused>> {
        let Some(link) = sign_in_link::by_token(&self.db, &store::digest(token)).await? else {
            return Ok(Err(Refused::Spent));
        };
        self.use_link(link).await
    }

    /// Signs in with link `id`'s code, typed on the device that asked.
    pub async fn with_code(
        &self,
        id: &str,
        code: &str,
    ) -> anyhow::Result<Result<SignedIn, Refused>> {
        let Some(link) = sign_in_link::find(&self.db, id).await? else {
            return Ok(Err(Refused::Spent));
        };
        if link.failed_codes >= self.cfg.code_attempts {
            return Ok(Err(Refused::Spent));
        }
        let typed: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        if code_digest(id, &typed) != link.code_digest {
            sign_in_link::count_failed_code(&self.db, id).await?;
            let left = self.cfg.code_attempts - link.failed_codes - 1;
            return Ok(Err(if left > 0 {
                Refused::WrongCode
            } else {
                Refused::Spent
            }));
        }
        self.use_link(link).await
    }

    async fn use_link(
        &self,
        link: sign_in_link::Model,
    ) -> anyhow::Result<Result<SignedIn, Refused>> {
        let now = self.clock.now_ms();
        if link.expires_at_ms <= now || link.used_at_ms.is_some() {
            return Ok(Err(Refused::Spent));
        }
        let txn = self.db.begin().await?;
        if !sign_in_link::spend(&txn, &link.id, now).await? {
            return Ok(Err(Refused::Spent));
        }
        let (person_id, new) = match account::by_email(&txn, &link.email).await? {
            Some(a) => {
                account::signed_in(&txn, &a.person_id, now).await?;
                (a.person_id, false)
            }
            None => {
                let person_id = uuid::Uuid::now_v7().to_string();
                account::insert(
                    &txn,
                    account::Model {
                        person_id: person_id.clone(),
                        email: Some(link.email.clone()),
                        external_subject: None,
                        created_at_ms: now,
                        last_sign_in_at_ms: now,
                    },
                )
                .await?;
                (person_id, true)
            }
        };
        txn.commit().await?;
        Ok(Ok(SignedIn {
            person_id,
            email: link.email,
            next_path: link.next_path,
            new,
        }))
    }

    /// Forgets links that can no longer be used.
    pub async fn forget_expired(&self) -> Result<u64, sea_orm::DbErr> {
        sign_in_link::delete_expired(&self.db, self.clock.now_ms()).await
    }
}

/// `email` lower-cased, if it is an address lettre can send to (and not
/// absurdly long).
pub fn normalise(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    (email.len() <= 254 && email.parse::<lettre::Address>().is_ok()).then_some(email)
}

/// `next` when it is a path of this site; `/` otherwise. A path, not a URL:
/// starts with one `/` (not `//`, which browsers read as another host, nor
/// `/\`), and holds no control characters.
pub fn safe_next(next: &str) -> &str {
    let path = next.trim();
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control() || c == '\\');
    if ok { path } else { "/" }
}

fn new_code() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..CODE_LENGTH)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// The stored form of link `id`'s code (the id salts it).
fn code_digest(id: &str, code: &str) -> String {
    store::digest(&format!("{id}:{code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_goes_only_to_paths_of_this_site() {
        assert_eq!(safe_next("/groups/1?x=2"), "/groups/1?x=2");
        for outside in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside:?}");
        }
    }

    #[test]
    fn addresses_are_checked_and_lower_cased() {
        assert_eq!(
            normalise(" Ann@Example.ORG ").as_deref(),
            Some("ann@example.org")
        );
        assert_eq!(normalise("not an address"), None);
        assert_eq!(normalise(""), None);
    }

    #[test]
    fn codes_are_readable() {
        let code = new_code();
        assert_eq!(code.len(), CODE_LENGTH);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)));
    }
}
