//! iCalendar (RFC 5545) export of a group's meetings: the recurring series with
//! its rule, cancelled meetings as EXDATE, moved ones as overrides with
//! RECURRENCE-ID, and one-off meetings as their own events.

mod timezone;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use ics::components::Property;
use ics::parameters::TzIDParam;
use ics::properties::{
    CalScale, Description, DtEnd, DtStart, ExDate, Location, Method, RRule, RecurrenceID, Summary,
};
use ics::{Event, ICalendar, escape_text};

use super::schedule::{Exception, Schedule};

/// What the export needs to know about the group.
pub struct CalendarGroup<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub summary: &'a str,
    /// Venue descriptions, by index.
    pub venues: &'a [String],
}

/// One group's meetings: its card, its schedule and the changes to single meetings.
pub struct GroupMeetings<'a> {
    pub group: CalendarGroup<'a>,
    pub schedule: Option<&'a Schedule>,
    pub exceptions: &'a [Exception],
}

/// A calendar of one group's meetings.
pub fn export(
    group: &CalendarGroup<'_>,
    schedule: Option<&Schedule>,
    exceptions: &[Exception],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> String {
    let one = GroupMeetings {
        group: CalendarGroup { ..*group },
        schedule,
        exceptions,
    };
    export_many(group.name, std::slice::from_ref(&one), tz, now)
}

/// A calendar named `name` holding the meetings of every group given (a
/// region's or a topic's feed), written by the `ics` crate (escaping, folding)
/// with a VTIMEZONE for `tz` made from the time zone database.
pub fn export_many(
    name: &str,
    groups: &[GroupMeetings<'_>],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> String {
    let mut calendar = ICalendar::new("2.0", "-//selfhelp//listings//EN");
    calendar.push(CalScale::new("GREGORIAN"));
    calendar.push(Method::new("PUBLISH"));
    calendar.push(Property::new("X-WR-CALNAME", text(name)));
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut events = Vec::new();
    for g in groups {
        group_events(&mut events, g, tz, &stamp);
    }
    // The zone's rules over every date used here, and the next years of the
    // series that go on (a subscribed feed is read again long before then).
    let first = events.iter().map(|e| e.first_day).min();
    let from = first.unwrap_or(now.date_naive()).min(now.date_naive()) - chrono::Days::new(1);
    let until = now.date_naive() + chrono::Days::new(5 * 366);
    calendar.add_timezone(timezone::vtimezone(tz, from, until));
    for e in events {
        calendar.add_event(e.event);
    }
    calendar.to_string()
}

/// An event, and the first day it touches (for the time zone's range).
struct Dated {
    event: Event<'static>,
    first_day: NaiveDate,
}

/// TEXT as RFC 5545 writes it: control characters other than line breaks
/// dropped (none may start a property of its own), then escaped by `ics`
/// (`\`, `;`, `,` and every line break as `\n`).
fn text(value: &str) -> String {
    let kept: String = value
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\r')
        .collect();
    escape_text(kept).into_owned()
}

/// The VEVENTs of one group: the series with its rule and cancellations, moved
/// meetings as overrides, one-off meetings.
fn group_events(
    out: &mut Vec<Dated>,
    meetings: &GroupMeetings<'_>,
    tz: chrono_tz::Tz,
    stamp: &str,
) {
    let (group, schedule, exceptions) = (&meetings.group, meetings.schedule, meetings.exceptions);
    let tzid = tz.name();
    let local = |date: NaiveDate, time: NaiveTime| {
        format!("{}T{}", date.format("%Y%m%d"), time.format("%H%M%S"))
    };
    let in_zone = |mut property: Property<'static>| {
        property.add(TzIDParam::new(tzid.to_string()));
        property
    };
    let venue = |index: Option<u32>| {
        group
            .venues
            .get(index.unwrap_or(0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    let event = |uid: String,
                 date: NaiveDate,
                 start: NaiveTime,
                 end: NaiveTime,
                 location: String,
                 description: &str| {
        let mut e = Event::new(uid, stamp.to_string());
        e.push(in_zone(DtStart::new(local(date, start)).into()));
        e.push(in_zone(DtEnd::new(local(date, end)).into()));
        e.push(Summary::new(text(group.name)));
        if !description.is_empty() {
            e.push(Description::new(text(description)));
        }
        if !location.is_empty() {
            e.push(Location::new(text(&location)));
        }
        e
    };
    let series_uid = format!("{}@selfhelp", group.id);
    if let Some(s) = schedule {
        // DTSTART must be the first meeting of the series.
        let before_start = s
            .valid_from
            .and_hms_opt(0, 0, 0)
            .and_then(|midnight| tz.from_local_datetime(&midnight).earliest())
            .map(|d| d.with_timezone(&Utc) - chrono::Duration::seconds(1));
        let first = before_start.and_then(|b| s.regular_starts(tz, b, 1).into_iter().next());
        if let Some(first) = first {
            let date = first.with_timezone(&tz).date_naive();
            let mut series = event(
                series_uid.clone(),
                date,
                s.start,
                s.end,
                venue(None),
                group.summary,
            );
            series.push(RRule::new(s.rrule_text(&tz)));
            for e in exceptions {
                if let Exception::Cancelled { date, .. } = e {
                    series.push(in_zone(ExDate::new(local(*date, s.start)).into()));
                }
            }
            out.push(Dated {
                event: series,
                first_day: date,
            });
            for e in exceptions {
                if let Exception::Moved {
                    date,
                    new_date,
                    start,
                    end,
                    venue_index,
                    note,
                } = e
                {
                    let mut moved = event(
                        series_uid.clone(),
                        *new_date,
                        *start,
                        *end,
                        venue(*venue_index),
                        note,
                    );
                    moved.push(in_zone(RecurrenceID::new(local(*date, s.start)).into()));
                    out.push(Dated {
                        event: moved,
                        first_day: (*date).min(*new_date),
                    });
                }
            }
        }
    }
    for e in exceptions {
        if let Exception::OneOff {
            date,
            start,
            end,
            venue_index,
            note,
        } = e
        {
            let uid = format!("{}-{}@selfhelp", group.id, local(*date, *start));
            out.push(Dated {
                event: event(uid, *date, *start, *end, venue(*venue_index), note),
                first_day: *date,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::Pattern;
    use chrono::Weekday;

    #[test]
    fn text_is_escaped_and_no_control_character_starts_a_property() {
        assert_eq!(text("Tea, talk; and\nmore"), "Tea\\, talk\\; and\\nmore");
        // A lone CR cannot end the line and start a property of its own.
        assert_eq!(
            text("Hall\rDTSTART:19700101T000000\u{7}"),
            "Hall\\nDTSTART:19700101T000000"
        );
        assert!(!text("a\rb\r\nc").contains('\r'));
    }

    #[test]
    fn series_with_cancellation_move_and_one_off() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 1, day).unwrap();
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        let schedule = Schedule {
            pattern: Pattern::Weekly {
                interval: 1,
                weekday: Weekday::Wed,
            },
            valid_from: d(1),
            valid_until: None,
            start: t(19),
            end: t(21),
        };
        let exceptions = vec![
            Exception::Cancelled {
                date: d(14),
                note: String::new(),
            },
            Exception::Moved {
                date: d(21),
                new_date: d(22),
                start: t(18),
                end: t(20),
                venue_index: None,
                note: "Thursday this week".into(),
            },
            Exception::OneOff {
                date: d(24),
                start: t(11),
                end: t(13),
                venue_index: None,
                note: "Picnic".into(),
            },
        ];
        let group = CalendarGroup {
            id: "g1",
            name: "Carers, together",
            summary: "",
            venues: &["Hall, NG1 5FS".to_string()],
        };
        let ics = export(
            &group,
            Some(&schedule),
            &exceptions,
            chrono_tz::Europe::London,
            Utc::now(),
        );
        assert!(
            ics.contains("DTSTART;TZID=Europe/London:20260107T190000\r\n"),
            "first Wednesday on/after valid_from"
        );
        assert!(ics.contains("RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=WE\r\n"));
        assert!(ics.contains("EXDATE;TZID=Europe/London:20260114T190000\r\n"));
        assert!(ics.contains("RECURRENCE-ID;TZID=Europe/London:20260121T190000\r\n"));
        assert!(ics.contains("UID:g1-20260124T110000@selfhelp\r\n"));
        assert!(ics.contains("SUMMARY:Carers\\, together\r\n"));
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 3);
    }
}
