//! The application layer of notifications for what people change themselves:
//! each change in one transaction, with the per-person caps checked inside it.
//! The RPCs call it after validating the request and deciding whether the
//! caller may make the change; events are handled in `events` and `routing`,
//! deliveries in `dispatch` and `digests`.

use sea_orm::{DatabaseConnection, TransactionTrait};
use selfhelp_core::time::Clock;

use crate::channels::webhook::generate_secret;
use crate::domain::preferences::Channel;
use crate::error::ServiceError;
use crate::links::{self, Confirmation, Scope};
use crate::store::delivery::NewDelivery;
use crate::store::{alert, delivery, erased, preference, webhook};
use selfhelp_platform::privacy::Pseudonyms;

/// Saved alerts one person may keep.
pub const MAX_ALERTS: u64 = 20;

/// Confirmation emails one person may have sent in a day: enough for typos,
/// too few to use us against someone else's inbox.
pub const MAX_CONFIRMATIONS_PER_DAY: usize = 5;
/// Saving an unconfirmed address again sends a new link after this long.
pub const CONFIRMATION_RESEND_AFTER_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// What a confirmation link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    Now,
    Already,
    Expired,
    /// The person's address is another one now (or none).
    NotTheAddress,
    /// The person was erased: nothing may be stored for them again.
    Erased,
}

/// Addresses differing only in case are one address (mail servers treat
/// them so in practice).
fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[derive(Clone)]
pub struct Workflow {
    pub db: DatabaseConnection,
    pub clock: Clock,
}

/// A saved alert as asked for, checked.
pub struct NewAlert {
    pub topics: Vec<String>,
    /// Centre and radius (km); none for anywhere in the region.
    pub area: Option<((f64, f64), f64)>,
    /// The postcode the area was given by, normalised (empty for none).
    pub postcode: String,
    pub include_online: bool,
    pub label: String,
}

impl Workflow {
    /// Stores `person`'s preferences as `wanted` says and returns them as
    /// stored. A new email address starts unconfirmed, gets a confirmation
    /// link and nothing else; what waited for the old address is cancelled.
    /// Saving an unconfirmed address again sends a new link (at most once an
    /// hour). A new address beyond the day's confirmation emails is refused.
    /// `person` has just signed in with a link sent to `email`: the address is
    /// theirs. With no address yet, or this one unconfirmed, it becomes their
    /// confirmed address; another address they chose is kept as it is.
    pub async fn confirm_sign_in_address(
        &self,
        person: &str,
        email: &str,
    ) -> Result<preference::Held, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("preferences:{person}")).await?;
        let mut held = preference::get(&txn, person).await?;
        let theirs = held.email.is_empty() || same_address(&held.email, email);
        if theirs && held.email_confirmed_at_ms.is_none() {
            held.email = email.to_string();
            held.email_confirmed_at_ms = Some(now);
            preference::put(&txn, person, &held, now).await?;
        }
        txn.commit().await?;
        Ok(held)
    }

    pub async fn set_preferences(
        &self,
        person: &str,
        wanted: &preference::Held,
    ) -> Result<preference::Held, ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        // One change at a time per person, so the confirmations' cap counts right.
        selfhelp_platform::db::take_turns(&txn, &format!("preferences:{person}")).await?;
        let before = preference::get(&txn, person).await?;
        let mut held = wanted.clone();
        let kept = !held.email.is_empty() && same_address(&before.email, &held.email);
        held.email_confirmed_at_ms = if kept {
            before.email_confirmed_at_ms
        } else {
            None
        };
        if held.email.is_empty() {
            delivery::cancel_emails_for(&txn, person, "email address removed", now).await?;
        } else if !kept && !before.email.is_empty() {
            delivery::cancel_emails_for(&txn, person, "email address changed", now).await?;
        }
        if !held.email.is_empty() && held.email_confirmed_at_ms.is_none() {
            let sent = delivery::confirmations_since(&txn, person, now - DAY_MS).await?;
            let recent = sent
                .first()
                .is_some_and(|at| now - at < CONFIRMATION_RESEND_AFTER_MS);
            if !kept && sent.len() >= MAX_CONFIRMATIONS_PER_DAY {
                return Err(ServiceError::Exhausted(format!(
                    "{MAX_CONFIRMATIONS_PER_DAY} confirmation emails went out for you today; try a new address tomorrow"
                )));
            }
            // A new address always gets its link; the same one again only
            // when the last link is an hour old and the day's cap allows.
            if !kept || (!recent && sent.len() < MAX_CONFIRMATIONS_PER_DAY) {
                let email = NewDelivery {
                    notification_id: uuid::Uuid::now_v7().to_string(),
                    is_digest: false,
                    recipient_id: person.to_string(),
                    channel: Channel::Email.as_str(),
                    webhook_id: String::new(),
                    status: delivery::PENDING,
                    next_attempt_at_ms: now,
                    is_confirmation: true,
                };
                delivery::insert_all(&txn, &[email], now).await?;
            }
        }
        preference::put(&txn, person, &held, now).await?;
        txn.commit().await?;
        Ok(held)
    }

    /// Confirms the address a confirmation link names, when it is still
    /// `link.person`'s address and the link has not expired.
    pub async fn confirm_email(
        &self,
        names: &Pseudonyms,
        link: &Confirmation,
    ) -> Result<Confirmed, ServiceError> {
        let now = self.clock.now_ms();
        if now > link.expires_at_ms {
            return Ok(Confirmed::Expired);
        }
        let txn = self.db.begin().await?;
        if erased::contains(&txn, names, &link.person).await? {
            return Ok(Confirmed::Erased);
        }
        let mut held = preference::get(&txn, &link.person).await?;
        if held.email.is_empty() || links::address_digest(&held.email) != link.address {
            return Ok(Confirmed::NotTheAddress);
        }
        if held.email_confirmed_at_ms.is_some() {
            return Ok(Confirmed::Already);
        }
        held.email_confirmed_at_ms = Some(now);
        preference::put(&txn, &link.person, &held, now).await?;
        txn.commit().await?;
        tracing::info!("an email address was confirmed");
        Ok(Confirmed::Now)
    }

    /// Saves an alert for `person`, at most [`MAX_ALERTS`] of them.
    pub async fn add_alert(
        &self,
        person: &str,
        new: NewAlert,
    ) -> Result<alert::Model, ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("alerts:{person}")).await?;
        if alert::count_of(&txn, person).await? >= MAX_ALERTS {
            return Err(ServiceError::FailedPrecondition(format!(
                "you have {MAX_ALERTS} alerts already; delete one first"
            )));
        }
        let row = alert::Model {
            id: uuid::Uuid::now_v7().to_string(),
            person_id: person.to_string(),
            topics: new.topics.join(","),
            latitude: new.area.map_or(0.0, |((lat, _), _)| lat),
            longitude: new.area.map_or(0.0, |((_, lon), _)| lon),
            radius_km: new.area.map_or(0.0, |(_, r)| r),
            label: new.label,
            created_at_ms: self.clock.now_ms(),
            postcode: new.postcode,
            include_online: new.include_online,
        };
        alert::insert(&txn, row.clone()).await?;
        txn.commit().await?;
        Ok(row)
    }

    /// Registers a webhook of `owner` (at most `max_per_owner`); returns it
    /// with its new signing secret.
    pub async fn add_webhook(
        &self,
        owner: &str,
        url: &str,
        kinds: &[&str],
        max_per_owner: u32,
    ) -> Result<(webhook::Model, String), ServiceError> {
        let txn = self.db.begin().await?;
        selfhelp_platform::db::take_turns(&txn, &format!("webhooks:{owner}")).await?;
        let held = webhook::of_owner(&txn, owner).await?;
        if held.len() >= max_per_owner as usize {
            return Err(ServiceError::FailedPrecondition(format!(
                "you have {} webhooks already; delete one first",
                held.len()
            )));
        }
        let secret = generate_secret();
        let row = webhook::Model {
            id: uuid::Uuid::now_v7().to_string(),
            owner_id: owner.to_string(),
            url: url.to_string(),
            secret: secret.clone(),
            kinds: kinds.join(","),
            active: true,
            disabled_reason: String::new(),
            created_at_ms: self.clock.now_ms(),
        };
        webhook::insert(&txn, row.clone()).await?;
        txn.commit().await?;
        Ok((row, secret))
    }

    /// Removes webhook `id`; what still waits for it is cancelled.
    pub async fn remove_webhook(&self, id: &str) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        let now = self.clock.now_ms();
        delivery::end_for_webhook(&txn, id, delivery::CANCELLED, "webhook removed", now).await?;
        webhook::delete(&txn, id).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Turns email off for what an unsubscribe link names (nothing for
    /// someone erased: an old email's link must not store them again).
    pub async fn unsubscribe(
        &self,
        names: &Pseudonyms,
        person: &str,
        scope: Scope,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        if erased::contains(&txn, names, person).await? {
            return Ok(());
        }
        let mut held = preference::get(&txn, person).await?;
        held.preferences
            .turn_off(&scope.categories(), Channel::Email);
        preference::put(&txn, person, &held, now).await?;
        if scope == Scope::AllEmail {
            delivery::cancel_emails_for(&txn, person, "unsubscribed", now).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Sends failed delivery `row` again now. Its webhook, turned off by these
    /// failures, comes back on: replaying says the endpoint works again.
    pub async fn replay(&self, row: &delivery::Model) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if !delivery::replay(&txn, &row.id, self.clock.now_ms()).await? {
            return Err(ServiceError::FailedPrecondition(
                "it was replayed meanwhile".into(),
            ));
        }
        if !row.webhook_id.is_empty() {
            webhook::enable(&txn, &row.webhook_id).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
