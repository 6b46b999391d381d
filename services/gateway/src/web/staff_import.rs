//! Importing groups from a directory file, by the region's staff: ORUK
//! `service` documents (an ORUK `Page` or a JSON array) or a CSV of groups, as
//! `selfhelp import` reads them. "Check" shows what would happen to each
//! group (listings' dry run, which changes nothing); "Import" adds them. Each
//! group stands alone: one refused does not stop the rest.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use selfhelp_core::directory_file::services_in_text;
use selfhelp_proto::listings::v1 as lpb;
use serde::{Deserialize, Serialize};

use super::forms::FieldError;
use super::pages::{error_page, own_page};
use super::staff::{operator, staff_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;

const HERE: &str = "/staff/import";
/// Documents per call to listings (its limit).
const BATCH: usize = 100;
/// Groups one form may carry.
const MOST: usize = 1_000;
/// The largest form taken: 1,000 ORUK documents of a few kilobytes each, URL
/// encoded (the route's own limit; others keep axum's 2 MB).
pub(crate) const MOST_BYTES: usize = 24 * 1024 * 1024;

/// staff_import.html
#[derive(Serialize, Default)]
struct ImportPage {
    csrf: String,
    errors: Vec<FieldError>,
    /// The file's text, kept for the next step.
    documents: String,
    /// "check" or "import": what the results are of.
    done: String,
    results: Vec<ResultLine>,
    /// How many groups would be or were imported, were there already, were
    /// refused.
    added: usize,
    already: usize,
    refused: usize,
}

#[derive(Serialize)]
struct ResultLine {
    name: String,
    source_id: String,
    group_id: String,
    outcome: &'static str,
    problems: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    documents: String,
    /// "check" (a dry run) or "import".
    #[serde(default)]
    action: String,
}

fn page(state: &AppState, signed: &Signed, status: StatusCode, mut view: ImportPage) -> Response {
    view.csrf = signed.csrf_token.clone();
    own_page(state, status, "staff_import.html", "Import groups", &view)
}

pub(crate) async fn import_page(
    State(state): State<AppState>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    match operator(&state, signed, HERE) {
        Ok(signed) => page(&state, &signed, StatusCode::OK, ImportPage::default()),
        Err(answer) => *answer,
    }
}

pub(crate) async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<ImportForm>,
) -> Response {
    let signed = match staff_form(&state, &headers, signed, &form.csrf, HERE) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let dry_run = form.action != "import";
    let refused = |message: String, documents: String| ImportPage {
        errors: vec![FieldError::new("documents", message)],
        documents,
        ..ImportPage::default()
    };
    let services = match services_in_text(&form.documents) {
        Ok(s) if s.is_empty() => {
            let view = refused("Paste the file: it holds no groups".into(), form.documents);
            return page(&state, &signed, StatusCode::BAD_REQUEST, view);
        }
        Ok(s) if s.len() > MOST => {
            let why = format!(
                "It holds {} groups; import at most {MOST} at a time, or use `selfhelp import`",
                s.len()
            );
            return page(
                &state,
                &signed,
                StatusCode::BAD_REQUEST,
                refused(why, form.documents),
            );
        }
        Ok(s) => s,
        Err(why) => {
            let view = refused(format!("The file cannot be read: {why}"), form.documents);
            return page(&state, &signed, StatusCode::BAD_REQUEST, view);
        }
    };
    let answered = async {
        let mut call = state.services.as_signed(&signed).await?;
        let mut results = Vec::with_capacity(services.len());
        for batch in services.chunks(BATCH) {
            let request = call.ask(lpb::ImportOpenReferralRequest {
                services_json: batch.iter().map(|s| s.to_string()).collect(),
                dry_run,
            });
            let answer = call.listings.import_open_referral(request).await?;
            results.extend(answer.into_inner().results);
        }
        if !dry_run {
            tracing::info!(groups = results.len(), "staff imported a directory file");
        }
        Ok::<_, GatewayError>(results)
    }
    .await;
    let results = match answered {
        Ok(r) => r,
        Err(e) => return error_page(&state, &e),
    };
    let mut view = ImportPage {
        documents: form.documents,
        done: if dry_run { "check" } else { "import" }.into(),
        ..ImportPage::default()
    };
    for r in results {
        let outcome = match r.outcome() {
            lpb::ImportOutcome::Imported => {
                view.added += 1;
                "Imported"
            }
            lpb::ImportOutcome::WouldImport => {
                view.added += 1;
                "Would be imported"
            }
            lpb::ImportOutcome::AlreadyPresent => {
                view.already += 1;
                "Already here: left as it is"
            }
            _ => {
                view.refused += 1;
                "Refused"
            }
        };
        view.results.push(ResultLine {
            name: r.name,
            source_id: r.source_id,
            group_id: r.group_id,
            outcome,
            problems: r.problems,
        });
    }
    page(&state, &signed, StatusCode::OK, view)
}
