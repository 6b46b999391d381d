//! Prometheus metrics of a service, served as text on `metrics.listen`.
//!
//! One registry per process: under `selfhelp up` the three services share it
//! and are told apart by their labels (`grpc_service`, `service`, `durable`).
//! gRPC metrics follow the names of the widely used go-grpc-prometheus
//! (`grpc_server_handled_total`, `grpc_server_handling_seconds`), so existing
//! dashboards work; the rest are `selfhelp_…`, with units in their names.

use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::Shutdown;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: String,
    grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    durable: String,
}

type Seconds = Family<MethodLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcServiceLabels {
    grpc_service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    service: String,
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    service: String,
    pool: String,
    state: String,
}

/// The process's metrics; [`metrics`] gives them.
pub struct Metrics {
    /// Services add their own metrics with [`Metrics::register`].
    registry: std::sync::Mutex<Registry>,
    calls: Family<CallLabels, Counter>,
    call_seconds: Seconds,
    outbox_waiting: Family<ServiceLabels, Gauge>,
    outbox_oldest: Family<ServiceLabels, Gauge<f64, AtomicU64>>,
    handled: Family<ConsumerLabels, Counter>,
    redelivered: Family<ConsumerLabels, Counter>,
    dead_lettered: Family<ConsumerLabels, Counter>,
    pending: Family<ConsumerLabels, Gauge>,
    nats_connected: Family<ServiceLabels, Gauge>,
    db_connections: Family<ConnectionLabels, Gauge>,
    db_connections_max: Family<PoolLabels, Gauge>,
    db_acquire: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    ready: Family<GrpcServiceLabels, Gauge>,
    dead_letters: Family<ConsumerLabels, Gauge>,
    /// The durable consumers this process runs.
    durables: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

fn call_buckets() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The process's metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "gRPC calls answered, by service, method and status code",
            calls.clone(),
        );
        let call_seconds: Seconds = Family::new_with_constructor(call_buckets);
        registry.register(
            "grpc_server_handling_seconds",
            "Time to answer a gRPC call (to its response headers), by service and method",
            call_seconds.clone(),
        );
        let outbox_waiting = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "selfhelp_outbox_waiting",
            "Events in the outbox not yet published to NATS",
            outbox_waiting.clone(),
        );
        let outbox_oldest = Family::<ServiceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "selfhelp_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the outbox (0 when none waits)",
            outbox_oldest.clone(),
        );
        let handled = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "selfhelp_events_handled",
            "Events a durable consumer applied (repeats the inbox dropped included)",
            handled.clone(),
        );
        let redelivered = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "selfhelp_events_redelivered",
            "Events that came to a durable consumer again after an earlier attempt",
            redelivered.clone(),
        );
        let dead_lettered = Family::<ConsumerLabels, Counter>::default();
        registry.register(
            "selfhelp_events_dead_lettered",
            "Events a durable consumer parked as dead letters",
            dead_lettered.clone(),
        );
        let pending = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "selfhelp_consumer_pending",
            "Events in the stream a durable consumer has not been given yet, as last seen",
            pending.clone(),
        );
        let nats_connected = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "selfhelp_nats_connected",
            "1 while the service is connected to NATS, else 0",
            nats_connected.clone(),
        );
        let db_connections = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "selfhelp_db_connections",
            "Database connections of a pool, by state (in_use, idle), as last sampled",
            db_connections.clone(),
        );
        let db_connections_max = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "selfhelp_db_connections_max",
            "The most connections a pool may open",
            db_connections_max.clone(),
        );
        let db_acquire = Family::<PoolLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "selfhelp_db_acquire_seconds",
            "How long the last sample waited for a connection of the pool (calls queue when it grows)",
            db_acquire.clone(),
        );
        let ready = Family::<GrpcServiceLabels, Gauge>::default();
        registry.register(
            "selfhelp_ready",
            "1 while the service reports SERVING on its health check, else 0",
            ready.clone(),
        );
        let dead_letters = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "selfhelp_dead_letters_waiting",
            "Dead letters of a durable consumer not yet replayed, as last sampled",
            dead_letters.clone(),
        );
        Metrics {
            registry: std::sync::Mutex::new(registry),
            calls,
            call_seconds,
            outbox_waiting,
            outbox_oldest,
            handled,
            redelivered,
            dead_lettered,
            pending,
            nats_connected,
            db_connections,
            db_connections_max,
            db_acquire,
            ready,
            dead_letters,
            durables: Default::default(),
        }
    })
}

impl Metrics {
    /// The metrics in the Prometheus (OpenMetrics) text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Adds a service's own metric (call once per process, e.g. from a
    /// `OnceLock`): it is served with the rest.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .expect("metrics registry lock")
            .register(name, help, metric);
    }

    /// Samples the connection pools of `service`'s databases: how many
    /// connections are in use and idle, and how long one took to get.
    pub async fn sample_pools(&self, service: &str, dbs: &crate::db::Databases) {
        for (pool, db) in dbs.pools() {
            let Some(stats) = crate::db::pool_stats(db).await else {
                continue;
            };
            let labels = |state: &str| ConnectionLabels {
                service: service.to_string(),
                pool: pool.to_string(),
                state: state.to_string(),
            };
            self.db_connections
                .get_or_create(&labels("in_use"))
                .set(i64::from(stats.size) - stats.idle as i64);
            self.db_connections
                .get_or_create(&labels("idle"))
                .set(stats.idle as i64);
            let labels = PoolLabels {
                service: service.to_string(),
                pool: pool.to_string(),
            };
            self.db_connections_max
                .get_or_create(&labels)
                .set(i64::from(stats.max));
            self.db_acquire
                .get_or_create(&labels)
                .set(stats.acquire.as_secs_f64());
        }
    }

    fn call(&self, path: &str, code: &str, seconds: f64) {
        // `/package.Service/Method`
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", path));
        self.calls
            .get_or_create(&CallLabels {
                grpc_service: service.to_string(),
                grpc_method: method.to_string(),
                grpc_code: code.to_string(),
            })
            .inc();
        self.call_seconds
            .get_or_create(&MethodLabels {
                grpc_service: service.to_string(),
                grpc_method: method.to_string(),
            })
            .observe(seconds);
    }

    /// The outbox of `service` as last looked at.
    pub fn outbox(&self, service: &str, waiting: u64, oldest_age_secs: f64) {
        let labels = ServiceLabels {
            service: service.to_string(),
        };
        self.outbox_waiting
            .get_or_create(&labels)
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        self.outbox_oldest
            .get_or_create(&labels)
            .set(oldest_age_secs);
    }

    /// An event consumer `durable` applied (`delivered`: its delivery count).
    pub fn handled(&self, durable: &str, delivered: i64) {
        let labels = ConsumerLabels {
            durable: durable.to_string(),
        };
        self.handled.get_or_create(&labels).inc();
        if delivered > 1 {
            self.redelivered.get_or_create(&labels).inc();
        }
    }

    pub fn dead_lettered(&self, durable: &str) {
        self.dead_lettered
            .get_or_create(&ConsumerLabels {
                durable: durable.to_string(),
            })
            .inc();
    }

    /// What is left in the stream for `durable`, as its last message said.
    pub fn pending(&self, durable: &str, pending: u64) {
        self.pending
            .get_or_create(&ConsumerLabels {
                durable: durable.to_string(),
            })
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    pub fn ready(&self, grpc_service: &str, ready: bool) {
        self.ready
            .get_or_create(&GrpcServiceLabels {
                grpc_service: grpc_service.to_string(),
            })
            .set(i64::from(ready));
    }

    /// A durable consumer this process runs (its dead letters show 0 until
    /// there are some).
    pub fn consumer_started(&self, durable: &str) {
        self.durables
            .lock()
            .expect("durables lock")
            .insert(durable.to_string());
    }

    /// Counts the dead letters not yet replayed in the database `db` of
    /// `service` for `region`, per durable.
    pub async fn sample_dead_letters(
        &self,
        service: &str,
        region: &str,
        db: &sea_orm::DatabaseConnection,
    ) -> Result<(), sea_orm::DbErr> {
        use crate::migrations::entities::dead_letter;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
        let waiting: Vec<(String, i64)> = dead_letter::Entity::find()
            .select_only()
            .column(dead_letter::Column::Consumer)
            .column_as(dead_letter::Column::Id.count(), "waiting")
            .filter(dead_letter::Column::ReplayedAtMs.is_null())
            .group_by(dead_letter::Column::Consumer)
            .into_tuple()
            .all(db)
            .await?;
        // This service's durables for this region (`<service>-<region>-<stream>`)
        // without letters (any more) show 0.
        let prefix = format!("{service}-{region}-");
        let known: Vec<String> = self
            .durables
            .lock()
            .expect("durables lock")
            .iter()
            .filter(|d| d.starts_with(&prefix))
            .cloned()
            .collect();
        for durable in known {
            self.dead_letters
                .get_or_create(&ConsumerLabels { durable })
                .set(0);
        }
        for (durable, count) in waiting {
            self.dead_letters
                .get_or_create(&ConsumerLabels { durable })
                .set(count);
        }
        Ok(())
    }

    /// What [`Metrics::pending`] last recorded for `durable`.
    pub fn pending_of(&self, durable: &str) -> Option<u64> {
        let labels = ConsumerLabels {
            durable: durable.to_string(),
        };
        let pending = self.pending.get(&labels)?.get();
        u64::try_from(pending).ok()
    }

    pub fn nats_connected(&self, service: &str, connected: bool) {
        self.nats_connected
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .set(i64::from(connected));
    }
}

/// The gRPC status code's name as go-grpc-prometheus writes it (`OK`,
/// `NotFound`, …).
fn code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    }
}

/// Counts every call and times it to its response headers. A unary call's
/// error is in those headers; one answered normally ends with `OK` in its
/// trailers, and a stream's later error is not seen here (it counts as `OK`).
#[derive(Clone, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Measured<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Measured { inner }
    }
}

#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for Measured<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unavailable,
            };
            metrics().call(&path, &code_name(code), started.elapsed().as_secs_f64());
            result
        })
    }
}

/// Serves [`metrics`] at `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, shutdown: Shutdown) {
    use axum::routing::get;
    let router = axum::Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                metrics().render(),
            )
        }),
    );
    let stopped = async move { shutdown.wait().await };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "metrics listener stopped");
    }
}

/// The value of the sample `name_and_labels` (e.g.
/// `selfhelp_outbox_waiting{service="listings"}`) in metrics text.
pub fn value_of(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels))
        .and_then(|rest| rest.trim().split(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_service_method_and_code() {
        let m = metrics();
        m.call("/selfhelp.test.v1.T/Get", "NotFound", 0.001);
        m.call("/selfhelp.test.v1.T/Get", "NotFound", 0.002);
        m.outbox("test", 3, 1.5);
        let text = m.render();
        assert_eq!(
            value_of(
                &text,
                r#"grpc_server_handled_total{grpc_service="selfhelp.test.v1.T",grpc_method="Get",grpc_code="NotFound"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value_of(&text, r#"selfhelp_outbox_waiting{service="test"}"#),
            Some(3.0)
        );
        assert!(text.contains("grpc_server_handling_seconds_bucket"));
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "ResourceExhausted"
        );
    }
}
