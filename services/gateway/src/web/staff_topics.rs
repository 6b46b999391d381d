//! The region's topic taxonomy, kept by its staff: every topic in its place
//! (retired ones with what replaced them), a form to add one, and each
//! topic's page to rename, describe, move or retire it. Listings checks the
//! operator role and every rule again on each call.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::listings::v1 as lpb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError};
use super::pages::{error_page, own_page};
use super::staff::{operator, staff_form};
use crate::AppState;
use crate::error::GatewayError;
use crate::sessions::Signed;

const HERE: &str = "/staff/topics";

/// staff_topics.html (every topic, and the form to add one) and
/// staff_topic.html (one topic's forms).
#[derive(Serialize, Default)]
struct TopicsPage {
    csrf: String,
    errors: Vec<FieldError>,
    topics: Vec<TopicLine>,
    /// The current topics, as parents or replacements to choose.
    choices: Vec<Choice>,
    /// The form as typed (a new topic, or the one being edited).
    form: TopicForm,
    /// The topic whose page this is (`staff_topic.html`).
    topic: Option<TopicLine>,
}

#[derive(Serialize, Clone)]
struct TopicLine {
    id: String,
    code: String,
    name: String,
    description: String,
    /// How deep under the top level (0: a top-level topic).
    depth: usize,
    /// A dash per level, before the name in lists.
    indent: String,
    parent: String,
    retired: bool,
    /// What replaced a retired topic, by name.
    replaced_by: String,
}

#[derive(Serialize)]
struct Choice {
    id: String,
    label: String,
}

#[derive(Deserialize, Serialize, Default, Clone)]
pub(crate) struct TopicForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parent_id: String,
    #[serde(default)]
    replacement_id: String,
}

/// `topics` as a tree reads: each followed by its children, in the order
/// given. A topic whose parent is missing is shown at the top level.
fn tree_order(topics: &[lpb::Topic]) -> Vec<&lpb::Topic> {
    fn below<'a>(topics: &'a [lpb::Topic], parent: &str, out: &mut Vec<&'a lpb::Topic>) {
        for t in topics.iter().filter(|t| t.parent_id == parent) {
            // A tree never repeats; the check keeps a page from looping if it did.
            if out.iter().any(|seen| seen.id == t.id) {
                continue;
            }
            out.push(t);
            below(topics, &t.id, out);
        }
    }
    let mut out = Vec::with_capacity(topics.len());
    let known = |id: &str| topics.iter().any(|t| t.id == id);
    for root in topics
        .iter()
        .filter(|t| t.parent_id.is_empty() || !known(&t.parent_id))
    {
        if !out.iter().any(|seen: &&lpb::Topic| seen.id == root.id) {
            out.push(root);
            below(topics, &root.id, &mut out);
        }
    }
    out
}

/// Every topic in tree order, with its depth.
fn lines(topics: &[lpb::Topic]) -> Vec<TopicLine> {
    let name_of = |id: &str| {
        topics
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let depth_of = |t: &lpb::Topic| {
        let mut depth = 0;
        let mut parent = t.parent_id.clone();
        // Bounded: a taxonomy is a tree, but a page must never loop.
        while depth < 16 {
            let Some(above) = topics.iter().find(|p| p.id == parent) else {
                break;
            };
            depth += 1;
            parent = above.parent_id.clone();
        }
        depth
    };
    tree_order(topics)
        .into_iter()
        .map(|t| TopicLine {
            id: t.id.clone(),
            code: t.code.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            depth: depth_of(t),
            indent: "— ".repeat(depth_of(t)),
            parent: name_of(&t.parent_id),
            retired: t.retired,
            replaced_by: name_of(&t.replaced_by_id),
        })
        .collect()
}

async fn all_topics(state: &AppState, signed: &Signed) -> Result<Vec<lpb::Topic>, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(lpb::ListTopicsRequest {
        include_retired: true,
    });
    Ok(call
        .listings
        .list_topics(request)
        .await?
        .into_inner()
        .topics)
}

/// The list page (`topic_id` empty) or one topic's page, with `errors` and
/// the form as typed.
async fn answer(
    state: &AppState,
    signed: &Signed,
    topic_id: &str,
    status: StatusCode,
    errors: Vec<FieldError>,
    form: Option<TopicForm>,
) -> Response {
    let topics = match all_topics(state, signed).await {
        Ok(t) => t,
        Err(e) => return error_page(state, &e),
    };
    let all = lines(&topics);
    let choices = all
        .iter()
        .filter(|t| !t.retired && t.id != topic_id)
        .map(|t| Choice {
            id: t.id.clone(),
            label: format!("{}{}", t.indent, t.name),
        })
        .collect();
    let mut view = TopicsPage {
        csrf: signed.csrf_token.clone(),
        errors,
        choices,
        ..TopicsPage::default()
    };
    if topic_id.is_empty() {
        view.form = form.unwrap_or_default();
        view.topics = all;
        return own_page(state, status, "staff_topics.html", "Topics", &view);
    }
    let Some(topic) = topics.iter().find(|t| t.id == topic_id) else {
        return error_page(state, &GatewayError::NotFound);
    };
    view.form = form.unwrap_or_else(|| TopicForm {
        name: topic.name.clone(),
        description: topic.description.clone(),
        parent_id: topic.parent_id.clone(),
        ..TopicForm::default()
    });
    let line = all.into_iter().find(|t| t.id == topic_id);
    let title = format!(
        "Topic: {}",
        line.as_ref().map(|t| t.name.as_str()).unwrap_or("")
    );
    view.topic = line;
    own_page(state, status, "staff_topic.html", &title, &view)
}

pub(crate) async fn topics_page(
    State(state): State<AppState>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    match operator(&state, signed, HERE) {
        Ok(signed) => answer(&state, &signed, "", StatusCode::OK, Vec::new(), None).await,
        Err(page) => *page,
    }
}

pub(crate) async fn topic_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    signed: Option<axum::Extension<Signed>>,
) -> Response {
    match operator(&state, signed, &format!("{HERE}/{id}")) {
        Ok(signed) => answer(&state, &signed, &id, StatusCode::OK, Vec::new(), None).await,
        Err(page) => *page,
    }
}

/// Adds a topic.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<TopicForm>,
) -> Response {
    change(&state, &headers, signed, "", "create", form).await
}

/// Saves a topic's name, description and place ("save"), or retires it
/// ("retire").
pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<TopicForm>,
) -> Response {
    change(&state, &headers, signed, &id, &what, form).await
}

async fn change(
    state: &AppState,
    headers: &HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    id: &str,
    what: &str,
    form: TopicForm,
) -> Response {
    let page = if id.is_empty() {
        HERE.to_string()
    } else {
        format!("{HERE}/{id}")
    };
    let signed = match staff_form(state, headers, signed, &form.csrf, &page) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if what == "retire" && form.replacement_id.is_empty() {
        let errors = vec![FieldError::new(
            "replacement_id",
            "Choose the topic that replaces it",
        )];
        return answer(
            state,
            &signed,
            id,
            StatusCode::BAD_REQUEST,
            errors,
            Some(form),
        )
        .await;
    }
    let done = async {
        let mut call = state.services.as_signed(&signed).await?;
        let answer = match what {
            "create" => {
                let request = call.ask(lpb::CreateTopicRequest {
                    code: form.code.trim().to_string(),
                    name: form.name.trim().to_string(),
                    description: form.description.trim().to_string(),
                    parent_id: form.parent_id.clone(),
                });
                call.listings.create_topic(request).await.map(|_| ())
            }
            "save" => {
                let request = call.ask(lpb::UpdateTopicRequest {
                    topic_id: id.to_string(),
                    name: form.name.trim().to_string(),
                    description: form.description.trim().to_string(),
                    parent_id: form.parent_id.clone(),
                });
                call.listings.update_topic(request).await.map(|_| ())
            }
            "retire" => {
                let request = call.ask(lpb::RetireTopicRequest {
                    topic_id: id.to_string(),
                    replacement_id: form.replacement_id.clone(),
                });
                call.listings.retire_topic(request).await.map(|_| ())
            }
            _ => return Err(GatewayError::NotFound),
        };
        Ok::<_, GatewayError>(answer)
    }
    .await;
    match done {
        Err(own) => error_page(state, &own),
        Ok(Ok(())) => {
            state.listings.forget_topics();
            Redirect::to(HERE).into_response()
        }
        Ok(Err(status)) if status.code() == tonic::Code::AlreadyExists => {
            let errors = vec![FieldError::new("code", "Another topic has this code")];
            answer(
                state,
                &signed,
                id,
                StatusCode::BAD_REQUEST,
                errors,
                Some(form),
            )
            .await
        }
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "code" => Some("code"),
                "name" => Some("name"),
                "description" => Some("description"),
                "parent_id" => Some("parent_id"),
                "replacement_id" => Some("replacement_id"),
                _ => None,
            });
            answer(
                state,
                &signed,
                id,
                StatusCode::BAD_REQUEST,
                errors,
                Some(form),
            )
            .await
        }
        Ok(Err(status)) => error_page(state, &GatewayError::from(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(id: &str, parent: &str) -> lpb::Topic {
        lpb::Topic {
            id: id.into(),
            name: id.to_uppercase(),
            parent_id: parent.into(),
            ..Default::default()
        }
    }

    #[test]
    fn children_follow_their_parent_with_their_depth() {
        let topics = [
            topic("a", ""),
            topic("b", ""),
            topic("a1", "a"),
            topic("b1", "b"),
            topic("a1x", "a1"),
            topic("orphan", "gone"),
        ];
        let shown: Vec<(String, usize)> = lines(&topics)
            .into_iter()
            .map(|l| (l.id, l.depth))
            .collect();
        let expected = [
            ("a", 0),
            ("a1", 1),
            ("a1x", 2),
            ("b", 0),
            ("b1", 1),
            ("orphan", 0),
        ];
        assert_eq!(shown, expected.map(|(id, d)| (id.to_string(), d)).to_vec());
    }
}
