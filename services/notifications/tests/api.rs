//! The notifications service in-process over real gRPC/TCP, fed by real events on
//! a real nats-server, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

use std::time::Duration;

use selfhelp_notifications::{Config, SERVICE_NAME, run};
use selfhelp_platform::bus::{LISTINGS, MEMBERSHIP};
use selfhelp_platform::validation::violated_fields;
use selfhelp_proto::common::v1::PageRequest;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::notifications::v1 as pb;
use selfhelp_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use selfhelp_testkit::{
    Nats, RunningService, TestDb, backends, eventually, publish_event, token,
    wait_consumer_caught_up, with_token,
};
use tonic::Code;
use tonic::transport::Channel;

const REGION: &str = "notts";

async fn start(db: &TestDb, nats: &Nats) -> RunningService {
    let config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
    };
    RunningService::start(SERVICE_NAME, move |l, s| run(config, l, s)).await
}

async fn group_published(nats: &Nats, group_id: &str, name: &str, organisers: &[&str]) {
    let msg = ev::GroupPublished {
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
        }),
        occurred_at: None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    publish_event(
        &nats.url(),
        LISTINGS,
        REGION,
        "group.published",
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

#[tokio::test]
async fn a_join_tells_organiser_and_member_once_even_when_redelivered() {
    for backend in backends() {
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
        tokio::time::sleep(Duration::from_millis(300)).await;
        group_published(&nats, &group, "Diabetes support Nottingham", &["alice"]).await;
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

        // Marking read: only one's own.
        let alice = token("alice", REGION, &[]);
        let bob = token("bob", REGION, &[]);
        let id = n.id.clone();
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
}

#[tokio::test]
async fn inbox_is_newest_first_paginated_and_private() {
    for backend in backends() {
        let nats = Nats::start();
        let db = TestDb::new(backend).await;
        inbox_scenario(&db, &nats).await;
    }
}

async fn inbox_scenario(db: &TestDb, nats: &Nats) {
    let svc = start(db, nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let mut groups = Vec::new();
    for i in 0..3 {
        let g = uuid::Uuid::now_v7().to_string();
        group_published(nats, &g, &format!("Group {i}"), &["alice"]).await;
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
    group_published(&nats, &group, "Walk and talk", &["alice"]).await;

    nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
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
