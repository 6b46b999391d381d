//! Webhooks: Standard Webhooks signatures, and a client that only reaches
//! public addresses (unless the operator allows private ones for tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::WebhookConfig;

const SECRET_PREFIX: &str = "whsec_";

/// A fresh signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value for a message (`v1,` + base64 of
/// HMAC-SHA256 over `id.timestamp.body`), by the Standard Webhooks library
/// itself, so what receivers verify with it is what we sign.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    standardwebhooks::Webhook::new(secret)
        .and_then(|hook| hook.sign(msg_id, timestamp, body))
        .map_err(|e| format!("cannot sign with this webhook secret: {e}"))
}

/// Whether `ip` is an ordinary address on the public internet: none of the
/// IANA special-purpose ranges (loopback, private, link-local, shared, protocol
/// assignments, documentation, benchmarking, relays, translation, multicast,
/// reserved), which could lead to a host inside the deployment.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0 // "this network"
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            let [s0, s1, s2, ..] = v6.segments();
            // IPv4 inside IPv6 (mapped ::ffff:0:0/96, compatible ::/96) and the
            // translation and tunnel prefixes may lead anywhere: refused whole.
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.to_ipv4().is_some()
                || v6.is_unique_local() // fc00::/7
                || v6.is_unicast_link_local() // fe80::/10
                || (s0 & 0xffc0) == 0xfec0 // site-local, fec0::/10
                || v6.is_multicast()
                || (s0 == 0x64 && s1 == 0xff9b) // NAT64, 64:ff9b::/96 and 64:ff9b:1::/48
                || (s0 == 0x100 && s1 == 0 && s2 == 0) // discard-only, 100::/64
                || (s0 == 0x2001 && s1 < 0x200) // IETF protocol assignments (Teredo…), 2001::/23
                || (s0 == 0x2001 && s1 == 0xdb8) // documentation
                || s0 == 0x2002 // 6to4
                || (s0 & 0xfff0) == 0x3ff0 // documentation, 3fff::/20
                || s0 == 0x5f00) // segment routing
        }
    }
}

/// Checks an endpoint URL when it is registered and before each call; the
/// reason when refused. Unless `allow_private`, only https on `ports`.
pub fn check_url(url: &str, allow_private: bool, ports: &[u16]) -> Result<Url, &'static str> {
    let parsed = Url::parse(url).map_err(|_| "must be an absolute URL")?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("must start with https://"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry a user name or password");
    }
    let host = parsed.host_str().ok_or("must name a host")?;
    if !allow_private
        && !parsed
            .port_or_known_default()
            .is_some_and(|port| ports.contains(&port))
    {
        return Err("must use an allowed port (443 unless the operator allows others)");
    }
    if !allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>()
            && !is_public(ip)
        {
            return Err("must not point at a private or loopback address");
        }
        if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
            return Err("must not point at a private or loopback address");
        }
    }
    Ok(parsed)
}

/// Resolves names like the system does, then refuses private answers: checked
/// at connection time, so a name cannot be re-pointed inside after registering.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// How one POST went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// 2xx.
    Accepted,
    /// 410: the receiver says the endpoint is gone for good.
    Gone,
    /// Anything else: try again later.
    Failed(String),
    /// Not sent: the owner's endpoints already have their share of calls in
    /// flight. Try again in a moment.
    Busy,
}

pub struct WebhookSender {
    client: reqwest::Client,
    allow_private: bool,
    ports: Vec<u16>,
    /// Calls in flight per owner, up to `per_owner`.
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    per_owner: usize,
}

/// One call's place in its owner's share; given back when dropped.
struct Slot {
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    owner: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().expect("webhook slots");
        if let Some(n) = in_flight.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.owner);
            }
        }
    }
}

impl WebhookSender {
    pub fn new(cfg: &WebhookConfig) -> anyhow::Result<WebhookSender> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            // A redirect could lead anywhere, an internal address included;
            // a proxy would resolve names itself, past the guard below.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!(
                "selfhelp-notifications/",
                env!("CARGO_PKG_VERSION")
            ));
        if !cfg.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(WebhookSender {
            client: builder.build()?,
            allow_private: cfg.allow_private_addresses,
            ports: cfg.allowed_ports.clone(),
            in_flight: Default::default(),
            per_owner: cfg.max_in_flight_per_owner,
        })
    }

    fn take_slot(&self, owner: &str) -> Option<Slot> {
        let mut in_flight = self.in_flight.lock().expect("webhook slots");
        let n = in_flight.entry(owner.to_string()).or_default();
        if *n >= self.per_owner {
            return None;
        }
        *n += 1;
        Some(Slot {
            in_flight: self.in_flight.clone(),
            owner: owner.to_string(),
        })
    }

    /// POSTs `body` to `owner`'s endpoint `url`, signed with `secret` as
    /// message `msg_id`.
    pub async fn post(
        &self,
        owner: &str,
        url: &str,
        secret: &str,
        msg_id: &str,
        timestamp: i64,
        body: Vec<u8>,
    ) -> Posted {
        if let Err(why) = check_url(url, self.allow_private, &self.ports) {
            return Posted::Failed(format!("endpoint {why}"));
        }
        let Some(_slot) = self.take_slot(owner) else {
            return Posted::Busy;
        };
        let signature = match sign(secret, msg_id, timestamp, &body) {
            Ok(s) => s,
            Err(e) => return Posted::Failed(e),
        };
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Posted::Accepted,
            Ok(r) if r.status() == reqwest::StatusCode::GONE => Posted::Gone,
            Ok(r) => Posted::Failed(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Posted::Failed(describe(&e)),
        }
    }
}

/// What went wrong, in words that tell the owner what to look at but nothing
/// about the network behind the endpoint (refused, reset, no route: all "could
/// not connect"), so the error a person reads is no port scanner. The causes
/// go to the log, without the URL (its query may hold a token of the
/// receiver's).
fn describe(e: &reqwest::Error) -> String {
    let mut causes = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push_str(": ");
        causes.push_str(&s.to_string());
        source = s.source();
    }
    tracing::info!(causes = %causes, "webhook call failed");
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://192.168.0.1/hook",
            "https://169.254.169.254/latest",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://100.64.0.1/hook",
            "https://198.18.0.1/hook",
            "https://[64:ff9b::a00:1]/hook",
            "https://[2002:a00:1::1]/hook",
            "https://[::10.0.0.1]/hook",
            "https://localhost/hook",
            "https://192.0.0.8/hook",
            "https://192.88.99.1/hook",
            "https://0.1.2.3/hook",
            "https://[::ffff:93.184.215.14]/hook",
            "https://[fec0::1]/hook",
            "https://[100::1]/hook",
            "https://[2001::1]/hook",
            "https://[2001:db8::1]/hook",
            "https://[3fff::1]/hook",
            "https://[64:ff9b:1::a00:1]/hook",
            "https://[ff02::1]/hook",
        ] {
            assert!(check_url(url, false, &[443]).is_err(), "{url}");
            assert!(check_url(url, true, &[443]).is_ok(), "{url}");
        }
        let check = |url: &str| check_url(url, false, &[443]);
        assert!(check("https://93.184.215.14/hook").is_ok());
        assert!(check("https://hooks.example.org/x").is_ok());
        assert!(check("https://hooks.example.org:443/x").is_ok());
        assert!(check("http://hooks.example.org/x").is_err());
        assert!(check("https://user:pw@hooks.example.org/x").is_err());
        assert!(check_url("not a url", true, &[443]).is_err());
        // Other ports only when the operator allows them.
        assert!(check("https://hooks.example.org:22/x").is_err());
        assert!(check("https://hooks.example.org:8443/x").is_err());
        assert!(check_url("https://hooks.example.org:8443/x", false, &[443, 8443]).is_ok());
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
