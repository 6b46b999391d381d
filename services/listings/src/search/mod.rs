//! The search read model: an in-memory index of the region's published groups,
//! one per replica, built at start-up and kept current from writes and from
//! LISTINGS events (see `maintain`). Free text is matched on English stems with
//! BM25 relevance; filters cover topics, distance, meeting day and time, age,
//! format and openness; results come with facet counts and stable page cursors.

pub mod cards;
pub mod maintain;

use std::collections::{BTreeSet, HashMap};

use chrono::Weekday;
use rust_stemmers::{Algorithm, Stemmer};

use crate::domain::group::{Format, JoinPolicy};

/// What the index keeps about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDoc {
    pub id: String,
    pub name: String,
    pub summary: String,
    pub description: String,
    /// Topic codes, and topic names (searchable text).
    pub topics: Vec<String>,
    pub topic_names: Vec<String>,
    pub format: Format,
    pub join_policy: JoinPolicy,
    pub minimum_age: Option<u8>,
    pub maximum_age: Option<u8>,
    /// Venue coordinates (WGS84 degrees).
    pub points: Vec<(f64, f64)>,
    /// Weekdays the schedule meets on (empty: no fixed weekday or no schedule).
    pub meeting_days: Vec<Weekday>,
    /// Local start and end time in minutes after midnight.
    pub start_minutes: Option<u16>,
    pub end_minutes: Option<u16>,
    /// The ORUK ids of the group's venues (`service_at_location`), in venue order.
    pub service_at_location_ids: Vec<String>,
    /// Next meeting (ms since the epoch) when the doc was indexed.
    pub next_meeting_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By relevance with a text query, by name without one.
    #[default]
    Relevance,
    Distance,
    Name,
    NextMeeting,
}

/// A search as the index sees it (already validated).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub text: String,
    /// Any of these topic codes (a topic and everything below it).
    pub topics: Vec<String>,
    /// Centre and radius in km.
    pub near: Option<((f64, f64), f64)>,
    pub day: Option<Weekday>,
    /// Meeting start within [from, to] minutes after midnight.
    pub time_window: Option<(u16, u16)>,
    pub age: Option<u8>,
    /// ORUK's age filters: the group's own minimum age is at least this, its
    /// maximum age at most that (a group without the limit does not match).
    pub minimum_age_at_least: Option<u8>,
    pub maximum_age_at_most: Option<u8>,
    /// Meetings end at or before this, in minutes after midnight.
    pub ends_by: Option<u16>,
    pub format: Option<Format>,
    pub open_to_new_members: bool,
    pub sort: Sort,
    pub limit: usize,
    /// Matches to skip before the page (numbered pages; 0 with a cursor).
    pub offset: usize,
    /// Cursor from a previous page: where its last item stands in the order.
    pub after: Option<Cursor>,
}

impl Query {
    /// True when the query filters nothing and its order comes down to the
    /// name (what [`SearchIndex::browse`] answers). Free text is checked by
    /// the caller: words that are all stop words filter nothing either.
    fn is_browse(&self) -> bool {
        let by_name = match self.sort {
            Sort::Name | Sort::Relevance => true,
            Sort::Distance => self.near.is_none(),
            Sort::NextMeeting => false,
        };
        by_name
            && self.topics.is_empty()
            && self.near.is_none()
            && self.day.is_none()
            && self.time_window.is_none()
            && self.age.is_none()
            && self.minimum_age_at_least.is_none()
            && self.maximum_age_at_most.is_none()
            && self.ends_by.is_none()
            && self.format.is_none()
            && !self.open_to_new_members
            && self.after.is_none()
    }
}

/// Counts, most first, then by name.
fn sorted_counts<K>(mut counts: Vec<(K, usize)>, name: fn(&K) -> &str) -> Vec<(K, usize)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| name(&a.0).cmp(name(&b.0))));
    counts
}

/// A place in the sort order: (key, lower-case name, id) — a total order, so a
/// page that starts after it neither repeats nor skips results when the index
/// changes in between.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub key: f64,
    pub name: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub distance_km: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// All matches, not just this page.
    pub total: usize,
    /// Matches per topic code and per format, over all matches.
    pub topic_counts: Vec<(String, usize)>,
    pub format_counts: Vec<(Format, usize)>,
    /// Set when more matches follow this page.
    pub next: Option<Cursor>,
}

struct Indexed {
    doc: SearchDoc,
    /// The name as results sort it, made once here rather than per match per query.
    name_key: String,
    /// (term id, weighted frequency), sorted by id for lookups while scoring:
    /// comparing numbers, not words, for every candidate of every query.
    terms: Vec<(u32, f32)>,
    length: f32,
    cells: Vec<(i32, i32)>,
    /// The venues' points on the unit sphere, in `doc.points`' order: a
    /// distance from them takes no trigonometry.
    spots: Vec<OnSphere>,
    /// `doc.topics` numbered: the facets of every match are counted by number.
    topic_numbers: Box<[u32]>,
}

/// Grid cells of 0.1° latitude by 0.1° longitude (about 11 km by 7 km in the UK)
/// for finding the groups near a point without looking at every group.
const CELL_DEGREES: f64 = 0.1;

fn cell_of(point: (f64, f64)) -> (i32, i32) {
    (
        (point.0 / CELL_DEGREES).floor() as i32,
        (point.1 / CELL_DEGREES).floor() as i32,
    )
}

/// Field weights: a word in the name counts more than one in the description.
const NAME_WEIGHT: f32 = 3.0;
const TOPIC_WEIGHT: f32 = 2.0;
const SUMMARY_WEIGHT: f32 = 1.5;
const DESCRIPTION_WEIGHT: f32 = 1.0;
const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of",
    "on", "or", "the", "to", "with", "we", "our", "you", "your",
];

pub struct SearchIndex {
    slots: Vec<Option<Indexed>>,
    /// Per slot, the box around the group's venues (south, north, west, east
    /// in degrees; empty without venues), side by side in one array: a search
    /// near a place rules most candidates out here, without reaching for each
    /// group's entry — a cache miss apiece, which on a busy server cost more
    /// than the rest of the search.
    venue_boxes: Vec<[f32; 4]>,
    by_id: HashMap<String, usize>,
    free: Vec<usize>,
    /// service_at_location id -> (group id, venue index)
    locations: HashMap<String, (String, usize)>,
    /// term -> (slot, weighted term frequency)
    postings: HashMap<String, Vec<(u32, f32)>>,
    /// Every term some group has, numbered (see `Indexed::terms`), and the
    /// terms by number.
    term_ids: HashMap<String, u32>,
    term_names: Vec<String>,
    /// Numbers of terms no group has any more, for the next new term: the list
    /// does not grow with every word ever written and edited away.
    free_terms: Vec<u32>,
    /// topic code -> slots
    topics: HashMap<String, Vec<u32>>,
    /// Every topic code a group has had, numbered (see `Indexed::topic_numbers`;
    /// a region's taxonomy is small, so numbers are never freed), and by number.
    topic_numbers: HashMap<String, u32>,
    topic_codes: Vec<String>,
    /// grid cell -> slots with a venue in it
    grid: HashMap<(i32, i32), Vec<u32>>,
    /// (lower-case name, id) of every group: the whole directory in name order,
    /// for browsing it a page at a time without sorting it on every call.
    by_name: BTreeSet<(String, String)>,
    /// Groups per format, for the counts of a browse.
    formats: HashMap<&'static str, (Format, usize)>,
    total_length: f64,
    stemmer: Stemmer,
}

/// Stems of the searchable words in `text`.
fn analyse(stemmer: &Stemmer, text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stemmer.stem(&w).into_owned())
        .collect()
}

/// A group's document with its words stemmed and weighed: the part of adding
/// a group that needs no index, so a full build prepares many side by side.
pub struct Prepared {
    doc: SearchDoc,
    /// term -> weighted frequency
    weights: HashMap<String, f32>,
    /// Words counted, for the length normalisation of scores.
    length: f32,
}

impl Prepared {
    pub fn new(doc: SearchDoc) -> Prepared {
        let stemmer = Stemmer::create(Algorithm::English);
        let mut weights: HashMap<String, f32> = HashMap::new();
        let mut length = 0.0;
        let fields = [
            (doc.name.as_str(), NAME_WEIGHT),
            (doc.summary.as_str(), SUMMARY_WEIGHT),
            (doc.description.as_str(), DESCRIPTION_WEIGHT),
        ];
        let topic_text = doc.topic_names.join(" ");
        for (text, weight) in fields
            .into_iter()
            .chain([(topic_text.as_str(), TOPIC_WEIGHT)])
        {
            for term in analyse(&stemmer, text) {
                *weights.entry(term).or_default() += weight;
                length += 1.0;
            }
        }
        Prepared {
            doc,
            weights,
            length,
        }
    }
}

impl Default for SearchIndex {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            venue_boxes: Vec::new(),
            by_id: HashMap::new(),
            free: Vec::new(),
            locations: HashMap::new(),
            postings: HashMap::new(),
            term_ids: HashMap::new(),
            term_names: Vec::new(),
            free_terms: Vec::new(),
            topics: HashMap::new(),
            topic_numbers: HashMap::new(),
            topic_codes: Vec::new(),
            grid: HashMap::new(),
            by_name: BTreeSet::new(),
            formats: HashMap::new(),
            total_length: 0.0,
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

impl SearchIndex {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Stems of the searchable words in `text`.
    pub fn analyse(&self, text: &str) -> Vec<String> {
        analyse(&self.stemmer, text)
    }

    /// Adds or replaces a group.
    pub fn upsert(&mut self, doc: SearchDoc) {
        self.insert(Prepared::new(doc));
    }

    /// Adds or replaces a group whose words are weighed already.
    pub fn insert(&mut self, prepared: Prepared) {
        let Prepared {
            mut doc,
            weights,
            length,
        } = prepared;
        // Weighed now, these texts are not read again (the group's card shows
        // them), and every listed group would carry a copy.
        doc.summary = String::new();
        doc.description = String::new();
        doc.topic_names = Vec::new();
        self.remove(&doc.id);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.venue_boxes.push(NO_VENUES);
            self.slots.len() - 1
        });
        for (term, weight) in &weights {
            self.postings
                .entry(term.clone())
                .or_default()
                .push((slot as u32, *weight));
        }
        for topic in &doc.topics {
            self.topics
                .entry(topic.clone())
                .or_default()
                .push(slot as u32);
        }
        let topic_numbers = doc.topics.iter().map(|t| self.topic_number(t)).collect();
        let mut cells: Vec<(i32, i32)> = doc.points.iter().map(|p| cell_of(*p)).collect();
        cells.sort_unstable();
        cells.dedup();
        for cell in &cells {
            self.grid.entry(*cell).or_default().push(slot as u32);
        }
        self.total_length += f64::from(length);
        for (i, location) in doc.service_at_location_ids.iter().enumerate() {
            self.locations.insert(location.clone(), (doc.id.clone(), i));
        }
        self.by_id.insert(doc.id.clone(), slot);
        let name_key = doc.name.to_lowercase();
        self.by_name.insert((name_key.clone(), doc.id.clone()));
        self.formats
            .entry(doc.format.as_str())
            .or_insert((doc.format, 0))
            .1 += 1;
        let mut terms: Vec<(u32, f32)> = weights
            .into_iter()
            .map(|(term, weight)| (self.term_id(term), weight))
            .collect();
        terms.sort_by_key(|(id, _)| *id);
        self.venue_boxes[slot] = venue_box(&doc.points);
        self.slots[slot] = Some(Indexed {
            terms,
            length,
            cells,
            spots: doc.points.iter().map(|p| OnSphere::of(*p)).collect(),
            topic_numbers,
            name_key,
            doc,
        });
    }

    /// Gives back the room the lists grew into while the index was built
    /// (each doubles as it fills): called once the whole directory is in.
    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        self.venue_boxes.shrink_to_fit();
        for list in self.postings.values_mut() {
            list.shrink_to_fit();
        }
        for list in self.topics.values_mut() {
            list.shrink_to_fit();
        }
        for list in self.grid.values_mut() {
            list.shrink_to_fit();
        }
    }

    pub fn remove(&mut self, id: &str) {
        let Some(slot) = self.by_id.remove(id) else {
            return;
        };
        self.venue_boxes[slot] = NO_VENUES;
        if let Some(old) = self.slots[slot].take() {
            let slot32 = slot as u32;
            for (term_id, _) in &old.terms {
                let term = &self.term_names[*term_id as usize];
                if let Some(list) = self.postings.get_mut(term) {
                    list.retain(|(s, _)| *s != slot32);
                    if list.is_empty() {
                        self.postings.remove(term);
                        self.term_ids.remove(term);
                        self.free_terms.push(*term_id);
                    }
                }
            }
            for topic in &old.doc.topics {
                if let Some(list) = self.topics.get_mut(topic) {
                    list.retain(|s| *s != slot32);
                }
            }
            for cell in &old.cells {
                if let Some(list) = self.grid.get_mut(cell) {
                    list.retain(|s| *s != slot32);
                }
            }
            self.total_length -= f64::from(old.length);
            self.by_name.remove(&(old.name_key, id.to_string()));
            if let Some((_, n)) = self.formats.get_mut(old.doc.format.as_str()) {
                *n -= 1;
            }
            for location in &old.doc.service_at_location_ids {
                self.locations.remove(location);
            }
        }
        self.free.push(slot);
    }

    /// The number of a topic code, given one the first time it is seen.
    fn topic_number(&mut self, code: &str) -> u32 {
        if let Some(n) = self.topic_numbers.get(code) {
            return *n;
        }
        let n = u32::try_from(self.topic_codes.len()).expect("a taxonomy is small");
        self.topic_codes.push(code.to_string());
        self.topic_numbers.insert(code.to_string(), n);
        n
    }

    /// The number of `term`, given one if it has none yet.
    fn term_id(&mut self, term: String) -> u32 {
        if let Some(id) = self.term_ids.get(&term) {
            return *id;
        }
        let id = match self.free_terms.pop() {
            Some(id) => {
                self.term_names[id as usize] = term.clone();
                id
            }
            None => {
                self.term_names.push(term.clone());
                (self.term_names.len() - 1) as u32
            }
        };
        self.term_ids.insert(term, id);
        id
    }

    /// The group and venue index behind a `service_at_location` id.
    pub fn service_at_location(&self, id: &str) -> Option<(&str, usize)> {
        self.locations
            .get(id)
            .map(|(group, index)| (group.as_str(), *index))
    }

    /// The group's document as kept: without its texts (summary,
    /// description, topic names), which are weighed at insert and let go.
    pub fn get(&self, id: &str) -> Option<&SearchDoc> {
        self.by_id
            .get(id)
            .and_then(|s| self.slots[*s].as_ref())
            .map(|i| &i.doc)
    }

    pub fn search(&self, q: &Query) -> Results {
        let mut terms = self.analyse(&q.text);
        terms.sort();
        terms.dedup();
        if terms.is_empty() && q.is_browse() {
            return self.browse(q);
        }
        self.matching(q, &terms)
    }

    /// Every group that passes the filters and has all of `terms` (stems),
    /// ordered, counted and cut to the page.
    fn matching(&self, q: &Query, terms: &[String]) -> Results {
        // Each word's number and document frequency; a word no group has
        // means no results.
        let mut words = Vec::with_capacity(terms.len());
        for term in terms {
            match (self.term_ids.get(term), self.postings.get(term)) {
                (Some(id), Some(list)) => words.push((*id, list.len())),
                _ => return Results::default(),
            }
        }
        let near = q.near.map(Near::new);
        let mut matches: Vec<(usize, f32, Option<f64>)> = Vec::new();
        for slot in self.candidates(q, terms) {
            if near
                .as_ref()
                .is_some_and(|near| !near.may_meet(&self.venue_boxes[slot as usize]))
            {
                continue;
            }
            let Some(indexed) = self.slots[slot as usize].as_ref() else {
                continue;
            };
            // The haversine of the distance: turned into km only where needed.
            let Some(distance) = self.filter(indexed, q, near.as_ref()) else {
                continue;
            };
            let Some(score) = self.score(indexed, &words) else {
                continue;
            };
            matches.push((slot as usize, score, distance));
        }

        // Counted for every match of every query: by number, not by code.
        let mut topic_counts = vec![0usize; self.topic_codes.len()];
        let mut format_counts: Vec<(Format, usize)> = Vec::new();
        for (slot, _, _) in &matches {
            let indexed = self.slots[*slot].as_ref().expect("matched");
            for n in &indexed.topic_numbers {
                topic_counts[*n as usize] += 1;
            }
            match format_counts
                .iter_mut()
                .find(|(f, _)| *f == indexed.doc.format)
            {
                Some((_, count)) => *count += 1,
                None => format_counts.push((indexed.doc.format, 1)),
            }
        }

        let sort = match q.sort {
            Sort::Relevance if terms.is_empty() => Sort::Name,
            Sort::Distance if q.near.is_none() => Sort::Name,
            other => other,
        };
        let key = |doc: &SearchDoc, score: f32, distance: Option<f64>| -> f64 {
            match sort {
                Sort::Relevance => -f64::from(score),
                Sort::Distance => distance.map_or(f64::MAX, km_of_haversine),
                Sort::NextMeeting => doc.next_meeting_ms.map(|m| m as f64).unwrap_or(f64::MAX),
                Sort::Name => 0.0,
            }
        };
        // Sorted by (key, name, id) without copying a string per match: only the
        // page and the cursor after it are copied out.
        let mut keyed: Vec<(f64, &str, &str, f32, Option<f64>)> = matches
            .drain(..)
            .map(|(slot, score, distance)| {
                let indexed = self.slots[slot].as_ref().expect("matched");
                let doc = &indexed.doc;
                (
                    key(doc, score, distance),
                    indexed.name_key.as_str(),
                    doc.id.as_str(),
                    score,
                    distance,
                )
            })
            .collect();
        let total = keyed.len();
        let order = |a: &(f64, &str, &str, f32, Option<f64>),
                     b: &(f64, &str, &str, f32, Option<f64>)| {
            a.0.total_cmp(&b.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.cmp(b.2))
        };
        if let Some(after) = &q.after {
            let after = (after.key, after.name.as_str(), after.id.as_str(), 0.0, None);
            // Only what follows the cursor needs sorting.
            keyed.retain(|k| order(k, &after) == std::cmp::Ordering::Greater);
        }
        let rest = keyed.len();
        let start = q.offset.min(rest);
        let end = (start + q.limit).min(rest);
        // Only the page (and one more, to know whether anything follows) is
        // sorted: what comes after it is cut off, what comes before it is only
        // separated from it. A deep page of a large directory would otherwise
        // sort everything before it on every call.
        if end < rest {
            keyed.select_nth_unstable_by(end, order);
            keyed.truncate(end + 1);
        }
        if start > 0 && start < keyed.len() {
            keyed.select_nth_unstable_by(start, order);
        }
        keyed[start..].sort_by(order);
        let page: Vec<Hit> = keyed[start..end]
            .iter()
            .map(|(_, _, id, score, distance)| Hit {
                id: id.to_string(),
                score: *score,
                distance_km: distance.map(km_of_haversine),
            })
            .collect();
        let next = (end < rest && end > start).then(|| {
            let (key, name, id, ..) = keyed[end - 1];
            Cursor {
                key,
                name: name.to_string(),
                id: id.to_string(),
            }
        });
        // With `after`, `total` still counts every match, not just the rest.
        Results {
            hits: page,
            total,
            topic_counts: sorted_counts(
                topic_counts
                    .into_iter()
                    .zip(&self.topic_codes)
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, code)| (code.clone(), n))
                    .collect(),
                String::as_str,
            ),
            format_counts: sorted_counts(format_counts, |f| f.as_str()),
            next,
        }
    }

    /// The whole directory in name order from `offset`: the answer of
    /// [`Self::search`] for a query that filters nothing and sorts by name,
    /// read off the names kept in order instead of sorting every group.
    fn browse(&self, q: &Query) -> Results {
        let mut rest = self.by_name.iter().skip(q.offset);
        let page: Vec<&(String, String)> = rest.by_ref().take(q.limit).collect();
        let next = match (page.last(), rest.next()) {
            (Some((name, id)), Some(_)) => Some(Cursor {
                key: 0.0,
                name: name.clone(),
                id: id.clone(),
            }),
            _ => None,
        };
        Results {
            hits: page
                .into_iter()
                .map(|(_, id)| Hit {
                    id: id.clone(),
                    score: 0.0,
                    distance_km: None,
                })
                .collect(),
            total: self.by_id.len(),
            topic_counts: sorted_counts(
                self.topics
                    .iter()
                    .filter(|(_, slots)| !slots.is_empty())
                    .map(|(code, slots)| (code.clone(), slots.len()))
                    .collect(),
                String::as_str,
            ),
            format_counts: sorted_counts(
                self.formats
                    .values()
                    .copied()
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                |f| f.as_str(),
            ),
            next,
        }
    }

    /// The smallest set of slots that can hold every match: the groups near the
    /// point, with one of the topics, or containing the rarest word — whichever is
    /// smallest; every group when the query has none of these.
    fn candidates(&self, q: &Query, terms: &[String]) -> Vec<u32> {
        // Each way in is a set of slot lists; they are only counted until the
        // smallest is chosen, and only that one is copied out.
        let mut ways: Vec<Vec<&[u32]>> = Vec::new();
        // Cells overlapping the box around the circle; a box that crosses the
        // antimeridian in two parts. (One spanning every longitude is no way in.)
        if let Some(near) = q.near.map(Near::new)
            && near.lon.1 - near.lon.0 < 360.0
        {
            let (west, east) = near.lon;
            let parts = if west < -180.0 {
                vec![(west + 360.0, 180.0), (-180.0, east)]
            } else if east > 180.0 {
                vec![(west, 180.0), (-180.0, east - 360.0)]
            } else {
                vec![(west, east)]
            };
            let mut cells = Vec::new();
            for (west, east) in parts {
                let lo = cell_of((near.lat.0, west));
                let hi = cell_of((near.lat.1, east));
                for x in lo.0..=hi.0 {
                    for y in lo.1..=hi.1 {
                        if let Some(list) = self.grid.get(&(x, y)) {
                            cells.push(list.as_slice());
                        }
                    }
                }
            }
            ways.push(cells);
        }
        if !q.topics.is_empty() {
            ways.push(
                q.topics
                    .iter()
                    .filter_map(|t| self.topics.get(t))
                    .map(Vec::as_slice)
                    .collect(),
            );
        }
        let rarest = terms
            .iter()
            .filter_map(|t| self.postings.get(t))
            .min_by_key(|l| l.len());
        let size = |lists: &[&[u32]]| lists.iter().map(|l| l.len()).sum::<usize>();
        let smallest = ways.into_iter().min_by_key(|lists| size(lists));
        match (smallest, rarest) {
            // A word's postings hold each group once: no sorting needed.
            (smallest, Some(rarest))
                if smallest
                    .as_ref()
                    .is_none_or(|lists| rarest.len() <= size(lists)) =>
            {
                rarest.iter().map(|(slot, _)| *slot).collect()
            }
            (Some(lists), _) => {
                let mut slots: Vec<u32> = lists.concat();
                // A group with venues in two cells, or two of the topics, is
                // in two lists.
                if lists.len() > 1 {
                    slots.sort_unstable();
                    slots.dedup();
                }
                slots
            }
            (None, _) => self.by_id.values().map(|s| *s as u32).collect(),
        }
    }

    /// BM25 of a group for `words` (term number, document frequency); `None`
    /// unless it has every one of them.
    fn score(&self, indexed: &Indexed, words: &[(u32, usize)]) -> Option<f32> {
        if words.is_empty() {
            return Some(0.0);
        }
        let n = self.by_id.len().max(1) as f32;
        let average = ((self.total_length / self.by_id.len().max(1) as f64) as f32).max(1.0);
        let mut score = 0.0;
        for (term, df) in words {
            let at = indexed.terms.binary_search_by_key(term, |(t, _)| *t).ok()?;
            let tf = indexed.terms[at].1;
            let idf = ((n - *df as f32 + 0.5) / (*df as f32 + 0.5) + 1.0).ln();
            score += idf * tf * (BM25_K1 + 1.0)
                / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * indexed.length / average));
        }
        Some(score)
    }

    /// `None` when `doc` fails a filter; otherwise the haversine of its distance
    /// when a point was given (see `OnSphere`).
    fn filter(&self, indexed: &Indexed, q: &Query, near: Option<&Near>) -> Option<Option<f64>> {
        let doc = &indexed.doc;
        if !q.topics.is_empty() && !doc.topics.iter().any(|t| q.topics.contains(t)) {
            return None;
        }
        if q.format.is_some_and(|f| f != doc.format) {
            return None;
        }
        if q.open_to_new_members && doc.join_policy == JoinPolicy::InviteOnly {
            return None;
        }
        if let Some(age) = q.age
            && (doc.minimum_age.is_some_and(|min| age < min)
                || doc.maximum_age.is_some_and(|max| age > max))
        {
            return None;
        }
        if q.minimum_age_at_least
            .is_some_and(|at_least| doc.minimum_age.is_none_or(|min| min < at_least))
            || q.maximum_age_at_most
                .is_some_and(|at_most| doc.maximum_age.is_none_or(|max| max > at_most))
        {
            return None;
        }
        if let Some(ends_by) = q.ends_by
            && doc.end_minutes.is_none_or(|end| end > ends_by)
        {
            return None;
        }
        if let Some(day) = q.day
            && !doc.meeting_days.contains(&day)
        {
            return None;
        }
        if let Some((from, to)) = q.time_window {
            match doc.start_minutes {
                Some(start) if start >= from && start <= to => {}
                _ => return None,
            }
        }
        match near {
            None => Some(None),
            Some(near) => {
                let nearest = doc
                    .points
                    .iter()
                    .zip(&indexed.spots)
                    .filter(|(p, _)| near.may_hold(**p))
                    .map(|(_, spot)| near.spot.haversine(spot))
                    .min_by(f64::total_cmp)?;
                (nearest <= near.within).then_some(Some(nearest))
            }
        }
    }
}

/// The box of a slot with no group or a group without venues.
const NO_VENUES: [f32; 4] = [f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0];

/// The box around `points`: [south, north, west, east].
fn venue_box(points: &[(f64, f64)]) -> [f32; 4] {
    points.iter().fold(NO_VENUES, |[s, n, w, e], (lat, lon)| {
        let (lat, lon) = (*lat as f32, *lon as f32);
        if s > n {
            [lat, lat, lon, lon]
        } else {
            [s.min(lat), n.max(lat), w.min(lon), e.max(lon)]
        }
    })
}

/// A circle to search in, with a box around it: a point outside the box is
/// out without working out its distance (most of a national directory is).
struct Near {
    /// The centre, and the haversine of the radius to compare distances with.
    spot: OnSphere,
    within: f64,
    lat: (f64, f64),
    lon: (f64, f64),
}

impl Near {
    fn new((centre, radius): ((f64, f64), f64)) -> Near {
        // A little wider than the circle (a degree of latitude is 111.2 km,
        // and longitude degrees shrink towards the pole), so the box never
        // cuts the circle; the distance decides.
        let dlat = radius / 111.0 * 1.01;
        // A circle that reaches a pole spans every longitude.
        let dlon = if centre.0.abs() + dlat >= 89.0 {
            360.0
        } else {
            let widest = (centre.0.abs() + dlat).to_radians().cos();
            (radius / (111.0 * widest) * 1.01).min(360.0)
        };
        Near {
            spot: OnSphere::of(centre),
            within: haversine_of_km(radius),
            lat: (centre.0 - dlat, centre.0 + dlat),
            lon: (centre.1 - dlon, centre.1 + dlon),
        }
    }

    /// Whether a group whose venues lie in `venues` (see `venue_box`) may
    /// have one in the circle.
    fn may_meet(&self, venues: &[f32; 4]) -> bool {
        // f32 rounds a degree to well under a metre; the margin covers it.
        const MARGIN: f64 = 1e-4;
        let [south, north, west, east] = venues.map(f64::from);
        if south > north {
            return false; // no venues
        }
        if north < self.lat.0 - MARGIN || south > self.lat.1 + MARGIN {
            return false;
        }
        // Across the antimeridian the boxes wrap round.
        let overlaps =
            |shift: f64| west + shift <= self.lon.1 + MARGIN && east + shift >= self.lon.0 - MARGIN;
        overlaps(0.0) || overlaps(360.0) || overlaps(-360.0)
    }

    fn may_hold(&self, (lat, lon): (f64, f64)) -> bool {
        if lat < self.lat.0 || lat > self.lat.1 {
            return false;
        }
        // Across the antimeridian the box wraps round.
        let lon_in = |lon: f64| lon >= self.lon.0 && lon <= self.lon.1;
        lon_in(lon) || lon_in(lon + 360.0) || lon_in(lon - 360.0)
    }
}

pub use selfhelp_core::geo::haversine_km;
use selfhelp_core::geo::{OnSphere, haversine_of_km, km_of_haversine};

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, name: &str, topics: &[&str], point: (f64, f64)) -> SearchDoc {
        SearchDoc {
            id: id.into(),
            name: name.into(),
            summary: String::new(),
            description: String::new(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            topic_names: Vec::new(),
            format: Format::InPerson,
            join_policy: JoinPolicy::Open,
            minimum_age: None,
            maximum_age: None,
            points: vec![point],
            meeting_days: vec![Weekday::Wed],
            start_minutes: Some(19 * 60),
            end_minutes: Some(21 * 60),
            service_at_location_ids: Vec::new(),
            next_meeting_ms: None,
        }
    }

    const NOTTINGHAM: (f64, f64) = (52.9548, -1.1581);
    const DERBY: (f64, f64) = (52.9225, -1.4746);

    fn index() -> SearchIndex {
        let mut ix = SearchIndex::default();
        ix.upsert(doc(
            "a",
            "Bereavement support group",
            &["bereavement"],
            NOTTINGHAM,
        ));
        ix.upsert(doc("b", "Carers' coffee morning", &["carers"], NOTTINGHAM));
        ix.upsert(doc("c", "Bereavement café", &["bereavement"], DERBY));
        ix
    }

    fn q(text: &str) -> Query {
        Query {
            text: text.into(),
            limit: 20,
            ..Default::default()
        }
    }

    #[test]
    fn a_description_is_searched_though_not_kept_and_a_shrunk_index_takes_more() {
        let mut ix = index();
        ix.upsert(SearchDoc {
            description: "We meet for a gentle walk by the river".into(),
            ..doc("d", "Tuesday group", &[], DERBY)
        });
        ix.shrink_to_fit();
        ix.upsert(doc("e", "Walk and talk", &[], NOTTINGHAM));
        let ids = |ix: &SearchIndex, text: &str| -> Vec<String> {
            let mut ids: Vec<String> = ix.search(&q(text)).hits.into_iter().map(|h| h.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&ix, "river"), ["d"]);
        assert_eq!(ids(&ix, "walk"), ["d", "e"]);
        assert_eq!(ids(&ix, "bereavement"), ["a", "c"]);
        assert_eq!(ix.get("d").map(|d| d.description.as_str()), Some(""));
        ix.remove("d");
        assert!(ids(&ix, "river").is_empty());
    }

    #[test]
    fn numbered_pages_skip_the_matches_before_them() {
        let ix = index();
        let names = |offset: usize| -> Vec<String> {
            let query = Query {
                limit: 1,
                offset,
                ..q("")
            };
            ix.search(&query).hits.into_iter().map(|h| h.id).collect()
        };
        // By name: "Bereavement café" (c), "Bereavement support group" (a), carers (b).
        assert_eq!(names(0), ["c"]);
        assert_eq!(names(1), ["a"]);
        assert_eq!(names(2), ["b"]);
        assert!(names(3).is_empty());
        assert_eq!(ix.search(&Query { offset: 2, ..q("") }).total, 3);
    }

    #[test]
    fn browsing_in_name_order_answers_as_the_general_search_does() {
        let mut ix = SearchIndex::default();
        // Names that tie once lower-cased, formats and topics to count, and
        // changes after indexing (a rename, a removal) the kept order follows.
        for i in 0..40 {
            let mut d = doc(
                &format!("g{i:02}"),
                &format!("{} group", ["Walk", "walk", "Café", "Art"][i % 4]),
                &[["anxiety", "carers", "bereavement"][i % 3]],
                NOTTINGHAM,
            );
            d.format = [Format::InPerson, Format::Online][i % 2];
            ix.upsert(d);
        }
        ix.upsert(doc("g07", "Zebra crossing club", &["carers"], DERBY));
        ix.remove("g12");
        for offset in [0, 1, 19, 37, 38, 39, 60] {
            let query = Query {
                limit: 2,
                offset,
                ..q("")
            };
            let browsed = ix.search(&query);
            assert!(query.is_browse());
            assert_eq!(browsed, ix.matching(&query, &[]), "offset {offset}");
            assert_eq!(browsed.total, 39);
        }
        let last = ix.search(&Query {
            limit: 1,
            offset: 38,
            ..q("")
        });
        assert_eq!(last.hits[0].id, "g07", "renamed to the end of the order");
        assert!(last.next.is_none());
        // Stop words alone filter nothing either.
        assert_eq!(ix.search(&q("the and of")).total, 39);
    }

    #[test]
    fn open_referral_age_bounds_and_end_times_need_the_group_to_state_them() {
        let mut ix = SearchIndex::default();
        let mut young = doc("young", "Young adults", &[], NOTTINGHAM);
        (young.minimum_age, young.maximum_age) = (Some(18), Some(25));
        young.end_minutes = Some(20 * 60);
        ix.upsert(young);
        ix.upsert(doc("anyone", "Anyone", &[], NOTTINGHAM));
        let ids = |query: Query| -> Vec<String> {
            ix.search(&query).hits.into_iter().map(|h| h.id).collect()
        };
        let at_least = |age| Query {
            minimum_age_at_least: Some(age),
            ..q("")
        };
        assert_eq!(ids(at_least(18)), ["young"]);
        assert!(ids(at_least(19)).is_empty());
        let at_most = Query {
            maximum_age_at_most: Some(30),
            ..q("")
        };
        assert_eq!(ids(at_most), ["young"]);
        let ends_by = |minutes| Query {
            ends_by: Some(minutes),
            ..q("")
        };
        assert_eq!(ids(ends_by(20 * 60)), ["young"]);
        assert_eq!(ids(ends_by(21 * 60)), ["anyone", "young"]);
    }

    #[test]
    fn service_at_location_ids_lead_back_to_their_group_until_it_leaves() {
        let mut ix = SearchIndex::default();
        let mut group = doc("g", "Group", &[], NOTTINGHAM);
        group.service_at_location_ids = vec!["sal-0".into(), "sal-1".into()];
        ix.upsert(group);
        assert_eq!(ix.service_at_location("sal-1"), Some(("g", 1)));
        ix.remove("g");
        assert_eq!(ix.service_at_location("sal-0"), None);
    }

    #[test]
    fn stems_match_word_forms() {
        let ix = index();
        let ids: Vec<String> = ix
            .search(&q("bereaved"))
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ix.search(&q("carer")).hits.iter().any(|h| h.id == "b"));
        assert_eq!(
            ix.search(&q("bereaved carers")).total,
            0,
            "every word must match"
        );
    }

    #[test]
    fn distance_filters_and_sorts() {
        let ix = index();
        let mut query = q("bereavement");
        query.near = Some((NOTTINGHAM, 10.0));
        let r = ix.search(&query);
        assert_eq!(
            r.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        query.near = Some((NOTTINGHAM, 50.0));
        query.sort = Sort::Distance;
        let r = ix.search(&query);
        assert_eq!(
            r.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        let derby = r.hits[1].distance_km.unwrap();
        assert!((20.0..23.0).contains(&derby), "{derby}");
    }

    #[test]
    fn facets_and_filters() {
        let mut ix = index();
        let mut young = doc("d", "Young carers", &["carers"], NOTTINGHAM);
        young.maximum_age = Some(18);
        young.format = Format::Online;
        young.join_policy = JoinPolicy::InviteOnly;
        ix.upsert(young);
        let r = ix.search(&q(""));
        assert_eq!(r.total, 4);
        assert_eq!(
            r.topic_counts,
            vec![("bereavement".to_string(), 2), ("carers".to_string(), 2)]
        );
        let mut adults = q("");
        adults.age = Some(40);
        assert_eq!(ix.search(&adults).total, 3);
        let mut open = q("");
        open.open_to_new_members = true;
        assert_eq!(ix.search(&open).total, 3);
        let mut online = q("");
        online.format = Some(Format::Online);
        assert_eq!(ix.search(&online).total, 1);
        let mut thursday = q("");
        thursday.day = Some(Weekday::Thu);
        assert_eq!(ix.search(&thursday).total, 0);
        let mut evening = q("");
        evening.time_window = Some((18 * 60, 20 * 60));
        assert_eq!(ix.search(&evening).total, 4);
    }

    #[test]
    fn updates_and_removals_are_seen() {
        let mut ix = index();
        ix.upsert(doc("a", "Walking group", &["mental-health"], NOTTINGHAM));
        assert_eq!(ix.search(&q("bereavement")).total, 1);
        ix.remove("c");
        assert_eq!(ix.search(&q("bereavement")).total, 0);
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn cursors_page_through_without_overlap() {
        let mut ix = SearchIndex::default();
        for i in 0..25 {
            ix.upsert(doc(
                &format!("g{i:02}"),
                &format!("Group {i:02}"),
                &["carers"],
                NOTTINGHAM,
            ));
        }
        let mut query = q("");
        query.limit = 10;
        let mut seen = Vec::new();
        loop {
            let r = ix.search(&query);
            seen.extend(r.hits.iter().map(|h| h.id.clone()));
            match r.next {
                Some(after) => query.after = Some(after),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen.len(), 25);
        assert_eq!(sorted.len(), 25);
    }

    #[test]
    fn the_box_around_a_circle_never_cuts_it() {
        // Points on and just inside the circle all round, at home, far north
        // and across the antimeridian: every one passes the box.
        for (centre, radius) in [
            (NOTTINGHAM, 10.0),
            ((58.6, -3.5), 50.0),
            ((70.0, 25.0), 100.0),
            ((-41.0, 179.95), 30.0),
        ] {
            let near = Near::new((centre, radius));
            for step in 0..360 {
                let bearing = f64::from(step).to_radians();
                for fraction in [0.5, 0.999] {
                    let p = destination(centre, radius * fraction, bearing);
                    assert!(haversine_km(centre, p) <= radius);
                    assert!(near.may_hold(p), "{p:?} within {radius} km of {centre:?}");
                    let far_too = (centre.0 - 20.0, centre.1);
                    assert!(near.may_meet(&venue_box(&[p])), "{p:?}'s venue box");
                    assert!(
                        near.may_meet(&venue_box(&[far_too, p])),
                        "{p:?} with another"
                    );
                    assert!(!near.may_meet(&venue_box(&[far_too])));
                }
            }
            assert!(!near.may_meet(&NO_VENUES), "a group without venues");
            // And it does keep far places out.
            assert!(!near.may_hold((centre.0 + 5.0, centre.1)));
        }
    }

    /// The point `km` from `from` on `bearing` (radians), on a sphere.
    fn destination(from: (f64, f64), km: f64, bearing: f64) -> (f64, f64) {
        let d = km / 6371.0088;
        let (lat, lon) = (from.0.to_radians(), from.1.to_radians());
        let lat2 = (lat.sin() * d.cos() + lat.cos() * d.sin() * bearing.cos()).asin();
        let lon2 =
            lon + (bearing.sin() * d.sin() * lat.cos()).atan2(d.cos() - lat.sin() * lat2.sin());
        let lon2 = (lon2.to_degrees() + 540.0) % 360.0 - 180.0;
        (lat2.to_degrees(), lon2)
    }

    #[test]
    fn a_circle_across_the_antimeridian_or_round_a_pole_finds_its_groups() {
        let mut ix = SearchIndex::default();
        ix.upsert(doc("east", "Chatham east", &[], (-44.0, 179.9)));
        ix.upsert(doc("west", "Chatham west", &[], (-44.0, -179.9)));
        ix.upsert(doc("pole", "Station", &[], (89.95, 120.0)));
        ix.upsert(doc("far", "Elsewhere", &[], (-44.0, 170.0)));
        let near = |centre: (f64, f64), radius: f64| {
            let mut ids: Vec<String> = ix
                .search(&Query {
                    near: Some((centre, radius)),
                    limit: 20,
                    ..Default::default()
                })
                .hits
                .into_iter()
                .map(|h| h.id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(near((-44.0, 179.99), 30.0), ["east", "west"]);
        assert_eq!(near((-44.0, -179.99), 30.0), ["east", "west"]);
        assert_eq!(near((89.99, -60.0), 20.0), ["pole"]);
    }

    #[test]
    fn words_no_group_has_any_more_free_their_numbers_safely() {
        let mut ix = SearchIndex::default();
        ix.upsert(doc("a", "Zebra crossing club", &[], NOTTINGHAM));
        ix.upsert(doc("b", "Yak wool knitters", &[], NOTTINGHAM));
        // "a" renamed: zebra and crossing go, their numbers are reused.
        ix.upsert(doc("a", "Otter watchers", &[], NOTTINGHAM));
        ix.upsert(doc("c", "Heron hides", &[], NOTTINGHAM));
        let found = |text: &str| -> Vec<String> {
            ix.search(&q(text)).hits.into_iter().map(|h| h.id).collect()
        };
        assert!(found("zebra").is_empty());
        assert_eq!(found("otter"), ["a"]);
        assert_eq!(found("yak wool"), ["b"]);
        assert_eq!(found("heron"), ["c"]);
        assert!(ix.term_names.len() <= 9, "{} numbers", ix.term_names.len());
    }
}
