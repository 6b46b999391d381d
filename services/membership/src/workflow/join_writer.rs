//! Writing joins. Joins arriving together are written together: one
//! transaction, and one statement per table for all of them, instead of about
//! nine statements and a commit each — the database's round trips, not the
//! decisions, are what a join costs. A join waits for no timer: the writer
//! takes whatever has queued while the previous batch was being written, so
//! one join alone is written at once. A join with an invitation, one by someone
//! invited, or one repeated within a batch is written on its own, as is every
//! join of a batch that could not be written together.

use std::collections::{HashMap, HashSet};

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait, TryIntoModel};
use selfhelp_core::time::Clock;
use selfhelp_core::validation::Violations;
use selfhelp_platform::outbox::Outbox;
use selfhelp_platform::supervise::Supervisor;
use selfhelp_platform::trace::TraceParent;
use tokio::sync::{mpsc, oneshot};

use crate::domain::membership::{
    GroupFacts, JoinAttempt, JoinDecision, Role, State, check_transition, decide_join,
};
use crate::error::ServiceError;
use crate::events;
use crate::store::{consent, group_settings, invitation, membership};

/// Joins written together at most; more wait for the next batch.
const BATCH: usize = 64;
/// Batches written at the same time on PostgreSQL.
const WRITERS: usize = 2;
/// Joins waiting to be written at most before callers wait to queue theirs.
const QUEUE: usize = 1024;

/// A join that passed validation, with the group as it was checked.
pub struct NewJoin {
    pub group_id: String,
    pub person_id: String,
    pub facts: GroupFacts,
    pub consent_version: String,
    pub consent_text: String,
    pub answer: String,
    pub display_name: String,
    pub hidden: bool,
    /// An invitation code, trimmed; empty for none.
    pub code: String,
    pub trace: TraceParent,
}

impl NewJoin {
    /// The membership this join makes, in `state` with `role`.
    fn entry(&self, state: State, role: Role) -> membership::Entry<'_> {
        membership::Entry {
            group_id: &self.group_id,
            person_id: &self.person_id,
            state,
            role,
            answer: self.answer.trim(),
            display_name: self.display_name.trim(),
            hidden: self.hidden,
        }
    }
}

type Written = Result<membership::Model, ServiceError>;

/// Takes joins and writes them; clone freely. Its writers are supervised
/// workers; each ends once the last clone is dropped, after writing what was
/// queued (the gRPC server, which holds them, has drained its calls by then).
#[derive(Clone)]
pub struct JoinWriter {
    queue: mpsc::Sender<(NewJoin, oneshot::Sender<Written>)>,
    writer: Writer,
}

#[derive(Clone)]
struct Writer {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: Clock,
}

impl JoinWriter {
    /// Starts the writers as workers of `workers`. PostgreSQL gets two, so one
    /// batch forms while another waits for its commit; SQLite has one
    /// connection that writes, so one.
    pub fn start(
        db: DatabaseConnection,
        outbox: Outbox,
        clock: Clock,
        workers: &Supervisor,
    ) -> Self {
        let writers = match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => 1,
            _ => WRITERS,
        };
        let writer = Writer { db, outbox, clock };
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = std::sync::Arc::new(tokio::sync::Mutex::new(waiting));
        for n in 1..=writers {
            let (task, waiting) = (writer.clone(), waiting.clone());
            workers.spawn(format!("join writer {n}"), move || {
                let (task, waiting) = (task.clone(), waiting.clone());
                async move {
                    let mut batch = Vec::with_capacity(BATCH);
                    // The queue is held only while taking a batch, not while
                    // writing it.
                    while waiting.lock().await.recv_many(&mut batch, BATCH).await > 0 {
                        // Its own task, so a panic fails this batch's callers
                        // only (their answers are dropped: they hear STOPPING).
                        let (task, joins) = (task.clone(), std::mem::take(&mut batch));
                        if let Err(e) = tokio::spawn(async move { task.write(joins).await }).await {
                            tracing::error!(error = %e, "a batch of joins failed");
                        }
                    }
                }
            });
        }
        Self { queue, writer }
    }

    /// Writes `join`, with others queued at the same time where it can.
    pub async fn write(&self, join: NewJoin) -> Written {
        if !join.code.is_empty() {
            return self.writer.alone(&join).await;
        }
        let (done, written) = oneshot::channel();
        if self.queue.send((join, done)).await.is_err() {
            return Err(STOPPING);
        }
        written.await.unwrap_or(Err(STOPPING))
    }
}

const STOPPING: ServiceError =
    ServiceError::Unavailable("joins are not being written now; retry shortly");

/// What became of one join of a batch written together.
#[allow(clippy::large_enum_variant)] // a batch's worth, briefly
enum Outcome {
    Done(Written),
    /// Written on its own after the batch.
    Alone,
}

impl Writer {
    async fn write(&self, joins: Vec<(NewJoin, oneshot::Sender<Written>)>) {
        let (joins, replies): (Vec<NewJoin>, Vec<_>) = joins.into_iter().unzip();
        let started = std::time::Instant::now();
        let outcomes = if joins.len() == 1 {
            vec![Outcome::Alone]
        } else {
            match self.together(&joins).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::warn!(error = %e, joins = joins.len(), "joins written together failed; writing each alone");
                    joins.iter().map(|_| Outcome::Alone).collect()
                }
            }
        };
        self.outbox.wake();
        for ((join, reply), outcome) in joins.iter().zip(replies).zip(outcomes) {
            let written = match outcome {
                Outcome::Done(written) => written,
                Outcome::Alone => self.alone(join).await,
            };
            // The caller may have gone (a cancelled call): the join stands.
            let _ = reply.send(written);
        }
        tracing::debug!(
            joins = joins.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "joins written"
        );
    }

    /// Writes `joins` in one transaction, deciding each as [`Writer::alone`]
    /// would in turn. Nothing is written if any statement fails.
    async fn together(&self, joins: &[NewJoin]) -> Result<Vec<Outcome>, DbErr> {
        let now = self.clock.now_ms();
        let mut groups: Vec<&str> = joins.iter().map(|j| j.group_id.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut people: Vec<&str> = joins.iter().map(|j| j.person_id.as_str()).collect();
        people.sort_unstable();
        people.dedup();
        let limited: Vec<&str> = groups
            .iter()
            .copied()
            .filter(|g| {
                joins
                    .iter()
                    .any(|j| j.group_id == *g && j.facts.capacity > 0)
            })
            .collect();

        let txn = self.db.begin().await?;
        group_settings::lock_all(&txn, &groups, now).await?;
        let mut existing: HashMap<(String, String), membership::Model> =
            membership::of_people(&txn, &people)
                .await?
                .into_iter()
                .map(|m| ((m.group_id.clone(), m.person_id.clone()), m))
                .collect();
        let mut active = if limited.is_empty() {
            HashMap::new()
        } else {
            membership::count_active_in(&txn, &limited).await?
        };

        let mut seen = HashSet::new();
        let mut outcomes = Vec::with_capacity(joins.len());
        // Outcomes that wrote something, by index, for their consents.
        let (mut created, mut wrote, mut queued) = (Vec::new(), Vec::new(), Vec::new());
        for j in joins {
            let key = (j.group_id.clone(), j.person_id.clone());
            if !seen.insert(key.clone()) {
                outcomes.push(Outcome::Alone);
                continue;
            }
            let earlier = existing.remove(&key);
            let previous = earlier.as_ref().map(|m| m.state());
            let taken = active.get(&j.group_id).copied().unwrap_or(0);
            let attempt = JoinAttempt {
                valid_code: false,
                full: j.facts.capacity > 0 && taken >= j.facts.capacity as u64,
            };
            let decided = decide_join(&j.facts, &j.person_id, previous, attempt).and_then(|d| {
                if let (JoinDecision::Become(state, _), Some(from)) = (d, previous) {
                    check_transition(from, state)?;
                }
                Ok(d)
            });
            let (state, role) = match decided {
                Err(refusal) => {
                    outcomes.push(Outcome::Done(Err(ServiceError::FailedPrecondition(
                        refusal,
                    ))));
                    continue;
                }
                Ok(JoinDecision::Unchanged) => {
                    let m = earlier.expect("unchanged implies a row");
                    outcomes.push(Outcome::Done(Ok(m)));
                    continue;
                }
                Ok(JoinDecision::Become(state, role)) => (state, role),
            };
            if previous == Some(State::Invited) {
                match accept_invitation(&txn, j, now).await? {
                    Ok(()) => {}
                    Err(refusal) => {
                        outcomes.push(Outcome::Done(Err(refusal)));
                        continue;
                    }
                }
            }
            let entry = j.entry(state, role);
            let m = match earlier {
                // Someone coming back: their row changes (rare enough to write alone).
                Some(old) => membership::enter(&txn, Some(old), entry, now).await?,
                None => {
                    let m = membership::fresh(entry, now).try_into_model()?;
                    created.push(m.clone());
                    m
                }
            };
            if state == State::Active {
                *active.entry(j.group_id.clone()).or_default() += 1;
            }
            queued.extend(events::of_join(&self.outbox, &m, previous, &j.trace));
            wrote.push(outcomes.len());
            outcomes.push(Outcome::Done(Ok(m)));
        }
        let given: Vec<consent::Given> = wrote
            .iter()
            .filter_map(|&i| match &outcomes[i] {
                Outcome::Done(Ok(m)) => Some(consent_of(m, &joins[i])),
                _ => None,
            })
            .collect();
        membership::insert_all(&txn, &created).await?;
        consent::record_all(&txn, &given, now).await?;
        self.outbox.enqueue_all(&txn, queued).await?;
        txn.commit().await?;
        Ok(outcomes)
    }

    /// Writes one join in a transaction of its own.
    async fn alone(&self, j: &NewJoin) -> Written {
        let result = self.alone_once(j).await;
        match result {
            // A simultaneous join by the same person won the race: answer with it.
            Err(ServiceError::Db(e)) if selfhelp_platform::db::is_unique_violation(&e) => {
                membership::find_for(&self.db, &j.group_id, &j.person_id)
                    .await?
                    .ok_or(ServiceError::Db(e))
            }
            other => other,
        }
    }

    async fn alone_once(&self, j: &NewJoin) -> Written {
        let now = self.clock.now_ms();
        let txn = self.db.begin().await?;
        group_settings::lock(&txn, &j.group_id, now).await?;
        let existing = membership::find_for(&txn, &j.group_id, &j.person_id).await?;
        let used_code = if j.code.is_empty() {
            None
        } else {
            Some(valid_code(&txn, &j.code, &j.group_id, now).await?)
        };
        if let Some(inv) = used_code.as_ref().filter(|inv| inv.makes_organiser()) {
            return self.organiser_joins(txn, j, existing, inv, now).await;
        }
        let full = j.facts.capacity > 0
            && membership::count_active(&txn, &j.group_id).await? >= j.facts.capacity as u64;
        let attempt = JoinAttempt {
            valid_code: used_code.is_some(),
            full,
        };
        let previous = existing.as_ref().map(|m| m.state());
        let decision = decide_join(&j.facts, &j.person_id, previous, attempt)
            .map_err(ServiceError::FailedPrecondition)?;
        let JoinDecision::Become(state, role) = decision else {
            return Ok(existing.expect("unchanged implies a row"));
        };
        if let Some(from) = previous {
            check_transition(from, state).map_err(ServiceError::FailedPrecondition)?;
        }
        if previous == Some(State::Invited) {
            accept_invitation(&txn, j, now).await??;
        } else if let Some(inv) = &used_code
            && j.facts.join_policy != "OPEN"
            // A code counts a use only where it is what let the person in.
            && !invitation::use_once(&txn, inv).await?
        {
            return Err(code_violation("has been used up"));
        }
        let m = membership::enter(&txn, existing, j.entry(state, role), now).await?;
        consent::record_all(&txn, &[consent_of(&m, j)], now).await?;
        let queued = events::of_join(&self.outbox, &m, previous, &j.trace);
        self.outbox.enqueue_all(&txn, queued).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(m)
    }
}

impl Writer {
    /// `j` came with an invitation to organise the group: they are its
    /// organiser from now on, an active member whatever the policy or
    /// capacity (a member already is given the role). Listings hears of it
    /// from the role event, as of any organiser.
    async fn organiser_joins(
        &self,
        txn: sea_orm::DatabaseTransaction,
        j: &NewJoin,
        existing: Option<membership::Model>,
        inv: &invitation::Model,
        now: i64,
    ) -> Written {
        // Checked again here, under the group's lock: a second code, or one
        // made before listings' word of an organiser arrived, hands over
        // nothing that someone already runs.
        if !j.facts.organiser_ids.is_empty()
            || membership::count_active_with_role(&txn, &j.group_id, Role::Organiser).await? > 0
        {
            return Err(code_violation(
                "was to organise a group that has an organiser now: ask them to invite you",
            ));
        }
        if !invitation::use_once(&txn, inv).await? {
            return Err(code_violation("has been used up"));
        }
        let previous = existing.as_ref().map(|m| m.state());
        let m = match (existing, previous) {
            (_, Some(State::Banned)) => {
                return Err(ServiceError::FailedPrecondition(
                    "you cannot join this group".into(),
                ));
            }
            (Some(m), Some(State::Active)) => {
                if m.role() != Role::Organiser {
                    let duties = m.duties();
                    let m = membership::set_role(&txn, m, Role::Organiser, &duties, now).await?;
                    events::record_role_changed(&txn, &self.outbox, &m, Some(&j.trace)).await?;
                    m
                } else {
                    m
                }
            }
            (existing, _) => {
                if let Some(from) = previous {
                    check_transition(from, State::Active)
                        .map_err(ServiceError::FailedPrecondition)?;
                }
                let m =
                    membership::enter(&txn, existing, j.entry(State::Active, Role::Organiser), now)
                        .await?;
                consent::record_all(&txn, &[consent_of(&m, j)], now).await?;
                let queued = events::of_join(&self.outbox, &m, previous, &j.trace);
                self.outbox.enqueue_all(&txn, queued).await?;
                m
            }
        };
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(group_id = %m.group_id, "an invitation to organise was used");
        Ok(m)
    }
}

/// Uses up the personal invitation of someone invited who joins; refused
/// (the inner error) when it has expired or been used.
async fn accept_invitation(
    txn: &sea_orm::DatabaseTransaction,
    j: &NewJoin,
    now: i64,
) -> Result<Result<(), ServiceError>, DbErr> {
    let standing = invitation::personal_for(txn, &j.group_id, &j.person_id)
        .await?
        .filter(|i| i.expires_at_ms > now && i.uses < i.max_uses);
    let Some(personal) = standing else {
        return Ok(Err(ServiceError::FailedPrecondition(
            "your invitation has expired: ask the group's organisers for a new one".into(),
        )));
    };
    invitation::use_once(txn, &personal).await?;
    Ok(Ok(()))
}

/// The consent `j` gave, for its membership `m`.
fn consent_of<'a>(m: &'a membership::Model, j: &'a NewJoin) -> consent::Given<'a> {
    consent::Given {
        membership_id: &m.id,
        group_id: &j.group_id,
        person_id: &j.person_id,
        version: j.consent_version.trim(),
        text: &j.consent_text,
    }
}

/// The invitation behind `code`, if it is for this group and still usable.
pub async fn valid_code<C: sea_orm::ConnectionTrait>(
    conn: &C,
    code: &str,
    group_id: &str,
    now: i64,
) -> Result<invitation::Model, ServiceError> {
    let inv = invitation::find_by_code(conn, code)
        .await?
        .filter(|i| i.group_id == group_id)
        .ok_or_else(|| code_violation("is not an invitation to this group"))?;
    if inv.expires_at_ms <= now {
        return Err(code_violation("has expired"));
    }
    if inv.uses >= inv.max_uses {
        return Err(code_violation("has been used up"));
    }
    Ok(inv)
}

fn code_violation(why: &str) -> ServiceError {
    let mut v = Violations::new();
    v.add("invitation_code", why);
    ServiceError::Invalid(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;
    use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder};
    use sea_orm_migration::MigratorTrait;
    use selfhelp_platform::migrations::entities::outbox;
    use selfhelp_testkit::{Backend, TestDb, per_backend};

    const CAPPED: &str = "00000000-0000-4000-8000-000000000001";
    const APPROVAL: &str = "00000000-0000-4000-8000-000000000002";
    const DRAFT: &str = "00000000-0000-4000-8000-000000000003";

    fn facts(status: &str, policy: &str, capacity: i32) -> GroupFacts {
        GroupFacts {
            name: "A group".into(),
            region: "test".into(),
            status: status.into(),
            join_policy: policy.into(),
            organiser_ids: vec!["olga".into()],
            capacity,
        }
    }

    fn join(group_id: &str, person: &str) -> NewJoin {
        let facts = match group_id {
            CAPPED => facts("PUBLISHED", "OPEN", 2),
            APPROVAL => facts("PUBLISHED", "APPROVAL", 0),
            _ => facts("DRAFT", "OPEN", 0),
        };
        NewJoin {
            group_id: group_id.into(),
            person_id: person.into(),
            facts,
            consent_version: "v1".into(),
            consent_text: format!("{person} agrees"),
            answer: String::new(),
            display_name: String::new(),
            hidden: false,
            code: String::new(),
            trace: TraceParent::new_root(),
        }
    }

    /// Joins that each take a different path: a place, someone invited (who
    /// takes the last place in turn), someone whose invitation expired, the
    /// organiser of a full group, the full group, the same join twice, someone
    /// banned, someone coming back, a request, a group not open.
    fn joins() -> Vec<NewJoin> {
        vec![
            join(CAPPED, "p1"),
            join(CAPPED, "ivy"),
            join(CAPPED, "ian"),
            join(CAPPED, "olga"),
            join(CAPPED, "p2"),
            join(CAPPED, "p1"),
            join(CAPPED, "bea"),
            join(CAPPED, "leo"),
            join(APPROVAL, "p3"),
            join(DRAFT, "p4"),
        ]
    }

    async fn writer(db: &TestDb) -> Writer {
        let conn = selfhelp_platform::db::connect(&db.url, 4).await.unwrap();
        store::Migrator::up(&conn, None).await.unwrap();
        let now = 1;
        let people = [
            ("bea", State::Banned),
            ("leo", State::Left),
            ("ivy", State::Invited),
            ("ian", State::Invited),
        ];
        for (person, state) in people {
            let entry = membership::Entry {
                group_id: CAPPED,
                person_id: person,
                state,
                role: Role::Member,
                answer: "",
                display_name: "",
                hidden: false,
            };
            membership::fresh(entry, now).insert(&conn).await.unwrap();
        }
        for (person, expires_at_ms) in [("ivy", i64::MAX), ("ian", 2)] {
            let personal = invitation::NewInvitation {
                group_id: CAPPED,
                code: None,
                person_id: Some(person),
                created_by: "olga",
                max_uses: 1,
                expires_at_ms,
                organiser: false,
            };
            invitation::insert(&conn, personal, now).await.unwrap();
        }
        Writer {
            db: conn,
            outbox: Outbox::new("test", "membership"),
            clock: Clock::system(),
        }
    }

    type Answer = Result<(String, String, String), String>;

    fn answer(written: &Written) -> Answer {
        match written {
            Ok(m) => Ok((m.person_id.clone(), m.state.clone(), m.role.clone())),
            Err(e) => Err(format!("{e}")),
        }
    }

    /// What the database holds afterwards: memberships, consents, events.
    async fn held(
        w: &Writer,
    ) -> (
        Vec<(String, String, String, String, i64)>,
        Vec<String>,
        Vec<String>,
    ) {
        let memberships = membership::Entity::find()
            .order_by_asc(membership::Column::GroupId)
            .order_by_asc(membership::Column::PersonId)
            .all(&w.db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.group_id, m.person_id, m.state, m.role, m.version))
            .collect();
        let mut consents: Vec<String> = consent::Entity::find()
            .all(&w.db)
            .await
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {} {}", c.group_id, c.person_id, c.text))
            .collect();
        consents.sort();
        let mut events: Vec<String> = outbox::Entity::find()
            .all(&w.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.subject, e.ce_subject.len()))
            .collect();
        events.sort();
        (memberships, consents, events)
    }

    async fn a_batch_leaves_what_one_at_a_time_does(backend: Backend) {
        // One at a time, each in its own transaction.
        let (db, mut alone) = (TestDb::new(backend).await, Vec::new());
        let one_by_one = writer(&db).await;
        for j in joins() {
            alone.push(answer(&one_by_one.alone(&j).await));
        }

        // Together: one transaction for all but the repeat.
        let db2 = TestDb::new(backend).await;
        let batch = writer(&db2).await;
        let outcomes = batch.together(&joins()).await.unwrap();
        let alone_after: Vec<bool> = outcomes
            .iter()
            .map(|o| matches!(o, Outcome::Alone))
            .collect();
        assert_eq!(
            alone_after,
            [
                false, false, false, false, false, true, false, false, false, false
            ],
            "only the repeated join is left to write alone"
        );
        let mut together = Vec::new();
        for (j, o) in joins().iter().zip(outcomes) {
            together.push(match o {
                Outcome::Done(written) => answer(&written),
                Outcome::Alone => answer(&batch.alone(j).await),
            });
        }

        assert_eq!(together, alone, "{backend:?}: the answers");
        assert_eq!(
            together
                .iter()
                .filter(|a| a.as_ref().is_ok_and(|(_, s, _)| s == "ACTIVE"))
                .count(),
            4,
            "{backend:?}: p1 twice, ivy and the organiser: {together:?}"
        );
        assert!(
            together[2].as_ref().is_err_and(|e| e.contains("expired")),
            "{backend:?}: {together:?}"
        );
        assert_eq!(
            held(&batch).await,
            held(&one_by_one).await,
            "{backend:?}: what is held"
        );
        let (_, consents, events) = held(&batch).await;
        assert_eq!(
            consents.len(),
            6,
            "{backend:?}: p1, ivy, olga, p2, leo, p3: {consents:?}"
        );
        assert_eq!(events.len(), 7, "{backend:?}: {events:?}");
    }

    per_backend!(a_batch_leaves_what_one_at_a_time_does);
}
