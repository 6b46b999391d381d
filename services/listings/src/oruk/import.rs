//! Open Referral UK `service` documents read back into groups: the inverse of
//! `crate::oruk::service_doc`, so that a directory exported by selfhelp (or by
//! another ORUK publisher) can be imported. What ORUK has no field for (join
//! policy, capacity, member-only joining details) gets the cautious default:
//! people ask to join, and the operators add the rest later.

use chrono::{Datelike, Months, NaiveDate};
use selfhelp_proto::listings::v1 as pb;
use serde_json::Value;

/// Namespace for group ids derived from documents whose own id is no UUID.
const IMPORTED_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7d1e_3b52_9a64_4f0e_8c2d_5b7a_1e90_c3f4);

/// What one document says, as requests listings already knows how to check.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDraft {
    pub source_id: String,
    pub name: String,
    /// The group's id here: the document's id when it is a UUID, otherwise one
    /// derived from the region and the id (the same on every run).
    pub group_id: String,
    pub card: pb::CreateGroupRequest,
    pub schedule: Option<pb::Schedule>,
    /// When its details were last checked, if the document says.
    pub assured_date: Option<NaiveDate>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A whole number, given as a JSON number or as text; absent or empty is
/// `Ok(None)`, anything else that is not one is a problem naming `key`.
fn int(v: &Value, key: &str) -> Result<Option<i64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| format!("{key}: {n} is not a whole number")),
    }
}

/// Reads one ORUK `service` document. `Err` lists what makes it unusable
/// before any of its fields are checked (each "field: reason").
pub fn draft(doc: &Value, region: &str, today: NaiveDate) -> Result<ImportDraft, Vec<String>> {
    if !doc.is_object() {
        return Err(vec!["document: is not a JSON object".into()]);
    }
    let source_id = text(doc, "id");
    let name = text(doc, "name");
    let mut problems = Vec::new();
    if source_id.is_empty() {
        problems.push("id: the document has no id (needed so a re-run finds it)".into());
    }
    let group_id = match uuid::Uuid::parse_str(&source_id) {
        Ok(id) => id.to_string(),
        Err(_) => uuid::Uuid::new_v5(
            &IMPORTED_NAMESPACE,
            format!("{region}/{source_id}").as_bytes(),
        )
        .to_string(),
    };
    let description = text(doc, "description");
    let organisation = doc.get("organization").cloned().unwrap_or_default();
    // The export puts the summary in the organisation's description when
    // there is one.
    let summary = match text(&organisation, "description") {
        s if s == description => String::new(),
        s => s,
    };
    let topics = list(doc, "attributes")
        .iter()
        .filter_map(|a| a.get("taxonomy_term"))
        .map(|t| text(t, "code"))
        .filter(|code| !code.is_empty())
        .collect();
    let venues = list(doc, "service_at_locations")
        .iter()
        .filter_map(|sal| sal.get("location"))
        .map(venue)
        .collect();
    let schedule_doc = list(doc, "schedules").first();
    let format = schedule_doc
        .map(|s| format_from(&text(s, "attending_type")))
        .unwrap_or(pb::MeetingFormat::InPerson);
    let schedule = match schedule_doc {
        Some(s) => match schedule(s, today) {
            Ok(s) => Some(s),
            Err(why) => {
                problems.push(format!("schedules: {why}"));
                None
            }
        },
        None => None,
    };
    let contact_doc = list(doc, "contacts").first().cloned().unwrap_or_default();
    let contact = pb::Contact {
        name: text(&contact_doc, "name"),
        email: text(doc, "email"),
        phone: list(&contact_doc, "phones")
            .first()
            .map(|p| text(p, "number"))
            .unwrap_or_default(),
        website: text(doc, "url"),
    };
    let cost = list(doc, "cost_options").first().map(|c| pb::Cost {
        kind: match text(c, "option").to_ascii_lowercase().as_str() {
            "free" => pb::CostKind::Free,
            "donation" => pb::CostKind::Donation,
            "fee" => pb::CostKind::Fee,
            _ => pb::CostKind::Unspecified,
        } as i32,
        description: text(c, "amount_description"),
    });
    let mut age = |key: &str| match int(doc, key) {
        Ok(n) => i32::try_from(n.unwrap_or(0)).unwrap_or(-1),
        Err(why) => {
            problems.push(why);
            0
        }
    };
    let (minimum_age, maximum_age) = (age("minimum_age"), age("maximum_age"));
    let assured_date = match text(doc, "assured_date") {
        d if d.is_empty() => None,
        d => match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            Ok(date) => Some(date.min(today)),
            Err(_) => {
                problems.push(format!("assured_date: {d:?} is not a date like 2026-11-29"));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ImportDraft {
        source_id,
        name: name.clone(),
        group_id,
        card: pb::CreateGroupRequest {
            proposed: false,
            name,
            summary,
            description,
            topics,
            format: format as i32,
            join_policy: pb::JoinPolicy::Approval as i32,
            venues,
            eligibility: Some(pb::Eligibility {
                minimum_age,
                maximum_age,
                ..Default::default()
            }),
            area_served: list(doc, "service_areas")
                .first()
                .map(|a| text(a, "name"))
                .unwrap_or_default(),
            contact: Some(contact),
            cost,
            languages: list(doc, "languages")
                .iter()
                .map(|l| text(l, "code"))
                .filter(|c| !c.is_empty())
                .collect(),
            capacity: 0,
            joining_details: String::new(),
            welcome_with_joining_details: false,
        },
        schedule,
        assured_date,
    })
}

fn venue(location: &Value) -> pb::Venue {
    let address = list(location, "addresses")
        .first()
        .cloned()
        .unwrap_or_default();
    let name = text(location, "name");
    let address_1 = text(&address, "address_1");
    pb::Venue {
        // The export writes the name as the address when there is none.
        address: if address_1 == name {
            String::new()
        } else {
            address_1
        },
        name,
        town: text(&address, "city"),
        postcode: text(&address, "postal_code"),
        latitude: location.get("latitude").and_then(Value::as_f64),
        longitude: location.get("longitude").and_then(Value::as_f64),
        accessibility: list(location, "accessibility")
            .first()
            .map(|a| text(a, "description"))
            .unwrap_or_default(),
        travel_notes: text(location, "description"),
    }
}

fn format_from(attending: &str) -> pb::MeetingFormat {
    let a = attending.to_ascii_lowercase();
    let in_person = a.contains("in person");
    let online = a.contains("online");
    match (in_person, online) {
        (true, true) => pb::MeetingFormat::Hybrid,
        (false, true) => pb::MeetingFormat::Online,
        _ if a.contains("phone") => pb::MeetingFormat::Phone,
        _ => pb::MeetingFormat::InPerson,
    }
}

fn weekday(code: &str) -> Option<pb::Weekday> {
    Some(match code {
        "MO" => pb::Weekday::Monday,
        "TU" => pb::Weekday::Tuesday,
        "WE" => pb::Weekday::Wednesday,
        "TH" => pb::Weekday::Thursday,
        "FR" => pb::Weekday::Friday,
        "SA" => pb::Weekday::Saturday,
        "SU" => pb::Weekday::Sunday,
        _ => return None,
    })
}

/// An ORUK `schedule` (the RRULE subset selfhelp keeps) as a schedule request.
/// A start long past is moved forward by whole periods, so the meetings fall
/// on the same dates but the schedule starts within the window selfhelp
/// accepts.
fn schedule(s: &Value, today: NaiveDate) -> Result<pb::Schedule, String> {
    let freq = text(s, "freq").to_ascii_uppercase();
    // The schedule's own check allows 1 to 12; more is refused here, before
    // it is used to move the start.
    let interval = int(s, "interval")?.unwrap_or(1);
    if !(1..=12).contains(&interval) {
        return Err(format!(
            "interval {interval}: every 1 to 12 weeks or months"
        ));
    }
    let interval = interval as i32;
    let byday = text(s, "byday").to_ascii_uppercase();
    let mut wire = pb::Schedule {
        interval,
        start_time: text(s, "opens_at"),
        end_time: text(s, "closes_at"),
        valid_until: text(s, "valid_to"),
        ..Default::default()
    };
    match freq.as_str() {
        "WEEKLY" => {
            wire.frequency = pb::Frequency::Weekly as i32;
            wire.weekday = weekday(&byday)
                .ok_or_else(|| format!("weekly with byday {byday:?}: one day such as WE"))?
                as i32;
        }
        "MONTHLY" if !byday.is_empty() => {
            wire.frequency = pb::Frequency::Monthly as i32;
            // The last two characters are the day; what is before, which one.
            let cut = byday.char_indices().rev().nth(1).map_or(0, |(at, _)| at);
            let (nth, day) = byday.split_at(cut);
            wire.weekday = weekday(day)
                .ok_or_else(|| format!("monthly with byday {byday:?}: e.g. 2WE or -1FR"))?
                as i32;
            wire.week_of_month = nth
                .trim_start_matches('+')
                .parse()
                .map_err(|_| format!("monthly with byday {byday:?}: e.g. 2WE or -1FR"))?;
        }
        "MONTHLY" => {
            wire.frequency = pb::Frequency::Monthly as i32;
            wire.day_of_month = int(s, "bymonthday")?
                .and_then(|d| i32::try_from(d).ok())
                .ok_or("monthly needs byday or bymonthday")?;
        }
        other => return Err(format!("freq {other:?}: only WEEKLY and MONTHLY are kept")),
    }
    let from = text(s, "valid_from");
    let from = if from.is_empty() {
        text(s, "dtstart")
    } else {
        from
    };
    let from = NaiveDate::parse_from_str(&from, "%Y-%m-%d")
        .map_err(|_| format!("valid_from {from:?} is not a date like 2026-11-29"))?;
    wire.valid_from = recent_start(from, &freq, interval, today)
        .format("%Y-%m-%d")
        .to_string();
    Ok(wire)
}

/// `from`, moved forward by whole periods (`interval` weeks or months) while
/// it is more than 300 days before `today`.
fn recent_start(from: NaiveDate, freq: &str, interval: i32, today: NaiveDate) -> NaiveDate {
    let oldest = today - chrono::Duration::days(300);
    if from >= oldest {
        return from;
    }
    // `interval` is 1 to 12 and `from` a real date, so these cannot overflow;
    // checked all the same, leaving `from` (refused later as too old) if so.
    if freq == "WEEKLY" {
        let period = 7 * i64::from(interval);
        let periods = (oldest - from).num_days().div_euclid(period) + 1;
        return chrono::Duration::try_days(periods * period)
            .and_then(|d| from.checked_add_signed(d))
            .unwrap_or(from);
    }
    let months = (oldest.year() - from.year()) * 12 + oldest.month() as i32 - from.month() as i32;
    let periods = months.div_euclid(interval) + 1;
    let moved = Months::new((periods * interval).max(0) as u32);
    // Monthly by position or by a date up to the 28th: every month has it.
    from.checked_add_months(moved).unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    #[test]
    fn a_document_from_elsewhere_becomes_a_cautious_listing() {
        let doc = json!({
            "id": "svc-42",
            "name": "Carers' coffee morning",
            "description": "Support for unpaid carers",
            "organization": {"name": "Carers", "description": "Tea and a chat"},
            "url": "https://example.org",
            "email": "hello@example.org",
            "contacts": [{"name": "Coordinator", "phones": [{"number": "0115 000 0000"}]}],
            "service_at_locations": [{"location": {
                "name": "Library", "description": "Bus 35",
                "latitude": 52.95, "longitude": -1.15,
                "addresses": [{"address_1": "1 High St", "city": "Nottingham", "postal_code": "NG1 5FS"}]
            }}],
            "schedules": [{"freq": "MONTHLY", "byday": "-1FR", "interval": 1,
                "opens_at": "10:00", "closes_at": "12:00", "valid_from": "2020-01-31",
                "attending_type": "In person"}],
            "languages": [{"code": "en"}, {"code": "pl"}],
            "cost_options": [{"option": "Donation", "amount_description": "£1"}],
            "assured_date": "2026-10-01",
        });
        let d = draft(&doc, "notts", today()).unwrap();
        assert_eq!(d.source_id, "svc-42");
        assert_eq!(d.group_id, draft(&doc, "notts", today()).unwrap().group_id);
        assert_ne!(d.group_id, draft(&doc, "leeds", today()).unwrap().group_id);
        assert_eq!(d.card.summary, "Tea and a chat");
        assert_eq!(d.card.join_policy, pb::JoinPolicy::Approval as i32);
        assert_eq!(d.card.venues[0].postcode, "NG1 5FS");
        assert_eq!(d.card.venues[0].address, "1 High St");
        assert_eq!(d.card.contact.as_ref().unwrap().phone, "0115 000 0000");
        assert_eq!(d.card.languages, ["en", "pl"]);
        let s = d.schedule.unwrap();
        assert_eq!(s.week_of_month, -1);
        assert_eq!(s.weekday, pb::Weekday::Friday as i32);
        // Moved into the accepted window by whole months.
        let from = NaiveDate::parse_from_str(&s.valid_from, "%Y-%m-%d").unwrap();
        assert!(
            from > today() - chrono::Duration::days(301) && from <= today(),
            "{from}"
        );
        assert_eq!(d.assured_date, NaiveDate::from_ymd_opt(2026, 10, 1));
        // A UUID id is kept as the group's.
        let uuid = "0194f1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";
        let kept = draft(&json!({"id": uuid, "name": "X"}), "notts", today()).unwrap();
        assert_eq!(kept.group_id, uuid);
    }

    #[test]
    fn unusable_documents_say_why() {
        let problems = draft(
            &json!({"name": "No id", "schedules": [{"freq": "DAILY"}], "assured_date": "soon"}),
            "notts",
            today(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("id:"));
        assert!(problems[1].contains("DAILY"));
        assert!(problems[2].starts_with("assured_date:"));
        assert!(draft(&json!([1, 2]), "notts", today()).is_err());
    }

    #[test]
    fn weekly_starts_keep_their_weekday_when_moved() {
        let from = NaiveDate::from_ymd_opt(2019, 3, 6).unwrap(); // a Wednesday
        let moved = recent_start(from, "WEEKLY", 2, today());
        assert_eq!(moved.weekday(), chrono::Weekday::Wed);
        assert_eq!((moved - from).num_days() % 14, 0);
        assert!(moved >= today() - chrono::Duration::days(300));
        let recent = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        assert_eq!(recent_start(recent, "WEEKLY", 1, today()), recent);
    }

    #[test]
    fn hostile_schedules_are_refused_not_panicked_on() {
        for schedule in [
            json!({"freq": "MONTHLY", "byday": "éW", "opens_at": "10:00", "closes_at": "11:00", "valid_from": "2020-01-01"}),
            json!({"freq": "MONTHLY", "byday": "ü", "valid_from": "2020-01-01"}),
            json!({"freq": "WEEKLY", "byday": "WE", "interval": 2147483647, "valid_from": "1900-01-03"}),
            json!({"freq": "WEEKLY", "byday": "WE", "interval": "fortnightly", "valid_from": "2020-01-01"}),
            json!({"freq": "MONTHLY", "bymonthday": "x", "valid_from": "2020-01-01"}),
        ] {
            let doc = json!({"id": "x", "name": "X", "schedules": [schedule]});
            let problems = draft(&doc, "notts", today()).unwrap_err();
            assert!(problems[0].starts_with("schedules:"), "{problems:?}");
        }
        let doc = json!({"id": "x", "name": "X", "minimum_age": "adults"});
        assert!(draft(&doc, "notts", today()).unwrap_err()[0].starts_with("minimum_age:"));
        // A start in the far past is moved without overflowing.
        let far = NaiveDate::from_ymd_opt(1, 1, 3).unwrap();
        assert!(recent_start(far, "WEEKLY", 12, today()) > today() - chrono::Duration::days(301));
    }
}
