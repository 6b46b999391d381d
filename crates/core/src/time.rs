//! Time as stored: milliseconds since the Unix epoch (portable across SQLite and
//! PostgreSQL, and trivially comparable in SQL for leases and ordering).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The system clock, for bookkeeping that must agree across replicas (leases,
/// the outbox, the inbox). Behaviour that waits for a moment goes through a
/// [`Clock`] instead.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The time that decides what a service does: quiet hours, digests, reviews
/// falling due, reminders, the next meetings. A service is handed one at start
/// ([`Clock::system`] in production), so a test can move it forward with
/// [`Clock::advance`] instead of waiting for the wall clock. It keeps running
/// while moved: only an offset is added, so loops that poll still see time pass.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match self.ahead_ms.load(Ordering::Relaxed) {
            0 => now,
            ahead => now + chrono::Duration::milliseconds(ahead),
        }
    }

    /// Milliseconds since the Unix epoch, as stored.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Exponential backoff: the wait before attempt `n` of something that keeps
/// failing — `first` before the first retry, doubling each time, never more
/// than `max`. One rule for every retry in the services (redeliveries, the
/// outbox relay, deliveries, restarted workers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after the `failures`-th failure in a row (1 → `first`).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// `t` in milliseconds since the epoch; `None` for a timestamp out of range
/// (or with nanoseconds outside 0..1e9), as a caller may send.
pub fn timestamp_ms(t: &prost_types::Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    t.seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(t.nanos) / 1_000_000)
}

pub fn to_timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_splits_milliseconds() {
        let ts = to_timestamp(1_700_000_000_123);
        assert_eq!(ts.seconds, 1_700_000_000);
        assert_eq!(ts.nanos, 123_000_000);
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let waits: Vec<u128> = (0..9).map(|n| b.after(n).as_millis()).collect();
        assert_eq!(
            waits,
            [200, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]
        );
        assert_eq!(b.after(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn a_clock_moved_forward_moves_every_clone_and_keeps_running() {
        let clock = Clock::system();
        let handed_out = clock.clone();
        let before = handed_out.now_ms();
        clock.advance(Duration::from_secs(3_600));
        let after = handed_out.now_ms();
        assert!(after - before >= 3_600_000, "{before} → {after}");
        assert!(after - before < 3_660_000, "{before} → {after}");
        assert!(
            Clock::system().now_ms() < after,
            "a new clock starts at the wall clock"
        );
    }
}
