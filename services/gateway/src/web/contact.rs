//! Writing to a group's organisers from its page, without seeing their
//! address: notifications relays the message to each organiser on their own
//! channels. The visitor's address goes with it only when they tick "you may
//! reply to me". Spam meets a hidden field no person fills in, a cap per
//! client address here, and a cap per group in notifications; no third-party
//! captcha. Nothing the visitor writes is logged.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::notifications::v1 as npb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError, with_cookie};
use super::pages::{Layout, error_page, html};
use crate::AppState;
use crate::error::GatewayError;
use crate::http::{HourlyLimiter, client_address, over_https};

/// The role of the gateway's own token for relaying, and whom it is made as.
pub(crate) const ROLE_CONTACT_RELAY: &str = "contact-relay";
const RELAY_AS: &str = "web-contact-relay";

/// contact.html
#[derive(Serialize, Default)]
struct ContactPage {
    csrf: String,
    group_id: String,
    group_name: String,
    errors: Vec<FieldError>,
    sent: bool,
    name: String,
    message: String,
    reply_to: String,
    may_reply: bool,
}

#[derive(Deserialize)]
pub(crate) struct SentQuery {
    #[serde(default)]
    pub(crate) sent: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reply_to: String,
    #[serde(default)]
    may_reply: Option<String>,
    /// Hidden from people (and from assistive technology); bots fill it in.
    #[serde(default)]
    website: String,
}

async fn contact_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    group_id: &str,
    mut view: ContactPage,
) -> Response {
    let group = match state.listings.group(group_id).await {
        Ok(g) if g.status() == selfhelp_proto::listings::v1::GroupStatus::Published => g,
        Ok(_) => return error_page(state, &GatewayError::NotFound),
        Err(e) => return error_page(state, &e),
    };
    let (csrf, set) = forms::anonymous_token(headers, over_https(state, headers));
    view.csrf = csrf;
    view.group_id = group.id.clone();
    view.group_name = group.name.clone();
    let title = format!("Contact the organisers of {}", group.name);
    let layout = Layout::new(state, &title, "", None);
    with_cookie(html(state, status, "contact.html", layout, &view), set)
}

pub(crate) async fn contact_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SentQuery>,
) -> Response {
    let view = ContactPage {
        sent: query.sent.is_some(),
        ..ContactPage::default()
    };
    contact_page(&state, &headers, StatusCode::OK, &id, view).await
}

/// What the checks every form the public sends meet first let through.
pub(crate) enum Screened {
    /// Go on.
    Person,
    /// A bot filled in the hidden field: answer as if it was sent, and send
    /// nothing.
    Bot,
    /// Past this client address's cap: answer with this page.
    Refused(Response),
}

/// Screens a public form: its hidden field, then the client address's cap
/// on `limiter`.
pub(crate) fn screen(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    honeypot: &str,
    limiter: &HourlyLimiter,
) -> Screened {
    if !honeypot.is_empty() {
        tracing::info!("a public form with its hidden field filled was dropped");
        return Screened::Bot;
    }
    let client = client_address(headers, peer.ip(), state.config.http.trusted_proxies);
    match limiter.check(client) {
        Ok(()) => Screened::Person,
        Err(retry_after_secs) => Screened::Refused(error_page(
            state,
            &GatewayError::TooManyRequests { retry_after_secs },
        )),
    }
}

/// The message and reply address of a public form, checked.
pub(crate) fn message_errors(message: &str, may_reply: bool, reply_to: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if message.trim().is_empty() {
        errors.push(FieldError::new("message", "Write your message"));
    }
    if may_reply && reply_to.trim().is_empty() {
        errors.push(FieldError::new(
            "reply_to",
            "Give the email address for the reply, or untick the box",
        ));
    }
    errors
}

pub(crate) async fn send(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ContactForm>,
) -> Response {
    if !forms::token_ok(&headers, &form.csrf, None) {
        return error_page(
            &state,
            &GatewayError::bad("csrf", "the form has expired: please try again"),
        );
    }
    let sent = Redirect::to(&format!("/groups/{id}/contact?sent=1")).into_response();
    match screen(
        &state,
        &headers,
        peer,
        &form.website,
        &state.contact_limiter,
    ) {
        Screened::Person => {}
        Screened::Bot => return sent,
        Screened::Refused(page) => return page,
    }
    let may_reply = form.may_reply.is_some();
    let errors = message_errors(&form.message, may_reply, &form.reply_to);
    let refused = |errors: Vec<FieldError>, form: ContactForm| ContactPage {
        errors,
        name: form.name,
        message: form.message,
        reply_to: form.reply_to,
        may_reply,
        ..ContactPage::default()
    };
    if !errors.is_empty() {
        let view = refused(errors, form);
        return contact_page(&state, &headers, StatusCode::BAD_REQUEST, &id, view).await;
    }
    let relayed = async {
        let call = state
            .services
            .as_person(RELAY_AS, &[ROLE_CONTACT_RELAY.to_string()])
            .await?;
        let request = call.ask(npb::ContactOrganisersRequest {
            group_id: id.clone(),
            sender_name: form.name.trim().to_string(),
            message: form.message.trim().to_string(),
            // Only with the visitor's leave.
            reply_to: if may_reply {
                form.reply_to.trim().to_string()
            } else {
                String::new()
            },
        });
        let mut notifications = call.notifications.clone();
        Ok::<_, GatewayError>(notifications.contact_organisers(request).await)
    }
    .await;
    match relayed {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => sent,
        Ok(Err(status)) if forms::correctable(&status) => {
            let errors = forms::violations(&status, |field| match field {
                "sender_name" => Some("name"),
                "message" => Some("message"),
                "reply_to" => Some("reply_to"),
                _ => None,
            });
            let view = refused(errors, form);
            contact_page(&state, &headers, StatusCode::BAD_REQUEST, &id, view).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}
