//! schema.org `Event`s for a group's next meetings, so search engines can list
//! them (JSON-LD in the group's page, written by the template's `tojson`
//! filter, which escapes what could close the script element).

use selfhelp_proto::listings::v1 as pb;
use serde::Serialize;

use super::format::rfc3339;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    description: String,
    url: String,
    start_date: Option<String>,
    end_date: Option<String>,
    event_status: &'static str,
    event_attendance_mode: &'static str,
    is_accessible_for_free: bool,
    location: Location,
    organizer: Organization,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Location {
    Place {
        #[serde(rename = "@type")]
        kind: &'static str,
        name: String,
        address: PostalAddress,
    },
    Virtual {
        #[serde(rename = "@type")]
        kind: &'static str,
        url: String,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostalAddress {
    #[serde(rename = "@type")]
    kind: &'static str,
    street_address: String,
    address_locality: String,
    postal_code: String,
    address_country: &'static str,
}

#[derive(Serialize)]
struct Organization {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    url: String,
}

/// Up to ten of `g`'s next meetings; `url` is the group's page.
pub(crate) fn events(g: &pb::Group, url: &str) -> Vec<Event> {
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
    g.next_occurrences
        .iter()
        .take(10)
        .map(|o| {
            let venue = o
                .venue_index
                .and_then(|i| g.venues.get(i as usize))
                .or_else(|| g.venues.first());
            let location = match venue {
                Some(v) => Location::Place {
                    kind: "Place",
                    name: if v.name.is_empty() {
                        v.town.clone()
                    } else {
                        v.name.clone()
                    },
                    address: PostalAddress {
                        kind: "PostalAddress",
                        street_address: v.address.clone(),
                        address_locality: v.town.clone(),
                        postal_code: v.postcode.clone(),
                        address_country: "GB",
                    },
                },
                None => Location::Virtual {
                    kind: "VirtualLocation",
                    url: url.to_string(),
                },
            };
            Event {
                context: "https://schema.org",
                kind: "Event",
                name: g.name.clone(),
                description: g.summary.clone(),
                url: url.to_string(),
                start_date: o.starts_at.as_ref().map(rfc3339),
                end_date: o.ends_at.as_ref().map(rfc3339),
                event_status: if o.kind == pb::OccurrenceKind::Moved as i32 {
                    "https://schema.org/EventRescheduled"
                } else {
                    "https://schema.org/EventScheduled"
                },
                event_attendance_mode: attendance,
                is_accessible_for_free: free,
                location,
                organizer: Organization {
                    kind: "Organization",
                    name: g.name.clone(),
                    url: url.to_string(),
                },
            }
        })
        .collect()
}
