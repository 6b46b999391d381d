//! Live inbox streams (`WatchNotifications`) on this replica: how many each
//! person holds (capped), and their wake-ups. Any replica may store a person's
//! new notification (consumers are shared), so one task per replica asks the
//! database, a few times a second and in one query for everyone watching,
//! whose newest notification changed, and wakes just their streams. A stream
//! then reads what is new; without a wake-up it looks only every
//! [`SAFETY_LOOK`], in case a wake-up was missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Notify;

use crate::config::WatchConfig;
use crate::error::ServiceError;
use crate::store::notification;

/// How often the replica looks for news for the people watching.
pub const WAKE_EVERY: Duration = Duration::from_millis(200);
/// How often a stream looks by itself, wake-up or not.
pub const SAFETY_LOOK: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Watched {
    streams: usize,
    wake: Arc<Notify>,
    /// The newest notification id seen at the last look.
    newest: Option<String>,
}

/// The live streams of one replica.
#[derive(Default)]
pub struct LiveInbox {
    people: Mutex<HashMap<String, Watched>>,
}

impl LiveInbox {
    /// A place for one more stream of `person`, or RESOURCE_EXHAUSTED.
    pub fn open(
        self: &Arc<Self>,
        person: &str,
        cfg: &WatchConfig,
    ) -> Result<LiveStream, ServiceError> {
        let mut people = self.people.lock().expect("live inbox lock");
        let total: usize = people.values().map(|w| w.streams).sum();
        if total >= cfg.max_total {
            return Err(ServiceError::Exhausted(
                "too many live streams on this server; try again shortly".into(),
            ));
        }
        let watched = people.entry(person.to_string()).or_default();
        if watched.streams >= cfg.max_per_person {
            return Err(ServiceError::Exhausted(format!(
                "at most {} live streams per person; close one first",
                cfg.max_per_person
            )));
        }
        watched.streams += 1;
        Ok(LiveStream {
            inbox: self.clone(),
            person: person.to_string(),
            wake: watched.wake.clone(),
        })
    }

    /// One look: wakes the streams of the people whose newest notification
    /// changed since the last look, and returns who they were.
    pub async fn look(&self, db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
        let watched: Vec<String> = {
            let people = self.people.lock().expect("live inbox lock");
            people.keys().cloned().collect()
        };
        let mut newest = HashMap::new();
        let backend = db.get_database_backend();
        for chunk in selfhelp_platform::db::statement_chunks(backend, &watched, |p| p.len()) {
            newest.extend(notification::newest_ids(db, chunk).await?);
        }
        let mut woken = Vec::new();
        let mut people = self.people.lock().expect("live inbox lock");
        for (person, w) in people.iter_mut() {
            let now = newest.remove(person);
            if now != w.newest {
                w.newest = now;
                w.wake.notify_waiters();
                woken.push(person.clone());
            }
        }
        Ok(woken)
    }

    /// Looks every [`WAKE_EVERY`] while anyone is watching, until `stop`.
    pub async fn run(self: Arc<Self>, db: DatabaseConnection, stop: selfhelp_platform::Shutdown) {
        loop {
            let watching = !self.people.lock().expect("live inbox lock").is_empty();
            if watching && let Err(e) = self.look(&db).await {
                tracing::warn!(error = %e, "looking for new notifications failed");
            }
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(WAKE_EVERY) => {}
            }
        }
    }
}

/// One open stream's place; given back when the stream ends.
pub struct LiveStream {
    inbox: Arc<LiveInbox>,
    person: String,
    wake: Arc<Notify>,
}

impl LiveStream {
    /// Notified at each wake-up for this person (call `notified().enable()`
    /// before reading, so a wake-up during the read is kept).
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        let mut people = self.inbox.people.lock().expect("live inbox lock");
        if let Some(w) = people.get_mut(&self.person) {
            w.streams -= 1;
            if w.streams == 0 {
                people.remove(&self.person);
            }
        }
    }
}
