//! The gateway: selfhelp's front door for people and programs without a gRPC
//! client. Stateless (no database; it reads through listings' public RPCs like
//! any client), so it runs as any number of replicas behind a TLS proxy. It
//! serves the public web directory (`web`), the read-only Open Referral UK API
//! under `/oruk` (`oruk`), calendar feeds, and `/healthz` and `/readyz`.

pub mod config;
pub mod error;
mod http;
mod listings;
mod observe;
mod oruk;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use selfhelp_platform::Shutdown;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::GatewayError;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub config: Config,
    pub listings: listings::Listings,
    pub pages: web::Pages,
    pub limiter: Option<http::AddressLimiter>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The whole HTTP surface.
pub fn router(config: Config) -> anyhow::Result<Router> {
    let state = AppState(Arc::new(Inner {
        listings: listings::Listings::new(&config)?,
        pages: web::Pages::new(),
        limiter: http::AddressLimiter::new(config.http.rate_limit_per_second),
        config,
    }));
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD]);
    let router = Router::new()
        .merge(web::routes())
        .nest("/oruk", oruk::routes())
        // The API's root with its trailing slash too (`/oruk` is the nested "/").
        .route("/oruk/", get(oruk::api_info))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::cache_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::rate_limit,
        ))
        .layer(cors);
    // Outermost: every request counted and traced, refused ones included.
    Ok(http::security_headers(router)
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state))
}

/// Serves until `shutdown`, then lets requests in flight finish (up to
/// `http.shutdown_grace_ms`); serves metrics too when `metrics.listen` is set.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    if !config.metrics.listen.is_empty() {
        let metrics = TcpListener::bind(&config.metrics.listen)
            .await
            .map_err(|e| anyhow::anyhow!("metrics.listen {}: {e}", config.metrics.listen))?;
        if let Some(path) = &config.metrics.write_address_to {
            std::fs::write(path, metrics.local_addr()?.to_string())
                .map_err(|e| anyhow::anyhow!("metrics.write_address_to {}: {e}", path.display()))?;
        }
        tracing::info!(addr = %metrics.local_addr()?, "metrics served at /metrics");
        tokio::spawn(selfhelp_platform::metrics::serve(metrics, shutdown.clone()));
    }
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    let app = router(config)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    use axum::serve::ListenerExt;
    // No delayed-ACK wait on responses written in more than one piece.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stopping = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopping.wait().await });
    tokio::select! {
        served = server => served?,
        _ = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("requests still open after the grace period; stopping anyway");
        }
    }
    tracing::info!("gateway stopped");
    Ok(())
}
