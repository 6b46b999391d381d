//! The inbox, live: new notifications as server-sent events while the
//! notifications page is open (a progressive enhancement: `inbox.js` adds
//! them to the page; without script the page works as it is). Each stream
//! lasts a few minutes, well inside its token's life; the browser reconnects
//! by itself with the last id it saw, and the stream resumes after it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use selfhelp_proto::notifications::v1 as npb;

use super::forms::SignedPage;
use super::mine::NotificationView;
use super::pages::error_page;
use crate::AppState;
use crate::error::GatewayError;

/// How long one stream lasts before the browser reconnects (shorter than a
/// token's life, so the person's session is checked again each time).
const STREAM_FOR: Duration = Duration::from_secs(120);

pub(crate) async fn inbox_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedPage(signed): SignedPage,
) -> Response {
    // The browser's `Last-Event-ID` on a reconnect: resume after it.
    let after_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let opened = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::WatchNotificationsRequest { after_id });
        Ok::<_, GatewayError>(
            call.notifications
                .watch_notifications(request)
                .await?
                .into_inner(),
        )
    }
    .await;
    let stream = match opened {
        Ok(s) => s,
        Err(e) => return error_page(&state, &e),
    };
    let events = stream
        .take_until(tokio::time::sleep(STREAM_FOR))
        .take_while(|n| std::future::ready(n.is_ok()))
        .filter_map(move |n| {
            let state = state.clone();
            async move {
                let n = n.ok()?;
                let id = n.id.clone();
                let view = NotificationView::of(&state, n);
                Event::default()
                    .event("notification")
                    .id(id)
                    .json_data(&view)
                    .ok()
                    .map(Ok::<_, Infallible>)
            }
        });
    (
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(events).keep_alive(KeepAlive::default()),
    )
        .into_response()
}
