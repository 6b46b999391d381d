//! The web: server-rendered pages that work without JavaScript. The public
//! directory — search (words, postcode and distance, topic, day, time of day,
//! format, age, open to new members), a page per group with its next meetings
//! and changes, topics, calendar feeds, the sitemap — is built from listings'
//! public view of published groups. Signed in (`account`), a person joins,
//! leaves and follows groups (`joining`) and has pages of their own: their
//! groups, notifications and data (`mine`), their private calendar
//! (`my_calendar`), how they are told and their alerts (`told`). Organisers
//! run their groups (`organise`, with the card's form in `card_form`); the
//! region's staff review listings (`staff`).
//!
//! One module per area; each page has a typed view (a `Serialize` struct)
//! that its template reads, within the layout of `pages`.

mod account;
mod calendar;
mod card_form;
mod contact;
mod format;
mod forms;
mod group;
mod group_life;
mod invite_mail;
mod joining;
mod json_ld;
mod live;
mod mine;
mod my_calendar;
mod my_sharing;
mod organise;
mod pages;
mod proposed;
mod reports;
mod search;
mod sitemap;
mod staff;
mod staff_dead_letters;
mod staff_import;
mod staff_topics;
mod still_right;
mod told;
mod topics;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub(crate) use pages::{Pages, error_page};

use crate::AppState;
use crate::error::GatewayError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(search::home))
        .route("/groups/{id}", get(group::group_page))
        .route("/groups/{id}/join", post(joining::join))
        .route(
            "/groups/{id}/contact",
            get(contact::contact_form).post(contact::send),
        )
        .route(
            "/groups/{id}/report",
            get(reports::problem_form).post(reports::send_problem),
        )
        .route(
            "/groups/{id}/still-right",
            get(still_right::page).post(still_right::confirm),
        )
        .route(
            "/tell-us",
            get(reports::suggestion_form).post(reports::send_suggestion),
        )
        .route("/groups/{id}/{what}", post(joining::place_change))
        .route("/groups/{id}/calendar.ics", get(calendar::group_calendar))
        .route("/proposed", get(proposed::proposed_page))
        .route("/topics", get(topics::topics_page))
        .route("/topics/{code}", get(search::topic_page))
        .route("/topics/{code}/calendar.ics", get(calendar::topic_calendar))
        .route("/calendar.ics", get(calendar::region_calendar))
        .route("/sitemap.xml", get(sitemap::sitemap))
        .route("/robots.txt", get(sitemap::robots))
        .route("/static/site.css", get(stylesheet))
        .route("/static/inbox.js", get(inbox_script))
        .route(
            "/sign-in",
            get(account::sign_in_page).post(account::ask_for_link),
        )
        .route("/sign-in/sent", get(account::link_sent))
        .route("/sign-in/code", post(account::sign_in_with_code))
        .route("/sign-in/link/{token}", get(account::link_page))
        .route("/sign-in/link", post(account::sign_in_with_link))
        .route("/sign-out", post(account::sign_out))
        .route("/sign-out/everywhere", post(account::sign_out_everywhere))
        .route("/account", get(account::account_page))
        .route("/.well-known/jwks.json", get(account::jwks))
        .route("/staff", get(staff::staff_page))
        .route("/staff/sign-in", get(staff::begin))
        .route("/staff/callback", get(staff::finish))
        .route("/staff/groups/{id}", get(staff::review_page))
        .route("/staff/groups/{id}/invite", post(staff::invite_organiser))
        .route("/staff/groups/{id}/{what}", post(staff::decide))
        .route("/staff/reports/{id}/close", post(staff::close_report))
        .route("/staff/dead-letters", get(staff_dead_letters::page))
        .route(
            "/staff/dead-letters/{service}/replay",
            post(staff_dead_letters::replay),
        )
        .route(
            "/staff/import",
            get(staff_import::import_page)
                .post(staff_import::import)
                .layer(axum::extract::DefaultBodyLimit::max(
                    staff_import::MOST_BYTES,
                )),
        )
        .route(
            "/staff/topics",
            get(staff_topics::topics_page).post(staff_topics::create),
        )
        .route("/staff/topics/{id}", get(staff_topics::topic_page))
        .route("/staff/topics/{id}/{what}", post(staff_topics::update))
        .route("/organise", get(organise::organise_home))
        .route(
            "/organise/new",
            get(organise::new_group_form).post(organise::create_group),
        )
        .route("/organise/{id}", get(organise::group_desk))
        .route(
            "/organise/{id}/edit",
            get(organise::edit_form).post(organise::save_edit),
        )
        .route("/organise/{id}/schedule", post(organise::schedule))
        .route(
            "/organise/{id}/meetings/{what}",
            post(organise::change_meeting),
        )
        .route(
            "/organise/{id}/requests/{membership}/{decision}",
            post(organise::change_person),
        )
        .route(
            "/organise/{id}/members/{membership}/{what}",
            post(organise::change_person),
        )
        .route("/organise/{id}/invitations", post(organise::invite))
        .route("/organise/{id}/rota", post(organise::set_rota))
        .route("/organise/{id}/sharing", get(organise::sharing_page))
        .route(
            "/organise/{id}/sharing/correct",
            post(organise::correct_record),
        )
        .route("/organise/{id}/announce", post(organise::announce))
        .route("/organise/{id}/{what}", post(organise::step))
        .route("/my/groups", get(mine::my_groups))
        .route("/my/groups/{id}/rota/{what}", post(mine::change_turn))
        .route(
            "/my/groups/{id}/sharing",
            get(my_sharing::my_part).post(my_sharing::save_my_part),
        )
        .route("/my/groups/{id}/forum", get(group_life::forum_page))
        .route(
            "/my/groups/{id}/forum/{what}",
            post(group_life::forum_action),
        )
        .route("/my/notifications", get(mine::notifications))
        .route("/my/notifications/read", post(mine::mark_read))
        .route(
            "/my/notifications/{id}/report",
            get(reports::message_report_form).post(reports::send_message_report),
        )
        .route("/my/notifications/live", get(live::inbox_events))
        .route(
            "/my/calendar",
            get(my_calendar::my_calendar).post(my_calendar::renew),
        )
        .route("/calendars/{file}", get(my_calendar::feed))
        .route(
            "/my/settings",
            get(told::settings).post(told::save_settings),
        )
        .route("/my/alerts", get(told::alerts).post(told::add_alert))
        .route("/my/alerts/delete", post(told::delete_alert))
        .route("/my/data", get(mine::my_data))
        .route("/my/data/download", get(mine::download))
        .route("/my/data/erase", post(mine::erase))
}

pub(crate) async fn not_found(State(state): State<AppState>) -> Response {
    error_page(&state, &GatewayError::NotFound)
}

/// The inbox's live updates (the page works without it).
async fn inbox_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/inbox.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/site.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::pages::{Layout, Page, Pages};

    /// The JSON-LD in a group's page cannot close its script element, whatever
    /// an organiser names the group.
    #[test]
    fn json_ld_cannot_close_its_script_element() {
        #[derive(serde::Serialize)]
        struct View {
            g: serde_json::Value,
            json_ld: Vec<serde_json::Value>,
        }
        let hostile = "</script><script>alert(1)</script>";
        let view = View {
            g: serde_json::json!({"name": "A group", "summary": "", "ages": "", "format": "", "cost": "", "how_to_join": "", "checked": ""}),
            json_ld: vec![serde_json::json!({"name": hostile})],
        };
        let page = Page {
            layout: Layout {
                area_name: "Here".into(),
                page_title: "A group".into(),
                page_description: String::new(),
                canonical: None,
                signed_in: None,
            },
            view: &view,
        };
        let html = Pages::new().render("group.html", &page).unwrap();
        let script = html
            .split("<script type=\"application/ld+json\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the JSON-LD element");
        let back: serde_json::Value = serde_json::from_str(script).expect("JSON in the element");
        assert_eq!(back[0]["name"], hostile, "read back whole");
        assert_eq!(html.matches("<script").count(), 1, "{html}");
    }
}
