//! A group's page: who it is for, when and where it meets, how to join.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use selfhelp_proto::listings::v1 as pb;
use serde::Serialize;

use super::format::{format_label, language_name, long_date, time_range, venue_line};
use super::json_ld;
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::http::base_url;

/// group.html
#[derive(Serialize)]
struct GroupPage {
    g: GroupView,
    /// schema.org events for search engines (none for a proposal).
    json_ld: Option<Vec<json_ld::Event>>,
    /// The signed-in person's place in the group; none for strangers.
    place: Option<super::joining::Place>,
    /// Fields of the join form to correct, by name.
    errors: Vec<super::forms::FieldError>,
    field_errors: std::collections::HashMap<String, String>,
    /// What was typed, kept when the form comes back with an error.
    typed: super::joining::Typed,
}

#[derive(Serialize)]
struct GroupView {
    id: String,
    name: String,
    summary: String,
    description: Vec<String>,
    topics: Vec<TopicLink>,
    eligibility: String,
    ages: String,
    carers_welcome: bool,
    family_welcome: bool,
    area_served: String,
    format: &'static str,
    when: Option<String>,
    meetings: Vec<Meeting>,
    venues: Vec<VenueView>,
    cost: String,
    languages: String,
    how_to_join: &'static str,
    contact: Option<Contact>,
    checked: String,
    proposal: bool,
    has_meetings: bool,
    calendar_url: String,
    webcal_url: String,
}

#[derive(Serialize)]
struct TopicLink {
    code: String,
    name: String,
}

#[derive(Serialize)]
struct Meeting {
    /// `YYYY-MM-DD`, to sort by.
    #[serde(skip)]
    day: String,
    date: String,
    time: Option<String>,
    change: Option<String>,
    place: Option<String>,
    note: String,
    cancelled: bool,
}

#[derive(Serialize)]
struct VenueView {
    name: String,
    address: String,
    accessibility: String,
    travel_notes: String,
}

#[derive(Serialize)]
struct Contact {
    name: String,
    email: String,
    phone: String,
    phone_link: String,
    website: String,
}

pub(crate) async fn group_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    render(
        &state,
        &headers,
        &id,
        StatusCode::OK,
        Vec::new(),
        Default::default(),
    )
    .await
}

/// The group's page, for whoever asks (with their place in it when signed
/// in), with `errors` in the join form and what was `typed` there.
pub(crate) async fn render(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    status: StatusCode,
    errors: Vec<super::forms::FieldError>,
    typed: super::joining::Typed,
) -> Response {
    let group = match state.listings.group(id).await {
        Ok(g) => g,
        Err(e) => return error_page(state, &e),
    };
    let topics = match state.listings.topics().await {
        Ok(t) => t,
        Err(e) => return error_page(state, &e),
    };
    let place = match super::joining::place(state, &group).await {
        Ok(p) => p,
        Err(e) => return error_page(state, &e),
    };
    let base = base_url(state, headers);
    let url = format!("{base}/groups/{}", group.id);
    // A proposal does not meet yet: no events for search engines to list.
    let json_ld =
        (group.status == pb::GroupStatus::Published as i32).then(|| json_ld::events(&group, &url));
    let view = GroupPage {
        g: group_view(&group, &topics, &base),
        json_ld,
        place,
        field_errors: errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect(),
        errors,
        typed,
    };
    html(
        state,
        status,
        "group.html",
        Layout::new(state, &group.name, &group.summary, Some(url)),
        &view,
    )
}

fn group_view(g: &pb::Group, topics: &[pb::Topic], base: &str) -> GroupView {
    let mut meetings: Vec<Meeting> = g
        .next_occurrences
        .iter()
        .map(|o| Meeting {
            day: o.local_date.clone(),
            date: long_date(&o.local_date),
            time: time_range(&o.local_start_time, &o.local_end_time),
            change: match pb::OccurrenceKind::try_from(o.kind) {
                Ok(pb::OccurrenceKind::Moved) => {
                    Some(format!("Moved from {}", long_date(&o.original_date)))
                }
                Ok(pb::OccurrenceKind::OneOff) => Some("Extra meeting".to_string()),
                _ => None,
            },
            place: o
                .venue_index
                .and_then(|i| g.venues.get(i as usize))
                .map(venue_line),
            note: o.note.clone(),
            cancelled: false,
        })
        .collect();
    // Cancelled meetings from today on, shown where they would have been.
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let last_shown = meetings.last().map(|m| m.day.clone());
    for e in &g.exceptions {
        let cancelled = e.kind == pb::ExceptionKind::Cancelled as i32;
        let in_range = e.date >= today && last_shown.as_ref().is_none_or(|last| &e.date <= last);
        if cancelled && in_range {
            meetings.push(Meeting {
                day: e.date.clone(),
                date: long_date(&e.date),
                time: None,
                change: Some("Cancelled".into()),
                place: None,
                note: e.note.clone(),
                cancelled: true,
            });
        }
    }
    meetings.sort_by(|a, b| a.day.cmp(&b.day));
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
            "Not checked recently: details last checked on {}, so they may be out of date. Contact the group before you go.",
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
    GroupView {
        id: g.id.clone(),
        name: g.name.clone(),
        summary: g.summary.clone(),
        description: g
            .description
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        topics: g
            .topics
            .iter()
            .filter_map(|code| topics.iter().find(|t| &t.code == code))
            .map(|t| TopicLink {
                code: t.code.clone(),
                name: t.name.clone(),
            })
            .collect(),
        eligibility: eligibility.description,
        ages,
        carers_welcome: eligibility.carers_welcome,
        family_welcome: eligibility.family_welcome,
        area_served: g.area_served.clone(),
        format: format_label(g.format),
        when: g.schedule.as_ref().map(|s| s.description.clone()),
        meetings,
        venues: g
            .venues
            .iter()
            .map(|v| VenueView {
                name: if v.name.is_empty() {
                    "The venue".to_string()
                } else {
                    v.name.clone()
                },
                address: [&v.address, &v.town, &v.postcode]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                accessibility: v.accessibility.clone(),
                travel_notes: v.travel_notes.clone(),
            })
            .collect(),
        cost: cost_text,
        languages: g
            .languages
            .iter()
            .map(|c| language_name(c))
            .collect::<Vec<_>>()
            .join(", "),
        how_to_join,
        contact: has_contact.then(|| Contact {
            phone_link: contact
                .phone
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
            name: contact.name,
            email: contact.email,
            phone: contact.phone,
            website,
        }),
        checked,
        proposal,
        has_meetings: !proposal && (g.schedule.is_some() || !g.next_occurrences.is_empty()),
        calendar_url: format!("/groups/{}/calendar.ics", g.id),
        webcal_url: format!("webcal://{host}/groups/{}/calendar.ics", g.id),
    }
}
