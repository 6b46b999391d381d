//! A VTIMEZONE (RFC 5545 §3.6.5) for any IANA zone, made from the time zone
//! database: one STANDARD or DAYLIGHT observance per change of offset between
//! two dates (and the one in force at the first), so a calendar's local times
//! mean the same to every reader whatever its own zone data.

use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use ics::properties::TzName;
use ics::{Daylight, Standard, TimeZone as VTimeZone};

/// How `tz` is set at one instant: its UTC offset in seconds, whether that is
/// daylight saving time, and its abbreviation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Setting {
    offset: i32,
    daylight: bool,
    name: Option<String>,
}

fn setting(tz: Tz, at: DateTime<Utc>) -> Setting {
    let offset = tz.offset_from_utc_datetime(&at.naive_utc());
    Setting {
        offset: offset.fix().local_minus_utc(),
        daylight: !offset.dst_offset().is_zero(),
        name: offset.abbreviation().map(str::to_string),
    }
}

/// `+0100`, `-0500`, `+0530`.
fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// The instants in `[from, until)` at which `tz` changes how it is set, each
/// with the setting before and after (found day by day, then to the second).
fn changes(
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Setting, Setting)> {
    let mut found = Vec::new();
    let mut at = from;
    let mut before = setting(tz, at);
    while at < until {
        let next = (at + Duration::days(1)).min(until);
        let after = setting(tz, next);
        if after != before {
            // The change lies in (at, next]: halve the span down to a second.
            let (mut low, mut high) = (at, next);
            while high - low > Duration::seconds(1) {
                let middle = low + (high - low) / 2;
                if setting(tz, middle) == before {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            found.push((high, before.clone(), after.clone()));
        }
        before = after;
        at = next;
    }
    found
}

/// The VTIMEZONE of `tz` over the days `from` to `until`.
pub fn vtimezone(tz: Tz, from: NaiveDate, until: NaiveDate) -> VTimeZone<'static> {
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = until.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let first = setting(tz, start);
    // An observance starts at the local time it begins, read in the offset in
    // force just before (RFC 5545's DTSTART of STANDARD and DAYLIGHT).
    let local_start =
        |at: DateTime<Utc>, before: i32| (at + Duration::seconds(i64::from(before))).naive_utc();
    let observance = |at: DateTime<Utc>, before: &Setting, after: &Setting| {
        let dtstart = local_start(at, before.offset)
            .format("%Y%m%dT%H%M%S")
            .to_string();
        let (from, to) = (utc_offset(before.offset), utc_offset(after.offset));
        (dtstart, from, to, after.daylight, after.name.clone())
    };
    let mut observances = vec![observance(start, &first, &first)];
    for (at, before, after) in changes(tz, start, end) {
        observances.push(observance(at, &before, &after));
    }
    let mut zone: Option<VTimeZone<'static>> = None;
    for (dtstart, from, to, daylight, name) in observances {
        if daylight {
            let mut d = Daylight::new(dtstart, from, to);
            if let Some(name) = name {
                d.push(TzName::new(name));
            }
            match zone.as_mut() {
                Some(z) => z.add_daylight(d),
                None => zone = Some(VTimeZone::daylight(tz.name().to_string(), d)),
            }
        } else {
            let mut s = Standard::new(dtstart, from, to);
            if let Some(name) = name {
                s.push(TzName::new(name));
            }
            match zone.as_mut() {
                Some(z) => z.add_standard(s),
                None => zone = Some(VTimeZone::standard(tz.name().to_string(), s)),
            }
        }
    }
    zone.expect("the first observance is always there")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn london_changes_on_the_last_sundays_of_march_and_october() {
        let text =
            vtimezone(chrono_tz::Europe::London, day(2026, 1, 1), day(2027, 1, 1)).to_string();
        assert!(text.contains("TZID:Europe/London\r\n"), "{text}");
        // 29 March 2026, 01:00 GMT: clocks go to 02:00 BST.
        assert!(text.contains("BEGIN:DAYLIGHT\r\nDTSTART:20260329T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\n"), "{text}");
        // 25 October 2026, 02:00 BST: back to 01:00 GMT.
        assert!(text.contains("BEGIN:STANDARD\r\nDTSTART:20261025T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nTZNAME:GMT\r\n"), "{text}");
        assert_eq!(text.matches("BEGIN:DAYLIGHT").count(), 1);
        assert_eq!(
            text.matches("BEGIN:STANDARD").count(),
            2,
            "January's and October's"
        );
    }

    #[test]
    fn any_zone_gets_its_own_rules() {
        let text = vtimezone(
            chrono_tz::America::New_York,
            day(2026, 1, 1),
            day(2027, 1, 1),
        )
        .to_string();
        assert!(text.contains("TZID:America/New_York\r\n"));
        assert!(
            text.contains("DTSTART:20260308T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"),
            "{text}"
        );
        // A zone without daylight saving time: one observance.
        let kolkata =
            vtimezone(chrono_tz::Asia::Kolkata, day(2026, 1, 1), day(2031, 1, 1)).to_string();
        assert!(kolkata.contains("TZOFFSETTO:+0530\r\n"), "{kolkata}");
        assert_eq!(kolkata.matches("BEGIN:").count(), 2, "{kolkata}");
    }
}
