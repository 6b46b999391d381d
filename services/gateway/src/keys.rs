//! The region's signing keys: the gateway gives the services short-lived
//! ES256 tokens on a signed-in person's behalf and publishes the public keys
//! as a JWKS (`/.well-known/jwks.json`), which the services are configured to
//! trust (`auth.jwks_url`) — the same path a deployment with its own identity
//! provider takes.
//!
//! Keys live in the gateway's database, so every replica signs with the same
//! ones. A key signs for `tokens.rotate_after_days`; a new one is published a
//! while before it takes over (the services' JWKS cache learns it), and the
//! old one stays published until the last token it signed has expired.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::DatabaseConnection;
use selfhelp_core::time::Clock;
use serde::Serialize;
use tokio::sync::RwLock;

use crate::config::TokenConfig;
use crate::store::signing_key;

/// A new key is published this long before it signs: longer than the
/// services wait between fetches of the JWKS (30 s).
pub const PUBLISHED_BEFORE_USE: Duration = Duration::from_secs(120);

/// The claims of a token for the services (as `selfhelp_platform::auth` reads them).
#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    region: &'a str,
    roles: &'a [String],
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// One key ready to sign.
struct Signer {
    kid: String,
    key: EncodingKey,
}

/// The keys, read from the database and kept fresh by [`Keys::maintain`].
#[derive(Clone)]
pub struct Keys {
    db: DatabaseConnection,
    clock: Clock,
    cfg: TokenConfig,
    region: String,
    current: Arc<RwLock<Option<Signer>>>,
}

impl Keys {
    pub fn new(db: DatabaseConnection, clock: Clock, cfg: TokenConfig, region: String) -> Keys {
        Keys {
            db,
            clock,
            cfg,
            region,
            current: Arc::default(),
        }
    }

    fn rotation(&self) -> i64 {
        (self.cfg.rotate_after_days * 86_400_000) as i64
    }

    /// Makes sure a key signs now and the next one is published in time,
    /// forgets keys no token needs any more, and reads the keys afresh.
    /// Several replicas may do this at once: at worst an extra key is made.
    pub async fn maintain(&self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let keys = signing_key::published(&self.db, now).await?;
        let ahead = PUBLISHED_BEFORE_USE.as_millis() as i64;
        let signing_until = keys.iter().map(|k| k.signs_until_ms).max().unwrap_or(0);
        let has_signer = keys.iter().any(|k| usable(k, now));
        // The first key signs at once; later ones are made ahead of need.
        if !has_signer {
            signing_key::insert(&self.db, self.make_key(now, now)?).await?;
        } else if signing_until - now <= ahead * 2 {
            signing_key::insert(&self.db, self.make_key(now, signing_until)?).await?;
        }
        signing_key::delete_unpublished(&self.db, now).await?;
        self.reload().await
    }

    /// A new key, signing from `from` for one rotation, published from now
    /// until the last token it may sign has expired.
    fn make_key(&self, now: i64, from: i64) -> anyhow::Result<signing_key::Model> {
        use base64::Engine;
        use p256::pkcs8::EncodePrivateKey;
        let signing = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let point = signing.verifying_key().to_encoded_point(false);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let kid = format!("{}-{}", self.region, uuid::Uuid::now_v7().simple());
        let (x, y) = (
            point.x().ok_or_else(|| anyhow::anyhow!("no x"))?,
            point.y().ok_or_else(|| anyhow::anyhow!("no y"))?,
        );
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64.encode(x), "y": b64.encode(y),
        });
        let pem = signing
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("encoding a key: {e}"))?;
        let signs_until = from + self.rotation();
        Ok(signing_key::Model {
            kid,
            private_pem: pem.to_string(),
            public_jwk: jwk.to_string(),
            // A key made ahead is dated when it starts signing.
            created_at_ms: from.max(now),
            signs_until_ms: signs_until,
            published_until_ms: signs_until + (self.cfg.ttl_secs as i64 + 60) * 1_000,
        })
    }

    /// Reads the published keys: the newest usable one signs.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let keys = signing_key::published(&self.db, now).await?;
        let signer = keys
            .iter()
            .filter(|k| usable(k, now))
            .max_by_key(|k| (k.created_at_ms, k.kid.clone()))
            .map(|k| {
                Ok::<_, anyhow::Error>(Signer {
                    kid: k.kid.clone(),
                    key: EncodingKey::from_ec_pem(k.private_pem.as_bytes())?,
                })
            })
            .transpose()?;
        *self.current.write().await = signer;
        Ok(())
    }

    /// A token for the services speaking for `person` with `roles`.
    pub async fn token(&self, person: &str, roles: &[String]) -> anyhow::Result<String> {
        let current = self.current.read().await;
        let signer = current
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no signing key yet"))?;
        let now = self.clock.now().timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.kid.clone());
        let claims = Claims {
            sub: person,
            region: &self.region,
            roles,
            iss: &self.cfg.issuer,
            aud: &self.cfg.audience,
            iat: now,
            exp: now + self.cfg.ttl_secs as i64,
        };
        Ok(jsonwebtoken::encode(&header, &claims, &signer.key)?)
    }

    /// The published public keys, as a JWKS document: read from the database
    /// (any replica may have made a key), kept by caches for a minute.
    pub async fn jwks(&self) -> anyhow::Result<String> {
        let keys = signing_key::published(&self.db, self.clock.now_ms()).await?;
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(serde_json::json!({ "keys": keys }).to_string())
    }
}

/// Whether `key` may sign at `now`.
fn usable(key: &signing_key::Model, now: i64) -> bool {
    key.created_at_ms <= now && now < key.signs_until_ms
}
