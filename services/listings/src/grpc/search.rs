//! SearchGroups over the wire: validate the query, run it on this replica's
//! index, show the page's groups from their public cards.

use chrono::NaiveTime;
use selfhelp_core::validation::{self, Violations};
use selfhelp_proto::common::v1::PageResponse;
use selfhelp_proto::listings::served::{self, EncodedGroup};
use selfhelp_proto::listings::v1 as pb;

use super::{ListingsApi, format_from_wire};
use crate::domain::topic as topics;
use crate::error::ServiceError;
use crate::search::{Cursor, Query, Sort};
use crate::store::group as store;

const DEFAULT_RADIUS_KM: f64 = 10.0;
const MAX_RADIUS_KM: f64 = 200.0;

impl ListingsApi {
    pub(super) async fn search_groups(
        &self,
        req: pb::SearchGroupsRequest,
    ) -> Result<served::SearchGroupsResponse, ServiceError> {
        let page = req.page.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.text("query", &req.query, false, 200);
        let limit =
            validation::page_size(&mut v, "page.page_size", page.page_size, 20, 100) as usize;
        let after = decode_cursor(&mut v, &page.page_token);
        let query_topics = self.search_topics(&mut v, &req.topic).await?;
        let near = self.search_point(&mut v, &req);
        let day = match pb::Weekday::try_from(req.day) {
            Ok(pb::Weekday::Unspecified) => None,
            Ok(d) => super::schedule::weekday_from_wire(d as i32),
            Err(_) => {
                v.add("day", "must be a WEEKDAY_… value");
                None
            }
        };
        let time = |v: &mut Violations, field: &str, value: &str, default: u16| -> u16 {
            if value.trim().is_empty() {
                return default;
            }
            match NaiveTime::parse_from_str(value.trim(), "%H:%M") {
                Ok(t) => {
                    use chrono::Timelike;
                    (t.hour() * 60 + t.minute()) as u16
                }
                Err(_) => {
                    v.add(field, "must be a local time such as 18:00");
                    default
                }
            }
        };
        let time_window =
            (!req.starts_after.is_empty() || !req.starts_before.is_empty()).then(|| {
                (
                    time(&mut v, "starts_after", &req.starts_after, 0),
                    time(&mut v, "starts_before", &req.starts_before, 24 * 60),
                )
            });
        let age = match req.age {
            0 => None,
            a if (1..=120).contains(&a) => Some(a as u8),
            _ => {
                v.add("age", "must be between 1 and 120");
                None
            }
        };
        let format = match req.format {
            0 => None,
            f => {
                let parsed = format_from_wire(f);
                if parsed.is_none() {
                    v.add("format", "must be a MEETING_FORMAT_… value");
                }
                parsed
            }
        };
        let sort = match pb::SearchSort::try_from(req.sort) {
            Ok(pb::SearchSort::Unspecified | pb::SearchSort::Relevance) => Sort::Relevance,
            Ok(pb::SearchSort::Distance) => {
                let point_given = req.latitude.is_some()
                    || req.longitude.is_some()
                    || !req.postcode.trim().is_empty();
                if !point_given {
                    v.add("sort", "sorting by distance needs a point or a postcode");
                }
                Sort::Distance
            }
            Ok(pb::SearchSort::Name) => Sort::Name,
            Ok(pb::SearchSort::NextMeeting) => Sort::NextMeeting,
            Err(_) => {
                v.add("sort", "must be a SEARCH_SORT_… value");
                Sort::Relevance
            }
        };
        v.into_result()?;

        let query = Query {
            text: req.query.trim().to_string(),
            topics: query_topics,
            near,
            day,
            time_window,
            age,
            format,
            open_to_new_members: req.open_to_new_members,
            sort,
            limit,
            after,
            ..Query::default()
        };
        let results = self.search.index.read().expect("index lock").search(&query);

        // The page's groups from their public cards, in the index's order; a group
        // indexed a moment before its card was made comes from the database.
        // A results page shows the card and the next meeting (kept with the
        // card), not every exception.
        let mut cards: Vec<Option<EncodedGroup>> = results
            .hits
            .iter()
            .map(|hit| {
                self.search
                    .card(&hit.id)
                    .map(|card| self.public_answer(&card, 1, false))
            })
            .collect();
        let missing: Vec<String> = results
            .hits
            .iter()
            .zip(&cards)
            .filter(|(_, c)| c.is_none())
            .map(|(h, _)| h.id.clone())
            .collect();
        if !missing.is_empty() {
            let rows = store::find_many(&self.read, missing).await?;
            for (hit, card) in results.hits.iter().zip(cards.iter_mut()) {
                if card.is_none() {
                    *card = rows
                        .iter()
                        .find(|g| g.id == hit.id)
                        .map(|g| self.to_wire(g, None).into());
                }
            }
        }
        let mut groups = Vec::with_capacity(cards.len());
        let mut distances = Vec::with_capacity(cards.len());
        for (hit, card) in results.hits.iter().zip(cards) {
            if let Some(g) = card {
                groups.push(g);
                distances.push(hit.distance_km.unwrap_or(0.0));
            }
        }
        Ok(served::SearchGroupsResponse {
            groups,
            page: Some(PageResponse {
                next_page_token: results.next.as_ref().map(encode_cursor).unwrap_or_default(),
                total_size: results.total as i64,
            }),
            topic_facets: results
                .topic_counts
                .into_iter()
                .map(|(value, count)| pb::FacetCount {
                    value,
                    count: count as i64,
                })
                .collect(),
            format_facets: results
                .format_counts
                .into_iter()
                .map(|(f, count)| pb::FacetCount {
                    value: f.as_str().to_string(),
                    count: count as i64,
                })
                .collect(),
            distance_km: if query.near.is_some() {
                distances
            } else {
                Vec::new()
            },
        })
    }

    /// A topic and everything below it; an unknown topic is a mistake to name.
    async fn search_topics(
        &self,
        v: &mut Violations,
        topic: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let topic = topic.trim().to_ascii_lowercase();
        if topic.is_empty() {
            return Ok(Vec::new());
        }
        let taxonomy = self.taxonomy().await?;
        if taxonomy.iter().any(|t| t.code == topic) {
            Ok(topics::search_codes(&taxonomy, &topic))
        } else {
            v.add("topic", "is not a topic of this region (see ListTopics)");
            Ok(Vec::new())
        }
    }

    /// The centre and radius, from coordinates or a postcode.
    fn search_point(
        &self,
        v: &mut Violations,
        req: &pb::SearchGroupsRequest,
    ) -> Option<((f64, f64), f64)> {
        let radius = match req.radius_km {
            0.0 => DEFAULT_RADIUS_KM,
            r if r > 0.0 && r <= MAX_RADIUS_KM => r,
            _ => {
                v.add(
                    "radius_km",
                    format!("must be between 0 and {MAX_RADIUS_KM}"),
                );
                DEFAULT_RADIUS_KM
            }
        };
        let point = match (req.latitude, req.longitude, req.postcode.trim()) {
            (None, None, "") => None,
            (Some(lat), Some(lon), "") => {
                if !(-90.0..=90.0).contains(&lat) {
                    v.add("latitude", "must be between -90 and 90");
                }
                if !(-180.0..=180.0).contains(&lon) {
                    v.add("longitude", "must be between -180 and 180");
                }
                Some((lat, lon))
            }
            (None, None, postcode) => match self.postcodes.lookup(postcode) {
                Some(p) => Some(p),
                None => {
                    // Unknown is a mistake to point out, not an empty result.
                    v.add("postcode", "is not a postcode this directory knows");
                    None
                }
            },
            (Some(_), None, "") | (None, Some(_), "") => {
                v.add("latitude", "give both latitude and longitude");
                None
            }
            _ => {
                v.add(
                    "postcode",
                    "give either a postcode or coordinates, not both",
                );
                None
            }
        };
        point.map(|p| (p, radius))
    }
}

fn encode_cursor(c: &Cursor) -> String {
    use base64::Engine;
    let text = serde_json::json!([c.key, c.name, c.id]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(v: &mut Violations, token: &str) -> Option<Cursor> {
    use base64::Engine;
    if token.is_empty() {
        return None;
    }
    let parsed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<(f64, String, String)>(&b).ok());
    match parsed {
        Some((key, name, id)) => Some(Cursor { key, name, id }),
        None => {
            v.add("page.page_token", "is not a token from a previous response");
            None
        }
    }
}
