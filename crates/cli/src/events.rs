//! `selfhelp events tail`: follows events on NATS as they are published and
//! prints each as one line of CloudEvents JSON, its protobuf payload decoded
//! with the contracts' own descriptors (the `ce-dataschema` names the message).

use std::io::Write;
use std::path::PathBuf;

use futures::StreamExt;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use selfhelp_platform::bus::IncomingEvent;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    action: EventsAction,
}

#[derive(Debug, clap::Subcommand)]
enum EventsAction {
    /// Prints events as they are published, one JSON line each (CloudEvents
    /// attributes, `data` decoded), until interrupted or `--count` are seen.
    /// MEMBERSHIP and PRIVACY events name people: follow only what you need.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
struct TailArgs {
    /// The NATS subject to follow, e.g. `selfhelp.notts.listings.>`; by
    /// default every event of every region.
    #[arg(default_value = "selfhelp.>")]
    subject: String,
    /// NATS address; `user@host` logs in as that user.
    #[arg(
        long,
        env = "SELFHELP_NATS__URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
    /// A file holding the password of the user the address names (for
    /// compose: `operator-nats-password` in the secrets volume). Without one,
    /// the data folder's (`selfhelp up`'s) is used when there is one.
    #[arg(long, env = "SELFHELP_NATS__PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// `selfhelp up`'s data folder, for its NATS password.
    #[arg(long, default_value = crate::up::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The CA that signs the servers' certificates (for `tls://`).
    #[arg(long, env = "SELFHELP_NATS__TLS__CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    match args.action {
        EventsAction::Tail(tail) => tail_events(tail).await,
    }
}

async fn tail_events(args: TailArgs) -> anyhow::Result<()> {
    let password = match &args.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::fs::read_to_string(args.data_dir.join(crate::up::NATS_PASSWORD_FILE))
            .ok()
            .filter(|_| args.nats.contains('@'))
            .map(|p| p.trim().to_string()),
    };
    let mut nats = selfhelp_platform::config::NatsConfig {
        url: args.nats.clone(),
        password,
        ..Default::default()
    };
    nats.tls.ca_file = args.ca_file.clone();
    let client = selfhelp_platform::bus::connect(&nats, "cli")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach NATS at {}: {e}",
                selfhelp_platform::bus::redact(&args.nats)
            )
        })?;
    // The client connects in the background: wait for it, so that the
    // subscription below is made on the server before we say we follow.
    let connected = async {
        while client.connection_state() != async_nats::connection::State::Connected {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), connected)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot log in to NATS at {} within 10 s (is it up? is the password right?)",
                selfhelp_platform::bus::redact(&args.nats)
            )
        })?;
    let mut messages = client
        .subscribe(args.subject.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot follow {}: {e}", args.subject))?;
    // The subscription is in place once the server has answered a round trip:
    // only then say so (scripts and tests wait for this line).
    client.flush().await?;
    eprintln!(
        "following {} on {}",
        args.subject,
        selfhelp_platform::bus::redact(&args.nats)
    );
    let pool = DescriptorPool::decode(selfhelp_proto::FILE_DESCRIPTOR_SET)?;
    let mut seen = 0;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|count| seen < count) {
        let Some(message) = messages.next().await else {
            anyhow::bail!("the NATS connection closed");
        };
        let line = decode(
            &pool,
            message.subject.as_str(),
            message.headers.as_ref(),
            message.payload,
        );
        writeln!(out, "{line}")?;
        out.flush()?;
        seen += 1;
    }
    Ok(())
}

/// One message as CloudEvents JSON (structured mode), `data` decoded when its
/// schema is one of the contracts'; `natssubject` says where it came.
fn decode(
    pool: &DescriptorPool,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: bytes::Bytes,
) -> Value {
    let event = match IncomingEvent::from_message(subject, headers, payload.clone()) {
        Ok(event) => event,
        Err(why) => {
            return json!({
                "natssubject": subject,
                "error": format!("not a CloudEvent: {why}"),
                "bytes": payload.len(),
            });
        }
    };
    let mut line = json!({
        "specversion": selfhelp_platform::bus::SPECVERSION,
        "id": event.id,
        "source": event.source,
        "type": event.ce_type,
        "subject": event.aggregate_id,
        "time": event.time,
        "dataschema": event.data_schema,
        "natssubject": subject,
    });
    match data(pool, &event) {
        Ok(data) => {
            line["datacontenttype"] = "application/json".into();
            line["data"] = data;
        }
        Err(why) => {
            line["error"] = why.into();
            line["bytes"] = event.payload.len().into();
        }
    }
    line
}

fn data(pool: &DescriptorPool, event: &IncomingEvent) -> Result<Value, String> {
    let schema = pool
        .get_message_by_name(&event.data_schema)
        .ok_or_else(|| format!("unknown schema {:?}", event.data_schema))?;
    let message = DynamicMessage::decode(schema, event.payload.clone())
        .map_err(|e| format!("payload is not a {}: {e}", event.data_schema))?;
    message
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use selfhelp_proto::events::v1 as ev;
    use selfhelp_proto::streams::MEMBERSHIP;

    fn headers(schema: &str) -> async_nats::HeaderMap {
        selfhelp_platform::bus::Envelope {
            id: "e-1",
            source: "urn:selfhelp:notts:membership",
            ce_type: &MEMBERSHIP.ce_type("follow.started"),
            time: "2026-11-29T00:00:00.000Z",
            aggregate_id: "g-1",
            data_schema: schema,
            traceparent: None,
            stream: MEMBERSHIP.name,
        }
        .headers()
    }

    #[test]
    fn events_are_printed_with_their_payload_decoded() {
        let pool = DescriptorPool::decode(selfhelp_proto::FILE_DESCRIPTOR_SET).unwrap();
        let follow = ev::FollowChanged {
            group_id: "g-1".into(),
            person_id: "p-1".into(),
            following: true,
            occurred_at: None,
        };
        let schema = <ev::FollowChanged as prost::Name>::full_name();
        let line = decode(
            &pool,
            "selfhelp.notts.membership.follow.started",
            Some(&headers(&schema)),
            follow.encode_to_vec().into(),
        );
        assert_eq!(line["type"], "org.selfhelp.membership.follow.started.v1");
        assert_eq!(line["subject"], "g-1");
        assert_eq!(line["data"]["personId"], "p-1");
        assert_eq!(line["data"]["following"], true);

        let unknown = decode(
            &pool,
            "selfhelp.notts.membership.follow.started",
            Some(&headers("selfhelp.events.v1.Nothing")),
            follow.encode_to_vec().into(),
        );
        assert!(
            unknown["error"]
                .as_str()
                .unwrap()
                .contains("unknown schema")
        );
        let bare = decode(&pool, "selfhelp.x", None, bytes::Bytes::from_static(b"hi"));
        assert!(bare["error"].as_str().unwrap().contains("not a CloudEvent"));
    }
}
