//! Keeping a replica's search index and public cards current: a full build at
//! start-up and on a timer (which also catches events missed while NATS was
//! away), a refresh of a single group after this replica changes it, and a
//! refresh whenever any replica's LISTINGS event about a group arrives.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{Timelike, Utc};
use futures::StreamExt;
use sea_orm::{DatabaseConnection, DbErr};
use selfhelp_platform::Shutdown;
use selfhelp_platform::bus;
use selfhelp_platform::config::NatsConfig;
use selfhelp_platform::supervise::Supervisor;
use selfhelp_proto::streams::LISTINGS;

use super::cards::{Card, CardMap, Cards, Render};
use super::{Prepared, SearchDoc, SearchIndex};
use crate::domain::group::{Format, JoinPolicy, Status};
use crate::domain::schedule::{self, Exception, Pattern};
use crate::store::group::{self as store, Model};
use crate::store::{exception, topic};
use selfhelp_core::postcode::PostcodeTable;
use selfhelp_core::time::Clock;

/// The index shared by a replica's handlers (searches are short and CPU-bound).
pub type SharedIndex = Arc<RwLock<SearchIndex>>;

/// Everything needed to (re)index groups.
#[derive(Clone)]
pub struct Indexer {
    pub db: DatabaseConnection,
    pub region: String,
    pub tz: chrono_tz::Tz,
    pub index: SharedIndex,
    /// Places venues without coordinates at their postcode's centroid.
    pub postcodes: Arc<PostcodeTable>,
    /// The published groups' public cards, kept with the index.
    pub cards: Cards,
    pub render: Render,
    /// Refreshes one at a time (see [`Refreshes`]).
    pub refreshes: Arc<tokio::sync::Mutex<Refreshes>>,
    /// Listings unchecked for longer than this many days are left out of the
    /// index (their cards stay): `freshness.max_age_days` plus its grace.
    pub out_of_search_after_days: i64,
    pub clock: Clock,
}

/// Keeps a group's refresh whole: two refreshes of it at once (this replica's
/// change and another replica's event) could otherwise store what the first
/// read before a commit after the second stored what came of it, and a full
/// build reading the directory while a group changes would swap in what it
/// read before. So refreshes take turns, and the groups refreshed while a
/// build was reading are refreshed again when it swaps in.
#[derive(Default)]
pub struct Refreshes {
    /// Full builds reading or building now.
    building: usize,
    /// Groups refreshed since the first of them began.
    during_build: std::collections::HashSet<String>,
}

/// What the index keeps of `group`.
pub fn doc_from(
    group: &Model,
    topics: &[topic::Model],
    exceptions: &[Exception],
    tz: chrono_tz::Tz,
    postcodes: &PostcodeTable,
) -> SearchDoc {
    let details = group.details();
    let schedule = group.schedule();
    let minutes = |t: chrono::NaiveTime| (t.hour() * 60 + t.minute()) as u16;
    let (meeting_days, start_minutes, end_minutes) = match &schedule {
        Some(s) => {
            let days = match s.pattern {
                Pattern::Weekly { weekday, .. } | Pattern::MonthlyByWeekday { weekday, .. } => {
                    vec![weekday]
                }
                Pattern::MonthlyByDate { .. } => Vec::new(),
            };
            (days, Some(minutes(s.start)), Some(minutes(s.end)))
        }
        None => (Vec::new(), None, None),
    };
    let next_meeting_ms =
        schedule::next_occurrences(schedule.as_ref(), exceptions, tz, Utc::now(), 1)
            .first()
            .map(|o| o.starts_at.timestamp_millis());
    let codes = group.topics();
    SearchDoc {
        id: group.id.clone(),
        name: group.name.clone(),
        summary: group.summary.clone(),
        description: group.description.clone(),
        topic_names: topics
            .iter()
            .filter(|t| codes.contains(&t.code))
            .map(|t| t.name.clone())
            .collect(),
        topics: codes,
        format: Format::parse(&group.format).unwrap_or(Format::InPerson),
        join_policy: JoinPolicy::parse(&group.join_policy).unwrap_or(JoinPolicy::Open),
        minimum_age: details.minimum_age,
        maximum_age: details.maximum_age,
        points: group
            .venues()
            .iter()
            .filter_map(|v| match (v.latitude, v.longitude) {
                (Some(lat), Some(lon)) => Some((lat, lon)),
                _ => postcodes.lookup(&v.postcode),
            })
            .collect(),
        meeting_days,
        start_minutes,
        end_minutes,
        service_at_location_ids: (0..group.venues().len())
            .map(|i| crate::oruk::service_at_location_id(&group.id, i))
            .collect(),
        next_meeting_ms,
    }
}

impl Indexer {
    /// Builds a fresh index and cards of every published group and swaps them in.
    pub async fn rebuild(&self) -> Result<usize, DbErr> {
        self.refreshes.lock().await.building += 1;
        let built = self.read_and_build().await;
        let mut refreshes = self.refreshes.lock().await;
        let again: Vec<String> = refreshes.during_build.iter().cloned().collect();
        refreshes.building -= 1;
        if refreshes.building == 0 {
            refreshes.during_build.clear();
        }
        let (fresh, cards, started) = built?;
        let count = fresh.len();
        *self.index.write().expect("index lock") = fresh;
        *self.cards.write().expect("cards lock") = cards;
        // What changed while the build was reading, as it is now; a group that
        // cannot be read again leaves the directory until the next refresh
        // rather than stay as the build read it.
        for id in again {
            if let Err(e) = self.refresh_now(&id).await {
                tracing::warn!(error = %e, group_id = %id, "search refresh after a rebuild failed; the group is left out until its next change or rebuild");
                self.index.write().expect("index lock").remove(&id);
                self.cards.write().expect("cards lock").remove(&id);
            }
        }
        crate::metrics::metrics().index_built(&self.region, count, started.elapsed());
        Ok(count)
    }

    /// A fresh index and cards of every published group, and when reading began.
    /// Each page of groups is prepared on every core as it is read, so only a
    /// page of rows is held at a time.
    async fn read_and_build(&self) -> Result<(SearchIndex, CardMap, std::time::Instant), DbErr> {
        let started = std::time::Instant::now();
        let topics = Arc::new(topic::list(&self.db, &self.region).await?);
        let mut exceptions = exception::all_by_group(&self.db).await?;
        let mut built = (SearchIndex::default(), CardMap::default());
        let mut after: Option<String> = None;
        const PAGE: u64 = 2_000;
        loop {
            let rows =
                store::published_after(&self.db, &self.region, after.as_deref(), PAGE).await?;
            let last = (rows.len() as u64) < PAGE;
            after = rows.last().map(|g| g.id.clone());
            let page: Vec<(Model, Vec<exception::Model>)> = rows
                .into_iter()
                .map(|g| {
                    let rows = exceptions.remove(&g.id).unwrap_or_default();
                    (g, rows)
                })
                .collect();
            // CPU work: off the runtime's threads, which go on answering calls.
            let (indexer, topics) = (self.clone(), topics.clone());
            built = tokio::task::spawn_blocking(move || {
                let (mut fresh, mut cards) = built;
                indexer.add_page(&mut fresh, &mut cards, &page, &topics);
                (fresh, cards)
            })
            .await
            .map_err(|e| DbErr::Custom(format!("building the search index stopped: {e}")))?;
            if last {
                break;
            }
        }
        built.0.shrink_to_fit();
        Ok((built.0, built.1, started))
    }

    /// Adds `groups` to an index and cards being built: each group's card,
    /// document and weighed words prepared on every core, then added in turn.
    fn add_page(
        &self,
        fresh: &mut SearchIndex,
        cards: &mut CardMap,
        groups: &[(Model, Vec<exception::Model>)],
        topics: &[topic::Model],
    ) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = groups.len().div_ceil(threads).max(1);
        let prepare = |part: &[(Model, Vec<exception::Model>)]| -> Vec<(Card, Prepared)> {
            part.iter()
                .map(|(g, rows)| self.prepare(g, rows, topics))
                .collect()
        };
        let prepared: Vec<Vec<(Card, Prepared)>> = std::thread::scope(|scope| {
            let parts: Vec<_> = groups
                .chunks(per_thread)
                .map(|part| scope.spawn(move || prepare(part)))
                .collect();
            parts
                .into_iter()
                .map(|part| part.join().expect("preparing groups for the index"))
                .collect()
        });
        let now = self.clock.now_ms();
        for ((g, _), (card, doc)) in groups.iter().zip(prepared.into_iter().flatten()) {
            if self.searchable(g, now) {
                fresh.insert(doc);
            }
            cards.insert(g.id.clone(), Arc::new(card));
        }
    }

    /// Whether a published group is found by search at `now_ms`: not when its
    /// check lapsed beyond the grace (its page stays, labelled). A group that
    /// passes that age between changes leaves at the next full build.
    fn searchable(&self, group: &Model, now_ms: i64) -> bool {
        crate::domain::group::in_search(group.assured_at_ms, now_ms, self.out_of_search_after_days)
    }

    /// A published group's card and its document with the words weighed.
    fn prepare(
        &self,
        group: &Model,
        exceptions: &[exception::Model],
        topics: &[topic::Model],
    ) -> (Card, Prepared) {
        let card = Card::new(group, exceptions, &self.render);
        let doc = doc_from(group, topics, &card.exceptions, self.tz, &self.postcodes);
        (card, Prepared::new(doc))
    }

    /// Re-reads one group: carded while published (and indexed while its
    /// check has not lapsed), removed otherwise.
    pub async fn refresh(&self, group_id: &str) -> Result<(), DbErr> {
        let mut refreshes = self.refreshes.lock().await;
        if refreshes.building > 0 {
            refreshes.during_build.insert(group_id.to_string());
        }
        self.refresh_now(group_id).await
    }

    /// [`Indexer::refresh`] for a caller holding the turn.
    async fn refresh_now(&self, group_id: &str) -> Result<(), DbErr> {
        match store::find(&self.db, group_id).await? {
            Some(g) if g.region == self.region && g.status() == Status::Published => {
                let topics = topic::list(&self.db, &self.region).await?;
                let rows = exception::list(&self.db, &g.id).await?;
                let (card, doc) = self.prepare(&g, &rows, &topics);
                if self.searchable(&g, self.clock.now_ms()) {
                    self.index.write().expect("index lock").insert(doc);
                } else {
                    self.index.write().expect("index lock").remove(&g.id);
                }
                self.cards
                    .write()
                    .expect("cards lock")
                    .insert(g.id.clone(), Arc::new(card));
            }
            _ => {
                self.index.write().expect("index lock").remove(group_id);
                self.cards.write().expect("cards lock").remove(group_id);
            }
        }
        let size = self.index.read().expect("index lock").len();
        crate::metrics::metrics().index_size(&self.region, size);
        Ok(())
    }

    /// The public card of a published group of the region, if it is one.
    pub fn card(&self, group_id: &str) -> Option<Arc<Card>> {
        self.cards
            .read()
            .expect("cards lock")
            .get(group_id)
            .cloned()
    }

    /// Follows LISTINGS events from every replica (a plain subscription: a missed
    /// event is caught by the next periodic rebuild) and rebuilds on a timer, as
    /// two supervised workers.
    pub fn spawn(self, nats: NatsConfig, rebuild_every: Duration, workers: &Supervisor) {
        let follower = self.clone();
        let stop = workers.shutdown().clone();
        workers.spawn("search follower", move || {
            follower.clone().follow(nats.clone(), stop.clone())
        });
        let stop = workers.shutdown().clone();
        workers.spawn("search rebuild", move || {
            self.clone().rebuild_every(rebuild_every, stop.clone())
        });
    }

    /// Applies each LISTINGS event of the region to the index and cards until
    /// `stop`. Never gives up: a replica that stopped following would show stale
    /// cards until the next full rebuild. After any gap it rebuilds, to catch up
    /// on what was missed meanwhile (a restart counts as a gap too).
    async fn follow(self, nats: NatsConfig, stop: Shutdown) {
        let mut pause = Duration::from_millis(500);
        let mut gap = false;
        loop {
            let subscribed = async {
                let client = bus::connect(&nats, "listings-search")
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .subscribe(LISTINGS.region_filter(&self.region))
                    .await
                    .map_err(|e| e.to_string())
            };
            let mut events = match subscribed.await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "search follower cannot subscribe to LISTINGS; retrying");
                    gap = true;
                    tokio::select! {
                        _ = stop.wait() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            pause = Duration::from_millis(500);
            if gap && let Err(e) = self.rebuild().await {
                tracing::warn!(error = %e, "search index rebuild after a gap failed");
            }
            loop {
                let message = tokio::select! {
                    _ = stop.wait() => return,
                    m = events.next() => m,
                };
                let Some(message) = message else {
                    tracing::warn!("LISTINGS subscription ended; subscribing again");
                    gap = true;
                    break;
                };
                let group_id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(bus::headers::SUBJECT))
                    .map(|v| v.as_str().to_string());
                if let Some(id) = group_id
                    && let Err(e) = self.refresh(&id).await
                {
                    tracing::warn!(error = %e, "search index refresh failed");
                }
            }
        }
    }

    /// Rebuilds the index and cards every `every` until `stop`.
    async fn rebuild_every(self, every: Duration, stop: Shutdown) {
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.rebuild().await {
                Ok(n) => tracing::debug!(groups = n, "search index rebuilt"),
                Err(e) => tracing::warn!(error = %e, "search index rebuild failed"),
            }
        }
    }
}
