//! Gateway configuration: defaults, then a TOML file, then `SELFHELP_*`
//! environment variables (`SELFHELP_LISTINGS_URL`, `SELFHELP_HTTP__LISTEN`, …),
//! checked once at load so a bad value stops the start with its key named.

use selfhelp_core::validation::Violations;
use selfhelp_platform::config::{
    Checked, ClientTlsConfig, LogConfig, MetricsConfig, TracesConfig, at_least,
};
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
        at_least(v, "listings_timeout_ms", self.listings_timeout_ms, 1);
        if self.http.trusted_proxies > 10 {
            v.add("http.trusted_proxies", "must be 10 or fewer");
        }
        if self.area_name.trim().is_empty() || self.area_name.len() > 80 {
            v.add("area_name", "must be 1 to 80 characters");
        }
    }
}

impl Config {
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
