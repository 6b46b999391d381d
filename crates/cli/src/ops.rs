//! Operators' commands against a running deployment, through each service's
//! `selfhelp.operations.v1.OperationsService`: `status` (one table of health,
//! version, backlogs and dead letters) and `dead-letters list|replay`.

use std::time::Duration;

use selfhelp_proto::operations::v1 as pb;
use selfhelp_proto::operations::v1::operations_service_client::OperationsServiceClient;
use tonic::transport::Channel;

/// The services an operator looks after.
const SERVICES: [&str; 3] = ["listings", "membership", "notifications"];

/// Where the services are, and who asks.
#[derive(Debug, clap::Args)]
pub struct Deployment {
    /// listings' gRPC address.
    #[arg(
        long,
        env = "SELFHELP_LISTINGS_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    listings: String,
    /// membership's gRPC address.
    #[arg(
        long,
        env = "SELFHELP_MEMBERSHIP_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    membership: String,
    /// notifications' gRPC address.
    #[arg(
        long,
        env = "SELFHELP_NOTIFICATIONS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    notifications: String,
    /// The region whose operator asks.
    #[arg(long, env = "SELFHELP_REGION", default_value = crate::up::DEFAULT_REGION)]
    region: String,
    /// An operator's bearer token; without one, a short-lived operator token is
    /// signed with the deployment's secret (see --secret-file).
    #[arg(long, env = "SELFHELP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    signing: crate::SigningArgs,
}

impl Deployment {
    fn address(&self, service: &str) -> &str {
        match service {
            "listings" => &self.listings,
            "membership" => &self.membership,
            _ => &self.notifications,
        }
    }

    pub(crate) fn bearer(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let secret = self.signing.secret()?;
        Ok(selfhelp_platform::auth::mint_hs256(
            &secret,
            "selfhelp-cli",
            &self.region,
            &["operator".to_string()],
            Duration::from_secs(300),
        )?)
    }

    /// A connection to `service` (listings, membership, notifications).
    pub(crate) async fn channel(&self, service: &str) -> anyhow::Result<Channel> {
        let addr = self.address(service);
        tonic::transport::Endpoint::from_shared(addr.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(120))
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {service} at {addr}: {e}"))
    }

    async fn client(&self, service: &str) -> anyhow::Result<Operations> {
        Ok(Operations {
            client: OperationsServiceClient::new(self.channel(service).await?),
            bearer: self.bearer()?,
        })
    }

    /// `message` with this deployment's operator token.
    pub(crate) fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        with_bearer(message, &self.bearer()?)
    }
}

struct Operations {
    client: OperationsServiceClient<Channel>,
    bearer: String,
}

impl Operations {
    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        with_bearer(message, &self.bearer)
    }
}

fn with_bearer<T>(message: T, bearer: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {bearer}").parse()?);
    Ok(request)
}

/// One service's name, or all of them.
fn services(only: Option<&str>) -> anyhow::Result<Vec<&'static str>> {
    match only {
        None => Ok(SERVICES.to_vec()),
        Some(name) => SERVICES
            .iter()
            .find(|s| **s == name)
            .map(|s| vec![*s])
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown service {name:?}: use listings, membership or notifications"
                )
            }),
    }
}

/// The services to ask: `only`, or the one a durable consumer's name
/// (`<service>-<region>-<stream>`) says, or all.
fn services_for(only: Option<&str>, consumer: Option<&str>) -> anyhow::Result<Vec<&'static str>> {
    match (only, consumer) {
        (None, Some(durable)) => {
            let owner = durable.split('-').next().unwrap_or_default();
            services(Some(owner)).map_err(|_| {
                anyhow::anyhow!(
                    "{durable:?} is no consumer name (they are <service>-<region>-<stream>)"
                )
            })
        }
        _ => services(only),
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    deployment: Deployment,
}

/// Prints one table of every service's state; fails when one cannot be
/// reached or is not ready.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let mut rows = vec![
        [
            "SERVICE",
            "READY",
            "VERSION",
            "OUTBOX",
            "OLDEST",
            "CONSUMER",
            "PENDING",
            "DEAD LETTERS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut trouble = Vec::new();
    for service in SERVICES {
        let answer = async {
            let mut ops = args.deployment.client(service).await?;
            let request = ops.request(pb::GetStatusRequest {})?;
            let status = ops.client.get_status(request).await.map_err(describe)?;
            anyhow::Ok(status.into_inner())
        }
        .await;
        let status = match answer {
            Ok(s) => s,
            Err(e) => {
                rows.push(vec![service.to_string(), format!("unreachable: {e:#}")]);
                trouble.push(format!("{service} unreachable"));
                continue;
            }
        };
        let ready = if status.ready {
            "yes".to_string()
        } else {
            trouble.push(format!("{service} not ready"));
            format!("no ({})", status.not_ready.join(", "))
        };
        let service_cells = vec![
            service.to_string(),
            ready,
            status.version.clone(),
            status.outbox_waiting.to_string(),
            format!("{:.1}s", status.outbox_oldest_age_seconds),
        ];
        if status.consumers.is_empty() {
            rows.push(service_cells.clone());
        }
        for (i, c) in status.consumers.iter().enumerate() {
            // The service's cells on its first consumer's line only.
            let mut row = if i == 0 {
                service_cells.clone()
            } else {
                vec![String::new(); service_cells.len()]
            };
            row.extend([
                c.durable.clone(),
                c.pending.to_string(),
                c.dead_letters.to_string(),
            ]);
            rows.push(row);
        }
    }
    print!("{}", table(&rows));
    anyhow::ensure!(trouble.is_empty(), "{}", trouble.join("; "));
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    action: DeadLettersAction,
    #[command(flatten)]
    deployment: Deployment,
}

#[derive(Debug, clap::Subcommand)]
enum DeadLettersAction {
    /// The events a service's consumers parked, newest first (payloads are not shown).
    List {
        /// Only this service's (listings, membership, notifications).
        #[arg(long)]
        service: Option<String>,
        /// Only this durable consumer's, e.g. `notifications-notts-membership`.
        #[arg(long)]
        consumer: Option<String>,
        /// Also those already replayed.
        #[arg(long)]
        include_replayed: bool,
        /// At most this many per service.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Applies parked events again (after fixing their cause): the given ids of
    /// one service, or `--all`.
    Replay {
        /// The service whose letters these are (ids are per service); with
        /// `--all` and no service, every service's.
        #[arg(long)]
        service: Option<String>,
        /// Only this durable consumer's.
        #[arg(long)]
        consumer: Option<String>,
        /// Every letter not yet replayed.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Letter ids as `dead-letters list` shows them.
        ids: Vec<i64>,
    },
}

pub async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<()> {
    match args.action {
        DeadLettersAction::List {
            service,
            consumer,
            include_replayed,
            limit,
        } => {
            let mut rows = vec![
                [
                    "SERVICE",
                    "ID",
                    "CONSUMER",
                    "TYPE",
                    "SUBJECT",
                    "DELIVERIES",
                    "PARKED",
                    "REPLAYED",
                    "ERROR",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for name in services_for(service.as_deref(), consumer.as_deref())? {
                let mut ops = args.deployment.client(name).await?;
                let request = ops.request(pb::ListDeadLettersRequest {
                    consumer: consumer.clone().unwrap_or_default(),
                    include_replayed,
                    limit,
                })?;
                let answer = ops
                    .client
                    .list_dead_letters(request)
                    .await
                    .map_err(describe)?;
                for l in answer.into_inner().dead_letters {
                    rows.push(vec![
                        name.to_string(),
                        l.id.to_string(),
                        l.consumer,
                        l.event_type,
                        l.subject,
                        l.deliveries.to_string(),
                        l.parked_at.map(when).unwrap_or_default(),
                        l.replayed_at.map(when).unwrap_or_else(|| "-".into()),
                        l.error.replace(['\n', '\r'], " "),
                    ]);
                }
            }
            print!("{}", table(&rows));
            Ok(())
        }
        DeadLettersAction::Replay {
            service,
            consumer,
            all,
            ids,
        } => {
            anyhow::ensure!(
                all || !ids.is_empty(),
                "give the ids to replay (see `selfhelp dead-letters list`), or --all"
            );
            anyhow::ensure!(
                all || service.is_some(),
                "ids are per service: say which with --service"
            );
            let (mut replayed, mut parked, mut not_found) = (0, 0, 0);
            for name in services_for(service.as_deref(), consumer.as_deref())? {
                let mut ops = args.deployment.client(name).await?;
                let request = ops.request(pb::ReplayDeadLettersRequest {
                    ids: ids.clone(),
                    all,
                    consumer: consumer.clone().unwrap_or_default(),
                })?;
                let answer = ops
                    .client
                    .replay_dead_letters(request)
                    .await
                    .map_err(describe)?
                    .into_inner();
                println!(
                    "{name}: {} replayed, {} still parked",
                    answer.replayed, answer.still_parked
                );
                replayed += answer.replayed;
                parked += answer.still_parked;
                not_found += answer.not_found;
            }
            anyhow::ensure!(
                not_found == 0,
                "{not_found} of the ids are no letter waiting there (replayed already, or another service's)"
            );
            anyhow::ensure!(
                parked == 0,
                "{parked} letters still fail (replayed {replayed}); see their errors with `selfhelp dead-letters list`"
            );
            Ok(())
        }
    }
}

fn when(t: prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(crate) fn describe(status: tonic::Status) -> anyhow::Error {
    crate::call::describe(&status)
}

/// Rows as aligned columns (the last column is not padded).
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c + 1 == row.len() {
                    s.clone()
                } else {
                    format!("{s:<width$}", width = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string(), "C".to_string()],
            vec!["long".to_string(), "x".to_string(), "last".to_string()],
        ];
        assert_eq!(table(&rows), "A     BB  C\nlong  x   last\n");
    }

    #[test]
    fn services_are_named_or_all() {
        assert_eq!(services(None).unwrap().len(), 3);
        assert_eq!(services(Some("membership")).unwrap(), ["membership"]);
        assert!(services(Some("gateway")).is_err());
        assert_eq!(
            services_for(None, Some("notifications-notts-membership")).unwrap(),
            ["notifications"]
        );
        assert_eq!(
            services_for(Some("listings"), Some("x")).unwrap(),
            ["listings"]
        );
        assert!(services_for(None, Some("nonsense")).is_err());
    }
}
