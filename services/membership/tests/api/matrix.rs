//! Who may do what: every RPC that touches a group's members, asked by each kind
//! of caller. Membership data is special-category: the default answer is no.

use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{backends, join_request, token, with_token};
use tonic::Code;

use super::{Env, REGION};

#[derive(Debug, Clone, Copy)]
enum Who {
    Anonymous,
    Themself,
    AnotherMember,
    CoOrganiser,
    Organiser,
    OperatorHere,
    OperatorElsewhere,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::Themself,
    Who::AnotherMember,
    Who::CoOrganiser,
    Who::Organiser,
    Who::OperatorHere,
    Who::OperatorElsewhere,
];

fn request<T>(message: T, who: Who) -> tonic::Request<T> {
    let t = match who {
        Who::Anonymous => return tonic::Request::new(message),
        Who::Themself => token("pat", REGION, &[]),
        Who::AnotherMember => token("max", REGION, &[]),
        Who::CoOrganiser => token("cory", REGION, &[]),
        Who::Organiser => token("olive", REGION, &[]),
        Who::OperatorHere => token("op", REGION, &["operator"]),
        Who::OperatorElsewhere => token("op2", "leeds", &["operator"]),
    };
    with_token(message, &t)
}

/// The code each caller gets, in the order of `EVERYONE`.
fn expect(allowed: &[bool; 7], results: &[Code]) {
    for ((who, ok), got) in EVERYONE.iter().zip(allowed).zip(results) {
        let want = match who {
            Who::Anonymous => Code::Unauthenticated,
            _ if *ok => Code::Ok,
            _ => Code::PermissionDenied,
        };
        assert_eq!(*got, want, "{who:?}");
    }
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

#[tokio::test]
async fn permission_matrix() {
    for backend in backends() {
        let mut e = Env::start(backend).await;
        let g = e.group("olive", lpb::JoinPolicy::Open, 0).await;
        let mut ids = std::collections::HashMap::new();
        for person in ["olive", "cory", "pat", "max"] {
            let m =
                e.mc.join_group(with_token(join_request(&g), &token(person, REGION, &[])))
                    .await
                    .unwrap()
                    .into_inner();
            ids.insert(person, m.id);
        }
        e.mc.assign_role(with_token(
            pb::AssignRoleRequest {
                membership_id: ids["cory"].clone(),
                role: pb::GroupRole::CoOrganiser.into(),
                duties: vec![],
            },
            &token("olive", REGION, &[]),
        ))
        .await
        .unwrap();

        //                      anon  self   other  co     org    op     op-else
        let organisers_only = [false, false, false, true, true, false, false];
        let organiser_alone = [false, false, false, false, true, false, false];
        let anyone_here = [false, true, true, true, true, true, false];

        let mut codes = Vec::new();
        for who in EVERYONE {
            let r =
                e.mc.list_group_members(request(
                    pb::ListGroupMembersRequest {
                        group_id: g.clone(),
                        states: vec![],
                        page: None,
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        expect(&organisers_only, &codes);

        codes.clear();
        for who in EVERYONE {
            let r =
                e.mc.create_invitation(request(
                    pb::CreateInvitationRequest {
                        group_id: g.clone(),
                        ..Default::default()
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        expect(&organisers_only, &codes);

        codes.clear();
        for who in EVERYONE {
            let r =
                e.mc.update_group_settings(request(
                    pb::UpdateGroupSettingsRequest {
                        group_id: g.clone(),
                        member_list_visibility: 0,
                        join_question: "Why?".into(),
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        expect(&organisers_only, &codes);

        codes.clear();
        for who in EVERYONE {
            let r =
                e.mc.get_group_settings(request(
                    pb::GetGroupSettingsRequest {
                        group_id: g.clone(),
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        expect(&anyone_here, &codes);

        // Role changes: only the organiser. (Same role and duties each time: the
        // allowed call changes nothing the next callers depend on.)
        codes.clear();
        for who in EVERYONE {
            let r =
                e.mc.assign_role(request(
                    pb::AssignRoleRequest {
                        membership_id: ids["pat"].clone(),
                        role: pb::GroupRole::Member.into(),
                        duties: vec!["tea".into()],
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        expect(&organiser_alone, &codes);

        // Approving a request: organisers only. Pat asks to rejoin as a request in
        // a second, approval group where the same people hold the same roles.
        let g2 = e.group("olive", lpb::JoinPolicy::Approval, 0).await;
        let cory_asks =
            e.mc.join_group(with_token(join_request(&g2), &token("cory", REGION, &[])))
                .await
                .unwrap()
                .into_inner();
        let too_early =
            e.mc.assign_role(with_token(
                pb::AssignRoleRequest {
                    membership_id: cory_asks.id,
                    role: pb::GroupRole::CoOrganiser.into(),
                    duties: vec![],
                },
                &token("olive", REGION, &[]),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            too_early.code(),
            Code::FailedPrecondition,
            "no role before approval"
        );
        codes.clear();
        let pat_request =
            e.mc.join_group(with_token(join_request(&g2), &token("pat", REGION, &[])))
                .await
                .unwrap()
                .into_inner();
        for who in EVERYONE {
            let r =
                e.mc.decline_request(request(
                    pb::DecideRequestRequest {
                        membership_id: pat_request.id.clone(),
                        message: String::new(),
                    },
                    who,
                ))
                .await;
            codes.push(code(r));
        }
        // In g2 Cory has only asked to join, so holds no role there yet.
        expect(&organiser_alone, &codes);

        // A person's own memberships: each sees only theirs; no one else's.
        let theirs =
            e.mc.list_my_memberships(request(
                pb::ListMyMembershipsRequest { page: None },
                Who::Themself,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(theirs.memberships.iter().all(|m| m.person_id == "pat"));
        let operator =
            e.mc.list_my_memberships(request(
                pb::ListMyMembershipsRequest { page: None },
                Who::OperatorHere,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            operator.memberships.is_empty(),
            "an operator sees no one's memberships"
        );
        let elsewhere =
            e.mc.export_my_data(request(pb::ExportMyDataRequest {}, Who::OperatorElsewhere))
                .await
                .unwrap_err();
        assert_eq!(elsewhere.code(), Code::PermissionDenied);

        // Removing: the co-organiser may remove a member, not the organiser.
        let removing = |id: &str| pb::RemoveMemberRequest {
            membership_id: id.into(),
            ban: false,
            message: String::new(),
        };
        codes.clear();
        for who in [
            Who::Anonymous,
            Who::Themself,
            Who::AnotherMember,
            Who::OperatorHere,
            Who::OperatorElsewhere,
        ] {
            codes.push(code(
                e.mc.remove_member(request(removing(&ids["pat"]), who))
                    .await,
            ));
        }
        assert_eq!(
            codes,
            vec![
                Code::Unauthenticated,
                Code::PermissionDenied,
                Code::PermissionDenied,
                Code::PermissionDenied,
                Code::PermissionDenied
            ],
            "{backend:?}"
        );
        assert_eq!(
            code(
                e.mc.remove_member(request(removing(&ids["olive"]), Who::CoOrganiser))
                    .await
            ),
            Code::PermissionDenied
        );
        assert_eq!(
            code(
                e.mc.remove_member(request(removing(&ids["pat"]), Who::CoOrganiser))
                    .await
            ),
            Code::Ok
        );
        e.stop().await;
    }
}
