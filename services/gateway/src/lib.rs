//! The gateway: selfhelp's front door for people and programs without a gRPC
//! client. It serves the web directory and people's own pages (`web`), the
//! read-only Open Referral UK API under `/oruk` (`oruk`), calendar feeds, and
//! `/healthz` and `/readyz`. The public pages read listings' public RPCs like
//! any client; signed-in pages call the services as the person, with tokens
//! the gateway signs (`keys`, `services`). Sign-in state lives in the gateway's
//! own database (`store`, ADR 27), shared by every replica, so it runs as any
//! number of replicas behind a TLS proxy.

pub mod config;
pub mod error;
mod http;
pub mod keys;
mod listings;
mod observe;
mod oruk;
mod privacy;
mod services;
mod sessions;
mod signin;
mod staff;
pub mod store;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use selfhelp_core::time::Clock;
use selfhelp_platform::Shutdown;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::GatewayError;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub config: Config,
    /// The region's time zone (`timezone`).
    pub tz: chrono_tz::Tz,
    /// What sessions, links and keys go by (a test's own in tests).
    pub clock: Clock,
    pub listings: listings::Listings,
    pub pages: web::Pages,
    pub limiter: Option<http::AddressLimiter>,
    /// Sign-in state (ADR 27).
    pub db: sea_orm::DatabaseConnection,
    pub sessions: sessions::Sessions,
    pub sign_in: signin::SignIn,
    pub sign_in_limiter: http::HourlyLimiter,
    /// Visitors' messages to organisers, per client address.
    pub contact_limiter: http::HourlyLimiter,
    /// Reports and suggestions to staff, per client address.
    pub reports_limiter: http::HourlyLimiter,
    /// Invitations sent by email, per client address.
    pub invitations_limiter: http::HourlyLimiter,
    /// Sign-in links and invitations go out through it.
    pub mail: Arc<selfhelp_platform::email::Sender>,
    pub keys: keys::Keys,
    /// The services, called as the signed-in person.
    pub services: services::Services,
    /// Staff sign-in through the region's identity provider, when set.
    pub staff: Option<staff::Staff>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The whole HTTP surface.
fn router(state: AppState) -> Router {
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
            sessions::resolve,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::rate_limit,
        ))
        .layer(cors);
    // Outermost: every request counted and traced, refused ones included.
    http::security_headers(router)
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

/// Serves until `shutdown`, then lets requests in flight finish (up to
/// `http.shutdown_grace_ms`); serves metrics too when `metrics.listen` is set.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    run_with_clock(config, Clock::system(), listener, shutdown).await
}

/// [`run`] with the clock sessions, sign-in links and signing keys go by.
pub async fn run_with_clock(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
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
    let db =
        selfhelp_platform::service::open_database::<store::Migrator>(&config.database, &shutdown)
            .await?;
    let keys = keys::Keys::new(
        db.clone(),
        clock.clone(),
        config.tokens.clone(),
        config.region.clone(),
    );
    keys.maintain().await?;
    let mail = Arc::new(selfhelp_platform::email::Sender::from_config(
        &config.email,
    )?);
    let state = AppState(Arc::new(Inner {
        listings: listings::Listings::new(&config)?,
        pages: web::Pages::new(),
        limiter: http::AddressLimiter::new(config.http.rate_limit_per_second),
        sessions: sessions::Sessions::new(db.clone(), clock.clone(), config.sessions.clone()),
        sign_in: signin::SignIn::new(
            db.clone(),
            clock.clone(),
            config.sign_in.clone(),
            mail.clone(),
            config.area_name.clone(),
        ),
        sign_in_limiter: http::HourlyLimiter::new(config.sign_in.requests_per_client_per_hour),
        contact_limiter: http::HourlyLimiter::new(config.contact.requests_per_client_per_hour),
        reports_limiter: http::HourlyLimiter::new(config.reports.requests_per_client_per_hour),
        invitations_limiter: http::HourlyLimiter::new(
            config.invitations.requests_per_client_per_hour,
        ),
        mail,
        services: services::Services::new(&config, keys.clone())?,
        staff: if config.staff.enabled() {
            Some(staff::Staff::new(
                config.staff.clone(),
                db.clone(),
                clock.clone(),
            )?)
        } else {
            None
        },
        keys,
        db,
        tz: config.timezone.parse().unwrap_or(chrono_tz::Europe::London),
        clock: clock.clone(),
        config,
    }));
    let eventing = privacy::start(&state.config, state.db.clone(), &shutdown).await;
    tokio::spawn(upkeep(state.clone(), shutdown.clone()));
    let grace = Duration::from_millis(state.config.http.shutdown_grace_ms);
    let app = router(state);
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
    if let Some(workers) = eventing
        && !workers.join(grace).await
    {
        tracing::warn!("eventing workers still running after the grace period");
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Every minute: the signing keys rotated in time, ended sessions, spent
/// sign-in links and unfinished staff sign-ins forgotten.
async fn upkeep(state: AppState, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        if let Err(e) = state.keys.maintain().await {
            tracing::warn!(error = %format!("{e:#}"), "signing keys not maintained; retrying in a minute");
        }
        if let Err(e) = state.sessions.forget_ended().await {
            tracing::warn!(error = %e, "ended sessions not forgotten");
        }
        if let Err(e) = state.sign_in.forget_expired().await {
            tracing::warn!(error = %e, "expired sign-in links not forgotten");
        }
        if let Some(staff) = &state.staff
            && let Err(e) = staff.forget_expired().await
        {
            tracing::warn!(error = %e, "unfinished staff sign-ins not forgotten");
        }
    }
}
