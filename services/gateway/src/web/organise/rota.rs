//! Rotas on the desk: each duty's volunteers in order and who is on duty at
//! the next meetings (membership's `GetRota`), and a form that sets a duty's
//! rota from the members, numbered in the order they take turns
//! (`SetRota`; nobody numbered ends it). The form names members by their
//! membership, never by person id; the gateway finds the person ids.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use selfhelp_proto::membership::v1 as mpb;
use serde::Serialize;

use super::people::memberships_in;
use super::{Shown, after_step, desk_answer, organiser_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;
use crate::web::format::rfc3339;
use crate::web::forms::FieldError;

/// One duty's rota on the desk.
#[derive(Serialize)]
pub(crate) struct RotaView {
    duty: String,
    volunteers: String,
    /// "Wed 9 Dec: Ann", the next meetings.
    turns: Vec<String>,
    /// "Ann asked Bea to swap Wed 9 Dec for Wed 16 Dec", waiting for an answer.
    swap_asks: Vec<String>,
}

/// The group's rotas over the next six meetings.
pub(super) async fn rotas_of(
    state: &AppState,
    call: &mut AsPerson,
    id: &str,
) -> Result<Vec<RotaView>, GatewayError> {
    let request = call.ask(mpb::GetRotaRequest {
        group_id: id.to_string(),
        duty: String::new(),
        meetings: 6,
    });
    let rotas = call.membership.get_rota(request).await?.into_inner().rotas;
    let day = |at: Option<&prost_types::Timestamp>| {
        at.and_then(|s| chrono::DateTime::from_timestamp(s.seconds, 0))
            .map(|d| d.with_timezone(&state.tz).format("%a %-d %b").to_string())
            .unwrap_or_else(|| at.map(rfc3339).unwrap_or_default())
    };
    Ok(rotas
        .into_iter()
        .map(|r| RotaView {
            duty: r.duty,
            volunteers: r.volunteers.join(", "),
            swap_asks: r
                .swap_asks
                .iter()
                .map(|a| {
                    format!(
                        "{} asked {} to swap {} for {}",
                        a.asked_by,
                        a.asked_of,
                        day(a.starts_at.as_ref()),
                        day(a.other_starts_at.as_ref())
                    )
                })
                .collect(),
            turns: r
                .turns
                .iter()
                .map(|t| {
                    let day = day(t.starts_at.as_ref());
                    let who = if t.display_name.is_empty() {
                        "nobody (everyone skipped)"
                    } else {
                        t.display_name.as_str()
                    };
                    format!("{day}: {who}")
                })
                .collect(),
        })
        .collect())
}

/// The volunteers a rota form numbered, in turn order: `(membership id,
/// position)` pairs from fields `order-<membership id>`; or each number that
/// is not one, named on its field.
fn numbered(form: &HashMap<String, String>) -> Result<Vec<String>, Vec<FieldError>> {
    let mut chosen = Vec::new();
    let mut errors = Vec::new();
    for (field, typed) in form {
        let Some(membership) = field.strip_prefix("order-") else {
            continue;
        };
        let typed = typed.trim();
        if typed.is_empty() {
            continue;
        }
        match typed.parse::<u32>() {
            Ok(n) if (1..=50).contains(&n) => chosen.push((n, membership.to_string())),
            _ => errors.push(FieldError::new(
                field,
                "Enter a whole number from 1 to 50, or nothing",
            )),
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(errors);
    }
    // Ties keep a stable order (by membership) rather than a random one.
    chosen.sort();
    Ok(chosen.into_iter().map(|(_, m)| m).collect())
}

/// Sets (or, with nobody numbered, ends) a duty's rota.
pub(crate) async fn set_rota(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let csrf = form.get("csrf").cloned().unwrap_or_default();
    let (signed, mut call) = match organiser_form(&state, &headers, signed, &csrf, &id).await {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let duty = form
        .get("duty")
        .map(|d| d.trim().to_string())
        .unwrap_or_default();
    let mut errors = Vec::new();
    if duty.is_empty() {
        errors.push(FieldError::new(
            "duty",
            "Name the duty, such as chair or tea",
        ));
    }
    let order = match numbered(&form) {
        Ok(order) => order,
        Err(mut wrong) => {
            errors.append(&mut wrong);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        let shown = Shown {
            errors,
            ..Shown::default()
        };
        return desk_answer(&state, &signed, &id, StatusCode::BAD_REQUEST, shown).await;
    }
    let done = async {
        let active = memberships_in(&mut call, &id, &[mpb::MembershipState::Active]).await?;
        let mut volunteers = Vec::with_capacity(order.len());
        for membership in &order {
            // Only this group's active members can be on its rota.
            let Some(m) = active.iter().find(|m| &m.id == membership) else {
                return Err(GatewayError::NotFound);
            };
            volunteers.push(m.person_id.clone());
        }
        let request = call.ask(mpb::SetRotaRequest {
            group_id: id.clone(),
            duty,
            volunteer_person_ids: volunteers,
        });
        Ok(call.membership.set_rota(request).await.map(|_| ()))
    }
    .await;
    after_step(&state, &signed, &id, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volunteers_come_in_the_order_numbered_and_bad_numbers_are_named() {
        let form: HashMap<String, String> = [
            ("csrf", "t"),
            ("duty", "chair"),
            ("order-b", "2"),
            ("order-a", "1"),
            ("order-c", ""),
            ("order-d", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(numbered(&form).unwrap(), ["a", "b", "d"]);
        let mut bad = form.clone();
        bad.insert("order-c".into(), "first".into());
        bad.insert("order-e".into(), "0".into());
        let fields: Vec<String> = numbered(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["order-c", "order-e"]);
    }
}
