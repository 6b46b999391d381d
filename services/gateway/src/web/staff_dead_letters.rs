//! Dead letters, for the region's staff: the events each service's consumers
//! parked because they could not be applied, listed (type, subject, the
//! error; never the payload, which may name people) and replayed once the
//! cause is fixed: one, or all of a service's. Each service checks the
//! operator role again (its operations API); one that cannot be reached is
//! said so, and the others still show.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::operations::v1 as opb;
use serde::{Deserialize, Serialize};

use super::pages::{error_page, own_page};
use super::staff::{operator, staff_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;

const HERE: &str = "/staff/dead-letters";
/// Letters shown per service.
const SHOWN: u32 = 100;

/// staff_dead_letters.html
#[derive(Serialize)]
struct DeadLettersPage {
    csrf: String,
    services: Vec<ServiceLetters>,
    /// What the last replay did, in words.
    replayed: String,
}

#[derive(Serialize)]
struct ServiceLetters {
    service: &'static str,
    /// Empty when the service answered.
    unreachable: String,
    letters: Vec<Letter>,
}

#[derive(Serialize)]
struct Letter {
    id: i64,
    consumer: String,
    event_type: String,
    subject: String,
    error: String,
    deliveries: i64,
    parked: String,
}

#[derive(Deserialize)]
pub(crate) struct ReplayedQuery {
    #[serde(default)]
    replayed: u32,
    #[serde(default)]
    still_parked: u32,
    #[serde(default)]
    not_found: u32,
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(query): Query<ReplayedQuery>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    let signed = match operator(&state, signed, HERE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let call = match state.services.as_signed(&signed).await {
        Ok(c) => c,
        Err(e) => return error_page(&state, &e),
    };
    let mut services = Vec::new();
    for (service, client) in &state.services.operations {
        let request = call.ask(opb::ListDeadLettersRequest {
            consumer: String::new(),
            include_replayed: false,
            limit: SHOWN,
        });
        let answer = client.clone().list_dead_letters(request).await;
        services.push(match answer {
            Ok(a) => ServiceLetters {
                service,
                unreachable: String::new(),
                letters: a
                    .into_inner()
                    .dead_letters
                    .into_iter()
                    .map(|d| Letter {
                        parked: d
                            .parked_at
                            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                            .map(|t| {
                                t.with_timezone(&state.tz)
                                    .format("%-d %b %Y, %H:%M")
                                    .to_string()
                            })
                            .unwrap_or_default(),
                        id: d.id,
                        consumer: d.consumer,
                        event_type: d.event_type,
                        subject: d.subject,
                        error: d.error,
                        deliveries: d.deliveries,
                    })
                    .collect(),
            },
            Err(status) => {
                tracing::warn!(service = %service, error = %status, "dead letters could not be listed");
                ServiceLetters {
                    service,
                    unreachable: "It could not be reached just now.".into(),
                    letters: Vec::new(),
                }
            }
        });
    }
    let view = DeadLettersPage {
        csrf: signed.csrf_token.clone(),
        services,
        replayed: if query.done.is_some() {
            format!(
                "Replayed: {} applied, {} still parked (their new error is shown), {} no longer waiting.",
                query.replayed, query.still_parked, query.not_found
            )
        } else {
            String::new()
        },
    };
    own_page(
        &state,
        StatusCode::OK,
        "staff_dead_letters.html",
        "Dead letters",
        &view,
    )
}

#[derive(Deserialize)]
pub(crate) struct ReplayForm {
    #[serde(default)]
    csrf: String,
    /// One letter; empty: all of the service's.
    #[serde(default)]
    id: Option<i64>,
}

/// Replays one letter of `service`, or all of its letters.
pub(crate) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(service): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let signed = match staff_form(&state, &headers, signed, &form.csrf, HERE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let Some((_, client)) = state
        .services
        .operations
        .iter()
        .find(|(name, _)| *name == service)
    else {
        return error_page(&state, &GatewayError::NotFound);
    };
    let replayed = async {
        let call = state.services.as_signed(&signed).await?;
        let request = call.ask(opb::ReplayDeadLettersRequest {
            ids: form.id.into_iter().collect(),
            all: form.id.is_none(),
            consumer: String::new(),
        });
        Ok::<_, GatewayError>(
            client
                .clone()
                .replay_dead_letters(request)
                .await?
                .into_inner(),
        )
    }
    .await;
    match replayed {
        Ok(r) => {
            tracing::info!(service = %service, replayed = r.replayed, still_parked = r.still_parked, "staff replayed dead letters");
            Redirect::to(&format!(
                "{HERE}?done=1&replayed={}&still_parked={}&not_found={}",
                r.replayed, r.still_parked, r.not_found
            ))
            .into_response()
        }
        Err(e) => error_page(&state, &e),
    }
}
