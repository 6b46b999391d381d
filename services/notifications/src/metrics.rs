//! What notifications adds to the process's metrics (see
//! `selfhelp_platform::metrics`): deliveries by channel, kind and outcome,
//! webhooks turned off, digests made, and deliveries waiting past their time.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sea_orm::{ConnectionTrait, DbErr};

use crate::domain::preferences::Channel;
use crate::store::delivery;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    /// `notification`, `digest` or `confirmation` (of an email address).
    kind: String,
    /// `sent`, `retry`, `failed`, `cancelled` or `postponed`.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    region: String,
    channel: String,
}

pub struct NotificationMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    webhooks_turned_off: Counter,
    digests_made: Counter,
    due: Family<ChannelLabels, Gauge>,
    oldest_due: Family<ChannelLabels, Gauge<f64, AtomicU64>>,
}

/// Registered with the process's metrics on first use.
pub fn metrics() -> &'static NotificationMetrics {
    static METRICS: OnceLock<NotificationMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = NotificationMetrics {
            deliveries: Family::default(),
            webhooks_turned_off: Counter::default(),
            digests_made: Counter::default(),
            due: Family::default(),
            oldest_due: Family::default(),
        };
        let registry = selfhelp_platform::metrics::metrics();
        registry.register(
            "selfhelp_deliveries",
            "Delivery attempts by channel, kind and outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "selfhelp_webhooks_turned_off",
            "Webhooks turned off for answering 410 Gone or failing too often",
            m.webhooks_turned_off.clone(),
        );
        registry.register(
            "selfhelp_digests_made",
            "Digests made (each then goes out as one email delivery of kind digest)",
            m.digests_made.clone(),
        );
        registry.register(
            "selfhelp_deliveries_due",
            "Deliveries whose time has come and that are not sent yet, as last sampled",
            m.due.clone(),
        );
        registry.register(
            "selfhelp_delivery_oldest_due_age_seconds",
            "How long the longest-waiting due delivery has waited past its time (0 when none)",
            m.oldest_due.clone(),
        );
        m
    })
}

impl NotificationMetrics {
    /// One delivery attempt's outcome, recorded (after its commit).
    pub fn delivery(&self, d: &delivery::Model, outcome: &'static str) {
        let kind = if d.is_digest {
            "digest"
        } else if d.is_confirmation {
            "confirmation"
        } else {
            "notification"
        };
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: d.channel.to_ascii_lowercase(),
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn webhook_turned_off(&self) {
        self.webhooks_turned_off.inc();
    }

    pub fn digests_made(&self, made: usize) {
        self.digests_made.inc_by(made as u64);
    }

    /// Reads what is due and waiting from `region`'s delivery log.
    pub async fn sample<C: ConnectionTrait>(
        &self,
        db: &C,
        region: &str,
        now_ms: i64,
    ) -> Result<(), DbErr> {
        let due = delivery::due_by_channel(db, now_ms).await?;
        for channel in [Channel::Email, Channel::Webhook] {
            let name = channel.as_str();
            let (count, oldest) = due
                .iter()
                .find(|(c, _, _)| c == name)
                .map_or((0, None), |(_, count, oldest)| (*count, Some(*oldest)));
            let labels = ChannelLabels {
                region: region.to_string(),
                channel: name.to_ascii_lowercase(),
            };
            self.due.get_or_create(&labels).set(count);
            self.oldest_due
                .get_or_create(&labels)
                .set(oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0));
        }
        Ok(())
    }
}
