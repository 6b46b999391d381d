//! Digests: on every replica, now and then, gathers each person's held emails
//! into one digest per period. The digest row's unique (person, period) key
//! makes exactly one replica win; a digest is only made when something waits.

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use selfhelp_core::time::Clock;

use crate::config::DigestConfig;
use crate::domain::digest::{DigestTimes, latest_period};
use crate::domain::preferences::{Cadence, Channel};
use crate::store::delivery::{self, NewDelivery};
use crate::store::{digest, erased, preference};

/// Items in one digest; more wait for the next (the oldest go first).
const MAX_ITEMS: u64 = 200;

pub struct Digests {
    pub db: DatabaseConnection,
    pub times: DigestTimes,
    /// The region's zone, for people who set none.
    pub timezone: Tz,
    /// How erased people are recorded.
    pub names: selfhelp_platform::privacy::Pseudonyms,
    /// Decides which period is due.
    pub clock: Clock,
}

impl Digests {
    pub fn new(
        cfg: &DigestConfig,
        db: DatabaseConnection,
        timezone: Tz,
        names: selfhelp_platform::privacy::Pseudonyms,
        clock: Clock,
    ) -> anyhow::Result<Digests> {
        let send_at = NaiveTime::parse_from_str(&cfg.send_at, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(&cfg.send_at, "%H:%M:%S"))
            .map_err(|_| {
                anyhow::anyhow!(
                    "digests.send_at {:?} is not a time such as 08:00",
                    cfg.send_at
                )
            })?;
        let weekday: Weekday = cfg.weekly_on.parse().map_err(|_| {
            anyhow::anyhow!(
                "digests.weekly_on {:?} is not a weekday such as Mon",
                cfg.weekly_on
            )
        })?;
        Ok(Digests {
            db,
            times: DigestTimes { send_at, weekday },
            timezone,
            names,
            clock,
        })
    }

    /// Makes the digests that are due; how many. One person's failure (a busy
    /// database) does not hold up the others; the next round tries again.
    pub async fn round(&self) -> Result<usize, DbErr> {
        let mut made = 0;
        for person in delivery::people_with_held(&self.db).await? {
            match self.for_person(&person).await {
                Ok(true) => made += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "making a digest failed; will retry"),
            }
        }
        crate::metrics::metrics().digests_made(made);
        Ok(made)
    }

    /// Deletes the delivery log's finished rows and digests older than
    /// `retention_days`; how many rows went.
    pub async fn prune(&self, retention_days: u32) -> Result<usize, DbErr> {
        let before = self.clock.now_ms() - i64::from(retention_days) * 86_400_000;
        // A digest whose email waits or failed (replayable) keeps its items.
        let keep = delivery::unfinished_digests(&self.db).await?;
        let deliveries = delivery::delete_finished_before(&self.db, before, &keep).await?;
        let digests = digest::delete_before(&self.db, before, &keep).await?;
        Ok((deliveries + digests) as usize)
    }

    async fn for_person(&self, person: &str) -> Result<bool, DbErr> {
        let held = preference::get(&self.db, person).await?;
        let prefs = &held.preferences;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        if prefs.cadence == Cadence::Immediate {
            // They left digests: what waits goes out on its own.
            delivery::release_held(&txn, person, now.timestamp_millis()).await?;
            txn.commit().await?;
            return Ok(false);
        }
        let tz = prefs.tz(self.timezone);
        let Some((period, cutoff)) = latest_period(prefs.cadence, self.times, now, tz) else {
            return Ok(false);
        };
        // Erased meanwhile: nothing may be made for them.
        if erased::contains(&txn, &self.names, person).await? {
            return Ok(false);
        }
        let items =
            delivery::held_before(&txn, person, cutoff.timestamp_millis(), MAX_ITEMS).await?;
        if items.is_empty() {
            return Ok(false); // never an empty digest
        }
        let stamp = now.timestamp_millis();
        let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
        let Some(digest_id) = digest::create_once(&txn, person, &period, count, stamp).await?
        else {
            return Ok(false); // another replica made this period's digest
        };
        let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
        delivery::move_into_digest(&txn, &ids, &digest_id, stamp).await?;
        let email = NewDelivery {
            notification_id: digest_id,
            is_digest: true,
            recipient_id: person.to_string(),
            channel: Channel::Email.as_str(),
            webhook_id: String::new(),
            status: delivery::PENDING,
            next_attempt_at_ms: prefs.send_at(now, self.timezone).timestamp_millis(),
            is_confirmation: false,
        };
        delivery::insert_all(&txn, &[email], stamp).await?;
        txn.commit().await?;
        Ok(true)
    }
}
