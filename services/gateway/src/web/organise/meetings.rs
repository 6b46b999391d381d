//! When a group meets, on its desk: the rule (previewed in words with the
//! next meetings, checked by the same rules as listings, before it is saved)
//! and single meetings cancelled, moved or added with a note.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use selfhelp_proto::listings::v1 as pb;
use serde::{Deserialize, Serialize};

use super::{Shown, correctable, desk_answer, organiser_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;
use crate::web::format::{long_date, time_range};
use crate::web::forms::{self, FieldError};
use crate::web::pages::error_page;

/// Meetings ahead shown in a preview.
const MEETINGS_AHEAD: usize = 6;

#[derive(Serialize)]
pub(super) struct MeetingView {
    date: String,
    label: String,
    /// A regular meeting (these can be cancelled or moved from here).
    regular: bool,
}

impl MeetingView {
    pub(super) fn of(o: &pb::Occurrence) -> MeetingView {
        MeetingView {
            label: meeting_label(o),
            regular: o.kind() == pb::OccurrenceKind::Regular,
            date: o.local_date.clone(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Preview {
    description: String,
    meetings: Vec<String>,
}

/// The schedule as the form holds it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    /// "preview" or "save".
    #[serde(default)]
    action: String,
    /// "weekly", "monthly_weekday" or "monthly_date".
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    interval: String,
    /// "monday" … "sunday".
    #[serde(default)]
    weekday: String,
    /// "1".."4" or "-1" (last).
    #[serde(default)]
    week_of_month: String,
    #[serde(default)]
    day_of_month: String,
    #[serde(default)]
    start_time: String,
    #[serde(default)]
    end_time: String,
    #[serde(default)]
    valid_from: String,
}

const WEEKDAYS: [(&str, pb::Weekday, chrono::Weekday); 7] = [
    ("monday", pb::Weekday::Monday, chrono::Weekday::Mon),
    ("tuesday", pb::Weekday::Tuesday, chrono::Weekday::Tue),
    ("wednesday", pb::Weekday::Wednesday, chrono::Weekday::Wed),
    ("thursday", pb::Weekday::Thursday, chrono::Weekday::Thu),
    ("friday", pb::Weekday::Friday, chrono::Weekday::Fri),
    ("saturday", pb::Weekday::Saturday, chrono::Weekday::Sat),
    ("sunday", pb::Weekday::Sunday, chrono::Weekday::Sun),
];

impl ScheduleForm {
    pub(super) fn from_schedule(s: Option<&pb::Schedule>, today: NaiveDate) -> ScheduleForm {
        let Some(s) = s else {
            return ScheduleForm {
                pattern: "weekly".into(),
                interval: "1".into(),
                weekday: "monday".into(),
                week_of_month: "1".into(),
                valid_from: today.to_string(),
                ..ScheduleForm::default()
            };
        };
        let pattern = match (s.frequency(), s.day_of_month) {
            (pb::Frequency::Weekly, _) => "weekly",
            (_, 0) => "monthly_weekday",
            _ => "monthly_date",
        };
        ScheduleForm {
            pattern: pattern.into(),
            interval: s.interval.max(1).to_string(),
            weekday: WEEKDAYS
                .iter()
                .find(|(_, w, _)| *w == s.weekday())
                .map_or("monday", |(name, _, _)| name)
                .into(),
            // A weekly rule has neither: the form offers the usual choices.
            week_of_month: match s.week_of_month {
                0 => "1".into(),
                n => n.to_string(),
            },
            day_of_month: match s.day_of_month {
                0 => String::new(),
                n => n.to_string(),
            },
            start_time: s.start_time.clone(),
            end_time: s.end_time.clone(),
            valid_from: s.valid_from.clone(),
            ..ScheduleForm::default()
        }
    }

    fn weekday(&self) -> Option<&(&'static str, pb::Weekday, chrono::Weekday)> {
        WEEKDAYS.iter().find(|(name, _, _)| *name == self.weekday)
    }

    fn whole(value: &str) -> i32 {
        value.trim().parse().unwrap_or(-100)
    }

    /// The schedule as listings takes it.
    fn to_wire(&self) -> pb::Schedule {
        let weekly = self.pattern == "weekly";
        let by_date = self.pattern == "monthly_date";
        pb::Schedule {
            frequency: if weekly {
                pb::Frequency::Weekly
            } else {
                pb::Frequency::Monthly
            } as i32,
            interval: Self::whole(&self.interval),
            weekday: if by_date {
                0
            } else {
                self.weekday().map_or(0, |(_, w, _)| *w as i32)
            },
            week_of_month: if weekly || by_date {
                0
            } else {
                Self::whole(&self.week_of_month)
            },
            day_of_month: if by_date {
                Self::whole(&self.day_of_month)
            } else {
                0
            },
            valid_from: self.valid_from.trim().to_string(),
            valid_until: String::new(),
            start_time: self.start_time.trim().to_string(),
            end_time: self.end_time.trim().to_string(),
            ..pb::Schedule::default()
        }
    }

    /// The same rule checked as listings checks it, for the preview.
    fn draft(&self) -> selfhelp_schedule::ScheduleDraft {
        let wire = self.to_wire();
        selfhelp_schedule::ScheduleDraft {
            weekly: Some(self.pattern == "weekly"),
            interval: wire.interval,
            weekday: if wire.weekday == 0 {
                None
            } else {
                self.weekday().map(|(_, _, w)| *w)
            },
            week_of_month: wire.week_of_month,
            day_of_month: wire.day_of_month,
            valid_from: wire.valid_from,
            valid_until: String::new(),
            start_time: wire.start_time,
            end_time: wire.end_time,
        }
    }
}

/// How a meeting reads on the desk.
fn meeting_label(o: &pb::Occurrence) -> String {
    let mut label = long_date(&o.local_date);
    if let Some(times) = time_range(&o.local_start_time, &o.local_end_time) {
        label = format!("{label}, {times}");
    }
    if !o.note.is_empty() {
        label = format!("{label} ({})", o.note);
    }
    label
}

/// The move and add forms' names for the fields listings named (their ids
/// differ from each other's on the one page).
fn meeting_field(what: &str, field: &str) -> Option<&'static str> {
    Some(match (what, field) {
        ("move", "date") => "move_date",
        ("move", "new_date") => "move_new_date",
        ("move", "new_start_time") => "move_start_time",
        ("move", "new_end_time") => "move_end_time",
        ("move", "note") => "move_note",
        ("add", "date") => "add_date",
        ("add", "start_time") => "add_start_time",
        ("add", "end_time") => "add_end_time",
        ("add", "note") => "add_note",
        _ => return None,
    })
}

fn meeting_label_of(field: &str) -> &'static str {
    match field {
        "move_date" => "The meeting to move:",
        "move_new_date" | "add_date" => "The date",
        "move_start_time" | "add_start_time" => "The start time",
        "move_end_time" | "add_end_time" => "The end time",
        "move_note" | "add_note" => "The note",
        _ => "",
    }
}

/// The form's name for a schedule field listings or the preview named.
fn schedule_field(field: &str) -> Option<&'static str> {
    Some(match field.trim_start_matches("schedule.") {
        "interval" => "interval",
        "weekday" => "weekday",
        "week_of_month" => "week_of_month",
        "day_of_month" => "day_of_month",
        "start_time" => "start_time",
        "end_time" => "end_time",
        "valid_from" => "valid_from",
        _ => return None,
    })
}

/// The schedule: previewed (the rule in words and the next meetings, nothing
/// saved) or saved.
pub(crate) async fn schedule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<ScheduleForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    if form.action == "preview" {
        let now = Utc::now();
        let today = now.with_timezone(&state.tz).date_naive();
        let shown = match selfhelp_schedule::validate(&form.draft(), today) {
            Ok(rule) => Shown {
                preview: Some(Preview {
                    description: rule.describe(),
                    meetings: selfhelp_schedule::next_occurrences(
                        Some(&rule),
                        &[],
                        state.tz,
                        now,
                        MEETINGS_AHEAD,
                    )
                    .iter()
                    .map(|o| o.starts_at.format("%A %-d %B %Y, %-I:%M%P").to_string())
                    .collect(),
                }),
                schedule: Some(form),
                ..Shown::default()
            },
            Err(violations) => Shown {
                errors: violations
                    .iter()
                    .map(|(field, message)| {
                        FieldError::new(schedule_field(field).unwrap_or("form"), message)
                    })
                    .collect(),
                schedule: Some(form),
                ..Shown::default()
            },
        };
        let status = if shown.errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return desk_answer(&state, &signed, &id, status, shown).await;
    }
    let saved = async {
        let request = call.ask(pb::SetScheduleRequest {
            group_id: id.clone(),
            schedule: Some(form.to_wire()),
        });
        Ok::<_, GatewayError>(call.listings.set_schedule(request).await)
    }
    .await;
    match saved {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to(&format!("/organise/{id}?saved=1")).into_response(),
        Ok(Err(status)) if correctable(&status) => {
            let shown = Shown {
                errors: forms::violations(&status, schedule_field),
                schedule: Some(form),
                ..Shown::default()
            };
            desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

#[derive(Deserialize)]
pub(crate) struct MeetingForm {
    #[serde(default)]
    csrf: String,
    /// The regular meeting's date (cancel, move); the one-off's (add).
    #[serde(default)]
    date: String,
    /// Move: the date it moves to.
    #[serde(default)]
    new_date: String,
    #[serde(default)]
    start_time: String,
    #[serde(default)]
    end_time: String,
    #[serde(default)]
    note: String,
}

/// One meeting changed, with a note for members and followers (who are told,
/// as for every change to a meeting): a regular one cancelled ("cancel") or
/// moved ("move"), or a one-off added ("add").
pub(crate) async fn change_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<MeetingForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let (date, note) = (form.date.trim().to_string(), form.note.trim().to_string());
    let done = async {
        let answer = match what.as_str() {
            "cancel" => {
                let request = call.ask(pb::CancelOccurrenceRequest {
                    group_id: id.clone(),
                    date,
                    note,
                });
                call.listings.cancel_occurrence(request).await
            }
            "move" => {
                let request = call.ask(pb::MoveOccurrenceRequest {
                    group_id: id.clone(),
                    date,
                    new_date: form.new_date.trim().to_string(),
                    new_start_time: form.start_time.trim().to_string(),
                    new_end_time: form.end_time.trim().to_string(),
                    venue_index: None,
                    note,
                });
                call.listings.move_occurrence(request).await
            }
            "add" => {
                let request = call.ask(pb::AddOneOffMeetingRequest {
                    group_id: id.clone(),
                    date,
                    start_time: form.start_time.trim().to_string(),
                    end_time: form.end_time.trim().to_string(),
                    venue_index: None,
                    note,
                });
                call.listings.add_one_off_meeting(request).await
            }
            _ => return Err(GatewayError::NotFound),
        };
        Ok::<_, GatewayError>(answer.map(|_| ()))
    }
    .await;
    match done {
        Err(own) => error_page(&state, &own),
        Ok(Ok(())) => Redirect::to(&format!("/organise/{id}?saved=1")).into_response(),
        Ok(Err(status)) if correctable(&status) => {
            let errors = forms::violations(&status, |field| meeting_field(&what, field))
                .into_iter()
                .map(|mut e| {
                    let label = meeting_label_of(&e.field);
                    if !label.is_empty() {
                        e.message = format!("{label} {}", e.message);
                    }
                    e
                })
                .collect();
            let shown = Shown {
                errors,
                ..Shown::default()
            };
            desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_form_says_what_listings_is_asked_for() {
        let form = ScheduleForm {
            pattern: "monthly_weekday".into(),
            interval: "1".into(),
            weekday: "wednesday".into(),
            week_of_month: "-1".into(),
            day_of_month: "9".into(),
            start_time: "19:00".into(),
            end_time: "21:00".into(),
            valid_from: "2026-12-01".into(),
            ..ScheduleForm::default()
        };
        let wire = form.to_wire();
        assert_eq!(wire.frequency(), pb::Frequency::Monthly);
        assert_eq!(wire.weekday(), pb::Weekday::Wednesday);
        assert_eq!((wire.week_of_month, wire.day_of_month), (-1, 0));
        let rule = selfhelp_schedule::validate(
            &form.draft(),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        )
        .unwrap();
        assert_eq!(
            ScheduleForm::from_schedule(
                Some(&pb::Schedule {
                    description: rule.describe(),
                    ..wire
                }),
                NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
            )
            .pattern,
            "monthly_weekday"
        );
        assert!(
            rule.describe().contains("last Wednesday"),
            "{}",
            rule.describe()
        );
    }

    #[test]
    fn a_preview_names_the_field_that_is_wrong() {
        let form = ScheduleForm {
            pattern: "weekly".into(),
            weekday: "someday".into(),
            start_time: "25:00".into(),
            end_time: "21:00".into(),
            valid_from: "2026-12-01".into(),
            ..ScheduleForm::default()
        };
        let wrong = selfhelp_schedule::validate(
            &form.draft(),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        )
        .unwrap_err();
        let named: Vec<Option<&str>> = wrong
            .iter()
            .map(|(field, _)| schedule_field(field))
            .collect();
        assert!(named.contains(&Some("weekday")), "{named:?}");
        assert!(named.contains(&Some("start_time")), "{named:?}");
    }
}
