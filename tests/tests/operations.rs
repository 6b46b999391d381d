//! The operators' toolbox against the three service binaries, over real gRPC
//! and a real nats-server: `selfhelp status`, `selfhelp dead-letters list` and
//! `replay` (the `selfhelp` binary, as an operator runs it), and the
//! OperationsService they use: operators of the region only, bad input named.
//! Then `selfhelp export` and `selfhelp import` between two deployments.

use std::process::{Command, Output};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use selfhelp_e2e::{ServiceProcess, Trio, binary, service_env, submit_and_approve};
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::operations::v1 as pb;
use selfhelp_proto::operations::v1::operations_service_client::OperationsServiceClient;
use selfhelp_proto::streams::MEMBERSHIP;
use selfhelp_testkit::{
    Backend, Nats, TestDb, channel, eventually, token, wait_serving, with_token,
};
use tonic::Code;

const REGION: &str = "notts";
const LISTINGS_SERVICE: &str = "selfhelp.listings.v1.ListingsService";

/// Runs `selfhelp ARGS` against `trio` as `bearer`.
fn selfhelp(trio: &Trio, bearer: &str, args: &[&str]) -> Output {
    within_a_minute(
        Command::new(binary("selfhelp"))
            .args(args)
            .env("SELFHELP_LISTINGS_URL", trio.listings.url())
            .env("SELFHELP_MEMBERSHIP_URL", trio.membership.url())
            .env("SELFHELP_NOTIFICATIONS_URL", trio.notifications.url())
            .env("SELFHELP_REGION", REGION)
            .env("SELFHELP_TOKEN", bearer),
    )
}

/// Runs `cmd` to its end; a command still running after a minute fails the test.
fn within_a_minute(cmd: &mut Command) -> Output {
    selfhelp_testkit::output_within(cmd, std::time::Duration::from_secs(60))
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `follow.started` event as `speaker` sends it: its headers and payload.
fn follow_started(id: &str, speaker: &str, person: &str) -> (async_nats::HeaderMap, Vec<u8>) {
    let follow = ev::FollowChanged {
        group_id: uuid::Uuid::now_v7().to_string(),
        person_id: person.into(),
        following: true,
        occurred_at: None,
    };
    let headers = selfhelp_platform::bus::Envelope {
        id,
        source: &format!("urn:selfhelp:{REGION}:{speaker}"),
        ce_type: &MEMBERSHIP.ce_type("follow.started"),
        time: "2026-11-29T00:00:00.000Z",
        aggregate_id: &follow.group_id,
        data_schema: &<ev::FollowChanged as prost::Name>::full_name(),
        traceparent: None,
        stream: MEMBERSHIP.name,
    }
    .headers();
    (headers, prost::Message::encode_to_vec(&follow))
}

/// An event on MEMBERSHIP that claims to come from listings: every consumer
/// of the stream must park it, not apply it.
async fn publish_forged(nats_url: &str, id: &str) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    selfhelp_platform::bus::ensure_stream(&js, MEMBERSHIP, Default::default())
        .await
        .unwrap();
    let (headers, payload) = follow_started(id, "listings", "someone");
    js.publish_with_headers(
        MEMBERSHIP.subject(REGION, "follow.started"),
        headers,
        payload.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Parks a well-formed event in `db_url`'s dead letters directly, as if an
/// earlier version had failed on it: a replay must apply it.
async fn park_valid_event(db_url: &str, consumer: &str) -> i64 {
    let id = uuid::Uuid::now_v7().to_string();
    let (headers, payload) = follow_started(&id, "membership", "parked-person");
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v[0].as_str().into()))
        .collect();
    let db = Database::connect(db_url).await.unwrap();
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO dead_letter (consumer, event_id, subject, headers_json, payload, error, \
         deliveries, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            consumer.into(),
            id.into(),
            MEMBERSHIP.subject(REGION, "follow.started").into(),
            serde_json::Value::Object(headers).to_string().into(),
            payload.into(),
            "a bug since fixed".into(),
            5i64.into(),
            selfhelp_core::time::now_ms().into(),
        ],
    ))
    .await
    .unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT MAX(id) AS id FROM dead_letter WHERE consumer = ?",
            [consumer.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "id").unwrap()
}

#[tokio::test]
async fn operators_see_status_and_list_and_replay_dead_letters() {
    let nats = Nats::start();
    let dbs = [
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    ];
    let trio = Trio::start(&dbs, |_, db, listings_url| {
        service_env(REGION, &db.url, &nats.url(), listings_url)
    })
    .await;
    let operator = token("ops", REGION, &["operator"]);

    // All well: one line per consumer, everything ready, nothing parked.
    let out = selfhelp(&trio, &operator, &["status"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for service in ["listings", "membership", "notifications"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("{service} in\n{stdout}"));
        assert!(line.contains(" yes "), "{line}");
        assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
    }
    assert!(
        stdout.contains("notifications-notts-membership"),
        "{stdout}"
    );

    // A forged event: both consumers of MEMBERSHIP park it.
    let forged = uuid::Uuid::now_v7().to_string();
    publish_forged(&nats.url(), &forged).await;
    let parked = eventually(
        "the forged event parked",
        Duration::from_secs(20),
        || async {
            let out = selfhelp(&trio, &operator, &["status"]);
            let (stdout, _) = text(&out);
            let parked = |durable: &str| {
                stdout
                    .lines()
                    .find(|l| l.contains(durable))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            (parked("notifications-notts-membership") == Some(1)
                && parked("listings-notts-membership") == Some(1))
            .then_some(stdout)
        },
    )
    .await;
    assert!(parked.contains("membership-notts-listings"), "{parked}");
    eprintln!("selfhelp status:\n{parked}");

    let out = selfhelp(
        &trio,
        &operator,
        &["dead-letters", "list", "--service", "notifications"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("notifications-notts-membership"))
        .unwrap_or_else(|| panic!("the letter listed:\n{stdout}"));
    assert!(
        line.contains("org.selfhelp.membership.follow.started.v1"),
        "{line}"
    );
    assert!(line.contains("does not belong"), "{line}");
    assert!(!stdout.contains("someone"), "no payload shown: {stdout}");

    // Replaying what still cannot apply leaves it parked, and says so.
    let out = selfhelp(
        &trio,
        &operator,
        &[
            "dead-letters",
            "replay",
            "--service",
            "notifications",
            "--all",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("0 replayed, 1 still parked"), "{stdout}");
    assert!(stderr.contains("still fail"), "{stderr}");

    // A letter whose cause is gone is applied by id, once.
    let id = park_valid_event(&dbs[2].url, "notifications-notts-membership").await;
    let id_text = id.to_string();
    let replay_it = [
        "dead-letters",
        "replay",
        "--service",
        "notifications",
        &id_text,
    ];
    let out = selfhelp(&trio, &operator, &replay_it);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 replayed, 0 still parked"), "{stdout}");
    let out = selfhelp(
        &trio,
        &operator,
        &[
            "dead-letters",
            "list",
            "--service",
            "notifications",
            "--include-replayed",
        ],
    );
    let (stdout, _) = text(&out);
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!(" {id} ")))
        .unwrap_or_else(|| panic!("letter {id} listed:\n{stdout}"));
    assert!(!line.contains(" - "), "a replay time: {line}");
    // The same again: it was applied once, and only once.
    let out = selfhelp(&trio, &operator, &replay_it);
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("0 replayed, 0 still parked"),
        "replayed once only"
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("1 of the ids are no letter waiting"),
        "{stderr}"
    );
    // A consumer's name says which service to ask.
    let out = selfhelp(
        &trio,
        &operator,
        &[
            "dead-letters",
            "list",
            "--consumer",
            "listings-notts-membership",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("listings-notts-membership"), "{stdout}");
    assert!(
        !stdout.contains("notifications-notts-membership"),
        "{stdout}"
    );

    // Only the region's operators; bad input is named.
    let out = selfhelp(&trio, &token("mo", REGION, &[]), &["status"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.contains("PermissionDenied"), "{stdout}\n{stderr}");
    let mut ops = OperationsServiceClient::new(channel(trio.notifications.addr).await);
    for bearer in [
        token("mo", REGION, &[]),
        token("lee", "leeds", &["operator"]),
    ] {
        let denied = ops
            .list_dead_letters(with_token(pb::ListDeadLettersRequest::default(), &bearer))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    }
    let anonymous = ops.get_status(pb::GetStatusRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let bad = ops
        .list_dead_letters(with_token(
            pb::ListDeadLettersRequest {
                consumer: "listings-notts-membership".into(),
                include_replayed: false,
                limit: 501,
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["consumer", "limit"]);
    let bad = ops
        .replay_dead_letters(with_token(
            pb::ReplayDeadLettersRequest {
                ids: vec![0, 3],
                all: true,
                consumer: String::new(),
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["ids", "ids[0]"]);
    let bad = ops
        .replay_dead_letters(with_token(
            pb::ReplayDeadLettersRequest::default(),
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["ids"]);
}

/// A published group with every field ORUK carries, and a schedule.
async fn rich_group(
    listings: &mut ListingsServiceClient<tonic::transport::Channel>,
    name: &str,
    schedule: lpb::Schedule,
) -> String {
    let organiser = token("olive", REGION, &[]);
    let group = listings
        .create_group(with_token(
            lpb::CreateGroupRequest {
                name: name.into(),
                summary: format!("{name}, in short"),
                description: format!("All about {name}"),
                topics: vec!["bereavement".into()],
                format: lpb::MeetingFormat::Hybrid.into(),
                join_policy: lpb::JoinPolicy::Open.into(),
                venues: vec![lpb::Venue {
                    name: "Friends Meeting House".into(),
                    address: "Clarendon Street".into(),
                    town: "Nottingham".into(),
                    postcode: "NG1 5JD".into(),
                    latitude: Some(52.955),
                    longitude: Some(-1.158),
                    accessibility: "Step-free access".into(),
                    travel_notes: "Tram to Royal Centre".into(),
                }],
                eligibility: Some(lpb::Eligibility {
                    minimum_age: 18,
                    maximum_age: 99,
                    ..Default::default()
                }),
                area_served: "Nottingham".into(),
                contact: Some(lpb::Contact {
                    name: "Coordinator".into(),
                    email: "hello@example.org".into(),
                    phone: "0115 496 0000".into(),
                    website: "https://example.org/group".into(),
                }),
                cost: Some(lpb::Cost {
                    kind: lpb::CostKind::Donation.into(),
                    description: "£2 for tea".into(),
                }),
                languages: vec!["en".into(), "pl".into()],
                ..Default::default()
            },
            &organiser,
        ))
        .await
        .unwrap()
        .into_inner();
    listings
        .set_schedule(with_token(
            lpb::SetScheduleRequest {
                group_id: group.id.clone(),
                schedule: Some(schedule),
            },
            &organiser,
        ))
        .await
        .unwrap();
    submit_and_approve(listings, REGION, &group.id, &organiser).await;
    group.id
}

/// An export's services, by id, without what differs between two
/// deployments by nature: when each row was last written, and the ids the
/// taxonomy's terms got in each database (the terms' codes stay).
fn comparable(export: &serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    export["contents"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let obj = s.as_object_mut().unwrap();
            obj.remove("last_modified");
            let codes: Vec<_> = obj["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["taxonomy_term"]["code"].clone())
                .collect();
            obj.insert("attributes".into(), codes.into());
            (obj["id"].as_str().unwrap().to_string(), s)
        })
        .collect()
}

/// `selfhelp export` of one deployment, `selfhelp import` into an empty one
/// (dry run, then for real, then again), and the second's export is the first's.
#[tokio::test]
async fn an_exported_directory_imported_into_an_empty_region_is_the_same_directory() {
    let nats = Nats::start();
    let (first_db, second_db) = (
        TestDb::new(Backend::Sqlite).await,
        TestDb::new(Backend::Sqlite).await,
    );
    let first = ServiceProcess::spawn(
        "selfhelp-listings",
        &service_env(REGION, &first_db.url, &nats.url(), ""),
    );
    wait_serving(first.addr, LISTINGS_SERVICE).await;
    let mut listings = ListingsServiceClient::new(channel(first.addr).await);
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    rich_group(
        &mut listings,
        "Wednesday carers' circle",
        lpb::Schedule {
            frequency: lpb::Frequency::Weekly.into(),
            interval: 2,
            weekday: lpb::Weekday::Wednesday.into(),
            valid_from: today.clone(),
            start_time: "19:00".into(),
            end_time: "21:00".into(),
            ..Default::default()
        },
    )
    .await;
    rich_group(
        &mut listings,
        "Last Friday bereavement café",
        lpb::Schedule {
            frequency: lpb::Frequency::Monthly.into(),
            interval: 1,
            weekday: lpb::Weekday::Friday.into(),
            week_of_month: -1,
            valid_from: today,
            start_time: "10:30".into(),
            end_time: "12:00".into(),
            ..Default::default()
        },
    )
    .await;
    let operator = token("ops", REGION, &["operator"]);
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("directory.json");
    let run = |listings: &ServiceProcess, args: &[&str]| {
        within_a_minute(
            Command::new(binary("selfhelp"))
                .args(args)
                .env("SELFHELP_LISTINGS_URL", listings.url())
                .env("SELFHELP_REGION", REGION)
                .env("SELFHELP_TOKEN", &operator),
        )
    };
    let out = run(&first, &["export", "--out", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(original["total_items"], 2);

    let second = ServiceProcess::spawn(
        "selfhelp-listings",
        &service_env(REGION, &second_db.url, &nats.url(), ""),
    );
    wait_serving(second.addr, LISTINGS_SERVICE).await;
    let file = exported.to_str().unwrap();
    let out = run(&second, &["import", "--dry-run", file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 would be imported, 0 already there, 0 refused"),
        "{stdout}"
    );
    assert!(stderr.contains("2/2:"), "a progress line: {stderr}");
    let out = run(&second, &["import", file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 imported, 0 already there, 0 refused"),
        "{stdout}"
    );
    let out = run(&second, &["import", file]);
    assert!(
        text(&out)
            .0
            .contains("0 imported, 2 already there, 0 refused"),
        "a re-run adds nothing: {}",
        text(&out).0
    );

    let again = dir.path().join("again.json");
    let out = run(&second, &["export", "--out", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let copy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap();
    assert_eq!(comparable(&copy), comparable(&original));

    // A document that cannot be a group is refused with its reasons; the
    // others are not held up by it.
    let mut mixed = original["contents"].as_array().unwrap().clone();
    mixed.push(serde_json::json!({
        "id": "elsewhere-7",
        "name": "",
        "schedules": [{"freq": "DAILY", "opens_at": "10:00", "closes_at": "11:00"}],
    }));
    mixed.push(serde_json::json!({
        "id": "elsewhere-8",
        "name": "Group on an unknown topic",
        "attributes": [{"taxonomy_term": {"code": "no-such-topic"}}],
    }));
    let mixed_file = dir.path().join("mixed.json");
    std::fs::write(&mixed_file, serde_json::Value::from(mixed).to_string()).unwrap();
    let out = run(&second, &["import", mixed_file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.contains("refused \"elsewhere-7\""), "{stdout}");
    assert!(stdout.contains("DAILY"), "{stdout}");
    assert!(stdout.contains("refused \"elsewhere-8\""), "{stdout}");
    assert!(stdout.contains("topics"), "{stdout}");
    assert!(
        stdout.contains("0 imported, 2 already there, 2 refused"),
        "{stdout}"
    );
    assert!(stderr.contains("2 of 4 documents refused"), "{stderr}");

    // A directory kept in a spreadsheet comes in as CSV.
    let csv_file = dir.path().join("groups.csv");
    std::fs::write(
        &csv_file,
        "id,name,summary,topics,venue_name,town,postcode,frequency,weekday,start_time,end_time,valid_from,format\n\
         sheet-1,Men's shed chat,Tea and tools,bereavement,Shed,Beeston,NG9 1GA,weekly,Thursday,10:00,12:00,"
            .to_string()
            + &chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string()
            + ",In person\n",
    )
    .unwrap();
    let out = run(&second, &["import", csv_file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 imported, 0 already there, 0 refused"),
        "{stdout}"
    );
    let out = run(&second, &["export"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["total_items"], 3);
    assert!(text(&out).0.contains("Men's shed chat"));

    // Only operators import.
    let mut client = ListingsServiceClient::new(channel(second.addr).await);
    let denied = client
        .import_open_referral(with_token(
            lpb::ImportOpenReferralRequest {
                services_json: vec!["{}".into()],
                dry_run: true,
            },
            &token("olive", REGION, &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let empty = client
        .import_open_referral(with_token(
            lpb::ImportOpenReferralRequest::default(),
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&empty), ["services_json"]);
}

/// Runs a command to its end; panics with its output when it fails.
fn run_ok(program: &str, args: &[&str]) {
    let out = within_a_minute(Command::new(program).args(args));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many events JetStream holds in `stream`, and whether `durable` is there.
async fn jetstream_state(nats_url: &str, stream: &str, durable: &str) -> (u64, bool) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut stream = js.get_stream(stream).await.expect("the stream");
    let messages = stream.info().await.unwrap().state.messages;
    let consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
        .await
        .is_ok();
    (messages, consumer)
}

/// The backup docs/operations.md describes, done: `pg_dump` of a running
/// service's PostgreSQL database and a copy of JetStream's store taken with
/// NATS stopped, restored into an empty database and a new server: listings
/// serves the same directory and the streams and durables are there.
#[tokio::test]
async fn a_backup_of_the_database_and_jetstream_restores_the_directory() {
    if !selfhelp_testkit::postgres_available(module_path!()) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (store, copy) = (work.path().join("js"), work.path().join("js-restored"));
    let nats_binary = selfhelp_testkit::nats_binary();
    let mut nats =
        selfhelp_testkit::nats_server::NatsProcess::start_on_any_port(&nats_binary, &store, None)
            .unwrap();
    let db = TestDb::new(Backend::Postgres).await;
    let listings = ServiceProcess::spawn(
        "selfhelp-listings",
        &service_env(REGION, &db.url, &nats.url(), ""),
    );
    wait_serving(listings.addr, LISTINGS_SERVICE).await;
    let mut client = ListingsServiceClient::new(channel(listings.addr).await);
    rich_group(
        &mut client,
        "Backed-up group",
        lpb::Schedule {
            frequency: lpb::Frequency::Weekly.into(),
            interval: 1,
            weekday: lpb::Weekday::Tuesday.into(),
            valid_from: chrono::Utc::now()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
            start_time: "18:00".into(),
            end_time: "19:30".into(),
            ..Default::default()
        },
    )
    .await;
    let export = |addr| async move {
        let mut client = ListingsServiceClient::new(channel(addr).await);
        let page = client
            .export_open_referral(lpb::ExportOpenReferralRequest {
                page: 1,
                per_page: 100,
            })
            .await
            .unwrap()
            .into_inner()
            .page_json;
        serde_json::from_str::<serde_json::Value>(&page).unwrap()
    };
    let before = export(listings.addr).await;
    assert_eq!(before["total_items"], 1);
    // Everything written is in JetStream before the backup.
    let events = eventually("the outbox drained", Duration::from_secs(20), || {
        let url = nats.url();
        async move {
            let (messages, _) = jetstream_state(&url, "LISTINGS", "").await;
            (messages >= 4).then_some(messages)
        }
    })
    .await;

    // The backup: the database online, JetStream's store with NATS stopped.
    let dump = work.path().join("listings.dump");
    run_ok(
        "pg_dump",
        &["--format=custom", "--file", dump.to_str().unwrap(), &db.url],
    );
    drop(listings);
    nats.stop();
    run_ok(
        "cp",
        &["-a", store.to_str().unwrap(), copy.to_str().unwrap()],
    );
    std::fs::remove_dir_all(&store).unwrap();

    // The restore, into an empty database and a new server.
    let restored = TestDb::new(Backend::Postgres).await;
    run_ok(
        "pg_restore",
        &[
            "--no-owner",
            "--dbname",
            &restored.url,
            dump.to_str().unwrap(),
        ],
    );
    let nats =
        selfhelp_testkit::nats_server::NatsProcess::start_on_any_port(&nats_binary, &copy, None)
            .unwrap();
    let (messages, _) = jetstream_state(&nats.url(), "LISTINGS", "").await;
    assert!(
        messages >= events,
        "{messages} < {events} events after the restore"
    );
    let (_, durable) =
        jetstream_state(&nats.url(), "MEMBERSHIP", "listings-notts-membership").await;
    assert!(durable, "listings' durable consumer came back");
    let listings = ServiceProcess::spawn(
        "selfhelp-listings",
        &service_env(REGION, &restored.url, &nats.url(), ""),
    );
    wait_serving(listings.addr, LISTINGS_SERVICE).await;
    assert_eq!(export(listings.addr).await, before, "the same directory");
}
