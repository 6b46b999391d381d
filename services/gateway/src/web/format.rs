//! How dates, times, labels and addresses read on the pages.

use chrono::{NaiveDate, NaiveTime};
use selfhelp_proto::listings::v1 as pb;

/// Everything but RFC 3986's unreserved characters, for query values and path segments.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `value` percent-encoded for a query value or a path segment.
pub(crate) fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URL_COMPONENT).to_string()
}

pub(crate) fn rfc3339(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub(crate) fn format_label(format: i32) -> &'static str {
    match pb::MeetingFormat::try_from(format) {
        Ok(pb::MeetingFormat::InPerson) => "Meets in person",
        Ok(pb::MeetingFormat::Online) => "Meets online",
        Ok(pb::MeetingFormat::Phone) => "Meets by phone",
        Ok(pb::MeetingFormat::Hybrid) => "Meets in person and online",
        _ => "Ask the group how it meets",
    }
}

/// "2026-12-09" as "Wednesday 9 December 2026" (as given when it does not parse).
pub(crate) fn long_date(date: &str) -> String {
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

pub(crate) fn time_range(start: &str, end: &str) -> Option<String> {
    match (clock(start), clock(end)) {
        (Some(s), Some(e)) => Some(format!("{s} to {e}")),
        (Some(s), None) => Some(s),
        _ => None,
    }
}

pub(crate) fn meeting_date(date: &str, start: &str) -> String {
    match clock(start) {
        Some(t) => format!("{}, {t}", long_date(date)),
        None => long_date(date),
    }
}

/// A venue's name and address on one line.
pub(crate) fn venue_line(v: &pb::Venue) -> String {
    [&v.name, &v.address, &v.town, &v.postcode]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Language names for the codes groups use most; the code otherwise.
pub(crate) fn language_name(code: &str) -> String {
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

/// When a listed group's details were last confirmed, in words; empty for a
/// group not listed.
pub(crate) fn checked_words(g: &pb::Group) -> String {
    if g.status() != pb::GroupStatus::Published {
        String::new()
    } else if g.assured_date.is_empty() {
        "Its details have never been confirmed.".into()
    } else if g.recently_checked {
        format!("Details last confirmed on {}.", long_date(&g.assured_date))
    } else {
        format!(
            "Details last confirmed on {}: not checked recently.",
            long_date(&g.assured_date)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_as_people_say_them() {
        assert_eq!(long_date("2026-12-09"), "Wednesday 9 December 2026");
        assert_eq!(time_range("19:00", "21:30").unwrap(), "7:00pm to 9:30pm");
        assert_eq!(long_date("not a date"), "not a date");
    }
}
