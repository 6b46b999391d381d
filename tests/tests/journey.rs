//! The first journey through all three services, as real processes, over real
//! gRPC, a real nats-server and real databases (SQLite; PostgreSQL as well when
//! TEST_DATABASE_URL is set).

use std::time::Duration;

use selfhelp_e2e::{ServiceProcess, notified, service_env};
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::notifications::v1 as npb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_testkit::{
    Backend, Nats, OutsideSubscriber, TestDb, assert_cloudevent, channel, eventually, join_request,
    per_backend, token, wait_serving, with_token,
};
use tonic::Code;

const REGION: &str = "notts";

struct System {
    listings: ServiceProcess,
    membership: ServiceProcess,
    notifications: ServiceProcess,
    /// listings', membership's and notifications' databases, in that order.
    dbs: Vec<TestDb>,
}

async fn start_system(backend: Backend, nats: &Nats) -> System {
    let mut dbs = Vec::new();
    for _ in 0..3 {
        dbs.push(TestDb::new(backend).await);
    }
    let env = |db: &TestDb| {
        let mut env = service_env(REGION, &db.url, &nats.url(), "");
        // hyper may wait for idle client connections; keep the drain deadline short here.
        env.push(("SELFHELP_GRPC__SHUTDOWN_GRACE_MS", "2000".to_string()));
        env
    };
    let listings = ServiceProcess::spawn("selfhelp-listings", &env(&dbs[0]));
    let mut membership_env = env(&dbs[1]);
    membership_env.push(("SELFHELP_LISTINGS__URL", listings.url()));
    // Rota reminders four days ahead, looked for every second.
    membership_env.push(("SELFHELP_ROTA__REMINDER_LEAD_HOURS", "96".to_string()));
    membership_env.push(("SELFHELP_ROTA__CHECK_INTERVAL_SECS", "1".to_string()));
    // No gateway runs here, so erasures wait only for the three services that do
    // (the gateway's confirmation is covered by the gateway's taking_part test).
    membership_env.push((
        "SELFHELP_PRIVACY__EXPECTED_SERVICES",
        "[listings, membership, notifications]".to_string(),
    ));
    let membership = ServiceProcess::spawn("selfhelp-membership", &membership_env);
    let notifications = ServiceProcess::spawn("selfhelp-notifications", &env(&dbs[2]));
    wait_serving(listings.addr, "selfhelp.listings.v1.ListingsService").await;
    wait_serving(membership.addr, "selfhelp.membership.v1.MembershipService").await;
    wait_serving(
        notifications.addr,
        "selfhelp.notifications.v1.NotificationsService",
    )
    .await;
    System {
        listings,
        membership,
        notifications,
        dbs,
    }
}

fn group_request() -> lpb::CreateGroupRequest {
    lpb::CreateGroupRequest {
        proposed: false,
        name: "Nottingham bereavement circle".into(),
        summary: "A peer-support group for people who have lost someone".into(),
        description: "We meet every Wednesday evening. Tea, biscuits and time to talk.".into(),
        topics: vec!["bereavement".into()],
        format: lpb::MeetingFormat::InPerson.into(),
        join_policy: lpb::JoinPolicy::Open.into(),
        venues: vec![lpb::Venue {
            name: "Friends Meeting House".into(),
            address: "Clarendon Street".into(),
            town: "Nottingham".into(),
            postcode: "NG1 5JD".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn the_first_journey_across_the_real_binaries(backend: Backend) {
    let nats = Nats::start();
    let mut outside = OutsideSubscriber::connect(&nats.url()).await;
    let mut system = start_system(backend, &nats).await;
    let mut listings = ListingsServiceClient::new(channel(system.listings.addr).await);
    let mut membership = MembershipServiceClient::new(channel(system.membership.addr).await);
    let mut notifications =
        NotificationsServiceClient::new(channel(system.notifications.addr).await);
    let (alice, bob) = (token("alice", REGION, &[]), token("bob", REGION, &[]));
    let operator = token("olu", REGION, &["operator"]);

    // 1. Alice creates a group (DRAFT, she organises it) and submits it.
    let group = listings
        .create_group(with_token(group_request(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group.status(), lpb::GroupStatus::Draft, "{backend:?}");
    assert_eq!(group.organiser_ids, vec!["alice"]);
    let get = || lpb::GetGroupRequest {
        group_id: group.id.clone(),
    };
    assert_eq!(
        listings.get_group(get()).await.unwrap_err().code(),
        Code::NotFound,
        "drafts are not public"
    );
    // Joining a draft is refused once membership has heard of it.
    eventually(
        "joining a draft to be refused",
        Duration::from_secs(20),
        || {
            let mut m = membership.clone();
            let req = with_token(join_request(&group.id), &bob);
            async move {
                (m.join_group(req).await.err()?.code() == Code::FailedPrecondition).then_some(())
            }
        },
    )
    .await;
    let submit = lpb::SubmitGroupRequest {
        group_id: group.id.clone(),
    };
    listings
        .submit_group(with_token(submit, &alice))
        .await
        .unwrap();

    // 2. An operator of another region cannot approve it; one of this region can.
    let approve = lpb::ReviewGroupRequest {
        group_id: group.id.clone(),
        decision: lpb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    let elsewhere = token("op-leeds", "leeds", &["operator"]);
    assert_eq!(
        listings
            .review_group(with_token(approve.clone(), &elsewhere))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let published = listings
        .review_group(with_token(approve, &operator))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.status(), lpb::GroupStatus::Published);

    // 3. Anyone finds it without a token.
    assert_eq!(
        listings.get_group(get()).await.unwrap().into_inner().name,
        "Nottingham bereavement circle"
    );
    let found = listings
        .search_groups(lpb::SearchGroupsRequest {
            query: "bereavement".into(),
            topic: "bereavement".into(),
            page: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        found
            .groups
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>(),
        vec![group.id.as_str()]
    );

    // 4. Bob joins straight away and sees his membership.
    let joined = membership
        .join_group(with_token(join_request(&group.id), &bob))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.state(), mpb::MembershipState::Active);
    let mine = membership
        .list_my_memberships(with_token(
            mpb::ListMyMembershipsRequest { page: None },
            &bob,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.memberships.len(), 1);
    assert_eq!(mine.memberships[0].group_id, group.id);

    // 5. Alice is told someone joined; Bob is welcomed. Titles name no group.
    let joined = notified(
        &notifications,
        REGION,
        "alice",
        npb::NotificationKind::MemberJoined,
    )
    .await;
    assert!(!joined.title.to_lowercase().contains("bereave"));
    // She was told of the listing going live too.
    notified(
        &notifications,
        REGION,
        "alice",
        npb::NotificationKind::GroupListed,
    )
    .await;
    notified(
        &notifications,
        REGION,
        "bob",
        npb::NotificationKind::Welcome,
    )
    .await;
    let read = npb::MarkReadRequest {
        notification_ids: vec![],
        all: true,
    };
    assert_eq!(
        notifications
            .mark_read(with_token(read, &alice))
            .await
            .unwrap()
            .into_inner()
            .unread_count,
        0
    );

    // Alice sets the schedule and cancels the next meeting; the cancellation
    // reaches NATS like every other change.
    let schedule = lpb::Schedule {
        frequency: lpb::Frequency::Weekly.into(),
        weekday: lpb::Weekday::Wednesday.into(),
        valid_from: chrono::Utc::now().date_naive().to_string(),
        start_time: "19:00".into(),
        end_time: "21:00".into(),
        ..Default::default()
    };
    let set = lpb::SetScheduleRequest {
        group_id: group.id.clone(),
        schedule: Some(schedule),
    };
    let scheduled = listings
        .set_schedule(with_token(set, &alice))
        .await
        .unwrap()
        .into_inner();
    let next = scheduled.next_occurrences[0].local_date.clone();
    let cancel = lpb::CancelOccurrenceRequest {
        group_id: group.id.clone(),
        date: next.clone(),
        note: "Hall closed".into(),
    };
    listings
        .cancel_occurrence(with_token(cancel, &alice))
        .await
        .unwrap();
    let m = outside
        .expect(&format!("selfhelp.{REGION}.listings.occurrence.cancelled"))
        .await;
    let cancelled: ev::OccurrenceCancelled = prost::Message::decode(m.payload.clone()).unwrap();
    assert_eq!(
        (
            cancelled.date.as_str(),
            cancelled.group.unwrap().group_id.as_str()
        ),
        (next.as_str(), group.id.as_str())
    );

    // 6. A program that is not ours saw every event as a binary-mode CloudEvent.
    let listings_source = format!("urn:selfhelp:{REGION}:listings");
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
            &listings_source,
            &format!("selfhelp.events.v1.{schema}"),
        );
        if event == "published" {
            let payload: ev::GroupPublished = prost::Message::decode(m.payload.clone()).unwrap();
            assert_eq!(payload.group.unwrap().group_id, group.id);
        }
    }
    let m = outside
        .expect(&format!("selfhelp.{REGION}.membership.member.joined"))
        .await;
    assert_cloudevent(
        &m,
        "org.selfhelp.membership.member.joined.v1",
        &format!("urn:selfhelp:{REGION}:membership"),
        "selfhelp.events.v1.MemberJoined",
    );
    let payload: ev::MemberJoined = prost::Message::decode(m.payload.clone()).unwrap();
    assert_eq!(
        (payload.person_id.as_str(), payload.group_id.as_str()),
        ("bob", group.id.as_str())
    );

    // Error cases a client must get.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        listings
            .get_group(lpb::GetGroupRequest {
                group_id: unknown.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let join_unknown = with_token(join_request(&unknown), &bob);
    assert_eq!(
        membership
            .join_group(join_unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        listings
            .create_group(group_request())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let bad_token = with_token(
        npb::ListNotificationsRequest {
            page: None,
            unread_only: false,
        },
        "garbage",
    );
    assert_eq!(
        notifications
            .list_notifications(bad_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut bad = group_request();
    bad.name = String::new();
    bad.description = "x".repeat(20_000);
    bad.venues[0].postcode = "XYZ".into();
    bad.format = 42;
    let err = listings
        .create_group(with_token(bad, &alice))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        vec!["name", "description", "format", "venues[0].postcode"]
    );

    // Graceful stop on SIGTERM.
    for process in [
        &mut system.listings,
        &mut system.membership,
        &mut system.notifications,
    ] {
        let name = process.name;
        assert!(
            process.terminate(),
            "{name} did not stop cleanly on SIGTERM"
        );
    }
}

per_backend!(the_first_journey_across_the_real_binaries);

/// Rows of `table` in `db` where `column` holds `person` (or, with `like`, contains it).
async fn rows_naming(db: &TestDb, table: &str, column: &str, person: &str, like: bool) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let test = if like {
        format!("{column} LIKE '%\"{person}\"%'")
    } else {
        format!("{column} = '{person}'")
    };
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {test}");
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get::<i64>("", "n").unwrap();
    conn.close().await.unwrap();
    n
}

/// Joining with approval, a rota turn and an erasure, through the real service binaries.
async fn joining_with_approval_a_rota_and_an_erasure_across_the_real_binaries(backend: Backend) {
    use chrono::Datelike;
    let nats = Nats::start();
    let mut system = start_system(backend, &nats).await;
    let mut listings = ListingsServiceClient::new(channel(system.listings.addr).await);
    let mut membership = MembershipServiceClient::new(channel(system.membership.addr).await);
    let notifications = NotificationsServiceClient::new(channel(system.notifications.addr).await);
    let (alice, bob) = (token("alice", REGION, &[]), token("bob", REGION, &[]));
    let operator = token("olu", REGION, &["operator"]);

    // Alice's group asks people to request a place; it meets weekly, the
    // first meeting two days from now.
    let mut request = group_request();
    request.join_policy = lpb::JoinPolicy::Approval.into();
    let group = listings
        .create_group(with_token(request, &alice))
        .await
        .unwrap()
        .into_inner();
    let id = || group.id.clone();
    listings
        .submit_group(with_token(
            lpb::SubmitGroupRequest { group_id: id() },
            &alice,
        ))
        .await
        .unwrap();
    let approve = lpb::ReviewGroupRequest {
        group_id: id(),
        decision: lpb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    listings
        .review_group(with_token(approve, &operator))
        .await
        .unwrap();
    let first = chrono::Utc::now().date_naive() + chrono::Duration::days(2);
    let weekday = match first.weekday() {
        chrono::Weekday::Mon => lpb::Weekday::Monday,
        chrono::Weekday::Tue => lpb::Weekday::Tuesday,
        chrono::Weekday::Wed => lpb::Weekday::Wednesday,
        chrono::Weekday::Thu => lpb::Weekday::Thursday,
        chrono::Weekday::Fri => lpb::Weekday::Friday,
        chrono::Weekday::Sat => lpb::Weekday::Saturday,
        chrono::Weekday::Sun => lpb::Weekday::Sunday,
    };
    let schedule = lpb::Schedule {
        frequency: lpb::Frequency::Weekly.into(),
        weekday: weekday.into(),
        valid_from: chrono::Utc::now().date_naive().to_string(),
        start_time: "19:00".into(),
        end_time: "21:00".into(),
        ..Default::default()
    };
    listings
        .set_schedule(with_token(
            lpb::SetScheduleRequest {
                group_id: id(),
                schedule: Some(schedule),
            },
            &alice,
        ))
        .await
        .unwrap();

    // Bob asks to join with an answer; Alice is told and approves him.
    let mut ask = join_request(&group.id);
    ask.answer = "I lost my brother this spring".into();
    let asked = membership
        .join_group(with_token(ask, &bob))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        asked.state(),
        mpb::MembershipState::Requested,
        "{backend:?}"
    );
    let told = notified(
        &notifications,
        REGION,
        "alice",
        npb::NotificationKind::JoinRequested,
    )
    .await;
    assert!(!told.title.to_lowercase().contains("bereave"));
    let approved = membership
        .approve_request(with_token(
            mpb::DecideRequestRequest {
                membership_id: asked.id.clone(),
                message: "Welcome, Bob".into(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state(), mpb::MembershipState::Active);
    let welcome = notified(
        &notifications,
        REGION,
        "bob",
        npb::NotificationKind::RequestApproved,
    )
    .await;
    assert!(welcome.body.contains("Welcome, Bob"));

    // Alice joins her own group, makes Bob co-organiser and puts him first
    // on the chair rota: he is reminded of his turn.
    let alice_m = membership
        .join_group(with_token(join_request(&group.id), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice_m.role(), mpb::GroupRole::Organiser);
    membership
        .assign_role(with_token(
            mpb::AssignRoleRequest {
                membership_id: asked.id.clone(),
                role: mpb::GroupRole::CoOrganiser.into(),
                duties: vec!["chair".into()],
            },
            &alice,
        ))
        .await
        .unwrap();
    let rota =
        eventually(
            "membership to know the meetings",
            Duration::from_secs(20),
            || {
                let mut m = membership.clone();
                let req = with_token(
                    mpb::SetRotaRequest {
                        group_id: id(),
                        duty: "chair".into(),
                        volunteer_person_ids: vec!["bob".into(), "alice".into()],
                    },
                    &alice,
                );
                async move {
                    Some(m.set_rota(req).await.ok()?.into_inner()).filter(|r| !r.turns.is_empty())
                }
            },
        )
        .await;
    assert_eq!(rota.turns[0].meeting_key, first.to_string());
    let reminder = notified(
        &notifications,
        REGION,
        "bob",
        npb::NotificationKind::RotaReminder,
    )
    .await;
    assert!(reminder.body.contains(&first.to_string()));
    // Listings learned that Bob co-organises.
    eventually("listings to list bob", Duration::from_secs(20), || {
        let mut l = listings.clone();
        let req = with_token(lpb::GetGroupRequest { group_id: id() }, &alice);
        async move {
            let g = l.get_group(req).await.ok()?.into_inner();
            g.organiser_ids.contains(&"bob".to_string()).then_some(())
        }
    })
    .await;

    // Bob asks to be erased: every service confirms, and none holds him.
    membership
        .erase_me(with_token(mpb::EraseMeRequest { confirm: true }, &bob))
        .await
        .unwrap();
    let status =
        eventually("every service to confirm", Duration::from_secs(30), || {
            let mut m = membership.clone();
            let req = with_token(mpb::GetErasureStatusRequest {}, &bob);
            async move {
                Some(m.get_erasure_status(req).await.ok()?.into_inner()).filter(|s| s.complete)
            }
        })
        .await;
    let mut services: Vec<_> = status
        .confirmations
        .iter()
        .map(|c| c.service.as_str())
        .collect();
    services.sort();
    assert_eq!(services, vec!["listings", "membership", "notifications"]);
    let [ldb, mdb, ndb] = [&system.dbs[0], &system.dbs[1], &system.dbs[2]];
    for (db, table, column, like) in [
        (mdb, "membership", "person_id", false),
        (mdb, "consent", "person_id", false),
        (mdb, "rota", "volunteers_json", true),
        (ldb, "organiser_role", "person_id", false),
        (ldb, "listing_group", "organiser_ids_json", true),
        (ndb, "notification", "recipient_id", false),
    ] {
        assert_eq!(
            rows_naming(db, table, column, "bob", like).await,
            0,
            "{table}.{column} still names bob"
        );
    }
    // The other services' copies of the organiser list follow listings.
    for db in [mdb, ndb] {
        eventually(
            "read models to drop bob",
            Duration::from_secs(20),
            || async {
                (rows_naming(db, "group_view", "organiser_ids_json", "bob", true).await == 0)
                    .then_some(())
            },
        )
        .await;
    }
    let overdue = membership
        .list_overdue_erasures(with_token(
            mpb::ListOverdueErasuresRequest { page: None },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        overdue.requests.is_empty(),
        "a complete request is not overdue"
    );

    for process in [
        &mut system.listings,
        &mut system.membership,
        &mut system.notifications,
    ] {
        assert!(process.terminate(), "{} did not stop cleanly", process.name);
    }
}

per_backend!(joining_with_approval_a_rota_and_an_erasure_across_the_real_binaries);
