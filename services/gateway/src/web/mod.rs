//! The public web directory: server-rendered pages that work without
//! JavaScript — search (words, postcode and distance, topic, day, time of day,
//! format, age, open to new members), a page per group with its next meetings
//! and changes, topics, calendar feeds, the sitemap. Nothing personal appears:
//! pages are built from listings' public view of published groups.
//!
//! One module per area; each page has a typed view (a `Serialize` struct)
//! that its template reads, within the layout of `pages`.

mod calendar;
mod format;
mod group;
mod json_ld;
mod pages;
mod proposed;
mod search;
mod sitemap;
mod topics;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub(crate) use pages::{Pages, error_page};

use crate::AppState;
use crate::error::GatewayError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(search::home))
        .route("/groups/{id}", get(group::group_page))
        .route("/groups/{id}/calendar.ics", get(calendar::group_calendar))
        .route("/proposed", get(proposed::proposed_page))
        .route("/topics", get(topics::topics_page))
        .route("/topics/{code}", get(search::topic_page))
        .route("/topics/{code}/calendar.ics", get(calendar::topic_calendar))
        .route("/calendar.ics", get(calendar::region_calendar))
        .route("/sitemap.xml", get(sitemap::sitemap))
        .route("/robots.txt", get(sitemap::robots))
        .route("/static/site.css", get(stylesheet))
}

pub(crate) async fn not_found(State(state): State<AppState>) -> Response {
    error_page(&state, &GatewayError::NotFound)
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/site.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::pages::{Layout, Page, Pages};

    /// The JSON-LD in a group's page cannot close its script element, whatever
    /// an organiser names the group.
    #[test]
    fn json_ld_cannot_close_its_script_element() {
        #[derive(serde::Serialize)]
        struct View {
            g: serde_json::Value,
            json_ld: Vec<serde_json::Value>,
        }
        let hostile = "</script><script>alert(1)</script>";
        let view = View {
            g: serde_json::json!({"name": "A group", "summary": "", "ages": "", "format": "", "cost": "", "how_to_join": "", "checked": ""}),
            json_ld: vec![serde_json::json!({"name": hostile})],
        };
        let page = Page {
            layout: Layout {
                area_name: "Here".into(),
                page_title: "A group".into(),
                page_description: String::new(),
                canonical: None,
            },
            view: &view,
        };
        let html = Pages::new().render("group.html", &page).unwrap();
        let script = html
            .split("<script type=\"application/ld+json\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the JSON-LD element");
        let back: serde_json::Value = serde_json::from_str(script).expect("JSON in the element");
        assert_eq!(back[0]["name"], hostile, "read back whole");
        assert_eq!(html.matches("<script").count(), 1, "{html}");
    }
}
