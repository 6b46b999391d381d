//! The Open Referral UK API's reads (`/services`, `/services/{id}`,
//! `/service_at_locations`…) as RPCs, so the HTTP gateway stays a thin
//! translation: the filters ORUK defines run on this replica's search index, and
//! the documents come from `crate::oruk`, the same as the export.

use std::collections::HashMap;

use chrono::{NaiveTime, Timelike, Weekday};
use selfhelp_core::validation::{self, Violations};
use selfhelp_proto::listings::v1 as pb;
use serde_json::{Value, json};

use super::{
    ListingsApi, details_from_wire, format_from_wire, join_policy_from_wire, venue_from_wire,
};
use crate::domain::group::Status as GroupStatus;
use crate::domain::topic as topics;
use crate::error::GROUP_NOT_FOUND;
use crate::error::ServiceError;
use crate::search::{Query, Sort};
use crate::store::group::{self as store, Model};
use crate::store::topic as topic_store;

const DEFAULT_PROXIMITY_METRES: f64 = 10_000.0;
const MAX_PROXIMITY_METRES: f64 = 200_000.0;

impl ListingsApi {
    pub(super) async fn search_open_referral(
        &self,
        req: pb::SearchOpenReferralRequest,
    ) -> Result<pb::SearchOpenReferralResponse, ServiceError> {
        let mut v = Violations::new();
        v.text("search", &req.search, false, 200);
        let (page, per_page) = numbered_page(&mut v, req.page, req.per_page);
        let all_topics = topic_store::list(&self.read, &self.region).await?;
        let taxonomy: Vec<_> = all_topics.iter().map(topic_store::Model::node).collect();
        let term = req.taxonomy_term_id.trim();
        let mut topics_wanted = Vec::new();
        if !term.is_empty() {
            match taxonomy.iter().find(|t| t.id == term || t.code == term) {
                Some(t) => topics_wanted = topics::search_codes(&taxonomy, &t.code),
                None => v.add(
                    "taxonomy_term_id",
                    "is not a term of this directory's taxonomy",
                ),
            }
        }
        let other_taxonomy = !req.taxonomy_id.trim().is_empty()
            && req.taxonomy_id.trim() != crate::oruk::taxonomy_id(&self.region);
        let age = |v: &mut Violations, field: &str, value: Option<i32>| match value {
            None => None,
            Some(a) if (0..=120).contains(&a) => Some(a as u8),
            Some(_) => {
                v.add(field, "must be between 0 and 120");
                None
            }
        };
        let minimum_age_at_least = age(&mut v, "minimum_age", req.minimum_age);
        let maximum_age_at_most = age(&mut v, "maximum_age", req.maximum_age);
        let day = parse_day(&mut v, &req.day);
        let starts_from = parse_time(&mut v, "start_time", &req.start_time);
        let ends_by = parse_time(&mut v, "end_time", &req.end_time);
        let near = self.near_postcode(&mut v, &req);
        v.into_result()?;
        if other_taxonomy {
            let empty = crate::oruk::page(Vec::new(), 0, page, per_page);
            return Ok(pb::SearchOpenReferralResponse {
                page_json: empty.to_string(),
            });
        }

        let query = Query {
            text: req.search.trim().to_string(),
            topics: topics_wanted,
            near,
            day,
            time_window: starts_from.map(|from| (from, 24 * 60)),
            minimum_age_at_least,
            maximum_age_at_most,
            ends_by,
            sort: if near.is_some() {
                Sort::Distance
            } else {
                Sort::Relevance
            },
            limit: per_page as usize,
            offset: ((page - 1) * per_page) as usize,
            ..Query::default()
        };
        if req.service_at_locations {
            return self
                .service_at_locations_page(query, page, per_page, &all_topics)
                .await;
        }
        let results = self.search.index.read().expect("index lock").search(&query);
        let ids: Vec<String> = results.hits.iter().map(|h| h.id.clone()).collect();
        let mut docs = self.service_docs(&ids, &all_topics).await?;
        let contents = ids.iter().filter_map(|id| docs.remove(id)).collect();
        let doc = crate::oruk::page(contents, results.total as u64, page, per_page);
        Ok(pb::SearchOpenReferralResponse {
            page_json: doc.to_string(),
        })
    }

    /// One `service_at_location` per venue of every matching group, numbered
    /// across groups in the search's order.
    async fn service_at_locations_page(
        &self,
        mut query: Query,
        page: u64,
        per_page: u64,
        all_topics: &[topic_store::Model],
    ) -> Result<pb::SearchOpenReferralResponse, ServiceError> {
        let (offset, limit) = (query.offset, query.limit);
        query.offset = 0;
        query.limit = usize::MAX;
        // (group id, venue index) for every venue of every match.
        let venues: Vec<(String, usize)> = {
            let index = self.search.index.read().expect("index lock");
            let results = index.search(&query);
            results
                .hits
                .iter()
                .flat_map(|hit| {
                    let count = index
                        .get(&hit.id)
                        .map_or(0, |d| d.service_at_location_ids.len());
                    (0..count).map(|i| (hit.id.clone(), i))
                })
                .collect()
        };
        let total = venues.len() as u64;
        let wanted: Vec<&(String, usize)> = venues.iter().skip(offset).take(limit).collect();
        let mut ids: Vec<String> = wanted.iter().map(|(id, _)| id.clone()).collect();
        ids.dedup();
        let docs = self.service_docs(&ids, all_topics).await?;
        let contents = wanted
            .iter()
            .filter_map(|(id, i)| service_at_location_doc(docs.get(id)?, *i))
            .collect();
        let doc = crate::oruk::page(contents, total, page, per_page);
        Ok(pb::SearchOpenReferralResponse {
            page_json: doc.to_string(),
        })
    }

    pub(super) async fn get_open_referral_service(
        &self,
        req: pb::GetOpenReferralServiceRequest,
    ) -> Result<pb::GetOpenReferralServiceResponse, ServiceError> {
        let (service_id, location_id) = (req.service_id.trim(), req.service_at_location_id.trim());
        let mut v = Violations::new();
        match (service_id.is_empty(), location_id.is_empty()) {
            (true, true) => v.add(
                "service_id",
                "give a service id or a service_at_location id",
            ),
            (false, false) => v.add(
                "service_id",
                "give a service id or a service_at_location id, not both",
            ),
            _ => {}
        }
        for (field, id) in [
            ("service_id", service_id),
            ("service_at_location_id", location_id),
        ] {
            if !id.is_empty() && uuid::Uuid::parse_str(id).is_err() {
                v.add(field, "must be a UUID");
            }
        }
        v.into_result()?;
        let group_id = if service_id.is_empty() {
            let index = self.search.index.read().expect("index lock");
            match index.service_at_location(location_id) {
                Some((group, _)) => group.to_string(),
                None => return Err(GROUP_NOT_FOUND),
            }
        } else {
            service_id.to_string()
        };
        let all_topics = topic_store::list(&self.read, &self.region).await?;
        let mut docs = self
            .service_docs(std::slice::from_ref(&group_id), &all_topics)
            .await?;
        let doc = docs.remove(&group_id).ok_or(GROUP_NOT_FOUND)?;
        Ok(pb::GetOpenReferralServiceResponse {
            service_json: doc.to_string(),
        })
    }

    /// The `service` documents of the published groups of this region among
    /// `ids`, by id. They come from the public cards kept in memory; only a
    /// group published a moment ago on another replica, not carded here yet,
    /// is read from the database.
    async fn service_docs(
        &self,
        ids: &[String],
        all_topics: &[topic_store::Model],
    ) -> Result<HashMap<String, Value>, ServiceError> {
        let mut docs = HashMap::with_capacity(ids.len());
        let mut not_carded = Vec::new();
        for id in ids {
            match self.search.card(id) {
                Some(card) => {
                    let doc = crate::oruk::service_doc(
                        &card.public_view(),
                        card.schedule.as_ref(),
                        all_topics,
                        &self.tz,
                    );
                    docs.insert(id.clone(), doc);
                }
                None => not_carded.push(id.clone()),
            }
        }
        if !not_carded.is_empty() {
            let rows = store::find_many(&self.read, not_carded).await?;
            let rows = rows
                .into_iter()
                .filter(|g| g.region == self.region && g.status() == GroupStatus::Published);
            for g in rows {
                let doc = self.service_doc(&g, all_topics);
                docs.insert(g.id.clone(), doc);
            }
        }
        Ok(docs)
    }

    /// The `service` document of a group read from the database.
    pub(super) fn service_doc(&self, g: &Model, all_topics: &[topic_store::Model]) -> Value {
        let card = self.to_wire(g, None);
        crate::oruk::service_doc(&card, g.schedule().as_ref(), all_topics, &self.tz)
    }

    /// ORUK's `postcode` and `proximity` (metres) as a centre and a radius in km.
    fn near_postcode(
        &self,
        v: &mut Violations,
        req: &pb::SearchOpenReferralRequest,
    ) -> Option<((f64, f64), f64)> {
        let metres = match req.proximity {
            None => DEFAULT_PROXIMITY_METRES,
            Some(m) if m > 0.0 && m <= MAX_PROXIMITY_METRES => m,
            Some(_) => {
                v.add(
                    "proximity",
                    format!("must be more than 0 and at most {MAX_PROXIMITY_METRES} metres"),
                );
                DEFAULT_PROXIMITY_METRES
            }
        };
        let postcode = req.postcode.trim();
        if postcode.is_empty() {
            if req.proximity.is_some() {
                v.add("postcode", "is needed with proximity");
            }
            return None;
        }
        match self.postcodes.lookup(postcode) {
            Some(point) => Some((point, metres / 1000.0)),
            None => {
                v.add("postcode", "is not a postcode this directory knows");
                None
            }
        }
    }
}

/// ORUK's `page` (1-based; 0 means 1) and `per_page` (1 to 100; 0 means 50).
pub(super) fn numbered_page(v: &mut Violations, page: i32, per_page: i32) -> (u64, u64) {
    let page = match page {
        0 => 1,
        n if n > 0 => n as u64,
        _ => {
            v.add("page", "must be 1 or more");
            1
        }
    };
    let per_page = validation::page_size(v, "per_page", per_page, 50, 100);
    if (page - 1) * per_page > validation::MAX_PAGE_OFFSET {
        v.add("page", "is beyond the end of the results");
    }
    (page, per_page)
}

/// The `service_at_location` for venue `index` of a service document, with the
/// service it belongs to (its list fields) nested as ORUK lists show it.
fn service_at_location_doc(service: &Value, index: usize) -> Option<Value> {
    let mut doc = service["service_at_locations"].get(index)?.clone();
    let summary: serde_json::Map<String, Value> = [
        "id",
        "organization_id",
        "name",
        "description",
        "url",
        "email",
        "status",
        "minimum_age",
        "maximum_age",
        "assured_date",
        "last_modified",
        "organization",
    ]
    .iter()
    .filter_map(|k| service.get(*k).map(|value| (k.to_string(), value.clone())))
    .collect();
    doc["service"] = json!(summary);
    Some(doc)
}

fn parse_day(v: &mut Violations, day: &str) -> Option<Weekday> {
    let day = day.trim().to_ascii_lowercase();
    if day.is_empty() {
        return None;
    }
    let days = [
        ("mo", "monday", Weekday::Mon),
        ("tu", "tuesday", Weekday::Tue),
        ("we", "wednesday", Weekday::Wed),
        ("th", "thursday", Weekday::Thu),
        ("fr", "friday", Weekday::Fri),
        ("sa", "saturday", Weekday::Sat),
        ("su", "sunday", Weekday::Sun),
    ];
    let found = days
        .iter()
        .find(|(code, name, _)| day == *code || day == *name)
        .map(|(_, _, d)| *d);
    if found.is_none() {
        v.add(
            "day",
            "must be MO, TU, WE, TH, FR, SA or SU (or the day's name)",
        );
    }
    found
}

/// A local time ("18:00" or "18:00:00") in minutes after midnight.
fn parse_time(v: &mut Violations, field: &str, value: &str) -> Option<u16> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match NaiveTime::parse_from_str(value, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(value, "%H:%M"))
    {
        Ok(t) => Some((t.hour() * 60 + t.minute()) as u16),
        Err(_) => {
            v.add(field, "must be a local time such as 18:00");
            None
        }
    }
}

/// Documents one import may carry.
const MAX_IMPORTED: usize = 100;

impl ListingsApi {
    pub(super) async fn import_open_referral(
        &self,
        caller: &selfhelp_core::caller::Caller,
        req: pb::ImportOpenReferralRequest,
        trace: &selfhelp_platform::trace::TraceParent,
    ) -> Result<pb::ImportOpenReferralResponse, ServiceError> {
        if !caller.is_operator_of(&self.region) {
            return Err(ServiceError::PermissionDenied(
                "only the region's operators import groups",
            ));
        }
        let mut v = Violations::new();
        match req.services_json.len() {
            0 => v.add("services_json", "give at least one service document"),
            n if n > MAX_IMPORTED => v.add(
                "services_json",
                format!("at most {MAX_IMPORTED} documents at once"),
            ),
            _ => {}
        }
        v.into_result()?;
        let taxonomy = self.taxonomy().await?;
        let today = self.today();
        let mut results = Vec::with_capacity(req.services_json.len());
        for json in &req.services_json {
            results.push(
                self.import_one(caller, json, &taxonomy, today, req.dry_run, trace)
                    .await?,
            );
        }
        Ok(pb::ImportOpenReferralResponse { results })
    }

    /// One document: refused with its problems, or imported (or, in a dry
    /// run, found importable), or found already here.
    async fn import_one(
        &self,
        caller: &selfhelp_core::caller::Caller,
        json: &str,
        taxonomy: &[topics::TopicNode],
        today: chrono::NaiveDate,
        dry_run: bool,
        trace: &selfhelp_platform::trace::TraceParent,
    ) -> Result<pb::ImportResult, ServiceError> {
        let refused = |source_id: String, name: String, problems: Vec<String>| pb::ImportResult {
            source_id,
            name,
            group_id: String::new(),
            outcome: pb::ImportOutcome::Refused as i32,
            problems,
        };
        let doc: Value = match serde_json::from_str(json) {
            Ok(doc) => doc,
            Err(e) => {
                let problem = format!("document: not JSON ({e})");
                return Ok(refused(String::new(), String::new(), vec![problem]));
            }
        };
        let source = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let draft = match crate::oruk::import::draft(&doc, &self.region, today) {
            Ok(draft) => draft,
            Err(problems) => return Ok(refused(source("id"), source("name"), problems)),
        };
        let mut problems: Vec<String> = Vec::new();
        let card = crate::domain::group::validate(card_draft!(draft.card.clone()), taxonomy);
        let schedule = draft.schedule.as_ref().map(|s| {
            crate::domain::schedule::validate(&super::schedule::draft_from_wire(s), today)
        });
        if let Err(violations) = &card {
            problems.extend(violations.iter().map(|(f, d)| format!("{f}: {d}")));
        }
        if let Some(Err(violations)) = &schedule {
            problems.extend(
                violations
                    .iter()
                    .map(|(f, d)| format!("schedules.{f}: {d}")),
            );
        }
        let (Ok(card), Some(Ok(_)) | None) = (card, &schedule) else {
            return Ok(refused(draft.source_id, draft.name, problems));
        };
        let result = |outcome: pb::ImportOutcome| pb::ImportResult {
            source_id: draft.source_id.clone(),
            name: draft.name.clone(),
            group_id: draft.group_id.clone(),
            outcome: outcome as i32,
            problems: Vec::new(),
        };
        let schedule = schedule.and_then(Result::ok);
        let here = store::find(&self.read, &draft.group_id).await?;
        if let Some(other) = here.as_ref().filter(|g| g.region != self.region) {
            let problem = format!(
                "id: {} is a group of another region ({})",
                draft.group_id, other.region
            );
            return Ok(refused(draft.source_id, draft.name, vec![problem]));
        }
        if dry_run || here.is_some() {
            return Ok(result(if here.is_some() {
                pb::ImportOutcome::AlreadyPresent
            } else {
                pb::ImportOutcome::WouldImport
            }));
        }
        let assured_at_ms = draft
            .assured_date
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .map_or_else(
                || self.clock.now_ms(),
                |noon| noon.and_utc().timestamp_millis(),
            );
        let meeting = schedule
            .as_ref()
            .map(|s| (s, super::schedule::schedule_changed(Some(s), &self.tz)));
        let imported = self
            .workflow
            .import_group(
                &self.region,
                &caller.person_id,
                &draft.group_id,
                &card,
                meeting,
                assured_at_ms,
                trace,
            )
            .await?;
        if imported.is_some() {
            tracing::info!(group_id = %draft.group_id, source_id = %draft.source_id, "group imported");
        }
        Ok(result(if imported.is_some() {
            pb::ImportOutcome::Imported
        } else {
            pb::ImportOutcome::AlreadyPresent
        }))
    }
}
