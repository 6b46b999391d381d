//! Recurring meetings: an iCalendar RRULE subset (weekly or every N weeks; monthly
//! on the nth or last weekday, or on a day of the month) at a local time in the
//! region's time zone, with single-occurrence exceptions. Occurrences come from the
//! `rrule` crate, so they stay at the same local time across clock changes.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use rrule::{Frequency, NWeekday, RRule, RRuleSet, Tz};
use selfhelp_core::validation::Violations;
use serde::{Deserialize, Serialize};

/// How a schedule repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    /// Every `interval` weeks on `weekday`.
    Weekly { interval: u16, weekday: Weekday },
    /// The `nth` (1..=4, or -1 for the last) `weekday` of every `interval` months.
    MonthlyByWeekday {
        interval: u16,
        nth: i16,
        weekday: Weekday,
    },
    /// Day `day` (1..=28) of every `interval` months.
    MonthlyByDate { interval: u16, day: u8 },
}

/// A validated recurring schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub pattern: Pattern,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A schedule as a client sent it, before checks (wire values already mapped).
#[derive(Debug, Clone, Default)]
pub struct ScheduleDraft {
    /// `Some(true)` weekly, `Some(false)` monthly, `None` unknown.
    pub weekly: Option<bool>,
    pub interval: i32,
    pub weekday: Option<Weekday>,
    pub week_of_month: i32,
    pub day_of_month: i32,
    pub valid_from: String,
    pub valid_until: String,
    pub start_time: String,
    pub end_time: String,
}

pub fn parse_date(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
) -> Option<NaiveDate> {
    if value.trim().is_empty() {
        if required {
            v.add(field, "must be a date such as 2026-12-02");
        }
        return None;
    }
    let parsed = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok();
    if parsed.is_none() {
        v.add(field, "must be a date such as 2026-12-02");
    }
    parsed
}

pub fn parse_time(v: &mut Violations, field: &str, value: &str) -> Option<NaiveTime> {
    let parsed = NaiveTime::parse_from_str(value.trim(), "%H:%M").ok();
    if parsed.is_none() {
        v.add(field, "must be a local time such as 19:00");
    }
    parsed
}

/// Checks a start and end time pair: the meeting ends after it starts, same day.
pub fn check_times(
    v: &mut Violations,
    prefix: &str,
    start: &str,
    end: &str,
) -> Option<(NaiveTime, NaiveTime)> {
    let s = parse_time(v, &format!("{prefix}start_time"), start);
    let e = parse_time(v, &format!("{prefix}end_time"), end);
    match (s, e) {
        (Some(s), Some(e)) if e > s => Some((s, e)),
        (Some(_), Some(_)) => {
            v.add(
                format!("{prefix}end_time"),
                "must be after the start time (same day)",
            );
            None
        }
        _ => None,
    }
}

/// How far back a schedule may start: a group that has met for years says so
/// with a recent date; an older one only makes every expansion longer.
pub const MAX_DAYS_BACK: i64 = 366;
/// How far ahead any date of a schedule or a single meeting may be.
pub const MAX_YEARS_AHEAD: u32 = 5;

/// Whether `date` lies within the window dates may take, seen from `today`:
/// at most [`MAX_DAYS_BACK`] back (when `back` is allowed) and
/// [`MAX_YEARS_AHEAD`] ahead. Adds a violation naming `field` when not.
pub fn check_window(
    v: &mut Violations,
    field: &str,
    date: NaiveDate,
    today: NaiveDate,
    back: bool,
) -> bool {
    let latest = today
        .checked_add_months(chrono::Months::new(12 * MAX_YEARS_AHEAD))
        .unwrap_or(NaiveDate::MAX);
    let earliest = if back {
        today - chrono::Duration::days(MAX_DAYS_BACK)
    } else {
        today
    };
    if date > latest {
        v.add(
            field,
            format!("must be at most {MAX_YEARS_AHEAD} years ahead (on or before {latest})"),
        );
        return false;
    }
    if date < earliest {
        let message = if back {
            format!("must be at most a year back (on or after {earliest})")
        } else {
            "must not be in the past".to_string()
        };
        v.add(field, message);
        return false;
    }
    true
}

/// Checks every field of a schedule, naming each one that is wrong (prefixed
/// with `schedule.`); dates must lie in the window of [`check_window`] seen from
/// `today` (the region's date).
pub fn validate(d: &ScheduleDraft, today: NaiveDate) -> Result<Schedule, Violations> {
    let mut v = Violations::new();
    let interval = match d.interval {
        0 => 1,
        n if (1..=12).contains(&n) => n as u16,
        _ => {
            v.add("schedule.interval", "must be between 1 and 12");
            1
        }
    };
    let pattern = match d.weekly {
        None => {
            v.add(
                "schedule.frequency",
                "must be FREQUENCY_WEEKLY or FREQUENCY_MONTHLY",
            );
            None
        }
        Some(true) => match d.weekday {
            Some(weekday) => Some(Pattern::Weekly { interval, weekday }),
            None => {
                v.add("schedule.weekday", "a weekly meeting needs its weekday");
                None
            }
        },
        Some(false) => match (d.weekday, d.week_of_month, d.day_of_month) {
            (Some(weekday), nth @ (1..=4 | -1), 0) => Some(Pattern::MonthlyByWeekday {
                interval,
                nth: nth as i16,
                weekday,
            }),
            (None, 0, day @ 1..=28) => Some(Pattern::MonthlyByDate {
                interval,
                day: day as u8,
            }),
            (Some(_), _, 0) => {
                v.add(
                    "schedule.week_of_month",
                    "must be 1 to 4, or -1 for the last",
                );
                None
            }
            (None, 0, _) => {
                v.add(
                    "schedule.day_of_month",
                    "must be 1 to 28 (or give weekday and week_of_month)",
                );
                None
            }
            _ => {
                v.add(
                    "schedule.day_of_month",
                    "give either weekday with week_of_month, or day_of_month",
                );
                None
            }
        },
    };
    let valid_from = parse_date(&mut v, "schedule.valid_from", &d.valid_from, true)
        .filter(|&from| check_window(&mut v, "schedule.valid_from", from, today, true));
    let valid_until = parse_date(&mut v, "schedule.valid_until", &d.valid_until, false)
        .filter(|&until| check_window(&mut v, "schedule.valid_until", until, today, true));
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && until < from
    {
        v.add("schedule.valid_until", "must not be before valid_from");
    }
    let times = check_times(&mut v, "schedule.", &d.start_time, &d.end_time);
    v.into_result()?;
    let (start, end) = times.expect("checked");
    Ok(Schedule {
        pattern: pattern.expect("checked"),
        valid_from: valid_from.expect("checked"),
        valid_until,
        start,
        end,
    })
}

impl Schedule {
    /// The rule as iCalendar RRULE text (without `RRULE:`).
    pub fn rrule_text(&self, tz: &chrono_tz::Tz) -> String {
        let mut parts = match &self.pattern {
            Pattern::Weekly { interval, weekday } => vec![
                "FREQ=WEEKLY".to_string(),
                format!("INTERVAL={interval}"),
                format!("BYDAY={}", ical_day(*weekday)),
            ],
            Pattern::MonthlyByWeekday {
                interval,
                nth,
                weekday,
            } => {
                vec![
                    "FREQ=MONTHLY".to_string(),
                    format!("INTERVAL={interval}"),
                    format!("BYDAY={nth}{}", ical_day(*weekday)),
                ]
            }
            Pattern::MonthlyByDate { interval, day } => {
                vec![
                    "FREQ=MONTHLY".to_string(),
                    format!("INTERVAL={interval}"),
                    format!("BYMONTHDAY={day}"),
                ]
            }
        };
        if let Some(until) = self.until_utc(tz) {
            parts.push(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
        }
        parts.join(";")
    }

    /// Rebuilds a schedule from what `rrule_text` wrote plus the window and times
    /// (as `schedule.changed` events carry them). Only the subset this crate
    /// writes is accepted; `UNTIL` is implied by `valid_until`.
    pub fn from_rrule(
        rrule: &str,
        valid_from: NaiveDate,
        valid_until: Option<NaiveDate>,
        start: NaiveTime,
        end: NaiveTime,
    ) -> Result<Schedule, String> {
        let mut freq = None;
        let mut interval: u16 = 1;
        let mut by_day = None;
        let mut by_month_day = None;
        for part in rrule.trim().trim_start_matches("RRULE:").split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("not a KEY=VALUE part: {part}"))?;
            match key {
                "FREQ" => freq = Some(value),
                "INTERVAL" => interval = value.parse().map_err(|_| format!("INTERVAL {value}"))?,
                "BYDAY" => by_day = Some(value),
                "BYMONTHDAY" => {
                    by_month_day = Some(
                        value
                            .parse::<u8>()
                            .map_err(|_| format!("BYMONTHDAY {value}"))?,
                    )
                }
                "UNTIL" | "WKST" => {}
                other => return Err(format!("{other} is not in the supported subset")),
            }
        }
        let split_day = |v: &str| -> Result<(i16, Weekday), String> {
            // The day is the last two bytes; anything not ASCII there is no day
            // code (and a byte index inside a character would panic).
            let (nth, day) = v
                .len()
                .checked_sub(2)
                .and_then(|at| v.split_at_checked(at))
                .ok_or_else(|| format!("BYDAY {v}"))?;
            let weekday = [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ]
            .into_iter()
            .find(|d| ical_day(*d) == day)
            .ok_or_else(|| format!("BYDAY {v}"))?;
            let nth = if nth.is_empty() {
                0
            } else {
                nth.trim_start_matches('+')
                    .parse()
                    .map_err(|_| format!("BYDAY {v}"))?
            };
            Ok((nth, weekday))
        };
        let pattern = match (freq, by_day, by_month_day) {
            (Some("WEEKLY"), Some(day), None) => match split_day(day)? {
                (0, weekday) => Pattern::Weekly { interval, weekday },
                _ => return Err(format!("weekly BYDAY {day} has an ordinal")),
            },
            (Some("MONTHLY"), Some(day), None) => {
                let (nth, weekday) = split_day(day)?;
                Pattern::MonthlyByWeekday {
                    interval,
                    nth,
                    weekday,
                }
            }
            (Some("MONTHLY"), None, Some(day)) => Pattern::MonthlyByDate { interval, day },
            _ => return Err(format!("{rrule} is not in the supported subset")),
        };
        Ok(Schedule {
            pattern,
            valid_from,
            valid_until,
            start,
            end,
        })
    }

    /// "Every 2nd Wednesday of the month, 7:00pm–9:00pm"
    pub fn describe(&self) -> String {
        let times = format!("{}–{}", clock(self.start), clock(self.end));
        let months = |interval: u16| match interval {
            1 => "every month".to_string(),
            2 => "every other month".to_string(),
            n => format!("every {n} months"),
        };
        match &self.pattern {
            Pattern::Weekly {
                interval: 1,
                weekday,
            } => format!("Every {}, {times}", day_name(*weekday)),
            Pattern::Weekly {
                interval: 2,
                weekday,
            } => format!("Every other week on {}, {times}", day_name(*weekday)),
            Pattern::Weekly { interval, weekday } => {
                format!("Every {interval} weeks on {}, {times}", day_name(*weekday))
            }
            Pattern::MonthlyByWeekday {
                interval: 1,
                nth,
                weekday,
            } => {
                format!(
                    "Every {} {} of the month, {times}",
                    ordinal(*nth),
                    day_name(*weekday)
                )
            }
            Pattern::MonthlyByWeekday {
                interval,
                nth,
                weekday,
            } => {
                format!(
                    "The {} {} of {}, {times}",
                    ordinal(*nth),
                    day_name(*weekday),
                    months(*interval)
                )
            }
            Pattern::MonthlyByDate { interval, day } => {
                format!(
                    "On the {} of {}, {times}",
                    ordinal(*day as i16),
                    months(*interval)
                )
            }
        }
    }

    fn until_utc(&self, tz: &chrono_tz::Tz) -> Option<DateTime<Utc>> {
        let last = self.valid_until?.and_time(self.end);
        tz.from_local_datetime(&last)
            .latest()
            .map(|d| d.with_timezone(&Utc))
    }

    /// A first date for the rule at most two repeats before `near`, on the same
    /// beat as `valid_from` (a whole number of intervals on), so the meetings
    /// are the same as from `valid_from` while expanding from a start long ago
    /// costs nothing.
    fn start_near(&self, near: NaiveDate) -> NaiveDate {
        if near <= self.valid_from {
            return self.valid_from;
        }
        match &self.pattern {
            Pattern::Weekly { interval, .. } => {
                let period = 7 * i64::from((*interval).max(1));
                let periods = ((near - self.valid_from).num_days() / period - 1).max(0);
                self.valid_from + chrono::Duration::days(periods * period)
            }
            Pattern::MonthlyByWeekday { interval, .. }
            | Pattern::MonthlyByDate { interval, .. } => {
                use chrono::Datelike;
                let interval = i64::from((*interval).max(1));
                let months = i64::from(near.year() - self.valid_from.year()) * 12
                    + i64::from(near.month())
                    - i64::from(self.valid_from.month());
                let periods = (months / interval - 1).max(0);
                if periods == 0 {
                    return self.valid_from;
                }
                // The first of a later month: every meeting of that month is on
                // or after it, and the months counted stay on the beat.
                self.valid_from
                    .with_day(1)
                    .and_then(|d| {
                        d.checked_add_months(chrono::Months::new((periods * interval) as u32))
                    })
                    .unwrap_or(self.valid_from)
            }
        }
    }

    fn rule(&self, tz: chrono_tz::Tz, near: NaiveDate) -> Option<RRuleSet> {
        let local = |date: NaiveDate| {
            tz.from_local_datetime(&date.and_time(self.start))
                .earliest()
        };
        // (Should the later start fall in a clock change's gap, the original will do.)
        let start = local(self.start_near(near)).or_else(|| local(self.valid_from))?;
        let start = start.with_timezone(&Tz::Tz(tz));
        let mut rule = match &self.pattern {
            Pattern::Weekly { interval, weekday } => RRule::new(Frequency::Weekly)
                .interval(*interval)
                .by_weekday(vec![NWeekday::Every(*weekday)]),
            Pattern::MonthlyByWeekday {
                interval,
                nth,
                weekday,
            } => RRule::new(Frequency::Monthly)
                .interval(*interval)
                .by_weekday(vec![NWeekday::Nth(*nth, *weekday)]),
            Pattern::MonthlyByDate { interval, day } => RRule::new(Frequency::Monthly)
                .interval(*interval)
                .by_month_day(vec![*day as i8]),
        };
        if let Some(until) = self.until_utc(&tz) {
            rule = rule.until(until.with_timezone(&Tz::Tz(tz)));
        }
        rule.build(start).ok()
    }

    /// The regular meeting start times (local) from `after` on, at most `limit`.
    pub fn regular_starts(
        &self,
        tz: chrono_tz::Tz,
        after: DateTime<Utc>,
        limit: u16,
    ) -> Vec<DateTime<chrono_tz::Tz>> {
        let Some(set) = self.rule(tz, after.with_timezone(&tz).date_naive()) else {
            return Vec::new();
        };
        set.after(after.with_timezone(&Tz::Tz(tz)))
            .all(limit)
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&tz))
            .collect()
    }

    /// Whether `date` is one of the schedule's regular meeting days.
    pub fn meets_on(&self, tz: chrono_tz::Tz, date: NaiveDate) -> bool {
        let Some(day_start) = tz
            .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
        else {
            return false;
        };
        let before = day_start.with_timezone(&Utc) - chrono::Duration::seconds(1);
        self.regular_starts(tz, before, 1)
            .first()
            .is_some_and(|d| d.date_naive() == date)
    }
}

/// A change to one meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exception {
    Cancelled {
        date: NaiveDate,
        note: String,
    },
    Moved {
        date: NaiveDate,
        new_date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        venue_index: Option<u32>,
        note: String,
    },
    OneOff {
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        venue_index: Option<u32>,
        note: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurrenceKind {
    Regular,
    Moved,
    OneOff,
}

/// One meeting as people should see it, exceptions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub starts_at: DateTime<chrono_tz::Tz>,
    pub ends_at: DateTime<chrono_tz::Tz>,
    pub kind: OccurrenceKind,
    /// For a moved meeting: the date it was moved from.
    pub original_date: Option<NaiveDate>,
    pub venue_index: Option<u32>,
    pub note: String,
}

fn local(tz: chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<chrono_tz::Tz>> {
    tz.from_local_datetime(&date.and_time(time)).earliest()
}

/// The next `count` meetings after `now`: the regular ones minus cancelled and moved
/// ones, plus moved and one-off meetings.
pub fn next_occurrences(
    schedule: Option<&Schedule>,
    exceptions: &[Exception],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    count: usize,
) -> Vec<Occurrence> {
    let skipped: Vec<NaiveDate> = exceptions
        .iter()
        .filter_map(|e| match e {
            Exception::Cancelled { date, .. } | Exception::Moved { date, .. } => Some(*date),
            Exception::OneOff { .. } => None,
        })
        .collect();
    let mut out = Vec::new();
    if let Some(s) = schedule {
        let wanted = (count + skipped.len()).min(u16::MAX as usize) as u16;
        for start in s.regular_starts(tz, now, wanted) {
            if skipped.contains(&start.date_naive()) {
                continue;
            }
            if let Some(end) = local(tz, start.date_naive(), s.end) {
                out.push(Occurrence {
                    starts_at: start,
                    ends_at: end,
                    kind: OccurrenceKind::Regular,
                    original_date: None,
                    venue_index: None,
                    note: String::new(),
                });
            }
        }
    }
    for e in exceptions {
        let (date, start, end, venue_index, note, kind, original) = match e {
            Exception::Cancelled { .. } => continue,
            Exception::Moved {
                date,
                new_date,
                start,
                end,
                venue_index,
                note,
            } => (
                *new_date,
                *start,
                *end,
                *venue_index,
                note,
                OccurrenceKind::Moved,
                Some(*date),
            ),
            Exception::OneOff {
                date,
                start,
                end,
                venue_index,
                note,
            } => (
                *date,
                *start,
                *end,
                *venue_index,
                note,
                OccurrenceKind::OneOff,
                None,
            ),
        };
        if let (Some(s), Some(e)) = (local(tz, date, start), local(tz, date, end))
            && s.with_timezone(&Utc) > now
        {
            out.push(Occurrence {
                starts_at: s,
                ends_at: e,
                kind,
                original_date: original,
                venue_index,
                note: note.clone(),
            });
        }
    }
    out.sort_by_key(|o| o.starts_at);
    out.truncate(count);
    out
}

fn ical_day(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn ordinal(n: i16) -> String {
    match n {
        -1 => "last".into(),
        n if (11..=13).contains(&(n % 100)) => format!("{n}th"),
        n => match n % 10 {
            1 => format!("{n}st"),
            2 => format!("{n}nd"),
            3 => format!("{n}rd"),
            _ => format!("{n}th"),
        },
    }
}

/// 19:00 → "7:00pm"
fn clock(t: NaiveTime) -> String {
    use chrono::Timelike;
    let (pm, hour) = t.hour12();
    format!("{hour}:{:02}{}", t.minute(), if pm { "pm" } else { "am" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONDON: chrono_tz::Tz = chrono_tz::Europe::London;

    fn schedule(pattern: Pattern) -> Schedule {
        Schedule {
            pattern,
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            valid_until: None,
            start: NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
        }
    }

    fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn describes_rules_in_plain_english() {
        assert_eq!(
            schedule(Pattern::Weekly {
                interval: 1,
                weekday: Weekday::Wed
            })
            .describe(),
            "Every Wednesday, 7:00pm–9:00pm"
        );
        assert_eq!(
            schedule(Pattern::Weekly {
                interval: 2,
                weekday: Weekday::Tue
            })
            .describe(),
            "Every other week on Tuesday, 7:00pm–9:00pm"
        );
        assert_eq!(
            schedule(Pattern::MonthlyByWeekday {
                interval: 1,
                nth: 2,
                weekday: Weekday::Wed
            })
            .describe(),
            "Every 2nd Wednesday of the month, 7:00pm–9:00pm"
        );
        assert_eq!(
            schedule(Pattern::MonthlyByWeekday {
                interval: 1,
                nth: -1,
                weekday: Weekday::Fri
            })
            .describe(),
            "Every last Friday of the month, 7:00pm–9:00pm"
        );
        assert_eq!(
            schedule(Pattern::MonthlyByDate {
                interval: 1,
                day: 15
            })
            .describe(),
            "On the 15th of every month, 7:00pm–9:00pm"
        );
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    #[test]
    fn dates_outside_the_window_are_refused_by_name() {
        let draft = |from: &str, until: &str| ScheduleDraft {
            weekly: Some(true),
            weekday: Some(Weekday::Wed),
            start_time: "19:00".into(),
            end_time: "21:00".into(),
            valid_from: from.into(),
            valid_until: until.into(),
            ..Default::default()
        };
        let refused = |from: &str, until: &str| -> Vec<String> {
            validate(&draft(from, until), today())
                .unwrap_err()
                .fields()
                .map(String::from)
                .collect()
        };
        assert_eq!(refused("1000-01-01", ""), vec!["schedule.valid_from"]);
        assert_eq!(refused("-9999-01-01", ""), vec!["schedule.valid_from"]);
        assert_eq!(refused("2025-02-27", ""), vec!["schedule.valid_from"]);
        assert_eq!(refused("2031-03-02", ""), vec!["schedule.valid_from"]);
        assert_eq!(
            refused("2026-03-01", "9999-12-31"),
            vec!["schedule.valid_until"]
        );
        // The edges are in.
        assert!(validate(&draft("2025-03-01", "2031-03-01"), today()).is_ok());
    }

    /// The same meetings whether expanded from the start or from near `after`.
    #[test]
    fn expanding_from_near_now_keeps_every_rule_on_its_beat() {
        let patterns = [
            Pattern::Weekly {
                interval: 1,
                weekday: Weekday::Mon,
            },
            Pattern::Weekly {
                interval: 3,
                weekday: Weekday::Sat,
            },
            Pattern::MonthlyByWeekday {
                interval: 5,
                nth: -1,
                weekday: Weekday::Fri,
            },
            Pattern::MonthlyByWeekday {
                interval: 2,
                nth: 1,
                weekday: Weekday::Sun,
            },
            Pattern::MonthlyByDate {
                interval: 7,
                day: 28,
            },
        ];
        for pattern in patterns {
            for from in ["2019-01-31", "2019-02-28", "2019-06-05", "2023-12-31"] {
                let mut s = schedule(pattern.clone());
                s.valid_from = NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap();
                for after in [utc(2026, 1, 1), utc(2026, 3, 29), utc(2027, 10, 31)] {
                    let near = s.regular_starts(LONDON, after, 12);
                    // The long way: every meeting from the first, then those after.
                    let all: Vec<_> = s
                        .rule(LONDON, s.valid_from)
                        .unwrap()
                        .all(2_000)
                        .dates
                        .into_iter()
                        .map(|d| d.with_timezone(&LONDON))
                        .filter(|d| d.with_timezone(&Utc) > after)
                        .take(12)
                        .collect();
                    assert_eq!(near, all, "{pattern:?} from {from} after {after}");
                    assert_eq!(near.len(), 12);
                }
            }
        }
    }

    #[test]
    fn a_start_in_the_distant_past_expands_from_near_now() {
        // Stored before the window existed: still answers, from near `after`.
        let mut s = schedule(Pattern::Weekly {
            interval: 2,
            weekday: Weekday::Wed,
        });
        s.valid_from = NaiveDate::from_ymd_opt(1000, 1, 1).unwrap();
        let after = utc(2026, 6, 1);
        let start = s.start_near(after.date_naive());
        assert!(start <= after.date_naive());
        assert!((after.date_naive() - start).num_days() <= 28);
        assert_eq!(s.regular_starts(LONDON, after, 3).len(), 3);
    }

    #[test]
    fn a_day_code_that_is_not_ascii_is_refused_not_a_panic() {
        let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let time = NaiveTime::from_hms_opt(19, 0, 0).unwrap();
        for byday in ["ÖO", "MÖ", "Ö", "2ÖO", "-ÿ", "é"] {
            let rule = format!("FREQ=MONTHLY;INTERVAL=1;BYDAY={byday}");
            let parsed = Schedule::from_rrule(&rule, date, None, time, time);
            assert!(parsed.is_err(), "{rule} accepted");
        }
        let fine = Schedule::from_rrule("FREQ=WEEKLY;BYDAY=MO", date, None, time, time);
        assert!(fine.is_ok());
    }

    #[test]
    fn rrule_text() {
        let s = schedule(Pattern::MonthlyByWeekday {
            interval: 1,
            nth: -1,
            weekday: Weekday::Fri,
        });
        assert_eq!(s.rrule_text(&LONDON), "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR");
        let mut s = schedule(Pattern::Weekly {
            interval: 2,
            weekday: Weekday::Mon,
        });
        s.valid_until = Some(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(
            s.rrule_text(&LONDON),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;UNTIL=20260701T200000Z"
        );
    }

    #[test]
    fn second_wednesday_and_last_friday() {
        let second_wed = schedule(Pattern::MonthlyByWeekday {
            interval: 1,
            nth: 2,
            weekday: Weekday::Wed,
        });
        let dates: Vec<NaiveDate> = second_wed
            .regular_starts(LONDON, utc(2026, 1, 1), 3)
            .iter()
            .map(|d| d.date_naive())
            .collect();
        assert_eq!(
            dates,
            vec![
                NaiveDate::from_ymd_opt(2026, 1, 14).unwrap(),
                NaiveDate::from_ymd_opt(2026, 2, 11).unwrap(),
                NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(),
            ]
        );
        let last_fri = schedule(Pattern::MonthlyByWeekday {
            interval: 1,
            nth: -1,
            weekday: Weekday::Fri,
        });
        let dates: Vec<NaiveDate> = last_fri
            .regular_starts(LONDON, utc(2026, 1, 1), 2)
            .iter()
            .map(|d| d.date_naive())
            .collect();
        assert_eq!(
            dates,
            vec![
                NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(),
                NaiveDate::from_ymd_opt(2026, 2, 27).unwrap()
            ]
        );
    }

    #[test]
    fn local_time_holds_across_clock_changes() {
        // British Summer Time starts on 29 March 2026.
        let weekly = schedule(Pattern::Weekly {
            interval: 1,
            weekday: Weekday::Wed,
        });
        let starts = weekly.regular_starts(LONDON, utc(2026, 3, 20), 2);
        use chrono::Timelike;
        assert!(starts.iter().all(|s| s.hour() == 19), "{starts:?}");
        assert_eq!(starts[0].with_timezone(&Utc).hour(), 19, "GMT in March");
        assert_eq!(starts[1].with_timezone(&Utc).hour(), 18, "BST from April");
    }

    #[test]
    fn exceptions_apply() {
        let weekly = schedule(Pattern::Weekly {
            interval: 1,
            weekday: Weekday::Wed,
        });
        let d = |day| NaiveDate::from_ymd_opt(2026, 1, day).unwrap();
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        let exceptions = vec![
            Exception::Cancelled {
                date: d(7),
                note: "Hall closed".into(),
            },
            Exception::Moved {
                date: d(14),
                new_date: d(15),
                start: t(18),
                end: t(20),
                venue_index: Some(1),
                note: String::new(),
            },
            Exception::OneOff {
                date: d(17),
                start: t(11),
                end: t(13),
                venue_index: None,
                note: "Picnic".into(),
            },
        ];
        let next = next_occurrences(Some(&weekly), &exceptions, LONDON, utc(2026, 1, 1), 4);
        let summary: Vec<(NaiveDate, OccurrenceKind)> = next
            .iter()
            .map(|o| (o.starts_at.date_naive(), o.kind))
            .collect();
        assert_eq!(
            summary,
            vec![
                (d(15), OccurrenceKind::Moved),
                (d(17), OccurrenceKind::OneOff),
                (d(21), OccurrenceKind::Regular),
                (d(28), OccurrenceKind::Regular),
            ]
        );
        assert_eq!(next[0].original_date, Some(d(14)));
        assert!(weekly.meets_on(LONDON, d(7)));
        assert!(!weekly.meets_on(LONDON, d(8)));
    }

    #[test]
    fn validation_names_fields() {
        let bad = ScheduleDraft {
            weekly: Some(false),
            weekday: Some(Weekday::Wed),
            week_of_month: 5,
            start_time: "25:00".into(),
            end_time: "19:00".into(),
            valid_from: "soon".into(),
            ..Default::default()
        };
        let fields: Vec<String> = validate(&bad, today())
            .unwrap_err()
            .fields()
            .map(String::from)
            .collect();
        assert_eq!(
            fields,
            vec![
                "schedule.week_of_month",
                "schedule.valid_from",
                "schedule.start_time"
            ]
        );
        let backwards = ScheduleDraft {
            weekly: Some(true),
            weekday: Some(Weekday::Wed),
            start_time: "21:00".into(),
            end_time: "19:00".into(),
            valid_from: "2026-01-01".into(),
            ..Default::default()
        };
        let fields: Vec<String> = validate(&backwards, today())
            .unwrap_err()
            .fields()
            .map(String::from)
            .collect();
        assert_eq!(fields, vec!["schedule.end_time"]);
        let ok = ScheduleDraft {
            weekly: Some(false),
            day_of_month: 15,
            start_time: "10:30".into(),
            end_time: "12:00".into(),
            valid_from: "2026-01-01".into(),
            ..Default::default()
        };
        assert_eq!(
            validate(&ok, today()).unwrap().pattern,
            Pattern::MonthlyByDate {
                interval: 1,
                day: 15
            }
        );
    }

    #[test]
    fn a_written_rule_reads_back_as_the_same_schedule() {
        for pattern in [
            Pattern::Weekly {
                interval: 2,
                weekday: Weekday::Wed,
            },
            Pattern::MonthlyByWeekday {
                interval: 1,
                nth: -1,
                weekday: Weekday::Fri,
            },
            Pattern::MonthlyByWeekday {
                interval: 3,
                nth: 2,
                weekday: Weekday::Tue,
            },
            Pattern::MonthlyByDate {
                interval: 1,
                day: 15,
            },
        ] {
            let mut s = schedule(pattern);
            s.valid_until = NaiveDate::from_ymd_opt(2027, 6, 30);
            let text = s.rrule_text(&LONDON);
            let back = Schedule::from_rrule(&text, s.valid_from, s.valid_until, s.start, s.end);
            assert_eq!(back, Ok(s), "{text}");
        }
        assert!(
            Schedule::from_rrule(
                "FREQ=DAILY",
                NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                None,
                NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
                NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            )
            .is_err()
        );
    }
}
