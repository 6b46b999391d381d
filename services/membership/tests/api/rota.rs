//! A rota over a real schedule set in listings: a cancelled meeting is skipped,
//! skips and swaps change hands fairly, and the person on duty is reminded.

use chrono::{Datelike, Duration, Utc};
use prost::Message;
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, join_request, per_backend, token, with_token};
use tonic::Code;

use super::{Env, REGION, as_person};

pub(super) fn weekday(d: chrono::Weekday) -> lpb::Weekday {
    match d {
        chrono::Weekday::Mon => lpb::Weekday::Monday,
        chrono::Weekday::Tue => lpb::Weekday::Tuesday,
        chrono::Weekday::Wed => lpb::Weekday::Wednesday,
        chrono::Weekday::Thu => lpb::Weekday::Thursday,
        chrono::Weekday::Fri => lpb::Weekday::Friday,
        chrono::Weekday::Sat => lpb::Weekday::Saturday,
        chrono::Weekday::Sun => lpb::Weekday::Sunday,
    }
}

fn who(rota: &pb::DutyRota) -> Vec<(String, String)> {
    rota.turns
        .iter()
        .map(|t| (t.meeting_key.clone(), t.display_name.clone()))
        .collect()
}

async fn a_rota_follows_the_meetings_and_changes_hands_fairly(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 0).await;
    for person in ["alice", "bob", "carol"] {
        let mut r = join_request(&g);
        r.display_name = person.to_uppercase();
        e.mc.join_group(as_person(r, person)).await.unwrap();
    }
    // The group shares its member list with members (rotas name people).
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
    // Weekly, the first meeting two days from now; the second is cancelled.
    let first = Utc::now().date_naive() + Duration::days(2);
    let day = |weeks: i64| (first + Duration::weeks(weeks)).to_string();
    let alice = token("alice", REGION, &[]);
    e.lc.set_schedule(with_token(
        lpb::SetScheduleRequest {
            group_id: g.clone(),
            schedule: Some(lpb::Schedule {
                frequency: lpb::Frequency::Weekly.into(),
                interval: 1,
                weekday: weekday(first.weekday()).into(),
                valid_from: Utc::now().date_naive().to_string(),
                start_time: "19:00".into(),
                end_time: "21:00".into(),
                ..Default::default()
            }),
        },
        &alice,
    ))
    .await
    .unwrap();
    e.lc.cancel_occurrence(with_token(
        lpb::CancelOccurrenceRequest {
            group_id: g.clone(),
            date: day(1),
            note: "The hall is closed".into(),
        },
        &alice,
    ))
    .await
    .unwrap();
    e.seen_by_membership("occurrence.cancelled", &g).await;

    let set = |volunteers: &[&str], duty: &str| pb::SetRotaRequest {
        group_id: g.clone(),
        duty: duty.into(),
        volunteer_person_ids: volunteers.iter().map(|s| s.to_string()).collect(),
    };
    let bad =
        e.mc.set_rota(as_person(set(&["bob", "bob", "zoe"], ""), "alice"))
            .await
            .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        vec!["duty", "volunteer_person_ids[1]"],
        "{backend:?}"
    );
    let stranger =
        e.mc.set_rota(as_person(set(&["bob", "zoe"], "chair"), "alice"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&stranger), vec!["volunteer_person_ids[1]"]);
    let member =
        e.mc.set_rota(as_person(set(&["bob"], "chair"), "bob"))
            .await
            .unwrap_err();
    assert_eq!(member.code(), Code::PermissionDenied);

    let rota =
        e.mc.set_rota(as_person(set(&["alice", "bob", "carol"], "Chair"), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(rota.duty, "chair");
    assert_eq!(
        who(&rota)[..3],
        [
            (day(0), "ALICE".to_string()),
            (day(2), "BOB".to_string()),
            (day(3), "CAROL".to_string()),
        ],
        "the cancelled meeting is no one's turn"
    );

    // Members see the rota (names, not account ids); strangers do not.
    let get = |duty: &str| pb::GetRotaRequest {
        group_id: g.clone(),
        duty: duty.into(),
        meetings: 4,
    };
    let seen =
        e.mc.get_rota(as_person(get("chair"), "bob"))
            .await
            .unwrap()
            .into_inner();
    let bobs = &seen.rotas[0];
    assert_eq!(bobs.turns.len(), 4);
    assert!(bobs.turns.iter().all(|t| t.person_id.is_empty()));
    assert_eq!(
        bobs.turns.iter().filter(|t| t.mine).count(),
        1,
        "bob is on duty once in four meetings"
    );
    assert_eq!(
        e.mc.get_rota(as_person(get(""), "zoe"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        e.mc.get_rota(as_person(get("tea"), "bob"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Alice hears of her turn ahead of the first meeting.
    let due = e
        .outside
        .expect(&format!("selfhelp.{REGION}.membership.rota.duty_due"))
        .await;
    let due = ev::RotaDutyDue::decode(due.payload.clone()).unwrap();
    assert_eq!(
        (due.person_id.as_str(), due.meeting_key.as_str()),
        ("alice", day(0).as_str())
    );

    // Bob skips his turn: Carol does it, Bob does the next one.
    let skip = |key: String| pb::SkipMyTurnRequest {
        group_id: g.clone(),
        duty: "chair".into(),
        meeting_key: key,
    };
    let not_his =
        e.mc.skip_my_turn(as_person(skip(day(0)), "bob"))
            .await
            .unwrap_err();
    assert_eq!(not_his.code(), Code::FailedPrecondition);
    let skipped =
        e.mc.skip_my_turn(as_person(skip(day(2)), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        who(&skipped)[1..3],
        [(day(2), "CAROL".to_string()), (day(3), "BOB".to_string())]
    );
    // The turns it hands on at the next six meetings are told: Bob's to
    // Carol, Carol's next one to Bob, and so on in the new order.
    let handed = |payload: &[u8]| {
        let e = ev::RotaTurnsChanged::decode(payload).unwrap();
        let mut h: Vec<(String, String, String)> = e
            .handovers
            .into_iter()
            .map(|h| (h.meeting_key, h.from_person_id, h.to_person_id))
            .collect();
        h.sort();
        (e.duty, e.changed_by, h)
    };
    let changed = format!("selfhelp.{REGION}.membership.rota.turns_changed");
    let skip_told = e.outside.expect(&changed).await;
    let (duty, by, told) = handed(&skip_told.payload);
    assert_eq!((duty.as_str(), by.as_str()), ("chair", "bob"));
    assert_eq!(
        told[..2],
        [
            (day(2), "bob".to_string(), "carol".to_string()),
            (day(3), "carol".to_string(), "bob".to_string()),
        ]
    );
    let next_six: Vec<String> = who(&skipped).into_iter().map(|(key, _)| key).collect();
    assert!(
        told.iter().all(|(key, from, to)| next_six.contains(key)
            && [from.as_str(), to.as_str()] != ["", ""]
            && ["bob", "carol"].contains(&from.as_str())
            && ["bob", "carol"].contains(&to.as_str())),
        "only Bob and Carol, only the next six meetings: {told:?}"
    );

    // Carol asks Alice to swap: nothing changes until Alice agrees.
    let swap = |a: String, b: String| pb::SwapTurnsRequest {
        group_id: g.clone(),
        duty: "chair".into(),
        meeting_key: a,
        other_meeting_key: b,
    };
    let same =
        e.mc.swap_turns(as_person(swap(day(0), day(0)), "carol"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&same), vec!["other_meeting_key"]);
    let asked =
        e.mc.swap_turns(as_person(swap(day(0), day(2)), "carol"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        who(&asked)[..2],
        [(day(0), "ALICE".to_string()), (day(2), "CAROL".to_string())]
    );
    assert_eq!(asked.swap_asks.len(), 1, "{asked:?}");
    let ask = asked.swap_asks[0].clone();
    assert!(ask.asked_by_me && !ask.asked_of_me);
    assert_eq!(
        (
            ask.meeting_key.as_str(),
            ask.other_meeting_key.as_str(),
            ask.asked_of.as_str()
        ),
        (day(2).as_str(), day(0).as_str(), "ALICE")
    );
    let requests = format!("selfhelp.{REGION}.membership.rota.swap_request");
    let step_of = |payload: &[u8]| ev::RotaSwapRequest::decode(payload).unwrap();
    let told = step_of(&e.outside.expect(&requests).await.payload);
    assert_eq!(
        (told.asked_by.as_str(), told.asked_of.as_str(), told.step()),
        ("carol", "alice", ev::SwapStep::Asked)
    );
    assert_eq!(told.meeting_key, day(2));
    // Carol asks Bob too, for the same turn of hers.
    let to_bob =
        e.mc.swap_turns(as_person(swap(day(2), day(3)), "carol"))
            .await
            .unwrap()
            .into_inner();
    let bob_ask = to_bob
        .swap_asks
        .iter()
        .find(|a| a.asked_of == "BOB")
        .expect("the ask of Bob")
        .id
        .clone();
    // Bob neither sees the ask of Alice nor can answer it; Carol cannot agree
    // for Alice.
    let bobs =
        e.mc.get_rota(as_person(get("chair"), "bob"))
            .await
            .unwrap()
            .into_inner();
    let seen_by_bob = &bobs.rotas[0].swap_asks;
    assert!(
        seen_by_bob.len() == 1 && seen_by_bob[0].asked_of_me,
        "only the ask of him: {seen_by_bob:?}"
    );
    let alices =
        e.mc.get_rota(as_person(get("chair"), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert!(alices.rotas[0].swap_asks[0].asked_of_me);
    let answer = |id: &str, accept: bool| pb::AnswerSwapRequest {
        group_id: g.clone(),
        swap_id: id.to_string(),
        accept,
    };
    let code = |r: Result<tonic::Response<pb::DutyRota>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(
            e.mc.answer_swap(as_person(answer(&ask.id, true), "bob"))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            e.mc.answer_swap(as_person(answer(&ask.id, true), "carol"))
                .await
        ),
        Code::PermissionDenied
    );
    let bad =
        e.mc.answer_swap(as_person(answer("not-an-id", true), "alice"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&bad), vec!["swap_id"]);
    // Alice agrees: the turns change hands, and Carol is told.
    let swapped =
        e.mc.answer_swap(as_person(answer(&ask.id, true), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        who(&swapped)[..2],
        [(day(0), "CAROL".to_string()), (day(2), "ALICE".to_string())]
    );
    assert!(swapped.swap_asks.is_empty());
    let swap_told = e
        .outside
        .expect_matching(&changed, |m| handed(&m.payload).1 == "alice")
        .await;
    assert_eq!(
        handed(&swap_told.payload).2,
        vec![
            (day(0), "alice".to_string(), "carol".to_string()),
            (day(2), "carol".to_string(), "alice".to_string()),
        ]
    );
    assert_eq!(
        code(
            e.mc.answer_swap(as_person(answer(&ask.id, true), "alice"))
                .await
        ),
        Code::NotFound,
        "a swap is agreed once"
    );
    // Carol's ask of Bob no longer stands: that turn is Alice's now.
    let lapsed =
        e.mc.answer_swap(as_person(answer(&bob_ask, true), "bob"))
            .await
            .unwrap_err();
    assert_eq!(lapsed.code(), Code::FailedPrecondition, "{lapsed:?}");
    // Bob asks Carol; she declines, and Bob is told. He asks again and
    // withdraws it, and Carol is told.
    let mc = e.mc.clone();
    let bobs_ask = async || {
        let asked = mc
            .clone()
            .swap_turns(as_person(swap(day(3), day(0)), "bob"))
            .await
            .unwrap()
            .into_inner();
        asked.swap_asks[0].id.clone()
    };
    let first_ask = bobs_ask().await;
    let kept =
        e.mc.answer_swap(as_person(answer(&first_ask, false), "carol"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(who(&kept)[0], (day(0), "CAROL".to_string()));
    let declined = step_of(
        &e.outside
            .expect_matching(&requests, |m| {
                step_of(&m.payload).step() == ev::SwapStep::Declined
            })
            .await
            .payload,
    );
    assert_eq!(
        (declined.asked_by.as_str(), declined.swap_id.as_str()),
        ("bob", first_ask.as_str())
    );
    let second_ask = bobs_ask().await;
    e.mc.answer_swap(as_person(answer(&second_ask, false), "bob"))
        .await
        .unwrap();
    e.outside
        .expect_matching(&requests, |m| {
            step_of(&m.payload).step() == ev::SwapStep::Withdrawn
        })
        .await;
    assert_eq!(
        e.outside.seen_on(&requests),
        6,
        "asked twice by Carol; by Bob asked, declined, asked, withdrawn"
    );
    // A refused change tells nobody anything.
    assert_eq!(e.outside.seen_on(&changed), 2);
    // An organiser swaps two others' turns at once (both are told).
    let six = pb::GetRotaRequest {
        meetings: 6,
        ..get("chair")
    };
    let rota_now =
        e.mc.get_rota(as_person(six, "alice"))
            .await
            .unwrap()
            .into_inner();
    let carols_later = rota_now.rotas[0]
        .turns
        .iter()
        .find(|t| t.display_name == "CAROL" && t.meeting_key != day(0))
        .expect("Carol has a second turn in six meetings")
        .meeting_key
        .clone();
    let arranged =
        e.mc.swap_turns(as_person(swap(day(3), carols_later.clone()), "alice"))
            .await
            .unwrap()
            .into_inner();
    assert!(arranged.swap_asks.is_empty());
    assert!(
        who(&arranged).contains(&(day(3), "CAROL".to_string())),
        "{arranged:?}"
    );
    assert!(who(&arranged).contains(&(carols_later, "BOB".to_string())));
    // Carol hides herself: to Bob she is "A member" on the rota too.
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
    let seen =
        e.mc.get_rota(as_person(get("chair"), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(seen.rotas[0].turns[0].display_name, "A member");
    assert!(!seen.rotas[0].volunteers.contains(&"CAROL".to_string()));
    // Carol is now on duty first, so she is reminded too.
    e.outside
        .expect_matching(
            &format!("selfhelp.{REGION}.membership.rota.duty_due"),
            |m| {
                ev::RotaDutyDue::decode(m.payload.clone())
                    .unwrap()
                    .person_id
                    == "carol"
            },
        )
        .await;

    // A swap Bob asked of Carol is in both their data, and goes with Bob's
    // erasure.
    let asks_of = |json: &str| -> usize {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["swap_asks"]
            .as_array()
            .unwrap()
            .len()
    };
    let carols_data = |mc: &mut pb::membership_service_client::MembershipServiceClient<_>| {
        let mut mc = mc.clone();
        async move {
            mc.export_my_data(as_person(pb::ExportMyDataRequest {}, "carol"))
                .await
                .unwrap()
                .into_inner()
                .json
        }
    };
    let ahead = pb::GetRotaRequest {
        meetings: 12,
        ..get("chair")
    };
    let rota_now =
        e.mc.get_rota(as_person(ahead, "bob"))
            .await
            .unwrap()
            .into_inner();
    let turns = &rota_now.rotas[0].turns;
    let bobs = turns.iter().find(|t| t.mine).expect("a turn of Bob's");
    let other = turns
        .iter()
        .find(|t| !t.mine && t.display_name == "A member")
        .expect("a turn of Carol's (hidden to Bob)");
    e.mc.swap_turns(as_person(
        swap(bobs.meeting_key.clone(), other.meeting_key.clone()),
        "bob",
    ))
    .await
    .unwrap();
    assert_eq!(asks_of(&carols_data(&mut e.mc).await), 1);
    e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: true }, "bob"))
        .await
        .unwrap();
    assert_eq!(asks_of(&carols_data(&mut e.mc).await), 0, "erased with Bob");
    e.stop().await;
}

per_backend!(a_rota_follows_the_meetings_and_changes_hands_fairly);
