//! Membership configuration (see `CommonConfig` for the shared settings).

use selfhelp_core::validation::Violations;
use selfhelp_platform::config::{Checked, ClientTlsConfig, CommonConfig, at_least};
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub listings: ListingsClientConfig,
    pub rota: RotaConfig,
    pub privacy: PrivacyConfig,
    pub announcements: AnnouncementsConfig,
}

/// Organisers' messages to their members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AnnouncementsConfig {
    /// Most messages one group sends in any 24 hours (members are people, not
    /// a mailing list).
    pub per_group_per_day: u32,
}

impl Default for AnnouncementsConfig {
    fn default() -> Self {
        Self {
            per_group_per_day: 3,
        }
    }
}

/// Erasure requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PrivacyConfig {
    /// Services that must confirm an erasure (every service of the deployment
    /// that holds personal data, the gateway included: it holds sign-in
    /// addresses).
    pub expected_services: Vec<String>,
    /// After this long, a request some service has not confirmed is overdue.
    pub confirm_within_hours: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            expected_services: ["gateway", "listings", "membership", "notifications"]
                .map(String::from)
                .to_vec(),
            confirm_within_hours: 72,
        }
    }
}

/// Reminders to the person on duty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RotaConfig {
    /// How long before a meeting its person on duty is reminded.
    pub reminder_lead_hours: u32,
    /// How often due reminders are looked for.
    pub check_interval_secs: u64,
    /// After this many months as a group's only organiser, a person is
    /// nudged (once) to invite a co-organiser; 0 never.
    pub sole_organiser_months: u32,
}

impl Default for RotaConfig {
    fn default() -> Self {
        Self {
            reminder_lead_hours: 48,
            check_interval_secs: 300,
            sole_organiser_months: 12,
        }
    }
}

/// Where to ask listings about a group the read model has not seen yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ListingsClientConfig {
    /// e.g. `http://127.0.0.1:50051`; empty disables the fallback.
    pub url: String,
    pub timeout_ms: u64,
    /// For an `https://` address: the CA that signs listings' certificate,
    /// and membership's own certificate when listings asks for one.
    pub tls: ClientTlsConfig,
}

impl Default for ListingsClientConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".into(),
            timeout_ms: 2_000,
            tls: ClientTlsConfig::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50052".into();
        common.metrics.listen = "0.0.0.0:9152".into();
        common.database.url = "sqlite://membership.db?mode=rwc".into();
        Self {
            common,
            listings: ListingsClientConfig::default(),
            rota: RotaConfig::default(),
            privacy: PrivacyConfig::default(),
            announcements: AnnouncementsConfig::default(),
        }
    }
}

impl Checked for Config {
    fn check(&self, v: &mut Violations) {
        self.common.check(v);
        at_least(
            v,
            "rota.check_interval_secs",
            self.rota.check_interval_secs,
            1,
        );
        at_least(v, "listings.timeout_ms", self.listings.timeout_ms, 1);
        at_least(
            v,
            "announcements.per_group_per_day",
            u64::from(self.announcements.per_group_per_day),
            1,
        );
        self.listings.tls.check("listings.tls", v);
        at_least(
            v,
            "privacy.confirm_within_hours",
            self.privacy.confirm_within_hours.into(),
            1,
        );
    }
}

impl ServiceConfig for Config {
    type Migrator = crate::store::Migrator;
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
