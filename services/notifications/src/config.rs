//! Notifications configuration (see `CommonConfig` for the shared settings).
//! Every field can be set in the TOML file or as `SELFHELP_<SECTION>__<FIELD>`.

use selfhelp_core::validation::Violations;
use selfhelp_platform::config::{Checked, CommonConfig, at_least};
pub use selfhelp_platform::email::EmailConfig;
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub email: EmailConfig,
    pub webhooks: WebhookConfig,
    pub delivery: DeliveryConfig,
    pub digests: DigestConfig,
    pub http: HttpConfig,
    pub watch: WatchConfig,
    pub alerts: AlertsConfig,
    pub contact: ContactConfig,
}

/// Visitors writing to a group's organisers from its page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactConfig {
    /// Most messages relayed to one group's organisers in any hour (the
    /// gateway also caps each visitor's address).
    pub per_group_per_hour: u32,
}

impl Default for ContactConfig {
    fn default() -> Self {
        Self {
            per_group_per_hour: 10,
        }
    }
}

/// Alerts about new groups.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertsConfig {
    /// CSV of `postcode,latitude,longitude` that places alerts given by
    /// postcode: the same file as listings' `search.postcodes_file`. Empty
    /// uses the small sample that ships with selfhelp.
    pub postcodes_file: String,
}

impl Config {
    /// The postcode table alerts are placed with.
    pub fn postcodes(&self) -> anyhow::Result<selfhelp_core::postcode::PostcodeTable> {
        selfhelp_core::postcode::PostcodeTable::load(
            &self.alerts.postcodes_file,
            "alerts.postcodes_file",
        )
        .map_err(anyhow::Error::msg)
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50053".into();
        common.metrics.listen = "0.0.0.0:9153".into();
        common.database.url = "sqlite://notifications.db?mode=rwc".into();
        Self {
            common,
            email: EmailConfig::default(),
            webhooks: WebhookConfig::default(),
            delivery: DeliveryConfig::default(),
            digests: DigestConfig::default(),
            http: HttpConfig::default(),
            watch: WatchConfig::default(),
            alerts: AlertsConfig::default(),
            contact: ContactConfig::default(),
        }
    }
}

impl Checked for Config {
    fn check(&self, v: &mut Violations) {
        self.common.check(v);
        at_least(
            v,
            "contact.per_group_per_hour",
            u64::from(self.contact.per_group_per_hour),
            1,
        );
        let d = &self.delivery;
        at_least(v, "delivery.interval_ms", d.interval_ms, 50);
        at_least(v, "delivery.batch", d.batch, 1);
        at_least(v, "delivery.lease_secs", d.lease_secs, 1);
        at_least(v, "delivery.retry_base_ms", d.retry_base_ms, 1);
        at_least(v, "delivery.retry_max_ms", d.retry_max_ms, d.retry_base_ms);
        at_least(v, "delivery.retention_days", d.retention_days.into(), 1);
        at_least(
            v,
            "digests.check_interval_secs",
            self.digests.check_interval_secs,
            1,
        );
        at_least(v, "webhooks.timeout_secs", self.webhooks.timeout_secs, 1);
        at_least(
            v,
            "webhooks.max_in_flight_per_owner",
            self.webhooks.max_in_flight_per_owner as u64,
            1,
        );
        at_least(
            v,
            "watch.max_per_person",
            self.watch.max_per_person as u64,
            1,
        );
        at_least(v, "watch.max_total", self.watch.max_total as u64, 1);
    }
}

impl ServiceConfig for Config {
    type Migrator = crate::store::Migrator;
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Live inbox streams (`WatchNotifications`), counted per replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchConfig {
    /// Streams one person may hold open at once (a phone, a laptop, a tab).
    pub max_per_person: usize,
    /// Streams open at once in all.
    pub max_total: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            max_per_person: 3,
            max_total: 2_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Allows endpoints on loopback and private addresses, and plain http.
    /// Only for tests and closed networks: it lets callers reach internal hosts.
    pub allow_private_addresses: bool,
    pub timeout_secs: u64,
    /// Endpoints a person may register.
    pub max_per_owner: u32,
    /// Ports an endpoint may use (with `allow_private_addresses` any port).
    pub allowed_ports: Vec<u16>,
    /// Calls to one person's endpoints in flight at once per replica: a slow
    /// receiver then delays only its owner's calls, not everyone's email.
    pub max_in_flight_per_owner: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            timeout_secs: 10,
            max_per_owner: 10,
            allowed_ports: vec![443],
            max_in_flight_per_owner: 2,
        }
    }
}

/// The dispatcher that sends emails and webhook calls from the delivery log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// How often each replica looks for due deliveries.
    pub interval_ms: u64,
    /// Deliveries claimed per look.
    pub batch: u64,
    /// How long a claim holds before another replica may retry it; longer than
    /// the slowest send (SMTP's timeout applies to each step of a send).
    pub lease_secs: u64,
    /// Attempts before a delivery fails (and a webhook is turned off).
    pub max_attempts: i32,
    /// Wait before the second attempt; doubles each time up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Sent, cancelled and digested deliveries (and digests) are deleted after
    /// this many days; failed ones stay until replayed.
    pub retention_days: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            batch: 50,
            lease_secs: 300,
            max_attempts: 10,
            retry_base_ms: 30_000,
            retry_max_ms: 6 * 3_600_000,
            retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DigestConfig {
    /// Local time ("HH:MM" or "HH:MM:SS", in each person's zone) digests go out.
    pub send_at: String,
    /// Weekday of weekly digests ("Mon" … "Sun").
    pub weekly_on: String,
    pub check_interval_secs: u64,
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            send_at: "08:00".into(),
            weekly_on: "Mon".into(),
            check_interval_secs: 60,
        }
    }
}

/// The small HTTP listener for one-click unsubscribe links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Empty turns the listener off.
    pub listen: String,
    /// How emails link to it, e.g. `https://notify.example.org`.
    pub public_url: String,
    /// The web's address (the gateway's `http.public_url`), e.g.
    /// `https://groups.example.org`: emails and these pages link to people's
    /// inbox and settings there. Empty: no such links.
    pub web_url: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8053".into(),
            public_url: "http://localhost:8053".into(),
            web_url: String::new(),
        }
    }
}
