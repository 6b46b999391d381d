//! Search: the home page, a topic's page, and their results.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use serde::Serialize;

use super::format::{encode, format_label, meeting_date};
use super::forms::FieldError;
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::base_url;

const RESULTS_PER_PAGE: i32 = 20;
const DISTANCES_KM: [u32; 6] = [2, 5, 10, 25, 50, 100];
const DEFAULT_DISTANCE_KM: u32 = 10;

/// The search form as submitted (every field a string, as typed).
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct SearchForm {
    q: String,
    postcode: String,
    distance: u32,
    topic: String,
    day: String,
    time: String,
    format: String,
    age: String,
    open: bool,
    after: String,
    /// Whether any of the narrowing fields is set (the form shows them open).
    more: bool,
}

impl SearchForm {
    fn from_params(params: &HashMap<String, String>) -> (SearchForm, Vec<FieldError>) {
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut errors = Vec::new();
        let distance = match get("distance").as_str() {
            "" => DEFAULT_DISTANCE_KM,
            d => match d.parse::<u32>() {
                Ok(km) if DISTANCES_KM.contains(&km) => km,
                _ => {
                    errors.push(FieldError::new(
                        "distance",
                        "Choose a distance from the list",
                    ));
                    DEFAULT_DISTANCE_KM
                }
            },
        };
        let form = SearchForm {
            q: get("q"),
            postcode: get("postcode"),
            distance,
            topic: get("topic"),
            day: get("day"),
            time: get("time"),
            format: get("format"),
            age: get("age"),
            open: !get("open").is_empty(),
            after: get("after"),
            more: false,
        };
        let more = !(form.topic.is_empty()
            && form.day.is_empty()
            && form.time.is_empty()
            && form.format.is_empty()
            && form.age.is_empty()
            && !form.open);
        (SearchForm { more, ..form }, errors)
    }

    fn is_search(&self) -> bool {
        !(self.q.is_empty() && self.postcode.is_empty() && !self.more)
    }

    /// The request for listings, or the fields the person needs to correct.
    fn request(&self) -> Result<pb::SearchGroupsRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let day = match self.day.as_str() {
            "" => pb::Weekday::Unspecified,
            d => pb::Weekday::from_str_name(&format!("WEEKDAY_{}", d.to_ascii_uppercase()))
                .unwrap_or_else(|| {
                    errors.push(FieldError::new("day", "Choose a day from the list"));
                    pb::Weekday::Unspecified
                }),
        };
        let (starts_after, starts_before) = match self.time.as_str() {
            "" => ("", ""),
            "morning" => ("05:00", "11:59"),
            "afternoon" => ("12:00", "16:59"),
            "evening" => ("17:00", "23:59"),
            _ => {
                errors.push(FieldError::new(
                    "time",
                    "Choose a time of day from the list",
                ));
                ("", "")
            }
        };
        let format = match self.format.as_str() {
            "" => pb::MeetingFormat::Unspecified,
            f => pb::MeetingFormat::from_str_name(&format!(
                "MEETING_FORMAT_{}",
                f.to_ascii_uppercase()
            ))
            .unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "format",
                    "Choose a way of meeting from the list",
                ));
                pb::MeetingFormat::Unspecified
            }),
        };
        let age = match self.age.as_str() {
            "" => 0,
            a => match a.parse::<i32>() {
                Ok(n) if (1..=120).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new("age", "Enter an age from 1 to 120"));
                    0
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(pb::SearchGroupsRequest {
            query: self.q.clone(),
            topic: self.topic.clone(),
            page: Some(PageRequest {
                page_size: RESULTS_PER_PAGE,
                page_token: self.after.clone(),
            }),
            postcode: self.postcode.clone(),
            radius_km: if self.postcode.is_empty() {
                0.0
            } else {
                f64::from(self.distance)
            },
            day: day as i32,
            starts_after: starts_after.into(),
            starts_before: starts_before.into(),
            age,
            format: format as i32,
            open_to_new_members: self.open,
            sort: if self.postcode.is_empty() {
                pb::SearchSort::Unspecified as i32
            } else {
                pb::SearchSort::Distance as i32
            },
            ..Default::default()
        })
    }

    /// The query string of this search, with `after` for another page.
    fn query_string(&self, after: &str, fixed_topic: bool) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("q", self.q.clone()),
            ("postcode", self.postcode.clone()),
            ("day", self.day.clone()),
            ("time", self.time.clone()),
            ("format", self.format.clone()),
            ("age", self.age.clone()),
        ];
        if !self.postcode.is_empty() {
            pairs.push(("distance", self.distance.to_string()));
        }
        if !fixed_topic {
            pairs.push(("topic", self.topic.clone()));
        }
        if self.open {
            pairs.push(("open", "1".into()));
        }
        pairs.push(("after", after.to_string()));
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Listings' name for a field, as the form calls it.
fn form_field(listings_field: &str) -> &str {
    match listings_field {
        "query" => "q",
        "radius_km" => "distance",
        "starts_after" | "starts_before" => "time",
        "page.page_token" => "after",
        other => other,
    }
}

/// One choice of a select box.
#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

const DAYS: [Choice; 7] = [
    Choice {
        value: "monday",
        label: "Monday",
    },
    Choice {
        value: "tuesday",
        label: "Tuesday",
    },
    Choice {
        value: "wednesday",
        label: "Wednesday",
    },
    Choice {
        value: "thursday",
        label: "Thursday",
    },
    Choice {
        value: "friday",
        label: "Friday",
    },
    Choice {
        value: "saturday",
        label: "Saturday",
    },
    Choice {
        value: "sunday",
        label: "Sunday",
    },
];
const TIMES: [Choice; 3] = [
    Choice {
        value: "morning",
        label: "Morning",
    },
    Choice {
        value: "afternoon",
        label: "Afternoon",
    },
    Choice {
        value: "evening",
        label: "Evening",
    },
];
const FORMATS: [Choice; 4] = [
    Choice {
        value: "in_person",
        label: "In person",
    },
    Choice {
        value: "online",
        label: "Online",
    },
    Choice {
        value: "phone",
        label: "By phone",
    },
    Choice {
        value: "hybrid",
        label: "In person or online",
    },
];

/// A topic in the select box, children indented under their parents.
#[derive(Serialize)]
struct TopicChoice {
    code: String,
    label: String,
}

/// The calendar feed of what is searched.
#[derive(Serialize)]
struct Feed {
    url: String,
    webcal: String,
}

/// search.html
#[derive(Serialize)]
struct SearchPage {
    heading: String,
    action: String,
    feed: Feed,
    form: SearchForm,
    errors: Vec<FieldError>,
    field_errors: HashMap<String, String>,
    show_topic: bool,
    topics: Vec<TopicChoice>,
    distances: [u32; 6],
    days: &'static [Choice],
    times: &'static [Choice],
    formats: &'static [Choice],
    results: Option<Results>,
}

#[derive(Serialize)]
struct Results {
    total: i64,
    groups: Vec<ResultCard>,
    next_url: Option<String>,
    first_url: Option<String>,
}

#[derive(Serialize)]
struct ResultCard {
    id: String,
    name: String,
    summary: String,
    distance: Option<String>,
    when: Option<String>,
    next_meeting: Option<String>,
    format: &'static str,
    place: Option<String>,
}

pub(crate) async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    search_page(&state, &headers, params, None).await
}

pub(crate) async fn topic_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(mut params): Query<HashMap<String, String>>,
) -> Response {
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(&state, &e),
    };
    let Some(topic) = topics.iter().find(|t| t.code == code).cloned() else {
        return error_page(&state, &GatewayError::NotFound);
    };
    params.insert("topic".into(), topic.code.clone());
    search_page(&state, &headers, params, Some(topic)).await
}

async fn search_page(
    state: &AppState,
    headers: &HeaderMap,
    params: HashMap<String, String>,
    topic: Option<pb::Topic>,
) -> Response {
    let (form, mut errors) = SearchForm::from_params(&params);
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(state, &e),
    };
    let base = base_url(state, headers);
    let action = match &topic {
        Some(t) => format!("/topics/{}", encode(&t.code)),
        None => "/".to_string(),
    };
    let mut results = None;
    if errors.is_empty() && (form.is_search() || topic.is_some()) {
        match form.request() {
            Err(mut e) => errors.append(&mut e),
            Ok(request) => match state.listings.search(request).await {
                Ok(answer) => {
                    results = Some(results_view(&answer, &form, &action, topic.is_some()));
                }
                Err(GatewayError::BadRequest { field, message }) => {
                    let message = match field.as_str() {
                        "postcode" => "We do not know that postcode. Check it, or try the first half (for example NG1)".to_string(),
                        _ => message,
                    };
                    errors.push(FieldError::new(form_field(&field), message));
                }
                Err(e) => return error_page(state, &e),
            },
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (heading, title, description) = match &topic {
        Some(t) => (
            format!("{} groups", t.name),
            format!("{} groups", t.name),
            format!(
                "Self-help and peer-support groups about {} in {}.",
                t.name.to_lowercase(),
                state.config.area_name
            ),
        ),
        None => (
            String::new(),
            String::new(),
            format!(
                "Find a self-help or peer-support group in {}: search by topic, place, day and time.",
                state.config.area_name
            ),
        ),
    };
    let host = base.split("://").nth(1).unwrap_or(&base).to_string();
    let feed_path = match &topic {
        Some(t) => format!("/topics/{}/calendar.ics", encode(&t.code)),
        None => "/calendar.ics".to_string(),
    };
    let canonical = (!form.is_search()).then(|| format!("{base}{action}"));
    let view = SearchPage {
        heading,
        action,
        feed: Feed {
            webcal: format!("webcal://{host}{feed_path}"),
            url: feed_path,
        },
        field_errors: errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect(),
        errors,
        form,
        show_topic: topic.is_none(),
        topics: topic_choices(&topics),
        distances: DISTANCES_KM,
        days: &DAYS,
        times: &TIMES,
        formats: &FORMATS,
        results,
    };
    html(
        state,
        status,
        "search.html",
        Layout::new(state, &title, &description, canonical),
        &view,
    )
}

fn topic_choices(topics: &[pb::Topic]) -> Vec<TopicChoice> {
    let mut choices = Vec::new();
    for parent in topics.iter().filter(|t| t.parent_id.is_empty()) {
        choices.push(TopicChoice {
            code: parent.code.clone(),
            label: parent.name.clone(),
        });
        for child in topics.iter().filter(|t| t.parent_id == parent.id) {
            choices.push(TopicChoice {
                code: child.code.clone(),
                label: format!("– {}", child.name),
            });
        }
    }
    choices
}

fn results_view(
    answer: &pb::SearchGroupsResponse,
    form: &SearchForm,
    action: &str,
    fixed_topic: bool,
) -> Results {
    let groups = answer
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| ResultCard {
            id: g.id.clone(),
            name: g.name.clone(),
            summary: g.summary.clone(),
            distance: answer.distance_km.get(i).map(|km| {
                if *km < 0.1 {
                    "Less than 0.1 km away".to_string()
                } else {
                    format!("{km:.1} km away")
                }
            }),
            when: g.schedule.as_ref().map(|s| s.description.clone()),
            next_meeting: g
                .next_occurrences
                .first()
                .map(|o| meeting_date(&o.local_date, &o.local_start_time)),
            format: format_label(g.format),
            place: g.venues.first().map(|v| {
                if v.town.is_empty() {
                    v.name.clone()
                } else {
                    v.town.clone()
                }
            }),
        })
        .collect();
    let next_token = answer
        .page
        .as_ref()
        .map(|p| p.next_page_token.clone())
        .unwrap_or_default();
    Results {
        total: answer.page.as_ref().map_or(0, |p| p.total_size),
        groups,
        next_url: (!next_token.is_empty())
            .then(|| format!("{action}?{}", form.query_string(&next_token, fixed_topic))),
        first_url: (!form.after.is_empty())
            .then(|| format!("{action}?{}", form.query_string("", fixed_topic))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_refuses_what_is_not_on_its_lists() {
        let params: HashMap<String, String> = [
            ("day".to_string(), "someday".to_string()),
            ("age".to_string(), "200".to_string()),
        ]
        .into();
        let (form, errors) = SearchForm::from_params(&params);
        assert!(errors.is_empty());
        let refused = form.request().unwrap_err();
        let fields: Vec<&str> = refused.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["day", "age"]);
    }

    #[test]
    fn next_page_links_keep_the_search() {
        let params: HashMap<String, String> = [
            ("q".to_string(), "grief & loss".to_string()),
            ("postcode".to_string(), "NG1 5FS".to_string()),
        ]
        .into();
        let (form, _) = SearchForm::from_params(&params);
        let qs = form.query_string("tok/en", false);
        assert_eq!(
            qs,
            "q=grief%20%26%20loss&postcode=NG1%205FS&distance=10&after=tok%2Fen"
        );
    }
}
