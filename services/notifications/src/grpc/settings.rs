//! A person's own settings: preferences, saved alerts and webhooks.

use chrono::NaiveTime;
use selfhelp_core::caller::Caller;
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::notifications::v1 as pb;

use super::{NotificationsApi, kind_from_wire, kind_to_wire};
use crate::channels::webhook::check_url;
use crate::domain::preferences::{
    ALL_CATEGORIES, Cadence, Category, Channel, Preferences, QuietHours,
};
use crate::error::ServiceError;
use crate::store::{alert, preference, webhook};
use crate::workflow::NewAlert;

const MAX_MUTED: usize = 500;
/// The role of the token the web gateway sends with `ConfirmSignInAddress`.
const ROLE_SIGNED_IN_BY_EMAIL: &str = "signed-in-by-email";
const MAX_ALERT_TOPICS: usize = 20;
const MAX_KINDS: usize = 50;

fn category_to_wire(c: Category) -> pb::Category {
    pb::Category::from_str_name(&format!("CATEGORY_{}", c.as_str()))
        .unwrap_or(pb::Category::Unspecified)
}

fn category_from_wire(c: pb::Category) -> Option<Category> {
    c.as_str_name()
        .strip_prefix("CATEGORY_")
        .and_then(Category::parse)
}

/// Every category × switchable channel, with whether it is on.
pub(super) fn to_wire(held: &preference::Held) -> pb::Preferences {
    let p = &held.preferences;
    let mut channels = Vec::new();
    for category in ALL_CATEGORIES {
        for (channel, wire) in [
            (Channel::Email, pb::Channel::Email),
            (Channel::Webhook, pb::Channel::Webhook),
        ] {
            channels.push(pb::ChannelSetting {
                category: category_to_wire(category).into(),
                channel: wire.into(),
                enabled: p.channel_on(category, channel),
            });
        }
    }
    pb::Preferences {
        email: held.email.clone(),
        channels,
        cadence: match p.cadence {
            Cadence::Immediate => pb::Cadence::Immediate,
            Cadence::DailyDigest => pb::Cadence::DailyDigest,
            Cadence::WeeklyDigest => pb::Cadence::WeeklyDigest,
        }
        .into(),
        quiet_hours: p.quiet_hours.map(|q| pb::QuietHours {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
        }),
        time_zone: p.time_zone.clone(),
        muted_group_ids: p.muted_groups.clone(),
        member_joined: p.member_joined,
        member_left: p.member_left,
        email_confirmed: held.confirmed_email().is_some(),
    }
}

/// Checks the wire form; the preferences it stands for, or what is wrong.
fn from_wire(wire: pb::Preferences) -> Result<preference::Held, ServiceError> {
    let mut v = Violations::new();
    let email = wire.email.trim().to_string();
    if !email.is_empty() {
        v.line("email", &email, false, 254);
        if email.parse::<lettre::Address>().is_err() {
            v.add("email", "is not an email address");
        }
    }
    let mut off = Vec::new();
    for (i, setting) in wire.channels.iter().enumerate() {
        let category = pb::Category::try_from(setting.category)
            .ok()
            .and_then(category_from_wire);
        if category.is_none() {
            v.add(format!("channels[{i}].category"), "choose a category");
        }
        let channel = match pb::Channel::try_from(setting.channel) {
            Ok(pb::Channel::Email) => Some(Channel::Email),
            Ok(pb::Channel::Webhook) => Some(Channel::Webhook),
            Ok(pb::Channel::InApp) => {
                v.add(
                    format!("channels[{i}].channel"),
                    "the in-app inbox cannot be turned off",
                );
                None
            }
            _ => {
                v.add(format!("channels[{i}].channel"), "choose EMAIL or WEBHOOK");
                None
            }
        };
        if let (Some(category), Some(channel), false) = (category, channel, setting.enabled)
            && !off.contains(&(category, channel))
        {
            off.push((category, channel));
        }
    }
    let cadence = match pb::Cadence::try_from(wire.cadence) {
        Ok(pb::Cadence::Unspecified | pb::Cadence::Immediate) => Cadence::Immediate,
        Ok(pb::Cadence::DailyDigest) => Cadence::DailyDigest,
        Ok(pb::Cadence::WeeklyDigest) => Cadence::WeeklyDigest,
        Err(_) => {
            v.add("cadence", "unknown cadence");
            Cadence::Immediate
        }
    };
    let time = |v: &mut Violations, field: &str, value: &str| {
        let parsed = NaiveTime::parse_from_str(value.trim(), "%H:%M").ok();
        if parsed.is_none() {
            v.add(field, "give a local time such as 22:00");
        }
        parsed
    };
    let quiet_hours = match wire.quiet_hours {
        None => None,
        Some(q) if q.start.is_empty() && q.end.is_empty() => None,
        Some(q) => {
            let start = time(&mut v, "quiet_hours.start", &q.start);
            let end = time(&mut v, "quiet_hours.end", &q.end);
            match (start, end) {
                (Some(start), Some(end)) if start == end => {
                    v.add("quiet_hours.end", "must differ from start");
                    None
                }
                (Some(start), Some(end)) => Some(QuietHours { start, end }),
                _ => None,
            }
        }
    };
    let time_zone = wire.time_zone.trim().to_string();
    if !time_zone.is_empty() && time_zone.parse::<chrono_tz::Tz>().is_err() {
        v.add(
            "time_zone",
            "is not an IANA time zone such as Europe/London",
        );
    }
    if wire.muted_group_ids.len() > MAX_MUTED {
        v.add("muted_group_ids", format!("at most {MAX_MUTED}"));
    }
    let mut muted_groups = Vec::new();
    for (i, id) in wire.muted_group_ids.iter().enumerate() {
        if let Some(id) = v.uuid(&format!("muted_group_ids[{i}]"), id) {
            muted_groups.push(id.to_string());
        }
    }
    muted_groups.sort();
    muted_groups.dedup();
    v.into_result()?;
    Ok(preference::Held {
        email,
        // Decided against what is stored (`Workflow::set_preferences`).
        email_confirmed_at_ms: None,
        preferences: Preferences {
            off,
            cadence,
            quiet_hours,
            time_zone,
            muted_groups,
            member_joined: wire.member_joined,
            member_left: wire.member_left,
        },
    })
}

fn alert_to_wire(a: &alert::Model) -> pb::Alert {
    pb::Alert {
        id: a.id.clone(),
        topics: a.topics(),
        latitude: a.latitude,
        longitude: a.longitude,
        radius_km: a.radius_km,
        label: a.label.clone(),
        created_at: Some(to_timestamp(a.created_at_ms)),
        postcode: a.postcode.clone(),
        include_online: a.include_online,
    }
}

fn webhook_to_wire(h: &webhook::Model) -> pb::Webhook {
    pb::Webhook {
        id: h.id.clone(),
        url: h.url.clone(),
        kinds: h
            .kinds()
            .into_iter()
            .map(|k| kind_to_wire(k).into())
            .collect(),
        active: h.active,
        disabled_reason: h.disabled_reason.clone(),
        created_at: Some(to_timestamp(h.created_at_ms)),
    }
}

impl NotificationsApi {
    pub(super) async fn preferences_of(
        &self,
        caller: &Caller,
    ) -> Result<pb::Preferences, ServiceError> {
        Ok(to_wire(
            &preference::get(&self.db, &caller.person_id).await?,
        ))
    }

    pub(super) async fn update_preferences_of(
        &self,
        caller: &Caller,
        req: pb::UpdatePreferencesRequest,
    ) -> Result<pb::Preferences, ServiceError> {
        let Some(wire) = req.preferences else {
            let mut v = Violations::new();
            v.add("preferences", "required");
            return Err(v.into());
        };
        let wanted = from_wire(wire)?;
        let held = self
            .workflow
            .set_preferences(&caller.person_id, &wanted)
            .await?;
        Ok(to_wire(&held))
    }

    pub(super) async fn confirm_sign_in_address_of(
        &self,
        caller: &Caller,
        req: pb::ConfirmSignInAddressRequest,
    ) -> Result<pb::Preferences, ServiceError> {
        // Only the web gateway, just after the person signed in by a link to
        // this address, vouches for it like this.
        if !caller.has_role(ROLE_SIGNED_IN_BY_EMAIL) {
            return Err(ServiceError::PermissionDenied(
                "only a sign-in by email confirms an address this way",
            ));
        }
        let email = req.email.trim().to_lowercase();
        let mut v = Violations::new();
        v.line("email", &email, true, 254);
        if !email.is_empty() && email.parse::<lettre::Address>().is_err() {
            v.add("email", "is not an email address");
        }
        v.into_result()?;
        let held = self
            .workflow
            .confirm_sign_in_address(&caller.person_id, &email)
            .await?;
        Ok(to_wire(&held))
    }

    pub(super) async fn create_alert_for(
        &self,
        caller: &Caller,
        req: pb::CreateAlertRequest,
    ) -> Result<pb::Alert, ServiceError> {
        let mut v = Violations::new();
        let postcode = req.postcode.trim();
        let has_point = req.latitude != 0.0 || req.longitude != 0.0;
        if !(-90.0..=90.0).contains(&req.latitude) {
            v.add("latitude", "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&req.longitude) {
            v.add("longitude", "must be between -180 and 180");
        }
        v.line("postcode", postcode, false, 10);
        let centre = match (postcode.is_empty(), has_point) {
            (false, true) => {
                v.add("postcode", "give a postcode or a point, not both");
                None
            }
            (false, false) => {
                let found = self.postcodes.lookup(postcode);
                if found.is_none() {
                    v.add(
                        "postcode",
                        "is not a postcode we know: give a full UK postcode such as NG1 5FS, or its first part such as NG1",
                    );
                }
                found
            }
            (true, true) => Some((req.latitude, req.longitude)),
            (true, false) => None,
        };
        let area_given = !postcode.is_empty() || has_point;
        if area_given && !(1.0..=200.0).contains(&req.radius_km) {
            v.add("radius_km", "must be between 1 and 200");
        }
        if !area_given && req.radius_km != 0.0 {
            v.add(
                "radius_km",
                "needs a postcode or a point to be a distance from",
            );
        }
        if req.topics.len() > MAX_ALERT_TOPICS {
            v.add("topics", format!("at most {MAX_ALERT_TOPICS}"));
        }
        let mut topics = Vec::new();
        for (i, topic) in req.topics.iter().enumerate() {
            let topic = topic.trim();
            let code_like = !topic.is_empty()
                && topic.len() <= 64
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if code_like {
                topics.push(topic.to_string());
            } else {
                v.add(
                    format!("topics[{i}]"),
                    "give a topic code such as bereavement",
                );
            }
        }
        topics.sort();
        topics.dedup();
        v.line("label", &req.label, false, 60);
        v.into_result()?;
        let new = NewAlert {
            topics,
            area: centre.map(|c| (c, req.radius_km)),
            postcode: if postcode.is_empty() {
                String::new()
            } else {
                selfhelp_core::postcode::normalise(postcode)
                    .unwrap_or_else(|| postcode.to_ascii_uppercase())
            },
            include_online: req.include_online,
            label: req.label.trim().to_string(),
        };
        let row = self.workflow.add_alert(&caller.person_id, new).await?;
        Ok(alert_to_wire(&row))
    }

    pub(super) async fn alerts_of(
        &self,
        caller: &Caller,
    ) -> Result<pb::ListAlertsResponse, ServiceError> {
        let alerts = alert::of_person(&self.db, &caller.person_id).await?;
        Ok(pb::ListAlertsResponse {
            alerts: alerts.iter().map(alert_to_wire).collect(),
        })
    }

    pub(super) async fn delete_alert_of(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ServiceError> {
        let mut v = Violations::new();
        let id = v.uuid("alert_id", id);
        v.into_result()?;
        let id = id.map(|u| u.to_string()).unwrap_or_default();
        // Someone else's alert is indistinguishable from a missing one.
        if alert::delete_own(&self.db, &caller.person_id, &id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("alert not found"))
        }
    }

    pub(super) async fn register_webhook_for(
        &self,
        caller: &Caller,
        req: pb::RegisterWebhookRequest,
    ) -> Result<pb::RegisterWebhookResponse, ServiceError> {
        let mut v = Violations::new();
        let url = req.url.trim();
        v.line("url", url, true, 2_000);
        if !url.is_empty()
            && let Err(why) = check_url(
                url,
                self.webhooks.allow_private_addresses,
                &self.webhooks.allowed_ports,
            )
        {
            v.add("url", why);
        }
        if req.kinds.len() > MAX_KINDS {
            v.add("kinds", format!("at most {MAX_KINDS}"));
        }
        let mut kinds = Vec::new();
        for (i, k) in req.kinds.iter().enumerate() {
            match pb::NotificationKind::try_from(*k)
                .ok()
                .and_then(kind_from_wire)
            {
                Some(kind) => kinds.push(kind.as_str()),
                None => v.add(format!("kinds[{i}]"), "unknown notification kind"),
            }
        }
        kinds.sort();
        kinds.dedup();
        v.into_result()?;
        let (row, secret) = self
            .workflow
            .add_webhook(&caller.person_id, url, &kinds, self.webhooks.max_per_owner)
            .await?;
        Ok(pb::RegisterWebhookResponse {
            webhook: Some(webhook_to_wire(&row)),
            secret,
        })
    }

    pub(super) async fn webhooks_of(
        &self,
        caller: &Caller,
    ) -> Result<pb::ListWebhooksResponse, ServiceError> {
        let hooks = webhook::of_owner(&self.db, &caller.person_id).await?;
        Ok(pb::ListWebhooksResponse {
            webhooks: hooks.iter().map(webhook_to_wire).collect(),
        })
    }

    pub(super) async fn delete_webhook_of(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ServiceError> {
        let mut v = Violations::new();
        let id = v.uuid("webhook_id", id);
        v.into_result()?;
        let id = id.map(|u| u.to_string()).unwrap_or_default();
        let owned = webhook::find(&self.db, &id)
            .await?
            .filter(|h| h.owner_id == caller.person_id);
        if owned.is_none() {
            return Err(ServiceError::NotFound("webhook not found"));
        }
        self.workflow.remove_webhook(&id).await
    }
}
