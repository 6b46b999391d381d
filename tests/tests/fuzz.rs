//! Random and hostile requests to every RPC of every service, as anonymous, a
//! member, an organiser and an operator, over real gRPC to the real binaries.
//! The RPCs and their request shapes come from the contracts' descriptor set,
//! so a new RPC is fuzzed without anyone adding it here.
//!
//! Every answer must be a status a client can act on — never INTERNAL or
//! UNKNOWN (bytes that are not a protobuf message at all aside) — within a
//! second, and every service must still be healthy afterwards.
//!
//! A fixed seed by default; `FUZZ_SEED=<n>` and `FUZZ_CASES=<n per RPC and
//! caller>` for more (e.g. `FUZZ_CASES=200 cargo test -p selfhelp-e2e --test fuzz`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use selfhelp_e2e::{Trio, published_group, service_env};
use selfhelp_testkit::{Backend, Nats, TestDb, token, wait_serving};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

const OPERATIONS_SERVICE: &str = "selfhelp.operations.v1.OperationsService";
const REGION: &str = "notts";
/// Deepest nesting of generated messages.
const MAX_DEPTH: usize = 3;

/// Bytes in, bytes out: requests are built here, answers only counted.
#[derive(Clone, Default)]
struct Raw;
struct RawEncoder;
struct RawDecoder;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Values that have broken parsers and queries elsewhere, plus ids that exist.
struct Corpus {
    strings: Vec<String>,
}

impl Corpus {
    fn new(group_id: &str) -> Corpus {
        let mut strings: Vec<String> = [
            "",
            " ",
            "a",
            "\0",
            "\n\r\t",
            "🙂",
            "Ö",
            "ÖO",
            "MÖ",
            "-9999-01-01",
            "1000-01-01",
            "2026-13-45",
            "2026-02-30",
            "9999-12-31",
            "25:99",
            "24:00",
            "-1",
            "0",
            "NaN",
            "../../etc/passwd",
            "' OR 1=1 --",
            "%s%n%x",
            "<script>alert(1)</script>",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "NG1 5JD",
            "ng15jd",
            "ZZ99 9ZZ",
            "FREQ=WEEKLY;BYDAY=ÖO",
            "RRULE:FREQ=SECONDLY",
            "https://127.0.0.1/hook",
            "http://[::1]:22/",
            "https://169.254.169.254/latest",
            "notts",
            "leeds",
            "operator",
            "admin",
            "whsec_",
            "bereavement",
            "a@b",
            "@",
            "Europe/London",
            "Mars/Olympus",
            "\u{202e}gnp.exe",
            "\u{feff}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        strings.push("x".repeat(300));
        strings.push("é".repeat(5_000));
        strings.push("x".repeat(100_000));
        strings.push(group_id.to_string());
        strings.push(uuid::Uuid::new_v4().to_string());
        strings.push(uuid::Uuid::now_v7().to_string());
        Corpus { strings }
    }

    fn string(&self, rng: &mut StdRng) -> String {
        if rng.random_bool(0.15) {
            let len = rng.random_range(0..40);
            (0..len).map(|_| rng.random::<char>()).collect()
        } else {
            self.strings[rng.random_range(0..self.strings.len())].clone()
        }
    }
}

/// An edge case half the time, otherwise `random`'s pick.
fn pick<T: Copy>(rng: &mut StdRng, edges: &[T], random: impl FnOnce(&mut StdRng) -> T) -> T {
    if rng.random_bool(0.5) {
        edges[rng.random_range(0..edges.len())]
    } else {
        random(rng)
    }
}

fn value(kind: &Kind, rng: &mut StdRng, corpus: &Corpus, depth: usize) -> Value {
    match kind {
        Kind::String => Value::String(corpus.string(rng)),
        Kind::Bytes => {
            let len = rng.random_range(0..64);
            Value::Bytes(
                (0..len)
                    .map(|_| rng.random::<u8>())
                    .collect::<Vec<_>>()
                    .into(),
            )
        }
        Kind::Bool => Value::Bool(rng.random()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(pick(
            rng,
            &[0, 1, -1, 2, 7, 100, 10_000, i32::MIN, i32::MAX],
            |r| r.random(),
        )),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(pick(
            rng,
            &[0, 1, -1, i64::MIN, i64::MAX, 1_800_000_000_000],
            |r| r.random(),
        )),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(pick(rng, &[0, 1, u32::MAX], |r| r.random())),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(pick(rng, &[0, 1, u64::MAX], |r| r.random())),
        Kind::Float => Value::F32(pick(
            rng,
            &[0.0, -1.0, f32::NAN, f32::INFINITY, f32::MAX],
            |r| r.random(),
        )),
        Kind::Double => Value::F64(pick(
            rng,
            &[
                0.0,
                -0.0,
                52.95,
                -1.15,
                91.0,
                -181.0,
                f64::NAN,
                f64::INFINITY,
                f64::MIN,
            ],
            |r| r.random_range(-1000.0..1000.0),
        )),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(pick(rng, &known, |r| r.random_range(-3..40)))
        }
        Kind::Message(m) => Value::Message(message(m, rng, corpus, depth + 1)),
    }
}

fn message(
    desc: &MessageDescriptor,
    rng: &mut StdRng,
    corpus: &Corpus,
    depth: usize,
) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    if depth > MAX_DEPTH {
        return msg;
    }
    for field in desc.fields() {
        if rng.random_bool(0.3) {
            continue; // left unset
        }
        let v = if field.is_map() {
            continue; // none of our requests has a map
        } else if field.is_list() {
            let n = pick(rng, &[0, 1, 2, 9, 600], |r| r.random_range(0..5));
            Value::List(
                (0..n)
                    .map(|_| value(&field.kind(), rng, corpus, depth))
                    .collect(),
            )
        } else {
            value(&field.kind(), rng, corpus, depth)
        };
        msg.set_field(&field, v);
    }
    msg
}

struct Target {
    service: String,
    method: String,
    input: MessageDescriptor,
    streaming: bool,
    channel: Channel,
}

/// A call slower than this, twice over, is a problem (the deadline is 5 s).
const SLOW: Duration = Duration::from_secs(1);

/// One call; its status code (OK for an answer) and how long it took.
async fn call(target: &Target, body: Vec<u8>, bearer: Option<&str>) -> (Code, String, Duration) {
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(5));
    if let Some(token) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_str(&format!(
        "/{}/{}",
        target.service, target.method
    ))
    .unwrap();
    let mut grpc = tonic::client::Grpc::new(target.channel.clone());
    if let Err(e) = grpc.ready().await {
        return (Code::Unavailable, e.to_string(), Duration::ZERO);
    }
    // The call itself, not waiting for the connection.
    let started = Instant::now();
    let answer = if target.streaming {
        // The stream opening (or being refused) is the answer; it may then
        // wait for news forever.
        grpc.server_streaming(request, path, Raw).await.map(|_| ())
    } else {
        grpc.unary(request, path, Raw).await.map(|_| ())
    };
    let elapsed = started.elapsed();
    match answer {
        Ok(()) => (Code::Ok, String::new(), elapsed),
        Err(s) => (s.code(), s.message().to_string(), elapsed),
    }
}

#[tokio::test]
async fn every_rpc_survives_random_and_hostile_requests_from_every_kind_of_caller() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let nats = Nats::start();
    let dbs = [
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    ];
    let env = |db: &TestDb, listings_url: &str| {
        let mut env = service_env(REGION, &db.url, &nats.url(), listings_url);
        env.extend([
            // The fuzzer calls as fast as it can from one address.
            ("SELFHELP_GRPC__RATE_PER_ADDRESS", "0".to_string()),
            ("SELFHELP_GRPC__RATE_PER_PERSON", "0".to_string()),
            ("SELFHELP_LOG__LEVEL", "error".to_string()),
        ]);
        env
    };
    let trio = Trio::start(&dbs, |_, db, listings_url| env(db, listings_url)).await;
    let processes = trio.named();
    // A real group, so ids in the corpus reach past "not found".
    let group_id = published_group(trio.listings.addr, REGION, "olive").await;
    let corpus = Corpus::new(&group_id);

    let pool = DescriptorPool::decode(selfhelp_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut targets = Vec::new();
    for service in pool.services() {
        // The operators' service is served by every binary; the others by one.
        let serving: Vec<_> = processes
            .iter()
            .filter(|(_, n)| *n == service.full_name() || service.full_name() == OPERATIONS_SERVICE)
            .collect();
        assert!(
            !serving.is_empty(),
            "{} is in the contracts but no binary serves it here",
            service.full_name()
        );
        for (process, _) in serving {
            let channel = tonic::transport::Endpoint::from_shared(process.url())
                .unwrap()
                .connect_lazy();
            for method in service.methods() {
                assert!(
                    !method.is_client_streaming(),
                    "no client streaming expected"
                );
                targets.push(Target {
                    service: service.full_name().to_string(),
                    method: method.name().to_string(),
                    input: method.input(),
                    streaming: method.is_server_streaming(),
                    channel: channel.clone(),
                });
            }
        }
    }
    let callers = [
        ("anonymous", None),
        ("member", Some(token("mo", REGION, &[]))),
        ("organiser", Some(token("olive", REGION, &[]))),
        ("operator", Some(token("ops", REGION, &["operator"]))),
        ("other region", Some(token("lee", "leeds", &["operator"]))),
    ];

    let mut rng = StdRng::seed_from_u64(seed);
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut calls = 0;
    for target in &targets {
        for (who, bearer) in &callers {
            for case in 0..=cases {
                // The last case of each is not protobuf at all.
                let (body, garbage) = if case == cases {
                    (
                        (0..rng.random_range(1..64))
                            .map(|_| rng.random::<u8>())
                            .collect(),
                        true,
                    )
                } else {
                    (
                        message(&target.input, &mut rng, &corpus, 0).encode_to_vec(),
                        false,
                    )
                };
                let (code, text, mut took) = call(target, body.clone(), bearer.as_deref()).await;
                if took > SLOW {
                    // A busy machine can hold up any one call: an input is slow
                    // only if the same bytes are slow again.
                    took = took.min(call(target, body, bearer.as_deref()).await.2);
                }
                calls += 1;
                *codes.entry(format!("{code:?}")).or_default() += 1;
                let what = format!(
                    "{}/{} as {who} (case {case})",
                    target.service, target.method
                );
                let undecodable = garbage && code == Code::Internal && text.contains("decode");
                if matches!(code, Code::Internal | Code::Unknown) && !undecodable {
                    problems.push(format!("{what}: {code:?} {text}"));
                }
                if took > SLOW {
                    problems.push(format!("{what}: took {took:?}, twice"));
                }
            }
        }
    }
    eprintln!(
        "fuzz: seed {seed}, {} RPCs × {} callers × {} cases = {calls} calls; codes {codes:?}",
        targets.len(),
        callers.len(),
        cases + 1
    );
    for (p, name) in processes {
        wait_serving(p.addr, name).await;
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
