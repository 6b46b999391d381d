//! The dispatcher: on every replica, claims due deliveries from the log, sends
//! each by email or webhook, and records the outcome — sent, retry later with
//! exponential backoff, failed (replayable by an operator), or cancelled.
//! A webhook that answers 410 Gone or keeps failing is turned off and its
//! owner told.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use selfhelp_core::time::Clock;
use selfhelp_group_view as group_view;
use serde_json::json;

use crate::channels::email::{Item, Mailer, Rendered, Templates};
use crate::channels::webhook::{Posted, WebhookSender};
use crate::config::DeliveryConfig;
use crate::domain::messages::{self, Kind};
use crate::domain::preferences::Channel;
use crate::links::{CONFIRM_VALID_MS, LinkKey, Scope};
use crate::metrics::metrics;
use crate::routing;
use crate::store::delivery::{self, Outcome};
use crate::store::{digest, notification, preference, webhook};

/// Deliveries claimed and sent together by one replica. Claims are taken this
/// many at a time, so none waits out its lease behind others.
const IN_FLIGHT: usize = 8;

pub struct Dispatcher {
    pub db: DatabaseConnection,
    pub mailer: Arc<Mailer>,
    pub templates: Arc<Templates>,
    pub webhooks: WebhookSender,
    /// Signs the links in emails (unsubscribe, confirm an address).
    pub links: LinkKey,
    pub config: DeliveryConfig,
    pub region: String,
    /// The region's zone, for people who set none.
    pub timezone: Tz,
    /// How erased people are recorded.
    pub names: selfhelp_platform::privacy::Pseudonyms,
    /// Decides what is due (quiet hours, retries).
    pub clock: Clock,
}

/// How one attempt went, before retries are counted.
enum Attempt {
    Done,
    /// Worth trying again later.
    Retry(String),
    /// Will not work however often it is tried.
    GiveUp(String),
    /// The webhook endpoint said it is gone (410).
    Gone,
    /// Nothing to send any more (erased, turned off, endpoint removed).
    Cancel(String),
    /// Not now: quiet hours began since it was queued.
    Later(i64),
}

impl Dispatcher {
    /// One look: claims what is due and sends it, up to [`IN_FLIGHT`] at once,
    /// claiming more as each send ends (up to `delivery.batch` a round). A
    /// slow receiver holds only the places its own calls take: while any call
    /// is still open, the round goes on claiming what falls due for the
    /// others, and ends once nothing is open and nothing more may be claimed.
    /// Returns how many were tried.
    pub async fn round(self: &Arc<Self>) -> Result<usize, DbErr> {
        let lease_ms = (self.config.lease_secs * 1_000) as i64;
        let claim = uuid::Uuid::now_v7().to_string();
        let pause = Duration::from_millis(self.config.interval_ms.max(1));
        let mut tried = 0;
        // Each send a task of its own, so that sends go on (and finish their
        // writes) while this claims more.
        let mut sends = tokio::task::JoinSet::new();
        loop {
            let room = IN_FLIGHT - sends.len();
            if room > 0 && ((tried as u64) < self.config.batch || !sends.is_empty()) {
                let due = delivery::claim_due(
                    &self.db,
                    &claim,
                    self.clock.now_ms(),
                    lease_ms,
                    room as u64,
                )
                .await?;
                tried += due.len();
                for d in due {
                    let me = self.clone();
                    sends.spawn(async move { me.deliver(d).await });
                }
            }
            if sends.is_empty() {
                break;
            }
            // The next send to end, or, while all that are open take their
            // time, a look for more that has fallen due.
            tokio::select! {
                Some(ended) = sends.join_next() => match ended {
                    Ok(Ok(())) => {}
                    // The claim lapses and another round retries it.
                    Ok(Err(e)) => tracing::warn!(error = %e, "recording a delivery failed"),
                    Err(e) => tracing::error!(error = %e, "a delivery's task failed"),
                },
                _ = tokio::time::sleep(pause) => {}
            }
        }
        Ok(tried)
    }

    async fn deliver(&self, d: delivery::Model) -> Result<(), DbErr> {
        let attempts = d.attempts + 1;
        let channel = Channel::parse(&d.channel);
        let attempt = match channel {
            Some(Channel::Email) => self.email(&d).await?,
            Some(Channel::Webhook) => self.webhook(&d).await?,
            None => Attempt::Cancel(format!("unknown channel {}", d.channel)),
        };
        let now = self.clock.now_ms();
        let (outcome, disable_because) = match attempt {
            Attempt::Later(at_ms) => (Outcome::Later { at_ms }, None),
            Attempt::Done => (Outcome::Sent, None),
            Attempt::Cancel(why) => (Outcome::Cancelled { why }, None),
            Attempt::Retry(error) if attempts < self.config.max_attempts => (
                Outcome::RetryAt {
                    at_ms: now + self.backoff_ms(attempts),
                    error,
                },
                None,
            ),
            Attempt::Retry(error) => {
                let why = format!("it failed {attempts} times in a row (last: {error})");
                (Outcome::Failed { error }, Some(why))
            }
            Attempt::GiveUp(error) => (Outcome::Failed { error }, None),
            Attempt::Gone => (
                Outcome::Failed {
                    error: "HTTP 410 Gone".into(),
                },
                Some("it answered 410 Gone".to_string()),
            ),
        };
        match &outcome {
            Outcome::Sent => tracing::debug!(delivery = %d.id, channel = %d.channel, "delivered"),
            Outcome::Failed { error } => {
                tracing::warn!(delivery = %d.id, channel = %d.channel, attempts, %error, "delivery failed")
            }
            _ => {}
        }
        // A postponement is not an attempt.
        let attempts = if matches!(outcome, Outcome::Later { .. }) {
            d.attempts
        } else {
            attempts
        };
        let txn = self.db.begin().await?;
        if !delivery::record(&txn, &d.id, &d.claimed_by, attempts, &outcome, now).await? {
            tracing::warn!(delivery = %d.id, "claim lapsed while sending; another dispatcher took it over");
            return Ok(());
        }
        let turned_off = match disable_because {
            Some(why) if channel == Some(Channel::Webhook) => {
                self.disable_webhook(&txn, &d.webhook_id, &why).await?
            }
            _ => false,
        };
        txn.commit().await?;
        let counted = metrics();
        counted.delivery(&d, outcome_name(&outcome));
        if turned_off {
            counted.webhook_turned_off();
        }
        Ok(())
    }

    /// `retry_base_ms` × 2^(attempts − 1), at most `retry_max_ms`, plus up to a
    /// tenth more so endpoints coming back are not hit all at once.
    fn backoff_ms(&self, attempts: i32) -> i64 {
        let backoff = selfhelp_core::time::Backoff::new(
            Duration::from_millis(self.config.retry_base_ms),
            Duration::from_millis(self.config.retry_max_ms),
        );
        let wait = backoff
            .after(u32::try_from(attempts).unwrap_or(0))
            .as_millis() as u64;
        let jitter = rand::random_range(0..=wait / 10);
        (wait + jitter) as i64
    }

    /// Turns the webhook off and tells its owner; `false` when it already was.
    async fn disable_webhook(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        webhook_id: &str,
        why: &str,
    ) -> Result<bool, DbErr> {
        let Some(hook) = webhook::find(txn, webhook_id).await? else {
            return Ok(false);
        };
        if !webhook::disable(txn, webhook_id, why).await? {
            return Ok(false); // already off: the owner was told then
        }
        // What still waits fails with it: replayable once the endpoint works.
        let now = self.clock.now_ms();
        delivery::end_for_webhook(txn, webhook_id, delivery::FAILED, "webhook turned off", now)
            .await?;
        tracing::warn!(webhook = %webhook_id, reason = why, "webhook turned off");
        let notice = messages::webhook_disabled(&hook.owner_id, &without_query(&hook.url), why);
        // Once per turning off (a replay may turn it on, and it may go off again).
        routing::deliver(
            txn,
            &self.names,
            &[notice],
            "",
            &format!("webhook-disabled:{webhook_id}:{now}"),
            self.timezone,
            self.clock.now(),
        )
        .await?;
        Ok(true)
    }

    async fn email(&self, d: &delivery::Model) -> Result<Attempt, DbErr> {
        let held = preference::get(&self.db, &d.recipient_id).await?;
        if held.email.is_empty() {
            return Ok(Attempt::Cancel("no email address any more".into()));
        }
        let tz = held.preferences.tz(self.timezone);
        if d.is_confirmation {
            return self.confirmation(d, &held, tz).await;
        }
        // Queued before the address changed: the new one is not confirmed.
        if held.confirmed_email().is_none() {
            return Ok(Attempt::Cancel("email address not confirmed".into()));
        }
        // Quiet hours may have begun since it was queued (or a retry fell in them).
        let now = self.clock.now();
        let due = held.preferences.send_at(now, self.timezone);
        if due > now {
            return Ok(Attempt::Later(due.timestamp_millis()));
        }
        let (rendered, scope) = if d.is_digest {
            let Some(digest) = digest::find(&self.db, &d.notification_id).await? else {
                return Ok(Attempt::Cancel("digest no longer held".into()));
            };
            let items = delivery::in_digest(&self.db, &digest.id).await?;
            let ids: Vec<String> = items.into_iter().map(|i| i.notification_id).collect();
            let rows = notification::find_many(&self.db, &ids).await?;
            if rows.is_empty() {
                return Ok(Attempt::Cancel("nothing left to send".into()));
            }
            let mut names: HashMap<String, String> = HashMap::new();
            let mut items = Vec::new();
            for row in rows {
                // Settings may have changed while it waited (a category turned
                // off, the group muted).
                let Some(kind) = Kind::parse(&row.kind) else {
                    continue;
                };
                let prefs = &held.preferences;
                if !prefs.wants_on(kind, Channel::Email) || !prefs.wants(kind, &row.group_id) {
                    continue;
                }
                if !names.contains_key(&row.group_id)
                    && let Some(group) = group_view::find(&self.db, &row.group_id).await?
                {
                    names.insert(row.group_id.clone(), group.name);
                }
                items.push(Item {
                    kind,
                    title: row.title,
                    body: row.body,
                    when: local_time(row.created_at_ms, tz),
                });
            }
            if items.is_empty() {
                return Ok(Attempt::Cancel("nothing in it is wanted any more".into()));
            }
            let cadence = digest.period.split(':').next().unwrap_or("daily");
            let names: Vec<String> = names
                .into_values()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let url = self.links.url(&d.recipient_id, Scope::AllEmail);
            match self
                .templates
                .digest(&self.region, cadence, &items, &names, &url)
            {
                Ok(r) => (r, Scope::AllEmail),
                Err(e) => return Ok(Attempt::GiveUp(format!("{e:#}"))),
            }
        } else {
            let Some(row) = notification::find(&self.db, &d.notification_id).await? else {
                return Ok(Attempt::Cancel("notification no longer held".into()));
            };
            let Some(kind) = Kind::parse(&row.kind) else {
                return Ok(Attempt::Cancel(format!("unknown kind {}", row.kind)));
            };
            // Settings may have changed since it was queued (an unsubscribe link).
            if !held.preferences.wants_on(kind, Channel::Email) {
                return Ok(Attempt::Cancel("email turned off for this category".into()));
            }
            let group_name = group_view::find(&self.db, &row.group_id)
                .await?
                .map(|g| g.name)
                .unwrap_or_default();
            let scope = kind.category().map_or(Scope::AllEmail, Scope::Category);
            let url = self.links.url(&d.recipient_id, scope);
            let item = Item {
                kind,
                title: row.title,
                body: row.body,
                when: local_time(row.created_at_ms, tz),
            };
            match self
                .templates
                .notification(&self.region, &item, &group_name, &url)
            {
                Ok(r) => (r, scope),
                Err(e) => return Ok(Attempt::GiveUp(format!("{e:#}"))),
            }
        };
        let url = self.links.url(&d.recipient_id, scope);
        Ok(self.send(&held.email, &rendered, &url).await)
    }

    /// The link that confirms the person's address — at once (they are
    /// waiting for it, quiet hours or not), and only while it is unconfirmed.
    async fn confirmation(
        &self,
        d: &delivery::Model,
        held: &preference::Held,
        tz: Tz,
    ) -> Result<Attempt, DbErr> {
        if held.confirmed_email().is_some() {
            return Ok(Attempt::Cancel("email address already confirmed".into()));
        }
        let expires = self.clock.now_ms() + CONFIRM_VALID_MS;
        let confirm_url = self
            .links
            .confirm_url(&d.recipient_id, &held.email, expires);
        let unsubscribe_url = self.links.url(&d.recipient_id, Scope::AllEmail);
        let rendered = match self.templates.confirmation(
            &self.region,
            &confirm_url,
            &local_time(expires, tz),
            &unsubscribe_url,
        ) {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::GiveUp(format!("{e:#}"))),
        };
        Ok(self.send(&held.email, &rendered, &unsubscribe_url).await)
    }

    async fn send(&self, to: &str, rendered: &Rendered, unsubscribe_url: &str) -> Attempt {
        // Servers quote the address in errors; the log keeps it out.
        let redact = |m: String| m.replace(to, "<recipient>");
        match self.mailer.send(to, rendered, unsubscribe_url).await {
            Ok(()) => Attempt::Done,
            Err(e) if e.permanent => Attempt::GiveUp(redact(e.message)),
            Err(e) => Attempt::Retry(redact(e.message)),
        }
    }

    async fn webhook(&self, d: &delivery::Model) -> Result<Attempt, DbErr> {
        let Some(hook) = webhook::find(&self.db, &d.webhook_id).await? else {
            return Ok(Attempt::Cancel("webhook removed".into()));
        };
        if !hook.active {
            // Fails, like what waited when it was turned off: replayable.
            return Ok(Attempt::GiveUp("webhook turned off".into()));
        }
        let Some(row) = notification::find(&self.db, &d.notification_id).await? else {
            return Ok(Attempt::Cancel("notification no longer held".into()));
        };
        // The wall clock: receivers check the signed timestamp against theirs.
        let now = Utc::now();
        let payload = json!({
            "type": format!("notification.{}", row.kind.to_ascii_lowercase()),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {
                "id": row.id,
                "kind": row.kind,
                "title": row.title,
                "body": row.body,
                "group_id": row.group_id,
                "created_at": DateTime::<Utc>::from_timestamp_millis(row.created_at_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            }
        });
        let body = serde_json::to_vec(&payload).expect("JSON serialises");
        // The delivery id is the message id: the same on every retry, so
        // receivers can drop repeats.
        Ok(
            match self
                .webhooks
                .post(
                    &hook.owner_id,
                    &hook.url,
                    &hook.secret,
                    &d.id,
                    now.timestamp(),
                    body,
                )
                .await
            {
                Posted::Accepted => Attempt::Done,
                Posted::Gone => Attempt::Gone,
                Posted::Failed(e) => Attempt::Retry(e),
                // Not an attempt: the owner's other calls are still going.
                Posted::Busy => Attempt::Later(self.clock.now_ms() + 1_000),
            },
        )
    }
}

/// The `outcome` label of `selfhelp_deliveries_total`.
fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent => "sent",
        Outcome::RetryAt { .. } => "retry",
        Outcome::Failed { .. } => "failed",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::Later { .. } => "postponed",
    }
}

fn local_time(ms: i64, tz: Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%a %-d %b, %H:%M").to_string())
        .unwrap_or_default()
}

/// `url` without credentials, query and fragment, which may hold the
/// receiver's secrets.
fn without_query(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}
