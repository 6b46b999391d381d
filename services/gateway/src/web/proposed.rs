//! Groups being started (listed proposals).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use selfhelp_proto::common::v1::PageRequest;
use serde::Serialize;

use super::format::{encode, format_label};
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::http::base_url;

/// proposed.html
#[derive(Serialize)]
struct ProposedPage {
    groups: Vec<Proposal>,
    total: i64,
    next_url: Option<String>,
    first_url: Option<&'static str>,
}

#[derive(Serialize)]
struct Proposal {
    id: String,
    name: String,
    summary: String,
    area_served: String,
    format: &'static str,
}

pub(crate) async fn proposed_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let after = params.get("after").cloned().unwrap_or_default();
    let answer = match state
        .listings
        .proposed(PageRequest {
            page_size: 20,
            page_token: after.clone(),
        })
        .await
    {
        Ok(a) => a,
        Err(e) => return error_page(&state, &e),
    };
    let next = answer
        .page
        .as_ref()
        .map(|p| p.next_page_token.clone())
        .unwrap_or_default();
    let view = ProposedPage {
        groups: answer
            .groups
            .iter()
            .map(|g| Proposal {
                id: g.id.clone(),
                name: g.name.clone(),
                summary: g.summary.clone(),
                area_served: g.area_served.clone(),
                format: format_label(g.format),
            })
            .collect(),
        total: answer.page.as_ref().map_or(0, |p| p.total_size),
        next_url: (!next.is_empty()).then(|| format!("/proposed?after={}", encode(&next))),
        first_url: (!after.is_empty()).then_some("/proposed"),
    };
    let base = base_url(&state, &headers);
    let description = format!(
        "New self-help and peer-support groups being started in {}.",
        state.config.area_name
    );
    html(
        &state,
        StatusCode::OK,
        "proposed.html",
        Layout::new(
            &state,
            "Groups being started",
            &description,
            Some(format!("{base}/proposed")),
        ),
        &view,
    )
}
