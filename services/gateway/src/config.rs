//! Gateway configuration: defaults, then a TOML file, then `SELFHELP_*`
//! environment variables (`SELFHELP_LISTINGS_URL`, `SELFHELP_HTTP__LISTEN`, …),
//! checked once at load so a bad value stops the start with its key named.

use selfhelp_core::validation::Violations;
use selfhelp_platform::config::{
    Checked, ClientTlsConfig, CommonConfig, ConsumerConfig, DatabaseConfig, LogConfig,
    MetricsConfig, NatsConfig, OutboxConfig, TracesConfig, WorkersConfig, at_least,
};
pub use selfhelp_platform::email::EmailConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: HttpConfig,
    /// The listings service's gRPC address.
    pub listings_url: String,
    /// Deadline of each call to listings.
    pub listings_timeout_ms: u64,
    /// For an `https://` listings address: the CA that signs its certificate,
    /// and the gateway's own certificate when listings asks for one.
    pub listings_tls: ClientTlsConfig,
    /// Shown in page titles and headings, e.g. "Nottinghamshire".
    pub area_name: String,
    pub log: LogConfig,
    /// Prometheus metrics (`GET /metrics` on `metrics.listen`; empty: none).
    pub metrics: MetricsConfig,
    /// OpenTelemetry spans, one per request (`traces.otlp_endpoint`).
    pub traces: TracesConfig,
    /// The region this gateway signs people in for (the `region` of the
    /// tokens it gives the services).
    pub region: String,
    /// The region's time zone (IANA name): times on people's own pages (rota
    /// turns, notifications) read in it.
    pub timezone: String,
    /// Where sign-in state lives (people's sign-in addresses, sign-in links,
    /// sessions, the region's signing keys): SQLite by default, PostgreSQL
    /// shared by every replica in production (ADR 27).
    pub database: DatabaseConfig,
    /// How sign-in links are sent.
    pub email: EmailConfig,
    pub sign_in: SignInConfig,
    /// Visitors writing to a group's organisers from its page.
    pub contact: PublicFormConfig,
    /// Visitors reporting a problem with a listing, or telling staff about a
    /// group (`requests_per_client_per_hour`, counted apart from messages to
    /// organisers).
    pub reports: PublicFormConfig,
    /// Invitations organisers and staff send by email
    /// (`requests_per_client_per_hour`).
    pub invitations: PublicFormConfig,
    /// Staff signing in through the region's identity provider.
    pub staff: StaffConfig,
    pub sessions: SessionConfig,
    pub tokens: TokenConfig,
    /// The membership and notifications services, which the gateway calls as
    /// the signed-in person.
    pub membership_url: String,
    pub notifications_url: String,
    /// NATS, for the one event the gateway takes part in: erasure. It forgets
    /// a person's sign-in address and sessions when membership asks every
    /// service to, and confirms it. Empty `nats.url`: no eventing (a gateway
    /// for the public directory only; membership must then not wait for
    /// the gateway's confirmation, see `privacy.expected_services`).
    pub nats: NatsConfig,
    pub outbox: OutboxConfig,
    pub consumer: ConsumerConfig,
    pub workers: WorkersConfig,
}

/// Signing in by a link sent by email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SignInConfig {
    /// How long a link (and its code) can be used, once.
    pub link_valid_minutes: u64,
    /// Links one address may be sent in an hour.
    pub links_per_address_per_hour: u64,
    /// Sign-in requests one client address may make in an hour (each replica).
    pub requests_per_client_per_hour: u32,
    /// Wrong codes before a link is spent.
    pub code_attempts: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicFormConfig {
    /// Messages one client address may send in an hour (each replica). For
    /// messages to organisers, notifications also caps each group; for
    /// reports, listings caps the reports waiting in the region.
    pub requests_per_client_per_hour: u32,
}

impl Default for PublicFormConfig {
    fn default() -> Self {
        Self {
            requests_per_client_per_hour: 5,
        }
    }
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            link_valid_minutes: 15,
            links_per_address_per_hour: 5,
            requests_per_client_per_hour: 30,
            code_attempts: 5,
        }
    }
}

/// Staff sign in through the region's own identity provider (OpenID
/// Connect, authorization code with PKCE); people do not. Which of the
/// provider's claims make someone an operator of this region is set here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StaffConfig {
    /// The provider's issuer URL (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`); empty: no staff sign-in.
    pub issuer_url: String,
    pub client_id: String,
    /// `SELFHELP_STAFF__CLIENT_SECRET_FILE` reads it from a file.
    pub client_secret: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim (from the provider's userinfo answer) that lists a person's
    /// groups or roles, e.g. `groups` or `roles`.
    pub operator_claim: String,
    /// Values of that claim that make someone an operator of this region;
    /// anyone else the provider signs in is an ordinary person here.
    pub operator_values: Vec<String>,
}

impl Default for StaffConfig {
    fn default() -> Self {
        Self {
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: vec!["email".into(), "groups".into()],
            operator_claim: "groups".into(),
            operator_values: Vec::new(),
        }
    }
}

impl StaffConfig {
    pub fn enabled(&self) -> bool {
        !self.issuer_url.trim().is_empty()
    }
}

/// How long people stay signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// A session unused this long ends.
    pub idle_hours: u64,
    /// A session ends this long after sign-in, however used.
    pub absolute_hours: u64,
    /// The same for staff signed in through the region's identity provider.
    pub staff_idle_hours: u64,
    pub staff_absolute_hours: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_hours: 24 * 7,
            absolute_hours: 24 * 30,
            staff_idle_hours: 8,
            staff_absolute_hours: 12,
        }
    }
}

/// The tokens the gateway gives the services on a signed-in person's behalf:
/// ES256, signed by the region's keys (kept in the database, rotated), which
/// it publishes at `/.well-known/jwks.json` for the services to trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// The `iss` of the tokens: what the services' `auth.issuer` is set to.
    pub issuer: String,
    /// The `aud` of the tokens: what the services' `auth.audience` is set to.
    pub audience: String,
    /// How long a token lives.
    pub ttl_secs: u64,
    /// How long a key signs before a new one takes over.
    pub rotate_after_days: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: "selfhelp-gateway".into(),
            audience: "selfhelp".into(),
            ttl_secs: 300,
            rotate_after_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    pub listen: String,
    /// The address people reach the site at (`https://groups.example.org`), used
    /// in calendar links, the sitemap and page metadata. Empty: worked out from
    /// each request's `Host` (and forwarded headers from trusted proxies).
    pub public_url: String,
    /// How many proxies in front of the gateway append to `X-Forwarded-For`
    /// (0: none, the peer address is the client; 1: one TLS proxy; …). Only
    /// then are `X-Forwarded-For`, `-Proto` and `-Host` believed.
    pub trusted_proxies: usize,
    /// Requests per second per client address (with a burst of twice that);
    /// 0 turns the limit off.
    pub rate_limit_per_second: u32,
    /// How long browsers and caches may keep a page or an API response.
    pub cache_max_age_secs: u64,
    /// Time to finish requests in flight after a stop signal.
    pub shutdown_grace_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_url: String::new(),
            trusted_proxies: 0,
            rate_limit_per_second: 20,
            cache_max_age_secs: 60,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            listings_url: "http://127.0.0.1:50051".into(),
            listings_timeout_ms: 5_000,
            listings_tls: ClientTlsConfig::default(),
            area_name: "your area".into(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            traces: TracesConfig::default(),
            region: "notts".into(),
            timezone: "Europe/London".into(),
            database: DatabaseConfig {
                url: "sqlite://gateway.db?mode=rwc".into(),
                ..Default::default()
            },
            email: EmailConfig::default(),
            sign_in: SignInConfig::default(),
            contact: PublicFormConfig::default(),
            reports: PublicFormConfig::default(),
            invitations: PublicFormConfig {
                requests_per_client_per_hour: 20,
            },
            staff: StaffConfig::default(),
            sessions: SessionConfig::default(),
            tokens: TokenConfig::default(),
            membership_url: "http://127.0.0.1:50052".into(),
            notifications_url: "http://127.0.0.1:50053".into(),
            nats: NatsConfig::default(),
            outbox: OutboxConfig::default(),
            consumer: ConsumerConfig::default(),
            workers: WorkersConfig::default(),
        }
    }
}

/// Every value the gateway cannot run with, each named by its key.
impl Checked for Config {
    fn check(&self, v: &mut Violations) {
        let public = self.http.public_url.trim();
        if !(public.is_empty() || public.starts_with("https://") || public.starts_with("http://")) {
            v.add("http.public_url", "must start with https:// or http://");
        }
        if public.ends_with('/') {
            v.add("http.public_url", "must not end with /");
        }
        if !(self.listings_url.starts_with("http://") || self.listings_url.starts_with("https://"))
        {
            v.add("listings_url", "must be an http:// or https:// address");
        }
        self.listings_tls.check("listings_tls", v);
        // Region, time zone, database and NATS, as the services check them.
        self.eventing().check(v);
        at_least(v, "listings_timeout_ms", self.listings_timeout_ms, 1);
        if self.http.trusted_proxies > 10 {
            v.add("http.trusted_proxies", "must be 10 or fewer");
        }
        if self.area_name.trim().is_empty() || self.area_name.len() > 80 {
            v.add("area_name", "must be 1 to 80 characters");
        }
        for (key, url) in [
            ("membership_url", &self.membership_url),
            ("notifications_url", &self.notifications_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                v.add(key, "must be an http:// or https:// address");
            }
        }
        at_least(
            v,
            "sign_in.link_valid_minutes",
            self.sign_in.link_valid_minutes,
            1,
        );
        if self.staff.enabled() {
            let s = &self.staff;
            if !(s.issuer_url.starts_with("https://") || s.issuer_url.starts_with("http://")) {
                v.add("staff.issuer_url", "must be an https:// address");
            }
            if s.client_id.trim().is_empty() {
                v.add("staff.client_id", "must be set for staff sign-in");
            }
            if s.client_secret.trim().is_empty() {
                v.add("staff.client_secret", "must be set for staff sign-in");
            }
            if s.operator_claim.trim().is_empty() {
                v.add("staff.operator_claim", "must name a claim");
            }
            if s.operator_values.is_empty() {
                v.add(
                    "staff.operator_values",
                    "must list the values that make an operator",
                );
            }
        }
        at_least(
            v,
            "sign_in.links_per_address_per_hour",
            self.sign_in.links_per_address_per_hour,
            1,
        );
        at_least(
            v,
            "sign_in.requests_per_client_per_hour",
            self.sign_in.requests_per_client_per_hour.into(),
            1,
        );
        at_least(
            v,
            "contact.requests_per_client_per_hour",
            self.contact.requests_per_client_per_hour.into(),
            1,
        );
        at_least(
            v,
            "reports.requests_per_client_per_hour",
            self.reports.requests_per_client_per_hour.into(),
            1,
        );
        at_least(
            v,
            "invitations.requests_per_client_per_hour",
            self.invitations.requests_per_client_per_hour.into(),
            1,
        );
        at_least(
            v,
            "sign_in.code_attempts",
            self.sign_in.code_attempts.max(0) as u64,
            1,
        );
        at_least(v, "sessions.idle_hours", self.sessions.idle_hours, 1);
        at_least(
            v,
            "sessions.staff_idle_hours",
            self.sessions.staff_idle_hours,
            1,
        );
        if self.sessions.absolute_hours < self.sessions.idle_hours {
            v.add(
                "sessions.absolute_hours",
                "must be at least sessions.idle_hours",
            );
        }
        if self.sessions.staff_absolute_hours < self.sessions.staff_idle_hours {
            v.add(
                "sessions.staff_absolute_hours",
                "must be at least sessions.staff_idle_hours",
            );
        }
        if self.tokens.issuer.trim().is_empty() {
            v.add("tokens.issuer", "must not be empty");
        }
        if self.tokens.audience.trim().is_empty() {
            v.add("tokens.audience", "must not be empty");
        }
        at_least(v, "tokens.ttl_secs", self.tokens.ttl_secs, 30);
        if self.tokens.ttl_secs > 3_600 {
            v.add("tokens.ttl_secs", "must be at most 3600");
        }
        at_least(
            v,
            "tokens.rotate_after_days",
            self.tokens.rotate_after_days,
            1,
        );
    }
}

impl Config {
    /// What eventing needs, in the shape the services share.
    pub fn eventing(&self) -> CommonConfig {
        CommonConfig {
            region: self.region.clone(),
            timezone: self.timezone.clone(),
            database: self.database.clone(),
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            consumer: self.consumer.clone(),
            workers: self.workers.clone(),
            log: self.log.clone(),
            metrics: self.metrics.clone(),
            traces: self.traces.clone(),
            ..CommonConfig::default()
        }
    }

    /// What [`Checked::check`] finds, in one message (for callers that build
    /// the configuration themselves, like `selfhelp up`).
    pub fn problems(&self) -> Result<(), String> {
        let mut v = Violations::new();
        self.check(&mut v);
        if v.is_empty() {
            return Ok(());
        }
        Err(v
            .iter()
            .map(|(key, why)| format!("{key} {why}"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}
