//! Bearer-token authentication: JWTs with `sub`, `region` and `roles`.
//!
//! Development uses HS256 with a shared secret; production uses the operator's
//! identity provider (RS256/ES256 keys from a JWKS file or URL). Tokens are checked
//! in an async tower layer ([`crate::grpc`]); handlers then decide what the
//! [`Caller`] may touch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::AuthConfig;
use selfhelp_core::caller::Caller;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub region: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (identity providers issue both forms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no key configured to verify tokens: set auth.hs256_secret(_file) or auth.jwks_file/jwks_url"
    )]
    NotConfigured,
    #[error(
        "auth.hs256_secret is {0} characters: it must be at least {MIN_HS256_SECRET} (for example `openssl rand -base64 32`)"
    )]
    WeakSecret(usize),
    #[error(
        "auth.hs256_secret is one published in the selfhelp repository: anyone could sign tokens with it; make one of your own (for example `openssl rand -base64 32`)"
    )]
    PublishedSecret,
    #[error("reading {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("fetching JWKS: {0}")]
    Fetch(String),
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error(
        "tokens from an identity provider must say who issued them and for whom: set auth.issuer and auth.audience"
    )]
    IssuerAndAudienceRequired,
}

enum Keys {
    Hs256(DecodingKey),
    Jwks {
        set: RwLock<JwkSet>,
        url: Option<String>,
        last_fetch: RwLock<Option<Instant>>,
        http: reqwest::Client,
    },
}

/// Verifies bearer tokens. Cheap to share behind an `Arc`.
pub struct Authenticator {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Asymmetric algorithms accepted from an identity provider.
const JWKS_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A key-id miss refetches the JWKS at most this often.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

impl Authenticator {
    pub async fn from_config(cfg: &AuthConfig) -> Result<Arc<Self>, AuthError> {
        let keys = if let Some(secret) = resolve_secret(cfg)? {
            Keys::Hs256(DecodingKey::from_secret(secret.as_bytes()))
        } else if cfg.jwks_file.is_some() || cfg.jwks_url.is_some() {
            // Without both, a token the provider issued to another application
            // (or for another region's deployment) would be taken as ours.
            let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
            if !set(&cfg.issuer) || !set(&cfg.audience) {
                return Err(AuthError::IssuerAndAudienceRequired);
            }
            let set = match &cfg.jwks_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
                        what: path.display().to_string(),
                        source,
                    })?;
                    serde_json::from_str(&text).map_err(|e| AuthError::Jwks(e.to_string()))?
                }
                None => JwkSet { keys: Vec::new() },
            };
            let keys = Keys::Jwks {
                set: RwLock::new(set),
                url: cfg.jwks_url.clone(),
                last_fetch: RwLock::new(None),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| AuthError::Fetch(e.to_string()))?,
            };
            if let Keys::Jwks { url: Some(_), .. } = &keys {
                // Fail fast on a wrong URL, but a provider that is briefly down must not
                // stop the service from starting: misses refetch later.
                if let Err(e) = refresh_jwks(&keys).await {
                    tracing::warn!(error = %e, "JWKS not fetched at start-up; will retry on first use");
                }
            }
            keys
        } else {
            return Err(AuthError::NotConfigured);
        };
        Ok(Arc::new(Self {
            keys,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
        }))
    }

    /// Verifies `token` and returns who it speaks for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let claims = match &self.keys {
            Keys::Hs256(key) => self.decode(token, key, Algorithm::HS256)?,
            Keys::Jwks { .. } => {
                if !JWKS_ALGORITHMS.contains(&header.alg) {
                    return Err(AuthError::InvalidToken(format!(
                        "algorithm {:?} not accepted",
                        header.alg
                    )));
                }
                let key = match self.find_jwk(header.kid.as_deref()).await? {
                    Some(key) => key,
                    None => {
                        refresh_jwks(&self.keys).await?;
                        self.find_jwk(header.kid.as_deref())
                            .await?
                            .ok_or_else(|| AuthError::InvalidToken("unknown key id".into()))?
                    }
                };
                self.decode(token, &key, header.alg)?
            }
        };
        if claims.sub.trim().is_empty() {
            return Err(AuthError::InvalidToken("empty sub".into()));
        }
        if claims.region.trim().is_empty() {
            return Err(AuthError::InvalidToken("empty region".into()));
        }
        Ok(Caller {
            person_id: claims.sub,
            region: claims.region,
            roles: claims.roles,
            expires_at: claims.exp,
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(alg);
        // A configured issuer or audience must be present, not merely match if present.
        let mut required = vec!["exp", "sub"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = 30;
        validation.validate_nbf = true;
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))
    }

    async fn find_jwk(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, AuthError> {
        let Keys::Jwks { set, .. } = &self.keys else {
            return Ok(None);
        };
        let set = set.read().await;
        let jwk = match kid {
            Some(kid) => set.find(kid),
            // Without a key id, only an unambiguous set can be used.
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        };
        jwk.map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Jwks(e.to_string())))
            .transpose()
    }
}

async fn refresh_jwks(keys: &Keys) -> Result<(), AuthError> {
    let Keys::Jwks {
        set,
        url: Some(url),
        last_fetch,
        http,
    } = keys
    else {
        return Ok(());
    };
    {
        let mut last = last_fetch.write().await;
        if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return Ok(());
        }
        *last = Some(Instant::now());
    }
    let fetched: JwkSet = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| AuthError::Fetch(e.to_string()))?
        .json()
        .await
        .map_err(|e| AuthError::Jwks(e.to_string()))?;
    *set.write().await = fetched;
    Ok(())
}

/// Shortest HS256 secret accepted: a shorter one can be guessed offline from
/// any token it signed (RFC 7518 asks for a key at least as long as the hash).
pub const MIN_HS256_SECRET: usize = 32;

/// SHA-256 digests of HS256 secrets that were ever published with selfhelp
/// (a development secret once committed for compose, the test kit's and the
/// unit tests' secrets): anyone can mint tokens with them, so no service
/// takes one. `selfhelp up` makes its own secret, so it needs none of them.
const PUBLISHED_SECRETS: [&str; 3] = [
    "019f1d1d83b4c29826ebd4bfdfd82764ee1fc981679d1381843f7c5262373a8a",
    "b7e839c9f400967b0e01e5529a61b42279af1764362b3b88bceebbb15c4dc900",
    "34537f2af8d6e478a6d801e552fbfe08427188cd5095c36afc55c03bd80d17ce",
];

fn is_published(secret: &str) -> bool {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    PUBLISHED_SECRETS.contains(&hex.as_str())
}

fn resolve_secret(cfg: &AuthConfig) -> Result<Option<String>, AuthError> {
    let secret = if let Some(secret) = cfg.hs256_secret.as_ref().filter(|s| !s.is_empty()) {
        Some(secret.clone())
    } else {
        match &cfg.hs256_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map(|s| s.trim().to_string())
                    .map_err(|source| AuthError::Io {
                        what: path.display().to_string(),
                        source,
                    })?,
            ),
            None => None,
        }
    };
    match secret {
        Some(s) if s.chars().count() < MIN_HS256_SECRET => {
            Err(AuthError::WeakSecret(s.chars().count()))
        }
        Some(s) if is_published(&s) => Err(AuthError::PublishedSecret),
        other => Ok(other),
    }
}

/// Mints a development HS256 token (what `selfhelp token` prints).
pub fn mint_hs256(
    secret: &str,
    sub: &str,
    region: &str,
    roles: &[String],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: sub.to_string(),
        region: region.to_string(),
        roles: roles.to_vec(),
        exp: chrono::Utc::now().timestamp() + ttl.as_secs() as i64,
        iss: None,
        aud: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// A fresh random secret for development deployments.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made for this run: every secret written in this repository is refused.
    static TEST_SECRET: std::sync::LazyLock<String> = std::sync::LazyLock::new(generate_secret);

    #[tokio::test]
    async fn a_published_hs256_secret_is_refused() {
        for published in [
            "e2uhTFQAbipzIdcAGyplIEdDbF579rApU5syfnFgR9RvmtI2",
            "selfhelp-test-secret-for-tests-only-0123",
            "a-test-secret-of-thirty-two-chars-or-more",
        ] {
            let err = Authenticator::from_config(&hs_config(published))
                .await
                .err()
                .expect("refused");
            assert!(matches!(err, AuthError::PublishedSecret), "{err}");
        }
        // From a file too, with the line end an editor leaves.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "e2uhTFQAbipzIdcAGyplIEdDbF579rApU5syfnFgR9RvmtI2\n").unwrap();
        let cfg = AuthConfig {
            hs256_secret_file: Some(file),
            ..Default::default()
        };
        assert!(matches!(
            Authenticator::from_config(&cfg).await.err(),
            Some(AuthError::PublishedSecret)
        ));
        assert!(
            Authenticator::from_config(&hs_config(&TEST_SECRET))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_short_hs256_secret_is_refused_naming_the_setting() {
        let err = Authenticator::from_config(&hs_config("s3cret"))
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, AuthError::WeakSecret(6)), "{err}");
        assert!(err.to_string().contains("auth.hs256_secret"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "short\n").unwrap();
        let from_file = AuthConfig {
            hs256_secret_file: Some(file),
            ..Default::default()
        };
        assert!(Authenticator::from_config(&from_file).await.is_err());
        assert!(
            Authenticator::from_config(&hs_config(&generate_secret()))
                .await
                .is_ok()
        );
    }

    fn hs_config(secret: &str) -> AuthConfig {
        AuthConfig {
            hs256_secret: Some(secret.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hs256_round_trip() {
        let auth = Authenticator::from_config(&hs_config(&TEST_SECRET))
            .await
            .unwrap();
        let token = mint_hs256(
            &TEST_SECRET,
            "p1",
            "notts",
            &["operator".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let caller = auth.authenticate(&token).await.unwrap();
        assert_eq!(caller.person_id, "p1");
        assert!(caller.is_operator_of("notts"));
        assert!(!caller.is_operator_of("leeds"));
    }

    #[tokio::test]
    async fn rejects_wrong_secret_expired_and_garbage() {
        let auth = Authenticator::from_config(&hs_config(&TEST_SECRET))
            .await
            .unwrap();
        let wrong = mint_hs256("other", "p1", "notts", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.authenticate(&wrong).await.is_err());
        let claims = Claims {
            sub: "p1".into(),
            region: "notts".into(),
            roles: vec![],
            exp: chrono::Utc::now().timestamp() - 3600,
            iss: None,
            aud: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .unwrap();
        assert!(auth.authenticate(&expired).await.is_err());
        assert!(auth.authenticate("not.a.token").await.is_err());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let cfg = AuthConfig {
            hs256_secret: Some(TEST_SECRET.clone()),
            issuer: Some("https://id.example".into()),
            audience: Some("selfhelp".into()),
            ..Default::default()
        };
        let auth = Authenticator::from_config(&cfg).await.unwrap();
        let sign = |iss: Option<&str>, aud: Option<&str>| {
            let claims = Claims {
                sub: "p".into(),
                region: "r".into(),
                roles: vec![],
                exp: chrono::Utc::now().timestamp() + 60,
                iss: iss.map(Into::into),
                aud: aud.map(|a| serde_json::json!(a)),
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            )
            .unwrap()
        };
        assert!(
            auth.authenticate(&sign(Some("https://id.example"), Some("selfhelp")))
                .await
                .is_ok()
        );
        assert!(
            auth.authenticate(&sign(Some("https://evil.example"), Some("selfhelp")))
                .await
                .is_err()
        );
        assert!(
            auth.authenticate(&sign(Some("https://id.example"), Some("other")))
                .await
                .is_err()
        );
        assert!(auth.authenticate(&sign(None, None)).await.is_err());
        // An audience list is accepted when it contains ours.
        let claims = serde_json::json!({
            "sub": "p", "region": "r", "exp": chrono::Utc::now().timestamp() + 60,
            "iss": "https://id.example", "aud": ["other", "selfhelp"],
        });
        let listed = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .unwrap();
        assert!(auth.authenticate(&listed).await.is_ok());
        // Not valid yet.
        let claims = serde_json::json!({
            "sub": "p", "region": "r", "exp": chrono::Utc::now().timestamp() + 600,
            "nbf": chrono::Utc::now().timestamp() + 300,
            "iss": "https://id.example", "aud": "selfhelp",
        });
        let early = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .unwrap();
        assert!(auth.authenticate(&early).await.is_err());
    }

    /// An identity provider's key: the JWKS it publishes and a way to sign with it.
    struct IdentityProvider {
        jwks: serde_json::Value,
        key: EncodingKey,
    }

    impl IdentityProvider {
        fn new(kid: &str) -> Self {
            use base64::Engine;
            use p256::pkcs8::EncodePrivateKey;
            let signing =
                p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
            let point = signing.verifying_key().to_encoded_point(false);
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let jwks = serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": b64.encode(point.x().unwrap()), "y": b64.encode(point.y().unwrap()),
            }]});
            let pem = signing.to_pkcs8_pem(Default::default()).unwrap();
            Self {
                jwks,
                key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            }
        }

        fn sign(&self, kid: &str, sub: &str) -> String {
            // (An identity provider always names itself and the audience.)
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            let claims = Claims {
                sub: sub.into(),
                region: "notts".into(),
                roles: vec![],
                exp: chrono::Utc::now().timestamp() + 60,
                iss: Some(IDP_ISSUER.into()),
                aud: Some(IDP_AUDIENCE.into()),
            };
            jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
        }
    }

    const IDP_ISSUER: &str = "https://id.example";
    const IDP_AUDIENCE: &str = "selfhelp-notts";

    #[tokio::test]
    async fn an_identity_provider_without_issuer_and_audience_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, IdentityProvider::new("k1").jwks.to_string()).unwrap();
        for (issuer, audience) in [
            (None, None),
            (Some(IDP_ISSUER), None),
            (None, Some("x")),
            (Some(""), Some("x")),
        ] {
            let refused = Authenticator::from_config(&AuthConfig {
                jwks_file: Some(path.clone()),
                issuer: issuer.map(String::from),
                audience: audience.map(String::from),
                ..Default::default()
            })
            .await;
            assert!(
                matches!(refused, Err(AuthError::IssuerAndAudienceRequired)),
                "{issuer:?} {audience:?}"
            );
        }
    }

    #[tokio::test]
    async fn es256_from_jwks_file() {
        let idp = IdentityProvider::new("k1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, idp.jwks.to_string()).unwrap();
        let auth = Authenticator::from_config(&AuthConfig {
            jwks_file: Some(path),
            issuer: Some(IDP_ISSUER.into()),
            audience: Some(IDP_AUDIENCE.into()),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            auth.authenticate(&idp.sign("k1", "p9"))
                .await
                .unwrap()
                .person_id,
            "p9"
        );
        // An HS256 token must not be accepted by a JWKS-configured service.
        let hs = mint_hs256("k1", "p9", "notts", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.authenticate(&hs).await.is_err());
        assert!(auth.authenticate(&idp.sign("unknown", "p9")).await.is_err());
        // Someone else's key with our key id.
        let impostor = IdentityProvider::new("k1");
        assert!(auth.authenticate(&impostor.sign("k1", "p9")).await.is_err());
    }

    /// Serves `body` as JSON to every request on a local port; returns its URL.
    async fn serve_json(body: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/.well-known/jwks.json")
    }

    #[tokio::test]
    async fn es256_from_jwks_url() {
        let idp = IdentityProvider::new("kid-2026");
        let url = serve_json(idp.jwks.to_string()).await;
        let auth = Authenticator::from_config(&AuthConfig {
            jwks_url: Some(url),
            issuer: Some(IDP_ISSUER.into()),
            audience: Some(IDP_AUDIENCE.into()),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            auth.authenticate(&idp.sign("kid-2026", "p7"))
                .await
                .unwrap()
                .person_id,
            "p7"
        );
        assert!(
            auth.authenticate(&idp.sign("rotated-away", "p7"))
                .await
                .is_err()
        );
    }
}
