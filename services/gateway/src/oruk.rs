//! The read-only Open Referral UK 3.0 API, every path of the profile's
//! `openapi.json`, under `/oruk`: `/`, `/services`, `/services/{id}`,
//! `/service_at_locations`, `/service_at_locations/{id}`, `/taxonomies`,
//! `/taxonomies/{id}`, `/taxonomy_terms`, `/taxonomy_terms/{id}`. Documents are
//! made by listings (one mapping for the export and the API); this module turns
//! query parameters into its requests and its answers into HTTP. Errors are JSON.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use selfhelp_proto::listings::v1 as pb;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::GatewayError;

/// The profile this API follows and its OpenAPI description.
const PROFILE_URL: &str = "https://github.com/openreferral/uk-profile";
const OPENAPI_URL: &str =
    "https://raw.githubusercontent.com/openreferral/uk-profile/main/schema/openapi.json";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(api_info))
        .route("/services", get(services))
        .route("/services/{id}", get(service))
        .route("/service_at_locations", get(service_at_locations))
        .route("/service_at_locations/{id}", get(service_at_location))
        .route("/taxonomies", get(taxonomies))
        .route("/taxonomies/{id}", get(taxonomy))
        .route("/taxonomy_terms", get(taxonomy_terms))
        .route("/taxonomy_terms/{id}", get(taxonomy_term))
        .fallback(not_found)
}

type Params = Query<HashMap<String, String>>;

/// A JSON body as it came from listings (already serialised).
fn json_text(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

pub(crate) fn error_response(error: &GatewayError) -> Response {
    if let GatewayError::Upstream(status) = error {
        tracing::error!(code = ?status.code(), message = status.message(), "listings failed an API call");
    }
    let mut body = json!({
        "status": error.status().as_u16(),
        "message": error.public_message(),
    });
    if let GatewayError::BadRequest { field, message } = error {
        body["field"] = json!(field);
        body["message"] = json!(format!("{field}: {message}"));
    }
    let mut response = (error.status(), axum::Json(body)).into_response();
    if let GatewayError::TooManyRequests { retry_after_secs } = error {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(*retry_after_secs),
        );
    }
    response
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

async fn not_found() -> Response {
    error_response(&GatewayError::NotFound)
}

pub(crate) async fn api_info() -> Response {
    axum::Json(json!({
        "version": "3.0",
        "profile": PROFILE_URL,
        "openapi_url": OPENAPI_URL,
    }))
    .into_response()
}

fn integer(params: &HashMap<String, String>, name: &str) -> Result<Option<i32>, GatewayError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i32>()
            .map(Some)
            .map_err(|_| GatewayError::bad(name, "must be a whole number")),
    }
}

/// Ages may come as numbers such as `18` or `18.0`.
fn age(params: &HashMap<String, String>, name: &str) -> Result<Option<i32>, GatewayError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.fract() == 0.0 && (0.0..=120.0).contains(&n) => Ok(Some(n as i32)),
            _ => Err(GatewayError::bad(
                name,
                "must be a whole number from 0 to 120",
            )),
        },
    }
}

fn text(params: &HashMap<String, String>, name: &str) -> String {
    params.get(name).cloned().unwrap_or_default()
}

fn search_request(
    params: &HashMap<String, String>,
    service_at_locations: bool,
) -> Result<pb::SearchOpenReferralRequest, GatewayError> {
    let proximity = match params
        .get("proximity")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|m| m.is_finite())
                .ok_or_else(|| GatewayError::bad("proximity", "must be a distance in metres"))?,
        ),
    };
    Ok(pb::SearchOpenReferralRequest {
        search: text(params, "search"),
        taxonomy_term_id: text(params, "taxonomy_term_id"),
        taxonomy_id: text(params, "taxonomy_id"),
        minimum_age: age(params, "minimum_age")?,
        maximum_age: age(params, "maximum_age")?,
        day: text(params, "day"),
        start_time: text(params, "start_time"),
        end_time: text(params, "end_time"),
        postcode: text(params, "postcode"),
        proximity,
        page: integer(params, "page")?.unwrap_or(0),
        per_page: integer(params, "per_page")?.unwrap_or(0),
        service_at_locations,
    })
}

async fn services(state: State<AppState>, params: Params) -> Response {
    search(state, params, false).await
}

async fn service_at_locations(state: State<AppState>, params: Params) -> Response {
    search(state, params, true).await
}

/// `/services` and `/service_at_locations`: the same filters, either kind of item.
async fn search(
    State(state): State<AppState>,
    Query(params): Params,
    service_at_locations: bool,
) -> Response {
    let answer = match search_request(&params, service_at_locations) {
        Ok(request) => state.listings.oruk_search(request).await,
        Err(e) => Err(e),
    };
    answer.map(json_text).unwrap_or_else(|e| error_response(&e))
}

async fn service(state: State<AppState>, Path(id): Path<String>) -> Response {
    one_service(
        state,
        pb::GetOpenReferralServiceRequest {
            service_id: id,
            ..Default::default()
        },
    )
    .await
}

/// The profile's OpenAPI file answers this path with the `service` document
/// the location belongs to.
async fn service_at_location(state: State<AppState>, Path(id): Path<String>) -> Response {
    one_service(
        state,
        pb::GetOpenReferralServiceRequest {
            service_at_location_id: id,
            ..Default::default()
        },
    )
    .await
}

async fn one_service(
    State(state): State<AppState>,
    request: pb::GetOpenReferralServiceRequest,
) -> Response {
    state
        .listings
        .oruk_service(request)
        .await
        .map(json_text)
        .unwrap_or_else(|e| error_response(&e))
}

/// `page` and `per_page` for lists the gateway pages itself (the taxonomy).
fn paging(params: &HashMap<String, String>) -> Result<(usize, usize), GatewayError> {
    let page = match integer(params, "page")? {
        None | Some(0) => 1,
        Some(n) if n > 0 => n as usize,
        Some(_) => return Err(GatewayError::bad("page", "must be 1 or more")),
    };
    let per_page = match integer(params, "per_page")? {
        None | Some(0) => 50,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => return Err(GatewayError::bad("per_page", "must be from 1 to 100")),
    };
    Ok((page, per_page))
}

/// One page of `items` in the ORUK `Page` envelope.
fn page_of(items: Vec<Value>, page: usize, per_page: usize) -> Value {
    let total = items.len();
    let total_pages = total.div_ceil(per_page);
    let contents: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    json!({
        "total_items": total,
        "total_pages": total_pages,
        "page_number": page,
        "size": per_page,
        "first_page": page <= 1,
        "last_page": page >= total_pages,
        "empty": contents.is_empty(),
        "contents": contents,
    })
}

async fn taxonomies(State(state): State<AppState>, Query(params): Params) -> Response {
    let answer = async {
        let (page, per_page) = paging(&params)?;
        let (taxonomy, _) = state.listings.oruk_taxonomy().await?;
        Ok::<_, GatewayError>(axum::Json(page_of(vec![taxonomy], page, per_page)))
    };
    answer
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| error_response(&e))
}

async fn taxonomy(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let answer = async {
        let (taxonomy, _) = state.listings.oruk_taxonomy().await?;
        if taxonomy["id"] != json!(id) {
            return Err(GatewayError::NotFound);
        }
        Ok(axum::Json(taxonomy))
    };
    answer
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| error_response(&e))
}

async fn taxonomy_terms(State(state): State<AppState>, Query(params): Params) -> Response {
    let answer = async {
        let (page, per_page) = paging(&params)?;
        let (_, terms) = state.listings.oruk_taxonomy().await?;
        Ok::<_, GatewayError>(axum::Json(page_of(terms, page, per_page)))
    };
    answer
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| error_response(&e))
}

async fn taxonomy_term(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let answer = async {
        let (_, terms) = state.listings.oruk_taxonomy().await?;
        terms
            .into_iter()
            .find(|t| t["id"] == json!(id))
            .map(axum::Json)
            .ok_or(GatewayError::NotFound)
    };
    answer
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| error_response(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_a_short_list_follow_the_envelope() {
        let items: Vec<Value> = (0..5).map(|i| json!({ "id": i })).collect();
        let second = page_of(items.clone(), 2, 2);
        assert_eq!(second["total_items"], 5);
        assert_eq!(second["total_pages"], 3);
        assert_eq!(second["contents"], json!([{ "id": 2 }, { "id": 3 }]));
        assert_eq!(second["first_page"], false);
        assert_eq!(second["last_page"], false);
        let beyond = page_of(items, 9, 2);
        assert_eq!(beyond["empty"], true);
        assert_eq!(beyond["last_page"], true);
    }

    #[test]
    fn bad_numbers_name_their_parameter() {
        let params: HashMap<String, String> =
            [("minimum_age".to_string(), "eighteen".to_string())].into();
        match search_request(&params, false) {
            Err(GatewayError::BadRequest { field, .. }) => assert_eq!(field, "minimum_age"),
            other => panic!("expected a bad request, got {other:?}"),
        }
        let params: HashMap<String, String> = [("proximity".to_string(), "NaN".to_string())].into();
        assert!(matches!(
            search_request(&params, false),
            Err(GatewayError::BadRequest { field, .. }) if field == "proximity"
        ));
    }
}
