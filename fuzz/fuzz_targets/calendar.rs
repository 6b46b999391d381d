//! Calendar export with whatever organisers wrote in names, notes and venues:
//! the iCalendar text stays well formed — every physical line ends in CRLF,
//! holds no other CR or LF, and is at most 75 octets; the calendar begins and
//! ends where it should.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use libfuzzer_sys::fuzz_target;
use selfhelp_listings::domain::calendar::{CalendarGroup, export};
use selfhelp_schedule::{Exception, ScheduleDraft, validate};

#[derive(Arbitrary, Debug)]
struct Input {
    name: String,
    summary: String,
    venues: Vec<String>,
    weekday: u8,
    exceptions: Vec<Change>,
}

#[derive(Arbitrary, Debug)]
enum Change {
    Cancelled {
        week: u8,
        note: String,
    },
    Moved {
        week: u8,
        to_week: u8,
        venue: Option<u8>,
        note: String,
    },
    OneOff {
        week: u8,
        venue: Option<u8>,
        note: String,
    },
}

fuzz_target!(|input: Input| {
    let today = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let draft = ScheduleDraft {
        weekly: Some(true),
        interval: 1,
        weekday: Some(Weekday::try_from(input.weekday % 7).expect("0..7")),
        valid_from: "2026-03-02".into(),
        start_time: "18:30".into(),
        end_time: "20:00".into(),
        ..Default::default()
    };
    let schedule = validate(&draft, today).expect("a plain weekly schedule");
    let week = |w: u8| today + Duration::weeks(i64::from(w % 52));
    let (start, end) = (
        NaiveTime::from_hms_opt(18, 30, 0).unwrap(),
        NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
    );
    let exceptions: Vec<Exception> = input
        .exceptions
        .into_iter()
        .take(50)
        .map(|c| match c {
            Change::Cancelled { week: w, note } => Exception::Cancelled {
                date: week(w),
                note,
            },
            Change::Moved {
                week: w,
                to_week,
                venue,
                note,
            } => Exception::Moved {
                date: week(w),
                new_date: week(to_week),
                start,
                end,
                venue_index: venue.map(u32::from),
                note,
            },
            Change::OneOff {
                week: w,
                venue,
                note,
            } => Exception::OneOff {
                date: week(w),
                start,
                end,
                venue_index: venue.map(u32::from),
                note,
            },
        })
        .collect();
    let venues: Vec<String> = input.venues.into_iter().take(10).collect();
    let group = CalendarGroup {
        id: "0190a000-0000-7000-8000-000000000000",
        name: &input.name,
        summary: &input.summary,
        venues: &venues,
    };
    let now = Utc.from_utc_datetime(&today.and_hms_opt(9, 0, 0).unwrap());
    let ics = export(
        &group,
        Some(&schedule),
        &exceptions,
        chrono_tz::Europe::London,
        now,
    );
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    let body = ics.strip_suffix("\r\n").expect("ends in CRLF");
    for line in body.split("\r\n") {
        assert!(!line.contains(['\r', '\n']), "a bare CR or LF in {line:?}");
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
});
