//! The listings service in-process over real gRPC/TCP, with a real nats-server and
//! real databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set).

use selfhelp_core::time::Clock;
use selfhelp_listings::{Config, SERVICE_NAME, run, run_with_clock};
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_testkit::{
    Backend, Nats, OutsideSubscriber, RunningService, TestDb, assert_cloudevent, ce_subject_of,
    per_backend, token, with_token,
};
use tonic::Code;
use tonic::transport::Channel;

const REGION: &str = "notts";

async fn start(db: &TestDb, nats: &Nats) -> RunningService {
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await
}

/// Two replicas of listings on one database and one NATS, with a client for each.
async fn two_replicas(
    db: &TestDb,
    nats: &Nats,
) -> (
    RunningService,
    RunningService,
    ListingsServiceClient<Channel>,
    ListingsServiceClient<Channel>,
) {
    let (a, b) = (start(db, nats).await, start(db, nats).await);
    let client_a = ListingsServiceClient::new(a.channel().await);
    let client_b = ListingsServiceClient::new(b.channel().await);
    (a, b, client_a, client_b)
}

fn new_group(name: &str, description: &str, topics: &[&str]) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        proposed: false,
        name: name.into(),
        summary: "A friendly peer-support group".into(),
        description: description.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        format: pb::MeetingFormat::InPerson.into(),
        join_policy: pb::JoinPolicy::Open.into(),
        venues: vec![pb::Venue {
            name: "Community hall".into(),
            address: "1 Market Street".into(),
            town: "Nottingham".into(),
            postcode: "ng1 5fs".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn publish(
    client: &mut ListingsServiceClient<Channel>,
    organiser: &str,
    req: pb::CreateGroupRequest,
) -> pb::Group {
    publish_in(client, REGION, organiser, req).await
}

async fn publish_in(
    client: &mut ListingsServiceClient<Channel>,
    region: &str,
    organiser: &str,
    req: pb::CreateGroupRequest,
) -> pb::Group {
    let t = token(organiser, region, &[]);
    let g = client
        .create_group(with_token(req, &t))
        .await
        .unwrap()
        .into_inner();
    client
        .submit_group(with_token(
            pb::SubmitGroupRequest {
                group_id: g.id.clone(),
            },
            &t,
        ))
        .await
        .unwrap();
    let op = token("operator-1", region, &["operator"]);
    let approve = pb::ReviewGroupRequest {
        group_id: g.id,
        decision: pb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    client
        .review_group(with_token(approve, &op))
        .await
        .unwrap()
        .into_inner()
}

async fn group_lifecycle_visibility_and_events(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let alice = token("alice", REGION, &[]);

    let draft = client
        .create_group(with_token(
            new_group("Bereavement support", "We meet weekly", &["bereavement"]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(draft.status(), pb::GroupStatus::Draft, "{backend:?}");
    assert_eq!(draft.organiser_ids, vec!["alice"]);
    assert_eq!(draft.venues[0].postcode, "NG1 5FS");

    // A draft is invisible to the public and to other people.
    let get = |id: &str| pb::GetGroupRequest {
        group_id: id.to_string(),
    };
    assert_eq!(
        client.get_group(get(&draft.id)).await.unwrap_err().code(),
        Code::NotFound
    );
    let bob = token("bob", REGION, &[]);
    assert_eq!(
        client
            .get_group(with_token(get(&draft.id), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_group(with_token(get(&draft.id), &alice))
            .await
            .unwrap()
            .into_inner()
            .id,
        draft.id
    );
    let search = |q: &str, topic: &str| pb::SearchGroupsRequest {
        query: q.into(),
        topic: topic.into(),
        page: None,
        ..Default::default()
    };
    assert_eq!(
        client
            .search_groups(search("bereave", ""))
            .await
            .unwrap()
            .into_inner()
            .groups
            .len(),
        0
    );

    // Only organisers submit; only operators of this region review.
    let submit = pb::SubmitGroupRequest {
        group_id: draft.id.clone(),
    };
    assert_eq!(
        client
            .submit_group(with_token(submit.clone(), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let submitted = client
        .submit_group(with_token(submit.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted.status(), pb::GroupStatus::PendingReview);
    assert_eq!(
        client
            .submit_group(with_token(submit, &alice))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    let approve = pb::ReviewGroupRequest {
        group_id: draft.id.clone(),
        decision: pb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    let other_region_op = token("op-leeds", "leeds", &["operator"]);
    assert_eq!(
        client
            .review_group(with_token(approve.clone(), &other_region_op))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        client
            .review_group(with_token(approve.clone(), &alice))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let op = token("op-notts", REGION, &["operator"]);
    let published = client
        .review_group(with_token(approve, &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.status(), pb::GroupStatus::Published);
    assert_eq!(published.version, 3);

    // Public now, without revealing who organises it.
    let public = client.get_group(get(&draft.id)).await.unwrap().into_inner();
    assert_eq!(public.status(), pb::GroupStatus::Published);
    assert!(public.organiser_ids.is_empty());
    let found = client
        .search_groups(search("bereave", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.groups.len(), 1);
    assert_eq!(found.page.unwrap().total_size, 1);
    assert_eq!(
        client
            .search_groups(search("", "bereavement"))
            .await
            .unwrap()
            .into_inner()
            .groups
            .len(),
        1
    );
    assert_eq!(
        client
            .search_groups(search("", "carers"))
            .await
            .unwrap()
            .into_inner()
            .groups
            .len(),
        0
    );

    // Each step went out through the outbox as a CloudEvent.
    let source = format!("urn:selfhelp:{REGION}:listings");
    for (event, schema) in [
        ("created", "GroupCreated"),
        ("submitted", "GroupSubmitted"),
        ("published", "GroupPublished"),
    ] {
        let m = outside
            .expect(&format!("selfhelp.{REGION}.listings.group.{event}"))
            .await;
        assert_cloudevent(
            &m,
            &format!("org.selfhelp.listings.group.{event}.v1"),
            &source,
            &format!("selfhelp.events.v1.{schema}"),
        );
        if event == "published" {
            // The venue has only a postcode: its centroid says where the
            // group meets, for people's "near me" alerts.
            let e: selfhelp_proto::events::v1::GroupPublished =
                prost::Message::decode(m.payload.clone()).unwrap();
            let places = e.group.unwrap().places;
            assert_eq!(places.len(), 1, "{backend:?}");
            assert!((places[0].latitude - 52.95).abs() < 0.05, "{places:?}");
        }
    }
    svc.stop().await.unwrap();
}

per_backend!(group_lifecycle_visibility_and_events);

async fn rejection_needs_a_note_and_returns_to_draft(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    rejection_scenario(&db, &nats).await;
}

per_backend!(rejection_needs_a_note_and_returns_to_draft);

async fn rejection_scenario(db: &TestDb, nats: &Nats) {
    let svc = start(db, nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let alice = token("alice", REGION, &[]);
    let g = client
        .create_group(with_token(
            new_group("Carers' circle", "", &["carers"]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    client
        .submit_group(with_token(
            pb::SubmitGroupRequest {
                group_id: g.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    let op = token("op", REGION, &["operator"]);
    let mut reject = pb::ReviewGroupRequest {
        group_id: g.id.clone(),
        decision: pb::ReviewDecision::Reject.into(),
        note: String::new(),
    };
    let err = client
        .review_group(with_token(reject.clone(), &op))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["note"]);
    reject.note = "Please add a venue phone number".into();
    let back = client
        .review_group(with_token(reject, &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.status(), pb::GroupStatus::Draft);
    assert_eq!(back.review_note, "Please add a venue phone number");
}

async fn a_proposal_is_shown_to_the_public_only_after_review(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    proposal_review_scenario(&db, &nats).await;
}

per_backend!(a_proposal_is_shown_to_the_public_only_after_review);

async fn proposal_review_scenario(db: &TestDb, nats: &Nats) {
    let svc = start(db, nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let (alice, op) = (
        token("alice", REGION, &[]),
        token("op", REGION, &["operator"]),
    );
    let mut proposal = new_group("Young carers' walk", "", &["carers"]);
    proposal.proposed = true;
    let g = client
        .create_group(with_token(proposal, &alice))
        .await
        .unwrap()
        .into_inner();
    let get = |id: &str| pb::GetGroupRequest {
        group_id: id.to_string(),
    };
    let listed = |client: &mut ListingsServiceClient<Channel>| {
        let mut client = client.clone();
        async move {
            client
                .list_proposed_groups(pb::ListProposedGroupsRequest { page: None })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let submit = || pb::SubmitGroupRequest {
        group_id: g.id.clone(),
    };
    let review = |decision: pb::ReviewDecision, note: &str| pb::ReviewGroupRequest {
        group_id: g.id.clone(),
        decision: decision.into(),
        note: note.into(),
    };

    // Unreviewed, a proposal is private: a stranger cannot tell it exists.
    assert_eq!(
        client.get_group(get(&g.id)).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(listed(&mut client).await.groups.is_empty());

    // Submitted, it waits in the operators' queue, still private.
    let waiting = client
        .submit_group(with_token(submit(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.status(), pb::GroupStatus::ProposalPendingReview);
    let queue = client
        .list_review_queue(with_token(pb::ListReviewQueueRequest { page: None }, &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        queue
            .groups
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>(),
        vec![g.id.as_str()]
    );
    assert_eq!(
        client.get_group(get(&g.id)).await.unwrap_err().code(),
        Code::NotFound
    );

    // Rejected, it goes back to its organisers with the operator's note.
    let back = client
        .review_group(with_token(
            review(pb::ReviewDecision::Reject, "Say where it would meet"),
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.status(), pb::GroupStatus::Proposed);
    assert_eq!(back.review_note, "Say where it would meet");
    assert_eq!(
        client.get_group(get(&g.id)).await.unwrap_err().code(),
        Code::NotFound
    );

    // Approved, the public sees it as a group being started, without the
    // people behind it, and nowhere that lists groups that meet.
    client
        .submit_group(with_token(submit(), &alice))
        .await
        .unwrap();
    let approved = client
        .review_group(with_token(review(pb::ReviewDecision::Approve, ""), &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status(), pb::GroupStatus::ProposalListed);
    let public = client.get_group(get(&g.id)).await.unwrap().into_inner();
    assert_eq!(public.status(), pb::GroupStatus::ProposalListed);
    assert!(public.organiser_ids.is_empty(), "{public:?}");
    let page = listed(&mut client).await;
    assert_eq!(
        page.groups
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        vec![g.id.as_str()]
    );
    assert!(page.groups[0].organiser_ids.is_empty());
    assert_eq!(page.page.unwrap().total_size, 1);
    let m = outside
        .expect_matching(
            &format!("selfhelp.{REGION}.listings.group.proposal_listed"),
            |m| {
                let e: selfhelp_proto::events::v1::GroupStatusChanged =
                    prost::Message::decode(m.payload.clone()).unwrap();
                e.group.is_some_and(|s| s.group_id == g.id)
            },
        )
        .await;
    assert_cloudevent(
        &m,
        selfhelp_proto::events::types::GROUP_PROPOSAL_LISTED,
        &format!("urn:selfhelp:{REGION}:listings"),
        "selfhelp.events.v1.GroupStatusChanged",
    );
    let search = client
        .search_groups(pb::SearchGroupsRequest {
            query: "carers walk".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(search.groups.iter().all(|s| s.id != g.id), "{search:?}");
    let oruk = client
        .get_open_referral_service(pb::GetOpenReferralServiceRequest {
            service_id: g.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(oruk.code(), Code::NotFound);

    // A bad page token names its field.
    let err = client
        .list_proposed_groups(pb::ListProposedGroupsRequest {
            page: Some(PageRequest {
                page_size: 10,
                page_token: "not-a-token".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["page.page_token"]);

    // Started, it becomes an ordinary draft: off the public list again.
    client
        .start_group(with_token(
            pb::StartGroupRequest {
                group_id: g.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    assert!(listed(&mut client).await.groups.is_empty());
    assert_eq!(
        client.get_group(get(&g.id)).await.unwrap_err().code(),
        Code::NotFound
    );
}

async fn search_pages_through_results_with_totals(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    search_scenario(&db, &nats).await;
}

per_backend!(search_pages_through_results_with_totals);

async fn search_scenario(db: &TestDb, nats: &Nats) {
    let svc = start(db, nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    for name in ["Alpha walkers", "Beta walkers", "Gamma walkers"] {
        publish(
            &mut client,
            "org",
            new_group(name, "walking together", &["mental-health"]),
        )
        .await;
    }
    publish(
        &mut client,
        "org",
        new_group("Knitting 100% wool_club", "", &["parenting"]),
    )
    .await;
    let mut names = Vec::new();
    let mut token_ = String::new();
    loop {
        let resp = client
            .search_groups(pb::SearchGroupsRequest {
                query: "WALKERS".into(),
                topic: String::new(),
                page: Some(PageRequest {
                    page_size: 2,
                    page_token: token_.clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let page = resp.page.unwrap();
        assert_eq!(page.total_size, 3);
        names.extend(resp.groups.into_iter().map(|g| g.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    assert_eq!(
        names,
        vec!["Alpha walkers", "Beta walkers", "Gamma walkers"]
    );
    // Characters that are wildcards elsewhere (SQL LIKE's % and _) are plain
    // text to the word index: "100%" finds "Knitting 100% wool_club" by its
    // word "100", and "t_n" matches no word ("tin", "ten"), as `_` is no
    // wildcard.
    let pct = client
        .search_groups(pb::SearchGroupsRequest {
            query: "100%".into(),
            topic: String::new(),
            page: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pct.into_inner().groups.len(), 1);
    let underscore = client
        .search_groups(pb::SearchGroupsRequest {
            query: "t_n".into(),
            topic: String::new(),
            page: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(underscore.into_inner().groups.len(), 0);
}

async fn the_index_is_read_again_from_the_database_at_start(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let mut published = Vec::new();
    for i in 0..5 {
        let g = publish(
            &mut client,
            "org",
            new_group(&format!("Walkers {i}"), "walking together", &[]),
        )
        .await;
        published.push(g.id);
    }
    let t = token("org", REGION, &[]);
    client
        .create_group(with_token(
            new_group("Walkers in draft", "walking together", &[]),
            &t,
        ))
        .await
        .unwrap();
    published.sort();

    // Pages after a group, as the build reads them: each published group once,
    // in id order, and no draft.
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let mut read = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            selfhelp_listings::store::group::published_after(&conn, REGION, after.as_deref(), 2)
                .await
                .unwrap();
        assert!(page.len() <= 2, "{backend:?}");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        read.extend(page.into_iter().map(|g| g.id));
    }
    assert_eq!(read, published, "{backend:?}");
    assert!(
        selfhelp_listings::store::group::published_after(&conn, "elsewhere", None, 10)
            .await
            .unwrap()
            .is_empty(),
        "another region's groups are not read"
    );

    // A new start builds its index from the database.
    svc.stop().await.unwrap();
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let found = client
        .search_groups(pb::SearchGroupsRequest {
            query: "walkers".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.page.unwrap().total_size, 5, "{backend:?}");
    svc.stop().await.unwrap();
}

per_backend!(the_index_is_read_again_from_the_database_at_start);

#[tokio::test]
async fn bad_requests_get_the_right_codes_and_name_the_field() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let alice = token("alice", REGION, &[]);

    // A request larger than 256 KiB is refused before it is read whole, even
    // anonymous; the service answers the next call as usual.
    let huge = pb::SearchGroupsRequest {
        query: "a".repeat(300 * 1024),
        ..Default::default()
    };
    assert_eq!(
        client.search_groups(huge).await.unwrap_err().code(),
        Code::OutOfRange
    );
    client
        .search_groups(pb::SearchGroupsRequest::default())
        .await
        .unwrap();

    // Tokens.
    let ok = new_group("Group", "", &[]);
    assert_eq!(
        client.create_group(ok.clone()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        client
            .create_group(with_token(ok.clone(), "not-a-jwt"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let forged = selfhelp_platform::auth::mint_hs256(
        "wrong-secret",
        "alice",
        REGION,
        &[],
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        client
            .create_group(with_token(ok.clone(), &forged))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut bad_scheme = tonic::Request::new(ok.clone());
    bad_scheme
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        client.create_group(bad_scheme).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // A token for another region cannot create groups here.
    let leeds = token("carol", "leeds", &[]);
    assert_eq!(
        client
            .create_group(with_token(ok, &leeds))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let cases: Vec<(pb::CreateGroupRequest, &str)> = vec![
        (new_group("", "", &[]), "name"),
        (new_group("Big", &"x".repeat(20_000), &[]), "description"),
        (
            {
                let mut g = new_group("Postcode", "", &[]);
                g.venues[0].postcode = "NOT A POSTCODE".into();
                g
            },
            "venues[0].postcode",
        ),
        (
            {
                let mut g = new_group("Enum", "", &[]);
                g.format = 99;
                g
            },
            "format",
        ),
        (
            {
                let mut g = new_group("Policy", "", &[]);
                g.join_policy = 0;
                g
            },
            "join_policy",
        ),
        (new_group("Topic", "", &["Not a slug!"]), "topics[0]"),
        // One-line fields take no line breaks (they would forge a heading or a
        // log line); descriptions may have them.
        (new_group("Two\nlines", "", &[]), "name"),
        (new_group("Carriage\rreturn", "", &[]), "name"),
        (
            {
                let mut g = new_group("Venue", "", &[]);
                g.venues.clear();
                g
            },
            "venues",
        ),
    ];
    for (req, field) in cases {
        let err = client
            .create_group(with_token(req, &alice))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            violated_fields(&err).iter().any(|f| f == field),
            "{field} not in {:?}",
            violated_fields(&err)
        );
    }

    // The rest of the card.
    let mut card = new_group("Card", "", &[]);
    card.cost = Some(pb::Cost {
        kind: 99,
        description: String::new(),
    });
    card.contact = Some(pb::Contact {
        email: "nope".into(),
        website: "ftp://x".into(),
        ..Default::default()
    });
    card.eligibility = Some(pb::Eligibility {
        minimum_age: 200,
        ..Default::default()
    });
    card.languages = vec!["English".into()];
    card.joining_details = "x".repeat(5_000);
    let err = client
        .create_group(with_token(card, &alice))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        vec![
            "eligibility.minimum_age",
            "contact.email",
            "contact.website",
            "cost.kind",
            "languages[0]",
            "joining_details"
        ]
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let get = client
        .get_group(pb::GetGroupRequest {
            group_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let malformed = client
        .get_group(pb::GetGroupRequest {
            group_id: "42".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&malformed), vec!["group_id"]);
    let review = pb::ReviewGroupRequest {
        group_id: unknown,
        decision: 7,
        note: String::new(),
    };
    let err = client
        .review_group(with_token(review, &token("op", REGION, &["operator"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["decision"]);
    let page = pb::SearchGroupsRequest {
        query: String::new(),
        topic: String::new(),
        page: Some(PageRequest {
            page_size: 1000,
            page_token: "junk".into(),
        }),
        ..Default::default()
    };
    let err = client.search_groups(page).await.unwrap_err();
    assert_eq!(
        violated_fields(&err),
        vec!["page.page_size", "page.page_token"]
    );
}

/// Health and reflection on a listings port. (A stop with calls in flight is
/// tested in tests/tests/graceful.rs.)
#[tokio::test]
async fn health_and_reflection_list_what_this_port_serves() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await; // returns once readiness is SERVING
    let channel = svc.channel().await;
    let mut services = list_services(channel.clone()).await;
    services.sort();
    // What this port serves, and nothing it does not (the contracts describe
    // membership and notifications too).
    assert_eq!(
        services,
        vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            SERVICE_NAME,
        ],
    );
    svc.stop().await.unwrap();
}

/// Lists services through server reflection v1, as grpcurl would.
async fn list_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    match resp.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test]
async fn overload_is_shed_with_resource_exhausted() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let mut common = selfhelp_testkit::common_config(&db.url, &nats.url(), REGION);
    common.grpc.concurrency_limit = 1;
    let config = Config {
        common,
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let client = ListingsServiceClient::new(svc.channel().await);
    let mut shed = 0;
    for _round in 0..5 {
        // A call that reads the database (a search is answered from memory and
        // may finish before the next call arrives).
        let calls = (0..64).map(|_| {
            let mut c = client.clone();
            async move {
                c.list_topics(pb::ListTopicsRequest::default())
                    .await
                    .map(|_| ())
            }
        });
        for result in futures::future::join_all(calls).await {
            match result {
                Ok(()) => {}
                Err(s) if s.code() == Code::ResourceExhausted => shed += 1,
                Err(s) => panic!("unexpected status under load: {s:?}"),
            }
        }
        if shed > 0 {
            break;
        }
    }
    assert!(
        shed > 0,
        "64 concurrent calls against a limit of 1 must shed some"
    );
}

/// The limits are the server's memory, the same on either database: SQLite.
#[tokio::test]
async fn each_caller_gets_a_fair_share_and_a_retry_hint_beyond_it() {
    use tonic_types::StatusExt;
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let mut common = selfhelp_testkit::common_config(&db.url, &nats.url(), REGION);
    common.grpc.rate_per_address = 5;
    common.grpc.rate_per_person = 5;
    let config = Config {
        common,
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    // Anonymous: ten at once is the burst, then refused with a hint.
    let mut refused = None;
    for _ in 0..40 {
        if let Err(e) = client.list_topics(pb::ListTopicsRequest::default()).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("an anonymous flood is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let hint = refused
        .get_details_retry_info()
        .expect("a RetryInfo detail");
    let wait = hint.retry_delay.expect("a delay");
    assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
    // A person signed in has a share of their own, from the same address.
    let alice = token("alice", REGION, &[]);
    client
        .list_topics(with_token(pb::ListTopicsRequest::default(), &alice))
        .await
        .expect("a signed-in caller is not held to the address's share");
    // Health checks are never refused.
    let mut health = tonic_health::pb::health_client::HealthClient::new(svc.channel().await);
    for _ in 0..40 {
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: SERVICE_NAME.into(),
            })
            .await
            .expect("health is not rate limited");
    }
    // After the hinted wait, the anonymous caller is served again.
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
    client
        .list_topics(pb::ListTopicsRequest::default())
        .await
        .expect("served again after the wait");
}

/// An organiser's whole card as an edit of `g` at `version`, with `change` applied.
fn card_edit(
    g: &pb::Group,
    version: i64,
    change: impl FnOnce(&mut pb::UpdateGroupRequest),
) -> pb::UpdateGroupRequest {
    let mut req = pb::UpdateGroupRequest {
        group_id: g.id.clone(),
        expected_version: version,
        name: g.name.clone(),
        summary: g.summary.clone(),
        description: g.description.clone(),
        topics: g.topics.clone(),
        format: g.format,
        join_policy: g.join_policy,
        venues: g.venues.clone(),
        eligibility: g.eligibility.clone(),
        area_served: g.area_served.clone(),
        contact: g.contact.clone(),
        cost: g.cost.clone(),
        languages: g.languages.clone(),
        capacity: g.capacity,
        joining_details: g.joining_details.clone(),
        welcome_with_joining_details: g.welcome_with_joining_details,
    };
    change(&mut req);
    req
}

/// With `edits.significant` = "approval" (the default): an organiser's
/// significant edit of a published group waits, the public sees the listing as
/// it was, other edits apply at once, and an operator's decision either drops
/// the edit with a note or applies what it changed and nothing else.
async fn significant_edits_wait_for_an_operator(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let (alice, bob) = (token("alice", REGION, &[]), token("bob", REGION, &[]));
    let op = token("op", REGION, &["operator"]);
    let g = publish(&mut client, "alice", new_group("Carers' cuppa", "", &[])).await;
    let reader = client.clone();
    let read = |t: Option<&str>| {
        let mut client = reader.clone();
        let req = pb::GetGroupRequest {
            group_id: g.id.clone(),
        };
        let req = match t {
            Some(t) => with_token(req, t),
            None => tonic::Request::new(req),
        };
        async move { client.get_group(req).await.unwrap().into_inner() }
    };
    let review = |decision: pb::ReviewDecision, note: &str| {
        with_token(
            pb::ReviewGroupRequest {
                group_id: g.id.clone(),
                decision: decision.into(),
                note: note.into(),
            },
            &op,
        )
    };

    // Languages are not significant: applied at once.
    let g1 = client
        .update_group(with_token(
            card_edit(&g, g.version, |r| r.languages = vec!["pl".into()]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (g1.version, g1.languages.clone()),
        (g.version + 1, vec!["pl".to_string()]),
        "{backend:?}"
    );

    // A new name and website wait.
    let rename = |r: &mut pb::UpdateGroupRequest| {
        r.name = "Carers' cuppa and chat".into();
        r.contact = Some(pb::Contact {
            website: "https://cuppa.example.org".into(),
            ..Default::default()
        });
    };
    let held = client
        .update_group(with_token(card_edit(&g1, g1.version, rename), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (held.name.as_str(), held.version),
        ("Carers' cuppa", g1.version)
    );
    let fields = |e: &Option<pb::PendingEdit>| -> Vec<String> {
        e.as_ref()
            .map(|e| e.changes.iter().map(|c| c.field.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(fields(&held.pending_edit), vec!["name", "contact"]);
    let public = read(None).await;
    assert_eq!(
        public.name, "Carers' cuppa",
        "the public sees the listing as it was"
    );
    assert!(public.pending_edit.is_none());
    assert!(
        read(Some(&bob)).await.pending_edit.is_none(),
        "only its managers see it"
    );
    assert_eq!(
        fields(&read(Some(&alice)).await.pending_edit),
        vec!["name", "contact"]
    );
    let queue = client
        .list_review_queue(with_token(pb::ListReviewQueueRequest { page: None }, &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.groups.len(), 1);
    assert_eq!(
        fields(&queue.groups[0].pending_edit),
        vec!["name", "contact"]
    );

    // Rejected with a reason: dropped, and the organisers see why.
    let no_note = client
        .review_group(review(pb::ReviewDecision::Reject, ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_note), vec!["note"]);
    let rejected = client
        .review_group(review(
            pb::ReviewDecision::Reject,
            "Please keep the registered name",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rejected.pending_edit.is_none());
    assert_eq!(rejected.review_note, "Please keep the registered name");
    assert_eq!(rejected.status(), pb::GroupStatus::Published);
    assert_eq!(rejected.name, "Carers' cuppa");

    // Asked again, then languages change directly while it waits: approving
    // applies the name and website, and keeps the newer languages.
    let again = client
        .update_group(with_token(
            card_edit(&rejected, rejected.version, rename),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fields(&again.pending_edit), vec!["name", "contact"]);
    let g2 = client
        .update_group(with_token(
            card_edit(&again, again.version, |r| {
                r.languages = vec!["pl".into(), "cy".into()]
            }),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g2.name, "Carers' cuppa", "not the held name");
    let approved = client
        .review_group(review(pb::ReviewDecision::Approve, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.name, "Carers' cuppa and chat");
    assert_eq!(
        approved.contact.as_ref().unwrap().website,
        "https://cuppa.example.org"
    );
    assert_eq!(approved.languages, vec!["pl", "cy"]);
    assert!(approved.pending_edit.is_none());
    assert_eq!(read(None).await.name, "Carers' cuppa and chat");
    let history = client
        .get_group_history(with_token(
            pb::GetGroupHistoryRequest {
                group_id: g.id.clone(),
                page: None,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    // The operator's decision, newest, then the organiser's words it let in.
    assert_eq!(
        (history[0].field.as_str(), history[0].changed_by.as_str()),
        ("held_edit", "op")
    );
    assert_eq!(history[0].new_value, "\"approved\"");
    assert_eq!(
        history
            .iter()
            .skip(1)
            .take(2)
            .map(|c| (c.field.as_str(), c.changed_by.as_str()))
            .collect::<std::collections::BTreeSet<_>>(),
        [("contact", "alice"), ("name", "alice")].into(),
        "the organiser's words, approved"
    );
    // Nothing left to decide: the published group cannot be approved again.
    let twice = client
        .review_group(review(pb::ReviewDecision::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // An operator's own edit applies at once.
    let by_op = client
        .update_group(with_token(
            card_edit(&approved, approved.version, |r| {
                r.name = "Carers' cafe".into()
            }),
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_op.name, "Carers' cafe");

    // Erasing the organiser drops the edit she asked for that still waits.
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let waiting = client
        .update_group(with_token(
            card_edit(&by_op, by_op.version, |r| r.name = "Alice's cafe".into()),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fields(&waiting.pending_edit), vec!["name"]);
    // What listings holds about her, in her download: the group she made,
    // the changes she made, the edit that waits.
    let export = |who: &str| {
        let mut c = client.clone();
        let t = token(who, REGION, &[]);
        async move {
            let json = c
                .export_my_data(with_token(pb::ExportMyDataRequest {}, &t))
                .await
                .unwrap()
                .into_inner()
                .json;
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        }
    };
    let hers = export("alice").await;
    assert_eq!(hers["person_id"], "alice");
    assert_eq!(hers["groups"][0]["group_id"], by_op.id.as_str());
    assert_eq!(hers["groups"][0]["created"], true);
    assert!(
        hers["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "name")
    );
    assert_eq!(hers["edits_waiting"][0]["group_id"], by_op.id.as_str());
    let nobodys = export("nobody-here").await;
    assert!(
        nobodys["groups"].as_array().unwrap().is_empty(),
        "only one's own"
    );
    let unsigned = client
        .clone()
        .export_my_data(pb::ExportMyDataRequest {})
        .await
        .unwrap_err();
    assert_eq!(unsigned.code(), Code::Unauthenticated);
    let request = selfhelp_proto::events::v1::ErasureRequested {
        request_id: "r-1".into(),
        person_id: "alice".into(),
        requested_at: None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    selfhelp_testkit::publish_event(
        &nats.url(),
        selfhelp_proto::streams::PRIVACY,
        REGION,
        "erasure.requested",
        "r-1",
        &request,
        &id,
        &id,
    )
    .await;
    outside
        .expect_matching(
            &format!("selfhelp.{REGION}.privacy.erasure.completed"),
            |m| ce_subject_of(m) == Some("r-1"),
        )
        .await;
    assert!(
        read(Some(&op)).await.pending_edit.is_none(),
        "erased with her"
    );
    let after = export("alice").await;
    for part in ["groups", "changes", "edits_waiting", "roles"] {
        assert!(
            after[part].as_array().unwrap().is_empty(),
            "{part} still names her: {after}"
        );
    }
    svc.stop().await.unwrap();
}

per_backend!(significant_edits_wait_for_an_operator);

/// With `edits.significant` = "review": an organiser's significant edit is
/// applied and the listing leaves the directory until an operator approves it
/// again.
async fn significant_edits_send_a_listing_back_to_review(backend: Backend) {
    use selfhelp_listings::config::{EditsConfig, SignificantEdits};
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        edits: EditsConfig {
            significant: SignificantEdits::Review,
        },
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let (alice, op) = (
        token("alice", REGION, &[]),
        token("op", REGION, &["operator"]),
    );
    let g = publish(&mut client, "alice", new_group("Grief walk", "", &[])).await;
    let public_get = || pb::GetGroupRequest {
        group_id: g.id.clone(),
    };

    let g1 = client
        .update_group(with_token(
            card_edit(&g, g.version, |r| r.languages = vec!["pl".into()]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        g1.status(),
        pb::GroupStatus::Published,
        "{backend:?}: not significant"
    );

    let edited = client
        .update_group(with_token(
            card_edit(&g1, g1.version, |r| {
                r.description = "Walks, and whatever else".into()
            }),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(edited.status(), pb::GroupStatus::PendingReview);
    assert_eq!(edited.description, "Walks, and whatever else");
    assert!(edited.pending_edit.is_none());
    let gone = client.get_group(public_get()).await.unwrap_err();
    assert_eq!(
        gone.code(),
        Code::NotFound,
        "off the directory while in review"
    );
    outside
        .expect_matching(
            &format!("selfhelp.{REGION}.listings.group.submitted"),
            |m| ce_subject_of(m) == Some(&g.id),
        )
        .await;

    let approved = client
        .review_group(with_token(
            pb::ReviewGroupRequest {
                group_id: g.id.clone(),
                decision: pb::ReviewDecision::Approve.into(),
                note: String::new(),
            },
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status(), pb::GroupStatus::Published);
    let back = client.get_group(public_get()).await.unwrap().into_inner();
    assert_eq!(back.description, "Walks, and whatever else");
    svc.stop().await.unwrap();
}

per_backend!(significant_edits_send_a_listing_back_to_review);

/// Freshness at the time it matters, on the service's clock moved forward: a
/// reminder the day a review falls due (day 335 by default) and not a day
/// before, one per confirmation however often the check runs, "not recently
/// checked" after a year, and then only an operator renews the check.
async fn freshness_over_a_year(backend: Backend) {
    use selfhelp_listings::config::FreshnessConfig;
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        freshness: FreshnessConfig {
            check_interval_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (max_age, warn_after) = (
        config.freshness.max_age_days as u32,
        config.freshness.warn_after_days as u32,
    );
    let clock = Clock::system();
    let svc = RunningService::start(SERVICE_NAME, {
        let clock = clock.clone();
        move |l, s| run_with_clock(config, clock, l, s)
    })
    .await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    // Two groups checked a day apart.
    let older = publish(&mut client, "alice", new_group("Overdue circle", "", &[])).await;
    clock.advance(DAY);
    let newer = publish(&mut client, "alice", new_group("Newer circle", "", &[])).await;
    let reader = client.clone();
    let checked = |id: &str| {
        let mut client = reader.clone();
        let id = id.to_string();
        async move {
            client
                .get_group(pb::GetGroupRequest { group_id: id })
                .await
                .unwrap()
                .into_inner()
                .recently_checked
        }
    };
    assert!(checked(&older.id).await);
    let due = format!("selfhelp.{REGION}.listings.group.review_due");
    let reminder_about = |id: String| move |m: &async_nats::Message| ce_subject_of(m) == Some(&id);
    // Rounds run every second of real time whatever the clock says. A round
    // sends the oldest confirmation's reminder first and events leave in the
    // order written, so once a group's reminder arrives, any reminder an
    // earlier or the same round sent for an older confirmation is already here.

    // The older one falls due; the newer one, a day short, waits for its day
    // (every reminder's own dates are checked at the end).
    clock.advance(DAY * (warn_after - 1));
    outside
        .expect_matching(&due, reminder_about(older.id.clone()))
        .await;
    assert!(checked(&older.id).await, "due for review, not yet stale");

    // A day later the newer one's reminder comes; rounds ran meanwhile and the
    // older one was not reminded again.
    clock.advance(DAY);
    outside
        .expect_matching(&due, reminder_about(newer.id.clone()))
        .await;
    assert_eq!(
        outside.seen_about(&due, &older.id),
        1,
        "once per confirmation"
    );

    // A year on, it shows as not recently checked and the organiser may no
    // longer vouch for it alone.
    clock.advance(DAY * (max_age - warn_after));
    assert!(!checked(&older.id).await);
    let confirm = pb::ConfirmGroupDetailsRequest {
        group_id: older.id.clone(),
        ..Default::default()
    };
    let refused = client
        .confirm_group_details(with_token(confirm.clone(), &token("alice", REGION, &[])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let before_renewal = clock.now_ms();
    client
        .confirm_group_details(with_token(confirm, &token("olu", REGION, &["operator"])))
        .await
        .expect("an operator renews an overdue check");
    assert!(checked(&older.id).await, "renewed");

    assert!(checked(&older.id).await, "renewed");

    // The renewal starts a new period: one more reminder when it falls due, and
    // only one. A group checked a day after the renewal marks a later round.
    clock.advance(DAY);
    let marker = publish(&mut client, "alice", new_group("Marker circle", "", &[])).await;
    clock.advance(DAY * (warn_after - 1));
    outside
        .expect_matching(&due, |m| {
            ce_subject_of(m) == Some(&older.id) && review_due_dates(m).1 >= before_renewal
        })
        .await;
    clock.advance(DAY);
    outside
        .expect_matching(&due, reminder_about(marker.id.clone()))
        .await;
    assert_eq!(
        outside.seen_about(&due, &older.id),
        2,
        "one per confirmation"
    );
    assert_eq!(
        outside.seen_about(&due, &newer.id),
        1,
        "never confirmed again"
    );

    // None came early: each was found due at least `warn_after` days after
    // the confirmation it is about.
    for m in outside.seen(&due) {
        let (found_due, confirmed) = review_due_dates(m);
        assert!(
            found_due - confirmed >= i64::from(warn_after) * 86_400_000,
            "{:?} reminded {} ms after its confirmation",
            ce_subject_of(m),
            found_due - confirmed
        );
    }
    svc.stop().await.unwrap();
}

/// A listing unchecked past its year and the grace leaves search at the next
/// full build, its page still there marked "not checked recently"; operators
/// see every lapsed listing, the longest first, with those out of search
/// named; a confirmation brings a listing back to search at once.
async fn stale_listings_leave_search_after_the_grace(backend: Backend) {
    use selfhelp_listings::config::{FreshnessConfig, SearchConfig};
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        freshness: FreshnessConfig {
            grace_days: 30,
            ..Default::default()
        },
        search: SearchConfig {
            rebuild_interval_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let clock = Clock::system();
    let svc = RunningService::start(SERVICE_NAME, {
        let clock = clock.clone();
        move |l, s| run_with_clock(config, clock, l, s)
    })
    .await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    // Checked on day 0, day 20 and day 200; looked at on day 396 (a year is
    // 365 days, and 30 more of grace).
    let lapsed = publish(&mut client, "alice", new_group("Lapsed circle", "", &[])).await;
    clock.advance(DAY * 20);
    let in_grace = publish(&mut client, "alice", new_group("Grace circle", "", &[])).await;
    clock.advance(DAY * 180);
    let fresh = publish(&mut client, "alice", new_group("Fresh circle", "", &[])).await;
    clock.advance(DAY * 196);

    let found = |client: &ListingsServiceClient<Channel>| {
        let mut client = client.clone();
        async move {
            let mut ids: Vec<String> = client
                .search_groups(pb::SearchGroupsRequest {
                    query: "circle".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .groups
                .into_iter()
                .map(|g| g.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut all = vec![lapsed.id.clone(), in_grace.id.clone(), fresh.id.clone()];
    all.sort();
    let mut left = vec![in_grace.id.clone(), fresh.id.clone()];
    left.sort();
    // Builds run every second of real time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = found(&client).await;
        if now == left {
            break;
        }
        assert_eq!(now, all, "only the lapsed listing leaves");
        assert!(
            std::time::Instant::now() < deadline,
            "the lapsed listing never left search"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let page = client
        .get_group(pb::GetGroupRequest {
            group_id: lapsed.id.clone(),
        })
        .await
        .expect("its page stays")
        .into_inner();
    assert!(!page.recently_checked);

    // Operators, and only they, see the lapsed listings.
    let list = pb::ListStaleGroupsRequest { page: None };
    for who in [
        token("alice", REGION, &[]),
        token("olu", "elsewhere", &["operator"]),
    ] {
        let refused = client
            .list_stale_groups(with_token(list.clone(), &who))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let op = token("olu", REGION, &["operator"]);
    let stale = client
        .list_stale_groups(with_token(list.clone(), &op))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = stale.groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        [lapsed.id.as_str(), in_grace.id.as_str()],
        "longest unchecked first"
    );
    assert_eq!(stale.out_of_search_ids, std::slice::from_ref(&lapsed.id));
    assert_eq!(stale.page.unwrap().total_size, 2);

    // The operator confirms it: back in search at once, off the list.
    client
        .confirm_group_details(with_token(
            pb::ConfirmGroupDetailsRequest {
                group_id: lapsed.id.clone(),
                ..Default::default()
            },
            &op,
        ))
        .await
        .unwrap();
    assert_eq!(found(&client).await, all);
    let stale = client
        .list_stale_groups(with_token(list, &op))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = stale.groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, [in_grace.id.as_str()]);
    assert!(stale.out_of_search_ids.is_empty());
    svc.stop().await.unwrap();
}

per_backend!(stale_listings_leave_search_after_the_grace);

/// The public's reports reach the region's staff: only through the web's
/// relay, checked field by field, about a listed group of the region or
/// suggesting one; read and closed by the region's operators only (a closed
/// report keeps no reply address); at most `reports.open_per_region` wait.
async fn reports_reach_staff_and_only_staff(backend: Backend) {
    use selfhelp_listings::config::ReportsConfig;
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        reports: ReportsConfig { open_per_region: 2 },
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let listed = publish(&mut client, "alice", new_group("Listed circle", "", &[])).await;
    let draft = client
        .create_group(with_token(
            new_group("Draft circle", "", &[]),
            &token("alice", REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner();
    let relay = token("web-report-relay", REGION, &["report-relay"]);
    let about = |group_id: &str, message: &str| pb::ReportToStaffRequest {
        group_id: group_id.into(),
        message: message.into(),
        ..Default::default()
    };

    // Only the web's relay of this region sends reports.
    let report = about(&listed.id, "It moved to the library");
    let anonymous = client.report_to_staff(report.clone()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    for t in [
        token("alice", REGION, &[]),
        token("olu", REGION, &["operator"]),
        token("web-report-relay", "elsewhere", &["report-relay"]),
    ] {
        let refused = client
            .report_to_staff(with_token(report.clone(), &t))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }

    // Each bad field is named.
    let bad = [
        (about(&listed.id, "  "), "message"),
        (about(&listed.id, &"x".repeat(2_001)), "message"),
        (about("", "A group in Bulwell"), "suggested_name"),
        (about("not-an-id", "Wrong"), "group_id"),
        (
            pb::ReportToStaffRequest {
                suggested_name: "Both".into(),
                ..about(&listed.id, "Wrong")
            },
            "suggested_name",
        ),
        (
            pb::ReportToStaffRequest {
                reply_to: "not an address".into(),
                ..about(&listed.id, "Wrong")
            },
            "reply_to",
        ),
    ];
    for (request, field) in bad {
        let err = client
            .report_to_staff(with_token(request, &relay))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(violated_fields(&err), vec![field]);
    }
    // Only listed groups of the region can be reported.
    for id in [draft.id.as_str(), "0190a0a0-0000-7000-8000-000000000000"] {
        let err = client
            .report_to_staff(with_token(about(id, "Wrong"), &relay))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }

    // A problem with the listing, with a reply address; a suggestion without.
    let problem = client
        .report_to_staff(with_token(
            pb::ReportToStaffRequest {
                reply_to: "visitor@example.org".into(),
                ..about(&listed.id, "It moved to the library")
            },
            &relay,
        ))
        .await
        .unwrap()
        .into_inner();
    let suggestion = client
        .report_to_staff(with_token(
            pb::ReportToStaffRequest {
                suggested_name: "Bulwell walkers".into(),
                ..about("", "Saturdays at the park gates")
            },
            &relay,
        ))
        .await
        .unwrap()
        .into_inner();
    // The region's cap (2 here) holds the next one back.
    let full = client
        .report_to_staff(with_token(about(&listed.id, "Third"), &relay))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");

    // Only the region's operators read and close them.
    let list = pb::ListStaffReportsRequest { page: None };
    let close = |id: &str, note: &str| pb::CloseStaffReportRequest {
        report_id: id.into(),
        note: note.into(),
    };
    for t in [
        token("alice", REGION, &[]),
        relay.clone(),
        token("olu", "elsewhere", &["operator"]),
    ] {
        let refused = client
            .list_staff_reports(with_token(list.clone(), &t))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        let refused = client
            .close_staff_report(with_token(close(&problem.report_id, "done"), &t))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let op = token("olu", REGION, &["operator"]);
    let waiting = client
        .list_staff_reports(with_token(list.clone(), &op))
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<(&str, &str, bool, &str, &str)> = waiting
        .reports
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.group_name.as_str(),
                r.suggestion,
                r.message.as_str(),
                r.reply_to.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                problem.report_id.as_str(),
                "Listed circle",
                false,
                "It moved to the library",
                "visitor@example.org"
            ),
            (
                suggestion.report_id.as_str(),
                "Bulwell walkers",
                true,
                "Saturdays at the park gates",
                ""
            ),
        ],
        "oldest first"
    );
    assert_eq!(waiting.reports[0].group_id, listed.id);

    let err = client
        .close_staff_report(with_token(close(&problem.report_id, " "), &op))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["note"]);
    let err = client
        .close_staff_report(with_token(
            close("0190a0a0-0000-7000-8000-000000000000", "done"),
            &op,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let closed = client
        .close_staff_report(with_token(
            close(&problem.report_id, "Updated the venue"),
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(closed.closed);
    assert_eq!(closed.closing_note, "Updated the venue");
    assert_eq!(
        closed.reply_to, "",
        "the reply address goes with the closing"
    );
    let again = client
        .close_staff_report(with_token(close(&problem.report_id, "again"), &op))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let waiting = client
        .list_staff_reports(with_token(list, &op))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = waiting.reports.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [suggestion.report_id.as_str()]);
    // Room again under the cap.
    client
        .report_to_staff(with_token(about(&listed.id, "Third"), &relay))
        .await
        .expect("a closed report frees its place");
    // A member's report of a message the organisers sent: the group need
    // not be listed (here a draft), only the region's.
    client
        .close_staff_report(with_token(close(&suggestion.report_id, "Listed it"), &op))
        .await
        .unwrap();
    client
        .report_to_staff(with_token(
            pb::ReportToStaffRequest {
                about_message: true,
                ..about(&draft.id, "A message from the organisers")
            },
            &relay,
        ))
        .await
        .expect("a message's group need not be listed");
    svc.stop().await.unwrap();
}

per_backend!(reports_reach_staff_and_only_staff);

/// The one-click link of a review-due reminder confirms the confirmation it
/// was sent for, once: `checked_at` must be the group's last confirmation.
async fn a_reminder_link_confirms_once(backend: Backend) {
    use selfhelp_listings::config::FreshnessConfig;
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        freshness: FreshnessConfig {
            warn_after_days: 0,
            check_interval_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let g = publish(&mut client, "alice", new_group("Linked circle", "", &[])).await;
    let due = format!("selfhelp.{REGION}.listings.group.review_due");
    let reminder = outside
        .expect_matching(&due, |m| ce_subject_of(m) == Some(&g.id))
        .await;
    let (_, checked) = review_due_dates(&reminder);
    let at = |ms: i64| prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    };
    let confirm = |ms: i64| {
        with_token(
            pb::ConfirmGroupDetailsRequest {
                group_id: g.id.clone(),
                checked_at: Some(at(ms)),
            },
            &token("alice", REGION, &[]),
        )
    };
    let stale = client
        .confirm_group_details(confirm(checked - 1))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    client
        .confirm_group_details(confirm(checked))
        .await
        .expect("the link's confirmation");
    let again = client
        .confirm_group_details(confirm(checked))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "once: {again:?}");
    let other = client
        .confirm_group_details(with_token(
            pb::ConfirmGroupDetailsRequest {
                group_id: g.id.clone(),
                checked_at: Some(at(checked)),
            },
            &token("mallory", REGION, &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        other.code(),
        Code::PermissionDenied,
        "organisers only: {other:?}"
    );
    svc.stop().await.unwrap();
}

per_backend!(a_reminder_link_confirms_once);

/// When a `group.review_due` found the group due, and when its details were
/// last confirmed (ms since the epoch).
fn review_due_dates(m: &async_nats::Message) -> (i64, i64) {
    let e: selfhelp_proto::events::v1::GroupReviewDue =
        prost::Message::decode(m.payload.clone()).unwrap();
    let ms = |t: Option<prost_types::Timestamp>| {
        let t = t.expect("a timestamp");
        t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000
    };
    (ms(e.occurred_at), ms(e.assured_at))
}

per_backend!(freshness_over_a_year);

async fn a_write_while_nats_is_down_succeeds_and_its_event_follows_when_it_returns(
    backend: Backend,
) {
    let mut nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);

    nats.stop();
    let alice = token("alice", REGION, &[]);
    let group = client
        .create_group(with_token(
            new_group("Written during an outage", "", &[]),
            &alice,
        ))
        .await
        .expect("the RPC does not need NATS")
        .into_inner();
    nats.restart();

    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let subject = format!("selfhelp.{REGION}.listings.group.created");
    let message = selfhelp_testkit::eventually(
        "the event in the stream",
        std::time::Duration::from_secs(30),
        || {
            let (js, subject) = (js.clone(), subject.clone());
            async move {
                js.get_stream("LISTINGS")
                    .await
                    .ok()?
                    .get_last_raw_message_by_subject(&subject)
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert_eq!(
        message
            .headers
            .get("ce-subject")
            .map(|v| v.as_str().to_string()),
        Some(group.id),
        "{backend:?}"
    );
    svc.stop().await.unwrap();
}

per_backend!(a_write_while_nats_is_down_succeeds_and_its_event_follows_when_it_returns);

async fn topics_are_seeded_managed_by_operators_and_searched_with_their_children(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let list = |include_retired: bool| pb::ListTopicsRequest { include_retired };

    // Seeded for the region, parents before children, stable UUIDs.
    let seeded = client
        .list_topics(list(false))
        .await
        .unwrap()
        .into_inner()
        .topics;
    let by_code =
        |topics: &[pb::Topic], code: &str| topics.iter().position(|t| t.code == code).unwrap();
    let (ltc, diabetes) = (
        by_code(&seeded, "long-term-conditions"),
        by_code(&seeded, "diabetes"),
    );
    assert!(ltc < diabetes, "{backend:?}: parents first");
    assert_eq!(seeded[diabetes].parent_id, seeded[ltc].id);
    assert_eq!(
        uuid::Uuid::parse_str(&seeded[diabetes].id)
            .unwrap()
            .get_version_num(),
        5
    );
    let diabetes_id = seeded[diabetes].id.clone();

    // Only operators of the region manage topics.
    let create = |code: &str, parent: &str| pb::CreateTopicRequest {
        code: code.into(),
        name: "Type 1 diabetes".into(),
        description: String::new(),
        parent_id: parent.into(),
    };
    let alice = token("alice", REGION, &[]);
    let far_op = token("op", "leeds", &["operator"]);
    let op = token("op", REGION, &["operator"]);
    assert_eq!(
        client
            .create_topic(with_token(create("type-1", &diabetes_id), &alice))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        client
            .create_topic(with_token(create("type-1", &diabetes_id), &far_op))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        client
            .create_topic(create("type-1", &diabetes_id))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let type1 = client
        .create_topic(with_token(create("type-1", &diabetes_id), &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(type1.parent_id, diabetes_id);
    assert_eq!(
        client
            .create_topic(with_token(create("type-1", ""), &op))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    let bad = client
        .create_topic(with_token(create("Type 1!", ""), &op))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), vec!["code"]);
    let orphan = client
        .create_topic(with_token(
            create("orphan", &uuid::Uuid::now_v7().to_string()),
            &op,
        ))
        .await
        .unwrap_err();
    assert_eq!(orphan.code(), Code::NotFound);

    // A group tagged with the child is found from its ancestors, not elsewhere.
    let group = publish(
        &mut client,
        "alice",
        new_group("Type 1 parents' circle", "", &["type-1"]),
    )
    .await;
    let search = |topic: &str| pb::SearchGroupsRequest {
        query: String::new(),
        topic: topic.into(),
        page: None,
        ..Default::default()
    };
    let ids = |r: pb::SearchGroupsResponse| r.groups.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert_eq!(
        ids(client
            .search_groups(search("long-term-conditions"))
            .await
            .unwrap()
            .into_inner()),
        vec![group.id.clone()]
    );
    assert!(
        ids(client
            .search_groups(search("mental-health"))
            .await
            .unwrap()
            .into_inner())
        .is_empty()
    );
    let unknown = client
        .search_groups(search("no-such-topic"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&unknown), vec!["topic"]);

    // Rename and move to the top level; moving a topic below itself is refused.
    let update = |id: &str, name: &str, parent: &str| pb::UpdateTopicRequest {
        topic_id: id.into(),
        name: name.into(),
        description: String::new(),
        parent_id: parent.into(),
    };
    let moved = client
        .update_topic(with_token(update(&type1.id, "Type 1", ""), &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (moved.name.as_str(), moved.parent_id.as_str()),
        ("Type 1", "")
    );
    assert!(
        ids(client
            .search_groups(search("long-term-conditions"))
            .await
            .unwrap()
            .into_inner())
        .is_empty()
    );
    let cycle = client
        .update_topic(with_token(
            update(&seeded[ltc].id, "LTC", &diabetes_id),
            &op,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&cycle), vec!["parent_id"]);

    // Retire in favour of diabetes: it can't be chosen, and diabetes finds its groups.
    let retire = |id: &str, replacement: &str| pb::RetireTopicRequest {
        topic_id: id.into(),
        replacement_id: replacement.into(),
    };
    let busy = client
        .retire_topic(with_token(retire(&seeded[ltc].id, &diabetes_id), &op))
        .await
        .unwrap_err();
    assert_eq!(
        busy.code(),
        Code::FailedPrecondition,
        "a topic with live children stays"
    );
    let retired = client
        .retire_topic(with_token(retire(&type1.id, &diabetes_id), &op))
        .await
        .unwrap()
        .into_inner();
    assert!(retired.retired);
    assert_eq!(
        ids(client
            .search_groups(search("diabetes"))
            .await
            .unwrap()
            .into_inner()),
        vec![group.id.clone()]
    );
    let err = client
        .create_group(with_token(new_group("New", "", &["type-1"]), &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["topics[0]"]);
    assert!(err.message().contains("use diabetes"), "{}", err.message());
    let visible = client
        .list_topics(list(false))
        .await
        .unwrap()
        .into_inner()
        .topics;
    assert!(visible.iter().all(|t| t.code != "type-1"));
    let all = client
        .list_topics(list(true))
        .await
        .unwrap()
        .into_inner()
        .topics;
    assert!(
        all.iter()
            .any(|t| t.code == "type-1" && t.replaced_by_id == diabetes_id)
    );
    for change in ["created", "updated", "retired"] {
        let m = outside
            .expect(&format!("selfhelp.{REGION}.listings.topic.{change}"))
            .await;
        let ce_type = format!("org.selfhelp.listings.topic.{change}.v1");
        assert_cloudevent(
            &m,
            &ce_type,
            &format!("urn:selfhelp:{REGION}:listings"),
            "selfhelp.events.v1.TopicChanged",
        );
    }
    svc.stop().await.unwrap();
}

per_backend!(topics_are_seeded_managed_by_operators_and_searched_with_their_children);

/// The next date on or after `from` that falls on `weekday`.
fn next_weekday(from: chrono::NaiveDate, weekday: chrono::Weekday) -> chrono::NaiveDate {
    use chrono::Datelike;
    let mut d = from;
    while d.weekday() != weekday {
        d = d.succ_opt().unwrap();
    }
    d
}

async fn schedules_exceptions_events_and_calendar_export(backend: Backend) {
    use chrono::{Datelike, Weekday};
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let group = publish(
        &mut client,
        "alice",
        new_group("Wednesday circle", "", &["carers"]),
    )
    .await;
    let alice = token("alice", REGION, &[]);
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive();
    let first = next_weekday(today.succ_opt().unwrap(), Weekday::Wed);

    let weekly = pb::Schedule {
        frequency: pb::Frequency::Weekly.into(),
        weekday: pb::Weekday::Wednesday.into(),
        valid_from: today.to_string(),
        start_time: "19:00".into(),
        end_time: "21:00".into(),
        ..Default::default()
    };
    let set = |schedule: Option<pb::Schedule>| pb::SetScheduleRequest {
        group_id: group.id.clone(),
        schedule,
    };
    // Only organisers (and operators) set schedules; bad schedules name their fields.
    let bob = token("bob", REGION, &[]);
    assert_eq!(
        client
            .set_schedule(with_token(set(Some(weekly.clone())), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        client
            .set_schedule(set(Some(weekly.clone())))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut bad = weekly.clone();
    bad.frequency = 0;
    bad.end_time = "18:00".into();
    let err = client
        .set_schedule(with_token(set(Some(bad)), &alice))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        vec!["schedule.frequency", "schedule.end_time"]
    );
    // Dates far back or far ahead would make every expansion costly: refused.
    for far in ["-9999-01-01", "1000-01-01", "2999-01-01"] {
        let mut bad = weekly.clone();
        bad.valid_from = far.into();
        let err = client
            .set_schedule(with_token(set(Some(bad)), &alice))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{far}");
        assert_eq!(violated_fields(&err), vec!["schedule.valid_from"], "{far}");
    }

    let with_schedule = client
        .set_schedule(with_token(set(Some(weekly)), &alice))
        .await
        .unwrap()
        .into_inner();
    let schedule = with_schedule.schedule.clone().unwrap();
    assert_eq!(
        schedule.description, "Every Wednesday, 7:00pm–9:00pm",
        "{backend:?}"
    );
    assert_eq!(schedule.rrule, "FREQ=WEEKLY;INTERVAL=1;BYDAY=WE");
    assert_eq!(schedule.timezone, "Europe/London");
    assert_eq!(with_schedule.next_occurrences.len(), 5);
    for o in &with_schedule.next_occurrences {
        let date = chrono::NaiveDate::parse_from_str(&o.local_date, "%Y-%m-%d").unwrap();
        assert_eq!(
            (date.weekday(), o.local_start_time.as_str()),
            (Weekday::Wed, "19:00")
        );
    }

    // Cancel one, move the next, add a one-off.
    let (second, third) = (
        first + chrono::Duration::days(7),
        first + chrono::Duration::days(14),
    );
    let cancel = |date: chrono::NaiveDate| pb::CancelOccurrenceRequest {
        group_id: group.id.clone(),
        date: date.to_string(),
        note: "Hall closed".into(),
    };
    client
        .cancel_occurrence(with_token(cancel(first), &alice))
        .await
        .unwrap();
    assert_eq!(
        client
            .cancel_occurrence(with_token(cancel(first), &alice))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let not_a_meeting = client
        .cancel_occurrence(with_token(cancel(first.succ_opt().unwrap()), &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&not_a_meeting), vec!["date"]);
    let moved_to = second.succ_opt().unwrap();
    let mv = pb::MoveOccurrenceRequest {
        group_id: group.id.clone(),
        date: second.to_string(),
        new_date: moved_to.to_string(),
        new_start_time: "18:00".into(),
        new_end_time: "20:00".into(),
        venue_index: Some(0),
        note: "Thursday this week".into(),
    };
    client
        .move_occurrence(with_token(mv.clone(), &alice))
        .await
        .unwrap();
    let mut bad_venue = mv;
    bad_venue.date = third.to_string();
    bad_venue.venue_index = Some(7);
    assert_eq!(
        violated_fields(
            &client
                .move_occurrence(with_token(bad_venue, &alice))
                .await
                .unwrap_err()
        ),
        vec!["venue_index"]
    );
    let one_off_date = third.succ_opt().unwrap().succ_opt().unwrap();
    let one_off = pb::AddOneOffMeetingRequest {
        group_id: group.id.clone(),
        date: one_off_date.to_string(),
        start_time: "11:00".into(),
        end_time: "13:00".into(),
        venue_index: None,
        note: "Picnic in the park".into(),
    };
    // A time the clocks skip (01:30 on the last Sunday of March) does not
    // exist; nor is a date beyond the window accepted.
    let gap_day = (today.year()..)
        .map(|y| {
            let april = chrono::NaiveDate::from_ymd_opt(y, 4, 1).unwrap();
            (1..=7)
                .map(|back| april - chrono::Duration::days(back))
                .find(|d| d.weekday() == Weekday::Sun)
                .unwrap()
        })
        .find(|d| *d > today)
        .unwrap();
    let mut in_the_gap = one_off.clone();
    in_the_gap.date = gap_day.to_string();
    in_the_gap.start_time = "01:30".into();
    in_the_gap.end_time = "03:00".into();
    let err = client
        .add_one_off_meeting(with_token(in_the_gap, &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["start_time"], "{err:?}");
    let mut too_far = one_off.clone();
    too_far.date = (today + chrono::Duration::days(6 * 366)).to_string();
    let err = client
        .add_one_off_meeting(with_token(too_far, &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["date"]);
    let after = client
        .add_one_off_meeting(with_token(one_off.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.exceptions.len(), 3);

    // Anyone sees the next meetings with the changes applied.
    let public = client
        .get_group(pb::GetGroupRequest {
            group_id: group.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<(String, pb::OccurrenceKind)> = public
        .next_occurrences
        .iter()
        .map(|o| (o.local_date.clone(), o.kind()))
        .collect();
    assert_eq!(
        &kinds[..3],
        &[
            (moved_to.to_string(), pb::OccurrenceKind::Moved),
            (third.to_string(), pb::OccurrenceKind::Regular),
            (one_off_date.to_string(), pb::OccurrenceKind::OneOff),
        ]
    );
    assert!(
        public
            .next_occurrences
            .iter()
            .all(|o| o.local_date != first.to_string()),
        "the cancelled meeting is gone"
    );
    assert_eq!(public.next_occurrences[0].original_date, second.to_string());

    // Every change was an event.
    let source = format!("urn:selfhelp:{REGION}:listings");
    for (event, schema) in [
        ("schedule.changed", "ScheduleChanged"),
        ("occurrence.cancelled", "OccurrenceCancelled"),
        ("occurrence.moved", "OccurrenceMoved"),
        ("occurrence.added", "OccurrenceAdded"),
    ] {
        let m = outside
            .expect(&format!("selfhelp.{REGION}.listings.{event}"))
            .await;
        assert_cloudevent(
            &m,
            &format!("org.selfhelp.listings.{event}.v1"),
            &source,
            &format!("selfhelp.events.v1.{schema}"),
        );
    }

    // The calendar file parses as iCalendar: the series with its rule and the
    // cancelled date, the moved meeting as an override, the one-off on its own.
    let export = client
        .export_group_calendar(pb::ExportGroupCalendarRequest {
            group_id: group.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(export.content_type.starts_with("text/calendar"));
    let unfolded = icalendar::parser::unfold(&export.ics);
    let calendar = icalendar::parser::read_calendar(&unfolded).expect("valid iCalendar");
    let events: Vec<_> = calendar
        .components
        .iter()
        .filter(|c| c.name == "VEVENT")
        .collect();
    assert_eq!(events.len(), 3);
    let prop = |c: &icalendar::parser::Component<'_>, name: &str| {
        c.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.val.as_str().to_string())
    };
    let series = events
        .iter()
        .find(|e| prop(e, "RRULE").is_some())
        .expect("the series");
    assert_eq!(
        prop(series, "EXDATE"),
        Some(format!("{}T190000", first.format("%Y%m%d")))
    );
    let moved = events
        .iter()
        .find(|e| prop(e, "RECURRENCE-ID").is_some())
        .expect("the moved meeting");
    assert_eq!(
        prop(moved, "RECURRENCE-ID"),
        Some(format!("{}T190000", second.format("%Y%m%d")))
    );
    assert_eq!(prop(moved, "UID"), prop(series, "UID"));
    assert!(calendar.components.iter().any(|c| c.name == "VTIMEZONE"));

    // A calendar of chosen groups (a person's own): theirs only; ids checked.
    let chosen = |ids: Vec<String>| {
        let mut c = client.clone();
        async move {
            c.export_directory_calendar(pb::ExportDirectoryCalendarRequest {
                topic: String::new(),
                group_ids: ids,
            })
            .await
        }
    };
    let mine = selfhelp_testkit::eventually(
        "the chosen calendar",
        std::time::Duration::from_secs(10),
        || {
            let answer = chosen(vec![group.id.clone()]);
            async move {
                let ics = answer.await.ok()?.into_inner().ics;
                ics.contains("Wednesday circle").then_some(ics)
            }
        },
    )
    .await;
    assert_eq!(mine.matches("BEGIN:VEVENT").count(), 3, "{mine}");
    let none = chosen(vec![uuid::Uuid::now_v7().to_string()])
        .await
        .unwrap()
        .into_inner()
        .ics;
    assert_eq!(
        none.matches("BEGIN:VEVENT").count(),
        0,
        "another group's: nothing"
    );
    let bad = chosen(vec!["not-an-id".into()]).await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["group_ids[0]"]);

    // Clearing the schedule keeps the one-off.
    let cleared = client
        .set_schedule(with_token(set(None), &alice))
        .await
        .unwrap()
        .into_inner();
    assert!(cleared.schedule.is_none());
    assert_eq!(cleared.next_occurrences.len(), 1);
    // Changed meetings to come are capped (each costs work on every read).
    let mut held = cleared.exceptions.len() as i64;
    let refused = loop {
        let mut more = one_off.clone();
        more.date = (today + chrono::Duration::days(40 + held)).to_string();
        match client.add_one_off_meeting(with_token(more, &alice)).await {
            Ok(_) => held += 1,
            Err(e) => break e,
        }
        assert!(held <= 100, "no cap on changed meetings");
    };
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(held, 100);
    svc.stop().await.unwrap();
}

per_backend!(schedules_exceptions_events_and_calendar_export);

/// Reminders and the year's end are `freshness_over_a_year`'s.
async fn editing_moderation_history_and_confirmation(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let (alice, bob) = (token("alice", REGION, &[]), token("bob", REGION, &[]));
    let op = token("op", REGION, &["operator"]);
    let id_req = |id: &str| pb::StartGroupRequest {
        group_id: id.to_string(),
    };

    // A proposal becomes a draft when its organiser starts it.
    let mut proposal = new_group("Men's walking group", "", &["mens-groups"]);
    proposal.proposed = true;
    let g = client
        .create_group(with_token(proposal, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.status(), pb::GroupStatus::Proposed, "{backend:?}");
    let submit = pb::SubmitGroupRequest {
        group_id: g.id.clone(),
    };
    assert_eq!(
        client
            .start_group(with_token(id_req(&g.id), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .start_group(with_token(id_req(&g.id), &alice))
            .await
            .unwrap()
            .into_inner()
            .status(),
        pb::GroupStatus::Draft
    );

    // The review queue is for operators.
    client
        .submit_group(with_token(submit, &alice))
        .await
        .unwrap();
    let queue = |t: &str| with_token(pb::ListReviewQueueRequest { page: None }, t);
    assert_eq!(
        client
            .list_review_queue(queue(&alice))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let waiting = client
        .list_review_queue(queue(&op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        waiting
            .groups
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec![g.id.as_str()]
    );
    let approve = pb::ReviewGroupRequest {
        group_id: g.id.clone(),
        decision: pb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    let published = client
        .review_group(with_token(approve, &op))
        .await
        .unwrap()
        .into_inner();
    assert!(
        client
            .list_review_queue(queue(&op))
            .await
            .unwrap()
            .into_inner()
            .groups
            .is_empty()
    );
    assert!(published.recently_checked);

    // An organiser's own groups, whatever their status; nobody else's, even
    // for an id that would match hers as a text pattern.
    let alices_draft = client
        .create_group(with_token(
            new_group("Alice's second group", "", &["mens-groups"]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let managed = |t: &str| {
        let mut client = client.clone();
        let t = t.to_string();
        async move {
            client
                .list_managed_groups(with_token(pb::ListManagedGroupsRequest { page: None }, &t))
                .await
                .map(|r| {
                    r.into_inner()
                        .groups
                        .into_iter()
                        .map(|g| (g.status(), g.name))
                        .collect::<Vec<_>>()
                })
        }
    };
    assert_eq!(
        managed(&alice).await.unwrap(),
        vec![
            (pb::GroupStatus::Draft, alices_draft.name.clone()),
            (pb::GroupStatus::Published, published.name.clone()),
        ],
        "newest first"
    );
    for someone_else in [&bob, &op, &token("al_ce", REGION, &[])] {
        assert!(managed(someone_else).await.unwrap().is_empty());
    }
    let elsewhere = managed(&token("alice", "elsewhere", &[]))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    let one_page = client
        .list_managed_groups(with_token(
            pb::ListManagedGroupsRequest {
                page: Some(selfhelp_proto::common::v1::PageRequest {
                    page_size: 1,
                    page_token: String::new(),
                }),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_page.groups.len(), 1);
    let page = one_page.page.unwrap();
    assert_eq!(page.total_size, 2);
    assert!(!page.next_page_token.is_empty());
    assert_eq!(
        published.assured_date,
        chrono::Utc::now()
            .with_timezone(&chrono_tz::Europe::London)
            .format("%Y-%m-%d")
            .to_string()
    );

    // Edits need the version read; a stale one is ABORTED; others may not edit.
    let edit = |version: i64, name: &str, summary: &str| {
        let card = new_group(name, "", &["mens-groups"]);
        pb::UpdateGroupRequest {
            group_id: g.id.clone(),
            expected_version: version,
            name: card.name,
            summary: summary.into(),
            description: card.description,
            topics: card.topics,
            format: card.format,
            join_policy: card.join_policy,
            venues: card.venues,
            ..Default::default()
        }
    };
    // An organiser's rename of a listed group waits for an operator (the
    // default `edits.significant`); the public keeps the old name meanwhile.
    let held = client
        .update_group(with_token(
            edit(published.version, "Men's walk and talk", &published.summary),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (held.name.as_str(), held.version),
        (published.name.as_str(), published.version)
    );
    let waiting_edit = held.pending_edit.expect("the edit waits");
    assert_eq!(
        waiting_edit
            .changes
            .iter()
            .map(|c| (c.field.as_str(), c.changed_by.as_str()))
            .collect::<Vec<_>>(),
        vec![("name", "alice")]
    );
    let approve_edit = pb::ReviewGroupRequest {
        group_id: g.id.clone(),
        decision: pb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    let renamed = client
        .review_group(with_token(approve_edit, &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (renamed.name.as_str(), renamed.version),
        ("Men's walk and talk", published.version + 1)
    );
    assert!(renamed.pending_edit.is_none());
    let stale = client
        .update_group(with_token(
            edit(published.version, "Again", &published.summary),
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let by_bob = client
        .update_group(with_token(
            edit(renamed.version, "Bob's", &renamed.summary),
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_bob.code(), Code::PermissionDenied);
    let missing_version = client
        .update_group(with_token(edit(0, "x", ""), &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing_version), vec!["expected_version"]);
    let by_operator = client
        .update_group(with_token(
            edit(
                renamed.version,
                "Men's walk and talk",
                "Every Saturday morning",
            ),
            &op,
        ))
        .await
        .unwrap()
        .into_inner();

    // Field-level history, newest first, for managers only.
    let history = |t: &str| {
        with_token(
            pb::GetGroupHistoryRequest {
                group_id: g.id.clone(),
                page: None,
            },
            t,
        )
    };
    let changes = client
        .get_group_history(history(&alice))
        .await
        .unwrap()
        .into_inner()
        .changes;
    let summary: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.field.as_str(), c.changed_by.as_str()))
        .collect();
    // Field edits and decisions alike, newest first, each with who made it.
    assert_eq!(
        summary,
        vec![
            ("summary", "op"),
            ("held_edit", "op"),
            ("name", "alice"),
            ("status", "op"),
            ("status", "alice"),
            ("status", "alice"),
        ]
    );
    assert_eq!(changes[2].new_value, "\"Men's walk and talk\"");
    let statuses: Vec<(&str, &str)> = changes[3..]
        .iter()
        .map(|c| (c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("\"PENDING_REVIEW\"", "\"PUBLISHED\""),
            ("\"DRAFT\"", "\"PENDING_REVIEW\""),
            ("\"PROPOSED\"", "\"DRAFT\""),
        ]
    );
    assert_eq!(
        client
            .get_group_history(history(&bob))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let updated = outside
        .expect(&format!("selfhelp.{REGION}.listings.group.updated"))
        .await;
    let payload: selfhelp_proto::events::v1::GroupUpdated =
        prost::Message::decode(updated.payload.clone()).unwrap();
    assert_eq!(payload.changed_fields, vec!["name"]);

    // Suspension by an operator, with a reason; the public no longer sees it.
    let suspend = |reason: &str| pb::SuspendGroupRequest {
        group_id: g.id.clone(),
        reason: reason.into(),
    };
    assert_eq!(
        client
            .suspend_group(with_token(suspend("spam"), &alice))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        violated_fields(
            &client
                .suspend_group(with_token(suspend(" "), &op))
                .await
                .unwrap_err()
        ),
        vec!["reason"]
    );
    let suspended = client
        .suspend_group(with_token(suspend("Contact details bounce"), &op))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (suspended.status(), suspended.review_note.as_str()),
        (pb::GroupStatus::Suspended, "Contact details bounce")
    );
    let public_get = pb::GetGroupRequest {
        group_id: g.id.clone(),
    };
    assert_eq!(
        client
            .get_group(public_get.clone())
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let reinstate = pb::ReinstateGroupRequest {
        group_id: g.id.clone(),
    };
    client
        .reinstate_group(with_token(reinstate, &op))
        .await
        .unwrap();
    assert_eq!(
        client
            .get_group(public_get)
            .await
            .unwrap()
            .into_inner()
            .status(),
        pb::GroupStatus::Published
    );

    let confirm = pb::ConfirmGroupDetailsRequest {
        group_id: g.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        client
            .confirm_group_details(with_token(confirm.clone(), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    client
        .confirm_group_details(with_token(confirm, &alice))
        .await
        .unwrap();
    let confirmed = outside
        .expect(&format!("selfhelp.{REGION}.listings.group.confirmed"))
        .await;
    assert_cloudevent(
        &confirmed,
        "org.selfhelp.listings.group.confirmed.v1",
        &format!("urn:selfhelp:{REGION}:listings"),
        "selfhelp.events.v1.GroupConfirmed",
    );
    // The history keeps the suspension (with its reason), the reinstatement
    // and the confirmation, each with who and when.
    let recent: Vec<(String, String, String)> = client
        .get_group_history(history(&alice))
        .await
        .unwrap()
        .into_inner()
        .changes
        .into_iter()
        .take_while(|c| c.field != "summary")
        .map(|c| (c.field, c.changed_by, c.new_value))
        .collect();
    let fields: Vec<(&str, &str)> = recent
        .iter()
        .map(|(f, by, _)| (f.as_str(), by.as_str()))
        .collect();
    assert!(fields.first() == Some(&("checked", "alice")), "{recent:?}");
    assert!(fields.contains(&("review_note", "op")), "{recent:?}");
    assert!(
        recent
            .iter()
            .any(|(f, by, new)| f == "status" && by == "op" && new == "\"SUSPENDED\""),
        "{recent:?}"
    );

    // Archiving is final.
    let archive = pb::ArchiveGroupRequest {
        group_id: g.id.clone(),
        reason: "The group has closed".into(),
    };
    let archived = client
        .archive_group(with_token(archive.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.status(), pb::GroupStatus::Archived);
    assert_eq!(
        client
            .archive_group(with_token(archive, &alice))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let late_edit = client
        .update_group(with_token(edit(archived.version, "x", ""), &alice))
        .await
        .unwrap_err();
    assert_eq!(late_edit.code(), Code::FailedPrecondition);
    let _ = by_operator;
    svc.stop().await.unwrap();
}

per_backend!(editing_moderation_history_and_confirmation);

use selfhelp_testkit::oruk::{assert_valid, validator as oruk_validator};

async fn open_referral_export_validates_against_the_official_schemas(backend: Backend) {
    let service_schema = oruk_validator("schema/compiled/service.json");
    let term_schema = oruk_validator("schema/taxonomy_term.json");
    let taxonomy_schema = oruk_validator("schema/taxonomy.json");
    // The validator itself: the official example passes, a broken copy does not.
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            selfhelp_testkit::oruk::standards_dir().join("examples/service_full.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_valid(&service_schema, &example, "the official example");
    let mut broken = example.clone();
    broken.as_object_mut().unwrap().remove("name");
    assert!(!service_schema.is_valid(&broken));

    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let alice = token("alice", REGION, &[]);
    let mut with_venues = new_group(
        "Parkinson's café",
        "Tea and talk",
        &["long-term-conditions", "carers"],
    );
    with_venues.venues.push(pb::Venue {
        name: String::new(),
        address: "2 Castle Road".into(),
        town: "Nottingham".into(),
        postcode: "NG1 6AA".into(),
        latitude: Some(52.9503),
        longitude: Some(-1.1540),
        accessibility: "Step-free access, hearing loop".into(),
        travel_notes: "Trams stop outside".into(),
    });
    with_venues.eligibility = Some(pb::Eligibility {
        description: "People with Parkinson's and those who care for them".into(),
        minimum_age: 18,
        carers_welcome: true,
        ..Default::default()
    });
    with_venues.contact = Some(pb::Contact {
        name: "Group coordinator".into(),
        email: "cafe@example.org".into(),
        phone: "0115 496 0000".into(),
        website: "https://example.org/cafe".into(),
    });
    with_venues.cost = Some(pb::Cost {
        kind: pb::CostKind::Donation.into(),
        description: "£2 for tea".into(),
    });
    with_venues.languages = vec!["en".into(), "pl".into()];
    with_venues.area_served = "Nottingham".into();
    with_venues.joining_details = "SECRET-VIDEO-LINK".into();
    with_venues.welcome_with_joining_details = true;
    let first = publish(&mut client, "alice", with_venues).await;
    // Joining details are for the group's managers, never public; so is
    // their choice to give them in the welcome.
    assert_eq!(first.joining_details, "SECRET-VIDEO-LINK");
    assert!(first.welcome_with_joining_details);
    let public = client
        .get_group(pb::GetGroupRequest {
            group_id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(public.joining_details, "");
    assert!(!public.welcome_with_joining_details);
    assert_eq!(public.contact.as_ref().unwrap().email, "cafe@example.org");
    assert_eq!(public.eligibility.as_ref().unwrap().minimum_age, 18);
    let searched = client
        .search_groups(pb::SearchGroupsRequest {
            query: "parkinson".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(searched.groups.len(), 1);
    assert!(searched.groups.iter().all(|g| g.joining_details.is_empty()));
    let schedule = pb::Schedule {
        frequency: pb::Frequency::Monthly.into(),
        weekday: pb::Weekday::Friday.into(),
        week_of_month: -1,
        valid_from: chrono::Utc::now().date_naive().to_string(),
        start_time: "14:00".into(),
        end_time: "16:00".into(),
        ..Default::default()
    };
    client
        .set_schedule(with_token(
            pb::SetScheduleRequest {
                group_id: first.id.clone(),
                schedule: Some(schedule),
            },
            &alice,
        ))
        .await
        .unwrap();
    let mut online = new_group("Online anxiety circle", "", &["anxiety"]);
    online.format = pb::MeetingFormat::Online.into();
    online.venues.clear();
    let second = publish(&mut client, "alice", online).await;
    client
        .create_group(with_token(new_group("Still a draft", "", &[]), &alice))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for page in 1..=2 {
        let resp = client
            .export_open_referral(pb::ExportOpenReferralRequest { page, per_page: 1 })
            .await
            .unwrap()
            .into_inner();
        let envelope: serde_json::Value = serde_json::from_str(&resp.page_json).unwrap();
        assert_eq!(
            envelope["total_items"], 2,
            "{backend:?}: drafts are not exported"
        );
        assert_eq!(envelope["total_pages"], 2);
        assert_eq!(envelope["page_number"], page);
        assert_eq!(envelope["first_page"], page == 1);
        assert_eq!(envelope["last_page"], page == 2);
        for service in envelope["contents"].as_array().unwrap() {
            assert_valid(&service_schema, service, "an exported service");
            assert!(
                !service.to_string().contains("alice") && !service.to_string().contains("SECRET"),
                "organiser ids never leave the service"
            );
            seen.push(service.clone());
        }
    }
    let by_id = |id: &str| seen.iter().find(|s| s["id"] == id).unwrap().clone();
    let cafe = by_id(&first.id);
    assert_eq!(cafe["schedules"][0]["freq"], "MONTHLY");
    assert_eq!(cafe["schedules"][0]["byday"], "-1FR");
    // The first meeting on or after the schedule's start (today): the last
    // Friday of this month, or of the next.
    let first_meeting = (0..)
        .map(|d| chrono::Utc::now().date_naive() + chrono::Duration::days(d))
        .find(|d| {
            use chrono::Datelike;
            d.weekday() == chrono::Weekday::Fri
                && (*d + chrono::Duration::days(7)).month() != d.month()
        })
        .unwrap();
    assert_eq!(cafe["schedules"][0]["dtstart"], first_meeting.to_string());
    assert_eq!(cafe["service_at_locations"].as_array().unwrap().len(), 2);
    assert_eq!(
        cafe["service_at_locations"][0]["location"]["addresses"][0]["postal_code"],
        "NG1 5FS"
    );
    let terms: Vec<&str> = cafe["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["taxonomy_term"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(terms, vec!["long-term-conditions", "carers"]);
    assert_eq!(cafe["minimum_age"], 18);
    assert_eq!(cafe["email"], "cafe@example.org");
    assert_eq!(cafe["contacts"][0]["name"], "Group coordinator");
    assert_eq!(cafe["cost_options"][0]["option"], "Donation");
    assert_eq!(cafe["languages"].as_array().unwrap().len(), 2);
    assert_eq!(
        cafe["service_at_locations"][1]["location"]["latitude"],
        52.9503
    );
    assert_eq!(
        cafe["service_at_locations"][1]["location"]["accessibility"][0]["description"],
        "Step-free access, hearing loop"
    );
    assert!(
        by_id(&second.id)["service_at_locations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The same documents every time (stable derived ids).
    let again = client
        .export_open_referral(pb::ExportOpenReferralRequest {
            page: 1,
            per_page: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let again: serde_json::Value = serde_json::from_str(&again.page_json).unwrap();
    assert_eq!(
        again["contents"][0]["organization"]["id"],
        seen[0]["organization"]["id"]
    );
    let bad = client
        .export_open_referral(pb::ExportOpenReferralRequest {
            page: -1,
            per_page: 500,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), vec!["page", "per_page"]);

    let taxonomy = client
        .export_open_referral_taxonomy(pb::ExportOpenReferralTaxonomyRequest {})
        .await
        .unwrap()
        .into_inner();
    let taxonomy_doc: serde_json::Value = serde_json::from_str(&taxonomy.taxonomy_json).unwrap();
    assert_valid(&taxonomy_schema, &taxonomy_doc, "the taxonomy");
    let term_docs: Vec<serde_json::Value> =
        serde_json::from_str(&taxonomy.taxonomy_terms_json).unwrap();
    assert!(term_docs.len() > 20);
    for term in &term_docs {
        assert_valid(&term_schema, term, "a taxonomy term");
        assert_eq!(term["taxonomy_id"], taxonomy_doc["id"]);
    }
    svc.stop().await.unwrap();
}

per_backend!(open_referral_export_validates_against_the_official_schemas);

async fn search_stems_filters_by_place_and_time_and_stays_current_on_every_replica(
    backend: Backend,
) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    // Two replicas of listings on one database and one NATS.
    let (a, b, mut client_a, mut client_b) = two_replicas(&db, &nats).await;
    let alice = token("alice", REGION, &[]);

    let mut city = new_group("Bereavement support in the city", "", &["bereavement"]);
    city.venues[0].latitude = Some(52.9536);
    city.venues[0].longitude = Some(-1.1505);
    let city = publish(&mut client_a, "alice", city).await;
    let weekly = |day: pb::Weekday| pb::Schedule {
        frequency: pb::Frequency::Weekly.into(),
        weekday: day.into(),
        valid_from: chrono::Utc::now().date_naive().to_string(),
        start_time: "19:00".into(),
        end_time: "21:00".into(),
        ..Default::default()
    };
    let set = |id: &str, s: pb::Schedule| pb::SetScheduleRequest {
        group_id: id.into(),
        schedule: Some(s),
    };
    client_a
        .set_schedule(with_token(
            set(&city.id, weekly(pb::Weekday::Wednesday)),
            &alice,
        ))
        .await
        .unwrap();
    let mut derby = new_group("Derby bereavement café", "", &["bereavement"]);
    derby.venues[0].postcode = "DE1 1AA".into();
    derby.venues[0].latitude = Some(52.9225);
    derby.venues[0].longitude = Some(-1.4746);
    let derby = publish(&mut client_a, "alice", derby).await;
    client_a
        .set_schedule(with_token(
            set(&derby.id, weekly(pb::Weekday::Friday)),
            &alice,
        ))
        .await
        .unwrap();
    let mut online = new_group("Carers online", "", &["carers"]);
    online.format = pb::MeetingFormat::Online.into();
    online.venues.clear();
    publish(&mut client_a, "alice", online).await;

    // Replica B learns of A's writes through the LISTINGS events.
    let search = |query: &str| pb::SearchGroupsRequest {
        query: query.into(),
        ..Default::default()
    };
    selfhelp_testkit::eventually(
        "replica B to index A's groups",
        std::time::Duration::from_secs(20),
        || {
            let mut c = client_b.clone();
            async move {
                let r = c.search_groups(search("")).await.ok()?.into_inner();
                (r.page?.total_size == 3).then_some(())
            }
        },
    )
    .await;

    // English stemming: "bereaved" finds "Bereavement".
    let found = client_b
        .search_groups(search("bereaved"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.page.as_ref().unwrap().total_size, 2, "{backend:?}");
    let facets: Vec<(String, i64)> = found
        .topic_facets
        .iter()
        .map(|f| (f.value.clone(), f.count))
        .collect();
    assert_eq!(facets, vec![("bereavement".to_string(), 2)]);

    // 10 km around a Nottingham postcode: the city group only, with its distance.
    let near = pb::SearchGroupsRequest {
        query: "bereavement".into(),
        topic: "bereavement".into(),
        postcode: "NG1 5FS".into(),
        radius_km: 10.0,
        sort: pb::SearchSort::Distance.into(),
        ..Default::default()
    };
    let r = client_b
        .search_groups(near.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.groups.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec![city.id.as_str()]
    );
    assert!(r.distance_km[0] < 2.0, "{:?}", r.distance_km);
    let mut wider = near.clone();
    wider.radius_km = 50.0;
    let r = client_b.search_groups(wider).await.unwrap().into_inner();
    assert_eq!(r.groups.len(), 2);
    assert!(r.distance_km[0] < r.distance_km[1], "nearest first");
    let mut unknown = near.clone();
    unknown.postcode = "ZZ9 9ZZ".into();
    assert_eq!(
        violated_fields(&client_b.search_groups(unknown).await.unwrap_err()),
        vec!["postcode"]
    );

    // Day, time and format.
    let friday = pb::SearchGroupsRequest {
        day: pb::Weekday::Friday.into(),
        ..Default::default()
    };
    let r = client_b.search_groups(friday).await.unwrap().into_inner();
    assert_eq!(
        r.groups.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        vec![derby.id.as_str()]
    );
    let morning = pb::SearchGroupsRequest {
        starts_after: "09:00".into(),
        starts_before: "12:00".into(),
        ..Default::default()
    };
    assert_eq!(
        client_b
            .search_groups(morning)
            .await
            .unwrap()
            .into_inner()
            .page
            .unwrap()
            .total_size,
        0
    );
    let online_only = pb::SearchGroupsRequest {
        format: pb::MeetingFormat::Online.into(),
        ..Default::default()
    };
    assert_eq!(
        client_b
            .search_groups(online_only)
            .await
            .unwrap()
            .into_inner()
            .groups[0]
            .name,
        "Carers online"
    );

    // Suspension on A removes the group from B's results.
    let suspend = pb::SuspendGroupRequest {
        group_id: city.id.clone(),
        reason: "Checking details".into(),
    };
    client_a
        .suspend_group(with_token(suspend, &token("op", REGION, &["operator"])))
        .await
        .unwrap();
    selfhelp_testkit::eventually(
        "replica B to drop the suspended group",
        std::time::Duration::from_secs(20),
        || {
            let mut c = client_b.clone();
            async move {
                (c.search_groups(search("bereaved"))
                    .await
                    .ok()?
                    .into_inner()
                    .page?
                    .total_size
                    == 1)
                    .then_some(())
            }
        },
    )
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

per_backend!(search_stems_filters_by_place_and_time_and_stays_current_on_every_replica);

async fn co_organisers_learned_from_membership_may_manage_the_listing(backend: Backend) {
    use selfhelp_proto::events::v1::MemberRoleChanged;
    use selfhelp_proto::streams::MEMBERSHIP;
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let group = publish(
        &mut client,
        "alice",
        new_group("Stroke survivors", "", &["stroke"]),
    )
    .await;
    let role = |person: &str, role: &str, version: i64| MemberRoleChanged {
        membership_id: format!("m-{person}"),
        group_id: group.id.clone(),
        person_id: person.into(),
        role: role.into(),
        version,
        occurred_at: None,
    };
    let send = |msg: MemberRoleChanged| {
        let url = nats.url();
        async move {
            let id = uuid::Uuid::now_v7().to_string();
            selfhelp_testkit::publish_event(
                &url,
                MEMBERSHIP,
                REGION,
                "member.role_changed",
                &msg.membership_id.clone(),
                &msg,
                &id,
                &id,
            )
            .await;
        }
    };
    let organisers = |client: &ListingsServiceClient<Channel>| {
        let mut c = client.clone();
        let id = group.id.clone();
        async move {
            let req = with_token(
                pb::GetGroupRequest { group_id: id },
                &token("alice", REGION, &[]),
            );
            c.get_group(req).await.unwrap().into_inner().organiser_ids
        }
    };
    let bob = token("bob", REGION, &[]);
    let history = pb::GetGroupHistoryRequest {
        group_id: group.id.clone(),
        page: None,
    };
    assert_eq!(
        client
            .get_group_history(with_token(history.clone(), &bob))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    send(role("bob", "CO_ORGANISER", 2)).await;
    selfhelp_testkit::eventually(
        "bob to become a co-organiser",
        std::time::Duration::from_secs(20),
        || {
            let f = organisers(&client);
            async move { (f.await == vec!["alice".to_string(), "bob".to_string()]).then_some(()) }
        },
    )
    .await;
    client
        .get_group_history(with_token(history.clone(), &bob))
        .await
        .expect("a co-organiser may manage the listing");

    // An older change arriving late is ignored; a newer one takes the role away.
    send(role("bob", "MEMBER", 1)).await;
    send(role("bob", "NONE", 3)).await;
    selfhelp_testkit::eventually(
        "bob to stop being a co-organiser",
        std::time::Duration::from_secs(20),
        || {
            let f = organisers(&client);
            async move { (f.await == vec!["alice".to_string()]).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        client
            .get_group_history(with_token(history, &bob))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied,
        "{backend:?}"
    );
    svc.stop().await.unwrap();
}

per_backend!(co_organisers_learned_from_membership_may_manage_the_listing);

/// The public reads a published group's card from memory: it must follow every
/// change at once on the replica that made it and soon on the others, show the
/// meetings as they now stand, vanish when the group is suspended, and never
/// hide from the group's managers what only they may see.
async fn the_public_card_follows_every_change_on_every_replica(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let (a, b, mut client_a, mut client_b) = two_replicas(&db, &nats).await;
    let alice = token("alice", REGION, &[]);
    let op = token("operator-1", REGION, &["operator"]);
    let g = publish(
        &mut client_a,
        "alice",
        new_group("Carers' café", "", &["carers"]),
    )
    .await;
    let get = || pb::GetGroupRequest {
        group_id: g.id.clone(),
    };
    let weekly = pb::SetScheduleRequest {
        group_id: g.id.clone(),
        schedule: Some(pb::Schedule {
            frequency: pb::Frequency::Weekly.into(),
            weekday: pb::Weekday::Tuesday.into(),
            valid_from: chrono::Utc::now().date_naive().to_string(),
            start_time: "10:00".into(),
            end_time: "11:30".into(),
            ..Default::default()
        }),
    };
    let scheduled = client_a
        .set_schedule(with_token(weekly, &alice))
        .await
        .unwrap()
        .into_inner();
    // At once on A, the replica that made the change.
    let public = client_a.get_group(get()).await.unwrap().into_inner();
    assert_eq!(public.next_occurrences.len(), 5, "{backend:?}");
    assert!(
        public.organiser_ids.is_empty(),
        "strangers never see organisers"
    );
    let first = public.next_occurrences[0].local_date.clone();

    // Renamed (by an operator: an organiser's rename waits for one) and the
    // next meeting cancelled on A.
    let operator = token("olu", REGION, &["operator"]);
    let card = new_group("Carers' coffee morning", "", &["carers"]);
    client_a
        .update_group(with_token(
            pb::UpdateGroupRequest {
                group_id: g.id.clone(),
                expected_version: scheduled.version,
                name: card.name,
                summary: card.summary,
                description: card.description,
                topics: card.topics,
                format: card.format,
                join_policy: card.join_policy,
                venues: card.venues,
                ..Default::default()
            },
            &operator,
        ))
        .await
        .unwrap();
    client_a
        .cancel_occurrence(with_token(
            pb::CancelOccurrenceRequest {
                group_id: g.id.clone(),
                date: first.clone(),
                note: "Hall closed".into(),
            },
            &alice,
        ))
        .await
        .unwrap();
    let shows_change = |g: &pb::Group| {
        g.name == "Carers' coffee morning"
            && g.exceptions.len() == 1
            && g.next_occurrences.iter().all(|o| o.local_date != first)
    };
    let now_a = client_a.get_group(get()).await.unwrap().into_inner();
    assert!(
        shows_change(&now_a),
        "{backend:?}: A shows its own change at once"
    );
    // The card is sent as bytes kept encoded with the meetings appended (ADR
    // 25): read with the published type it is what the database path gives an
    // organiser, less what only managers see.
    let mut typed = client_a
        .get_group(with_token(get(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(typed.organiser_ids, ["alice"]);
    typed.organiser_ids.clear();
    typed.joining_details.clear();
    typed.pending_edit = None;
    assert_eq!(now_a, typed, "{backend:?}");
    // B follows through the LISTINGS events: its search results show the new
    // card (its GetGroup would answer from the database until B has a card).
    selfhelp_testkit::eventually(
        "B's search to show the new card",
        std::time::Duration::from_secs(10),
        || {
            let mut c = client_b.clone();
            async move {
                let found = c
                    .search_groups(pb::SearchGroupsRequest {
                        query: "coffee".into(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                (found.groups.len() == 1 && found.groups[0].name == "Carers' coffee morning")
                    .then_some(found)
            }
        },
    )
    .await;
    // B now has the card; the cancellation follows with its own event.
    let now_b = selfhelp_testkit::eventually(
        "B's card to show the cancellation too",
        std::time::Duration::from_secs(10),
        || {
            let mut c = client_b.clone();
            let req = get();
            async move {
                let g = c.get_group(req).await.ok()?.into_inner();
                shows_change(&g).then_some(g)
            }
        },
    )
    .await;
    assert!(now_b.organiser_ids.is_empty());

    // Managers still see what only they may see.
    let as_alice = client_b
        .get_group(with_token(get(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(as_alice.organiser_ids, vec!["alice".to_string()]);

    // Suspended: gone from the public at once on A, soon on B.
    client_a
        .suspend_group(with_token(
            pb::SuspendGroupRequest {
                group_id: g.id.clone(),
                reason: "Checking the contact".into(),
            },
            &op,
        ))
        .await
        .unwrap();
    assert_eq!(
        client_a.get_group(get()).await.unwrap_err().code(),
        Code::NotFound,
        "{backend:?}"
    );
    selfhelp_testkit::eventually("B to hide it", std::time::Duration::from_secs(10), || {
        let mut c = client_b.clone();
        let req = get();
        async move { (c.get_group(req).await.err()?.code() == Code::NotFound).then_some(()) }
    })
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

per_backend!(the_public_card_follows_every_change_on_every_replica);

/// Partners' view (the PUBLIC stream): a group appears when it is listed, as
/// a stranger sees it, and is withdrawn when it is not any more; drafts,
/// rejections, organisers and notes never appear. Their consumer is made for
/// them, since they may not make one.
#[tokio::test]
async fn partners_see_listed_groups_only_on_the_public_stream() {
    let nats = Nats::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let svc = start(&db, &nats).await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    let (alice, op) = (
        token("alice", REGION, &[]),
        token("op", REGION, &["operator"]),
    );
    let changed = format!("selfhelp.{REGION}.public.group.changed");
    let withdrawn = format!("selfhelp.{REGION}.public.group.withdrawn");

    // A draft submitted and rejected with a note: nothing for partners.
    let rejected = client
        .create_group(with_token(
            new_group("Never listed", "A draft", &["bereavement"]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let submit = pb::SubmitGroupRequest {
        group_id: rejected.id.clone(),
    };
    client
        .submit_group(with_token(submit, &alice))
        .await
        .unwrap();
    let reject = pb::ReviewGroupRequest {
        group_id: rejected.id.clone(),
        decision: pb::ReviewDecision::Reject.into(),
        note: "private-rejection-note".into(),
    };
    client.review_group(with_token(reject, &op)).await.unwrap();

    // Listed: the public card, without organisers or notes.
    let g = publish(
        &mut client,
        "alice",
        new_group("Walk and talk", "We walk", &["bereavement"]),
    )
    .await;
    let listed = outside
        .expect_matching(&changed, |m| ce_subject_of(m) == Some(g.id.as_str()))
        .await;
    assert_cloudevent(
        &listed,
        "org.selfhelp.public.group.changed.v1",
        &format!("urn:selfhelp:{REGION}:listings"),
        "selfhelp.events.v1.PublicGroupChanged",
    );
    let card: selfhelp_proto::events::v1::PublicGroupChanged =
        prost::Message::decode(listed.payload.clone()).unwrap();
    let card = card.group.expect("the card");
    assert_eq!(
        (card.id.as_str(), card.name.as_str()),
        (g.id.as_str(), "Walk and talk")
    );
    assert_eq!(card.status(), pb::GroupStatus::Published);
    assert!(card.organiser_ids.is_empty(), "{card:?}");
    let bytes = String::from_utf8_lossy(&listed.payload).to_string();
    assert!(!bytes.contains("alice"), "no person id: {bytes}");

    // Suspended with a reason: withdrawn, and the reason not said.
    let suspend = pb::SuspendGroupRequest {
        group_id: g.id.clone(),
        reason: "private-suspension-reason".into(),
    };
    client
        .suspend_group(with_token(suspend, &op))
        .await
        .unwrap();
    let gone = outside
        .expect_matching(&withdrawn, |m| ce_subject_of(m) == Some(g.id.as_str()))
        .await;
    let gone: selfhelp_proto::events::v1::PublicGroupWithdrawn =
        prost::Message::decode(gone.payload.clone()).unwrap();
    assert_eq!(gone.group_id, g.id);

    // Everything on PUBLIC so far (the relay keeps the outbox's order, so the
    // rejected draft's events would have come before these).
    let public: Vec<&async_nats::Message> = outside
        .seen(&changed)
        .chain(outside.seen(&withdrawn))
        .collect();
    assert_eq!(public.len(), 2, "{:?}", outside.subjects());
    for m in public {
        assert_eq!(ce_subject_of(m), Some(g.id.as_str()));
        let text = String::from_utf8_lossy(&m.payload);
        assert!(
            !text.contains("private-"),
            "a note reached partners: {text}"
        );
    }

    // The partner's pull consumer, made by listings, reads this region.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("PUBLIC").await.unwrap();
    let info = stream.consumer_info("outside-subscriber").await.unwrap();
    assert_eq!(
        info.config.filter_subject,
        format!("selfhelp.{REGION}.public.>")
    );
    assert!(info.config.deliver_subject.is_none(), "a pull consumer");
    svc.stop().await.unwrap();
}

/// Prometheus metrics over TCP: calls by method and code move with real calls;
/// the outbox, NATS, the database pools, the search index and the groups by
/// status are measured. The registry is the process's: this test runs alone in
/// a process of its own, so the counts it compares are its own.
#[tokio::test]
async fn metrics_count_calls_by_method_and_code_and_show_the_outbox() {
    // Alone in its process, so the counts are this test's only.
    if !selfhelp_testkit::alone_in_process(
        "metrics_count_calls_by_method_and_code_and_show_the_outbox",
    ) {
        return;
    }
    const HERE: &str = "metrics-region";
    let nats = Nats::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), HERE),
        ..Default::default()
    };
    let scrape = selfhelp_testkit::metrics::Scrape::configure(&mut config.common.metrics);
    let svc = RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await;
    let count = |text: &str, method: &str, code: &str| {
        selfhelp_platform::metrics::value_of(
            text,
            &format!(
                r#"grpc_server_handled_total{{grpc_service="selfhelp.listings.v1.ListingsService",grpc_method="{method}",grpc_code="{code}"}}"#
            ),
        )
        .unwrap_or(0.0)
    };
    let before = scrape.text().await;
    let mut client = ListingsServiceClient::new(svc.channel().await);
    for _ in 0..3 {
        let missing = pb::GetGroupRequest {
            group_id: uuid::Uuid::now_v7().to_string(),
        };
        assert_eq!(
            client.get_group(missing).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    let alice = token("alice", HERE, &[]);
    client
        .create_group(with_token(
            new_group("Counted", "A group to count", &["bereavement"]),
            &alice,
        ))
        .await
        .unwrap();
    publish_in(
        &mut client,
        HERE,
        "bob",
        new_group("Listed", "A listed group to count", &["bereavement"]),
    )
    .await;
    let after = scrape.text().await;
    assert_eq!(
        count(&after, "GetGroup", "NotFound") - count(&before, "GetGroup", "NotFound"),
        3.0,
        "{after}"
    );
    assert_eq!(
        count(&after, "CreateGroup", "OK") - count(&before, "CreateGroup", "OK"),
        2.0,
        "{after}"
    );
    assert!(after.contains(
        r#"grpc_server_handling_seconds_count{grpc_service="selfhelp.listings.v1.ListingsService",grpc_method="GetGroup"}"#
    ));
    // The relay measures the outbox every few seconds; NATS is connected.
    scrape
        .until(r#"selfhelp_outbox_waiting{service="listings"}"#, |v| {
            v == 0.0
        })
        .await;
    scrape
        .until(r#"selfhelp_nats_connected{service="listings"}"#, |v| {
            v == 1.0
        })
        .await;
    // Sampled from the database: one draft, one published, in the index.
    for status in ["draft", "published"] {
        let sample = format!(r#"selfhelp_groups{{region="{HERE}",status="{status}"}}"#);
        scrape.until(&sample, |v| v == 1.0).await;
    }
    let archived = format!(r#"selfhelp_groups{{region="{HERE}",status="archived"}}"#);
    assert_eq!(scrape.value(&archived).await, Some(0.0));
    let indexed = format!(r#"selfhelp_search_index_groups{{region="{HERE}"}}"#);
    scrape.until(&indexed, |v| v == 1.0).await;
    let due = format!(r#"selfhelp_groups_review_due{{region="{HERE}"}}"#);
    assert_eq!(scrape.value(&due).await, Some(0.0), "confirmed just now");
    let pool = r#"selfhelp_db_connections_max{service="listings",pool="write"}"#;
    scrape.until(pool, |v| v == 1.0).await;
    scrape
        .until(
            r#"selfhelp_ready{grpc_service="selfhelp.listings.v1.ListingsService"}"#,
            |v| v == 1.0,
        )
        .await;
    // A forged event on MEMBERSHIP is parked: one dead letter waiting.
    let parked =
        format!(r#"selfhelp_dead_letters_waiting{{durable="listings-{HERE}-membership"}}"#);
    scrape.until(&parked, |v| v == 0.0).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = selfhelp_proto::streams::MEMBERSHIP;
    let headers = selfhelp_platform::bus::Envelope {
        id: &uuid::Uuid::now_v7().to_string(),
        source: &format!("urn:selfhelp:{HERE}:listings"),
        ce_type: &stream.ce_type("follow.started"),
        time: "2026-11-29T00:00:00.000Z",
        aggregate_id: "g",
        data_schema: "selfhelp.events.v1.FollowChanged",
        traceparent: None,
        stream: stream.name,
    }
    .headers();
    js.publish_with_headers(stream.subject(HERE, "follow.started"), headers, "".into())
        .await
        .unwrap()
        .await
        .unwrap();
    scrape.until(&parked, |v| v == 1.0).await;
    svc.stop().await.unwrap();
}
