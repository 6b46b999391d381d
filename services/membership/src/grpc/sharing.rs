//! Many hands: who held the duties at the meetings that took place, whether
//! the work is shared (organisers), and each member's own record and what
//! they are willing to do.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate, TimeZone};
use selfhelp_core::time::to_timestamp;
use selfhelp_core::validation::Violations;
use selfhelp_proto::membership::v1 as pb;
use tonic::Request;

use super::{MembershipApi, uuid_field};
use crate::domain::membership::{Role, State};
use crate::domain::sharing::{busiest_fifth_share, quarters};
use crate::error::{MEMBERSHIP_NOT_FOUND, ServiceError};
use crate::store::{meetings, membership, rota, sharing};

const MAX_WILLING: usize = 20;
/// Willing members offered per duty.
const OFFERED: usize = 10;
/// Remembered meetings listed for correction.
const LISTED_RECORDS: usize = 50;
const FORMER_MEMBER: &str = "A former member";
const NOT_COUNTED: &str = "Someone not counted";

/// A period's dates: `from`/`to` as typed, or the year up to `today`.
fn period(v: &mut Violations, from: &str, to: &str, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let mut date = |field: &str, typed: &str| -> Option<NaiveDate> {
        let typed = typed.trim();
        if typed.is_empty() {
            return None;
        }
        match typed.parse::<NaiveDate>() {
            Ok(d) => Some(d),
            Err(_) => {
                v.add(field, "must be a date like 2026-01-31");
                None
            }
        }
    };
    let to = date("to_date", to).unwrap_or(today);
    let from = date("from_date", from).unwrap_or_else(|| {
        to.checked_sub_months(chrono::Months::new(12))
            .and_then(|d| d.succ_opt())
            .unwrap_or(to)
    });
    if from > to {
        v.add("to_date", "must not be before from_date");
    } else if (to - from).num_days() > 3 * 366 {
        v.add("from_date", "the period may be at most three years");
    }
    (from, to)
}

/// The instant a local date begins.
fn midnight(tz: chrono_tz::Tz, d: NaiveDate) -> i64 {
    // Where a clock change skips midnight, the day begins at the first hour
    // that exists.
    (0..3)
        .find_map(|h| {
            tz.from_local_datetime(&d.and_hms_opt(h, 0, 0)?)
                .earliest()
                .map(|t| t.timestamp_millis())
        })
        .unwrap_or_else(|| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis()
        })
}

/// Whether `person` (as a record holds them) is left out of the figures:
/// they said so, or said so before they were erased.
fn uncounted(person: &str, not_counted: &[String]) -> bool {
    person.starts_with(sharing::UNCOUNTED) || not_counted.iter().any(|p| p == person)
}

/// Each counted person's turns per duty among `records`.
fn tally(
    records: &[sharing::record::Model],
    not_counted: &[String],
) -> HashMap<String, BTreeMap<String, u32>> {
    let mut by_person: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    for r in records {
        if r.person_id.is_empty() || uncounted(&r.person_id, not_counted) {
            continue;
        }
        *by_person
            .entry(r.person_id.clone())
            .or_default()
            .entry(r.duty.clone())
            .or_default() += 1;
    }
    by_person
}

/// Each person's turns in `tally`, with a 0 for each of `everyone` not in it.
fn counts(tally: &HashMap<String, BTreeMap<String, u32>>, everyone: &[String]) -> Vec<u32> {
    let mut counts: Vec<u32> = tally.values().map(|d| d.values().sum()).collect();
    counts.extend(
        everyone
            .iter()
            .filter(|p| !tally.contains_key(*p))
            .map(|_| 0),
    );
    counts
}

impl MembershipApi {
    /// The group's time zone (its meetings'), and every meeting that has
    /// begun remembered first.
    async fn remembered(&self, group_id: &str) -> Result<chrono_tz::Tz, ServiceError> {
        for r in rota::for_group(&self.db, group_id).await? {
            crate::workflow::remember_turns(&self.db, &r, self.clock.now()).await?;
        }
        Ok(meetings::load(&self.db, group_id)
            .await?
            .map_or(chrono_tz::Europe::London, |m| m.tz))
    }

    pub(super) async fn sharing(
        &self,
        request: Request<pb::GetSharingRequest>,
    ) -> Result<pb::Sharing, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        // The dates as typed are checked before anything is read; the year up
        // to today is the group's own today, known once it is read.
        period(
            &mut v,
            &req.from_date,
            &req.to_date,
            self.clock.now().date_naive(),
        );
        v.into_result()?;
        self.managing(&request, &group_id, &caller.person_id)
            .await?;
        let tz = self.remembered(&group_id).await?;
        let today = self.clock.now().with_timezone(&tz).date_naive();
        let (from, to) = period(&mut Violations::new(), &req.from_date, &req.to_date, today);
        let end = to.succ_opt().unwrap_or(to);
        let records =
            sharing::records(&self.db, &group_id, midnight(tz, from), midnight(tz, end)).await?;
        let members = membership::all_in_states(&self.db, &group_id, &[State::Active]).await?;
        let settings: HashMap<String, sharing::Model> = sharing::for_group(&self.db, &group_id)
            .await?
            .into_iter()
            .map(|s| (s.person_id.clone(), s))
            .collect();
        let not_counted: Vec<String> = settings
            .values()
            .filter(|s| !s.counted)
            .map(|s| s.person_id.clone())
            .collect();
        let counted: Vec<&membership::Model> = members
            .iter()
            .filter(|m| !not_counted.contains(&m.person_id))
            .collect();
        let everyone: Vec<String> = counted.iter().map(|m| m.person_id.clone()).collect();
        let name_of = |m: &membership::Model| {
            if m.display_name.is_empty() {
                "A member".to_string()
            } else {
                m.display_name.clone()
            }
        };
        let all = tally(&records, &not_counted);
        let mut shares: Vec<pb::MemberShare> = counted
            .iter()
            .map(|m| {
                let duties = all.get(&m.person_id).cloned().unwrap_or_default();
                let turns: u32 = duties.values().sum();
                pb::MemberShare {
                    display_name: name_of(m),
                    membership_id: m.id.clone(),
                    turns: turns as i32,
                    duties: duty_counts(&duties),
                    roles: match m.role() {
                        Role::Organiser => vec!["organiser".into()],
                        Role::CoOrganiser => vec!["co-organiser".into()],
                        _ => Vec::new(),
                    },
                    never_asked: turns == 0,
                    willing: settings
                        .get(&m.person_id)
                        .map(|s| s.willing())
                        .unwrap_or_default(),
                }
            })
            .collect();
        // Turns of people no longer members (left, or erased) still count.
        for (person, duties) in &all {
            if !everyone.contains(person) {
                let turns: u32 = duties.values().sum();
                shares.push(pb::MemberShare {
                    display_name: FORMER_MEMBER.into(),
                    turns: turns as i32,
                    duties: duty_counts(duties),
                    ..Default::default()
                });
            }
        }
        shares.sort_by(|a, b| {
            b.turns
                .cmp(&a.turns)
                .then_with(|| a.display_name.cmp(&b.display_name))
        });
        let turns: i32 = shares.iter().map(|s| s.turns).sum();
        let figure =
            busiest_fifth_share(&shares.iter().map(|s| s.turns as u32).collect::<Vec<_>>());
        let starts = quarters(from, to);
        let mut trend = Vec::new();
        for (i, start) in starts.iter().enumerate() {
            let until = starts.get(i + 1).copied().unwrap_or(end);
            let (a, b) = (midnight(tz, *start), midnight(tz, until));
            let within: Vec<sharing::record::Model> = records
                .iter()
                .filter(|r| r.starts_at_ms >= a && r.starts_at_ms < b)
                .cloned()
                .collect();
            let quarter = tally(&within, &not_counted);
            let counts = counts(&quarter, &everyone);
            let total: u32 = counts.iter().sum();
            if total > 0 {
                trend.push(pb::PeriodShare {
                    from_date: start.to_string(),
                    turns: total as i32,
                    busiest_fifth_share: busiest_fifth_share(&counts),
                });
            }
        }
        let mut willing: Vec<&pb::MemberShare> =
            shares.iter().filter(|s| !s.willing.is_empty()).collect();
        willing.sort_by_key(|s| s.turns);
        let by_person: HashMap<&str, &membership::Model> =
            members.iter().map(|m| (m.person_id.as_str(), m)).collect();
        let offers = self
            .offers(&group_id, &members, &settings, &all, &not_counted)
            .await?;
        let records = records
            .iter()
            .take(LISTED_RECORDS)
            .map(|r| {
                let held = by_person.get(r.person_id.as_str());
                pb::DutyRecord {
                    meeting_key: r.meeting_key.clone(),
                    starts_at: Some(to_timestamp(r.starts_at_ms)),
                    duty: r.duty.clone(),
                    held_by: if r.person_id.is_empty() {
                        String::new()
                    } else if uncounted(&r.person_id, &not_counted) {
                        NOT_COUNTED.into()
                    } else {
                        held.map_or_else(|| FORMER_MEMBER.into(), |m| name_of(m))
                    },
                    // Nothing that would name someone not counted.
                    membership_id: held
                        .filter(|_| !uncounted(&r.person_id, &not_counted))
                        .map(|m| m.id.clone())
                        .unwrap_or_default(),
                    corrected: r.corrected,
                }
            })
            .collect();
        Ok(pb::Sharing {
            group_id,
            from_date: from.to_string(),
            to_date: to.to_string(),
            turns,
            busiest_fifth_share: figure,
            trend,
            willing_least: willing
                .iter()
                .take(5)
                .map(|s| s.display_name.clone())
                .collect(),
            members: shares,
            records,
            offers,
        })
    }

    /// For each duty some active member would do, the willing members who did
    /// it least in the period first (fewest turns in all next), why them, and
    /// a rota order that offers them the next turns.
    async fn offers(
        &self,
        group_id: &str,
        members: &[membership::Model],
        settings: &HashMap<String, sharing::Model>,
        turns: &HashMap<String, BTreeMap<String, u32>>,
        not_counted: &[String],
    ) -> Result<Vec<pb::DutyOffer>, ServiceError> {
        let willing_of = |m: &membership::Model| {
            settings
                .get(&m.person_id)
                .map(|s| s.willing())
                .unwrap_or_default()
        };
        let mut duties: Vec<String> = members.iter().flat_map(willing_of).collect();
        duties.sort();
        duties.dedup();
        let rotas = rota::for_group(&self.db, group_id).await?;
        let mut offers = Vec::new();
        for duty in duties {
            let done = |m: &membership::Model| {
                let mine = turns.get(&m.person_id);
                let of_duty = mine.and_then(|d| d.get(&duty)).copied().unwrap_or(0);
                let all: u32 = mine.map(|d| d.values().sum()).unwrap_or(0);
                (of_duty, all)
            };
            let mut willing: Vec<&membership::Model> = members
                .iter()
                .filter(|m| willing_of(m).contains(&duty))
                .collect();
            // Those not counted come after the counted, whose turns are known.
            willing.sort_by(|a, b| {
                let hidden = |m: &membership::Model| uncounted(&m.person_id, not_counted);
                hidden(a)
                    .cmp(&hidden(b))
                    .then_with(|| done(a).cmp(&done(b)))
                    .then_with(|| a.display_name.cmp(&b.display_name))
            });
            willing.truncate(OFFERED);
            let offered = willing
                .iter()
                .map(|m| {
                    let (of_duty, _) = done(m);
                    let why = if uncounted(&m.person_id, not_counted) {
                        format!("said they would do {duty}")
                    } else if of_duty == 0 {
                        format!("said they would do {duty}, and has not done it in this period")
                    } else {
                        format!(
                            "said they would do {duty}, and has done it {of_duty} {} in this period",
                            if of_duty == 1 { "time" } else { "times" }
                        )
                    };
                    pb::OfferedMember {
                        display_name: if m.display_name.is_empty() {
                            "A member".into()
                        } else {
                            m.display_name.clone()
                        },
                        membership_id: m.id.clone(),
                        why,
                    }
                })
                .collect();
            let mut order: Vec<String> = willing.iter().map(|m| m.id.clone()).collect();
            if let Some(r) = rotas.iter().find(|r| r.duty == duty) {
                for person in r.volunteers() {
                    if let Some(m) = members.iter().find(|m| m.person_id == person)
                        && !order.contains(&m.id)
                    {
                        order.push(m.id.clone());
                    }
                }
            }
            // A rota takes at most 50 volunteers.
            order.truncate(50);
            offers.push(pb::DutyOffer {
                duty,
                members: offered,
                proposed_order_membership_ids: order,
            });
        }
        Ok(offers)
    }

    pub(super) async fn correct_record(
        &self,
        request: Request<pb::CorrectDutyRecordRequest>,
    ) -> Result<pb::DutyRecord, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        v.line("meeting_key", req.meeting_key.trim(), true, 40);
        v.line("duty", req.duty.trim(), true, 40);
        let membership_id = if req.membership_id.trim().is_empty() {
            String::new()
        } else {
            uuid_field(&mut v, "membership_id", &req.membership_id)
        };
        v.into_result()?;
        self.managing(&request, &group_id, &caller.person_id)
            .await?;
        let held = if membership_id.is_empty() {
            None
        } else {
            let m = membership::find(&self.db, &membership_id)
                .await?
                .filter(|m| m.group_id == group_id && m.state() == State::Active)
                .ok_or(MEMBERSHIP_NOT_FOUND)?;
            Some(m)
        };
        self.remembered(&group_id).await?;
        let duty = req.duty.trim().to_lowercase();
        let person = held.as_ref().map_or("", |m| m.person_id.as_str());
        let corrected =
            sharing::correct(&self.db, &group_id, req.meeting_key.trim(), &duty, person)
                .await?
                .ok_or(ServiceError::NotFound(
                    "no meeting that took place is remembered with that key and duty",
                ))?;
        Ok(pb::DutyRecord {
            meeting_key: corrected.meeting_key,
            starts_at: Some(to_timestamp(corrected.starts_at_ms)),
            duty: corrected.duty,
            held_by: held
                .as_ref()
                .map(|m| {
                    if m.display_name.is_empty() {
                        "A member".to_string()
                    } else {
                        m.display_name.clone()
                    }
                })
                .unwrap_or_default(),
            membership_id,
            corrected: true,
        })
    }

    pub(super) async fn my_sharing(
        &self,
        request: Request<pb::GetMySharingRequest>,
    ) -> Result<pb::MySharing, ServiceError> {
        let caller = self.caller(&request)?;
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &request.get_ref().group_id);
        v.into_result()?;
        self.member_of(&request, &group_id, &caller.person_id)
            .await?;
        self.my_sharing_now(&group_id, &caller.person_id).await
    }

    async fn my_sharing_now(
        &self,
        group_id: &str,
        person: &str,
    ) -> Result<pb::MySharing, ServiceError> {
        let tz = self.remembered(group_id).await?;
        let now = self.clock.now().with_timezone(&tz);
        let new_year = NaiveDate::from_ymd_opt(now.year(), 1, 1).unwrap_or_default();
        let records =
            sharing::records(&self.db, group_id, midnight(tz, new_year), i64::MAX).await?;
        let mine: Vec<sharing::record::Model> = records
            .into_iter()
            .filter(|r| r.person_id == person)
            .collect();
        let duties = tally(&mine, &[]).remove(person).unwrap_or_default();
        let held = sharing::find(&self.db, group_id, person).await?;
        Ok(pb::MySharing {
            group_id: group_id.to_string(),
            this_year: duty_counts(&duties),
            willing: held.as_ref().map(|s| s.willing()).unwrap_or_default(),
            skills: held.as_ref().map(|s| s.skills.clone()).unwrap_or_default(),
            counted: held.is_none_or(|s| s.counted),
        })
    }

    pub(super) async fn set_my_sharing(
        &self,
        request: Request<pb::SetMySharingRequest>,
    ) -> Result<pb::MySharing, ServiceError> {
        let caller = self.caller(&request)?;
        let req = request.get_ref();
        let mut v = Violations::new();
        let group_id = uuid_field(&mut v, "group_id", &req.group_id);
        if req.willing.len() > MAX_WILLING {
            v.add("willing", format!("at most {MAX_WILLING} duties"));
        }
        let mut willing: Vec<String> = Vec::new();
        for (i, w) in req.willing.iter().enumerate() {
            let field = format!("willing[{i}]");
            v.line(&field, w.trim(), true, 40);
            let w = w.trim().to_lowercase();
            if !w.is_empty() && !willing.contains(&w) {
                willing.push(w);
            }
        }
        v.text("skills", req.skills.trim(), false, 500);
        v.into_result()?;
        self.member_of(&request, &group_id, &caller.person_id)
            .await?;
        sharing::set(
            &self.db,
            sharing::Model {
                group_id: group_id.clone(),
                person_id: caller.person_id.clone(),
                willing_json: serde_json::to_string(&willing).expect("strings serialise"),
                skills: req.skills.trim().to_string(),
                counted: req.counted,
                updated_at_ms: self.clock.now_ms(),
            },
        )
        .await?;
        self.my_sharing_now(&group_id, &caller.person_id).await
    }
}

fn duty_counts(duties: &BTreeMap<String, u32>) -> Vec<pb::DutyCount> {
    duties
        .iter()
        .map(|(duty, turns)| pb::DutyCount {
            duty: duty.clone(),
            turns: *turns as i32,
        })
        .collect()
}
