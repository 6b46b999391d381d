//! Open Referral UK (HSDS 3.0 UK profile) documents for the public feed: a
//! published group is an ORUK `service`, delivered by its own `organization`, at
//! its venues (`service_at_locations` with physical `locations`), on its
//! `schedules`, tagged with `attributes` that point at the region's taxonomy terms.
//! Only public directory data goes in: a document is rendered from the group's
//! public card (what `GetGroup` shows a stranger), so no organiser ids and
//! nothing member-only can reach it, and the published groups' cards kept in
//! memory serve the API without reading the database.

pub mod import;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use selfhelp_proto::listings::v1 as pb;

use crate::domain::schedule::{Pattern, Schedule};
use crate::store::topic;

/// Namespace for the ids of documents derived from a group (organisation,
/// schedule, locations…), so every export gives them the same UUIDs.
const DERIVED_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2f3c_8e8a_41d2_4c1b_b1c5_9d0e_0a11_5e9f);

fn derived_id(kind: &str, parts: &[&str]) -> String {
    uuid::Uuid::new_v5(
        &DERIVED_NAMESPACE,
        format!("{kind}/{}", parts.join("/")).as_bytes(),
    )
    .to_string()
}

/// The id of a group's `service_at_location` for its venue `index`.
pub fn service_at_location_id(group_id: &str, index: usize) -> String {
    derived_id("service_at_location", &[group_id, &index.to_string()])
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ical_day(d: chrono::Weekday) -> &'static str {
    ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][d.num_days_from_monday() as usize]
}

fn attending(format: i32) -> &'static str {
    match pb::MeetingFormat::try_from(format) {
        Ok(pb::MeetingFormat::InPerson) => "In person",
        Ok(pb::MeetingFormat::Online) => "Online (joining details are given to members)",
        Ok(pb::MeetingFormat::Phone) => "By phone (joining details are given to members)",
        Ok(pb::MeetingFormat::Hybrid) => "In person or online",
        _ => "",
    }
}

fn schedule_doc(group: &pb::Group, s: &Schedule, tz: &chrono_tz::Tz) -> Value {
    let (freq, interval, byday, bymonthday) = match &s.pattern {
        Pattern::Weekly { interval, weekday } => (
            "WEEKLY",
            *interval,
            Some(ical_day(*weekday).to_string()),
            None,
        ),
        Pattern::MonthlyByWeekday {
            interval,
            nth,
            weekday,
        } => (
            "MONTHLY",
            *interval,
            Some(format!("{nth}{}", ical_day(*weekday))),
            None,
        ),
        Pattern::MonthlyByDate { interval, day } => {
            ("MONTHLY", *interval, None, Some(day.to_string()))
        }
    };
    let first =
        tz_midnight_before(s, tz).and_then(|b| s.regular_starts(*tz, b, 1).into_iter().next());
    let mut doc = json!({
        "id": derived_id("schedule", &[&group.id]),
        "service_id": group.id,
        "valid_from": s.valid_from.format("%Y-%m-%d").to_string(),
        "freq": freq,
        "interval": interval,
        "opens_at": s.start.format("%H:%M").to_string(),
        "closes_at": s.end.format("%H:%M").to_string(),
        "description": s.describe(),
        "attending_type": attending(group.format),
        "notes": format!("Times are local to {}.", tz.name()),
    });
    let obj = doc.as_object_mut().expect("object");
    if let Some(first) = first {
        obj.insert(
            "dtstart".into(),
            json!(first.format("%Y-%m-%d").to_string()),
        );
    }
    if let Some(until) = s.valid_until {
        obj.insert(
            "valid_to".into(),
            json!(until.format("%Y-%m-%d").to_string()),
        );
    }
    if let Some(byday) = byday {
        obj.insert("byday".into(), json!(byday));
    }
    if let Some(bymonthday) = bymonthday {
        obj.insert("bymonthday".into(), json!(bymonthday));
    }
    doc
}

fn tz_midnight_before(s: &Schedule, tz: &chrono_tz::Tz) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    tz.from_local_datetime(&s.valid_from.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|d| d.with_timezone(&Utc) - chrono::Duration::seconds(1))
}

/// The taxonomy term document for a topic.
pub fn term_doc(t: &topic::Model, taxonomy_id: &str) -> Value {
    let mut doc = json!({
        "id": t.id,
        "code": t.code,
        "name": t.name,
        "description": if t.description.is_empty() { t.name.clone() } else { t.description.clone() },
        "taxonomy": "selfhelp topics",
        "taxonomy_id": taxonomy_id,
    });
    if let Some(parent) = &t.parent_id {
        doc.as_object_mut()
            .expect("object")
            .insert("parent_id".into(), json!(parent));
    }
    doc
}

/// The ORUK `taxonomy` document for a region's topics.
pub fn taxonomy_doc(region: &str) -> Value {
    json!({
        "id": taxonomy_id(region),
        "name": "selfhelp topics",
        "description": format!("Topics of self-help and peer-support groups in {region}"),
        "version": "1",
    })
}

pub fn taxonomy_id(region: &str) -> String {
    derived_id("taxonomy", &[region])
}

/// The ORUK `service` document for a published group, from its public card
/// and its schedule.
pub fn service_doc(
    group: &pb::Group,
    schedule: Option<&Schedule>,
    topics: &[topic::Model],
    tz: &chrono_tz::Tz,
) -> Value {
    let org_id = derived_id("organization", &[&group.id]);
    let description = if group.description.is_empty() {
        &group.summary
    } else {
        &group.description
    };
    let tax_id = taxonomy_id(&group.region);
    let attributes: Vec<Value> = group
        .topics
        .iter()
        .filter_map(|code| topics.iter().find(|t| &t.code == code))
        .map(|t| {
            json!({
                "id": derived_id("attribute", &[&group.id, &t.id]),
                "link_id": group.id,
                "link_type": "service",
                "taxonomy_term_id": t.id,
                "taxonomy_term": term_doc(t, &tax_id),
            })
        })
        .collect();
    let service_at_locations: Vec<Value> = group
        .venues
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let index = i.to_string();
            let location_id = derived_id("location", &[&group.id, &index]);
            let name = if v.name.is_empty() {
                v.town.clone()
            } else {
                v.name.clone()
            };
            json!({
                "id": service_at_location_id(&group.id, i),
                "service_id": group.id,
                "location_id": location_id,
                "location": {
                    "id": location_id,
                    "location_type": "physical",
                    "name": name,
                    "description": v.travel_notes,
                    "accessibility": accessibility(&group.id, &index, &location_id, &v.accessibility),
                    "addresses": [{
                        "id": derived_id("address", &[&group.id, &index]),
                        "location_id": location_id,
                        "address_1": if v.address.is_empty() { &v.name } else { &v.address },
                        "city": v.town,
                        "state_province": "",
                        "postal_code": v.postcode,
                        "country": "GB",
                        "address_type": "physical",
                    }],
                },
            })
        })
        .collect();
    let mut doc = json!({
        "id": group.id,
        "organization_id": org_id,
        "name": group.name,
        "description": description,
        "status": "active",
        "last_modified": rfc3339(group.updated_at.as_ref().map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)),
        "organization": {
            "id": org_id,
            "name": group.name,
            "description": if group.summary.is_empty() { description } else { &group.summary },
        },
        "service_at_locations": service_at_locations,
        "schedules": schedule.map(|s| vec![schedule_doc(group, s, tz)]).unwrap_or_default(),
        "attributes": attributes,
    });
    let obj = doc.as_object_mut().expect("object");
    if !group.assured_date.is_empty() {
        obj.insert("assured_date".into(), json!(group.assured_date));
    }
    add_details(obj, group);
    for (i, v) in group.venues.iter().enumerate() {
        if let (Some(lat), Some(lon)) = (v.latitude, v.longitude) {
            let location = &mut obj["service_at_locations"][i]["location"];
            location["latitude"] = json!(lat);
            location["longitude"] = json!(lon);
        }
    }
    doc
}

fn accessibility(group_id: &str, index: &str, location_id: &str, text: &str) -> Vec<Value> {
    if text.is_empty() {
        return Vec::new();
    }
    vec![json!({
        "id": derived_id("accessibility", &[group_id, index]),
        "location_id": location_id,
        "description": text,
    })]
}

/// Public card details: ages, the role contact, cost, languages, area served.
/// Member-only joining details are deliberately left out.
fn add_details(obj: &mut serde_json::Map<String, Value>, group: &pb::Group) {
    let eligibility = group.eligibility.clone().unwrap_or_default();
    // 0 on the card means no limit.
    if eligibility.minimum_age > 0 {
        obj.insert("minimum_age".into(), json!(eligibility.minimum_age));
    }
    if eligibility.maximum_age > 0 {
        obj.insert("maximum_age".into(), json!(eligibility.maximum_age));
    }
    let c = group.contact.clone().unwrap_or_default();
    if !c.email.is_empty() {
        obj.insert("email".into(), json!(c.email));
    }
    if !c.website.is_empty() {
        obj.insert("url".into(), json!(c.website));
    }
    if !c.name.is_empty() || !c.phone.is_empty() {
        let mut contact = json!({"id": derived_id("contact", &[&group.id]), "service_id": group.id, "name": c.name});
        if !c.phone.is_empty() {
            contact["phones"] =
                json!([{ "id": derived_id("phone", &[&group.id]), "number": c.phone }]);
        }
        obj.insert("contacts".into(), json!([contact]));
    }
    let cost = group.cost.clone().unwrap_or_default();
    let option = match pb::CostKind::try_from(cost.kind) {
        Ok(pb::CostKind::Free) => Some("Free"),
        Ok(pb::CostKind::Donation) => Some("Donation"),
        Ok(pb::CostKind::Fee) => Some("Fee"),
        _ => None,
    };
    if let Some(option) = option {
        let cost = json!({
            "id": derived_id("cost", &[&group.id]),
            "service_id": group.id,
            "option": option,
            "amount_description": cost.description,
        });
        obj.insert("cost_options".into(), json!([cost]));
    }
    let languages: Vec<Value> = group
        .languages
        .iter()
        .map(|code| json!({"id": derived_id("language", &[&group.id, code]), "service_id": group.id, "code": code}))
        .collect();
    obj.insert("languages".into(), json!(languages));
    if !group.area_served.is_empty() {
        let area = json!({
            "id": derived_id("service_area", &[&group.id]),
            "service_id": group.id,
            "name": group.area_served,
            "description": group.area_served,
        });
        obj.insert("service_areas".into(), json!([area]));
    }
}

/// The ORUK `Page` envelope around `contents`.
pub fn page(contents: Vec<Value>, total_items: u64, page_number: u64, size: u64) -> Value {
    let total_pages = total_items.div_ceil(size.max(1));
    json!({
        "total_items": total_items,
        "total_pages": total_pages,
        "page_number": page_number,
        "size": size,
        "first_page": page_number <= 1,
        "last_page": page_number >= total_pages,
        "empty": contents.is_empty(),
        "contents": contents,
    })
}
