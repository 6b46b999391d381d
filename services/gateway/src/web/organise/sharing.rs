//! "Is the work shared?" (issue 34), the organisers' page: each member's turns
//! over a period, who was never asked, the share of the turns the busiest
//! fifth took and its trend, the willing members who did least, and the
//! meetings that took place, whose duties an organiser may correct.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::{managed_group, organiser_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;
use crate::web::format::long_date;
use crate::web::forms::{self, FieldError, SignedPage};
use crate::web::pages::{error_page, own_page};

#[derive(Deserialize, Default)]
pub(crate) struct PeriodQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    corrected: Option<String>,
}

#[derive(Serialize)]
struct SharingPage {
    csrf: String,
    id: String,
    name: String,
    errors: Vec<FieldError>,
    corrected: bool,
    /// The period's first and last days as the form shows them.
    from_date: String,
    to_date: String,
    period: String,
    turns: i32,
    /// The figure in words, or empty when no turns were taken.
    figure: String,
    trend: Vec<String>,
    members: Vec<MemberRow>,
    never_asked: Vec<String>,
    willing_least: Vec<String>,
    records: Vec<RecordRow>,
    /// Who may be named as having held a duty: (membership id, name).
    choices: Vec<(String, String)>,
    offers: Vec<OfferView>,
}

/// Who could take a duty's next turns, and the rota that offers them.
#[derive(Serialize)]
struct OfferView {
    duty: String,
    /// "Eve: said they would do chair, and has not done it in this period".
    members: Vec<String>,
    /// `order-<membership id>` fields for the rota form, numbered in turn.
    order: Vec<(String, usize)>,
}

#[derive(Serialize)]
struct MemberRow {
    name: String,
    turns: i32,
    duties: String,
    roles: String,
    willing: String,
}

#[derive(Serialize)]
struct RecordRow {
    when: String,
    meeting_key: String,
    duty: String,
    held_by: String,
    membership_id: String,
    corrected: bool,
    /// Held by nobody or by a member who is counted: the form can say who
    /// really held it. (Someone not counted, or gone, is not offered.)
    correctable: bool,
}

/// A share as a whole percentage ("35 %").
fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// What the figure says, in words.
fn figure_words(s: &mpb::Sharing) -> String {
    if s.turns == 0 {
        return String::new();
    }
    let people = s.members.len();
    let fifth = people.div_ceil(5).max(1);
    let who = if fifth == 1 {
        format!("The busiest person of {people}")
    } else {
        format!("The busiest {fifth} of {people} people")
    };
    format!(
        "{who} took {} of the {} turns. Were every turn shared alike, a fifth of the people would take about 20 %.",
        percent(s.busiest_fifth_share),
        s.turns
    )
}

async fn sharing_view(
    state: &AppState,
    signed: &Signed,
    id: &str,
    query: &PeriodQuery,
) -> Result<SharingPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let group = managed_group(&mut call, id).await?;
    let ask = |from: &str, to: &str| mpb::GetSharingRequest {
        group_id: id.to_string(),
        from_date: from.trim().to_string(),
        to_date: to.trim().to_string(),
    };
    let request = call.ask(ask(&query.from, &query.to));
    let (sharing, errors) = match call.membership.get_sharing(request).await {
        Ok(s) => (s.into_inner(), Vec::new()),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            // The period as typed is named; the year up to today is shown.
            let errors = forms::violations(&status, |field| match field {
                "from_date" => Some("from"),
                "to_date" => Some("to"),
                _ => None,
            });
            let request = call.ask(ask("", ""));
            (
                call.membership.get_sharing(request).await?.into_inner(),
                errors,
            )
        }
        Err(status) => return Err(status.into()),
    };
    let choices = sharing
        .members
        .iter()
        .filter(|m| !m.membership_id.is_empty())
        .map(|m| (m.membership_id.clone(), m.display_name.clone()))
        .collect();
    Ok(SharingPage {
        csrf: signed.csrf_token.clone(),
        id: group.id.clone(),
        name: group.name.clone(),
        corrected: query.corrected.is_some(),
        from_date: if errors.is_empty() {
            sharing.from_date.clone()
        } else {
            query.from.clone()
        },
        to_date: if errors.is_empty() {
            sharing.to_date.clone()
        } else {
            query.to.clone()
        },
        errors,
        period: format!(
            "{} to {}",
            long_date(&sharing.from_date),
            long_date(&sharing.to_date)
        ),
        turns: sharing.turns,
        figure: figure_words(&sharing),
        trend: sharing
            .trend
            .iter()
            .map(|q| {
                format!(
                    "From {}: {} turns, the busiest fifth took {}",
                    long_date(&q.from_date),
                    q.turns,
                    percent(q.busiest_fifth_share)
                )
            })
            .collect(),
        never_asked: sharing
            .members
            .iter()
            .filter(|m| m.never_asked)
            .map(|m| m.display_name.clone())
            .collect(),
        willing_least: sharing.willing_least.clone(),
        members: sharing
            .members
            .iter()
            .map(|m| MemberRow {
                name: m.display_name.clone(),
                turns: m.turns,
                duties: m
                    .duties
                    .iter()
                    .map(|d| format!("{} {}", d.duty, d.turns))
                    .collect::<Vec<_>>()
                    .join(", "),
                roles: m.roles.join(", "),
                willing: m.willing.join(", "),
            })
            .collect(),
        records: sharing
            .records
            .iter()
            .map(|r| RecordRow {
                when: r
                    .starts_at
                    .as_ref()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                    .map(|t| {
                        t.with_timezone(&state.tz)
                            .format("%a %-d %b %Y")
                            .to_string()
                    })
                    .unwrap_or_default(),
                meeting_key: r.meeting_key.clone(),
                duty: r.duty.clone(),
                held_by: if r.held_by.is_empty() {
                    "nobody".into()
                } else {
                    r.held_by.clone()
                },
                membership_id: r.membership_id.clone(),
                corrected: r.corrected,
                correctable: r.held_by.is_empty() || !r.membership_id.is_empty(),
            })
            .collect(),
        choices,
        offers: sharing
            .offers
            .iter()
            .map(|o| OfferView {
                duty: o.duty.clone(),
                members: o
                    .members
                    .iter()
                    .map(|m| format!("{}: {}", m.display_name, m.why))
                    .collect(),
                order: o
                    .proposed_order_membership_ids
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (format!("order-{m}"), i + 1))
                    .collect(),
            })
            .collect(),
    })
}

pub(crate) async fn sharing_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PeriodQuery>,
    SignedPage(signed): SignedPage,
) -> Response {
    match sharing_view(&state, &signed, &id, &query).await {
        Ok(view) => {
            let status = if view.errors.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            own_page(&state, status, "sharing.html", "Is the work shared?", &view)
        }
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct CorrectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    meeting_key: String,
    #[serde(default)]
    duty: String,
    /// Empty: nobody held it.
    #[serde(default)]
    membership_id: String,
}

/// Says who really held a duty at a meeting that took place.
pub(crate) async fn correct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<CorrectForm>,
) -> Response {
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &form.csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let request = call.ask(mpb::CorrectDutyRecordRequest {
        group_id: id.clone(),
        meeting_key: form.meeting_key,
        duty: form.duty,
        membership_id: form.membership_id,
    });
    match call.membership.correct_duty_record(request).await {
        Ok(_) => Redirect::to(&format!("/organise/{id}/sharing?corrected=1")).into_response(),
        Err(status) if forms::correctable(&status) => {
            let query = PeriodQuery::default();
            match sharing_view(&state, &signed, &id, &query).await {
                Ok(mut view) => {
                    view.errors = forms::violations(&status, |_| None::<&str>);
                    own_page(
                        &state,
                        StatusCode::BAD_REQUEST,
                        "sharing.html",
                        "Is the work shared?",
                        &view,
                    )
                }
                Err(e) => error_page(&state, &e),
            }
        }
        Err(status) => error_page(&state, &GatewayError::from(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figure_in_words() {
        let s = mpb::Sharing {
            members: vec![mpb::MemberShare::default(); 6],
            turns: 10,
            busiest_fifth_share: 0.6,
            ..Default::default()
        };
        assert_eq!(
            figure_words(&s),
            "The busiest 2 of 6 people took 60 % of the 10 turns. Were every turn shared alike, a fifth of the people would take about 20 %."
        );
        assert_eq!(figure_words(&mpb::Sharing::default()), "");
    }
}
