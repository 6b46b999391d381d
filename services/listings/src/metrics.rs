//! What listings adds to the process's metrics (see
//! `selfhelp_platform::metrics`): the search index's size and build time, the
//! region's groups by status, and those whose details are due or overdue for
//! their yearly check.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sea_orm::{ConnectionTrait, DbErr};

use crate::config::FreshnessConfig;
use crate::domain::group::Status;
use crate::store::group as store;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    region: String,
    status: String,
}

/// Each labelled with the region the replica serves.
pub struct ListingsMetrics {
    index_groups: Family<RegionLabels, Gauge>,
    index_build: Family<RegionLabels, Gauge<f64, AtomicU64>>,
    groups: Family<StatusLabels, Gauge>,
    review_due: Family<RegionLabels, Gauge>,
    not_recently_checked: Family<RegionLabels, Gauge>,
}

fn in_region(region: &str) -> RegionLabels {
    RegionLabels {
        region: region.to_string(),
    }
}

/// Registered with the process's metrics on first use.
pub fn metrics() -> &'static ListingsMetrics {
    static METRICS: OnceLock<ListingsMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = ListingsMetrics {
            index_groups: Family::default(),
            index_build: Family::default(),
            groups: Family::default(),
            review_due: Family::default(),
            not_recently_checked: Family::default(),
        };
        let registry = selfhelp_platform::metrics::metrics();
        registry.register(
            "selfhelp_search_index_groups",
            "Published groups in this replica's search index",
            m.index_groups.clone(),
        );
        registry.register(
            "selfhelp_search_index_build_seconds",
            "How long the last full build of the search index took",
            m.index_build.clone(),
        );
        registry.register(
            "selfhelp_groups",
            "The region's groups by status, as last sampled",
            m.groups.clone(),
        );
        registry.register(
            "selfhelp_groups_review_due",
            "Published groups whose details were confirmed longer ago than freshness.warn_after_days",
            m.review_due.clone(),
        );
        registry.register(
            "selfhelp_groups_not_recently_checked",
            "Published groups whose details were confirmed longer ago than freshness.max_age_days (shown as not recently checked)",
            m.not_recently_checked.clone(),
        );
        m
    })
}

impl ListingsMetrics {
    pub fn index_built(&self, of: &str, groups: usize, took: Duration) {
        self.index_size(of, groups);
        self.index_build
            .get_or_create(&in_region(of))
            .set(took.as_secs_f64());
    }

    pub fn index_size(&self, of: &str, groups: usize) {
        self.index_groups
            .get_or_create(&in_region(of))
            .set(i64::try_from(groups).unwrap_or(i64::MAX));
    }

    /// Counts the region's groups from the database.
    pub async fn sample<C: ConnectionTrait>(
        &self,
        db: &C,
        region: &str,
        freshness: &FreshnessConfig,
        now_ms: i64,
    ) -> Result<(), DbErr> {
        let counts = store::count_by_status(db, region).await?;
        for status in Status::ALL {
            let count = counts
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            self.groups
                .get_or_create(&StatusLabels {
                    region: region.to_string(),
                    status: status.as_str().to_ascii_lowercase(),
                })
                .set(count);
        }
        let warn = store::published_confirmed_before(
            db,
            region,
            now_ms - freshness.warn_after_days * DAY_MS,
        )
        .await?;
        let stale =
            store::published_confirmed_before(db, region, now_ms - freshness.max_age_days * DAY_MS)
                .await?;
        let labels = in_region(region);
        self.review_due
            .get_or_create(&labels)
            .set(i64::try_from(warn).unwrap_or(i64::MAX));
        self.not_recently_checked
            .get_or_create(&labels)
            .set(i64::try_from(stale).unwrap_or(i64::MAX));
        Ok(())
    }
}
