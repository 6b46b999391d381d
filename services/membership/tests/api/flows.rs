//! Joining by approval and invitation, the waitlist, roles, privacy settings,
//! follows and archiving — each over real gRPC with listings beside membership.

use prost::Message;
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, eventually, join_request, per_backend, token, with_token};
use tonic::Code;

use super::{Env, REGION, as_person};

fn decide(id: &str, message: &str) -> pb::DecideRequestRequest {
    pb::DecideRequestRequest {
        membership_id: id.into(),
        message: message.into(),
    }
}

fn members(group_id: &str, states: &[pb::MembershipState]) -> pb::ListGroupMembersRequest {
    pb::ListGroupMembersRequest {
        group_id: group_id.into(),
        states: states.iter().map(|s| *s as i32).collect(),
        page: None,
    }
}

async fn approval_flow_with_a_question_a_yes_and_a_no(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Approval, 0).await;
    let settings =
        e.mc.update_group_settings(as_person(
            pb::UpdateGroupSettingsRequest {
                group_id: g.clone(),
                member_list_visibility: 0,
                join_question: "What would you like from the group?".into(),
            },
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        settings.member_list_visibility(),
        pb::MemberListVisibility::Organisers,
        "{backend:?}: the default keeps the list to organisers"
    );
    let asked =
        e.mc.get_group_settings(as_person(
            pb::GetGroupSettingsRequest {
                group_id: g.clone(),
            },
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.join_question, "What would you like from the group?");

    let mut ask = join_request(&g);
    ask.answer = "Company on bad days".into();
    ask.display_name = "B".into();
    let bob =
        e.mc.join_group(as_person(ask, "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(bob.state(), pb::MembershipState::Requested);
    let event = e.membership_event("requested").await;
    assert_eq!(
        (event.person_id.as_str(), event.state.as_str()),
        ("bob", "REQUESTED")
    );

    // Bob can neither approve himself nor see who else asked.
    let denied =
        e.mc.approve_request(as_person(decide(&bob.id, ""), "bob"))
            .await
            .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden =
        e.mc.list_group_members(as_person(
            members(&g, &[pb::MembershipState::Requested]),
            "bob",
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::PermissionDenied);

    let queue =
        e.mc.list_group_members(as_person(
            members(&g, &[pb::MembershipState::Requested]),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.members.len(), 1);
    assert_eq!(queue.members[0].answer, "Company on bad days");
    // A state named twice is one state; more than the eight there are, refused.
    let twice =
        e.mc.list_group_members(as_person(
            members(
                &g,
                &[
                    pb::MembershipState::Requested,
                    pb::MembershipState::Requested,
                ],
            ),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(twice.members.len(), 1);
    let too_many =
        e.mc.list_group_members(as_person(
            members(&g, &[pb::MembershipState::Requested; 9]),
            "alice",
        ))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(
        selfhelp_platform::bad_request::violated_fields(&too_many),
        vec!["states"]
    );
    assert_eq!(queue.members[0].person_id, "bob");

    let approved =
        e.mc.approve_request(as_person(
            decide(&bob.id, "Welcome, see you Tuesday"),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state(), pb::MembershipState::Active);
    let again =
        e.mc.approve_request(as_person(decide(&bob.id, ""), "alice"))
            .await
            .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "approved twice");
    let event = e.membership_event("approved").await;
    assert_eq!(event.message, "Welcome, see you Tuesday");

    // Carol is declined; she may ask again later.
    let carol =
        e.mc.join_group(as_person(join_request(&g), "carol"))
            .await
            .unwrap()
            .into_inner();
    let long = "x".repeat(1_001);
    let err =
        e.mc.decline_request(as_person(decide(&carol.id, &long), "alice"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["message"]);
    let declined =
        e.mc.decline_request(as_person(
            decide(&carol.id, "We are full of carers"),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declined.state(), pb::MembershipState::Declined);
    let late =
        e.mc.approve_request(as_person(decide(&carol.id, ""), "alice"))
            .await
            .unwrap_err();
    assert_eq!(
        late.code(),
        Code::FailedPrecondition,
        "declined, then approved"
    );
    let asked_again =
        e.mc.join_group(as_person(join_request(&g), "carol"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(asked_again.state(), pb::MembershipState::Requested);
    e.stop().await;
}

per_backend!(approval_flow_with_a_question_a_yes_and_a_no);

/// A group that came in by import has nobody to decide its join requests:
/// an operator of the region gives someone a single-use code to organise
/// it. Joining with it makes them its organiser whatever the policy (a
/// request waiting is answered by it), listings hears of them, and they
/// decide the requests. Only the region's operators make such codes, only
/// for a group nobody organises, and one works only while nobody does.
async fn staff_hand_an_imported_group_to_an_organiser(backend: Backend) {
    let mut e = Env::start(backend).await;
    let op = token("olu", REGION, &["operator"]);
    let doc = serde_json::json!({
        "id": "svc-imported-walkers",
        "name": "Imported walkers",
        "description": "Walks for people living with grief",
        "schedules": [{"freq": "WEEKLY", "byday": "SA", "opens_at": "10:00",
            "closes_at": "12:00", "attending_type": "Online", "interval": 1,
            "valid_from": "2026-01-03"}],
    });
    let imported =
        e.lc.import_open_referral(with_token(
            lpb::ImportOpenReferralRequest {
                services_json: vec![doc.to_string()],
                dry_run: false,
            },
            &op,
        ))
        .await
        .unwrap()
        .into_inner();
    let g = imported.results[0].group_id.clone();
    assert_eq!(
        imported.results[0].outcome(),
        lpb::ImportOutcome::Imported,
        "{backend:?}: {imported:?}"
    );
    e.seen_by_membership("group.published", &g).await;
    let organise = |max_uses: i32, person_id: &str| pb::CreateInvitationRequest {
        group_id: g.clone(),
        person_id: person_id.into(),
        max_uses,
        organiser: true,
        ..Default::default()
    };

    // Only operators of this region, and a code for one person.
    for t in [
        token("alice", REGION, &[]),
        token("olu", "leeds", &["operator"]),
    ] {
        let refused =
            e.mc.create_invitation(with_token(organise(1, ""), &t))
                .await
                .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    for (request, field) in [
        (organise(3, ""), "max_uses"),
        (organise(1, "bob"), "person_id"),
    ] {
        let refused =
            e.mc.create_invitation(with_token(request, &op))
                .await
                .unwrap_err();
        assert_eq!(violated_fields(&refused), vec![field]);
    }
    let for_bob =
        e.mc.create_invitation(with_token(organise(1, ""), &op))
            .await
            .unwrap()
            .into_inner();
    let for_dan =
        e.mc.create_invitation(with_token(organise(0, ""), &op))
            .await
            .unwrap()
            .into_inner();
    assert!(for_bob.organiser && for_bob.code.len() == 12);

    // Bob and Dan ask to join (the import asks for approval); nobody can say yes.
    for who in ["bob", "dan"] {
        let asked =
            e.mc.join_group(as_person(join_request(&g), who))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(asked.state(), pb::MembershipState::Requested);
    }
    let with_code = |code: &str| {
        let mut r = join_request(&g);
        r.invitation_code = code.into();
        r
    };
    let bob =
        e.mc.join_group(as_person(with_code(&for_bob.code), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        (bob.state(), bob.role()),
        (pb::MembershipState::Active, pb::GroupRole::Organiser)
    );
    let used =
        e.mc.join_group(as_person(with_code(&for_bob.code), "carol"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&used), vec!["invitation_code"], "used once");

    // Listings hears of its organiser; the group now has one, so staff make
    // no more such codes.
    let reader = e.lc.clone();
    eventually(
        "listings names Bob organiser",
        std::time::Duration::from_secs(20),
        || {
            let (mut lc, g) = (reader.clone(), g.clone());
            async move {
                let group = lc
                    .get_group(with_token(
                        lpb::GetGroupRequest { group_id: g },
                        &token("bob", REGION, &[]),
                    ))
                    .await
                    .ok()?
                    .into_inner();
                group
                    .organiser_ids
                    .contains(&"bob".to_string())
                    .then_some(())
            }
        },
    )
    .await;
    let refused =
        e.mc.create_invitation(with_token(organise(1, ""), &op))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // Bob says yes to Dan. The second code, made while nobody organised the
    // group, hands over nothing now that Bob does.
    let waiting =
        e.mc.list_group_members(as_person(
            members(&g, &[pb::MembershipState::Requested]),
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    let dan_request = waiting.members[0].id.clone();
    let dan =
        e.mc.approve_request(as_person(decide(&dan_request, "Welcome"), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(dan.state(), pb::MembershipState::Active);
    let late =
        e.mc.join_group(as_person(with_code(&for_dan.code), "dan"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&late), vec!["invitation_code"], "{late:?}");
    let dan =
        e.mc.list_my_memberships(as_person(
            pb::ListMyMembershipsRequest { page: None },
            "dan",
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .into_iter()
        .find(|m| m.group_id == g)
        .unwrap();
    assert_eq!(dan.role(), pb::GroupRole::Member, "still a member");
    e.stop().await;
}

per_backend!(staff_hand_an_imported_group_to_an_organiser);

async fn invitations_by_code_and_in_person(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::InviteOnly, 0).await;
    let invite = |person_id: &str, max_uses: i32| pb::CreateInvitationRequest {
        group_id: g.clone(),
        person_id: person_id.into(),
        max_uses,
        valid_hours: 0,
        organiser: false,
    };
    let code =
        e.mc.create_invitation(as_person(invite("", 1), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(code.code.len(), 12, "{backend:?}");
    let with_code = |code: &str| {
        let mut r = join_request(&g);
        r.invitation_code = code.into();
        r
    };
    let bob =
        e.mc.join_group(as_person(with_code(&code.code), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(bob.state(), pb::MembershipState::Active);
    let reused =
        e.mc.join_group(as_person(with_code(&code.code), "carol"))
            .await
            .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&reused), vec!["invitation_code"]);
    let unknown =
        e.mc.join_group(as_person(with_code("NOSUCHCODE23"), "carol"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&unknown), vec!["invitation_code"]);

    // A multi-use code, then expired (its expiry moved into the past in the database).
    let shared =
        e.mc.create_invitation(as_person(invite("", 5), "alice"))
            .await
            .unwrap()
            .into_inner();
    let db = sea_orm::Database::connect(&e.mdb.url).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&format!(
        "UPDATE invitation SET expires_at_ms = 1 WHERE id = '{}'",
        shared.id
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let expired =
        e.mc.join_group(as_person(with_code(&shared.code), "carol"))
            .await
            .unwrap_err();
    assert_eq!(expired.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&expired), vec!["invitation_code"]);

    // A personal invitation: Dave is INVITED, and joins without a code.
    let personal =
        e.mc.create_invitation(as_person(invite("dave", 0), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert!(personal.code.is_empty());
    let mine =
        e.mc.list_my_memberships(as_person(
            pb::ListMyMembershipsRequest { page: None },
            "dave",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.memberships[0].state(), pb::MembershipState::Invited);
    e.outside
        .expect(&format!("selfhelp.{REGION}.membership.member.invited"))
        .await;
    let dave =
        e.mc.join_group(as_person(join_request(&g), "dave"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(dave.state(), pb::MembershipState::Active);

    // A personal invitation expires too; inviting again renews it.
    e.mc.create_invitation(as_person(invite("erin", 0), "alice"))
        .await
        .unwrap();
    let db = sea_orm::Database::connect(&e.mdb.url).await.unwrap();
    db.execute_unprepared("UPDATE invitation SET expires_at_ms = 1 WHERE person_id = 'erin'")
        .await
        .unwrap();
    db.close().await.unwrap();
    let stale =
        e.mc.join_group(as_person(join_request(&g), "erin"))
            .await
            .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    e.mc.create_invitation(as_person(invite("erin", 0), "alice"))
        .await
        .unwrap();
    let erin =
        e.mc.join_group(as_person(join_request(&g), "erin"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(erin.state(), pb::MembershipState::Active);

    // An invitation can be withdrawn: Frank's membership is then REMOVED.
    e.mc.create_invitation(as_person(invite("frank", 0), "alice"))
        .await
        .unwrap();
    let frank = e.my_membership("frank").await;
    let withdrawn =
        e.mc.remove_member(as_person(
            pb::RemoveMemberRequest {
                membership_id: frank.id,
                ban: false,
                message: String::new(),
            },
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.state(), pb::MembershipState::Removed);

    // Members cannot hand out invitations; bad numbers are named.
    let member =
        e.mc.create_invitation(as_person(invite("", 1), "bob"))
            .await
            .unwrap_err();
    assert_eq!(member.code(), Code::PermissionDenied);
    let mut bad = invite("", 5_000);
    bad.valid_hours = -1;
    let err =
        e.mc.create_invitation(as_person(bad, "alice"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["max_uses", "valid_hours"]);
    e.stop().await;
}

per_backend!(invitations_by_code_and_in_person);

async fn a_full_group_waitlists_and_promotes_in_order(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 2).await;
    let mut states = Vec::new();
    for person in ["bob", "carol", "dave", "erin"] {
        let m =
            e.mc.join_group(as_person(join_request(&g), person))
                .await
                .unwrap()
                .into_inner();
        states.push((m.state(), m.waitlist_position));
    }
    use pb::MembershipState::{Active, Waitlisted};
    assert_eq!(
        states,
        vec![(Active, 0), (Active, 0), (Waitlisted, 1), (Waitlisted, 2)],
        "{backend:?}"
    );

    let left =
        e.mc.leave_group(as_person(
            pb::LeaveGroupRequest {
                group_id: g.clone(),
            },
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.state(), pb::MembershipState::Left);
    let event = e.membership_event("promoted").await;
    assert_eq!(
        (event.person_id.as_str(), event.state.as_str()),
        ("dave", "ACTIVE")
    );
    let erin = e.my_membership("erin").await;
    assert_eq!((erin.state(), erin.waitlist_position), (Waitlisted, 1));

    // Bob comes back: the group is full again, so he queues behind Erin.
    let back =
        e.mc.join_group(as_person(join_request(&g), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!((back.state(), back.waitlist_position), (Waitlisted, 2));
    // Leaving twice is refused, as is leaving a group one never joined.
    let carol_leaves =
        e.mc.leave_group(as_person(
            pb::LeaveGroupRequest {
                group_id: g.clone(),
            },
            "carol",
        ))
        .await;
    assert!(carol_leaves.is_ok());
    let erin = e.my_membership("erin").await;
    assert_eq!(erin.state(), Active, "carol's place went to erin");
    let again =
        e.mc.leave_group(as_person(
            pb::LeaveGroupRequest {
                group_id: g.clone(),
            },
            "carol",
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let stranger =
        e.mc.leave_group(as_person(pb::LeaveGroupRequest { group_id: g }, "zoe"))
            .await
            .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    e.stop().await;
}

per_backend!(a_full_group_waitlists_and_promotes_in_order);

async fn roles_duties_removal_and_the_last_organiser(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 0).await;
    let mut ids = std::collections::HashMap::new();
    for person in ["alice", "bob", "carol"] {
        let m =
            e.mc.join_group(as_person(join_request(&g), person))
                .await
                .unwrap()
                .into_inner();
        ids.insert(person, m.id);
    }
    let leave = pb::LeaveGroupRequest {
        group_id: g.clone(),
    };
    let only =
        e.mc.leave_group(as_person(leave.clone(), "alice"))
            .await
            .unwrap_err();
    assert_eq!(only.code(), Code::FailedPrecondition, "{backend:?}");

    let assign = |id: &str, role: pb::GroupRole, duties: &[&str]| pb::AssignRoleRequest {
        membership_id: id.into(),
        role: role.into(),
        duties: duties.iter().map(|d| d.to_string()).collect(),
    };
    let bad =
        e.mc.assign_role(as_person(
            assign(
                &ids["bob"],
                pb::GroupRole::Unspecified,
                &["tea", "Tea", " "],
            ),
            "alice",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        vec!["role", "duties[1]", "duties[2]"]
    );
    let bob =
        e.mc.assign_role(as_person(
            assign(
                &ids["bob"],
                pb::GroupRole::CoOrganiser,
                &["chair", "greeter"],
            ),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bob.role(), pb::GroupRole::CoOrganiser);
    assert_eq!(bob.duties, vec!["chair", "greeter"]);
    let changed = e
        .outside
        .expect_matching(
            &format!("selfhelp.{REGION}.membership.member.role_changed"),
            |m| {
                ev::MemberRoleChanged::decode(m.payload.clone())
                    .unwrap()
                    .person_id
                    == "bob"
            },
        )
        .await;
    let event = ev::MemberRoleChanged::decode(changed.payload.clone()).unwrap();
    assert_eq!(event.role, "CO_ORGANISER");
    // Listings learns that Bob may now edit the listing.
    let alice_token = token("alice", REGION, &[]);
    eventually(
        "listings to list bob as an organiser",
        std::time::Duration::from_secs(20),
        || {
            let mut lc = e.lc.clone();
            let req = with_token(
                lpb::GetGroupRequest {
                    group_id: g.clone(),
                },
                &alice_token,
            );
            async move {
                let group = lc.get_group(req).await.ok()?.into_inner();
                group
                    .organiser_ids
                    .contains(&"bob".to_string())
                    .then_some(())
            }
        },
    )
    .await;

    // A co-organiser manages members but not roles, and not other organisers.
    let no_roles =
        e.mc.assign_role(as_person(
            assign(&ids["carol"], pb::GroupRole::CoOrganiser, &[]),
            "bob",
        ))
        .await
        .unwrap_err();
    assert_eq!(no_roles.code(), Code::PermissionDenied);
    let remove = |id: &str, ban: bool| pb::RemoveMemberRequest {
        membership_id: id.into(),
        ban,
        message: String::new(),
    };
    let not_alice =
        e.mc.remove_member(as_person(remove(&ids["alice"], false), "bob"))
            .await
            .unwrap_err();
    assert_eq!(not_alice.code(), Code::PermissionDenied);
    let banned =
        e.mc.remove_member(as_person(remove(&ids["carol"], true), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(banned.state(), pb::MembershipState::Banned);
    let refused =
        e.mc.join_group(as_person(join_request(&g), "carol"))
            .await
            .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "a banned person cannot rejoin"
    );

    // Alice hands over and may then leave; Bob's role ends with his membership.
    e.mc.assign_role(as_person(
        assign(&ids["bob"], pb::GroupRole::Organiser, &["chair"]),
        "alice",
    ))
    .await
    .unwrap();
    let gone =
        e.mc.leave_group(as_person(leave, "alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        (gone.state(), gone.role()),
        (pb::MembershipState::Left, pb::GroupRole::Member)
    );
    e.stop().await;
}

per_backend!(roles_duties_removal_and_the_last_organiser);

async fn member_lists_respect_settings_hiding_and_consent(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 0).await;
    for person in ["alice", "bob", "carol"] {
        let mut r = join_request(&g);
        r.display_name = format!("{person} (pseudonym)");
        e.mc.join_group(as_person(r, person)).await.unwrap();
    }
    let list = |person: &str| as_person(members(&g, &[]), person);
    assert_eq!(
        e.mc.list_group_members(list("bob"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied,
        "{backend:?}: members do not see the list by default"
    );
    e.mc.update_group_settings(as_person(
        pb::UpdateGroupSettingsRequest {
            group_id: g.clone(),
            member_list_visibility: pb::MemberListVisibility::Members.into(),
            join_question: String::new(),
        },
        "alice",
    ))
    .await
    .unwrap();
    e.mc.update_my_membership(as_person(
        pb::UpdateMyMembershipRequest {
            group_id: g.clone(),
            display_name: None,
            hidden: Some(true),
        },
        "carol",
    ))
    .await
    .unwrap();
    let seen_by_bob =
        e.mc.list_group_members(list("bob"))
            .await
            .unwrap()
            .into_inner();
    let names: Vec<_> = seen_by_bob
        .members
        .iter()
        .map(|m| m.display_name.as_str())
        .collect();
    assert_eq!(names, vec!["alice (pseudonym)", "bob (pseudonym)"]);
    assert!(
        seen_by_bob.members.iter().all(|m| m.person_id.is_empty()),
        "fellow members see no account ids"
    );
    let seen_by_alice =
        e.mc.list_group_members(list("alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        seen_by_alice.members.len(),
        3,
        "organisers see hidden members"
    );

    // Carol's data, then her consent withdrawn: the membership ends.
    let export =
        e.mc.export_my_data(as_person(pb::ExportMyDataRequest {}, "carol"))
            .await
            .unwrap()
            .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert_eq!(doc["memberships"][0]["group_id"], g.as_str());
    assert_eq!(doc["memberships"][0]["display_name"], "carol (pseudonym)");
    assert_eq!(doc["consents"][0]["version"], "test-1");
    assert!(doc["consents"][0]["withdrawn_at"].is_null());
    assert!(!export.json.contains("\"bob\""), "nobody else's data");
    let ended =
        e.mc.withdraw_consent(as_person(
            pb::WithdrawConsentRequest {
                group_id: g.clone(),
            },
            "carol",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.state(), pb::MembershipState::Left);
    let event = e.membership_event("ended").await;
    assert_eq!(event.reason, "CONSENT_WITHDRAWN");
    let export =
        e.mc.export_my_data(as_person(pb::ExportMyDataRequest {}, "carol"))
            .await
            .unwrap()
            .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&export.json).unwrap();
    assert!(doc["consents"][0]["withdrawn_at"].is_string());
    e.stop().await;
}

per_backend!(member_lists_respect_settings_hiding_and_consent);

async fn following_without_joining_and_archiving_ends_memberships(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 0).await;
    let follow = pb::FollowGroupRequest {
        group_id: g.clone(),
    };
    let f =
        e.mc.follow_group(as_person(follow.clone(), "zoe"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(f.group_id, g, "{backend:?}");
    e.mc.follow_group(as_person(follow.clone(), "zoe"))
        .await
        .unwrap();
    let mine =
        e.mc.list_my_follows(as_person(pb::ListMyFollowsRequest { page: None }, "zoe"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(mine.follows.len(), 1);
    // How many follow it: told to its organiser, not to the follower or anyone else.
    let reader = e.mc.clone();
    let followers = |person: &'static str| {
        let mut mc = reader.clone();
        let g = g.clone();
        async move {
            mc.get_group_settings(as_person(
                pb::GetGroupSettingsRequest { group_id: g },
                person,
            ))
            .await
            .unwrap()
            .into_inner()
            .followers
        }
    };
    assert_eq!(
        followers("alice").await,
        1,
        "counted once however often followed"
    );
    assert_eq!(followers("zoe").await, 0);
    assert_eq!(followers("mallory").await, 0);
    let memberships =
        e.mc.list_my_memberships(as_person(
            pb::ListMyMembershipsRequest { page: None },
            "zoe",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        memberships.memberships.is_empty(),
        "following is not joining"
    );
    e.mc.unfollow_group(as_person(follow.clone(), "zoe"))
        .await
        .unwrap();
    assert_eq!(followers("alice").await, 0, "an unfollow is counted off");
    // Events leave in the order they were written, so by the time the stop
    // arrives, a second start would have arrived before it.
    e.outside
        .expect(&format!("selfhelp.{REGION}.membership.follow.stopped"))
        .await;
    assert_eq!(
        e.outside
            .seen_on(&format!("selfhelp.{REGION}.membership.follow.started")),
        1,
        "following twice is one follow"
    );

    // A draft cannot be followed (once membership has heard of it; before,
    // it does not exist for anyone but its organisers: NOT_FOUND).
    let draft = super::create_group(&mut e.lc, "alice", lpb::JoinPolicy::Open, false).await;
    e.seen_by_membership("group.created", &draft.id).await;
    let err =
        e.mc.follow_group(as_person(
            pb::FollowGroupRequest { group_id: draft.id },
            "zoe",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Archiving the group ends Bob's membership, with an event.
    e.mc.join_group(as_person(join_request(&g), "bob"))
        .await
        .unwrap();
    e.lc.archive_group(with_token(
        lpb::ArchiveGroupRequest {
            group_id: g.clone(),
            reason: "The group has stopped meeting".into(),
        },
        &token("alice", REGION, &[]),
    ))
    .await
    .unwrap();
    let event = e.membership_event("ended").await;
    assert_eq!(
        (event.person_id.as_str(), event.reason.as_str()),
        ("bob", "GROUP_ARCHIVED")
    );
    let bob = e.my_membership("bob").await;
    assert_eq!(bob.state(), pb::MembershipState::Left);
    let closed =
        e.mc.join_group(as_person(join_request(&g), "bob"))
            .await
            .unwrap_err();
    assert_eq!(closed.code(), Code::FailedPrecondition);
    e.stop().await;
}

per_backend!(following_without_joining_and_archiving_ends_memberships);

/// Eight joins at once for two places. On PostgreSQL they run on separate
/// connections at the same time, so this checks the group lock that keeps
/// them from overfilling it; on SQLite writes take turns anyway, so there it
/// checks only the counting.
async fn simultaneous_joins_never_overfill_a_group(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 2).await;
    let joins = (0..8).map(|i| {
        let mut mc = e.mc.clone();
        let g = g.clone();
        tokio::spawn(async move {
            mc.join_group(as_person(join_request(&g), &format!("p{i}")))
                .await
                .map(|r| r.into_inner().state())
        })
    });
    let mut states = Vec::new();
    for join in joins.collect::<Vec<_>>() {
        states.push(join.await.unwrap().unwrap());
    }
    let active = states
        .iter()
        .filter(|s| **s == pb::MembershipState::Active)
        .count();
    assert_eq!(active, 2, "{backend:?}: {states:?}");
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == pb::MembershipState::Waitlisted)
            .count(),
        6
    );
    e.stop().await;
}

per_backend!(simultaneous_joins_never_overfill_a_group);
