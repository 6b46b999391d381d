//! From messages to what is stored and sent: who still wants what (mutes,
//! organisers' opt-ins), the inbox items, and a delivery per email address and
//! webhook according to each person's preferences — all in the caller's
//! transaction, so an event's effects are stored together or not at all.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DbErr};

use crate::domain::messages::{Kind, Message};
use crate::domain::preferences::Channel;
use crate::store::delivery::{self, NewDelivery};
use crate::store::notification::Outgoing;
use crate::store::{erased, notification, preference, webhook};

/// The messages one event caused, about one group.
pub struct EventMessages<'a> {
    pub messages: &'a [Message],
    pub group_id: &'a str,
    pub event_id: &'a str,
}

/// Stores `messages` (caused by `event_id`, about `group_id`) and queues their
/// emails and webhook calls. People erased meanwhile get nothing. `tz` is the
/// region's, for people who did not give their own. Returns how many inbox
/// items this call stored. `now` decides when each email may go (quiet hours).
pub async fn deliver<C: ConnectionTrait>(
    conn: &C,
    names: &selfhelp_platform::privacy::Pseudonyms,
    messages: &[Message],
    group_id: &str,
    event_id: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let one = EventMessages {
        messages,
        group_id,
        event_id,
    };
    deliver_all(conn, names, &[one], tz, now).await
}

/// [`deliver`] for the messages of several events, in their order, with
/// statements covering them all.
pub async fn deliver_all<C: ConnectionTrait>(
    conn: &C,
    names: &selfhelp_platform::privacy::Pseudonyms,
    events: &[EventMessages<'_>],
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let outgoing: Vec<Outgoing> = events
        .iter()
        .flat_map(|e| {
            e.messages.iter().map(|message| Outgoing {
                message,
                group_id: e.group_id,
                event_id: e.event_id,
            })
        })
        .collect();
    if outgoing.is_empty() {
        return Ok(0);
    }
    let people = recipients(&outgoing);
    let erased = erased::among(conn, names, &people).await?;
    let settings = preference::of_people(conn, &people).await?;
    let default = preference::Held::default();
    let settings_of = |person: &str| settings.get(person).unwrap_or(&default);
    let keep: Vec<Outgoing> = outgoing
        .into_iter()
        .filter(|o| !erased.contains(&o.message.recipient_id))
        .filter(|o| {
            settings_of(&o.message.recipient_id)
                .preferences
                .wants(o.message.kind, o.group_id)
        })
        .collect();
    if keep.is_empty() {
        return Ok(0);
    }
    let now_utc = now;
    let now = now.timestamp_millis();
    // The rows as stored (a redelivered event finds the earlier ones).
    let stored = notification::insert_all(conn, &keep, now).await?;
    let kept_people = recipients(&keep);
    let mut hooks: HashMap<&str, Vec<webhook::Model>> = HashMap::new();
    let active_hooks = webhook::active_of(conn, &kept_people).await?;
    for hook in &active_hooks {
        hooks
            .entry(hook.owner_id.as_str())
            .or_default()
            .push(hook.clone());
    }
    let mut deliveries = Vec::new();
    for row in &stored {
        let Some(kind) = Kind::parse(&row.kind) else {
            continue;
        };
        let held = settings_of(&row.recipient_id);
        let prefs = &held.preferences;
        // Only to an address its owner confirmed.
        if held.confirmed_email().is_some() && prefs.wants_on(kind, Channel::Email) {
            let digest = prefs.digests(kind);
            deliveries.push(NewDelivery {
                notification_id: row.id.clone(),
                is_digest: false,
                recipient_id: row.recipient_id.clone(),
                channel: Channel::Email.as_str(),
                webhook_id: String::new(),
                status: if digest {
                    delivery::HELD_FOR_DIGEST
                } else {
                    delivery::PENDING
                },
                next_attempt_at_ms: prefs.send_at(now_utc, tz).timestamp_millis(),
                is_confirmation: false,
            });
        }
        if prefs.wants_on(kind, Channel::Webhook) {
            for hook in hooks.get(row.recipient_id.as_str()).into_iter().flatten() {
                if hook.wants(kind) {
                    deliveries.push(NewDelivery {
                        notification_id: row.id.clone(),
                        is_digest: false,
                        recipient_id: row.recipient_id.clone(),
                        channel: Channel::Webhook.as_str(),
                        webhook_id: hook.id.clone(),
                        status: delivery::PENDING,
                        next_attempt_at_ms: now,
                        is_confirmation: false,
                    });
                }
            }
        }
    }
    delivery::insert_all(conn, &deliveries, now).await?;
    Ok(keep.len())
}

/// Everyone the messages are for, each once.
fn recipients<'a>(outgoing: &[Outgoing<'a>]) -> Vec<&'a str> {
    let mut people: Vec<&str> = outgoing
        .iter()
        .map(|o| o.message.recipient_id.as_str())
        .collect();
    people.sort_unstable();
    people.dedup();
    people
}
