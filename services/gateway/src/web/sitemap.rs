//! For search engines: the sitemap and robots.txt.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use serde::Serialize;

use super::format::encode;
use super::pages::error_page;
use crate::AppState;
use crate::error::GatewayError;
use crate::http::base_url;

/// The sitemap protocol's limit of addresses in one file.
const SITEMAP_MAX_URLS: usize = 50_000;

/// sitemap.xml
#[derive(Serialize)]
struct Sitemap {
    urls: Vec<Url>,
}

#[derive(Serialize)]
struct Url {
    loc: String,
    lastmod: Option<String>,
}

impl Url {
    fn at(loc: String) -> Url {
        Url { loc, lastmod: None }
    }
}

/// The day a group last changed, as the sitemap protocol writes it.
fn lastmod(g: &pb::Group) -> Option<String> {
    g.updated_at.as_ref().and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, 0).map(|d| d.format("%Y-%m-%d").to_string())
    })
}

pub(crate) async fn sitemap(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let mut urls = vec![
        Url::at(format!("{base}/")),
        Url::at(format!("{base}/topics")),
    ];
    let built = async {
        for t in state.listings.topics().await?.iter() {
            urls.push(Url::at(format!("{base}/topics/{}", encode(&t.code))));
        }
        let mut token = String::new();
        loop {
            let answer = state
                .listings
                .search(pb::SearchGroupsRequest {
                    page: Some(PageRequest {
                        page_size: 100,
                        page_token: token.clone(),
                    }),
                    sort: pb::SearchSort::Name as i32,
                    ..Default::default()
                })
                .await?;
            for g in &answer.groups {
                urls.push(Url {
                    loc: format!("{base}/groups/{}", g.id),
                    lastmod: lastmod(g),
                });
            }
            token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() || urls.len() >= SITEMAP_MAX_URLS {
                break;
            }
        }
        let mut offset = String::new();
        urls.push(Url::at(format!("{base}/proposed")));
        loop {
            let answer = state
                .listings
                .proposed(PageRequest {
                    page_size: 100,
                    page_token: offset.clone(),
                })
                .await?;
            for g in &answer.groups {
                urls.push(Url {
                    loc: format!("{base}/groups/{}", g.id),
                    lastmod: lastmod(g),
                });
            }
            offset = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            if offset.is_empty() || urls.len() >= SITEMAP_MAX_URLS {
                break;
            }
        }
        Ok::<_, GatewayError>(())
    };
    if let Err(e) = built.await {
        return error_page(&state, &e);
    }
    urls.truncate(SITEMAP_MAX_URLS);
    match state.pages.render("sitemap.xml", &Sitemap { urls }) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Err(e) => error_page(&state, &e),
    }
}

pub(crate) async fn robots(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("User-agent: *\nAllow: /\nDisallow: /oruk/\nSitemap: {base}/sitemap.xml\n"),
    )
        .into_response()
}
