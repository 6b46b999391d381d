//! CloudEvents 1.0 over NATS JetStream, binary mode: the envelope travels in `ce-*`
//! headers and the body is the protobuf event message.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;

use crate::trace;

pub mod headers {
    pub const SPECVERSION: &str = "ce-specversion";
    pub const ID: &str = "ce-id";
    pub const SOURCE: &str = "ce-source";
    pub const TYPE: &str = "ce-type";
    pub const TIME: &str = "ce-time";
    pub const SUBJECT: &str = "ce-subject";
    pub const DATACONTENTTYPE: &str = "ce-datacontenttype";
    pub const DATASCHEMA: &str = "ce-dataschema";
    pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
    pub const NATS_EXPECTED_STREAM: &str = "Nats-Expected-Stream";
}

pub const SPECVERSION: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/protobuf";

/// The streams themselves are part of the contracts (`selfhelp_proto::streams`).
pub use selfhelp_proto::streams::StreamSpec;

/// Connects to NATS as `nats` says (its `url`, and `tls`); the client
/// reconnects on its own after outages, and a server that is down at start-up
/// is retried in the background. A TLS file that cannot be read is an error
/// at once.
pub async fn connect(
    nats: &crate::config::NatsConfig,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let url = nats.url.as_str();
    // Several servers (a cluster) are given comma-separated; the client also
    // learns the cluster's other members from the one it reaches.
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::ServerParse, e)
        })?;
    // The client does not log in with credentials written in a URL by itself:
    // take them from the first server that has them (all share one login):
    // `user:password@host`, or NATS's token form `token@host`.
    let decode = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    };
    let in_url = servers.iter().find_map(|s| {
        let user = decode(s.username()?);
        Some(match s.password() {
            Some(password) => (Some(user), decode(password)),
            None => (None, user),
        })
    });
    // A password given on its own (e.g. read from a file) goes with the
    // URL's user, or is a token when the URL names none.
    let login = match nats.password.as_deref().filter(|p| !p.is_empty()) {
        Some(password) => {
            let user = servers.iter().find_map(|s| s.username().map(decode));
            Some((user, password.to_string()))
        }
        None => in_url,
    };
    // Replies (publish acks, pulled messages) come to an inbox of the service's
    // own, `_INBOX_<service>`, which its NATS user alone may subscribe to
    // (deploy/nats/accounts.conf): no service can listen to another's.
    let service = name.split('-').next().unwrap_or(name);
    let tls_required = servers.iter().any(|s| s.as_url_str().starts_with("tls://"));
    let mut options =
        crate::tls::nats_options(async_nats::ConnectOptions::new(), &nats.tls, tls_required)
            .map_err(|e| {
                async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::Tls,
                    format!("{e:#}"),
                )
            })?;
    options = match login {
        Some((Some(user), password)) => options.user_and_password(user, password),
        Some((None, token)) => options.token(token),
        None => options,
    };
    options
        .name(name)
        .custom_inbox_prefix(format!("_INBOX_{service}"))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(3))
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(servers)
        .await
}

/// JetStream over `client`, through the API prefix the deployment gives this
/// service (`nats.jetstream_api_prefix`: `JS.API` under deploy/nats/accounts.conf,
/// where the streams live in accounts of their own).
pub fn jetstream(
    client: async_nats::Client,
    nats: &crate::config::NatsConfig,
) -> jetstream::Context {
    if nats.jetstream_api_prefix == "$JS.API" {
        jetstream::new(client)
    } else {
        jetstream::with_prefix(client, &nats.jetstream_api_prefix)
    }
}

/// `url` (one or several NATS servers) with any password replaced by `***`,
/// for logs and messages.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|server| {
            let server = server.trim();
            let Some(at) = server.rfind('@') else {
                return server.to_string();
            };
            let start = server
                .find("://")
                .map(|s| s + 3)
                .filter(|s| *s <= at)
                .unwrap_or(0);
            // `user:password@` keeps the user; a lone `token@` is all secret.
            let shown = match server[start..at].split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_string(),
            };
            format!("{}{shown}{}", &server[..start], &server[at..])
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How the services' streams are kept: `nats.stream_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// How long events stay, so late subscribers can replay.
    pub max_age: Duration,
    /// How long events of a restricted stream (naming people) stay.
    pub restricted_max_age: Duration,
    /// Copies kept in a JetStream cluster (1 on a single server; 3 on a cluster
    /// of three, to survive the loss of one node).
    pub replicas: usize,
    /// Largest size of one stream; once it is reached, new events are refused
    /// (the outbox keeps them and retries) rather than unread ones dropped.
    pub max_bytes: i64,
}

impl StreamLimits {
    pub fn from_config(cfg: &crate::config::NatsConfig) -> Self {
        Self {
            max_age: Duration::from_secs(cfg.stream_max_age_days * 86_400),
            restricted_max_age: Duration::from_secs(cfg.restricted_max_age_hours * 3_600),
            replicas: cfg.stream_replicas,
            max_bytes: cfg.stream_max_bytes,
        }
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self::from_config(&crate::config::NatsConfig::default())
    }
}

/// Creates the stream if it is missing (idempotent; several replicas may race).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: StreamSpec,
    limits: StreamLimits,
) -> Result<stream::Stream, anyhow::Error> {
    Ok(js.get_or_create_stream(stream_config(spec, limits)).await?)
}

/// Like [`ensure_stream`], for the services that write the stream: a stream
/// made before streams refused new events when full (it dropped the oldest,
/// read or not) is changed to refuse them. Other limits apply when a stream is
/// made, so that services with different settings do not undo each other.
pub async fn ensure_written_stream(
    js: &jetstream::Context,
    spec: StreamSpec,
    limits: StreamLimits,
) -> Result<stream::Stream, anyhow::Error> {
    let mut stream = ensure_stream(js, spec, limits).await?;
    let config = stream.info().await?.config.clone();
    if config.discard != stream::DiscardPolicy::New {
        tracing::info!(
            stream = spec.name,
            "stream now refuses new events when full instead of dropping the oldest"
        );
        js.update_stream(stream::Config {
            discard: stream::DiscardPolicy::New,
            ..config
        })
        .await?;
        stream = js.get_stream(spec.name).await?;
    }
    Ok(stream)
}

/// How a stream is made. Limits retention (late subscribers can replay), each
/// event kept for the stream's maximum age; when the stream is full, new events
/// are refused (`DiscardPolicy::New`): a publisher that floods it cannot push
/// out events consumers have not read yet, and the outbox holds what was
/// refused until there is room.
pub fn stream_config(spec: StreamSpec, limits: StreamLimits) -> stream::Config {
    stream::Config {
        name: spec.name.to_string(),
        subjects: vec![spec.subjects()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: if spec.restricted {
            limits.restricted_max_age
        } else {
            limits.max_age
        },
        max_bytes: limits.max_bytes,
        discard: stream::DiscardPolicy::New,
        num_replicas: limits.replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Makes (or keeps) the durable pull consumer `name` on `spec`'s stream for a
/// partner, reading `region`'s events from the start: partners may pull from
/// and acknowledge on it but neither create nor delete consumers
/// (deploy/nats/accounts.conf), so the service that writes the stream makes
/// theirs. An existing one is left as it is (with where its reader got to).
pub async fn ensure_partner_consumer(
    js: &jetstream::Context,
    spec: StreamSpec,
    name: &str,
    region: &str,
) -> Result<(), anyhow::Error> {
    let stream = js.get_stream(spec.name).await?;
    let config = jetstream::consumer::pull::Config {
        durable_name: Some(name.to_string()),
        description: Some(format!("for the partner {name}, made by selfhelp")),
        filter_subject: spec.region_filter(region),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    };
    stream.get_or_create_consumer(name, config).await?;
    Ok(())
}

/// An event as a consumer receives it.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub id: String,
    pub ce_type: String,
    pub source: String,
    pub subject: String,
    /// The aggregate id (`ce-subject`).
    pub aggregate_id: String,
    pub time: String,
    pub data_schema: String,
    pub traceparent: Option<String>,
    pub payload: Bytes,
}

impl IncomingEvent {
    /// Reads the CloudEvent envelope; `Err` names what is missing (a poison message).
    pub fn from_message(
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Self, String> {
        let headers = headers.ok_or("message has no headers")?;
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(format!("missing header {name}"))
        };
        if required(headers::SPECVERSION)? != SPECVERSION {
            return Err("unsupported ce-specversion".into());
        }
        Ok(Self {
            id: required(headers::ID)?,
            ce_type: required(headers::TYPE)?,
            source: required(headers::SOURCE)?,
            subject: subject.to_string(),
            aggregate_id: get(headers::SUBJECT).unwrap_or_default(),
            time: get(headers::TIME).unwrap_or_default(),
            data_schema: get(headers::DATASCHEMA).unwrap_or_default(),
            traceparent: get(trace::HEADER),
            payload,
        })
    }

    /// Decodes the protobuf payload.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.clone())
    }
}

/// The envelope of an outgoing event (what the outbox stores per row).
pub struct Envelope<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub ce_type: &'a str,
    pub time: &'a str,
    pub aggregate_id: &'a str,
    pub data_schema: &'a str,
    pub traceparent: Option<&'a str>,
    pub stream: &'a str,
}

impl Envelope<'_> {
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |k: &'static str, v: &str| h.insert(k, HeaderValue::from(v));
        put(headers::SPECVERSION, SPECVERSION);
        put(headers::ID, self.id);
        put(headers::SOURCE, self.source);
        put(headers::TYPE, self.ce_type);
        put(headers::TIME, self.time);
        put(headers::SUBJECT, self.aggregate_id);
        put(headers::DATACONTENTTYPE, CONTENT_TYPE);
        put(headers::DATASCHEMA, self.data_schema);
        // JetStream de-duplicates on it within the duplicate window.
        put(headers::NATS_MSG_ID, self.id);
        // Without it a publish to a subject no stream captures would hang until timeout.
        put(headers::NATS_EXPECTED_STREAM, self.stream);
        if let Some(tp) = self.traceparent {
            put(trace::HEADER, tp);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(
            super::redact("nats://listings:s3cr3t@nats-1:4222, nats://listings:s3cr3t@nats-2:4222"),
            "nats://listings:***@nats-1:4222,nats://listings:***@nats-2:4222"
        );
        assert_eq!(
            super::redact("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    use super::*;

    #[test]
    fn envelope_round_trips_through_headers() {
        let env = Envelope {
            id: "0190-id",
            source: "urn:selfhelp:notts:listings",
            ce_type: "org.selfhelp.listings.group.created.v1",
            time: "2026-01-01T00:00:00.000Z",
            aggregate_id: "g1",
            data_schema: "selfhelp.events.v1.GroupCreated",
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            stream: "LISTINGS",
        };
        let h = env.headers();
        assert_eq!(h.get(headers::NATS_MSG_ID).unwrap().as_str(), "0190-id");
        let ev = IncomingEvent::from_message(
            "selfhelp.notts.listings.group.created",
            Some(&h),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(ev.id, "0190-id");
        assert_eq!(ev.aggregate_id, "g1");
        assert!(ev.traceparent.is_some());
        assert!(IncomingEvent::from_message("x", None, Bytes::new()).is_err());
    }
}
