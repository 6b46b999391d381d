//! Staff sign in through the region's own identity provider: OpenID Connect,
//! the authorization code flow with PKCE and a nonce (`openidconnect`). The
//! provider's userinfo answer says, through the configured claim, whether
//! someone is an operator of this region; anyone else it signs in is an
//! ordinary person here. A sign-in begun is kept in the database (its state's
//! digest, the PKCE verifier, the nonce), so the replica the provider sends
//! the person back to may be another than the one they left from.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use selfhelp_core::caller::ROLE_OPERATOR;
use selfhelp_core::time::Clock;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::StaffConfig;
use crate::signin::safe_next;
use crate::store::{self, account, staff_sign_in};

/// A client of the provider as its discovery document describes it.
type StaffClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long the provider's discovery document (and keys) are kept before
/// they are read again.
const DISCOVERY_KEPT_FOR: Duration = Duration::from_secs(3_600);
/// How long a sign-in begun waits for the provider.
const BEGUN_VALID_MS: i64 = 10 * 60_000;

/// Every claim of the userinfo answer beyond the standard ones.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

/// Someone the provider signed in.
pub struct StaffSignedIn {
    pub person_id: String,
    pub roles: Vec<String>,
    pub next_path: String,
}

/// Why a return from the provider signs no one in.
#[derive(Debug, thiserror::Error)]
pub enum StaffRefused {
    /// No sign-in begun here matches (used, expired or forged).
    #[error("this sign-in has expired or was used already")]
    Unknown,
    /// The provider said no (the person declined, or it refused the client).
    #[error("the identity provider did not sign you in: {0}")]
    Declined(String),
    /// The provider or its answer failed a check (logged; told plainly).
    #[error("{0}")]
    Failed(String),
}

pub struct Staff {
    cfg: StaffConfig,
    db: DatabaseConnection,
    clock: Clock,
    http: reqwest::Client,
    discovered: RwLock<Option<(Instant, StaffClient)>>,
}

impl Staff {
    pub fn new(cfg: StaffConfig, db: DatabaseConnection, clock: Clock) -> anyhow::Result<Staff> {
        let http = reqwest::Client::builder()
            // A provider's redirect must not lead the gateway elsewhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Staff {
            cfg,
            db,
            clock,
            http,
            discovered: RwLock::new(None),
        })
    }

    /// The provider's client, from its discovery document (read again after
    /// an hour, or when `refresh`).
    async fn client(&self, redirect: &str, refresh: bool) -> Result<StaffClient, StaffRefused> {
        if !refresh
            && let Some((at, client)) = self.discovered.read().await.as_ref()
            && at.elapsed() < DISCOVERY_KEPT_FOR
        {
            return Ok(client.clone().set_redirect_uri(redirect_url(redirect)?));
        }
        let issuer = IssuerUrl::new(self.cfg.issuer_url.trim().to_string())
            .map_err(|e| StaffRefused::Failed(format!("staff.issuer_url: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                StaffRefused::Failed(format!("reading the provider's discovery document: {e}"))
            })?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            Some(ClientSecret::new(self.cfg.client_secret.clone())),
        );
        *self.discovered.write().await = Some((Instant::now(), client.clone()));
        Ok(client.set_redirect_uri(redirect_url(redirect)?))
    }

    /// Begins a sign-in: the provider's address to send the person to, with
    /// a fresh state, nonce and PKCE challenge (kept here to check the
    /// return). `redirect` is this site's callback address.
    pub async fn begin(&self, redirect: &str, next: &str) -> Result<String, StaffRefused> {
        let client = self.client(redirect, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.cfg.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        staff_sign_in::insert(
            &self.db,
            staff_sign_in::Model {
                state_digest: store::digest(state.secret()),
                pkce_verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
                next_path: safe_next(next).to_string(),
                expires_at_ms: self.clock.now_ms() + BEGUN_VALID_MS,
            },
        )
        .await
        .map_err(|e| StaffRefused::Failed(format!("keeping the sign-in begun: {e}")))?;
        Ok(url.to_string())
    }

    /// Finishes a sign-in the provider sent back with `code` and `state`:
    /// the code exchanged (with the PKCE verifier), the ID token checked
    /// (signature, issuer, audience, nonce), the claims read; the person is
    /// found or made by the provider's subject.
    pub async fn finish(
        &self,
        redirect: &str,
        code: &str,
        state: &str,
    ) -> Result<StaffSignedIn, StaffRefused> {
        let begun = staff_sign_in::take(&self.db, &store::digest(state))
            .await
            .map_err(|e| StaffRefused::Failed(format!("reading the sign-in begun: {e}")))?
            .filter(|b| b.expires_at_ms > self.clock.now_ms())
            .ok_or(StaffRefused::Unknown)?;
        let client = self.client(redirect, false).await?;
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| StaffRefused::Failed(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(begun.pkce_verifier.clone()));
        let tokens = exchange
            .request_async(&self.http)
            .await
            .map_err(|e| StaffRefused::Failed(format!("exchanging the code: {e}")))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| StaffRefused::Failed("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(begun.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(_) => {
                // Perhaps a key the provider has rotated in: read its keys again.
                let fresh = self.client(redirect, true).await?;
                id_token
                    .claims(&fresh.id_token_verifier(), &nonce)
                    .map_err(|e| StaffRefused::Failed(format!("the ID token: {e}")))?
                    .clone()
            }
        };
        let subject = claims.subject().clone();
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = client
            .user_info(tokens.access_token().clone(), Some(subject.clone()))
            .map_err(|e| {
                StaffRefused::Failed(format!("the provider has no userinfo endpoint: {e}"))
            })?
            .request_async(&self.http)
            .await
            .map_err(|e| StaffRefused::Failed(format!("reading userinfo: {e}")))?;
        let operator = self.says_operator(info.additional_claims());
        let external = format!("{}|{}", claims.issuer().as_str(), subject.as_str());
        let person_id = self
            .person_for(&external)
            .await
            .map_err(|e| StaffRefused::Failed(format!("the account: {e}")))?;
        Ok(StaffSignedIn {
            person_id,
            roles: if operator {
                vec![ROLE_OPERATOR.to_string()]
            } else {
                Vec::new()
            },
            next_path: begun.next_path,
        })
    }

    /// Whether the configured claim holds one of the operator values (a
    /// list of strings, or one string).
    fn says_operator(&self, claims: &OtherClaims) -> bool {
        let wanted = &self.cfg.operator_values;
        match claims.claims.get(&self.cfg.operator_claim) {
            Some(serde_json::Value::Array(values)) => values
                .iter()
                .filter_map(|v| v.as_str())
                .any(|v| wanted.iter().any(|w| w == v)),
            Some(serde_json::Value::String(v)) => wanted.iter().any(|w| w == v),
            _ => false,
        }
    }

    /// The person the provider's subject is, made at their first sign-in.
    async fn person_for(&self, external: &str) -> Result<String, sea_orm::DbErr> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        let person = match account::by_external_subject(&txn, external).await? {
            Some(a) => {
                account::signed_in(&txn, &a.person_id, now).await?;
                a.person_id
            }
            None => {
                let person_id = uuid::Uuid::now_v7().to_string();
                account::insert(
                    &txn,
                    account::Model {
                        person_id: person_id.clone(),
                        email: None,
                        external_subject: Some(external.to_string()),
                        created_at_ms: now,
                        last_sign_in_at_ms: now,
                    },
                )
                .await?;
                person_id
            }
        };
        txn.commit().await?;
        Ok(person)
    }

    /// Forgets sign-ins begun and never finished.
    pub async fn forget_expired(&self) -> Result<u64, sea_orm::DbErr> {
        staff_sign_in::delete_expired(&self.db, self.clock.now_ms()).await
    }
}

fn redirect_url(url: &str) -> Result<RedirectUrl, StaffRefused> {
    RedirectUrl::new(url.to_string())
        .map_err(|e| StaffRefused::Failed(format!("the callback address {url}: {e}")))
}
