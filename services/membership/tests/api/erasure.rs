//! Erasure with listings running beside membership: membership forgets at once,
//! listings confirms through NATS, and the missing service shows as overdue.

use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, eventually, join_request, per_backend, token, with_token};
use std::time::Duration;
use tonic::Code;

use super::{Env, REGION, as_person};

async fn erasure_forgets_at_once_and_records_each_service(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 1).await;
    let bob =
        e.mc.join_group(as_person(join_request(&g), "bob"))
            .await
            .unwrap()
            .into_inner();
    e.mc.follow_group(as_person(
        pb::FollowGroupRequest {
            group_id: g.clone(),
        },
        "bob",
    ))
    .await
    .unwrap();
    let carol =
        e.mc.join_group(as_person(join_request(&g), "carol"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        carol.state(),
        pb::MembershipState::Waitlisted,
        "{backend:?}"
    );

    let none =
        e.mc.get_erasure_status(as_person(pb::GetErasureStatusRequest {}, "bob"))
            .await
            .unwrap_err();
    assert_eq!(none.code(), Code::NotFound);
    let unconfirmed =
        e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: false }, "bob"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&unconfirmed), vec!["confirm"]);

    let status =
        e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: true }, "bob"))
            .await
            .unwrap()
            .into_inner();
    assert!(!status.complete);
    // Gone here at once; Carol has Bob's place.
    let export =
        e.mc.export_my_data(as_person(pb::ExportMyDataRequest {}, "bob"))
            .await
            .unwrap()
            .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    for part in ["memberships", "consents", "follows"] {
        assert_eq!(doc[part], serde_json::json!([]), "{part}");
    }
    assert_eq!(
        e.my_membership("carol").await.state(),
        pb::MembershipState::Active
    );
    let db = sea_orm::Database::connect(&e.mdb.url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    for (table, column) in [
        ("membership", "person_id"),
        ("consent", "person_id"),
        ("follow", "person_id"),
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = 'bob'");
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{table}");
    }
    db.close().await.unwrap();
    assert!(
        e.mc.list_my_memberships(as_person(
            pb::ListMyMembershipsRequest { page: None },
            "bob"
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .iter()
        .all(|m| m.id != bob.id)
    );

    // Membership and listings confirm through NATS; notifications and the
    // gateway are not here.
    let status = eventually(
        "listings and membership to confirm",
        Duration::from_secs(30),
        || {
            let mut mc = e.mc.clone();
            async move {
                let s = mc
                    .get_erasure_status(as_person(pb::GetErasureStatusRequest {}, "bob"))
                    .await
                    .ok()?
                    .into_inner();
                (s.waiting_for == ["gateway", "notifications"]).then_some(s)
            }
        },
    )
    .await;
    let mut confirmed: Vec<_> = status
        .confirmations
        .iter()
        .map(|c| c.service.as_str())
        .collect();
    confirmed.sort();
    assert_eq!(confirmed, vec!["listings", "membership"]);

    // Overdue (due at once in this test): operators of the region see it,
    // without any person id; nobody else does.
    let op = token("op", REGION, &["operator"]);
    let overdue =
        e.mc.list_overdue_erasures(with_token(
            pb::ListOverdueErasuresRequest { page: None },
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.requests.len(), 1);
    assert_eq!(overdue.requests[0].request_id, status.request_id);
    assert_eq!(
        overdue.requests[0].waiting_for,
        vec!["gateway", "notifications"]
    );
    for who in [
        token("bob", REGION, &[]),
        token("op2", "leeds", &["operator"]),
    ] {
        let denied =
            e.mc.list_overdue_erasures(with_token(
                pb::ListOverdueErasuresRequest { page: None },
                &who,
            ))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    e.stop().await;
}

per_backend!(erasure_forgets_at_once_and_records_each_service);
