//! Listings configuration (see `CommonConfig` for the shared settings).

use selfhelp_core::validation::Violations;
use selfhelp_platform::config::{Checked, CommonConfig, at_least};
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub freshness: FreshnessConfig,
    pub search: SearchConfig,
    pub edits: EditsConfig,
    pub partners: PartnersConfig,
    pub reports: ReportsConfig,
}

/// What the public reports to staff (problems with listings, groups to list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportsConfig {
    /// Most reports waiting at once in the region: past it, new ones are
    /// refused (RESOURCE_EXHAUSTED) until staff close some, so a flood cannot
    /// fill the database. The web also caps each client address.
    pub open_per_region: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            open_per_region: 1_000,
        }
    }
}

/// Partners reading the directory from the PUBLIC stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PartnersConfig {
    /// The durable pull consumers listings makes on PUBLIC, one per partner,
    /// named as the partner's NATS user may pull from (deploy/nats/accounts.conf):
    /// partners may neither create nor delete consumers themselves.
    pub consumers: Vec<String>,
}

impl Default for PartnersConfig {
    fn default() -> Self {
        Self {
            // The partner template in deploy/nats/accounts.conf.
            consumers: vec!["outside-subscriber".into()],
        }
    }
}

/// What happens to an organiser's significant edit (name, summary,
/// description, contact) of a listing the public sees.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EditsConfig {
    pub significant: SignificantEdits,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignificantEdits {
    /// Held as the group's pending edit until an operator approves it; the
    /// public keeps seeing the listing as it was.
    #[default]
    Approval,
    /// Applied, and the listing goes back to review: off the directory until
    /// an operator approves it again.
    Review,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// CSV of `postcode,latitude,longitude` (full postcodes or outward codes);
    /// empty uses the small sample that ships with the service.
    pub postcodes_file: String,
    /// Full rebuild of each replica's index (catches events missed while NATS was away).
    pub rebuild_interval_secs: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            postcodes_file: String::new(),
            rebuild_interval_secs: 600,
        }
    }
}

/// How often organisers are asked to confirm that a listing is still right.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FreshnessConfig {
    /// Details confirmed longer ago than this show as "not recently checked".
    pub max_age_days: i64,
    /// From this age on, `group.review_due` goes out (once per confirmation).
    pub warn_after_days: i64,
    /// How often to look for groups that are due.
    pub check_interval_secs: u64,
    /// Days past `max_age_days` that an unchecked listing stays in search;
    /// after that it leaves search (its page stays, labelled) until someone
    /// confirms it. Groups never checked (imported without a date) stay.
    pub grace_days: i64,
}

impl FreshnessConfig {
    /// Days unchecked after which a listing leaves search.
    pub fn out_of_search_after_days(&self) -> i64 {
        self.max_age_days + self.grace_days
    }
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        Self {
            max_age_days: 365,
            warn_after_days: 335,
            check_interval_secs: 3600,
            grace_days: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50051".into();
        common.metrics.listen = "0.0.0.0:9151".into();
        common.database.url = "sqlite://listings.db?mode=rwc".into();
        Self {
            common,
            freshness: FreshnessConfig::default(),
            search: SearchConfig::default(),
            edits: EditsConfig::default(),
            partners: PartnersConfig::default(),
            reports: ReportsConfig::default(),
        }
    }
}

impl Config {
    /// The postcode table: the configured file, or the shipped sample.
    pub fn postcodes(&self) -> anyhow::Result<selfhelp_core::postcode::PostcodeTable> {
        selfhelp_core::postcode::PostcodeTable::load(
            &self.search.postcodes_file,
            "search.postcodes_file",
        )
        .map_err(anyhow::Error::msg)
    }
}

impl Checked for Config {
    fn check(&self, v: &mut Violations) {
        self.common.check(v);
        at_least(
            v,
            "search.rebuild_interval_secs",
            self.search.rebuild_interval_secs,
            1,
        );
        let fresh = &self.freshness;
        if fresh.max_age_days < 1 {
            v.add("freshness.max_age_days", "must be at least 1");
        }
        if !(0..fresh.max_age_days.max(1)).contains(&fresh.warn_after_days) {
            v.add(
                "freshness.warn_after_days",
                "must be at least 0 and less than freshness.max_age_days",
            );
        }
        at_least(
            v,
            "reports.open_per_region",
            self.reports.open_per_region,
            1,
        );
        if !(0..=3650).contains(&fresh.grace_days) {
            v.add("freshness.grace_days", "must be from 0 to 3650");
        }
        at_least(
            v,
            "freshness.check_interval_secs",
            fresh.check_interval_secs,
            1,
        );
        for (i, name) in self.partners.consumers.iter().enumerate() {
            // A NATS consumer name: no dots, wildcards or spaces.
            let fits = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !fits {
                v.add(
                    format!("partners.consumers[{i}]"),
                    "must be 1 to 64 letters, digits, - or _",
                );
            }
        }
    }
}

impl ServiceConfig for Config {
    type Migrator = crate::store::Migrator;
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
