//! The public cards of the region's published groups, kept in memory beside the
//! search index and maintained with it (built at start, refreshed when a group
//! changes on any replica, rebuilt on a timer). A group's page and a search page
//! seen by the public then touch no database: reading a row, its exceptions and
//! expanding its schedule on every call cost more than the call itself.
//!
//! A card holds the group as the public sees it, rendered once by the gRPC layer
//! (see [`Render`]), plus what changes with the clock: the next meetings are
//! worked out again only once the first of them has started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use selfhelp_proto::listings::v1 as pb;

use crate::domain::schedule::{Exception, Schedule};
use crate::store::exception;
use crate::store::group::Model;

/// Renders a group as the public sees it (no next meetings; they depend on the time).
pub type Render = Arc<dyn Fn(&Model, &[exception::Model]) -> pb::Group + Send + Sync>;

/// Cards by group id.
pub type Cards = Arc<RwLock<HashMap<String, Arc<Card>>>>;

/// Next meetings are worked out again at least this often, whatever the schedule.
const MEETINGS_AT_MOST_MS: i64 = 3_600_000;

pub struct Card {
    pub region: String,
    /// Who may see more than the public (checked on every read).
    pub organisers: Vec<String>,
    pub assured_at_ms: Option<i64>,
    /// The public view, without next meetings.
    pub wire: pb::Group,
    pub schedule: Option<Schedule>,
    pub exceptions: Vec<Exception>,
    /// The next meetings as last worked out, and until when (ms) they hold.
    meetings: Mutex<Option<(i64, Vec<pb::Occurrence>)>>,
}

impl Card {
    pub fn new(group: &Model, exceptions: &[exception::Model], render: &Render) -> Card {
        Card {
            region: group.region.clone(),
            organisers: group.organiser_ids(),
            assured_at_ms: group.assured_at_ms,
            wire: render(group, exceptions),
            schedule: group.schedule(),
            exceptions: exceptions
                .iter()
                .filter_map(exception::Model::exception)
                .collect(),
            meetings: Mutex::new(None),
        }
    }

    /// The first `limit` next meetings at `now_ms`: kept from the last time
    /// unless the first of them has started since (or an hour has passed);
    /// otherwise `work_out` gives them afresh with the start (ms) of the first.
    pub fn next_meetings(
        &self,
        now_ms: i64,
        limit: usize,
        work_out: impl FnOnce() -> (Vec<pb::Occurrence>, Option<i64>),
    ) -> Vec<pb::Occurrence> {
        let mut kept = self.meetings.lock().expect("meetings lock");
        if let Some((until, meetings)) = kept.as_ref()
            && now_ms < *until
        {
            return meetings.iter().take(limit).cloned().collect();
        }
        let (meetings, first_starts_ms) = work_out();
        let until = first_starts_ms
            .unwrap_or(i64::MAX)
            .min(now_ms + MEETINGS_AT_MOST_MS);
        let wanted = meetings.iter().take(limit).cloned().collect();
        *kept = Some((until, meetings));
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            region: "r".into(),
            organisers: Vec::new(),
            assured_at_ms: None,
            wire: pb::Group::default(),
            schedule: None,
            exceptions: Vec::new(),
            meetings: Mutex::new(None),
        }
    }

    fn meeting(date: &str) -> pb::Occurrence {
        pb::Occurrence {
            local_date: date.into(),
            ..Default::default()
        }
    }

    #[test]
    fn meetings_are_worked_out_again_once_the_first_has_started() {
        let c = card();
        let asked = std::cell::Cell::new(0);
        let ask = |now: i64, first: i64| {
            c.next_meetings(now, 5, || {
                asked.set(asked.get() + 1);
                (vec![meeting(&format!("d{first}"))], Some(first))
            })
        };
        assert_eq!(ask(0, 1_000)[0].local_date, "d1000");
        // Before the first meeting starts, the kept answer stands.
        assert_eq!(ask(999, 5_000)[0].local_date, "d1000");
        // Once it has started, they are worked out again.
        assert_eq!(ask(1_000, 5_000)[0].local_date, "d5000");
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn without_meetings_the_answer_is_kept_for_an_hour_at_most() {
        let c = card();
        let asked = std::cell::Cell::new(0);
        let ask = |now: i64| {
            c.next_meetings(now, 5, || {
                asked.set(asked.get() + 1);
                (Vec::new(), None)
            })
        };
        ask(0);
        ask(MEETINGS_AT_MOST_MS - 1);
        ask(MEETINGS_AT_MOST_MS);
        assert_eq!(asked.get(), 2);
    }
}
