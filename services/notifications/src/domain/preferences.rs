//! A person's notification preferences and the rules that follow from them:
//! which channels a kind of notification goes to, when (quiet hours), and
//! whether it waits for a digest.

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::messages::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    GroupUpdates,
    MembershipRequests,
    Reminders,
    NewGroupAlerts,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::GroupUpdates => "GROUP_UPDATES",
            Category::MembershipRequests => "MEMBERSHIP_REQUESTS",
            Category::Reminders => "REMINDERS",
            Category::NewGroupAlerts => "NEW_GROUP_ALERTS",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        ALL_CATEGORIES.into_iter().find(|c| c.as_str() == s)
    }

    /// How people read it ("emails about …").
    pub fn describe(self) -> &'static str {
        match self {
            Category::GroupUpdates => "updates from your groups",
            Category::MembershipRequests => "joining and membership",
            Category::Reminders => "reminders",
            Category::NewGroupAlerts => "new groups matching your alerts",
        }
    }
}

pub const ALL_CATEGORIES: [Category; 4] = [
    Category::GroupUpdates,
    Category::MembershipRequests,
    Category::Reminders,
    Category::NewGroupAlerts,
];

/// Channels that can be switched per category; the in-app inbox always gets
/// everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "EMAIL",
            Channel::Webhook => "WEBHOOK",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "EMAIL" => Some(Channel::Email),
            "WEBHOOK" => Some(Channel::Webhook),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Cadence {
    #[default]
    Immediate,
    DailyDigest,
    WeeklyDigest,
}

/// Local times in the person's zone; `start > end` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// When something due at `now` may go out: `None` when now is not quiet,
    /// else the end of this quiet spell.
    pub fn hold_until(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.start == self.end {
            return None;
        }
        let local = now.with_timezone(&tz);
        let t = local.time();
        let quiet = if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        };
        if !quiet {
            return None;
        }
        // The first end of quiet hours after now: today's or tomorrow's. On the
        // night clocks go back the end time happens twice; either may be next.
        let today = local.date_naive();
        let mut ends: Vec<DateTime<Utc>> = Vec::new();
        for day in [Some(today), today.succ_opt()].into_iter().flatten() {
            let end = day.and_time(self.end);
            match tz.from_local_datetime(&end) {
                LocalResult::Single(d) => ends.push(d.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => {
                    ends.push(a.with_timezone(&Utc));
                    ends.push(b.with_timezone(&Utc));
                }
                // Skipped by the clocks going forward: an hour later exists.
                LocalResult::None => ends.extend(
                    tz.from_local_datetime(&(end + Duration::hours(1)))
                        .earliest()
                        .map(|d| d.with_timezone(&Utc)),
                ),
            }
        }
        ends.into_iter().find(|end| *end > now)
    }
}

/// Everything a person chose. Stored as JSON beside the email address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// Category × channel switched *off* (everything else is on).
    pub off: Vec<(Category, Channel)>,
    pub cadence: Cadence,
    pub quiet_hours: Option<QuietHours>,
    /// IANA zone; empty for the region's.
    pub time_zone: String,
    pub muted_groups: Vec<String>,
    pub member_joined: bool,
    pub member_left: bool,
}

impl Default for Preferences {
    /// Everything on, at once, no quiet hours; organisers hear of joins, not
    /// of leaves (a quiet exit is nobody's news unless they ask).
    fn default() -> Self {
        Preferences {
            off: Vec::new(),
            cadence: Cadence::Immediate,
            quiet_hours: None,
            time_zone: String::new(),
            muted_groups: Vec::new(),
            member_joined: true,
            member_left: false,
        }
    }
}

impl Preferences {
    /// Turns `channel` off for `categories`.
    pub fn turn_off(&mut self, categories: &[Category], channel: Channel) {
        for &category in categories {
            if self.channel_on(category, channel) {
                self.off.push((category, channel));
            }
        }
    }

    pub fn channel_on(&self, category: Category, channel: Channel) -> bool {
        !self.off.contains(&(category, channel))
    }

    /// Whether a notification of `kind` about `group_id` is wanted at all (the
    /// inbox included).
    pub fn wants(&self, kind: Kind, group_id: &str) -> bool {
        match kind {
            Kind::MemberJoined if !self.member_joined => return false,
            Kind::MemberLeft if !self.member_left => return false,
            _ => {}
        }
        !(kind.mutable() && self.muted_groups.iter().any(|g| g == group_id))
    }

    /// Whether `kind` goes to `channel` as well as the inbox. A notice about
    /// the person's account has no category: it goes wherever any category
    /// still does ("stop all emails" stops it too).
    pub fn wants_on(&self, kind: Kind, channel: Channel) -> bool {
        match kind.category() {
            Some(category) => self.channel_on(category, channel),
            None => ALL_CATEGORIES.iter().any(|c| self.channel_on(*c, channel)),
        }
    }

    /// Whether an email of `kind` waits for the next digest.
    pub fn digests(&self, kind: Kind) -> bool {
        self.cadence != Cadence::Immediate && !kind.time_critical()
    }

    /// The person's zone, or `fallback` (the region's) when unset or unknown.
    pub fn tz(&self, fallback: Tz) -> Tz {
        self.time_zone.parse().unwrap_or(fallback)
    }

    /// When an email due at `now` may go out (quiet hours hold it).
    pub fn send_at(&self, now: DateTime<Utc>, fallback: Tz) -> DateTime<Utc> {
        self.quiet_hours
            .and_then(|q| q.hold_until(now, self.tz(fallback)))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn quiet(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
            end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
        }
    }

    #[test]
    fn quiet_hours_across_midnight_hold_until_morning_local_time() {
        let q = quiet("22:00", "07:00");
        let london = chrono_tz::Europe::London;
        // 23:30 BST on 1 July is 22:30 UTC; quiet ends 07:00 BST = 06:00 UTC next day.
        assert_eq!(
            q.hold_until(at("2026-07-01T22:30:00Z"), london),
            Some(at("2026-07-02T06:00:00Z"))
        );
        // 05:00 local, same morning.
        assert_eq!(
            q.hold_until(at("2026-07-02T04:00:00Z"), london),
            Some(at("2026-07-02T06:00:00Z"))
        );
        // Midday is not quiet.
        assert_eq!(q.hold_until(at("2026-07-02T11:00:00Z"), london), None);
    }

    #[test]
    fn quiet_hours_end_after_now_on_the_night_clocks_go_back() {
        // 25 October 2026: 01:00–02:00 BST happens, then 01:00–02:00 GMT.
        let q = quiet("00:00", "01:30");
        let london = chrono_tz::Europe::London;
        // The second 01:10 (GMT) is 01:10 UTC; the first 01:30 (BST, 00:30 UTC)
        // has passed, the second (01:30 UTC) is next.
        assert_eq!(
            q.hold_until(at("2026-10-25T01:10:00Z"), london),
            Some(at("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn quiet_hours_within_a_day() {
        let q = quiet("13:00", "14:00");
        let utc = chrono_tz::UTC;
        assert_eq!(
            q.hold_until(at("2026-01-05T13:10:00Z"), utc),
            Some(at("2026-01-05T14:00:00Z"))
        );
        assert_eq!(q.hold_until(at("2026-01-05T14:00:00Z"), utc), None);
        assert_eq!(
            quiet("09:00", "09:00").hold_until(at("2026-01-05T09:00:00Z"), utc),
            None
        );
    }

    #[test]
    fn defaults_tell_of_joins_not_leaves_and_mute_spares_personal_news() {
        let mut p = Preferences::default();
        assert!(p.wants(Kind::MemberJoined, "g"));
        assert!(!p.wants(Kind::MemberLeft, "g"));
        p.muted_groups.push("g".into());
        assert!(!p.wants(Kind::MeetingChanged, "g"));
        assert!(p.wants(Kind::MeetingChanged, "other"));
        assert!(p.wants(Kind::RequestApproved, "g"));
        assert!(p.wants(Kind::RotaReminder, "g"));
    }

    #[test]
    fn digests_never_hold_meeting_changes() {
        let p = Preferences {
            cadence: Cadence::DailyDigest,
            ..Default::default()
        };
        assert!(p.digests(Kind::GroupListed));
        assert!(!p.digests(Kind::MeetingChanged));
        assert!(!Preferences::default().digests(Kind::GroupListed));
    }

    #[test]
    fn switching_a_category_off_spares_account_notices() {
        let p = Preferences {
            off: vec![(Category::GroupUpdates, Channel::Email)],
            ..Default::default()
        };
        assert!(!p.wants_on(Kind::MeetingChanged, Channel::Email));
        assert!(p.wants_on(Kind::MeetingChanged, Channel::Webhook));
        assert!(p.wants_on(Kind::RotaReminder, Channel::Email));
        assert!(p.wants_on(Kind::WebhookDisabled, Channel::Email));
        // "Stop all emails" stops the account notices too.
        let mut none = Preferences::default();
        none.turn_off(&ALL_CATEGORIES, Channel::Email);
        assert!(!none.wants_on(Kind::WebhookDisabled, Channel::Email));
        assert!(none.wants_on(Kind::WebhookDisabled, Channel::Webhook));
    }
}
