//! How a person is told: their notification settings (email address and its
//! confirmation, what comes by email, how often, quiet hours, muted groups)
//! and their alerts about new groups (by postcode and distance, topic, and
//! online groups).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::notifications::v1 as npb;
use serde::{Deserialize, Serialize};

use super::forms::{self, FieldError, SignedPage};
use super::pages::{error_page, own_page};
use crate::AppState;
use crate::error::GatewayError;
use crate::services::AsPerson;
use crate::sessions::Signed;

/// The categories people choose email for, as the page words them.
const CATEGORIES: [(npb::Category, &str, &str); 4] = [
    (
        npb::Category::GroupUpdates,
        "group_updates",
        "Changes to your groups' meetings, and news from them",
    ),
    (
        npb::Category::MembershipRequests,
        "membership_requests",
        "Joining: requests, answers, invitations, waiting lists",
    ),
    (
        npb::Category::Reminders,
        "reminders",
        "Reminders of your rota turns",
    ),
    (
        npb::Category::NewGroupAlerts,
        "new_group_alerts",
        "New groups matching your alerts",
    ),
];

#[derive(Serialize)]
struct SettingsPage {
    csrf: String,
    errors: Vec<FieldError>,
    saved: bool,
    email: String,
    email_confirmed: bool,
    categories: Vec<CategoryChoice>,
    cadence: &'static str,
    quiet_start: String,
    quiet_end: String,
    groups: Vec<MuteChoice>,
    member_joined: bool,
    member_left: bool,
    organiser: bool,
}

#[derive(Serialize)]
struct CategoryChoice {
    name: &'static str,
    label: &'static str,
    by_email: bool,
}

#[derive(Serialize)]
struct MuteChoice {
    id: String,
    name: String,
    muted: bool,
}

fn cadence_name(c: npb::Cadence) -> &'static str {
    match c {
        npb::Cadence::DailyDigest => "daily",
        npb::Cadence::WeeklyDigest => "weekly",
        _ => "immediate",
    }
}

/// The person's groups (members' and followed) to mute, and whether they
/// organise any.
async fn groups_of(call: &mut AsPerson) -> Result<(Vec<(String, String)>, bool), GatewayError> {
    let memberships = call.my_memberships().await?;
    let organiser = memberships.iter().any(|m| {
        m.state() == mpb::MembershipState::Active
            && matches!(
                m.role(),
                mpb::GroupRole::Organiser | mpb::GroupRole::CoOrganiser
            )
    });
    let mut groups: Vec<(String, String)> = memberships
        .into_iter()
        .filter(|m| m.state() == mpb::MembershipState::Active)
        .map(|m| (m.group_id, m.group_name))
        .collect();
    for f in call.my_follows().await? {
        if !groups.iter().any(|(id, _)| *id == f.group_id) {
            groups.push((f.group_id, f.group_name));
        }
    }
    Ok((groups, organiser))
}

async fn settings_view(
    state: &AppState,
    signed: &Signed,
    shown: Option<(&npb::Preferences, Vec<FieldError>)>,
    saved: bool,
) -> Result<SettingsPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(npb::GetPreferencesRequest {});
    let stored = call
        .notifications
        .get_preferences(request)
        .await?
        .into_inner();
    let (groups, organiser) = groups_of(&mut call).await?;
    // What the person typed, when it comes back with errors; else as stored.
    let (p, errors) = match shown {
        Some((typed, errors)) => (typed.clone(), errors),
        None => (stored.clone(), Vec::new()),
    };
    let by_email = |category: npb::Category| {
        p.channels
            .iter()
            .any(|c| c.category() == category && c.channel() == npb::Channel::Email && c.enabled)
    };
    let quiet = p.quiet_hours.clone().unwrap_or_default();
    Ok(SettingsPage {
        csrf: signed.csrf_token.clone(),
        errors,
        saved,
        email_confirmed: stored.email_confirmed && stored.email == p.email,
        email: p.email.clone(),
        categories: CATEGORIES
            .iter()
            .map(|(category, name, label)| CategoryChoice {
                name,
                label,
                by_email: by_email(*category),
            })
            .collect(),
        cadence: cadence_name(p.cadence()),
        quiet_start: quiet.start,
        quiet_end: quiet.end,
        groups: groups
            .into_iter()
            .map(|(id, name)| MuteChoice {
                muted: p.muted_group_ids.contains(&id),
                id,
                name,
            })
            .collect(),
        member_joined: p.member_joined,
        member_left: p.member_left,
        organiser,
    })
}

fn settings_page(state: &AppState, status: StatusCode, view: &SettingsPage) -> Response {
    own_page(state, status, "settings.html", "How you are told", view)
}

pub(crate) async fn settings(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
    axum::extract::Query(query): axum::extract::Query<SavedQuery>,
) -> Response {
    match settings_view(&state, &signed, None, query.saved.is_some()).await {
        Ok(view) => settings_page(&state, StatusCode::OK, &view),
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<String>,
}

/// The settings form as posted: text fields, the names of the ticked
/// checkboxes, and the groups ticked to mute (repeated `muted` values).
#[derive(Default)]
pub(crate) struct SettingsForm {
    csrf: String,
    email: String,
    cadence: String,
    quiet_start: String,
    quiet_end: String,
    ticked: Vec<String>,
    muted: Vec<String>,
}

impl SettingsForm {
    /// From the posted pairs (a form with repeated names, which a struct
    /// cannot take).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = SettingsForm::default();
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => form.csrf = value,
                "email" => form.email = value,
                "cadence" => form.cadence = value,
                "quiet_start" => form.quiet_start = value,
                "quiet_end" => form.quiet_end = value,
                "muted" => form.muted.push(value),
                _ => form.ticked.push(name),
            }
        }
        form
    }

    fn ticked(&self, name: &str) -> bool {
        self.ticked.iter().any(|t| t == name)
    }

    fn by_email(&self, name: &str) -> bool {
        self.ticked(name)
    }

    /// The preferences the form asks for, over the stored ones (webhook
    /// choices and the time zone are not on the page and stay as they are).
    fn apply(&self, stored: &npb::Preferences) -> npb::Preferences {
        let mut wanted = stored.clone();
        wanted.email = self.email.trim().to_string();
        wanted
            .channels
            .retain(|c| c.channel() != npb::Channel::Email);
        for (category, name, _) in CATEGORIES {
            wanted.channels.push(npb::ChannelSetting {
                category: category.into(),
                channel: npb::Channel::Email.into(),
                enabled: self.by_email(name),
            });
        }
        wanted.cadence = match self.cadence.as_str() {
            "daily" => npb::Cadence::DailyDigest,
            "weekly" => npb::Cadence::WeeklyDigest,
            _ => npb::Cadence::Immediate,
        }
        .into();
        let (start, end) = (self.quiet_start.trim(), self.quiet_end.trim());
        wanted.quiet_hours = (!start.is_empty() || !end.is_empty()).then(|| npb::QuietHours {
            start: start.to_string(),
            end: end.to_string(),
        });
        wanted.muted_group_ids = self.muted.clone();
        wanted.member_joined = self.ticked("member_joined");
        wanted.member_left = self.ticked("member_left");
        wanted
    }
}

pub(crate) async fn save_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = SettingsForm::from_pairs(pairs);
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/settings") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let saved = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::GetPreferencesRequest {});
        let stored = call
            .notifications
            .get_preferences(request)
            .await?
            .into_inner();
        let wanted = form.apply(&stored);
        let request = call.ask(npb::UpdatePreferencesRequest {
            preferences: Some(wanted.clone()),
        });
        Ok::<_, GatewayError>((wanted, call.notifications.update_preferences(request).await))
    }
    .await;
    match saved {
        Err(own) => error_page(&state, &own),
        Ok((_, Ok(_))) => Redirect::to("/my/settings?saved=1").into_response(),
        Ok((wanted, Err(status))) if status.code() == tonic::Code::InvalidArgument => {
            let errors = forms::violations(&status, |field| match field {
                "email" => Some("email"),
                "quiet_hours.start" => Some("quiet_start"),
                "quiet_hours.end" => Some("quiet_end"),
                "cadence" => Some("cadence"),
                "muted_group_ids" => Some("muted"),
                _ => None,
            });
            match settings_view(&state, &signed, Some((&wanted, errors)), false).await {
                Ok(view) => settings_page(&state, StatusCode::BAD_REQUEST, &view),
                Err(e) => error_page(&state, &e),
            }
        }
        Ok((_, Err(status))) => error_page(&state, &GatewayError::from(status)),
    }
}

/// The distances an alert may use, in km (as the search offers).
const DISTANCES_KM: [u32; 6] = [2, 5, 10, 25, 50, 100];

#[derive(Serialize)]
struct AlertsPage {
    csrf: String,
    errors: Vec<FieldError>,
    alerts: Vec<AlertView>,
    topics: Vec<TopicChoice>,
    distances: [u32; 6],
    typed: AlertForm,
}

#[derive(Serialize)]
struct AlertView {
    id: String,
    label: String,
    what: String,
}

#[derive(Serialize)]
struct TopicChoice {
    code: String,
    label: String,
}

/// How an alert reads: "Bereavement groups within 10 km of NG1 5FS, and
/// online ones".
fn alert_words(a: &npb::Alert, topic_names: &[TopicChoice]) -> String {
    let topics: Vec<&str> = a
        .topics
        .iter()
        .map(|code| {
            topic_names
                .iter()
                .find(|t| &t.code == code)
                .map_or(code.as_str(), |t| {
                    t.label.trim_start_matches('\u{a0}').trim()
                })
        })
        .collect();
    let what = if topics.is_empty() {
        "Any new group".to_string()
    } else {
        format!("New groups about {}", topics.join(" or "))
    };
    let place = if a.radius_km > 0.0 {
        let centre = if a.postcode.is_empty() {
            "a point you chose".to_string()
        } else {
            a.postcode.clone()
        };
        format!(" within {} km of {centre}", a.radius_km)
    } else {
        " anywhere in the area".to_string()
    };
    let online = if a.include_online && a.radius_km > 0.0 {
        ", and ones that meet online or by phone"
    } else {
        ""
    };
    format!("{what}{place}{online}")
}

async fn topic_choices(state: &AppState) -> Result<Vec<TopicChoice>, GatewayError> {
    let topics = state.listings.topics().await?;
    // Parents come first; a child is indented under its parent.
    Ok(topics
        .iter()
        .map(|t| TopicChoice {
            code: t.code.clone(),
            label: if t.parent_id.is_empty() {
                t.name.clone()
            } else {
                format!("\u{a0}\u{a0}{}", t.name)
            },
        })
        .collect())
}

async fn alerts_view(
    state: &AppState,
    signed: &Signed,
    errors: Vec<FieldError>,
    typed: AlertForm,
) -> Result<AlertsPage, GatewayError> {
    let mut call = state.services.as_signed(signed).await?;
    let request = call.ask(npb::ListAlertsRequest {});
    let alerts = call
        .notifications
        .list_alerts(request)
        .await?
        .into_inner()
        .alerts;
    let topics = topic_choices(state).await?;
    Ok(AlertsPage {
        csrf: signed.csrf_token.clone(),
        errors,
        alerts: alerts
            .iter()
            .map(|a| AlertView {
                id: a.id.clone(),
                label: a.label.clone(),
                what: alert_words(a, &topics),
            })
            .collect(),
        topics,
        distances: DISTANCES_KM,
        typed,
    })
}

fn alerts_page(state: &AppState, status: StatusCode, view: &AlertsPage) -> Response {
    own_page(
        state,
        status,
        "alerts.html",
        "Alerts about new groups",
        view,
    )
}

pub(crate) async fn alerts(
    State(state): State<AppState>,
    SignedPage(signed): SignedPage,
) -> Response {
    let typed = AlertForm {
        distance: "10".into(),
        include_online: Some("1".into()),
        ..Default::default()
    };
    match alerts_view(&state, &signed, Vec::new(), typed).await {
        Ok(view) => alerts_page(&state, StatusCode::OK, &view),
        Err(e) => error_page(&state, &e),
    }
}

#[derive(Deserialize, Serialize, Default, Clone)]
pub(crate) struct AlertForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    distance: String,
    #[serde(default)]
    include_online: Option<String>,
    #[serde(default)]
    label: String,
}

pub(crate) async fn add_alert(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<AlertForm>,
) -> Response {
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/alerts") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let postcode = form.postcode.trim();
    let radius_km = match form.distance.parse::<u32>() {
        Ok(km) if DISTANCES_KM.contains(&km) => f64::from(km),
        _ if postcode.is_empty() => 0.0,
        _ => {
            let errors = vec![FieldError::new(
                "distance",
                "Choose a distance from the list",
            )];
            return alert_refused(&state, &signed, errors, form).await;
        }
    };
    let created = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::CreateAlertRequest {
            topics: if form.topic.is_empty() {
                vec![]
            } else {
                vec![form.topic.clone()]
            },
            postcode: postcode.to_string(),
            // Without a postcode: anywhere in the area.
            radius_km: if postcode.is_empty() { 0.0 } else { radius_km },
            include_online: form.include_online.is_some(),
            label: form.label.trim().to_string(),
            ..Default::default()
        });
        Ok::<_, GatewayError>(call.notifications.create_alert(request).await)
    }
    .await;
    match created {
        Err(own) => error_page(&state, &own),
        Ok(Ok(_)) => Redirect::to("/my/alerts").into_response(),
        Ok(Err(status))
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ) =>
        {
            let errors = forms::violations(&status, |field| match field {
                "postcode" => Some("postcode"),
                "radius_km" => Some("distance"),
                "label" => Some("label"),
                f if f.starts_with("topics") => Some("topic"),
                _ => None,
            });
            alert_refused(&state, &signed, errors, form).await
        }
        Ok(Err(status)) => error_page(&state, &GatewayError::from(status)),
    }
}

async fn alert_refused(
    state: &AppState,
    signed: &Signed,
    errors: Vec<FieldError>,
    typed: AlertForm,
) -> Response {
    match alerts_view(state, signed, errors, typed).await {
        Ok(view) => alerts_page(state, StatusCode::BAD_REQUEST, &view),
        Err(e) => error_page(state, &e),
    }
}

#[derive(Deserialize)]
pub(crate) struct DeleteAlertForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

pub(crate) async fn delete_alert(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: Option<axum::Extension<Signed>>,
    Form(form): Form<DeleteAlertForm>,
) -> Response {
    let signed = match forms::signed_form(&state, &headers, signed, &form.csrf, "/my/alerts") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let deleted = async {
        let mut call = state.services.as_signed(&signed).await?;
        let request = call.ask(npb::DeleteAlertRequest {
            alert_id: form.id.clone(),
        });
        call.notifications.delete_alert(request).await?;
        Ok::<_, GatewayError>(())
    }
    .await;
    match deleted {
        Ok(()) => Redirect::to("/my/alerts").into_response(),
        Err(e) => error_page(&state, &e),
    }
}
