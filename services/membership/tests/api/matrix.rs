//! Who may do what: every RPC that touches a group's members, asked by each kind
//! of caller. Membership data is special-category: the default answer is no.

use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, join_request, per_backend, token, with_token};
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

async fn permission_matrix(backend: Backend) {
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

    // Messages to the members: organisers and co-organisers only.
    codes.clear();
    for who in EVERYONE {
        let r =
            e.mc.send_announcement(request(
                pb::SendAnnouncementRequest {
                    group_id: g.clone(),
                    title: "Hello".into(),
                    body: "All welcome".into(),
                    include_followers: false,
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

    // Rotas: organisers and co-organisers set them; every member sees them.
    codes.clear();
    for who in EVERYONE {
        let r =
            e.mc.set_rota(request(
                pb::SetRotaRequest {
                    group_id: g.clone(),
                    duty: "tea".into(),
                    volunteer_person_ids: vec!["pat".into(), "max".into()],
                },
                who,
            ))
            .await;
        codes.push(code(r));
    }
    expect(&organisers_only, &codes);
    let members_here = [false, true, true, true, true, false, false];
    codes.clear();
    for who in EVERYONE {
        let r =
            e.mc.get_rota(request(
                pb::GetRotaRequest {
                    group_id: g.clone(),
                    duty: String::new(),
                    meetings: 0,
                },
                who,
            ))
            .await;
        codes.push(code(r));
    }
    expect(&members_here, &codes);

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

per_backend!(permission_matrix);

/// Calls every RPC of the service as `who`, with well-formed requests about the
/// group `g` and the membership `m`; returns each RPC's status code.
async fn every_rpc(
    mc: &mut selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient<
        tonic::transport::Channel,
    >,
    who: Who,
    g: &str,
    m: &str,
) -> Vec<(&'static str, Code)> {
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $method:ident, $req:expr) => {
            out.push(($name, code(mc.$method(request($req, who)).await)));
        };
    }
    let group = || g.to_string();
    let membership = || m.to_string();
    call!("JoinGroup", join_group, join_request(g));
    call!(
        "ListMyMemberships",
        list_my_memberships,
        pb::ListMyMembershipsRequest { page: None }
    );
    call!(
        "GetMyPlace",
        get_my_place,
        pb::GetMyPlaceRequest { group_id: group() }
    );
    let decide = || pb::DecideRequestRequest {
        membership_id: membership(),
        message: String::new(),
    };
    call!("ApproveRequest", approve_request, decide());
    call!("DeclineRequest", decline_request, decide());
    call!(
        "CreateInvitation",
        create_invitation,
        pb::CreateInvitationRequest {
            group_id: group(),
            ..Default::default()
        }
    );
    call!(
        "LeaveGroup",
        leave_group,
        pb::LeaveGroupRequest { group_id: group() }
    );
    call!(
        "RemoveMember",
        remove_member,
        pb::RemoveMemberRequest {
            membership_id: membership(),
            ban: false,
            message: String::new()
        }
    );
    call!(
        "AssignRole",
        assign_role,
        pb::AssignRoleRequest {
            membership_id: membership(),
            role: pb::GroupRole::Member.into(),
            duties: vec![]
        }
    );
    call!(
        "ListGroupMembers",
        list_group_members,
        pb::ListGroupMembersRequest {
            group_id: group(),
            states: vec![],
            page: None
        }
    );
    call!(
        "UpdateMyMembership",
        update_my_membership,
        pb::UpdateMyMembershipRequest {
            group_id: group(),
            display_name: None,
            hidden: Some(true)
        }
    );
    call!(
        "GetGroupSettings",
        get_group_settings,
        pb::GetGroupSettingsRequest { group_id: group() }
    );
    call!(
        "UpdateGroupSettings",
        update_group_settings,
        pb::UpdateGroupSettingsRequest {
            group_id: group(),
            member_list_visibility: 0,
            join_question: String::new()
        }
    );
    call!(
        "FollowGroup",
        follow_group,
        pb::FollowGroupRequest { group_id: group() }
    );
    call!(
        "UnfollowGroup",
        unfollow_group,
        pb::FollowGroupRequest { group_id: group() }
    );
    call!(
        "ListMyFollows",
        list_my_follows,
        pb::ListMyFollowsRequest { page: None }
    );
    call!(
        "SendAnnouncement",
        send_announcement,
        pb::SendAnnouncementRequest {
            group_id: group(),
            title: "Hello".into(),
            body: "All welcome".into(),
            include_followers: false
        }
    );
    call!(
        "WithdrawConsent",
        withdraw_consent,
        pb::WithdrawConsentRequest { group_id: group() }
    );
    call!("ExportMyData", export_my_data, pb::ExportMyDataRequest {});
    call!(
        "SetRota",
        set_rota,
        pb::SetRotaRequest {
            group_id: group(),
            duty: "chair".into(),
            volunteer_person_ids: vec!["pat".into()]
        }
    );
    call!(
        "GetRota",
        get_rota,
        pb::GetRotaRequest {
            group_id: group(),
            duty: String::new(),
            meetings: 0
        }
    );
    call!(
        "SkipMyTurn",
        skip_my_turn,
        pb::SkipMyTurnRequest {
            group_id: group(),
            duty: "chair".into(),
            meeting_key: "2030-01-01".into()
        }
    );
    call!(
        "SwapTurns",
        swap_turns,
        pb::SwapTurnsRequest {
            group_id: group(),
            duty: "chair".into(),
            meeting_key: "2030-01-01".into(),
            other_meeting_key: "2030-01-08".into()
        }
    );
    call!(
        "AnswerSwap",
        answer_swap,
        pb::AnswerSwapRequest {
            group_id: group(),
            swap_id: uuid::Uuid::now_v7().to_string(),
            accept: true
        }
    );
    call!("EraseMe", erase_me, pb::EraseMeRequest { confirm: true });
    call!(
        "GetErasureStatus",
        get_erasure_status,
        pb::GetErasureStatusRequest {}
    );
    call!(
        "ListOverdueErasures",
        list_overdue_erasures,
        pb::ListOverdueErasuresRequest { page: None }
    );
    call!(
        "GetSharing",
        get_sharing,
        pb::GetSharingRequest {
            group_id: group(),
            from_date: String::new(),
            to_date: String::new()
        }
    );
    call!(
        "CorrectDutyRecord",
        correct_duty_record,
        pb::CorrectDutyRecordRequest {
            group_id: group(),
            meeting_key: "2030-01-01".into(),
            duty: "chair".into(),
            membership_id: String::new()
        }
    );
    call!(
        "GetMySharing",
        get_my_sharing,
        pb::GetMySharingRequest { group_id: group() }
    );
    call!(
        "SetMySharing",
        set_my_sharing,
        pb::SetMySharingRequest {
            group_id: group(),
            willing: vec!["chair".into()],
            skills: String::new(),
            counted: true
        }
    );
    call!(
        "UpdateGroupPractice",
        update_group_practice,
        pb::UpdateGroupPracticeRequest {
            group_id: group(),
            practice: Some(pb::GroupPractice::default())
        }
    );
    call!(
        "GetForum",
        get_forum,
        pb::GetForumRequest {
            group_id: group(),
            meeting_key: String::new()
        }
    );
    call!(
        "AddAgendaItem",
        add_agenda_item,
        pb::AddAgendaItemRequest {
            group_id: group(),
            meeting_key: "2030-01-01".into(),
            text: "An item".into()
        }
    );
    call!(
        "RemoveAgendaItem",
        remove_agenda_item,
        pb::RemoveAgendaItemRequest {
            group_id: group(),
            item_id: m.to_string()
        }
    );
    call!(
        "WriteMeetingNotes",
        write_meeting_notes,
        pb::WriteMeetingNotesRequest {
            group_id: group(),
            meeting_key: "2030-01-01".into(),
            text: "Notes".into()
        }
    );
    call!(
        "MarkAttendance",
        mark_attendance,
        pb::MarkAttendanceRequest {
            group_id: group(),
            meeting_key: "2030-01-01".into(),
            membership_id: String::new(),
            came: true
        }
    );
    call!(
        "ListKnowledge",
        list_knowledge,
        pb::ListKnowledgeRequest { group_id: group() }
    );
    call!(
        "AddKnowledge",
        add_knowledge,
        pb::AddKnowledgeRequest {
            group_id: group(),
            title: "A link".into(),
            url: String::new(),
            text: String::new()
        }
    );
    call!(
        "RemoveKnowledge",
        remove_knowledge,
        pb::RemoveKnowledgeRequest {
            group_id: group(),
            item_id: m.to_string()
        }
    );
    call!(
        "ListCommittees",
        list_committees,
        pb::ListCommitteesRequest { group_id: group() }
    );
    call!(
        "SaveCommittee",
        save_committee,
        pb::SaveCommitteeRequest {
            group_id: group(),
            committee_id: String::new(),
            name: "Funding".into(),
            duties: vec![],
            member_membership_ids: vec![m.to_string()],
            lead_membership_id: m.to_string()
        }
    );
    call!(
        "DeleteCommittee",
        delete_committee,
        pb::DeleteCommitteeRequest {
            group_id: group(),
            committee_id: m.to_string()
        }
    );
    call!(
        "SendCommitteeNotice",
        send_committee_notice,
        pb::SendCommitteeNoticeRequest {
            group_id: group(),
            committee_id: m.to_string(),
            title: "Hello".into(),
            body: "Hello".into()
        }
    );
    out
}

async fn strangers_and_other_regions_get_nothing_from_any_rpc(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("olive", lpb::JoinPolicy::Open, 0).await;
    let m =
        e.mc.join_group(with_token(join_request(&g), &token("pat", REGION, &[])))
            .await
            .unwrap()
            .into_inner()
            .id;
    let anonymous = every_rpc(&mut e.mc, Who::Anonymous, &g, &m).await;
    let called: Vec<String> = anonymous.iter().map(|(rpc, _)| rpc.to_string()).collect();
    assert_eq!(
        called,
        selfhelp_testkit::rpc_names("MembershipService"),
        "every RPC of the service is called"
    );
    for (rpc, got) in anonymous {
        assert_eq!(
            got,
            Code::Unauthenticated,
            "{backend:?}: {rpc} without a token"
        );
    }
    for (rpc, got) in every_rpc(&mut e.mc, Who::OperatorElsewhere, &g, &m).await {
        assert_eq!(
            got,
            Code::PermissionDenied,
            "{rpc} by another region's operator"
        );
    }
    // Pat's membership is untouched by all of that.
    assert_eq!(
        e.my_membership("pat").await.state(),
        pb::MembershipState::Active
    );
    e.stop().await;
}

per_backend!(strangers_and_other_regions_get_nothing_from_any_rpc);
