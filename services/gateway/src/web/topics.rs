//! The topics, each with the topics below it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::http::base_url;

/// topics.html
#[derive(Serialize)]
struct TopicsPage {
    topics: Vec<TopicBranch>,
}

#[derive(Serialize)]
struct TopicBranch {
    code: String,
    name: String,
    description: String,
    children: Vec<TopicLeaf>,
}

#[derive(Serialize)]
struct TopicLeaf {
    code: String,
    name: String,
}

pub(crate) async fn topics_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(&state, &e),
    };
    let view = TopicsPage {
        topics: topics
            .iter()
            .filter(|t| t.parent_id.is_empty())
            .map(|p| TopicBranch {
                code: p.code.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                children: topics
                    .iter()
                    .filter(|c| c.parent_id == p.id)
                    .map(|c| TopicLeaf {
                        code: c.code.clone(),
                        name: c.name.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let base = base_url(&state, &headers);
    let description = format!(
        "Self-help and peer-support groups in {} by topic.",
        state.config.area_name
    );
    html(
        &state,
        StatusCode::OK,
        "topics.html",
        Layout::new(
            &state,
            "Browse by topic",
            &description,
            Some(format!("{base}/topics")),
        ),
        &view,
    )
}
