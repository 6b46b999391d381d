//! Many hands over a simulated year: weekly meetings with a chair rota, the
//! clock moved a year on; the turns are remembered, the figure follows them,
//! an organiser corrects a meeting, a member opts out of being counted, and
//! an erased member's turns stay counted without them.

use chrono::{Duration, Utc};
use selfhelp_core::time::Clock;
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, join_request, per_backend};
use tonic::Code;

use super::{Env, as_person};

async fn a_year_of_meetings_shows_whether_the_work_is_shared(backend: Backend) {
    let clock = Clock::system();
    let mut e = Env::start_with_clock(backend, clock.clone()).await;
    let g = e.group("olive", lpb::JoinPolicy::Open, 0).await;
    let mut ids = std::collections::HashMap::new();
    for person in ["olive", "bob", "carol", "dan", "eve"] {
        let mut r = join_request(&g);
        r.display_name = person.to_uppercase();
        let m =
            e.mc.join_group(as_person(r, person))
                .await
                .unwrap()
                .into_inner();
        ids.insert(person, m.id);
    }
    e.weekly_meetings(&g, "olive", Utc::now().date_naive() + Duration::days(2))
        .await;
    e.mc.set_rota(as_person(
        pb::SetRotaRequest {
            group_id: g.clone(),
            duty: "chair".into(),
            volunteer_person_ids: vec!["bob".into(), "carol".into(), "dan".into()],
        },
        "olive",
    ))
    .await
    .unwrap();
    // Eve would chair, and says so; nobody has asked her yet.
    let eve_says = pb::SetMySharingRequest {
        group_id: g.clone(),
        willing: vec![" Chair ".into(), "tea".into(), "chair".into()],
        skills: "I keep accounts".into(),
        counted: true,
    };
    let bad = pb::SetMySharingRequest {
        willing: vec![String::new(), "x".repeat(41)],
        skills: "y".repeat(501),
        ..eve_says.clone()
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .set_my_sharing(as_person(bad, "eve"))
                .await
                .unwrap_err()
        ),
        vec!["willing[0]", "willing[1]", "skills"]
    );
    let eves =
        e.mc.set_my_sharing(as_person(eve_says, "eve"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(eves.willing, ["chair", "tea"]);
    // Bob, who is on the rota, would chair too.
    e.mc.set_my_sharing(as_person(
        pb::SetMySharingRequest {
            group_id: g.clone(),
            willing: vec!["chair".into()],
            skills: String::new(),
            counted: true,
        },
        "bob",
    ))
    .await
    .unwrap();

    // A year on.
    clock.advance(std::time::Duration::from_secs(365 * 86_400));
    let get = |from: &str| pb::GetSharingRequest {
        group_id: g.clone(),
        from_date: from.into(),
        to_date: String::new(),
    };
    let year =
        e.mc.get_sharing(as_person(get(""), "olive"))
            .await
            .unwrap()
            .into_inner();
    let turns_of = |s: &pb::Sharing, name: &str| {
        s.members
            .iter()
            .find(|m| m.display_name == name)
            .map(|m| m.turns)
    };
    // Weekly for a year from two days in: 52 meetings, give or take the
    // year's edges.
    assert!((51..=53).contains(&year.turns), "{}", year.turns);
    let (b, c, d) = (
        turns_of(&year, "BOB").unwrap(),
        turns_of(&year, "CAROL").unwrap(),
        turns_of(&year, "DAN").unwrap(),
    );
    assert_eq!(b + c + d, year.turns, "every turn is someone's");
    assert!(b.abs_diff(c) <= 1 && c.abs_diff(d) <= 1, "{b} {c} {d}");
    assert_eq!(turns_of(&year, "EVE"), Some(0));
    assert!(
        year.members
            .iter()
            .any(|m| m.display_name == "EVE" && m.never_asked)
    );
    // Five people: the busiest fifth is one person, here the busiest of three
    // who share alike.
    let busiest = b.max(c).max(d);
    assert!(
        (year.busiest_fifth_share - f64::from(busiest) / f64::from(year.turns)).abs() < 1e-9,
        "{}",
        year.busiest_fifth_share
    );
    assert!(year.trend.len() >= 4, "{:?}", year.trend);
    assert_eq!(
        year.trend.iter().map(|q| q.turns).sum::<i32>(),
        year.turns,
        "the quarters add up"
    );
    assert_eq!(year.willing_least.first().map(String::as_str), Some("EVE"));
    // The chair's next turns are offered to Eve first, who has not chaired;
    // then the present volunteers, in their order.
    let chair = year
        .offers
        .iter()
        .find(|o| o.duty == "chair")
        .expect("an offer for the chair");
    let offered: Vec<&str> = chair
        .members
        .iter()
        .map(|m| m.display_name.as_str())
        .collect();
    assert_eq!(offered, ["EVE", "BOB"], "who did least first");
    assert!(
        chair.members[1]
            .why
            .contains(&format!("has done it {b} times"))
    );
    assert!(
        chair.members[0]
            .why
            .contains("has not done it in this period"),
        "{}",
        chair.members[0].why
    );
    assert_eq!(
        chair.proposed_order_membership_ids,
        vec![
            ids["eve"].clone(),
            ids["bob"].clone(),
            ids["carol"].clone(),
            ids["dan"].clone()
        ]
    );
    assert!(year.offers.iter().any(|o| o.duty == "tea"));
    // Members see their own record only.
    let bobs =
        e.mc.get_my_sharing(as_person(
            pb::GetMySharingRequest {
                group_id: g.clone(),
            },
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(bobs.counted);
    // His own turns only (everyone's would be three times as many), this
    // calendar year (within the last twelve months).
    let his: i32 = bobs.this_year.iter().map(|d| d.turns).sum();
    assert!(his > 0 && his <= b, "{his} of {b}: {:?}", bobs.this_year);
    assert_eq!(
        e.mc.get_sharing(as_person(get(""), "bob"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        e.mc.get_my_sharing(as_person(
            pb::GetMySharingRequest {
                group_id: g.clone()
            },
            "zoe"
        ))
        .await
        .unwrap_err()
        .code(),
        Code::PermissionDenied,
        "not a member"
    );
    assert_eq!(
        violated_fields(
            &e.mc
                .get_sharing(as_person(get("last spring"), "olive"))
                .await
                .unwrap_err()
        ),
        vec!["from_date"]
    );

    // Olive corrects the newest meeting: Eve chaired it, not who was due.
    let newest = year.records[0].clone();
    let was = newest.held_by.clone();
    let corrected =
        e.mc.correct_duty_record(as_person(
            pb::CorrectDutyRecordRequest {
                group_id: g.clone(),
                meeting_key: newest.meeting_key.clone(),
                duty: "Chair".into(),
                membership_id: ids["eve"].clone(),
            },
            "olive",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(corrected.corrected && corrected.held_by == "EVE");
    let after =
        e.mc.get_sharing(as_person(get(""), "olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(turns_of(&after, "EVE"), Some(1));
    assert_eq!(turns_of(&after, &was), turns_of(&year, &was).map(|t| t - 1));
    assert_eq!(
        e.mc.correct_duty_record(as_person(
            pb::CorrectDutyRecordRequest {
                group_id: g.clone(),
                meeting_key: "1999-01-01".into(),
                duty: "chair".into(),
                membership_id: String::new(),
            },
            "olive",
        ))
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );

    // Carol opts out of being counted: she is in no figure.
    e.mc.set_my_sharing(as_person(
        pb::SetMySharingRequest {
            group_id: g.clone(),
            willing: Vec::new(),
            skills: String::new(),
            counted: false,
        },
        "carol",
    ))
    .await
    .unwrap();
    let without =
        e.mc.get_sharing(as_person(get(""), "olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(turns_of(&without, "CAROL"), None);
    assert_eq!(without.turns, after.turns - c);
    assert!(without.records.iter().all(|r| r.held_by != "CAROL"));
    let hers: Vec<&pb::DutyRecord> = without
        .records
        .iter()
        .filter(|r| r.held_by == "Someone not counted")
        .collect();
    assert!(
        !hers.is_empty() && hers.iter().all(|r| r.membership_id.is_empty()),
        "her meetings name nobody: {hers:?}"
    );

    // Dan is erased: his turns stay, as a former member's, and nothing of
    // him is left to name.
    e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: true }, "dan"))
        .await
        .unwrap();
    let erased =
        e.mc.get_sharing(as_person(get(""), "olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(turns_of(&erased, "DAN"), None);
    assert_eq!(turns_of(&erased, "A former member"), Some(d));
    assert_eq!(erased.turns, without.turns);
    let dans =
        e.mc.export_my_data(as_person(pb::ExportMyDataRequest {}, "dan"))
            .await
            .unwrap()
            .into_inner()
            .json;
    let dans: serde_json::Value = serde_json::from_str(&dans).unwrap();
    assert_eq!(dans["duties_held"].as_array().map(Vec::len), Some(0));
    // Carol, not counted, is erased: she stays out of the figures.
    e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: true }, "carol"))
        .await
        .unwrap();
    let both =
        e.mc.get_sharing(as_person(get(""), "olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(both.turns, without.turns, "still out of the figures");
    assert_eq!(
        both.members
            .iter()
            .filter(|m| m.display_name == "A former member")
            .count(),
        1,
        "only Dan counts as a former member"
    );
    e.stop().await;
}

per_backend!(a_year_of_meetings_shows_whether_the_work_is_shared);
