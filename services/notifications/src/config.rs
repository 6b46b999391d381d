//! Notifications configuration (see `CommonConfig` for the shared settings).

use selfhelp_platform::config::CommonConfig;
use selfhelp_platform::service::ServiceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for Config {
    fn default() -> Self {
        let mut common = CommonConfig::default();
        common.grpc.listen = "0.0.0.0:50053".into();
        common.database.url = "sqlite://notifications.db?mode=rwc".into();
        Self { common }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
