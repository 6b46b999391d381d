//! A member's own part in the work of a group (issue 34): the turns they took
//! this year, what they are willing to do and what they could offer, and
//! whether they are counted in the group's figures at all. Nobody else's
//! record is on this page.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::membership::v1 as mpb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;

#[derive(Serialize)]
struct MySharingPage {
    csrf: String,
    group_id: String,
    group_name: String,
    saved: bool,
    errors: Vec<FieldError>,
    /// "chair 3 times", this year.
    this_year: Vec<String>,
    /// The group's duties, ticked when willing.
    duties: Vec<Duty>,
    /// Willing to do, beyond the group's rotas, as typed.
    other: String,
    skills: String,
    counted: bool,
}

#[derive(Serialize)]
struct Duty {
    name: String,
    willing: bool,
}

#[derive(Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<String>,
}

/// What the person asked to keep, as typed (their answer refused).
struct Typed {
    willing: Vec<String>,
    other: String,
    skills: String,
    counted: bool,
}

async fn view(
    state: &AppState,
    signed: &Signed,
    group_id: &str,
    typed: Option<Typed>,
    errors: Vec<FieldError>,
    saved: bool,
) -> Result<MySharingPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let mine = my_sharing(&mut call, group_id).await?;
    let request = call.ask(mpb::GetRotaRequest {
        group_id: group_id.to_string(),
        duty: String::new(),
        meetings: 1,
    });
    let rota_duties: Vec<String> = call
        .membership
        .get_rota(request)
        .await?
        .into_inner()
        .rotas
        .into_iter()
        .map(|r| r.duty)
        .collect();
    let group_name = match state.listings.group(group_id).await {
        Ok(g) => g.name.clone(),
        Err(GatewayError::NotFound) => String::new(),
        Err(e) => return Err(e),
    };
    let (willing, other, skills, counted) = match typed {
        Some(t) => (t.willing, t.other, t.skills, t.counted),
        None => {
            let other = mine
                .willing
                .iter()
                .filter(|w| !rota_duties.contains(w))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            (
                mine.willing.clone(),
                other,
                mine.skills.clone(),
                mine.counted,
            )
        }
    };
    Ok(MySharingPage {
        csrf: signed.csrf_token.clone(),
        group_id: group_id.to_string(),
        group_name,
        saved,
        errors,
        this_year: mine
            .this_year
            .iter()
            .map(|d| match d.turns {
                1 => format!("{} once", d.duty),
                2 => format!("{} twice", d.duty),
                n => format!("{} {n} times", d.duty),
            })
            .collect(),
        duties: rota_duties
            .iter()
            .map(|d| Duty {
                name: d.clone(),
                willing: willing.contains(d),
            })
            .collect(),
        other,
        skills,
        counted,
    })
}

async fn my_sharing(call: &mut AsPerson, group_id: &str) -> Result<mpb::MySharing, GatewayError> {
    let request = call.ask(mpb::GetMySharingRequest {
        group_id: group_id.to_string(),
    });
    Ok(call.membership.get_my_sharing(request).await?.into_inner())
}

fn page(state: &AppState, status: StatusCode, view: &MySharingPage) -> Response {
    own_page(
        state,
        status,
        "my_sharing.html",
        "Your part in the group",
        view,
    )
}

pub(crate) async fn my_part(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    Query(query): Query<SavedQuery>,
    SignedPage(signed): SignedPage,
) -> Response {
    match view(
        &state,
        &signed,
        &group_id,
        None,
        Vec::new(),
        query.saved.is_some(),
    )
    .await
    {
        Ok(v) => page(&state, StatusCode::OK, &v),
        Err(e) => error_page(&state, &e),
    }
}

/// Saves what the person is willing to do and whether they are counted.
pub(crate) async fn save_my_part(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(group_id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let back = format!("/my/groups/{group_id}/sharing");
    let signed = match forms::signed_form(&state, &headers, signed, &value("csrf"), &back) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let other = value("other");
    let mut willing: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "willing")
        .map(|(_, v)| v.clone())
        .collect();
    willing.extend(
        other
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string),
    );
    let typed = Typed {
        willing: willing.iter().map(|w| w.trim().to_lowercase()).collect(),
        other: other.clone(),
        skills: value("skills"),
        counted: !value("counted").is_empty(),
    };
    let saved = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(mpb::SetMySharingRequest {
            group_id: group_id.clone(),
            willing,
            skills: typed.skills.clone(),
            counted: typed.counted,
        });
        Ok::<_, GatewayError>(call.membership.set_my_sharing(request).await)
    }
    .await;
    match saved {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to(&format!("{back}?saved=1")).into_response(),
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| {
                Some(if field == "skills" { "skills" } else { "other" })
            });
            match view(&state, &signed, &group_id, Some(typed), errors, false).await {
                Ok(v) => page(&state, StatusCode::BAD_REQUEST, &v),
                Err(e) => error_page(&state, &e),
            }
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}
