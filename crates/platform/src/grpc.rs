//! gRPC server assembly shared by every service: health (a named readiness entry),
//! reflection, request deadline, load shedding, trace context, authentication and
//! graceful shutdown with a hard deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::Shutdown;
use crate::auth::Authenticator;
use crate::config::GrpcConfig;
use crate::error::ServiceError;
use crate::trace::{self, TraceParent};
use selfhelp_core::caller::Caller;

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Health of one service: its full gRPC name is the readiness entry, and the
/// overall ("") entry follows it. It is SERVING only while every condition holds:
/// eventing (the database, NATS and the streams ready) and each supervised
/// background worker (see [`crate::supervise`]).
#[derive(Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    service_name: &'static str,
    /// Condition name → holds. Starts with eventing, not yet ready.
    conditions: Arc<std::sync::Mutex<std::collections::BTreeMap<String, bool>>>,
    /// Held while a change is published, so two changes at once reach the
    /// health service in the order they were made.
    publishing: Arc<tokio::sync::Mutex<()>>,
}

/// The condition [`Readiness::set`] speaks for.
const EVENTING: &str = "eventing";

impl Readiness {
    pub fn service_name(&self) -> &'static str {
        self.service_name
    }

    /// Eventing is ready (or not).
    pub async fn set(&self, ready: bool) {
        self.set_condition(EVENTING, ready).await;
    }

    /// One named condition of readiness holds (or not); the service serves when all do.
    pub async fn set_condition(&self, name: &str, holds: bool) {
        let _turn = self.publishing.lock().await;
        let serving = {
            let mut conditions = self.conditions.lock().expect("readiness lock");
            conditions.insert(name.to_string(), holds);
            conditions.values().all(|ok| *ok)
        };
        crate::metrics::metrics().ready(self.service_name, serving);
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter
            .set_service_status(self.service_name, status)
            .await;
        self.reporter.set_service_status("", status).await;
    }

    /// What the health service says now.
    pub fn is_serving(&self) -> bool {
        let conditions = self.conditions.lock().expect("readiness lock");
        conditions.values().all(|ok| *ok)
    }

    /// The conditions that do not hold, by name (for logs and tests).
    pub fn failing(&self) -> Vec<String> {
        let conditions = self.conditions.lock().expect("readiness lock");
        conditions
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The services a server will expose, starting with health; a service adds its own.
pub struct ServerParts {
    pub readiness: Readiness,
    routes: tonic::service::RoutesBuilder,
}

impl ServerParts {
    pub fn add_service<S>(&mut self, svc: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(svc);
        self
    }
}

/// Creates the health service for `service_name`, NOT_SERVING until told otherwise.
pub async fn health(service_name: &'static str) -> ServerParts {
    let (reporter, health) = tonic_health::server::health_reporter();
    let readiness = Readiness {
        reporter,
        service_name,
        conditions: Default::default(),
        publishing: Default::default(),
    };
    readiness.set(false).await;
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(health);
    ServerParts { readiness, routes }
}

/// Serves `routes` (the service's own gRPC services) plus health and reflection on
/// `listener` until `shutdown`, then drains in-flight calls for at most the
/// configured grace period.
pub async fn serve(
    cfg: &GrpcConfig,
    auth: Arc<Authenticator>,
    listener: TcpListener,
    parts: ServerParts,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // The contracts' descriptor set holds every service; reflection offers only
    // what this port serves, so `grpcurl <port> list` tells no lies.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(selfhelp_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(parts.readiness.service_name())
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()?;
    let routes: Routes = parts.routes.routes().add_service(reflection);

    // Outermost first: metrics, trace context and auth, then shedding beyond the limit.
    let layers = tower::ServiceBuilder::new()
        // Outermost: every call is counted, those shed or refused included.
        .layer(crate::metrics::MetricsLayer)
        .layer(AuthLayer { auth })
        .layer(crate::rate_limit::RateLimitLayer::new(Arc::new(
            crate::rate_limit::RateLimits::new(cfg),
        )))
        .layer(ShedAsStatusLayer)
        .load_shed()
        .concurrency_limit(cfg.concurrency_limit)
        .into_inner();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = crate::tls::server_config("grpc.tls", &cfg.tls)? {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .timeout(cfg.request_timeout())
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        _ = shutdown.wait() => {}
    }
    parts.readiness.set(false).await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(cfg.shutdown_grace(), server).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
            Ok(())
        }
    }
}

/// The connections a server accepts on `listener`, with `TCP_NODELAY` set: tonic
/// sets it only on listeners it binds itself, and without it a response written in
/// more than one piece waits for the client's delayed acknowledgement (about 40 ms
/// on every call from a client that waits for each answer). Keepalive finds peers
/// that vanished without closing.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)))
}

/// The authenticated caller of a request, if it carried a valid token.
pub fn caller<T>(request: &Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// The caller, or `UNAUTHENTICATED` for RPCs that need a token.
pub fn require_caller<T>(request: &Request<T>) -> Result<Caller, ServiceError> {
    caller(request)
        .cloned()
        .ok_or(ServiceError::Unauthenticated(
            "this call needs a bearer token".into(),
        ))
}

/// A caller acts only within the region its deployment serves: a token for
/// another region is `PERMISSION_DENIED` (its operators see nothing here).
pub fn in_region(caller: &Caller, region: &str) -> Result<(), ServiceError> {
    if caller.region == region {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied(
            "your token is for another region",
        ))
    }
}

/// The signed-in caller of `region`: [`require_caller`] then [`in_region`].
pub fn caller_in_region<T>(request: &Request<T>, region: &str) -> Result<Caller, ServiceError> {
    let caller = require_caller(request)?;
    in_region(&caller, region)?;
    Ok(caller)
}

/// Answers an RPC whose body is written against [`ServiceError`]: `?` works on
/// violations, storage errors and the service's own errors alike, and the
/// status is made in one place.
pub async fn answer<T>(
    body: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<tonic::Response<T>, Status> {
    body.await.map(tonic::Response::new).map_err(Status::from)
}

/// Whether HTTP/2 refused the call before the server started it: a GOAWAY
/// with NO_ERROR (the server's graceful stop; RFC 9113 §6.8 says such a
/// stream may be sent again) or a REFUSED_STREAM reset. tonic reports the
/// first as INTERNAL with a message that depends on where the connection
/// noticed it, so this reads the h2 error behind the status, not its text.
pub fn never_started(status: &Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return match h2.reason() {
                Some(h2::Reason::NO_ERROR) => h2.is_go_away(),
                Some(h2::Reason::REFUSED_STREAM) => true,
                _ => false,
            };
        }
        cause = error.source();
    }
    false
}

/// The request's trace context (set by [`AuthLayer`] for every call).
pub fn trace_parent<T>(request: &Request<T>) -> TraceParent {
    request
        .extensions()
        .get::<TraceParent>()
        .cloned()
        .unwrap_or_else(TraceParent::new_root)
}

/// Continues the caller's trace, then authenticates a bearer token if one is
/// present. A missing token is allowed here (public reads); handlers that need
/// one call [`require_caller`]. A token that is present but invalid is refused.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let incoming = req
                .headers()
                .get(trace::HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(TraceParent::parse);
            let (traceparent, mut hop) = crate::otel::hop(
                req.uri().path().trim_start_matches('/').to_string(),
                opentelemetry::trace::SpanKind::Server,
                incoming.as_ref(),
                crate::otel::rpc_attributes(req.uri().path()),
            );
            let span = tracing::info_span!(
                "rpc",
                path = %req.uri().path(),
                trace_id = %traceparent.trace_id_hex(),
            );
            req.extensions_mut().insert(traceparent);
            match bearer_token(req.headers()) {
                BearerToken::Absent => {}
                BearerToken::Malformed => {
                    hop.fail("Unauthenticated");
                    return Ok(
                        Status::unauthenticated("authorization must be `Bearer <token>`")
                            .into_http(),
                    );
                }
                BearerToken::Present(token) => match auth.authenticate(&token).await {
                    Ok(caller) => {
                        req.extensions_mut().insert(caller);
                    }
                    Err(e) => {
                        tracing::debug!(parent: &span, error = %e, "token refused");
                        hop.fail("Unauthenticated");
                        return Ok(Status::unauthenticated("invalid or expired token").into_http());
                    }
                },
            }
            let answer = inner.call(req).instrument(span).await;
            match &answer {
                Ok(response) => {
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    hop.attribute("rpc.grpc.status_code", i64::from(code));
                    if code != 0 {
                        hop.fail(format!("{:?}", tonic::Code::from_i32(code)));
                    }
                }
                Err(_) => hop.fail("the call failed before an answer"),
            }
            answer
        })
    }
}

enum BearerToken {
    Absent,
    Malformed,
    Present(String),
}

fn bearer_token(headers: &http::HeaderMap) -> BearerToken {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return BearerToken::Absent;
    };
    let Ok(value) = value.to_str() else {
        return BearerToken::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            BearerToken::Present(token.trim().to_string())
        }
        _ => BearerToken::Malformed,
    }
}

/// Turns tower's `Overloaded` (from load shedding) into a gRPC
/// `RESOURCE_EXHAUSTED` answer, so clients get a status instead of a broken stream.
#[derive(Clone)]
pub struct ShedAsStatusLayer;

impl<S> Layer<S> for ShedAsStatusLayer {
    type Service = ShedAsStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ShedAsStatus { inner }
    }
}

#[derive(Clone)]
pub struct ShedAsStatus<S> {
    inner: S,
}

impl<S, R> Service<R> for ShedAsStatus<S>
where
    S: Service<R, Response = http::Response<Body>, Error = tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            match fut.await {
                Err(e) if e.is::<tower::load_shed::error::Overloaded>() => Ok(
                    Status::resource_exhausted("server is at capacity; retry with backoff")
                        .into_http(),
                ),
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_tcp_nodelay() {
        use tokio_stream::StreamExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = incoming(listener);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_side = accepted.next().await.unwrap().unwrap();
        assert!(
            server_side.nodelay().unwrap(),
            "the server's side of an accepted connection must have TCP_NODELAY"
        );
        // The plain listener's sockets do not: the option is ours, not the kernel's.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        let _c = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
        let (raw, _) = plain.accept().await.unwrap();
        assert!(!raw.nodelay().unwrap());
        drop(client);
    }

    #[test]
    fn only_a_call_http2_refused_before_it_started_counts_as_never_started() {
        let h2_status = |reason| Status::from(h2::Error::from(reason));
        assert!(never_started(&h2_status(h2::Reason::REFUSED_STREAM)));
        // A reset for any other reason may come after the server ran the call.
        assert!(!never_started(&h2_status(h2::Reason::CANCEL)));
        assert!(!never_started(&h2_status(h2::Reason::PROTOCOL_ERROR)));
        // A status with nothing behind it is the service's own answer.
        assert!(!never_started(&Status::unavailable("listings is away")));
        assert!(!never_started(&Status::internal(
            "h2 protocol error: http2 error"
        )));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = http::HeaderMap::new();
        assert!(matches!(bearer_token(&h), BearerToken::Absent));
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(matches!(bearer_token(&h), BearerToken::Present(t) if t == "abc"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(matches!(bearer_token(&h), BearerToken::Malformed));
        h.insert(http::header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(matches!(bearer_token(&h), BearerToken::Malformed));
    }
}
