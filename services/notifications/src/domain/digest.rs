//! When digests go out: daily at a local time, weekly on a weekday at that
//! time, in each person's time zone. A digest period has a key (so each is sent
//! once) and a cut-off (what was held before it goes in).

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::preferences::Cadence;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestTimes {
    /// Local time of day digests go out.
    pub send_at: NaiveTime,
    /// The day weekly digests go out.
    pub weekday: Weekday,
}

/// The latest digest moment at or before `now` for `cadence`: its key and its
/// instant. `None` for immediate cadence.
pub fn latest_period(
    cadence: Cadence,
    times: DigestTimes,
    now: DateTime<Utc>,
    tz: Tz,
) -> Option<(String, DateTime<Utc>)> {
    let local_today = now.with_timezone(&tz).date_naive();
    // Look back at most 8 days for the latest matching day whose moment has passed.
    (0..=8).find_map(|back| {
        let day = local_today - Duration::days(back);
        let matches = match cadence {
            Cadence::Immediate => return None,
            Cadence::DailyDigest => true,
            Cadence::WeeklyDigest => day.weekday() == times.weekday,
        };
        if !matches {
            return None;
        }
        let local = day.and_time(times.send_at);
        let instant = tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })?
            .with_timezone(&Utc);
        if instant > now {
            return None;
        }
        let prefix = if cadence == Cadence::DailyDigest {
            "daily"
        } else {
            "weekly"
        };
        Some((format!("{prefix}:{day}"), instant))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const TIMES: DigestTimes = DigestTimes {
        send_at: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        weekday: Weekday::Mon,
    };

    #[test]
    fn daily_period_is_todays_once_its_time_has_passed() {
        let london = chrono_tz::Europe::London;
        // 07:30 BST: still yesterday's period.
        let (key, instant) = latest_period(
            Cadence::DailyDigest,
            TIMES,
            at("2026-07-02T06:30:00Z"),
            london,
        )
        .unwrap();
        assert_eq!(key, "daily:2026-07-01");
        assert_eq!(instant, at("2026-07-01T07:00:00Z"));
        // 08:30 BST: today's.
        let (key, _) = latest_period(
            Cadence::DailyDigest,
            TIMES,
            at("2026-07-02T07:30:00Z"),
            london,
        )
        .unwrap();
        assert_eq!(key, "daily:2026-07-02");
    }

    #[test]
    fn weekly_period_is_the_last_monday() {
        let utc = chrono_tz::UTC;
        // Thursday 26 November 2026 → Monday 23 November.
        let (key, instant) = latest_period(
            Cadence::WeeklyDigest,
            TIMES,
            at("2026-11-26T12:00:00Z"),
            utc,
        )
        .unwrap();
        assert_eq!(key, "weekly:2026-11-23");
        assert_eq!(instant, at("2026-11-23T08:00:00Z"));
        // Monday before 08:00 → the Monday before.
        let (key, _) = latest_period(
            Cadence::WeeklyDigest,
            TIMES,
            at("2026-11-23T07:00:00Z"),
            utc,
        )
        .unwrap();
        assert_eq!(key, "weekly:2026-11-16");
        assert!(
            latest_period(Cadence::Immediate, TIMES, at("2026-11-23T07:00:00Z"), utc).is_none()
        );
    }
}
