//! Recurring schedules as organisers send them: whatever the fields say, the
//! checks answer (no panic), and an accepted schedule expands to at most the
//! meetings asked for, in order, quickly (libFuzzer's -timeout catches slow
//! expansions such as a rule that starts in the year -9999).
#![no_main]

use arbitrary::Arbitrary;
use chrono::{Duration, NaiveDate, TimeZone, Utc, Weekday};
use libfuzzer_sys::fuzz_target;
use selfhelp_schedule::{Exception, ScheduleDraft, next_occurrences, validate};

#[derive(Arbitrary, Debug)]
struct Input {
    weekly: Option<bool>,
    interval: i32,
    weekday: Option<u8>,
    week_of_month: i32,
    day_of_month: i32,
    valid_from: String,
    valid_until: String,
    start_time: String,
    end_time: String,
    /// Days after 2026-01-01 that "today" is (within about 60 years).
    today: u16,
    /// Cancelled meetings, as days from today, with notes.
    cancelled: Vec<(i16, String)>,
    /// Where the region is.
    zone: u8,
    /// How many meetings are asked for.
    count: u8,
}

const ZONES: [chrono_tz::Tz; 4] = [
    chrono_tz::Europe::London,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
];

fuzz_target!(|input: Input| {
    let draft = ScheduleDraft {
        weekly: input.weekly,
        interval: input.interval,
        weekday: input
            .weekday
            .map(|d| Weekday::try_from(d % 7).expect("0..7")),
        week_of_month: input.week_of_month,
        day_of_month: input.day_of_month,
        valid_from: input.valid_from,
        valid_until: input.valid_until,
        start_time: input.start_time,
        end_time: input.end_time,
    };
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(input.today.into());
    let Ok(schedule) = validate(&draft, today) else {
        return;
    };
    let tz = ZONES[usize::from(input.zone) % ZONES.len()];
    let _ = schedule.rrule_text(&tz);
    let exceptions: Vec<Exception> = input
        .cancelled
        .into_iter()
        .take(100)
        .map(|(days, note)| Exception::Cancelled {
            date: today + Duration::days(days.into()),
            note,
        })
        .collect();
    let now = Utc.from_utc_datetime(&today.and_hms_opt(12, 0, 0).unwrap());
    let count = usize::from(input.count % 50);
    let meetings = next_occurrences(Some(&schedule), &exceptions, tz, now, count);
    assert!(
        meetings.len() <= count + exceptions.len(),
        "{} meetings for {count} asked",
        meetings.len()
    );
    for pair in meetings.windows(2) {
        assert!(pair[0].starts_at <= pair[1].starts_at, "in order: {pair:?}");
    }
});
