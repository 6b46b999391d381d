//! The page templates, the layout every page shares, and the error page.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

use crate::AppState;
use crate::error::GatewayError;

/// The page templates, parsed once.
pub(crate) struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("search.html", include_str!("../../templates/search.html")),
            ("group.html", include_str!("../../templates/group.html")),
            ("topics.html", include_str!("../../templates/topics.html")),
            (
                "proposed.html",
                include_str!("../../templates/proposed.html"),
            ),
            ("error.html", include_str!("../../templates/error.html")),
            ("sitemap.xml", include_str!("../../templates/sitemap.xml")),
            ("sign_in.html", include_str!("../../templates/sign_in.html")),
            (
                "sign_in_sent.html",
                include_str!("../../templates/sign_in_sent.html"),
            ),
            (
                "sign_in_link.html",
                include_str!("../../templates/sign_in_link.html"),
            ),
            ("account.html", include_str!("../../templates/account.html")),
            (
                "my_groups.html",
                include_str!("../../templates/my_groups.html"),
            ),
            (
                "notifications.html",
                include_str!("../../templates/notifications.html"),
            ),
            (
                "my_calendar.html",
                include_str!("../../templates/my_calendar.html"),
            ),
            ("my_data.html", include_str!("../../templates/my_data.html")),
            ("erased.html", include_str!("../../templates/erased.html")),
            (
                "form_errors.html",
                include_str!("../../templates/form_errors.html"),
            ),
            (
                "settings.html",
                include_str!("../../templates/settings.html"),
            ),
            ("alerts.html", include_str!("../../templates/alerts.html")),
            ("staff.html", include_str!("../../templates/staff.html")),
            (
                "staff_group.html",
                include_str!("../../templates/staff_group.html"),
            ),
            ("fields.html", include_str!("../../templates/fields.html")),
            ("contact.html", include_str!("../../templates/contact.html")),
            ("report.html", include_str!("../../templates/report.html")),
            (
                "still_right.html",
                include_str!("../../templates/still_right.html"),
            ),
            (
                "staff_dead_letters.html",
                include_str!("../../templates/staff_dead_letters.html"),
            ),
            (
                "staff_import.html",
                include_str!("../../templates/staff_import.html"),
            ),
            (
                "staff_topics.html",
                include_str!("../../templates/staff_topics.html"),
            ),
            (
                "staff_topic.html",
                include_str!("../../templates/staff_topic.html"),
            ),
            (
                "report_message.html",
                include_str!("../../templates/report_message.html"),
            ),
            (
                "organise.html",
                include_str!("../../templates/organise.html"),
            ),
            (
                "group_form.html",
                include_str!("../../templates/group_form.html"),
            ),
            (
                "organise_group.html",
                include_str!("../../templates/organise_group.html"),
            ),
            ("sharing.html", include_str!("../../templates/sharing.html")),
            ("forum.html", include_str!("../../templates/forum.html")),
            (
                "my_sharing.html",
                include_str!("../../templates/my_sharing.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("the gateway's templates parse");
        }
        Pages { env }
    }

    /// `template` filled in from `view`; a template that does not render is
    /// the gateway's own fault, told as such.
    pub fn render(&self, template: &str, view: &impl Serialize) -> Result<String, GatewayError> {
        self.env
            .get_template(template)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(view))))
            .map_err(|e| GatewayError::Internal(format!("{template}: {e:#}")))
    }
}

/// What every page's layout (base.html) shows.
#[derive(Serialize)]
pub(crate) struct Layout {
    pub area_name: String,
    pub page_title: String,
    pub page_description: String,
    /// The page's one address, for search engines; none for a search's results.
    pub canonical: Option<String>,
    /// Someone is signed in (the header links to their account).
    pub signed_in: Option<SignedIn>,
}

/// What the layout knows of who is signed in: the token their forms carry.
#[derive(Serialize)]
pub(crate) struct SignedIn {
    pub csrf: String,
}

fn signed_in() -> Option<SignedIn> {
    crate::sessions::current().map(|s| SignedIn { csrf: s.csrf_token })
}

impl Layout {
    /// `title` empty: the site's own title.
    pub fn new(
        state: &AppState,
        title: &str,
        description: &str,
        canonical: Option<String>,
    ) -> Layout {
        let area = &state.config.area_name;
        Layout {
            area_name: area.clone(),
            page_title: if title.is_empty() {
                format!("{area} self-help groups")
            } else {
                format!("{title} – {area} self-help groups")
            },
            page_description: description.to_string(),
            canonical,
            signed_in: signed_in(),
        }
    }
}

/// A page's view: its own fields beside the layout's.
#[derive(Serialize)]
pub(crate) struct Page<'a, V: Serialize> {
    #[serde(flatten)]
    pub layout: Layout,
    #[serde(flatten)]
    pub view: &'a V,
}

/// An HTML page: `view` rendered into `template` within the layout.
pub(crate) fn html(
    state: &AppState,
    status: StatusCode,
    template: &str,
    layout: Layout,
    view: &impl Serialize,
) -> Response {
    match state.pages.render(template, &Page { layout, view }) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => error_page(state, &e),
    }
}

/// One of a person's own pages (no description, no canonical address: it is
/// theirs, not for search engines).
pub(crate) fn own_page(
    state: &AppState,
    status: StatusCode,
    template: &str,
    title: &str,
    view: &impl Serialize,
) -> Response {
    html(
        state,
        status,
        template,
        Layout::new(state, title, "", None),
        view,
    )
}

#[derive(Serialize)]
struct ErrorView<'a> {
    title: &'a str,
    message: &'a str,
}

/// The page for an error: what happened in plain words, and where to go next.
pub(crate) fn error_page(state: &AppState, error: &GatewayError) -> Response {
    let (title, message) = match error {
        GatewayError::Gone(message) => ("This has expired", message.clone()),
        GatewayError::NotFound => (
            "Page not found",
            "We could not find that page. The group may have closed or moved, or the address may be mistyped.".to_string(),
        ),
        GatewayError::BadRequest { message, .. } => ("Something in the address is not right", message.clone()),
        GatewayError::TooManyRequests { .. } => (
            "Too many requests",
            "Too many pages were asked for from your connection in a short time. Please wait a few seconds and try again.".to_string(),
        ),
        GatewayError::Unavailable => (
            "The directory is not available just now",
            "Please try again in a minute.".to_string(),
        ),
        GatewayError::Forbidden(_) => (
            "This is not yours to see",
            "This page belongs to someone else, or to a group's organisers. If you think it should be yours, sign out and sign in again with the address you used before.".to_string(),
        ),
        GatewayError::Conflict(message) => ("That cannot be done just now", message.clone()),
        GatewayError::Upstream(status) => {
            tracing::error!(code = ?status.code(), message = status.message(), "a service failed a page's call");
            ("Sorry, something went wrong", "Please try again in a minute.".to_string())
        }
        GatewayError::Internal(e) => {
            tracing::error!(error = %e, "a page failed on the gateway's side");
            ("Sorry, something went wrong", "Please try again in a minute.".to_string())
        }
    };
    let page = Page {
        layout: Layout {
            area_name: state.config.area_name.clone(),
            page_title: format!("{title} – {} self-help groups", state.config.area_name),
            page_description: message.clone(),
            canonical: None,
            signed_in: signed_in(),
        },
        view: &ErrorView {
            title,
            message: &message,
        },
    };
    let html = state.pages.render("error.html", &page).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the error page's template did not render");
        format!("<!doctype html><html lang=\"en\"><title>{title}</title><h1>{title}</h1></html>")
    });
    let mut response = (
        error.status(),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let GatewayError::TooManyRequests { retry_after_secs } = error {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(*retry_after_secs),
        );
    }
    response
}
