//! Membership configuration (see `CommonConfig` for the shared settings).

use selfhelp_platform::config::CommonConfig;
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub listings: ListingsClientConfig,
}

/// Where to ask listings about a group the read model has not seen yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ListingsClientConfig {
    /// e.g. `http://127.0.0.1:50051`; empty disables the fallback.
    pub url: String,
    pub timeout_ms: u64,
}

impl Default for ListingsClientConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".into(),
            timeout_ms: 2_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50052".into();
        common.database.url = "sqlite://membership.db?mode=rwc".into();
        Self {
            common,
            listings: ListingsClientConfig::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
