//! Rotas: a duty (chair, tea…) passes round an ordered list of volunteers, one
//! meeting at a time. The turns are worked out afresh from the meetings since the
//! rota started, so a cancelled meeting simply is not a turn (whoever was due
//! does the next one) and a moved meeting keeps its turn.
//!
//! Fairness: volunteers queue; each meeting goes to the first in the queue who
//! has not asked to skip it, who then goes to the back. Someone who skips stays
//! at the front and takes the next meeting, so nobody gains or loses turns.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use selfhelp_schedule::{Exception, Occurrence, OccurrenceKind, Schedule, next_occurrences};

/// One meeting as a rota sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    /// Stable across moves: the original date, or date and time of a one-off.
    pub key: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl Meeting {
    fn of(o: &Occurrence) -> Meeting {
        let key = match o.kind {
            OccurrenceKind::Regular => o.starts_at.date_naive().to_string(),
            OccurrenceKind::Moved => o
                .original_date
                .unwrap_or_else(|| o.starts_at.date_naive())
                .to_string(),
            OccurrenceKind::OneOff => o.starts_at.format("%Y-%m-%dT%H:%M").to_string(),
        };
        Meeting {
            key,
            starts_at: o.starts_at.with_timezone(&Utc),
            ends_at: o.ends_at.with_timezone(&Utc),
        }
    }
}

/// A change a volunteer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnChange {
    /// `person` will not do the meeting `meeting`.
    Skip { meeting: String, person: String },
    /// The people on duty at the two meetings exchange them.
    Swap { meeting: String, other: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub meeting: Meeting,
    /// `None` when every volunteer skipped it.
    pub person: Option<String>,
}

/// A meeting's turn changing hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub meeting: Meeting,
    /// On duty before, and after; `None` for nobody.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Whether a swap asked still stands in `turns`: `meeting` is still
/// `asked_by`'s turn and `other` still `asked_of`'s.
pub fn swap_stands(
    turns: &[Turn],
    meeting: &str,
    asked_by: &str,
    other: &str,
    asked_of: &str,
) -> bool {
    let holds = |key: &str, person: &str| {
        turns
            .iter()
            .any(|t| t.meeting.key == key && t.person.as_deref() == Some(person))
    };
    holds(meeting, asked_by) && holds(other, asked_of)
}

/// The meetings whose person on duty differs between `before` and `after`
/// (the same meetings' turns, before and after a change).
pub fn handovers(before: &[Turn], after: &[Turn]) -> Vec<Handover> {
    before
        .iter()
        .filter_map(|b| {
            let a = after.iter().find(|a| a.meeting.key == b.meeting.key)?;
            (a.person != b.person).then(|| Handover {
                meeting: b.meeting.clone(),
                from: b.person.clone(),
                to: a.person.clone(),
            })
        })
        .collect()
}

/// The turns at `meetings` (in time order, from the rota's start) for
/// `volunteers` (in rotation order), with skips and swaps applied.
pub fn turns(volunteers: &[String], meetings: &[Meeting], changes: &[TurnChange]) -> Vec<Turn> {
    rotate(volunteers, meetings, changes).0
}

/// The order volunteers stand in after `meetings`: who is next, then after. A
/// rota that loses a volunteer restarts from this order, so nobody's place in
/// the rotation changes but theirs.
pub fn order_after(
    volunteers: &[String],
    meetings: &[Meeting],
    changes: &[TurnChange],
) -> Vec<String> {
    rotate(volunteers, meetings, changes).1
}

fn rotate(
    volunteers: &[String],
    meetings: &[Meeting],
    changes: &[TurnChange],
) -> (Vec<Turn>, Vec<String>) {
    let mut queue: VecDeque<&String> = volunteers.iter().collect();
    let mut out: Vec<Turn> = meetings
        .iter()
        .map(|meeting| {
            let skipping = |p: &String| {
                changes.iter().any(|c| {
                    matches!(c, TurnChange::Skip { meeting: m, person } if *m == meeting.key && person == p)
                })
            };
            let person = queue
                .iter()
                .position(|p| !skipping(p))
                .and_then(|i| queue.remove(i))
                .inspect(|p| queue.push_back(p))
                .cloned();
            Turn {
                meeting: meeting.clone(),
                person,
            }
        })
        .collect();
    let order = queue.iter().map(|p| p.to_string()).collect();
    for change in changes {
        if let TurnChange::Swap { meeting, other } = change {
            let a = out.iter().position(|t| t.meeting.key == *meeting);
            let b = out.iter().position(|t| t.meeting.key == *other);
            if let (Some(a), Some(b)) = (a, b) {
                let held = out[a].person.take();
                out[a].person = out[b].person.take();
                out[b].person = held;
            }
        }
    }
    (out, order)
}

/// The group's meetings from `since` until `ahead` meetings after `now`.
pub fn meetings(
    schedule: Option<&Schedule>,
    exceptions: &[Exception],
    tz: chrono_tz::Tz,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    ahead: usize,
) -> Vec<Meeting> {
    // At most one regular meeting a day, plus the exceptions: enough to reach
    // `ahead` meetings past now.
    let days = (now - since).num_days().max(0) as usize;
    let count = (days + exceptions.len() + ahead + 1).min(20_000);
    let all: Vec<Meeting> = next_occurrences(schedule, exceptions, tz, since, count)
        .iter()
        .map(Meeting::of)
        .collect();
    let upcoming = all.iter().filter(|m| m.starts_at > now).count();
    let drop_tail = upcoming.saturating_sub(ahead);
    all[..all.len() - drop_tail].to_vec()
}

/// A local date and time in `tz` (the earliest, across a clock change).
pub fn local(tz: chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use selfhelp_schedule::Pattern;

    const LONDON: chrono_tz::Tz = chrono_tz::Europe::London;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn weekly() -> Schedule {
        Schedule {
            pattern: Pattern::Weekly {
                interval: 1,
                weekday: Weekday::Wed,
            },
            valid_from: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            valid_until: None,
            start: NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
        }
    }

    fn who(turns: &[Turn]) -> Vec<(String, Option<String>)> {
        turns
            .iter()
            .map(|t| (t.meeting.key.clone(), t.person.clone()))
            .collect()
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_cancelled_meeting_passes_the_turn_to_the_next_one() {
        let cancelled = Exception::Cancelled {
            date: NaiveDate::from_ymd_opt(2026, 12, 9).unwrap(),
            note: String::new(),
        };
        let start = at(2026, 12, 1);
        let m = meetings(Some(&weekly()), &[cancelled], LONDON, start, start, 4);
        let t = turns(&names(&["ann", "bo", "cy"]), &m, &[]);
        assert_eq!(
            who(&t),
            vec![
                ("2026-12-02".into(), Some("ann".into())),
                ("2026-12-16".into(), Some("bo".into())),
                ("2026-12-23".into(), Some("cy".into())),
                ("2026-12-30".into(), Some("ann".into())),
            ]
        );
    }

    #[test]
    fn past_meetings_keep_the_rotation_going() {
        let start = at(2026, 12, 1);
        let now = at(2026, 12, 10); // two meetings have happened
        let m = meetings(Some(&weekly()), &[], LONDON, start, now, 2);
        let t = turns(&names(&["ann", "bo", "cy"]), &m, &[]);
        let upcoming: Vec<_> = t.iter().filter(|t| t.meeting.starts_at > now).collect();
        assert_eq!(upcoming.len(), 2);
        assert_eq!(upcoming[0].person.as_deref(), Some("cy"));
        assert_eq!(upcoming[1].person.as_deref(), Some("ann"));
    }

    #[test]
    fn a_moved_meeting_keeps_its_turn_and_key() {
        let moved = Exception::Moved {
            date: NaiveDate::from_ymd_opt(2026, 12, 9).unwrap(),
            new_date: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
            start: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            venue_index: None,
            note: String::new(),
        };
        let start = at(2026, 12, 1);
        let m = meetings(Some(&weekly()), &[moved], LONDON, start, start, 3);
        assert_eq!(m[1].key, "2026-12-09");
        assert_eq!(
            m[1].starts_at,
            Utc.with_ymd_and_hms(2026, 12, 10, 18, 0, 0).unwrap()
        );
        let t = turns(&names(&["ann", "bo"]), &m, &[]);
        assert_eq!(t[1].person.as_deref(), Some("bo"));
    }

    #[test]
    fn skipping_defers_and_swapping_exchanges() {
        let start = at(2026, 12, 1);
        let m = meetings(Some(&weekly()), &[], LONDON, start, start, 4);
        let skip = TurnChange::Skip {
            meeting: "2026-12-02".into(),
            person: "ann".into(),
        };
        let t = turns(&names(&["ann", "bo", "cy"]), &m, &[skip]);
        let people: Vec<_> = t.iter().map(|t| t.person.clone().unwrap()).collect();
        assert_eq!(
            people,
            vec!["bo", "ann", "cy", "bo"],
            "ann does the next one"
        );

        let swap = TurnChange::Swap {
            meeting: "2026-12-02".into(),
            other: "2026-12-16".into(),
        };
        let t = turns(&names(&["ann", "bo", "cy"]), &m, &[swap]);
        let people: Vec<_> = t.iter().map(|t| t.person.clone().unwrap()).collect();
        assert_eq!(people, vec!["cy", "bo", "ann", "ann"]);

        let everyone = ["ann", "bo"].map(|p| TurnChange::Skip {
            meeting: "2026-12-02".into(),
            person: p.into(),
        });
        let t = turns(&names(&["ann", "bo"]), &m, &everyone);
        assert_eq!(t[0].person, None);
        assert_eq!(t[1].person.as_deref(), Some("ann"));
    }

    #[test]
    fn the_order_after_past_meetings_carries_the_rotation_on() {
        let start = at(2026, 12, 1);
        let m = meetings(Some(&weekly()), &[], LONDON, start, start, 2);
        // ann and bo have had their turns: cy is next, then ann, then bo.
        assert_eq!(
            order_after(&names(&["ann", "bo", "cy"]), &m, &[]),
            names(&["cy", "ann", "bo"])
        );
    }
}
