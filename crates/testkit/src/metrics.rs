//! A service's Prometheus endpoint, for tests that scrape it over TCP.

use std::path::PathBuf;

use selfhelp_platform::config::MetricsConfig;

/// Where a service under test serves its metrics.
pub struct Scrape {
    address_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scrape {
    /// Sets `cfg` to serve metrics on a port the system picks (written to a
    /// file this reads back) and to sample the database's gauges often.
    pub fn configure(cfg: &mut MetricsConfig) -> Scrape {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let address_file = dir.path().join("metrics-address");
        cfg.listen = "127.0.0.1:0".into();
        cfg.write_address_to = Some(address_file.clone());
        cfg.sample_interval_ms = 200;
        Scrape {
            address_file,
            _dir: dir,
        }
    }

    /// `GET /metrics`, checked to be Prometheus text.
    pub async fn text(&self) -> String {
        let addr = std::fs::read_to_string(&self.address_file)
            .expect("the service wrote its metrics address (is it started?)");
        let answer = reqwest::get(format!("http://{}/metrics", addr.trim()))
            .await
            .expect("the metrics endpoint answers");
        assert!(answer.status().is_success(), "{}", answer.status());
        let kind = answer.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        answer.text().await.expect("the metrics text")
    }

    /// The value of one sample (`name{labels}` exactly as served), if served.
    pub async fn value(&self, sample: &str) -> Option<f64> {
        selfhelp_platform::metrics::value_of(&self.text().await, sample)
    }

    /// Waits (up to 20 s) until `sample` is served with a value `check` accepts;
    /// returns that value.
    pub async fn until(&self, sample: &str, check: impl Fn(f64) -> bool) -> f64 {
        crate::eventually(
            &format!("metric {sample}"),
            std::time::Duration::from_secs(20),
            || async { self.value(sample).await.filter(|v| check(*v)) },
        )
        .await
    }
}
