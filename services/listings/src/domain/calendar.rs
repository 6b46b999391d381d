//! iCalendar (RFC 5545) export of a group's meetings: the recurring series with
//! its rule, cancelled meetings as EXDATE, moved ones as overrides with
//! RECURRENCE-ID, and one-off meetings as their own events.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

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
/// region's or a topic's feed).
pub fn export_many(
    name: &str,
    groups: &[GroupMeetings<'_>],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//selfhelp//listings//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", escape(name)),
    ];
    if tz == chrono_tz::Europe::London {
        lines.extend(EUROPE_LONDON.iter().map(|l| l.to_string()));
    }
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    for g in groups {
        group_events(&mut lines, g, tz, &stamp);
    }
    lines.push("END:VCALENDAR".into());
    lines.iter().map(|l| fold(l)).collect::<Vec<_>>().join("")
}

/// The VEVENTs of one group: the series with its rule and cancellations, moved
/// meetings as overrides, one-off meetings.
fn group_events(
    lines: &mut Vec<String>,
    meetings: &GroupMeetings<'_>,
    tz: chrono_tz::Tz,
    stamp: &str,
) {
    let (group, schedule, exceptions) = (&meetings.group, meetings.schedule, meetings.exceptions);
    let tzid = tz.name();
    let local = |date: NaiveDate, time: NaiveTime| {
        format!("{}T{}", date.format("%Y%m%d"), time.format("%H%M%S"))
    };
    let venue = |index: Option<u32>| {
        group
            .venues
            .get(index.unwrap_or(0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    let event = |lines: &mut Vec<String>,
                 uid: String,
                 start: String,
                 end: String,
                 location: String,
                 description: &str| {
        lines.push("BEGIN:VEVENT".into());
        lines.push(format!("UID:{uid}"));
        lines.push(format!("DTSTAMP:{stamp}"));
        lines.push(format!("DTSTART;TZID={tzid}:{start}"));
        lines.push(format!("DTEND;TZID={tzid}:{end}"));
        lines.push(format!("SUMMARY:{}", escape(group.name)));
        if !description.is_empty() {
            lines.push(format!("DESCRIPTION:{}", escape(description)));
        }
        if !location.is_empty() {
            lines.push(format!("LOCATION:{}", escape(&location)));
        }
    };
    let series_uid = format!("{}@selfhelp", group.id);
    if let Some(s) = schedule {
        // DTSTART must be the first meeting of the series.
        let before_start = tz
            .from_local_datetime(&s.valid_from.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|d| d.with_timezone(&Utc) - chrono::Duration::seconds(1));
        let first = before_start.and_then(|b| s.regular_starts(tz, b, 1).into_iter().next());
        if let Some(first) = first {
            let date = first.date_naive();
            event(
                lines,
                series_uid.clone(),
                local(date, s.start),
                local(date, s.end),
                venue(None),
                group.summary,
            );
            lines.push(format!("RRULE:{}", s.rrule_text(&tz)));
            for e in exceptions {
                if let Exception::Cancelled { date, .. } = e {
                    lines.push(format!("EXDATE;TZID={tzid}:{}", local(*date, s.start)));
                }
            }
            lines.push("END:VEVENT".into());
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
                    event(
                        lines,
                        series_uid.clone(),
                        local(*new_date, *start),
                        local(*new_date, *end),
                        venue(*venue_index),
                        note,
                    );
                    lines.push(format!(
                        "RECURRENCE-ID;TZID={tzid}:{}",
                        local(*date, s.start)
                    ));
                    lines.push("END:VEVENT".into());
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
            event(
                lines,
                uid,
                local(*date, *start),
                local(*date, *end),
                venue(*venue_index),
                note,
            );
            lines.push("END:VEVENT".into());
        }
    }
}

/// TEXT escaping (RFC 5545 §3.3.11). Every line break (CRLF, LF or a lone CR,
/// which some readers take as the end of a line) becomes `\n`, and any other
/// control character is dropped, so no text can start a property of its own.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace(['\r', '\n'], "\\n")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Folds a content line at 75 octets (never inside a UTF-8 character) and ends it with CRLF.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for ch in line.chars() {
        let len = ch.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += len;
    }
    out.push_str("\r\n");
    out
}

/// Europe/London's rules since 1996: GMT, and BST from the last Sunday of March
/// at 01:00 UTC to the last Sunday of October.
const EUROPE_LONDON: &[&str] = &[
    "BEGIN:VTIMEZONE",
    "TZID:Europe/London",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0000",
    "TZOFFSETTO:+0100",
    "TZNAME:BST",
    "DTSTART:19810329T010000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0000",
    "TZNAME:GMT",
    "DTSTART:19961027T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::Pattern;
    use chrono::Weekday;

    #[test]
    fn lines_are_folded_escaped_and_crlf_terminated() {
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 75));
        assert_eq!(folded.replace("\r\n ", ""), format!("{long}\r\n"));
        assert_eq!(escape("Tea, talk; and\nmore"), "Tea\\, talk\\; and\\nmore");
        // A lone CR cannot end the line and start a property of its own.
        assert_eq!(
            escape("Hall\rDTSTART:19700101T000000\u{7}"),
            "Hall\\nDTSTART:19700101T000000"
        );
        assert!(
            !fold(&format!("SUMMARY:{}", escape("a\rb\r\nc")))
                .trim_end()
                .contains('\r')
        );
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
