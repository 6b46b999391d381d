//! The public cards of the region's published groups, kept in memory beside the
//! search index and maintained with it (built at start, refreshed when a group
//! changes on any replica, rebuilt on a timer). A group's page and a search page
//! seen by the public then touch no database: reading a row, its exceptions and
//! expanding its schedule on every call cost more than the call itself.
//!
//! A card holds the group as the public sees it, rendered once by the gRPC layer
//! (see [`Render`]) and kept encoded, plus what changes with the clock: the next
//! meetings, also kept encoded, are worked out again only once the first of them
//! has started. An answer is those bytes one after another (ADR 25).

use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use prost::bytes::Bytes;
use selfhelp_proto::listings::v1 as pb;

use crate::domain::schedule::{Exception, Schedule};
use crate::store::exception;
use crate::store::group::Model;

/// Renders a group as the public sees it (no next meetings; they depend on the time).
pub type Render = Arc<dyn Fn(&Model, &[exception::Model]) -> pb::Group + Send + Sync>;

/// Cards by group id (ids are ours: a quick hash, looked up for every hit).
pub type CardMap = foldhash::HashMap<String, Arc<Card>>;
pub type Cards = Arc<RwLock<CardMap>>;

/// Next meetings are worked out again at least this often, whatever the schedule.
const MEETINGS_AT_MOST_MS: i64 = 3_600_000;

/// `Group.next_occurrences`, the field each kept meeting is encoded as.
const NEXT_OCCURRENCES_FIELD: u32 = 17;

/// A card keeps the public view encoded, as the answers send it (ADR 25): the
/// bytes are a third of the decoded struct and its strings, and an answer
/// copies them instead of cloning and encoding every field again.
pub struct Card {
    pub region: String,
    /// Who may see more than the public (checked on every read).
    pub organisers: Vec<String>,
    pub assured_at_ms: Option<i64>,
    /// The public view as encoded `Group` fields, without next meetings,
    /// exceptions and `recently_checked` (they are sent after it).
    encoded: Bytes,
    /// The exceptions as encoded `Group` fields (a group page shows them).
    encoded_exceptions: Bytes,
    pub schedule: Option<Schedule>,
    pub exceptions: Vec<Exception>,
    /// The next meetings as last worked out, and until when (ms) they hold.
    meetings: Mutex<Option<KeptMeetings>>,
}

/// Next meetings encoded one after another as `Group.next_occurrences`.
struct KeptMeetings {
    until_ms: i64,
    encoded: Bytes,
    /// Where each meeting's bytes end, so the first few are one slice.
    ends: Box<[u32]>,
}

impl Card {
    pub fn new(group: &Model, exceptions: &[exception::Model], render: &Render) -> Card {
        let mut public = render(group, exceptions);
        let shown_exceptions = pb::Group {
            exceptions: std::mem::take(&mut public.exceptions),
            ..Default::default()
        };
        public.next_occurrences = Vec::new();
        public.recently_checked = false;
        Card {
            region: group.region.clone(),
            organisers: group.organiser_ids(),
            assured_at_ms: group.assured_at_ms,
            encoded: public.encode_to_vec().into(),
            encoded_exceptions: shown_exceptions.encode_to_vec().into(),
            schedule: group.schedule(),
            exceptions: exceptions
                .iter()
                .filter_map(exception::Model::exception)
                .collect(),
            meetings: Mutex::new(None),
        }
    }

    /// The public view without next meetings or `recently_checked`, as the
    /// published type (decoded: for the readers that are not on the hot path).
    pub fn public_view(&self) -> pb::Group {
        let mut bytes = Vec::with_capacity(self.encoded.len() + self.encoded_exceptions.len());
        bytes.extend_from_slice(&self.encoded);
        bytes.extend_from_slice(&self.encoded_exceptions);
        pb::Group::decode(bytes.as_slice()).expect("a card decodes as it was encoded")
    }

    /// The public view's encoded fields (without next meetings and exceptions).
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// The exceptions' encoded `Group` fields.
    pub fn encoded_exceptions(&self) -> &Bytes {
        &self.encoded_exceptions
    }

    /// The first `limit` next meetings at `now_ms`, encoded as
    /// `Group.next_occurrences` fields: kept from the last time unless the
    /// first of them has started since (or an hour has passed); otherwise
    /// `work_out` gives them afresh with the start (ms) of the first.
    pub fn next_meetings(
        &self,
        now_ms: i64,
        limit: usize,
        work_out: impl FnOnce() -> (Vec<pb::Occurrence>, Option<i64>),
    ) -> Bytes {
        let mut kept = self.meetings.lock().expect("meetings lock");
        if let Some(meetings) = kept.as_ref()
            && now_ms < meetings.until_ms
        {
            return meetings.first(limit);
        }
        let (meetings, first_starts_ms) = work_out();
        let until_ms = first_starts_ms
            .unwrap_or(i64::MAX)
            .min(now_ms + MEETINGS_AT_MOST_MS);
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(meetings.len());
        for meeting in &meetings {
            prost::encoding::message::encode(NEXT_OCCURRENCES_FIELD, meeting, &mut encoded);
            ends.push(u32::try_from(encoded.len()).expect("a few meetings are small"));
        }
        let fresh = KeptMeetings {
            until_ms,
            encoded: encoded.into(),
            ends: ends.into(),
        };
        let wanted = fresh.first(limit);
        *kept = Some(fresh);
        wanted
    }
}

impl KeptMeetings {
    fn first(&self, limit: usize) -> Bytes {
        match limit.min(self.ends.len()) {
            0 => Bytes::new(),
            n => self.encoded.slice(..self.ends[n - 1] as usize),
        }
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
            encoded: Bytes::new(),
            encoded_exceptions: Bytes::new(),
            schedule: None,
            exceptions: Vec::new(),
            meetings: Mutex::new(None),
        }
    }

    /// The meetings in `encoded`, read as a group's next occurrences.
    fn dates(encoded: Bytes) -> Vec<String> {
        pb::Group::decode(encoded)
            .unwrap()
            .next_occurrences
            .into_iter()
            .map(|o| o.local_date)
            .collect()
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
            dates(c.next_meetings(now, 5, || {
                asked.set(asked.get() + 1);
                (vec![meeting(&format!("d{first}"))], Some(first))
            }))
        };
        assert_eq!(ask(0, 1_000), ["d1000"]);
        // Before the first meeting starts, the kept answer stands.
        assert_eq!(ask(999, 5_000), ["d1000"]);
        // Once it has started, they are worked out again.
        assert_eq!(ask(1_000, 5_000), ["d5000"]);
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn the_first_few_kept_meetings_are_sent_in_order() {
        let c = card();
        let five = || {
            let all = ["a", "b", "c", "d", "e"].map(meeting).to_vec();
            (all, Some(1_000))
        };
        assert_eq!(
            dates(c.next_meetings(0, 5, five)),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(dates(c.next_meetings(1, 1, five)), ["a"]);
        assert_eq!(dates(c.next_meetings(2, 3, five)), ["a", "b", "c"]);
        assert!(c.next_meetings(3, 0, five).is_empty());
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
