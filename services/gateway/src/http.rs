//! What every response goes through: a rate limit per client address, and the
//! headers strangers' browsers and caches need (security policy, ETag and
//! Cache-Control). Also the client address and public base URL as seen through
//! trusted proxies, and the health endpoints.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::Digest;

use crate::AppState;
use crate::error::GatewayError;

/// Longer addresses are refused before any work: no form of ours makes one.
const MAX_URI_BYTES: usize = 2048;

/// Larger bodies are sent without an ETag rather than held to hash them.
const ETAG_MAX_BYTES: usize = 4 * 1024 * 1024;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

pub(crate) struct AddressLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl AddressLimiter {
    pub fn new(per_second: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        })
    }

    /// `Err(seconds to wait)` when `address` is over its share.
    fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }
}

/// The client's address: the peer, or — behind `trusted` proxies that each
/// append to `X-Forwarded-For` — the entry the outermost trusted proxy added.
pub(crate) fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: usize) -> IpAddr {
    if trusted == 0 {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    // The last `trusted` entries were written by our proxies; the one before
    // the first of them is what the outermost proxy saw connect.
    forwarded
        .len()
        .checked_sub(trusted)
        .and_then(|i| forwarded.get(i).copied())
        .unwrap_or(peer)
}

/// Whether the visitor reached the site over HTTPS: the configured public
/// address says so, or a trusted proxy does.
pub(crate) fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.http.public_url.starts_with("https://")
        || (state.config.http.trusted_proxies > 0
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().starts_with(b"https")))
}

/// Sign-in requests per client address per hour (each replica).
pub(crate) struct HourlyLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl HourlyLimiter {
    pub fn new(per_hour: u32) -> Self {
        let per_hour = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_hour(per_hour).allow_burst(per_hour)),
        }
    }

    /// `Err(seconds to wait)` when `address` has asked too often.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }
}

/// The site's address as the visitor sees it, for absolute links.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let configured = state.config.http.public_url.trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    let trusted = state.config.http.trusted_proxies > 0;
    let forwarded = |name: &str| {
        trusted
            .then(|| headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_string())
    };
    let scheme = forwarded("x-forwarded-proto")
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| "http".into());
    let host = forwarded("x-forwarded-host")
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .filter(|h| is_host(h))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

/// A host name or address with an optional port, nothing that could break out
/// of a URL.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

pub(crate) async fn rate_limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if request.uri().to_string().len() > MAX_URI_BYTES {
        let error = GatewayError::bad("url", "is too long");
        return if path.starts_with("/oruk") {
            crate::oruk::error_response(&error)
        } else {
            crate::web::error_page(&state, &error)
        };
    }
    let exempt = path == "/healthz" || path == "/readyz" || path.starts_with("/static/");
    if let (Some(limiter), false) = (&state.limiter, exempt) {
        let address = client_address(
            request.headers(),
            peer.ip(),
            state.config.http.trusted_proxies,
        );
        if let Err(retry_after_secs) = limiter.check(address) {
            let wants_json = path.starts_with("/oruk");
            let error = GatewayError::TooManyRequests { retry_after_secs };
            return if wants_json {
                crate::oruk::error_response(&error)
            } else {
                crate::web::error_page(&state, &error)
            };
        }
    }
    next.run(request).await
}

/// On successful reads an ETag (answered with 304 when the client already has
/// it) and how long it may be kept; HSTS when the site is reached over HTTPS.
pub(crate) async fn cache_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let over_https = over_https(&state, request.headers());
    // What a signed-in person sees is theirs: never kept by a shared cache.
    let personal = crate::sessions::current().is_some();
    let health = matches!(request.uri().path(), "/healthz" | "/readyz");
    let mut response = next.run(request).await;

    // The fixed security headers are layers (`security_headers`); HSTS depends
    // on how the request came.
    if over_https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    // A handler that said how its answer may be kept (a private feed) is
    // taken at its word.
    if response.headers().contains_key(header::CACHE_CONTROL) {
        return response;
    }
    if !is_read || health || personal || response.status() != StatusCode::OK {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    let cache = format!("public, max-age={}", state.config.http.cache_max_age_secs);
    // A page shows who is signed in: the copy a browser kept while signed
    // out must not stand in for the page once they sign in.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if is_page {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Cookie"));
    }
    let size = http_body::Body::size_hint(response.body()).exact();
    if size.is_none_or(|n| n > ETAG_MAX_BYTES as u64) {
        // Streamed or large: cacheable, but not held in memory to hash it.
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cache).expect("ascii"),
        );
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ETAG_MAX_BYTES).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response body failed").into_response();
    };
    let digest = sha2::Sha256::digest(&bytes);
    let etag = format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache).expect("ascii"),
    );
    parts
        .headers
        .insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when listings answers its health check as SERVING.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.listings.ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "listings is not ready\n").into_response()
    }
}

/// The security headers every answer carries, as tower-http layers.
pub(crate) fn security_headers<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use tower_http::set_header::SetResponseHeaderLayer;
    let fixed = [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("geolocation=(), camera=(), microphone=()"),
        ),
    ];
    fixed.into_iter().fold(router, |router, (name, value)| {
        // A page may ask for less to be sent on (the sign-in link's page
        // sends no referrer at all); the rest are always these.
        if name == header::REFERRER_POLICY {
            router.layer(SetResponseHeaderLayer::if_not_present(name, value))
        } else {
            router.layer(SetResponseHeaderLayer::overriding(name, value))
        }
    })
}

/// Whether `If-None-Match: header` matches `etag`: `*`, or any listed tag
/// by the weak comparison RFC 9110 asks for here (`W/"x"` matches `"x"`).
fn none_match(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || opaque(t) == opaque(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "\"abc\"";
        assert!(none_match("\"abc\"", etag));
        assert!(none_match("W/\"abc\"", etag), "a weak tag matches");
        assert!(none_match("\"x\", W/\"abc\"", etag));
        assert!(none_match("*", etag));
        assert!(!none_match("\"abd\"", etag));
        assert!(!none_match("W/\"ab\"", etag));
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_as_far_as_the_trusted_proxies() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let h = forwarded("203.0.113.5, 198.51.100.7");
        // No trusted proxy: the header is whatever the client wrote.
        assert_eq!(client_address(&h, peer, 0), peer);
        // One proxy: it appended the address it saw, the last entry.
        assert_eq!(
            client_address(&h, peer, 1),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Two: the client's own claim before them counts.
        assert_eq!(
            client_address(&h, peer, 2),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Fewer entries than proxies: fall back to the peer.
        assert_eq!(client_address(&h, peer, 3), peer);
        assert_eq!(client_address(&forwarded("nonsense"), peer, 1), peer);
    }

    #[test]
    fn hosts_that_could_break_a_url_are_refused() {
        assert!(is_host("groups.example.org"));
        assert!(is_host("127.0.0.1:8080"));
        assert!(is_host("[::1]:8080"));
        assert!(!is_host("evil.example/\"><script>"));
        assert!(!is_host(""));
    }
}
