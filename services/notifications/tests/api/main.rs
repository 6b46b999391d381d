//! The notifications service in-process over real gRPC/TCP, fed by real events on
//! a real nats-server, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

use std::time::Duration;

use selfhelp_core::time::Clock;
use selfhelp_notifications::{Config, SERVICE_NAME, run, run_with_clock};
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::notifications::v1 as pb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_proto::streams::{LISTINGS, MEMBERSHIP};
use selfhelp_testkit::{
    Backend, Nats, RunningService, TestDb, eventually, per_backend, publish_event, token,
    wait_consumer_caught_up, wait_consumer_delivered, with_token,
};
use tonic::Code;
use tonic::transport::Channel;

mod channels;

const REGION: &str = "notts";

/// The service's settings for a test: quick retries, no unsubscribe listener,
/// emails (if any) as files in a folder of the test's own.
fn config(db: &TestDb, nats: &Nats) -> Config {
    let mut config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    config.http.listen = String::new();
    config.email.file_dir = tempfile::tempdir().expect("temp dir").keep();
    config.delivery.interval_ms = 100;
    config.delivery.lease_secs = 5;
    config.delivery.retry_base_ms = 200;
    config.delivery.retry_max_ms = 1_000;
    config.digests.check_interval_secs = 1;
    config
}

async fn start(db: &TestDb, nats: &Nats) -> RunningService {
    start_with(config(db, nats)).await
}

async fn start_with(config: Config) -> RunningService {
    RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await
}

/// The service on a clock the test moves forward.
async fn start_on(config: Config, clock: Clock) -> RunningService {
    RunningService::start(SERVICE_NAME, move |l, s| {
        run_with_clock(config, clock, l, s)
    })
    .await
}

/// Listings' word about a group, as an update: it feeds the read model and tells
/// no one anything (publishing would tell the organisers).
async fn group_known(nats: &Nats, group_id: &str, name: &str, organisers: &[&str]) {
    let msg = ev::GroupUpdated {
        changed_fields: vec![],
        group: Some(ev::GroupSnapshot {
            group_id: group_id.into(),
            region: REGION.into(),
            name: name.into(),
            status: "PUBLISHED".into(),
            join_policy: "OPEN".into(),
            organiser_ids: organisers.iter().map(|s| s.to_string()).collect(),
            topics: vec!["diabetes".into()],
            version: 3,
            capacity: 0,
            places: vec![],
            ..Default::default()
        }),
        occurred_at: None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    publish_event(
        &nats.url(),
        LISTINGS,
        REGION,
        "group.updated",
        group_id,
        &msg,
        &id,
        &id,
    )
    .await;
}

async fn member_joined(nats: &Nats, group_id: &str, person: &str, ce_id: &str, nats_msg_id: &str) {
    let msg = ev::MemberJoined {
        membership_id: uuid::Uuid::now_v7().to_string(),
        group_id: group_id.into(),
        person_id: person.into(),
        version: 1,
        occurred_at: None,
    };
    publish_event(
        &nats.url(),
        MEMBERSHIP,
        REGION,
        "member.joined",
        &msg.membership_id.clone(),
        &msg,
        ce_id,
        nats_msg_id,
    )
    .await;
}

async fn get_prefs(
    client: &mut NotificationsServiceClient<Channel>,
    person: &str,
) -> pb::Preferences {
    client
        .get_preferences(with_token(
            pb::GetPreferencesRequest {},
            &token(person, REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Reads the person's preferences, changes them with `change`, stores them.
async fn set_prefs(
    client: &mut NotificationsServiceClient<Channel>,
    person: &str,
    change: impl FnOnce(&mut pb::Preferences),
) -> pb::Preferences {
    let mut prefs = get_prefs(client, person).await;
    change(&mut prefs);
    client
        .update_preferences(with_token(
            pb::UpdatePreferencesRequest {
                preferences: Some(prefs),
            },
            &token(person, REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn inbox(
    client: &mut NotificationsServiceClient<Channel>,
    person: &str,
) -> pb::ListNotificationsResponse {
    let req = pb::ListNotificationsRequest {
        page: None,
        unread_only: false,
    };
    client
        .list_notifications(with_token(req, &token(person, REGION, &[])))
        .await
        .unwrap()
        .into_inner()
}

async fn a_join_tells_organiser_and_member_once_even_when_redelivered(backend: Backend) {
    // A NATS of its own per backend: the durable consumer must not carry
    // positions from one database over to the other.
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let group = uuid::Uuid::now_v7().to_string();

    // The join arrives before listings' event about the group: it is retried
    // until the group is known, not dropped.
    let ce_id = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &group, "bob", &ce_id, &format!("{ce_id}-1")).await;
    let membership = format!("notifications-{REGION}-membership");
    wait_consumer_delivered(&nats.url(), "MEMBERSHIP", &membership).await;
    group_known(&nats, &group, "Diabetes support Nottingham", &["alice"]).await;
    // The same event again, past JetStream's de-duplication window.
    member_joined(&nats, &group, "bob", &ce_id, &format!("{ce_id}-2")).await;

    let alice_inbox = eventually("alice's notification", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { Some(inbox(&mut c, "alice").await).filter(|r| !r.notifications.is_empty()) }
    })
    .await;
    let bob_inbox = eventually("bob's welcome", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { Some(inbox(&mut c, "bob").await).filter(|r| !r.notifications.is_empty()) }
    })
    .await;
    // Once every delivery has been handled, there is still one of each.
    let durable = format!("notifications-{REGION}-membership");
    wait_consumer_caught_up(&nats.url(), "MEMBERSHIP", &durable).await;
    assert_eq!(inbox(&mut client, "bob").await.notifications.len(), 1);
    let alice_inbox_later = inbox(&mut client, "alice").await;
    assert_eq!(
        alice_inbox_later.notifications.len(),
        1,
        "{backend:?}: one notification for two deliveries"
    );
    assert_eq!(alice_inbox.unread_count, 1);
    let n = &alice_inbox.notifications[0];
    assert_eq!(n.kind(), pb::NotificationKind::MemberJoined);
    assert!(
        !n.title.contains("Diabetes"),
        "title names the group: {}",
        n.title
    );
    assert!(n.body.contains("Diabetes support Nottingham"));
    assert_eq!(bob_inbox.notifications.len(), 1);
    assert_eq!(
        bob_inbox.notifications[0].kind(),
        pb::NotificationKind::Welcome
    );
    assert!(
        inbox(&mut client, "carol").await.notifications.is_empty(),
        "nobody else is told"
    );

    // Reading one and marking read: only one's own.
    let alice = token("alice", REGION, &[]);
    let bob = token("bob", REGION, &[]);
    let id = n.id.clone();
    let get = |t: &str| {
        with_token(
            pb::GetNotificationRequest {
                notification_id: id.clone(),
            },
            t,
        )
    };
    let got = client
        .get_notification(get(&alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&got, n);
    let err = client.get_notification(get(&bob)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client
        .get_notification(with_token(
            pb::GetNotificationRequest {
                notification_id: "7".into(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["notification_id"]);
    let err = client
        .mark_read(with_token(
            pb::MarkReadRequest {
                notification_ids: vec![id.clone()],
                all: false,
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let resp = client
        .mark_read(with_token(
            pb::MarkReadRequest {
                notification_ids: vec![id],
                all: false,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.unread_count, 0);
    let after = inbox(&mut client, "alice").await;
    assert!(after.notifications[0].read_at.is_some());
    svc.stop().await.unwrap();
}

per_backend!(a_join_tells_organiser_and_member_once_even_when_redelivered);

async fn inbox_is_newest_first_paginated_and_private(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    inbox_scenario(&db, &nats).await;
}

per_backend!(inbox_is_newest_first_paginated_and_private);

async fn inbox_scenario(db: &TestDb, nats: &Nats) {
    let svc = start(db, nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let mut groups = Vec::new();
    for i in 0..3 {
        let g = uuid::Uuid::now_v7().to_string();
        group_known(nats, &g, &format!("Group {i}"), &["alice"]).await;
        groups.push(g);
    }
    // Groups known first, so the joins are handled in the order they happen.
    let listings_durable = format!("notifications-{REGION}-listings");
    wait_consumer_caught_up(&nats.url(), "LISTINGS", &listings_durable).await;
    for (i, g) in groups.iter().enumerate() {
        let id = uuid::Uuid::now_v7().to_string();
        member_joined(nats, g, &format!("member-{i}"), &id, &id).await;
    }
    eventually("three notifications", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { (inbox(&mut c, "alice").await.notifications.len() == 3).then_some(()) }
    })
    .await;
    let alice = token("alice", REGION, &[]);
    let page = |t: &str| pb::ListNotificationsRequest {
        page: Some(PageRequest {
            page_size: 2,
            page_token: t.into(),
        }),
        unread_only: false,
    };
    let first = client
        .list_notifications(with_token(page(""), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.notifications.len(), 2);
    assert_eq!(first.notifications[0].group_id, groups[2], "newest first");
    let next = first.page.unwrap().next_page_token;
    let second = client
        .list_notifications(with_token(page(&next), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.notifications.len(), 1);
    assert_eq!(second.notifications[0].group_id, groups[0]);
    assert!(second.page.unwrap().next_page_token.is_empty());
    assert_eq!((first.unread_count, second.unread_count), (3, 3));

    // The unread count is the same whether a page holds everything or not.
    client
        .mark_read(with_token(
            pb::MarkReadRequest {
                notification_ids: vec![first.notifications[0].id.clone()],
                all: false,
            },
            &alice,
        ))
        .await
        .unwrap();
    for (page_size, unread_only) in [(20, false), (20, true), (1, false), (1, true)] {
        let listed = client
            .list_notifications(with_token(
                pb::ListNotificationsRequest {
                    page: Some(PageRequest {
                        page_size,
                        page_token: String::new(),
                    }),
                    unread_only,
                },
                &alice,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.unread_count, 2,
            "{page_size} a page, unread only: {unread_only}"
        );
    }

    let all = client
        .mark_read(with_token(
            pb::MarkReadRequest {
                notification_ids: vec![],
                all: true,
            },
            &alice,
        ))
        .await
        .unwrap();
    assert_eq!(all.into_inner().unread_count, 0);

    // Bad input and missing tokens.
    let req = pb::ListNotificationsRequest {
        page: None,
        unread_only: false,
    };
    assert_eq!(
        client.list_notifications(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let err = client
        .list_notifications(with_token(page("not-a-token"), &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["page.page_token"]);
    let err = client
        .mark_read(with_token(
            pb::MarkReadRequest {
                notification_ids: vec!["x".into()],
                all: false,
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["notification_ids[0]"]);
    let err = client
        .mark_read(with_token(pb::MarkReadRequest::default(), &alice))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["notification_ids"]);
    let leeds = token("alice", "leeds", &[]);
    let req = pb::ListNotificationsRequest {
        page: None,
        unread_only: false,
    };
    assert_eq!(
        client
            .list_notifications(with_token(req, &leeds))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn the_consumer_recovers_from_a_nats_restart_and_from_deletion() {
    let mut nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let group = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &group, "Walk and talk", &["alice"]).await;
    // The group is known before NATS goes: otherwise the join below waits for
    // the listings consumer's own recovery, and with the tests' short retries
    // (about 5 s in all) it could be dead-lettered first.
    let listings = format!("notifications-{REGION}-listings");
    wait_consumer_caught_up(&nats.url(), "LISTINGS", &listings).await;

    nats.stop();
    nats.restart();
    let first = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &group, "bob", &first, &first).await;
    eventually(
        "a notification after the NATS restart",
        Duration::from_secs(30),
        || {
            let mut c = client.clone();
            async move { (inbox(&mut c, "alice").await.notifications.len() == 1).then_some(()) }
        },
    )
    .await;

    // Someone deletes the durable consumer: the supervisor recreates it, and the
    // replay from the start of the stream does not notify anyone twice.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let durable = format!("notifications-{REGION}-membership");
    js.get_stream("MEMBERSHIP")
        .await
        .unwrap()
        .delete_consumer(&durable)
        .await
        .unwrap();
    let second = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &group, "carol", &second, &second).await;
    eventually(
        "a notification after the consumer was deleted",
        Duration::from_secs(30),
        || {
            let mut c = client.clone();
            async move { (inbox(&mut c, "alice").await.notifications.len() == 2).then_some(()) }
        },
    )
    .await;
    wait_consumer_caught_up(&nats.url(), "MEMBERSHIP", &durable).await;
    assert_eq!(inbox(&mut client, "alice").await.notifications.len(), 2);
    assert_eq!(inbox(&mut client, "bob").await.notifications.len(), 1);
}

/// Publishes `msg` as `event` on `stream`, with fresh ids.
async fn publish<M: prost::Message + prost::Name>(
    nats: &Nats,
    stream: selfhelp_proto::streams::StreamSpec,
    event: &str,
    aggregate: &str,
    msg: &M,
) {
    let id = uuid::Uuid::now_v7().to_string();
    publish_event(&nats.url(), stream, REGION, event, aggregate, msg, &id, &id).await;
}

fn snapshot(group_id: &str, organisers: &[&str], version: i64) -> Option<ev::GroupSnapshot> {
    Some(ev::GroupSnapshot {
        group_id: group_id.into(),
        region: REGION.into(),
        name: "Grief café Beeston".into(),
        status: "PUBLISHED".into(),
        join_policy: "OPEN".into(),
        organiser_ids: organisers.iter().map(|s| s.to_string()).collect(),
        topics: vec!["bereavement".into()],
        version,
        capacity: 0,
        places: vec![],
        ..Default::default()
    })
}

fn changed(group_id: &str, person: &str, state: &str, version: i64) -> ev::MembershipChanged {
    ev::MembershipChanged {
        membership_id: format!("m-{person}"),
        group_id: group_id.into(),
        person_id: person.into(),
        state: state.into(),
        version,
        ..Default::default()
    }
}

/// Waits until every published event has been handled by both consumers.
async fn settle(nats: &Nats) {
    for (stream, durable) in [("LISTINGS", "listings"), ("MEMBERSHIP", "membership")] {
        wait_consumer_caught_up(
            &nats.url(),
            stream,
            &format!("notifications-{REGION}-{durable}"),
        )
        .await;
    }
}

fn kinds(inbox: &pb::ListNotificationsResponse) -> Vec<pb::NotificationKind> {
    inbox.notifications.iter().map(|n| n.kind()).collect()
}

async fn organisers_hear_about_their_listing_and_members_and_followers_about_meetings(
    backend: Backend,
) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();

    let published = ev::GroupPublished {
        group: snapshot(&g, &["olive"], 3),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "group.published", &g, &published).await;
    // Bob is a member, Zoe follows, Carol joined and left, Dan only asked.
    let joined = |person: &str| ev::MemberJoined {
        membership_id: format!("m-{person}"),
        group_id: g.clone(),
        person_id: person.into(),
        version: 1,
        occurred_at: None,
    };
    publish(&nats, MEMBERSHIP, "member.joined", "m-bob", &joined("bob")).await;
    publish(
        &nats,
        MEMBERSHIP,
        "member.joined",
        "m-carol",
        &joined("carol"),
    )
    .await;
    publish(
        &nats,
        MEMBERSHIP,
        "member.left",
        "m-carol",
        &changed(&g, "carol", "LEFT", 2),
    )
    .await;
    publish(
        &nats,
        MEMBERSHIP,
        "member.requested",
        "m-dan",
        &changed(&g, "dan", "REQUESTED", 1),
    )
    .await;
    let follow = ev::FollowChanged {
        group_id: g.clone(),
        person_id: "zoe".into(),
        following: true,
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
    };
    publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    settle(&nats).await;

    let cancelled = ev::OccurrenceCancelled {
        group: snapshot(&g, &["olive"], 4),
        date: "2030-12-09".into(),
        note: "The hall is closed.".into(),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "occurrence.cancelled", &g, &cancelled).await;
    let moved = ev::OccurrenceMoved {
        group: snapshot(&g, &["olive"], 5),
        original_date: "2030-12-16".into(),
        // 2030-12-17 18:00 UTC is 18:00 in London in winter. (Dates far ahead:
        // they stay meetings to come whenever the tests run.)
        new_starts_at: Some(prost_types::Timestamp {
            seconds: 1_923_760_800,
            nanos: 0,
        }),
        new_ends_at: None,
        note: String::new(),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "occurrence.moved", &g, &moved).await;
    let rejected = ev::GroupRejected {
        group: snapshot(&g, &["olive"], 6),
        note: "Please add a contact".into(),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "group.rejected", &g, &rejected).await;
    settle(&nats).await;

    use pb::NotificationKind::{GroupListed, GroupRejected, MeetingChanged, Welcome};
    let bob = inbox(&mut client, "bob").await;
    assert_eq!(
        kinds(&bob),
        vec![MeetingChanged, MeetingChanged, Welcome],
        "{backend:?}"
    );
    assert!(
        bob.notifications[1]
            .body
            .contains("2030-12-09 is cancelled. The hall is closed.")
    );
    assert!(
        bob.notifications[0]
            .body
            .contains("moved to Tue 17 Dec 2030, 18:00"),
        "{}",
        bob.notifications[0].body
    );
    assert!(bob.notifications.iter().all(|n| !n.title.contains("Grief")));
    let zoe = inbox(&mut client, "zoe").await;
    assert_eq!(
        kinds(&zoe),
        vec![MeetingChanged, MeetingChanged],
        "followers hear too"
    );
    let carol = inbox(&mut client, "carol").await;
    assert!(
        !kinds(&carol).contains(&MeetingChanged),
        "carol left before the change"
    );
    assert!(inbox(&mut client, "dan").await.notifications.is_empty());
    let olive = inbox(&mut client, "olive").await;
    assert!(kinds(&olive).starts_with(&[GroupRejected]));
    assert!(kinds(&olive).contains(&GroupListed));
    assert!(olive.notifications[0].body.contains("Please add a contact"));
    svc.stop().await.unwrap();
}

per_backend!(organisers_hear_about_their_listing_and_members_and_followers_about_meetings);

async fn watching_delivers_live_and_resumes_after_a_reconnect(backend: Backend) {
    use futures::StreamExt;
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Men's shed", &["olive"]).await;
    let bob = token("bob", REGION, &[]);
    let watch = |after: &str| {
        with_token(
            pb::WatchNotificationsRequest {
                after_id: after.into(),
            },
            &bob,
        )
    };
    let bad = client
        .watch_notifications(watch("not-an-id"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), vec!["after_id"]);
    let mut live = client
        .watch_notifications(watch(""))
        .await
        .unwrap()
        .into_inner();
    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, "bob", &ce, &ce).await;
    let first = tokio::time::timeout(Duration::from_secs(20), live.next())
        .await
        .expect("a live notification")
        .unwrap()
        .unwrap();
    assert_eq!(first.kind(), pb::NotificationKind::Welcome, "{backend:?}");
    drop(live);

    // While Bob is away, a meeting changes; reconnecting after the one he has
    // brings it first.
    let cancelled = ev::OccurrenceCancelled {
        group: snapshot(&g, &["olive"], 9),
        date: "2030-12-09".into(),
        note: String::new(),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "occurrence.cancelled", &g, &cancelled).await;
    settle(&nats).await;
    let mut again = client
        .watch_notifications(watch(&first.id))
        .await
        .unwrap()
        .into_inner();
    let missed = tokio::time::timeout(Duration::from_secs(20), again.next())
        .await
        .expect("the missed notification")
        .unwrap()
        .unwrap();
    assert_eq!(missed.kind(), pb::NotificationKind::MeetingChanged);
    let anon = client
        .watch_notifications(pb::WatchNotificationsRequest {
            after_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(anon.code(), Code::Unauthenticated);
    svc.stop().await.unwrap();
}

per_backend!(watching_delivers_live_and_resumes_after_a_reconnect);

/// Stream limits live in the replica's memory, the same on either database:
/// SQLite only.
#[tokio::test]
async fn live_streams_are_capped_per_person_and_end_with_the_token() {
    use futures::StreamExt;
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let watch = |token: &str| {
        with_token(
            pb::WatchNotificationsRequest {
                after_id: String::new(),
            },
            token,
        )
    };
    let bob = token("bob", REGION, &[]);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            client
                .watch_notifications(watch(&bob))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let fourth = client.watch_notifications(watch(&bob)).await.unwrap_err();
    assert_eq!(fourth.code(), Code::ResourceExhausted, "{fourth:?}");
    // Someone else is not held back by Bob's streams.
    let _carol = client
        .watch_notifications(watch(&token("carol", REGION, &[])))
        .await
        .unwrap();
    // Closing one gives its place back.
    drop(open.pop());
    eventually(
        "a closed stream's place to come back",
        Duration::from_secs(10),
        || {
            let mut c = client.clone();
            let req = watch(&bob);
            async move { c.watch_notifications(req).await.ok().map(|_| ()) }
        },
    )
    .await;

    // A stream opened with a token that expires in two seconds ends then.
    let short = selfhelp_platform::auth::mint_hs256(
        selfhelp_testkit::secret(),
        "dora",
        REGION,
        &[],
        Duration::from_secs(2),
    )
    .unwrap();
    let mut stream = client
        .watch_notifications(watch(&short))
        .await
        .unwrap()
        .into_inner();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends when the token expires")
        .expect("an error, not a silent end")
        .unwrap_err();
    assert_eq!(end.code(), Code::Unauthenticated);
    svc.stop().await.unwrap();
}

/// Live streams are woken, not polled: one look for everyone watching wakes
/// only the streams of people with something new, once per change.
async fn one_look_wakes_only_the_streams_with_news(backend: Backend) {
    use selfhelp_notifications::config::WatchConfig;
    use selfhelp_notifications::domain::messages::{Kind, Message};
    use selfhelp_notifications::live::LiveInbox;
    use selfhelp_notifications::store::{Migrator, notification};
    let db = TestDb::new(backend).await;
    let cfg = selfhelp_platform::config::DatabaseConfig {
        url: db.url.clone(),
        ..Default::default()
    };
    let conn = selfhelp_platform::service::open_database::<Migrator>(
        &cfg,
        &selfhelp_platform::Shutdown::new().1,
    )
    .await
    .unwrap();
    let live = std::sync::Arc::new(LiveInbox::default());
    let watch = WatchConfig::default();
    let (ann, ben) = (
        live.open("ann", &watch).unwrap(),
        live.open("ben", &watch).unwrap(),
    );
    assert!(
        live.look(&conn).await.unwrap().is_empty(),
        "{backend:?}: nothing new"
    );

    let wake = ben.wake();
    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let welcome = Message {
        recipient_id: "ben".into(),
        kind: Kind::Welcome,
        title: "Welcome".into(),
        body: "You joined a group".into(),
    };
    let outgoing = notification::Outgoing {
        message: &welcome,
        group_id: "g",
        event_id: "e1",
    };
    notification::insert_all(&conn, &[outgoing], 1)
        .await
        .unwrap();
    assert_eq!(
        live.look(&conn).await.unwrap(),
        vec!["ben".to_string()],
        "{backend:?}"
    );
    tokio::time::timeout(Duration::from_millis(100), woken)
        .await
        .expect("ben's stream is woken");
    assert!(
        live.look(&conn).await.unwrap().is_empty(),
        "once per change"
    );
    drop((ann, ben));
    assert!(
        live.look(&conn).await.unwrap().is_empty(),
        "nobody watching"
    );
}

per_backend!(one_look_wakes_only_the_streams_with_news);

async fn erasure_empties_the_inbox_confirms_and_keeps_it_empty(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let mut outside = selfhelp_testkit::OutsideSubscriber::connect(&nats.url()).await;
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Men's shed", &["olive"]).await;
    // Bob's settings: an email address, an alert, a webhook.
    let bob = token("bob", REGION, &[]);
    set_prefs(&mut client, "bob", |p| p.email = "bob@example.org".into()).await;
    let alert = pb::CreateAlertRequest {
        latitude: 52.95,
        longitude: -1.15,
        radius_km: 10.0,
        ..Default::default()
    };
    client.create_alert(with_token(alert, &bob)).await.unwrap();
    let hook = pb::RegisterWebhookRequest {
        url: "https://hooks.example.org/bob".into(),
        kinds: vec![],
    };
    client
        .register_webhook(with_token(hook, &bob))
        .await
        .unwrap();
    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, "bob", &ce, &ce).await;
    settle(&nats).await;
    let export = client
        .export_my_data(with_token(
            pb::ExportMyDataRequest {},
            &token("bob", REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert_eq!(
        doc["notifications"].as_array().unwrap().len(),
        1,
        "{backend:?}"
    );
    assert_eq!(doc["group_updates"][0]["group_id"], g.as_str());
    assert_eq!(doc["email"], "bob@example.org");
    assert_eq!(doc["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["webhooks"].as_array().unwrap().len(), 1);
    assert!(doc["webhooks"][0].get("secret").is_none(), "never exported");
    // The welcome went to his email and his webhook.
    assert_eq!(doc["deliveries"].as_array().unwrap().len(), 2, "{doc}");

    let request = ev::ErasureRequested {
        request_id: "r-1".into(),
        person_id: "bob".into(),
        requested_at: None,
    };
    publish(
        &nats,
        selfhelp_proto::streams::PRIVACY,
        "erasure.requested",
        "r-1",
        &request,
    )
    .await;
    let done = outside
        .expect(&format!("selfhelp.{REGION}.privacy.erasure.completed"))
        .await;
    let done: ev::ErasureCompleted = prost::Message::decode(done.payload.clone()).unwrap();
    assert_eq!(
        (done.request_id.as_str(), done.service.as_str()),
        ("r-1", "notifications")
    );
    assert!(inbox(&mut client, "bob").await.notifications.is_empty());

    // An event about Bob still in flight brings nothing back.
    let cancelled = ev::OccurrenceCancelled {
        group: snapshot(&g, &["olive"], 9),
        date: "2030-12-09".into(),
        note: String::new(),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "occurrence.cancelled", &g, &cancelled).await;
    let late = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, "bob", &late, &late).await;
    settle(&nats).await;
    assert!(inbox(&mut client, "bob").await.notifications.is_empty());
    let export = client
        .export_my_data(with_token(
            pb::ExportMyDataRequest {},
            &token("bob", REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert_eq!(
        doc["group_updates"],
        serde_json::json!([]),
        "not stored again"
    );
    for (what, empty) in [
        ("email", serde_json::json!("")),
        ("alerts", serde_json::json!([])),
        ("webhooks", serde_json::json!([])),
        ("deliveries", serde_json::json!([])),
        ("digests", serde_json::json!([])),
    ] {
        assert_eq!(doc[what], empty, "{what} erased");
    }
    svc.stop().await.unwrap();
}

per_backend!(erasure_empties_the_inbox_confirms_and_keeps_it_empty);

/// The consumers' metrics move with the events they handle, scraped over TCP;
/// the delivery log's backlog and the database pools are sampled. Alone in its
/// process, so the counts are this test's only.
#[tokio::test]
async fn metrics_count_the_events_each_consumer_handles() {
    if !selfhelp_testkit::alone_in_process("metrics_count_the_events_each_consumer_handles") {
        return;
    }
    let nats = Nats::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = config(&db, &nats);
    let scrape = selfhelp_testkit::metrics::Scrape::configure(&mut config.common.metrics);
    let svc = start_with(config).await;
    let handled = |durable: &'static str| {
        let sample = format!(r#"selfhelp_events_handled_total{{durable="{durable}"}}"#);
        let scrape = &scrape;
        async move { scrape.value(&sample).await.unwrap_or(0.0) }
    };
    let (listings, membership) = (
        "notifications-notts-listings",
        "notifications-notts-membership",
    );
    let before = (handled(listings).await, handled(membership).await);
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Counted group", &["olive"]).await;
    for person in ["ann", "ben"] {
        let ce = uuid::Uuid::now_v7().to_string();
        member_joined(&nats, &g, person, &ce, &ce).await;
    }
    let counted = eventually("the events counted", Duration::from_secs(20), || async {
        let now = (handled(listings).await, handled(membership).await);
        (now.0 - before.0 >= 1.0 && now.1 - before.1 >= 2.0).then_some(now)
    })
    .await;
    assert_eq!(
        (counted.0 - before.0, counted.1 - before.1),
        (1.0, 2.0),
        "one group event, two joins, each counted once"
    );
    // Nobody has an email address: no email is due.
    let due = format!(r#"selfhelp_deliveries_due{{region="{REGION}",channel="email"}}"#);
    scrape.until(&due, |v| v == 0.0).await;
    // SQLite: one writer; the readers as configured.
    let max = |pool: &str| {
        format!(r#"selfhelp_db_connections_max{{service="notifications",pool="{pool}"}}"#)
    };
    scrape.until(&max("write"), |v| v == 1.0).await;
    let readers = f64::from(selfhelp_platform::config::DatabaseConfig::default().sqlite_readers);
    scrape.until(&max("read"), |v| v == readers).await;
    svc.stop().await.unwrap();
}

/// A late change to someone's place in a group's audience cannot undo a newer
/// one: the held row changes only for a newer version (one upsert, no read).
async fn the_audience_keeps_the_newest_change(backend: Backend) {
    use sea_orm_migration::MigratorTrait;
    use selfhelp_notifications::store::{Migrator, audience};
    let db = TestDb::new(backend).await;
    let conn = selfhelp_platform::db::connect(&db.url, 2).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let members = |conn| async move { audience::of_group(conn, "g1").await.unwrap() };

    audience::set(&conn, "g1", "p1", audience::MEMBER, true, 2)
        .await
        .unwrap();
    // Older (version 1) and equal (version 2) changes are ignored.
    audience::set(&conn, "g1", "p1", audience::MEMBER, false, 1)
        .await
        .unwrap();
    audience::set(&conn, "g1", "p1", audience::MEMBER, false, 2)
        .await
        .unwrap();
    assert_eq!(members(&conn).await, vec!["p1".to_string()], "{backend:?}");
    // A newer one applies.
    audience::set(&conn, "g1", "p1", audience::MEMBER, false, 3)
        .await
        .unwrap();
    assert!(members(&conn).await.is_empty(), "{backend:?}");

    // Several changes in one statement: the newest of each person counts, the
    // first of equal versions, as if applied one after another.
    let change = |person: &str, active: bool, version: i64| audience::Change {
        group_id: "g2".into(),
        person_id: person.into(),
        relation: audience::MEMBER,
        active,
        version,
    };
    audience::set_all(
        &conn,
        &[
            change("p1", true, 1),
            change("p2", true, 1),
            change("p1", false, 3),
            change("p1", true, 2),
            change("p2", false, 1),
        ],
    )
    .await
    .unwrap();
    let members = audience::of_group(&conn, "g2").await.unwrap();
    assert_eq!(members, vec!["p2".to_string()], "{backend:?}");
}

per_backend!(the_audience_keeps_the_newest_change);

/// A membership event as the consumer hands it to the handler.
fn membership_event<M: prost::Message>(
    ce_type: &str,
    aggregate: &str,
    payload: &M,
) -> selfhelp_platform::bus::IncomingEvent {
    selfhelp_platform::bus::IncomingEvent {
        id: uuid::Uuid::now_v7().to_string(),
        ce_type: ce_type.into(),
        source: format!("urn:selfhelp:{REGION}:membership"),
        subject: String::new(),
        aggregate_id: aggregate.into(),
        time: String::new(),
        data_schema: String::new(),
        traceparent: None,
        payload: payload.encode_to_vec().into(),
    }
}

/// What a run of membership events left: every inbox item (recipient, kind,
/// title, event), in the order stored, and each group's audience.
async fn told_and_audience(
    events: &[selfhelp_platform::bus::IncomingEvent],
    groups: &[String],
    backend: Backend,
    together: bool,
) -> (Vec<(String, String, String, String)>, Vec<Vec<String>>) {
    use sea_orm::{EntityTrait, QueryOrder, TransactionTrait};
    use sea_orm_migration::MigratorTrait;
    use selfhelp_notifications::events::MembershipEvents;
    use selfhelp_notifications::store::{Migrator, audience, erased, notification};
    use selfhelp_platform::inbox::{Outcome, apply_all_in, process_once};

    let db = TestDb::new(backend).await;
    let conn = selfhelp_platform::db::connect(&db.url, 2).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    for (i, g) in groups.iter().enumerate() {
        let snapshot = ev::GroupSnapshot {
            group_id: g.clone(),
            region: REGION.into(),
            name: format!("Group {i}"),
            status: "PUBLISHED".into(),
            organiser_ids: vec!["alice".into()],
            version: 1,
            ..Default::default()
        };
        selfhelp_group_view::apply(&conn, &snapshot, 0)
            .await
            .unwrap();
    }
    let handler = MembershipEvents {
        clock: Clock::system(),
        timezone: chrono_tz::Europe::London,
        names: selfhelp_platform::privacy::Pseudonyms::from_key(b"test key"),
    };
    // Someone erased before their join arrives is neither told nor stored.
    erased::mark(&conn, &handler.names, "member-5", 0)
        .await
        .unwrap();
    if together {
        let all: Vec<_> = events.iter().collect();
        let txn = conn.begin().await.unwrap();
        let outcomes = apply_all_in(&txn, "membership", &all, &handler)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert!(outcomes.iter().all(|o| *o == Outcome::Applied));
    } else {
        for event in events {
            let outcome = process_once(&conn, "membership", event, &handler)
                .await
                .unwrap();
            assert_eq!(outcome, Outcome::Applied);
        }
    }
    let told = notification::Entity::find()
        .order_by_asc(notification::Column::Id)
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.recipient_id, n.kind, n.title, n.event_id))
        .collect();
    let mut audiences = Vec::new();
    for g in groups {
        audiences.push(audience::of_group(&conn, g).await.unwrap());
    }
    (told, audiences)
}

/// A fetch's worth of membership events applied together (a few statements
/// for the whole batch) leaves exactly what applying them one at a time does:
/// the same people told the same things in the same order, the audience as
/// the last change of each person left it — even someone who joined and left
/// within the batch — and nothing for or about someone erased.
async fn a_batch_of_membership_events_leaves_what_one_at_a_time_does(backend: Backend) {
    use selfhelp_proto::events::types;
    let groups: Vec<String> = (0..2).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut events = Vec::new();
    for i in 0..6 {
        let joined = ev::MemberJoined {
            membership_id: format!("m{i}"),
            group_id: groups[i % 2].clone(),
            person_id: format!("member-{i}"),
            version: 1,
            occurred_at: None,
        };
        events.push(membership_event(
            types::MEMBER_JOINED,
            &joined.membership_id,
            &joined,
        ));
    }
    let left = ev::MembershipChanged {
        membership_id: "m0".into(),
        group_id: groups[0].clone(),
        person_id: "member-0".into(),
        state: "LEFT".into(),
        previous_state: "ACTIVE".into(),
        version: 2,
        ..Default::default()
    };
    events.push(membership_event(types::MEMBER_LEFT, "m0", &left));
    // The same person in the other group: a second row of the audience.
    let joined = ev::MemberJoined {
        membership_id: "m6".into(),
        group_id: groups[1].clone(),
        person_id: "member-0".into(),
        version: 1,
        occurred_at: None,
    };
    events.push(membership_event(types::MEMBER_JOINED, "m6", &joined));

    let together = told_and_audience(&events, &groups, backend, true).await;
    let in_turn = told_and_audience(&events, &groups, backend, false).await;
    assert_eq!(together, in_turn, "{backend:?}");
    let (told, audiences) = together;
    // Seven joins: a welcome and an organiser's notice each, but no welcome
    // for member-5, who was erased.
    assert_eq!(told.len(), 13, "{backend:?}: {told:?}");
    assert!(!told.iter().any(|t| t.0 == "member-5"), "{backend:?}");
    let alice: Vec<&String> = told
        .iter()
        .filter(|t| t.0 == "alice")
        .map(|t| &t.3)
        .collect();
    let joins: Vec<&String> = events
        .iter()
        .filter(|e| e.ce_type == types::MEMBER_JOINED)
        .map(|e| &e.id)
        .collect();
    assert_eq!(
        alice, joins,
        "{backend:?}: alice told of each join, in order"
    );
    assert_eq!(audiences[0], vec!["member-2", "member-4"], "{backend:?}");
    assert_eq!(
        audiences[1],
        vec!["member-0", "member-1", "member-3"],
        "{backend:?}"
    );
}

per_backend!(a_batch_of_membership_events_leaves_what_one_at_a_time_does);

/// A skip or a swap tells the people it hands turns to or from, once each,
/// and not the one who asked for it.
async fn a_rota_change_tells_the_people_it_hands_turns_to(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Grief café Beeston", &["olive"]).await;
    let handover = |key: &str, from: &str, to: &str| ev::TurnHandover {
        meeting_key: key.into(),
        starts_at: None,
        from_person_id: from.into(),
        to_person_id: to.into(),
    };
    let changed = ev::RotaTurnsChanged {
        group_id: g.clone(),
        duty: "chair".into(),
        changed_by: "bob".into(),
        handovers: vec![
            handover("2026-12-23", "bob", "carol"),
            handover("2026-12-30", "carol", "bob"),
        ],
        occurred_at: None,
    };
    publish(&nats, MEMBERSHIP, "rota.turns_changed", &g, &changed).await;
    let told = eventually("Carol told", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            inbox(&mut c, "carol")
                .await
                .notifications
                .into_iter()
                .find(|n| n.kind() == pb::NotificationKind::RotaReminder)
        }
    })
    .await;
    assert!(
        told.body
            .contains("now down as chair at the Grief café Beeston meeting on 2026-12-23")
            && told.body.contains("no longer down as chair on 2026-12-30"),
        "{}",
        told.body
    );
    settle(&nats).await;
    assert_eq!(
        inbox(&mut client, "carol").await.notifications.len(),
        1,
        "once"
    );
    assert!(
        inbox(&mut client, "bob").await.notifications.is_empty(),
        "the one who asked is not told"
    );

    // A swap Bob asks of Carol tells her; her no tells him.
    let swap = |step: ev::SwapStep| ev::RotaSwapRequest {
        swap_id: "s1".into(),
        group_id: g.clone(),
        duty: "chair".into(),
        asked_by: "bob".into(),
        asked_of: "carol".into(),
        meeting_key: "2027-01-06".into(),
        other_meeting_key: "2027-01-13".into(),
        step: step as i32,
        ..Default::default()
    };
    publish(
        &nats,
        MEMBERSHIP,
        "rota.swap_request",
        &g,
        &swap(ev::SwapStep::Asked),
    )
    .await;
    publish(
        &nats,
        MEMBERSHIP,
        "rota.swap_request",
        &g,
        &swap(ev::SwapStep::Declined),
    )
    .await;
    let declined = eventually("Bob told of the no", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { inbox(&mut c, "bob").await.notifications.into_iter().next() }
    })
    .await;
    assert!(
        declined
            .body
            .contains("was declined: you are still down as chair on 2027-01-06"),
        "{}",
        declined.body
    );
    settle(&nats).await;
    let carols = inbox(&mut client, "carol").await.notifications;
    assert_eq!(carols.len(), 2, "the change and the ask");
    assert!(
        carols
            .iter()
            .any(|n| n.body.contains("you would take their turn on 2027-01-06")),
        "{carols:?}"
    );
    svc.stop().await.unwrap();
}

per_backend!(a_rota_change_tells_the_people_it_hands_turns_to);
