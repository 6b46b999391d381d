//! Meeting schedules over the wire: set, cancel, move, add one-offs, export.

use std::sync::{Arc, LazyLock};

use chrono::{NaiveDate, NaiveTime, TimeZone, Weekday};
use prost::Message;
use prost::bytes::Bytes;
use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_platform::trace::TraceParent;
use selfhelp_proto::listings::served::EncodedGroup;
use selfhelp_proto::listings::v1 as pb;

use super::ListingsApi;
use crate::domain::calendar::{self, CalendarGroup, GroupMeetings};
use crate::domain::group::Status as GroupStatus;
use crate::domain::schedule::{
    self, Exception, Occurrence, OccurrenceKind, Pattern, Schedule, ScheduleDraft, check_times,
    parse_date,
};
use crate::error::ServiceError;
use crate::events::MeetingEvent;
use crate::search::cards::Card;
use crate::store::exception as exception_store;
use crate::store::group::Model;
use crate::store::topic as topic_store;

/// How many upcoming meetings a group shows.
pub(super) const NEXT_MEETINGS: usize = 5;
const MAX_NOTE: usize = 500;

/// `recently_checked: true` as an encoded `Group` field, sent after a card.
static RECENTLY_CHECKED: LazyLock<Bytes> = LazyLock::new(|| {
    pb::Group {
        recently_checked: true,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
});

impl ListingsApi {
    /// The group as a client sees it, with its next meetings and exceptions.
    pub(super) async fn with_meetings(
        &self,
        g: &Model,
        caller: Option<&Caller>,
    ) -> Result<pb::Group, ServiceError> {
        let mut wire = self.to_wire(g, caller);
        let rows = exception_store::list(&self.read, &g.id).await?;
        let exceptions: Vec<Exception> = rows
            .iter()
            .filter_map(exception_store::Model::exception)
            .collect();
        wire.next_occurrences = schedule::next_occurrences(
            g.schedule().as_ref(),
            &exceptions,
            self.tz,
            self.clock.now(),
            NEXT_MEETINGS,
        )
        .iter()
        .map(occurrence_to_wire)
        .collect();
        wire.exceptions = rows.iter().map(exception_to_wire).collect();
        if let Some(caller) = caller {
            wire.pending_edit = self.pending_edit_of(g, caller).await?;
        }
        Ok(wire)
    }

    /// A published group's public card with its next `meetings` (at most
    /// [`NEXT_MEETINGS`]) and, for a group page, its exceptions, from memory:
    /// the card's bytes with the rest appended (ADR 25).
    pub(super) fn public_answer(
        &self,
        card: &Card,
        meetings: usize,
        with_exceptions: bool,
    ) -> EncodedGroup {
        let now = self.clock.now();
        let meetings = card.next_meetings(now.timestamp_millis(), meetings, || {
            let next = schedule::next_occurrences(
                card.schedule.as_ref(),
                &card.exceptions,
                self.tz,
                now,
                NEXT_MEETINGS,
            );
            let first = next.first().map(|o| o.starts_at.timestamp_millis());
            (next.iter().map(occurrence_to_wire).collect(), first)
        });
        let checked = crate::domain::group::recently_checked(
            card.assured_at_ms,
            now.timestamp_millis(),
            self.freshness.max_age_days,
        );
        EncodedGroup::from_runs([
            card.encoded().clone(),
            if with_exceptions {
                card.encoded_exceptions().clone()
            } else {
                Bytes::new()
            },
            meetings,
            if checked {
                RECENTLY_CHECKED.clone()
            } else {
                Bytes::new()
            },
        ])
    }

    /// A group whose meetings the caller may change: its organisers and the
    /// region's operators, while it is not archived.
    async fn managed_group(&self, caller: &Caller, id: &str) -> Result<Model, ServiceError> {
        let group = self.manageable(caller, id).await?;
        if group.status() == GroupStatus::Archived {
            return Err(ServiceError::FailedPrecondition(
                "the group is archived".into(),
            ));
        }
        Ok(group)
    }

    pub(super) fn today(&self) -> NaiveDate {
        self.clock.now().with_timezone(&self.tz).date_naive()
    }

    /// A required date, today or later, and not beyond the schedule window.
    fn future_date(&self, v: &mut Violations, field: &str, value: &str) -> Option<NaiveDate> {
        let date = parse_date(v, field, value, true)?;
        schedule::check_window(v, field, date, self.today(), false).then_some(date)
    }

    /// Checks that both times exist on `date` in the region's zone: a time the
    /// clocks skip when they go forward (01:30 on the last Sunday of March in
    /// London) is refused, naming the field.
    fn check_exists_on(
        &self,
        v: &mut Violations,
        prefix: &str,
        date: Option<NaiveDate>,
        times: Option<(NaiveTime, NaiveTime)>,
    ) -> bool {
        let (Some(date), Some((start, end))) = (date, times) else {
            return true;
        };
        let mut ok = true;
        for (field, time) in [("start_time", start), ("end_time", end)] {
            if self
                .tz
                .from_local_datetime(&date.and_time(time))
                .earliest()
                .is_none()
            {
                v.add(
                    format!("{prefix}{field}"),
                    format!("does not exist on {date}: the clocks go forward then"),
                );
                ok = false;
            }
        }
        ok
    }

    /// A meeting date of the current schedule, today or later.
    fn regular_date(
        &self,
        v: &mut Violations,
        group: &Model,
        field: &str,
        value: &str,
    ) -> Option<NaiveDate> {
        let date = parse_date(v, field, value, true)?;
        match group.schedule() {
            None => v.add(
                field,
                "the group has no schedule; add a one-off meeting instead",
            ),
            Some(_) if date < self.today() => v.add(field, "must not be in the past"),
            Some(s) if !s.meets_on(self.tz, date) => {
                v.add(field, "is not a meeting day of the schedule")
            }
            Some(_) => return Some(date),
        }
        None
    }

    fn check_venue(
        &self,
        v: &mut Violations,
        group: &Model,
        field: &str,
        index: Option<i32>,
    ) -> Option<u32> {
        let index = index?;
        if index < 0 || index as usize >= group.venues().len() {
            v.add(field, "is not one of the group's venues");
            return None;
        }
        Some(index as u32)
    }

    /// Milliseconds of a local date and time that `check_exists_on` accepted.
    fn local_ms(&self, date: NaiveDate, time: NaiveTime) -> i64 {
        self.tz
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .expect("a time that exists, checked with the request")
            .timestamp_millis()
    }

    /// Stores a cancelled, moved or one-off meeting; answers with the group and
    /// its meetings.
    async fn commit_meeting_change(
        &self,
        caller: &Caller,
        group: &Model,
        exception: &Exception,
        event: MeetingEvent,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let today = self.today().format("%Y-%m-%d").to_string();
        let updated = self
            .workflow
            .change_meeting(group, exception, event, &today, trace)
            .await?;
        self.with_meetings(&updated, Some(caller)).await
    }

    pub(super) async fn set_schedule(
        &self,
        caller: &Caller,
        req: pb::SetScheduleRequest,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let schedule = match &req.schedule {
            Some(s) => Some(schedule::validate(&draft_from_wire(s), self.today())?),
            None => None,
        };
        let group = self.managed_group(caller, &req.group_id).await?;
        let event = schedule_changed(schedule.as_ref(), &self.tz);
        let updated = self
            .workflow
            .set_schedule(&group, schedule.as_ref(), event, trace)
            .await?;
        self.with_meetings(&updated, Some(caller)).await
    }

    pub(super) async fn cancel_occurrence(
        &self,
        caller: &Caller,
        req: pb::CancelOccurrenceRequest,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let group = self.managed_group(caller, &req.group_id).await?;
        let mut v = Violations::new();
        let date = self.regular_date(&mut v, &group, "date", &req.date);
        v.text("note", &req.note, false, MAX_NOTE);
        v.into_result()?;
        let date = date.expect("checked");
        self.ensure_unchanged(&group, date).await?;
        let note = req.note.trim().to_string();
        let exception = Exception::Cancelled {
            date,
            note: note.clone(),
        };
        let event = MeetingEvent::Cancelled {
            date: date.format("%Y-%m-%d").to_string(),
            note,
        };
        self.commit_meeting_change(caller, &group, &exception, event, trace)
            .await
    }

    pub(super) async fn move_occurrence(
        &self,
        caller: &Caller,
        req: pb::MoveOccurrenceRequest,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let group = self.managed_group(caller, &req.group_id).await?;
        let mut v = Violations::new();
        let date = self.regular_date(&mut v, &group, "date", &req.date);
        let new_date = self.future_date(&mut v, "new_date", &req.new_date);
        let times = check_times(&mut v, "new_", &req.new_start_time, &req.new_end_time);
        self.check_exists_on(&mut v, "new_", new_date, times);
        let venue_index = self.check_venue(&mut v, &group, "venue_index", req.venue_index);
        v.text("note", &req.note, false, MAX_NOTE);
        v.into_result()?;
        let (date, new_date, (start, end)) = (
            date.expect("checked"),
            new_date.expect("checked"),
            times.expect("checked"),
        );
        self.ensure_unchanged(&group, date).await?;
        let note = req.note.trim().to_string();
        let exception = Exception::Moved {
            date,
            new_date,
            start,
            end,
            venue_index,
            note: note.clone(),
        };
        let event = MeetingEvent::Moved {
            original_date: date.format("%Y-%m-%d").to_string(),
            starts_at_ms: self.local_ms(new_date, start),
            ends_at_ms: self.local_ms(new_date, end),
            note,
        };
        self.commit_meeting_change(caller, &group, &exception, event, trace)
            .await
    }

    pub(super) async fn add_one_off(
        &self,
        caller: &Caller,
        req: pb::AddOneOffMeetingRequest,
        trace: &TraceParent,
    ) -> Result<pb::Group, ServiceError> {
        let group = self.managed_group(caller, &req.group_id).await?;
        let mut v = Violations::new();
        let date = self.future_date(&mut v, "date", &req.date);
        let times = check_times(&mut v, "", &req.start_time, &req.end_time);
        self.check_exists_on(&mut v, "", date, times);
        let venue_index = self.check_venue(&mut v, &group, "venue_index", req.venue_index);
        v.text("note", &req.note, false, MAX_NOTE);
        v.into_result()?;
        let (date, (start, end)) = (date.expect("checked"), times.expect("checked"));
        let note = req.note.trim().to_string();
        let exception = Exception::OneOff {
            date,
            start,
            end,
            venue_index,
            note: note.clone(),
        };
        let event = MeetingEvent::Added {
            starts_at_ms: self.local_ms(date, start),
            ends_at_ms: self.local_ms(date, end),
            note,
        };
        self.commit_meeting_change(caller, &group, &exception, event, trace)
            .await
    }

    /// A meeting already cancelled or moved can't be changed again this way.
    async fn ensure_unchanged(&self, group: &Model, date: NaiveDate) -> Result<(), ServiceError> {
        let rows = exception_store::list(&self.db, &group.id).await?;
        let taken = rows.iter().filter_map(exception_store::Model::exception).any(|e| {
            matches!(e, Exception::Cancelled { date: d, .. } | Exception::Moved { date: d, .. } if d == date)
        });
        if taken {
            return Err(ServiceError::FailedPrecondition(format!(
                "the meeting on {date} is already cancelled or moved"
            )));
        }
        Ok(())
    }

    pub(super) async fn export_calendar(
        &self,
        group: &Model,
    ) -> Result<pb::ExportGroupCalendarResponse, ServiceError> {
        let rows = exception_store::list(&self.db, &group.id).await?;
        let exceptions: Vec<Exception> = rows
            .iter()
            .filter_map(exception_store::Model::exception)
            .collect();
        let venues: Vec<String> = group
            .venues()
            .iter()
            .map(|v| {
                venue_line(&pb::Venue {
                    name: v.name.clone(),
                    address: v.address.clone(),
                    town: v.town.clone(),
                    postcode: v.postcode.clone(),
                    ..Default::default()
                })
            })
            .collect();
        let cal = CalendarGroup {
            id: &group.id,
            name: &group.name,
            summary: &group.summary,
            venues: &venues,
        };
        Ok(pb::ExportGroupCalendarResponse {
            content_type: "text/calendar; charset=utf-8".into(),
            ics: calendar::export(
                &cal,
                group.schedule().as_ref(),
                &exceptions,
                self.tz,
                self.clock.now(),
            ),
        })
    }
}

/// The most groups one calendar of chosen groups may name.
const MAX_CALENDAR_GROUPS: usize = 500;

impl ListingsApi {
    /// The published groups' meetings (those of `topic` and below, when given)
    /// from the cards kept with the search index, as one calendar.
    pub(super) async fn export_directory_calendar(
        &self,
        req: pb::ExportDirectoryCalendarRequest,
    ) -> Result<pb::ExportGroupCalendarResponse, ServiceError> {
        let topic = req.topic.trim().to_ascii_lowercase();
        let only: std::collections::HashSet<&str> = {
            let mut v = Violations::new();
            if req.group_ids.len() > MAX_CALENDAR_GROUPS {
                v.add("group_ids", format!("at most {MAX_CALENDAR_GROUPS} groups"));
            }
            for (i, id) in req.group_ids.iter().enumerate() {
                if uuid::Uuid::parse_str(id).is_err() {
                    v.add(format!("group_ids[{i}]"), "must be a group id (a UUID)");
                }
            }
            v.into_result()?;
            req.group_ids.iter().map(String::as_str).collect()
        };
        let (name, codes) = if !only.is_empty() && topic.is_empty() {
            (
                format!("My self-help groups in {}", self.region),
                Vec::new(),
            )
        } else if topic.is_empty() {
            (format!("Self-help groups in {}", self.region), Vec::new())
        } else {
            let rows = topic_store::list(&self.read, &self.region).await?;
            let Some(name) = rows
                .iter()
                .find(|t| t.code == topic)
                .map(|t| t.name.clone())
            else {
                let mut v = Violations::new();
                v.add("topic", "is not a topic of this region (see ListTopics)");
                return Err(v.into_result().expect_err("a violation").into());
            };
            let taxonomy: Vec<_> = rows.iter().map(topic_store::Model::node).collect();
            (
                format!("{name}: self-help groups in {}", self.region),
                crate::domain::topic::search_codes(&taxonomy, &topic),
            )
        };
        // Only pointers are copied under the lock: a card refresh (and every
        // read behind it) does not wait for the decoding below.
        let with_meetings: Vec<Arc<Card>> = self
            .search
            .cards
            .read()
            .expect("cards lock")
            .iter()
            .filter(|(id, _)| only.is_empty() || only.contains(id.as_str()))
            .map(|(_, card)| card)
            .filter(|c| c.schedule.is_some() || !c.exceptions.is_empty())
            .cloned()
            .collect();
        // Each card decoded in turn, keeping only what the calendar shows.
        let mut chosen: Vec<(Arc<Card>, CalendarCard)> = with_meetings
            .into_iter()
            .filter_map(|card| {
                let pb::Group {
                    id,
                    name,
                    summary,
                    topics,
                    venues,
                    ..
                } = card.public_view();
                (codes.is_empty() || topics.iter().any(|t| codes.contains(t))).then(|| {
                    let venues = venues.iter().map(venue_line).collect();
                    (
                        card,
                        CalendarCard {
                            id,
                            name,
                            summary,
                            venues,
                        },
                    )
                })
            })
            .collect();
        // The same file for the same directory: groups in a fixed order.
        chosen.sort_by(|(_, a), (_, b)| a.id.cmp(&b.id));
        let meetings: Vec<GroupMeetings<'_>> = chosen
            .iter()
            .map(|(c, g)| GroupMeetings {
                group: CalendarGroup {
                    id: &g.id,
                    name: &g.name,
                    summary: &g.summary,
                    venues: &g.venues,
                },
                schedule: c.schedule.as_ref(),
                exceptions: &c.exceptions,
            })
            .collect();
        Ok(pb::ExportGroupCalendarResponse {
            content_type: "text/calendar; charset=utf-8".into(),
            ics: calendar::export_many(&name, &meetings, self.tz, self.clock.now()),
        })
    }
}

/// What a directory calendar shows of a group besides its meetings.
struct CalendarCard {
    id: String,
    name: String,
    summary: String,
    venues: Vec<String>,
}

/// A venue as one line of a calendar's LOCATION.
fn venue_line(v: &pb::Venue) -> String {
    [
        v.name.as_str(),
        v.address.as_str(),
        v.town.as_str(),
        v.postcode.as_str(),
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join(", ")
}

pub(super) fn weekday_from_wire(v: i32) -> Option<Weekday> {
    match pb::Weekday::try_from(v).ok()? {
        pb::Weekday::Monday => Some(Weekday::Mon),
        pb::Weekday::Tuesday => Some(Weekday::Tue),
        pb::Weekday::Wednesday => Some(Weekday::Wed),
        pb::Weekday::Thursday => Some(Weekday::Thu),
        pb::Weekday::Friday => Some(Weekday::Fri),
        pb::Weekday::Saturday => Some(Weekday::Sat),
        pb::Weekday::Sunday => Some(Weekday::Sun),
        pb::Weekday::Unspecified => None,
    }
}

fn weekday_to_wire(d: Weekday) -> pb::Weekday {
    match d {
        Weekday::Mon => pb::Weekday::Monday,
        Weekday::Tue => pb::Weekday::Tuesday,
        Weekday::Wed => pb::Weekday::Wednesday,
        Weekday::Thu => pb::Weekday::Thursday,
        Weekday::Fri => pb::Weekday::Friday,
        Weekday::Sat => pb::Weekday::Saturday,
        Weekday::Sun => pb::Weekday::Sunday,
    }
}

/// The `schedule.changed` event for a group's new regular meetings (`None`:
/// it has none any more).
pub(super) fn schedule_changed(schedule: Option<&Schedule>, tz: &chrono_tz::Tz) -> MeetingEvent {
    let wire = schedule
        .map(|s| schedule_to_wire(s, tz))
        .unwrap_or_default();
    MeetingEvent::ScheduleChanged {
        rrule: wire.rrule,
        description: wire.description,
        timezone: tz.name().to_string(),
        valid_from: wire.valid_from,
        valid_until: wire.valid_until,
        start_time: wire.start_time,
        end_time: wire.end_time,
    }
}

pub(super) fn draft_from_wire(s: &pb::Schedule) -> ScheduleDraft {
    ScheduleDraft {
        weekly: match pb::Frequency::try_from(s.frequency).ok() {
            Some(pb::Frequency::Weekly) => Some(true),
            Some(pb::Frequency::Monthly) => Some(false),
            _ => None,
        },
        interval: s.interval,
        weekday: weekday_from_wire(s.weekday),
        week_of_month: s.week_of_month,
        day_of_month: s.day_of_month,
        valid_from: s.valid_from.clone(),
        valid_until: s.valid_until.clone(),
        start_time: s.start_time.clone(),
        end_time: s.end_time.clone(),
    }
}

pub(super) fn schedule_to_wire(s: &Schedule, tz: &chrono_tz::Tz) -> pb::Schedule {
    let (frequency, interval, weekday, week_of_month, day_of_month) = match &s.pattern {
        Pattern::Weekly { interval, weekday } => {
            (pb::Frequency::Weekly, *interval, Some(*weekday), 0, 0)
        }
        Pattern::MonthlyByWeekday {
            interval,
            nth,
            weekday,
        } => (
            pb::Frequency::Monthly,
            *interval,
            Some(*weekday),
            *nth as i32,
            0,
        ),
        Pattern::MonthlyByDate { interval, day } => {
            (pb::Frequency::Monthly, *interval, None, 0, *day as i32)
        }
    };
    pb::Schedule {
        frequency: frequency.into(),
        interval: interval as i32,
        weekday: weekday
            .map(weekday_to_wire)
            .unwrap_or(pb::Weekday::Unspecified)
            .into(),
        week_of_month,
        day_of_month,
        valid_from: s.valid_from.format("%Y-%m-%d").to_string(),
        valid_until: s
            .valid_until
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        start_time: s.start.format("%H:%M").to_string(),
        end_time: s.end.format("%H:%M").to_string(),
        timezone: tz.name().to_string(),
        description: s.describe(),
        rrule: s.rrule_text(tz),
    }
}

fn occurrence_to_wire(o: &Occurrence) -> pb::Occurrence {
    pb::Occurrence {
        starts_at: Some(to_timestamp(o.starts_at.timestamp_millis())),
        ends_at: Some(to_timestamp(o.ends_at.timestamp_millis())),
        local_date: o.starts_at.format("%Y-%m-%d").to_string(),
        local_start_time: o.starts_at.format("%H:%M").to_string(),
        local_end_time: o.ends_at.format("%H:%M").to_string(),
        kind: match o.kind {
            OccurrenceKind::Regular => pb::OccurrenceKind::Regular,
            OccurrenceKind::Moved => pb::OccurrenceKind::Moved,
            OccurrenceKind::OneOff => pb::OccurrenceKind::OneOff,
        }
        .into(),
        original_date: o
            .original_date
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        venue_index: o.venue_index.map(|i| i as i32),
        note: o.note.clone(),
    }
}

pub(super) fn exception_to_wire(e: &exception_store::Model) -> pb::ScheduleException {
    pb::ScheduleException {
        id: e.id.clone(),
        kind: match e.kind.as_str() {
            "CANCELLED" => pb::ExceptionKind::Cancelled,
            "MOVED" => pb::ExceptionKind::Moved,
            "ONE_OFF" => pb::ExceptionKind::OneOff,
            _ => pb::ExceptionKind::Unspecified,
        }
        .into(),
        date: e.date.clone(),
        new_date: e.new_date.clone().unwrap_or_default(),
        start_time: e.start_time.clone().unwrap_or_default(),
        end_time: e.end_time.clone().unwrap_or_default(),
        venue_index: e.venue_index,
        note: e.note.clone(),
    }
}
