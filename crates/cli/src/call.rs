//! `selfhelp call`: invoke any selfhelp RPC with a JSON request, the way an
//! operator or a walkthrough needs to, without extra tools. Requests and responses
//! are converted with the contracts' own descriptors (protobuf JSON mapping).

use std::str::FromStr;
use std::time::Duration;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_types::StatusExt;

#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// `listings`, `membership`, `notifications`, or a full gRPC service name.
    service: String,
    /// The RPC, e.g. `CreateGroup`.
    method: String,
    /// The request as protobuf JSON (field names as in the .proto, enums by name).
    #[arg(default_value = "{}")]
    request: String,
    /// The service's address; defaults to the port `selfhelp up` uses for it.
    #[arg(long)]
    addr: Option<String>,
    /// Call as this person: mints a development token from the data folder's secret.
    #[arg(long = "as", value_name = "PERSON_ID")]
    as_person: Option<String>,
    /// Roles for `--as`, e.g. `operator`; may be repeated.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Region for `--as`.
    #[arg(long, env = "SELFHELP_REGION", default_value = crate::up::DEFAULT_REGION)]
    region: String,
    /// The secret that signs `--as` tokens.
    #[command(flatten)]
    signing: crate::SigningArgs,
    /// A bearer token to send instead of `--as`.
    #[arg(long, conflicts_with = "as_person")]
    token: Option<String>,
}

/// Known services and the ports `selfhelp up` gives them.
const SERVICES: &[(&str, &str, u16)] = &[
    ("listings", "selfhelp.listings.v1.ListingsService", 50051),
    (
        "membership",
        "selfhelp.membership.v1.MembershipService",
        50052,
    ),
    (
        "notifications",
        "selfhelp.notifications.v1.NotificationsService",
        50053,
    ),
];

pub async fn call(args: CallArgs) -> anyhow::Result<()> {
    let pool = DescriptorPool::decode(selfhelp_proto::FILE_DESCRIPTOR_SET)?;
    let (full_name, default_port) = SERVICES
        .iter()
        .find(|(short, full, _)| *short == args.service || *full == args.service)
        .map(|(_, full, port)| (full.to_string(), *port))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown service {:?}: use listings, membership or notifications",
                args.service
            )
        })?;
    let service = pool
        .get_service_by_name(&full_name)
        .ok_or_else(|| anyhow::anyhow!("{full_name} is not in the contracts"))?;
    let method = service
        .methods()
        .find(|m| m.name() == args.method)
        .ok_or_else(|| {
            let names: Vec<String> = service.methods().map(|m| m.name().to_string()).collect();
            anyhow::anyhow!(
                "{full_name} has no method {:?}; it has: {}",
                args.method,
                names.join(", ")
            )
        })?;

    let mut json = serde_json::Deserializer::from_str(&args.request);
    let message = DynamicMessage::deserialize(method.input(), &mut json).map_err(|e| {
        anyhow::anyhow!("request is not a valid {}: {e}", method.input().full_name())
    })?;

    let addr = args
        .addr
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{default_port}"));
    let channel = tonic::transport::Endpoint::from_shared(addr.clone())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {addr}: {e} (is `selfhelp up` running?)"))?;

    let mut request = tonic::Request::new(message);
    if let Some(token) = bearer(&args)? {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_str(&format!("/{full_name}/{}", method.name()))?;
    match grpc
        .unary(
            request,
            path,
            DynamicCodec {
                output: method.output(),
            },
        )
        .await
    {
        Ok(response) => {
            let mut out = serde_json::Serializer::pretty(std::io::stdout());
            response
                .into_inner()
                .serialize_with_options(&mut out, &SerializeOptions::new())?;
            println!();
            Ok(())
        }
        Err(status) => Err(describe(&status)),
    }
}

fn bearer(args: &CallArgs) -> anyhow::Result<Option<String>> {
    if let Some(token) = &args.token {
        return Ok(Some(token.clone()));
    }
    let Some(person) = &args.as_person else {
        return Ok(None);
    };
    let secret = args.signing.secret()?;
    Ok(Some(selfhelp_platform::auth::mint_hs256(
        &secret,
        person,
        &args.region,
        &args.roles,
        Duration::from_secs(3600),
    )?))
}

/// The status as a person reads it, with any field violations.
pub(crate) fn describe(status: &Status) -> anyhow::Error {
    if status.code() == Code::InvalidArgument
        && let Some(bad) = status.get_details_bad_request()
    {
        let mut text = format!("{:?}", status.code());
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
        return anyhow::anyhow!(text);
    }
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// A gRPC codec for messages known only at run time.
#[derive(Clone)]
struct DynamicCodec {
    output: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        prost::Message::encode(&item, dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))
    }
}
