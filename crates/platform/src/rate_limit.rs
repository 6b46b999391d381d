//! Rate limits: one per signed-in person, and per peer address for
//! anonymous calls, as a tower layer in front of every service. A call over the
//! limit is answered `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` saying
//! when to try again. Health checks are never limited (orchestrators probe
//! often, from one address).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use crate::config::GrpcConfig;
use selfhelp_core::caller::Caller;

/// Calls between two sweeps of keys that have been quiet long enough to forget.
const SWEEP_EVERY: u64 = 4_096;

/// The limits and the state of every key seen lately.
pub struct RateLimits {
    per_person: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    calls: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    // A burst of two seconds' worth: a page that fires a few calls at once
    // is not refused.
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    /// `grpc.rate_per_person` and `grpc.rate_per_address` (calls per second; 0: no limit).
    pub fn new(cfg: &GrpcConfig) -> RateLimits {
        RateLimits {
            per_person: limiter(cfg.rate_per_person),
            per_address: limiter(cfg.rate_per_address),
            calls: AtomicU64::new(0),
        }
    }

    /// `None` when the call may go ahead; otherwise how long to wait. A
    /// signed-in caller counts as the person; an anonymous one as its address.
    pub fn check(&self, caller: Option<&Caller>, peer: Option<IpAddr>) -> Option<Duration> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(l) = &self.per_person {
                l.retain_recent();
            }
            if let Some(l) = &self.per_address {
                l.retain_recent();
            }
        }
        let refused = match (caller, peer) {
            (Some(caller), _) => self.per_person.as_ref()?.check_key(&caller.person_id),
            (None, Some(ip)) => self.per_address.as_ref()?.check_key(&ip),
            (None, None) => return None,
        };
        refused
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The answer to a call over its share.
fn over_share(wait: Duration) -> Status {
    // Whole milliseconds, at least one: "retry in 0 s" reads like "now".
    let wait = wait.max(Duration::from_millis(1));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("too many calls; retry in {} ms", wait.as_millis().max(1)),
        ErrorDetails::with_retry_info(Some(wait)),
    )
}

#[derive(Clone)]
pub struct RateLimitLayer {
    share: Arc<RateLimits>,
}

impl RateLimitLayer {
    pub fn new(share: Arc<RateLimits>) -> Self {
        RateLimitLayer { share }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            share: self.share.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    share: Arc<RateLimits>,
}

impl<S, B> Service<http::Request<B>> for RateLimited<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let exempt = req.uri().path().starts_with("/grpc.health.v1.Health/");
        if !exempt {
            let peer = req
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr())
                .map(|addr| addr.ip());
            if let Some(wait) = self.share.check(req.extensions().get::<Caller>(), peer) {
                return Box::pin(async move { Ok(over_share(wait).into_http()) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> Caller {
        Caller {
            person_id: id.into(),
            region: "notts".into(),
            roles: vec![],
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn each_person_and_each_anonymous_address_has_its_own_share() {
        let cfg = GrpcConfig {
            rate_per_person: 5,
            rate_per_address: 3,
            ..Default::default()
        };
        let share = RateLimits::new(&cfg);
        let (alice, bob) = (person("alice"), person("bob"));
        let (here, there): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        // Bursts of two seconds' worth, then refused with a wait.
        assert!((0..10).all(|_| share.check(Some(&alice), Some(here)).is_none()));
        let wait = share
            .check(Some(&alice), Some(here))
            .expect("over her share");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        // Others are not held back by her, and signed-in calls do not use up
        // the address's anonymous share.
        assert!(share.check(Some(&bob), Some(here)).is_none());
        assert!((0..6).all(|_| share.check(None, Some(here)).is_none()));
        assert!(share.check(None, Some(here)).is_some());
        assert!(share.check(None, Some(there)).is_none());
    }

    #[test]
    fn zero_means_no_limit() {
        let cfg = GrpcConfig {
            rate_per_person: 0,
            rate_per_address: 0,
            ..Default::default()
        };
        let share = RateLimits::new(&cfg);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| share.check(Some(&person("a")), Some(ip)).is_none()));
        assert!((0..10_000).all(|_| share.check(None, Some(ip)).is_none()));
    }

    #[test]
    fn the_answer_carries_a_retry_hint() {
        let status = over_share(Duration::from_millis(120));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(120)));
    }
}
