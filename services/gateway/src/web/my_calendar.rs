//! A person's private calendar: one feed of the meetings of every group they
//! are a member of, cancellations and moves included, at a secret address
//! their calendar app subscribes to. Only the address's digest is kept, so
//! the address is shown once, when made; renewing it makes a new one and the
//! old one stop working.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::forms::{self, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;
use crate::store::{self, calendar_feed};

/// The feed of someone who is in no group yet: a calendar with no events.
const EMPTY_CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n\
    PRODID:-//selfhelp//gateway//EN\r\nX-WR-CALNAME:My self-help groups\r\nEND:VCALENDAR\r\n";

#[derive(Serialize)]
struct CalendarPage {
    csrf: String,
    /// When the present address was made; none if there is none.
    made_on: Option<String>,
    /// The address, only on the answer that made it.
    address: Option<Address>,
}

#[derive(Serialize)]
struct Address {
    https: String,
    webcal: String,
}

fn page(
    state: &AppState,
    signed: &Signed,
    made_on: Option<String>,
    address: Option<Address>,
) -> Response {
    let view = CalendarPage {
        csrf: signed.csrf_token.clone(),
        made_on,
        address,
    };
    own_page(
        state,
        StatusCode::OK,
        "my_calendar.html",
        "My calendar",
        &view,
    )
}

fn made_on(state: &AppState, at_ms: i64) -> String {
    use chrono::TimeZone;
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| {
            state
                .tz
                .from_utc_datetime(&t.naive_utc())
                .format("%-d %B %Y")
                .to_string()
        })
        .unwrap_or_default()
}

pub(crate) async fn my_calendar(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    match calendar_feed::find(&state.db, &signed.person_id).await {
        Ok(feed) => page(
            &state,
            &signed,
            feed.map(|f| made_on(&state, f.created_at_ms)),
            None,
        ),
        Err(e) => error_page(&state, &e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct RenewForm {
    #[serde(default)]
    csrf: String,
}

/// Makes the person's calendar address, or a new one in place of the old.
pub(crate) async fn renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<RenewForm>,
) -> Response {
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/calendar") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let secret = store::random_secret(32);
    let now = state.clock.now_ms();
    let row = calendar_feed::Model {
        person_id: signed.person_id.clone(),
        token_digest: store::digest(&secret),
        created_at_ms: now,
    };
    if let Err(e) = calendar_feed::set(&state.db, row).await {
        return error_page(&state, &e.into());
    }
    let base = crate::http::base_url(&state, &headers);
    let https = format!("{base}/calendars/{secret}.ics");
    let webcal = https
        .replacen("https://", "webcal://", 1)
        .replacen("http://", "webcal://", 1);
    page(
        &state,
        &signed,
        Some(made_on(&state, now)),
        Some(Address { https, webcal }),
    )
}

/// The feed itself: whoever has the address reads it (calendar apps send no
/// cookies). Unknown addresses are not found; nothing is kept by caches.
pub(crate) async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let answer = async {
        let secret = file.strip_suffix(".ics").ok_or(GatewayError::NotFound)?;
        let feed = calendar_feed::by_token(&state.db, &store::digest(secret))
            .await?
            .ok_or(GatewayError::NotFound)?;
        let mut call = state.services.as_person(&feed.person_id, &[]).await?;
        let group_ids: Vec<String> = call
            .my_memberships()
            .await?
            .into_iter()
            .filter(|m| m.state() == mpb::MembershipState::Active)
            .map(|m| m.group_id)
            .collect();
        if group_ids.is_empty() {
            // No groups: an empty calendar, not the whole region's.
            return Ok(EMPTY_CALENDAR.to_string());
        }
        let request = call.ask(lpb::ExportDirectoryCalendarRequest {
            topic: String::new(),
            group_ids,
        });
        Ok::<_, GatewayError>(
            call.listings
                .export_directory_calendar(request)
                .await?
                .into_inner()
                .ics,
        )
    }
    .await;
    match answer {
        Ok(ics) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, no-store"),
                (
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"my-groups.ics\"",
                ),
            ],
            ics,
        )
            .into_response(),
        Err(e) => error_page(&state, &e),
    }
}
