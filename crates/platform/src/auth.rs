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

use crate::config::{AuthConfig, TrustedIssuer};
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

/// Asymmetric keys from an identity provider (or the gateway's, which
/// publishes its own JWKS for the tokens it mints for signed-in people).
struct Jwks {
    set: RwLock<JwkSet>,
    url: Option<String>,
    /// When the set was last fetched, and last tried.
    fetched: RwLock<(Option<Instant>, Option<Instant>)>,
    http: reqwest::Client,
    /// What its tokens must say of who issued them and for whom.
    issuer: String,
    audience: String,
}

/// Verifies bearer tokens. Cheap to share behind an `Arc`.
pub struct Authenticator {
    /// Development tokens (`selfhelp token`, `selfhelp up`).
    hs256: Option<DecodingKey>,
    /// Every issuer trusted: `auth.jwks_*` first, then `auth.also_trust`. A
    /// token's key id names the set (and so the issuer) it is checked with.
    jwks: Vec<Jwks>,
    /// Checked on development tokens when they carry them.
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

/// A key-id miss refetches the JWKS at most this often once it has been
/// fetched, and a failed fetch is tried again after [`JWKS_RETRY_INTERVAL`]
/// (a provider that started after this service is found quickly).
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const JWKS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Authenticator {
    /// HS256 development tokens when a secret is configured, and tokens signed
    /// by the keys of a JWKS (file or URL) when one is: either or both.
    pub async fn from_config(cfg: &AuthConfig) -> Result<Arc<Self>, AuthError> {
        let hs256 = resolve_secret(cfg)?.map(|secret| DecodingKey::from_secret(secret.as_bytes()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AuthError::Fetch(e.to_string()))?;
        let primary = TrustedIssuer {
            jwks_file: cfg.jwks_file.clone(),
            jwks_url: cfg.jwks_url.clone(),
            issuer: cfg.issuer.clone().unwrap_or_default(),
            audience: cfg.audience.clone().unwrap_or_default(),
        };
        let mut jwks = Vec::new();
        for trusted in std::iter::once(&primary).chain(&cfg.also_trust) {
            if trusted.jwks_file.is_some() || trusted.jwks_url.is_some() {
                jwks.push(Jwks::load(trusted, http.clone()).await?);
            }
        }
        if hs256.is_none() && jwks.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        Ok(Arc::new(Self {
            hs256,
            jwks,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
        }))
    }

    /// Verifies `token` and returns who it speaks for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let claims = if header.alg == Algorithm::HS256 {
            let key = self.hs256.as_ref().ok_or_else(|| {
                AuthError::InvalidToken("development (HS256) tokens are not accepted here".into())
            })?;
            // A development token: issuer and audience are checked when it
            // carries them (`selfhelp token` writes none).
            decode(
                token,
                key,
                Algorithm::HS256,
                self.issuer.as_deref(),
                self.audience.as_deref(),
                false,
            )?
        } else {
            if self.jwks.is_empty() || !JWKS_ALGORITHMS.contains(&header.alg) {
                return Err(AuthError::InvalidToken(format!(
                    "algorithm {:?} not accepted",
                    header.alg
                )));
            }
            let kid = header.kid.as_deref();
            let (jwks, key) = match self.find_jwk(kid).await? {
                Some(found) => found,
                None => {
                    // An unknown key: a rotation, or an issuer that started
                    // after us. Each set is fetched again (at most so often).
                    let mut failure = None;
                    for jwks in &self.jwks {
                        if let Err(e) = refresh_jwks(jwks).await {
                            failure = Some(e);
                        }
                    }
                    match self.find_jwk(kid).await? {
                        Some(found) => found,
                        None => {
                            return Err(failure.unwrap_or_else(|| {
                                AuthError::InvalidToken("unknown key id".into())
                            }));
                        }
                    }
                }
            };
            decode(
                token,
                &key,
                header.alg,
                Some(&jwks.issuer),
                Some(&jwks.audience),
                true,
            )?
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

    /// The trusted set holding the key `kid` names, and the key.
    async fn find_jwk(&self, kid: Option<&str>) -> Result<Option<(&Jwks, DecodingKey)>, AuthError> {
        for jwks in &self.jwks {
            if let Some(key) = find_jwk(jwks, kid).await? {
                return Ok(Some((jwks, key)));
            }
        }
        Ok(None)
    }
}

impl Jwks {
    /// The set of `trusted` (its file, and its URL fetched now if it
    /// answers), which must name the issuer and audience of its tokens.
    async fn load(trusted: &TrustedIssuer, http: reqwest::Client) -> Result<Jwks, AuthError> {
        // Without both, a token the provider issued to another application
        // (or for another region's deployment) would be taken as ours.
        if trusted.issuer.trim().is_empty() || trusted.audience.trim().is_empty() {
            return Err(AuthError::IssuerAndAudienceRequired);
        }
        let set = match &trusted.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
                    what: path.display().to_string(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|e| AuthError::Jwks(e.to_string()))?
            }
            None => JwkSet { keys: Vec::new() },
        };
        let jwks = Jwks {
            set: RwLock::new(set),
            url: trusted.jwks_url.clone(),
            fetched: RwLock::new((None, None)),
            http,
            issuer: trusted.issuer.clone(),
            audience: trusted.audience.clone(),
        };
        if jwks.url.is_some() {
            // Fail fast on a wrong URL, but a provider that is briefly down must not
            // stop the service from starting: misses refetch later.
            if let Err(e) = refresh_jwks(&jwks).await {
                tracing::warn!(error = %e, issuer = %jwks.issuer, "JWKS not fetched at start-up; will retry on first use");
            }
        }
        Ok(jwks)
    }
}

/// `strict`: `issuer` and `audience` (when given) must be present, not merely
/// match when present.
fn decode(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    issuer: Option<&str>,
    audience: Option<&str>,
    strict: bool,
) -> Result<Claims, AuthError> {
    let mut validation = Validation::new(alg);
    let mut required = vec!["exp", "sub"];
    if strict && issuer.is_some() {
        required.push("iss");
    }
    if strict && audience.is_some() {
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation.leeway = 30;
    validation.validate_nbf = true;
    match issuer {
        Some(iss) => validation.set_issuer(&[iss]),
        None => validation.iss = None,
    }
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| AuthError::InvalidToken(e.to_string()))
}

async fn find_jwk(jwks: &Jwks, kid: Option<&str>) -> Result<Option<DecodingKey>, AuthError> {
    let set = jwks.set.read().await;
    let jwk = match kid {
        Some(kid) => set.find(kid),
        // Without a key id, only an unambiguous set can be used.
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    jwk.map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Jwks(e.to_string())))
        .transpose()
}

async fn refresh_jwks(jwks: &Jwks) -> Result<(), AuthError> {
    let Some(url) = &jwks.url else {
        return Ok(());
    };
    {
        let mut fetched = jwks.fetched.write().await;
        let (succeeded, tried) = *fetched;
        let recent = |at: Option<Instant>, within| at.is_some_and(|at| at.elapsed() < within);
        if recent(succeeded, JWKS_REFETCH_INTERVAL) || recent(tried, JWKS_RETRY_INTERVAL) {
            return Ok(());
        }
        fetched.1 = Some(Instant::now());
    }
    let fetched: JwkSet = jwks
        .http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| AuthError::Fetch(e.to_string()))?
        .json()
        .await
        .map_err(|e| AuthError::Jwks(e.to_string()))?;
    *jwks.set.write().await = fetched;
    jwks.fetched.write().await.0 = Some(Instant::now());
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
        // A development token names no issuer or audience (`selfhelp token`):
        // HS256's shared secret is all that vouches for it. (Tokens from a
        // JWKS must name both: `tokens_of_both_kinds_side_by_side`.)
        assert!(auth.authenticate(&sign(None, None)).await.is_ok());
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

    /// `selfhelp up`: development tokens (HS256) beside the gateway's signed
    /// ones (ES256 from its JWKS), each checked by its own rules.
    #[tokio::test]
    async fn tokens_of_both_kinds_side_by_side() {
        let idp = IdentityProvider::new("gw-1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, idp.jwks.to_string()).unwrap();
        let auth = Authenticator::from_config(&AuthConfig {
            hs256_secret: Some(TEST_SECRET.clone()),
            jwks_file: Some(path),
            issuer: Some(IDP_ISSUER.into()),
            audience: Some(IDP_AUDIENCE.into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let hs = mint_hs256(&TEST_SECRET, "dev", "notts", &[], Duration::from_secs(60)).unwrap();
        assert_eq!(auth.authenticate(&hs).await.unwrap().person_id, "dev");
        assert_eq!(
            auth.authenticate(&idp.sign("gw-1", "p1"))
                .await
                .unwrap()
                .person_id,
            "p1"
        );
        // An ES256 token must name the issuer and the audience.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("gw-1".into());
        let bare = Claims {
            sub: "p1".into(),
            region: "notts".into(),
            roles: vec![],
            exp: chrono::Utc::now().timestamp() + 60,
            iss: None,
            aud: None,
        };
        let bare = jsonwebtoken::encode(&header, &bare, &idp.key).unwrap();
        assert!(auth.authenticate(&bare).await.is_err());
    }

    /// A deployment trusting the gateway (the website's tokens) and the
    /// region's identity provider (staff tools): each token is checked with
    /// the keys, issuer and audience of the one whose key signed it.
    #[tokio::test]
    async fn two_issuers_each_with_its_own_rules() {
        let gateway = IdentityProvider::new("gw-1");
        let idp = IdentityProvider::new("idp-1");
        let dir = tempfile::tempdir().unwrap();
        let (gw_path, idp_path) = (dir.path().join("gw.json"), dir.path().join("idp.json"));
        std::fs::write(&gw_path, gateway.jwks.to_string()).unwrap();
        std::fs::write(&idp_path, idp.jwks.to_string()).unwrap();
        let auth = Authenticator::from_config(&AuthConfig {
            jwks_file: Some(gw_path),
            issuer: Some("selfhelp-gateway".into()),
            audience: Some("selfhelp".into()),
            also_trust: vec![TrustedIssuer {
                jwks_file: Some(idp_path),
                issuer: IDP_ISSUER.into(),
                audience: IDP_AUDIENCE.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
        let token = |signer: &IdentityProvider, kid: &str, iss: &str, aud: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            let claims = Claims {
                sub: "p1".into(),
                region: "notts".into(),
                roles: vec![],
                exp: chrono::Utc::now().timestamp() + 60,
                iss: Some(iss.into()),
                aud: Some(aud.into()),
            };
            jsonwebtoken::encode(&header, &claims, &signer.key).unwrap()
        };
        let ok = |t: String| {
            let auth = auth.clone();
            async move { auth.authenticate(&t).await.is_ok() }
        };
        assert!(ok(token(&gateway, "gw-1", "selfhelp-gateway", "selfhelp")).await);
        assert!(ok(token(&idp, "idp-1", IDP_ISSUER, IDP_AUDIENCE)).await);
        // One issuer's key cannot speak with the other's name or audience.
        assert!(!ok(token(&gateway, "gw-1", IDP_ISSUER, IDP_AUDIENCE)).await);
        assert!(!ok(token(&idp, "idp-1", "selfhelp-gateway", "selfhelp")).await);
        // Nor sign as the other's key.
        assert!(!ok(token(&idp, "gw-1", "selfhelp-gateway", "selfhelp")).await);
        // An issuer without its audience is refused at the start.
        let refused = Authenticator::from_config(&AuthConfig {
            hs256_secret: Some(TEST_SECRET.clone()),
            also_trust: vec![TrustedIssuer {
                jwks_url: Some("http://127.0.0.1:9/jwks.json".into()),
                issuer: IDP_ISSUER.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
        assert!(matches!(refused, Err(AuthError::IssuerAndAudienceRequired)));
    }
}
