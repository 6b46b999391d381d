//! The public web directory: server-rendered pages that work without
//! JavaScript — search (words, postcode and distance, topic, day, time of day,
//! format, age, open to new members), a page per group with its next meetings
//! and changes, topics, calendar feeds, the sitemap. Nothing personal appears:
//! pages are built from listings' public view of published groups.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{NaiveDate, NaiveTime};
use minijinja::Environment;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::GatewayError;
use crate::http::base_url;

const RESULTS_PER_PAGE: i32 = 20;
const DISTANCES_KM: [u32; 6] = [2, 5, 10, 25, 50, 100];
const DEFAULT_DISTANCE_KM: u32 = 10;
/// The sitemap protocol's limit of addresses in one file.
const SITEMAP_MAX_URLS: usize = 50_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/groups/{id}", get(group_page))
        .route("/groups/{id}/calendar.ics", get(group_calendar))
        .route("/proposed", get(proposed_page))
        .route("/topics", get(topics_page))
        .route("/topics/{code}", get(topic_page))
        .route("/topics/{code}/calendar.ics", get(topic_calendar))
        .route("/calendar.ics", get(region_calendar))
        .route("/sitemap.xml", get(sitemap))
        .route("/robots.txt", get(robots))
        .route("/static/site.css", get(stylesheet))
}

/// The page templates, parsed once.
pub(crate) struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("search.html", include_str!("../templates/search.html")),
            ("group.html", include_str!("../templates/group.html")),
            ("topics.html", include_str!("../templates/topics.html")),
            ("proposed.html", include_str!("../templates/proposed.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("sitemap.xml", include_str!("../templates/sitemap.xml")),
        ] {
            env.add_template(name, source)
                .expect("the gateway's templates parse");
        }
        Pages { env }
    }

    fn render(&self, name: &str, context: &Value) -> Result<String, GatewayError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))))
            .map_err(|e| {
                GatewayError::Upstream(tonic::Status::internal(format!("template {name}: {e}")))
            })
    }
}

/// An HTML page with the site-wide values every template uses.
fn page(
    state: &AppState,
    status: StatusCode,
    template: &str,
    title: &str,
    description: &str,
    canonical: Option<String>,
    mut context: Value,
) -> Response {
    let area = &state.config.area_name;
    context["area_name"] = json!(area);
    context["page_title"] = json!(if title.is_empty() {
        format!("{area} self-help groups")
    } else {
        format!("{title} – {area} self-help groups")
    });
    context["page_description"] = json!(description);
    context["canonical"] = json!(canonical);
    match state.pages.render(template, &context) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => error_page(state, &e),
    }
}

/// The page for an error: what happened in plain words, and where to go next.
pub(crate) fn error_page(state: &AppState, error: &GatewayError) -> Response {
    let (title, message) = match error {
        GatewayError::NotFound => (
            "Page not found",
            "We could not find that page. The group may have closed or moved, or the address may be mistyped.".to_string(),
        ),
        GatewayError::BadRequest { message, .. } => ("Something in the address is not right", message.clone()),
        GatewayError::TooManyRequests { .. } => (
            "Too many requests",
            "Too many pages were asked for from your connection in a short time. Please wait a few seconds and try again.".to_string(),
        ),
        GatewayError::Unavailable => (
            "The directory is not available just now",
            "Please try again in a minute.".to_string(),
        ),
        GatewayError::Upstream(status) => {
            tracing::error!(code = ?status.code(), message = status.message(), "a page failed");
            ("Sorry, something went wrong", "Please try again in a minute.".to_string())
        }
    };
    let context = json!({
        "area_name": state.config.area_name,
        "page_title": format!("{title} – {} self-help groups", state.config.area_name),
        "page_description": message,
        "canonical": Value::Null,
        "title": title,
        "message": message,
    });
    let html = state
        .pages
        .render("error.html", &context)
        .unwrap_or_else(|_| {
            format!(
                "<!doctype html><html lang=\"en\"><title>{title}</title><h1>{title}</h1></html>"
            )
        });
    let mut response = (
        error.status(),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let GatewayError::TooManyRequests { retry_after_secs } = error {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(*retry_after_secs),
        );
    }
    response
}

pub(crate) async fn not_found(State(state): State<AppState>) -> Response {
    error_page(&state, &GatewayError::NotFound)
}

// ---------------------------------------------------------------- search

/// The search form as submitted (every field a string, as typed).
#[derive(Debug, Default, Clone, serde::Serialize)]
struct SearchForm {
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
    fn from_params(params: &HashMap<String, String>) -> (SearchForm, Vec<(String, String)>) {
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
                    errors.push(("distance".into(), "Choose a distance from the list".into()));
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
    fn request(&self) -> Result<pb::SearchGroupsRequest, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let day = match self.day.as_str() {
            "" => pb::Weekday::Unspecified,
            d => pb::Weekday::from_str_name(&format!("WEEKDAY_{}", d.to_ascii_uppercase()))
                .unwrap_or_else(|| {
                    errors.push(("day".into(), "Choose a day from the list".into()));
                    pb::Weekday::Unspecified
                }),
        };
        let (starts_after, starts_before) = match self.time.as_str() {
            "" => ("", ""),
            "morning" => ("05:00", "11:59"),
            "afternoon" => ("12:00", "16:59"),
            "evening" => ("17:00", "23:59"),
            _ => {
                errors.push(("time".into(), "Choose a time of day from the list".into()));
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
                errors.push((
                    "format".into(),
                    "Choose a way of meeting from the list".into(),
                ));
                pb::MeetingFormat::Unspecified
            }),
        };
        let age = match self.age.as_str() {
            "" => 0,
            a => match a.parse::<i32>() {
                Ok(n) if (1..=120).contains(&n) => n,
                _ => {
                    errors.push(("age".into(), "Enter an age from 1 to 120".into()));
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

/// Everything but RFC 3986's unreserved characters, for query values and path segments.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URL_COMPONENT).to_string()
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

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    search_page(&state, &headers, params, None).await
}

async fn topic_page(
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
    let mut results = Value::Null;
    if errors.is_empty() && (form.is_search() || topic.is_some()) {
        match form.request() {
            Err(mut e) => errors.append(&mut e),
            Ok(request) => match state.listings.search(request).await {
                Ok(answer) => {
                    results = results_view(&answer, &form, &action, topic.is_some());
                }
                Err(GatewayError::BadRequest { field, message }) => {
                    let message = match field.as_str() {
                        "postcode" => "We do not know that postcode. Check it, or try the first half (for example NG1)".to_string(),
                        _ => message,
                    };
                    errors.push((form_field(&field).to_string(), message));
                }
                Err(e) => return error_page(state, &e),
            },
        }
    }
    let field_errors: HashMap<&str, &str> = errors
        .iter()
        .map(|(f, m)| (f.as_str(), m.as_str()))
        .collect();
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
    let context = json!({
        "heading": heading,
        "action": action,
        "feed": {"url": feed_path, "webcal": format!("webcal://{host}{feed_path}")},
        "form": form,
        "errors": errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
        "field_errors": field_errors,
        "show_topic": topic.is_none(),
        "topics": topic_options(&topics),
        "distances": DISTANCES_KM,
        "days": options(&[
            ("monday", "Monday"),
            ("tuesday", "Tuesday"),
            ("wednesday", "Wednesday"),
            ("thursday", "Thursday"),
            ("friday", "Friday"),
            ("saturday", "Saturday"),
            ("sunday", "Sunday"),
        ]),
        "times": options(&[("morning", "Morning"), ("afternoon", "Afternoon"), ("evening", "Evening")]),
        "formats": options(&[
            ("in_person", "In person"),
            ("online", "Online"),
            ("phone", "By phone"),
            ("hybrid", "In person or online"),
        ]),
        "results": results,
    });
    let canonical = if form.is_search() {
        None
    } else {
        Some(format!("{base}{action}"))
    };
    page(
        state,
        status,
        "search.html",
        &title,
        &description,
        canonical,
        context,
    )
}

fn options(pairs: &[(&str, &str)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label}))
        .collect()
}

/// Topics for the select box, children indented under their parents.
fn topic_options(topics: &[pb::Topic]) -> Vec<Value> {
    let mut options = Vec::new();
    for parent in topics.iter().filter(|t| t.parent_id.is_empty()) {
        options.push(json!({"code": parent.code, "label": parent.name}));
        for child in topics.iter().filter(|t| t.parent_id == parent.id) {
            options.push(json!({"code": child.code, "label": format!("– {}", child.name)}));
        }
    }
    options
}

fn results_view(
    answer: &pb::SearchGroupsResponse,
    form: &SearchForm,
    action: &str,
    fixed_topic: bool,
) -> Value {
    let groups: Vec<Value> = answer
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let distance = answer
                .distance_km
                .get(i)
                .map(|km| {
                    if *km < 0.1 {
                        "Less than 0.1 km away".to_string()
                    } else {
                        format!("{km:.1} km away")
                    }
                });
            json!({
                "id": g.id,
                "name": g.name,
                "summary": g.summary,
                "distance": distance,
                "when": g.schedule.as_ref().map(|s| s.description.clone()),
                "next_meeting": g.next_occurrences.first().map(|o| meeting_date(&o.local_date, &o.local_start_time)),
                "format": format_label(g.format),
                "place": g.venues.first().map(|v| if v.town.is_empty() { v.name.clone() } else { v.town.clone() }),
            })
        })
        .collect();
    let next_token = answer
        .page
        .as_ref()
        .map(|p| p.next_page_token.clone())
        .unwrap_or_default();
    let total = answer.page.as_ref().map_or(0, |p| p.total_size);
    json!({
        "total": total,
        "groups": groups,
        "next_url": (!next_token.is_empty()).then(|| format!("{action}?{}", form.query_string(&next_token, fixed_topic))),
        "first_url": (!form.after.is_empty()).then(|| format!("{action}?{}", form.query_string("", fixed_topic))),
    })
}

// ---------------------------------------------------------------- a group

async fn group_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let group = match state.listings.group(&id).await {
        Ok(g) => g,
        Err(e) => return error_page(&state, &e),
    };
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(&state, &e),
    };
    let base = base_url(&state, &headers);
    let url = format!("{base}/groups/{}", group.id);
    let view = group_view(&group, &topics, &base);
    // A proposal does not meet yet: no events for search engines to list.
    let json_ld = (group.status == pb::GroupStatus::Published as i32)
        .then(|| script_json(&events_json_ld(&group, &url)));
    let context = json!({ "g": view, "json_ld": json_ld });
    page(
        &state,
        StatusCode::OK,
        "group.html",
        &group.name,
        &group.summary,
        Some(url),
        context,
    )
}

/// JSON for a `<script type="application/ld+json">` element: nothing in it can
/// close the element or start markup.
fn script_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn group_view(g: &pb::Group, topics: &[pb::Topic], base: &str) -> Value {
    let venue_text = |v: &pb::Venue| {
        [&v.name, &v.address, &v.town, &v.postcode]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut meetings: Vec<(String, Value)> = g
        .next_occurrences
        .iter()
        .map(|o| {
            let change = match pb::OccurrenceKind::try_from(o.kind) {
                Ok(pb::OccurrenceKind::Moved) => {
                    Some(format!("Moved from {}", long_date(&o.original_date)))
                }
                Ok(pb::OccurrenceKind::OneOff) => Some("Extra meeting".to_string()),
                _ => None,
            };
            let place = o
                .venue_index
                .and_then(|i| g.venues.get(i as usize))
                .map(venue_text);
            (
                o.local_date.clone(),
                json!({
                    "date": long_date(&o.local_date),
                    "time": time_range(&o.local_start_time, &o.local_end_time),
                    "change": change,
                    "place": place,
                    "note": o.note,
                    "cancelled": false,
                }),
            )
        })
        .collect();
    // Cancelled meetings from today on, shown where they would have been.
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let last_shown = meetings.last().map(|(d, _)| d.clone());
    for e in &g.exceptions {
        let cancelled = e.kind == pb::ExceptionKind::Cancelled as i32;
        let in_range = e.date >= today && last_shown.as_ref().is_none_or(|last| &e.date <= last);
        if cancelled && in_range {
            meetings.push((
                e.date.clone(),
                json!({
                    "date": long_date(&e.date),
                    "time": Value::Null,
                    "change": "Cancelled",
                    "place": Value::Null,
                    "note": e.note,
                    "cancelled": true,
                }),
            ));
        }
    }
    meetings.sort_by(|a, b| a.0.cmp(&b.0));
    let eligibility = g.eligibility.clone().unwrap_or_default();
    let ages = match (eligibility.minimum_age, eligibility.maximum_age) {
        (0, 0) => "All ages.".to_string(),
        (min, 0) => format!("Ages {min} and over."),
        (0, max) => format!("Ages up to {max}."),
        (min, max) => format!("Ages {min} to {max}."),
    };
    let cost = g.cost.clone().unwrap_or_default();
    let cost_text = {
        let kind = match pb::CostKind::try_from(cost.kind) {
            Ok(pb::CostKind::Free) => "Free.",
            Ok(pb::CostKind::Donation) => "Donations welcome.",
            Ok(pb::CostKind::Fee) => "There is a charge.",
            _ => "Ask the group about any cost.",
        };
        if cost.description.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} {}", cost.description)
        }
    };
    let meets_remotely = matches!(
        pb::MeetingFormat::try_from(g.format),
        Ok(pb::MeetingFormat::Online | pb::MeetingFormat::Phone)
    );
    let proposal = g.status == pb::GroupStatus::ProposalListed as i32;
    let how_to_join = match pb::JoinPolicy::try_from(g.join_policy) {
        _ if proposal => {
            "This group is being started and does not meet yet. If you are interested, contact the people starting it."
        }
        // Online and phone groups give the link or number to members only.
        Ok(pb::JoinPolicy::Open) if meets_remotely => {
            "Open to new members: contact the group and they will send you the joining details."
        }
        Ok(pb::JoinPolicy::Open) => {
            "Open to new members: you can simply come along, or contact the group first if you would like to."
        }
        Ok(pb::JoinPolicy::Approval) => {
            "Ask to join: contact the group and the organisers will reply."
        }
        Ok(pb::JoinPolicy::InviteOnly) => {
            "By invitation only: contact the group to ask about joining."
        }
        _ => "Contact the group to ask about joining.",
    };
    let checked = if g.assured_date.is_empty() {
        "These details have not been checked yet.".to_string()
    } else if g.recently_checked {
        format!("Details last checked on {}.", long_date(&g.assured_date))
    } else {
        format!(
            "Details last checked on {}; they may be out of date.",
            long_date(&g.assured_date)
        )
    };
    let contact = g.contact.clone().unwrap_or_default();
    let has_contact = !(contact.name.is_empty()
        && contact.email.is_empty()
        && contact.phone.is_empty()
        && contact.website.is_empty());
    let website =
        if contact.website.starts_with("https://") || contact.website.starts_with("http://") {
            contact.website.clone()
        } else {
            String::new()
        };
    let host = base.split("://").nth(1).unwrap_or(base);
    let venues: Vec<Value> = g
        .venues
        .iter()
        .map(|v| {
            let address: Vec<&str> = [&v.address, &v.town, &v.postcode]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(String::as_str)
                .collect();
            json!({
                "name": if v.name.is_empty() { "The venue" } else { v.name.as_str() },
                "address": address.join(", "),
                "accessibility": v.accessibility,
                "travel_notes": v.travel_notes,
            })
        })
        .collect();
    json!({
        "id": g.id,
        "name": g.name,
        "summary": g.summary,
        "description": g.description.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect::<Vec<_>>(),
        "topics": g.topics.iter().filter_map(|code| topics.iter().find(|t| &t.code == code)).map(|t| json!({"code": t.code, "name": t.name})).collect::<Vec<_>>(),
        "eligibility": eligibility.description,
        "ages": ages,
        "carers_welcome": eligibility.carers_welcome,
        "family_welcome": eligibility.family_welcome,
        "area_served": g.area_served,
        "format": format_label(g.format),
        "when": g.schedule.as_ref().map(|s| s.description.clone()),
        "meetings": meetings.into_iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "venues": venues,
        "cost": cost_text,
        "languages": g.languages.iter().map(|c| language_name(c)).collect::<Vec<_>>().join(", "),
        "how_to_join": how_to_join,
        "contact": has_contact.then(|| json!({
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "phone_link": contact.phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect::<String>(),
            "website": website,
        })),
        "checked": checked,
        "proposal": proposal,
        "has_meetings": !proposal && (g.schedule.is_some() || !g.next_occurrences.is_empty()),
        "calendar_url": format!("/groups/{}/calendar.ics", g.id),
        "webcal_url": format!("webcal://{host}/groups/{}/calendar.ics", g.id),
    })
}

/// schema.org `Event`s for the next meetings, so search engines can list them.
fn events_json_ld(g: &pb::Group, url: &str) -> Value {
    let attendance = match pb::MeetingFormat::try_from(g.format) {
        Ok(pb::MeetingFormat::Online | pb::MeetingFormat::Phone) => {
            "https://schema.org/OnlineEventAttendanceMode"
        }
        Ok(pb::MeetingFormat::Hybrid) => "https://schema.org/MixedEventAttendanceMode",
        _ => "https://schema.org/OfflineEventAttendanceMode",
    };
    let free = g
        .cost
        .as_ref()
        .is_some_and(|c| c.kind == pb::CostKind::Free as i32);
    let events: Vec<Value> = g
        .next_occurrences
        .iter()
        .take(10)
        .map(|o| {
            let venue = o
                .venue_index
                .and_then(|i| g.venues.get(i as usize))
                .or_else(|| g.venues.first());
            let location = match venue {
                Some(v) => json!({
                    "@type": "Place",
                    "name": if v.name.is_empty() { &v.town } else { &v.name },
                    "address": {
                        "@type": "PostalAddress",
                        "streetAddress": v.address,
                        "addressLocality": v.town,
                        "postalCode": v.postcode,
                        "addressCountry": "GB",
                    },
                }),
                None => json!({"@type": "VirtualLocation", "url": url}),
            };
            let status = if o.kind == pb::OccurrenceKind::Moved as i32 {
                "https://schema.org/EventRescheduled"
            } else {
                "https://schema.org/EventScheduled"
            };
            json!({
                "@context": "https://schema.org",
                "@type": "Event",
                "name": g.name,
                "description": g.summary,
                "url": url,
                "startDate": o.starts_at.as_ref().map(rfc3339),
                "endDate": o.ends_at.as_ref().map(rfc3339),
                "eventStatus": status,
                "eventAttendanceMode": attendance,
                "isAccessibleForFree": free,
                "location": location,
                "organizer": {"@type": "Organization", "name": g.name, "url": url},
            })
        })
        .collect();
    Value::Array(events)
}

fn rfc3339(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn format_label(format: i32) -> &'static str {
    match pb::MeetingFormat::try_from(format) {
        Ok(pb::MeetingFormat::InPerson) => "Meets in person",
        Ok(pb::MeetingFormat::Online) => "Meets online",
        Ok(pb::MeetingFormat::Phone) => "Meets by phone",
        Ok(pb::MeetingFormat::Hybrid) => "Meets in person and online",
        _ => "Ask the group how it meets",
    }
}

/// "2026-12-09" as "Wednesday 9 December 2026" (as given when it does not parse).
fn long_date(date: &str) -> String {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| d.format("%A %-d %B %Y").to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// "19:00" as "7:00pm".
fn clock(time: &str) -> Option<String> {
    NaiveTime::parse_from_str(time, "%H:%M")
        .ok()
        .map(|t| t.format("%-I:%M%P").to_string())
}

fn time_range(start: &str, end: &str) -> Option<String> {
    match (clock(start), clock(end)) {
        (Some(s), Some(e)) => Some(format!("{s} to {e}")),
        (Some(s), None) => Some(s),
        _ => None,
    }
}

fn meeting_date(date: &str, start: &str) -> String {
    match clock(start) {
        Some(t) => format!("{}, {t}", long_date(date)),
        None => long_date(date),
    }
}

/// Language names for the codes groups use most; the code otherwise.
fn language_name(code: &str) -> String {
    let name = match code {
        "en" => "English",
        "cy" => "Welsh",
        "gd" => "Scottish Gaelic",
        "ga" => "Irish",
        "pl" => "Polish",
        "ro" => "Romanian",
        "pa" => "Punjabi",
        "ur" => "Urdu",
        "bn" => "Bengali",
        "gu" => "Gujarati",
        "ar" => "Arabic",
        "so" => "Somali",
        "fa" => "Persian",
        "ku" => "Kurdish",
        "pt" => "Portuguese",
        "es" => "Spanish",
        "fr" => "French",
        "it" => "Italian",
        "lt" => "Lithuanian",
        "zh" => "Chinese",
        "tr" => "Turkish",
        "uk" => "Ukrainian",
        "ru" => "Russian",
        "ta" => "Tamil",
        "hi" => "Hindi",
        "sgn" => "Sign language",
        "bfi" => "British Sign Language",
        other => return other.to_string(),
    };
    name.to_string()
}

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

async fn group_calendar(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let answer = state.listings.calendar(&id).await;
    calendar_response(&state, answer)
}

/// Every published group's meetings in the region.
async fn region_calendar(State(state): State<AppState>) -> Response {
    let answer = state.listings.directory_calendar("").await;
    calendar_response(&state, answer)
}

/// The meetings of a topic's groups (and of the topics below it).
async fn topic_calendar(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let answer = state.listings.directory_calendar(&code).await;
    calendar_response(&state, answer)
}

// ---------------------------------------------------------------- groups being started

async fn proposed_page(
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
    let groups: Vec<Value> = answer
        .groups
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "name": g.name,
                "summary": g.summary,
                "area_served": g.area_served,
                "format": format_label(g.format),
            })
        })
        .collect();
    let next = answer
        .page
        .as_ref()
        .map(|p| p.next_page_token.clone())
        .unwrap_or_default();
    let base = base_url(&state, &headers);
    page(
        &state,
        StatusCode::OK,
        "proposed.html",
        "Groups being started",
        &format!(
            "New self-help and peer-support groups being started in {}.",
            state.config.area_name
        ),
        Some(format!("{base}/proposed")),
        json!({
            "groups": groups,
            "total": answer.page.as_ref().map_or(0, |p| p.total_size),
            "next_url": (!next.is_empty()).then(|| format!("/proposed?after={}", encode(&next))),
            "first_url": (!after.is_empty()).then_some("/proposed"),
        }),
    )
}

// ---------------------------------------------------------------- topics, sitemap

async fn topics_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(&state, &e),
    };
    let tree: Vec<Value> = topics
        .iter()
        .filter(|t| t.parent_id.is_empty())
        .map(|p| {
            json!({
                "code": p.code,
                "name": p.name,
                "description": p.description,
                "children": topics.iter().filter(|c| c.parent_id == p.id)
                    .map(|c| json!({"code": c.code, "name": c.name})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let base = base_url(&state, &headers);
    page(
        &state,
        StatusCode::OK,
        "topics.html",
        "Browse by topic",
        &format!(
            "Self-help and peer-support groups in {} by topic.",
            state.config.area_name
        ),
        Some(format!("{base}/topics")),
        json!({ "topics": tree }),
    )
}

/// The day a group last changed, as the sitemap protocol writes it.
fn lastmod(g: &pb::Group) -> Option<String> {
    g.updated_at.as_ref().and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, 0).map(|d| d.format("%Y-%m-%d").to_string())
    })
}

async fn sitemap(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let mut urls = vec![
        json!({"loc": format!("{base}/")}),
        json!({"loc": format!("{base}/topics")}),
    ];
    let built = async {
        for t in state.listings.topics().await?.iter() {
            urls.push(json!({"loc": format!("{base}/topics/{}", encode(&t.code))}));
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
                urls.push(json!({"loc": format!("{base}/groups/{}", g.id), "lastmod": lastmod(g)}));
            }
            token = answer.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() || urls.len() >= SITEMAP_MAX_URLS {
                break;
            }
        }
        let mut offset = String::new();
        urls.push(json!({"loc": format!("{base}/proposed")}));
        loop {
            let answer = state
                .listings
                .proposed(PageRequest {
                    page_size: 100,
                    page_token: offset.clone(),
                })
                .await?;
            for g in &answer.groups {
                urls.push(json!({"loc": format!("{base}/groups/{}", g.id), "lastmod": lastmod(g)}));
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
    match state.pages.render("sitemap.xml", &json!({ "urls": urls })) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Err(e) => error_page(&state, &e),
    }
}

async fn robots(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("User-agent: *\nAllow: /\nDisallow: /oruk/\nSitemap: {base}/sitemap.xml\n"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/site.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ld_cannot_close_its_script_element() {
        let text = script_json(&json!({"name": "</script><script>alert(1)</script>"}));
        assert!(!text.contains('<'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn dates_and_times_read_as_people_say_them() {
        assert_eq!(long_date("2026-12-09"), "Wednesday 9 December 2026");
        assert_eq!(time_range("19:00", "21:30").unwrap(), "7:00pm to 9:30pm");
        assert_eq!(long_date("not a date"), "not a date");
    }

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
        let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
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
