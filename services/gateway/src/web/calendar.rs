//! Calendar feeds (iCalendar, made by listings): a group's, a topic's, the region's.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::pages::error_page;
use crate::AppState;
use crate::error::GatewayError;

fn calendar_response(state: &AppState, answer: Result<String, GatewayError>) -> Response {
    match answer {
        Ok(ics) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"meetings.ics\"",
                ),
            ],
            ics,
        )
            .into_response(),
        Err(e) => error_page(state, &e),
    }
}

pub(crate) async fn group_calendar(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let answer = state.listings.calendar(&id).await;
    calendar_response(&state, answer)
}

/// Every published group's meetings in the region.
pub(crate) async fn region_calendar(State(state): State<AppState>) -> Response {
    let answer = state.listings.directory_calendar("").await;
    calendar_response(&state, answer)
}

/// The meetings of a topic's groups (and of the topics below it).
pub(crate) async fn topic_calendar(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Response {
    let answer = state.listings.directory_calendar(&code).await;
    calendar_response(&state, answer)
}
