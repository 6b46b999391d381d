//! What the gateway tells its operators, like the services do: Prometheus
//! metrics of every request (by route, so the labels stay few), and a trace
//! per request that its calls to listings carry on (`traceparent`), with an
//! OpenTelemetry span when traces are sent.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use selfhelp_platform::trace::TraceParent;

tokio::task_local! {
    /// The `traceparent` of the request being answered: what its calls to
    /// listings pass on.
    static TRACE: TraceParent;
}

/// The trace of the request being answered, if any.
pub(crate) fn current_trace() -> Option<TraceParent> {
    TRACE.try_with(TraceParent::clone).ok()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type Seconds = Family<RouteLabels, Histogram, fn() -> Histogram>;

struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Seconds,
}

fn http_metrics() -> &'static HttpMetrics {
    static METRICS: OnceLock<HttpMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let requests = Family::<RequestLabels, Counter>::default();
        let seconds: Seconds =
            // 0.25 ms to about 8 s.
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        let registry = selfhelp_platform::metrics::metrics();
        registry.register(
            "selfhelp_http_requests",
            "HTTP requests the gateway answered, by route, method and status code",
            requests.clone(),
        );
        registry.register(
            "selfhelp_http_request_seconds",
            "Time to answer an HTTP request (to its response headers), by route",
            seconds.clone(),
        );
        HttpMetrics { requests, seconds }
    })
}

/// Counts and times every request, under the trace it came with (or a new one).
pub(crate) async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().to_string();
    let parent = request
        .headers()
        .get(selfhelp_platform::trace::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let (trace, mut hop) = selfhelp_platform::otel::hop(
        format!("{method} {route}"),
        opentelemetry::trace::SpanKind::Server,
        parent.as_ref(),
        Vec::new(),
    );
    let response = TRACE.scope(trace, next.run(request)).await;
    let status = response.status();
    if status.is_server_error() {
        hop.fail(status.to_string());
    }
    let metrics = http_metrics();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            code: status.as_u16().to_string(),
        })
        .inc();
    metrics
        .seconds
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A request's trace is the one it came with (a span of it), and the
    /// calls it makes to listings carry it on.
    #[tokio::test]
    async fn a_request_and_its_calls_keep_the_trace_it_came_with() {
        let app = axum::Router::new()
            .route(
                "/",
                get(|| async {
                    let call = crate::listings::traced_call();
                    call.metadata()
                        .get(selfhelp_platform::trace::HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                }),
            )
            .layer(axum::middleware::from_fn(observe));
        let incoming = TraceParent::new_root();
        let answer = app
            .clone()
            .oneshot(
                Request::builder()
                    .uri("/")
                    .header(selfhelp_platform::trace::HEADER, incoming.to_string())
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        let sent = TraceParent::parse(std::str::from_utf8(&body).unwrap()).expect("a traceparent");
        assert_eq!(sent.trace_id, incoming.trace_id, "the same trace");
        // Without one, a request starts a trace of its own.
        let answer = app
            .oneshot(
                Request::builder()
                    .uri("/")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        let own = TraceParent::parse(std::str::from_utf8(&body).unwrap()).expect("a traceparent");
        assert_ne!(own.trace_id, incoming.trace_id);
        // Outside a request, calls carry none.
        assert!(
            crate::listings::traced_call()
                .metadata()
                .get(selfhelp_platform::trace::HEADER)
                .is_none()
        );
    }
}
