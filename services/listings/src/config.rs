//! Listings configuration (see `CommonConfig` for the shared settings).

use selfhelp_platform::config::CommonConfig;
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    /// IANA time zone meetings are held in, e.g. `Europe/London`.
    pub timezone: String,
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50051".into();
        common.database.url = "sqlite://listings.db?mode=rwc".into();
        Self {
            common,
            timezone: "Europe/London".into(),
        }
    }
}

impl Config {
    /// The configured time zone, or a message naming the setting.
    pub fn time_zone(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.timezone.parse().map_err(|_| {
            anyhow::anyhow!(
                "timezone {:?} is not an IANA time zone such as Europe/London",
                self.timezone
            )
        })
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
