//! The group's own life: the open forum (agenda with its cut-off, notes by
//! the notes-taker, attendance), shared knowledge and sub-committees are for
//! members only; terms and the only-organiser nudge remind once; export and
//! erasure cover it all.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use prost::Message;
use selfhelp_core::time::Clock;
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, join_request, per_backend};
use tonic::Code;

use super::{Env, as_person};

const NOTICE: &str = "selfhelp.notts.membership.group.notice";

/// `people` join `g`, each shown by their name in capitals; their membership ids.
async fn join_all(e: &mut Env, g: &str, people: &[&str]) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for person in people {
        let mut r = join_request(g);
        r.display_name = person.to_uppercase();
        let m =
            e.mc.join_group(as_person(r, person))
                .await
                .unwrap()
                .into_inner();
        ids.insert(person.to_string(), m.id);
    }
    ids
}

/// The next `group.notice` of `kind`.
async fn notice(e: &mut Env, kind: ev::NoticeKind) -> ev::GroupNotice {
    let m = e
        .outside
        .expect_matching(NOTICE, |m| {
            ev::GroupNotice::decode(m.payload.clone()).is_ok_and(|n| n.kind() == kind)
        })
        .await;
    ev::GroupNotice::decode(m.payload.clone()).unwrap()
}

fn notices_of(e: &Env, kind: ev::NoticeKind) -> usize {
    notices_where(e, |n| n.kind() == kind)
}

fn notices_where(e: &Env, wanted: impl Fn(&ev::GroupNotice) -> bool) -> usize {
    e.outside
        .seen(NOTICE)
        .filter(|m| ev::GroupNotice::decode(m.payload.clone()).is_ok_and(|n| wanted(&n)))
        .count()
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    r.unwrap_err().code()
}

async fn the_forum_knowledge_and_committees_are_for_members(backend: Backend) {
    let clock = Clock::system();
    let mut e = Env::start_with_clock(backend, clock.clone()).await;
    let g = e.group("olive", lpb::JoinPolicy::Open, 0).await;
    let ids = join_all(&mut e, &g, &["alice", "bob", "carol"]).await;
    e.weekly_meetings(&g, "olive", Utc::now().date_naive() + Duration::days(3))
        .await;
    e.mc.set_rota(as_person(
        pb::SetRotaRequest {
            group_id: g.clone(),
            duty: "notes".into(),
            volunteer_person_ids: vec!["alice".into()],
        },
        "olive",
    ))
    .await
    .unwrap();
    let forum_of = |person: &str| {
        as_person(
            pb::GetForumRequest {
                group_id: g.clone(),
                meeting_key: String::new(),
            },
            person,
        )
    };

    // Nina is not a member: nothing of the group's life is hers to read.
    assert_eq!(
        code(e.mc.get_forum(forum_of("nina")).await),
        Code::PermissionDenied
    );
    let nina_knowledge = pb::ListKnowledgeRequest {
        group_id: g.clone(),
    };
    assert_eq!(
        code(e.mc.list_knowledge(as_person(nina_knowledge, "nina")).await),
        Code::PermissionDenied
    );
    let nina_committees = pb::ListCommitteesRequest {
        group_id: g.clone(),
    };
    assert_eq!(
        code(
            e.mc.list_committees(as_person(nina_committees, "nina"))
                .await
        ),
        Code::PermissionDenied
    );

    let forum = e.mc.get_forum(forum_of("bob")).await.unwrap().into_inner();
    assert_eq!(forum.meetings.len(), 3, "three coming meetings");
    assert!(!forum.organiser);
    let first = forum.meetings[0].clone();
    assert!(first.agenda_open);
    assert_eq!(first.notes_taker, "ALICE");
    assert!(!first.may_write_notes, "not before the meeting, not Bob");
    let item = |key: &str, text: &str| pb::AddAgendaItemRequest {
        group_id: g.clone(),
        meeting_key: key.into(),
        text: text.into(),
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .add_agenda_item(as_person(item(&first.meeting_key, " "), "bob"))
                .await
                .unwrap_err()
        ),
        vec!["text"]
    );
    assert_eq!(
        violated_fields(
            &e.mc
                .add_agenda_item(as_person(item("1999-01-01", "Hello"), "bob"))
                .await
                .unwrap_err()
        ),
        vec!["meeting_key"]
    );
    let added =
        e.mc.add_agenda_item(as_person(
            item(&first.meeting_key, "Room hire costs"),
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(added.mine);
    assert_eq!(added.added_by, "BOB");
    let told = notice(&mut e, ev::NoticeKind::AgendaItem).await;
    assert_eq!(told.text, "Room hire costs");
    let mut to = told.recipient_ids.clone();
    to.sort();
    assert_eq!(to, ["alice", "carol", "olive"], "everyone but Bob");

    // The group closes its agenda four days before: Bob is too late now.
    let practice = |p: pb::GroupPractice| pb::UpdateGroupPracticeRequest {
        group_id: g.clone(),
        practice: Some(p),
    };
    let late = pb::GroupPractice {
        agenda_cutoff_hours: 96,
        ..Default::default()
    };
    assert_eq!(
        code(
            e.mc.update_group_practice(as_person(practice(late), "bob"))
                .await
        ),
        Code::PermissionDenied
    );
    let wrong = pb::GroupPractice {
        organiser_term_months: 999,
        agenda_cutoff_hours: -1,
        ..Default::default()
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .update_group_practice(as_person(practice(wrong), "olive"))
                .await
                .unwrap_err()
        ),
        vec![
            "practice.organiser_term_months",
            "practice.agenda_cutoff_hours"
        ]
    );
    e.mc.update_group_practice(as_person(practice(late), "olive"))
        .await
        .unwrap();
    let refused =
        e.mc.add_agenda_item(as_person(item(&first.meeting_key, "Too late"), "bob"))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("closed"),
        "{}",
        refused.message()
    );
    let take_off = pb::RemoveAgendaItemRequest {
        group_id: g.clone(),
        item_id: added.id.clone(),
    };
    assert_eq!(
        code(
            e.mc.remove_agenda_item(as_person(take_off.clone(), "bob"))
                .await
        ),
        Code::FailedPrecondition,
        "its author, once the agenda closed"
    );
    assert_eq!(
        code(e.mc.remove_agenda_item(as_person(take_off, "carol")).await),
        Code::PermissionDenied,
        "not another member"
    );
    let no_practice = pb::UpdateGroupPracticeRequest {
        group_id: g.clone(),
        practice: None,
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .update_group_practice(as_person(no_practice, "olive"))
                .await
                .unwrap_err()
        ),
        vec!["practice"]
    );
    // The next meeting's agenda is still open.
    let second = forum.meetings[1].meeting_key.clone();
    e.mc.add_agenda_item(as_person(item(&second, "Summer outing"), "carol"))
        .await
        .unwrap();

    // Notes: not before the meeting; then by the notes-taker, not by Bob.
    let notes = |text: &str| pb::WriteMeetingNotesRequest {
        group_id: g.clone(),
        meeting_key: first.meeting_key.clone(),
        text: text.into(),
    };
    assert_eq!(
        code(
            e.mc.write_meeting_notes(as_person(notes("Early"), "alice"))
                .await
        ),
        Code::FailedPrecondition
    );
    clock.advance(StdDuration::from_secs(4 * 86_400));
    assert_eq!(
        code(
            e.mc.write_meeting_notes(as_person(notes("Mine"), "bob"))
                .await
        ),
        Code::PermissionDenied
    );
    e.mc.write_meeting_notes(as_person(notes("We agreed to ask the council."), "alice"))
        .await
        .unwrap();
    let told = notice(&mut e, ev::NoticeKind::MeetingNotes).await;
    assert!(!told.recipient_ids.contains(&"alice".to_string()));
    // Rewritten: nobody is told twice.
    e.mc.write_meeting_notes(as_person(
        notes("We agreed to ask the council for £200."),
        "alice",
    ))
    .await
    .unwrap();
    let read =
        e.mc.get_forum(forum_of("carol"))
            .await
            .unwrap()
            .into_inner();
    let past = read
        .meetings
        .iter()
        .find(|m| m.meeting_key == first.meeting_key)
        .unwrap();
    let written = past.notes.as_ref().unwrap();
    assert_eq!(written.text, "We agreed to ask the council for £200.");
    assert_eq!(written.written_by, "ALICE");
    assert_eq!(past.agenda.len(), 1);
    assert!(!past.agenda[0].mine, "Bob's item, read by Carol");

    // Attendance is off until the group keeps it.
    let came = |membership_id: &str| pb::MarkAttendanceRequest {
        group_id: g.clone(),
        meeting_key: first.meeting_key.clone(),
        membership_id: membership_id.into(),
        came: true,
    };
    assert_eq!(
        code(e.mc.mark_attendance(as_person(came(""), "bob")).await),
        Code::FailedPrecondition
    );
    let keeps = pb::GroupPractice {
        agenda_cutoff_hours: 24,
        attendance: true,
        ..Default::default()
    };
    e.mc.update_group_practice(as_person(practice(keeps), "olive"))
        .await
        .unwrap();
    assert_eq!(
        code(
            e.mc.mark_attendance(as_person(came(&ids["carol"]), "bob"))
                .await
        ),
        Code::PermissionDenied,
        "members tick only themselves"
    );
    let one =
        e.mc.mark_attendance(as_person(came(""), "bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(one.attended, 1);
    let two =
        e.mc.mark_attendance(as_person(came(&ids["carol"]), "olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(two.attended, 2);
    let organisers =
        e.mc.get_forum(forum_of("olive"))
            .await
            .unwrap()
            .into_inner();
    let at = |f: &pb::Forum| {
        f.meetings
            .iter()
            .find(|m| m.meeting_key == first.meeting_key)
            .cloned()
            .unwrap()
    };
    let mut who = at(&organisers).came;
    who.sort();
    assert_eq!(who, ["BOB", "CAROL"]);
    let mut ticked = at(&organisers).came_membership_ids;
    ticked.sort();
    let mut expected = vec![ids["bob"].clone(), ids["carol"].clone()];
    expected.sort();
    assert_eq!(ticked, expected, "organisers tick by membership");
    let bobs = at(&e.mc.get_forum(forum_of("bob")).await.unwrap().into_inner());
    assert!(bobs.i_came && bobs.came.is_empty() && bobs.attended == 2);
    assert!(bobs.came_membership_ids.is_empty(), "not for members");

    // Shared knowledge: any member adds; its author or an organiser removes.
    let add = |title: &str, url: &str| pb::AddKnowledgeRequest {
        group_id: g.clone(),
        title: title.into(),
        url: url.into(),
        text: "Free on Tuesdays".into(),
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .add_knowledge(as_person(add("", "ftp://x"), "bob"))
                .await
                .unwrap_err()
        ),
        vec!["title", "url"]
    );
    let link =
        e.mc.add_knowledge(as_person(
            add("Benefits advice", "https://advice.example"),
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    let remove = pb::RemoveKnowledgeRequest {
        group_id: g.clone(),
        item_id: link.id.clone(),
    };
    assert_eq!(
        code(
            e.mc.remove_knowledge(as_person(remove.clone(), "alice"))
                .await
        ),
        Code::PermissionDenied
    );
    let kept =
        e.mc.add_knowledge(as_person(add("Carers' centre", ""), "bob"))
            .await
            .unwrap()
            .into_inner();
    e.mc.remove_knowledge(as_person(remove, "olive"))
        .await
        .unwrap();
    let listed =
        e.mc.list_knowledge(as_person(
            pb::ListKnowledgeRequest {
                group_id: g.clone(),
            },
            "carol",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, kept.id);

    // A committee: Alice leads, Bob is on it; Carol sees that it exists.
    let committee = pb::SaveCommitteeRequest {
        group_id: g.clone(),
        committee_id: String::new(),
        name: "Funding".into(),
        duties: vec!["Apply for the council grant".into()],
        member_membership_ids: vec![ids["alice"].clone(), ids["bob"].clone()],
        lead_membership_id: ids["alice"].clone(),
    };
    assert_eq!(
        code(
            e.mc.save_committee(as_person(committee.clone(), "bob"))
                .await
        ),
        Code::PermissionDenied
    );
    let not_member = pb::SaveCommitteeRequest {
        lead_membership_id: uuid_like(),
        ..committee.clone()
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .save_committee(as_person(not_member, "olive"))
                .await
                .unwrap_err()
        ),
        vec!["lead_membership_id"]
    );
    let funding =
        e.mc.save_committee(as_person(committee.clone(), "olive"))
            .await
            .unwrap()
            .into_inner();
    let joined = notice(&mut e, ev::NoticeKind::CommitteeJoined).await;
    let mut on = joined.recipient_ids.clone();
    on.sort();
    assert_eq!(on, ["alice", "bob"]);
    let again = pb::SaveCommitteeRequest {
        committee_id: String::new(),
        ..committee.clone()
    };
    assert_eq!(
        violated_fields(
            &e.mc
                .save_committee(as_person(again, "olive"))
                .await
                .unwrap_err()
        ),
        vec!["name"],
        "one name, one committee"
    );
    let list = |person: &str| {
        as_person(
            pb::ListCommitteesRequest {
                group_id: g.clone(),
            },
            person,
        )
    };
    let carols =
        e.mc.list_committees(list("carol"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(carols.committees[0].name, "Funding");
    assert_eq!(carols.committees[0].member_count, 2);
    assert!(carols.committees[0].members.is_empty() && carols.committees[0].lead.is_empty());
    let bobs =
        e.mc.list_committees(list("bob"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(bobs.committees[0].lead, "ALICE");
    assert_eq!(bobs.committees[0].members.len(), 2);
    let send = |person: &str| {
        as_person(
            pb::SendCommitteeNoticeRequest {
                group_id: g.clone(),
                committee_id: funding.id.clone(),
                title: "Grant form".into(),
                body: "Due Friday".into(),
            },
            person,
        )
    };
    assert_eq!(
        code(e.mc.send_committee_notice(send("bob")).await),
        Code::PermissionDenied,
        "Bob is not its lead"
    );
    let sent =
        e.mc.send_committee_notice(send("alice"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(sent.told, 1);
    let told = notice(&mut e, ev::NoticeKind::CommitteeNotice).await;
    assert_eq!(told.recipient_ids, ["bob"]);
    assert_eq!(told.committee, "Funding");
    // Each notice above was written after the rewritten notes: one telling.
    assert_eq!(notices_of(&e, ev::NoticeKind::MeetingNotes), 1);

    // Bob's export holds what he wrote, where he came and his committee.
    let export = |person: &str| as_person(pb::ExportMyDataRequest {}, person);
    let bobs =
        e.mc.export_my_data(export("bob"))
            .await
            .unwrap()
            .into_inner()
            .json;
    let bobs: serde_json::Value = serde_json::from_str(&bobs).unwrap();
    assert_eq!(bobs["agenda_items"][0]["text"], "Room hire costs");
    assert_eq!(bobs["attended"].as_array().map(Vec::len), Some(1));
    assert_eq!(bobs["knowledge_shared"][0]["title"], "Carers' centre");
    assert_eq!(bobs["committees"][0]["name"], "Funding");

    // Erased, Bob's words go; the meeting still counts him; the committee
    // no longer has him.
    e.mc.erase_me(as_person(pb::EraseMeRequest { confirm: true }, "bob"))
        .await
        .unwrap();
    let after = at(&e
        .mc
        .get_forum(forum_of("olive"))
        .await
        .unwrap()
        .into_inner());
    assert!(after.agenda.is_empty());
    assert_eq!(after.attended, 2);
    assert!(!after.came.contains(&"BOB".to_string()));
    let listed =
        e.mc.list_knowledge(as_person(
            pb::ListKnowledgeRequest {
                group_id: g.clone(),
            },
            "carol",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.items.is_empty());
    let olives =
        e.mc.list_committees(list("olive"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(olives.committees[0].member_count, 1);
    let close = |person: &str| {
        as_person(
            pb::DeleteCommitteeRequest {
                group_id: g.clone(),
                committee_id: funding.id.clone(),
            },
            person,
        )
    };
    assert_eq!(
        code(e.mc.delete_committee(close("alice")).await),
        Code::PermissionDenied,
        "a lead does not close it"
    );
    e.mc.delete_committee(close("olive")).await.unwrap();
    let none =
        e.mc.list_committees(list("olive"))
            .await
            .unwrap()
            .into_inner();
    assert!(none.committees.is_empty());
    let bobs =
        e.mc.export_my_data(export("bob"))
            .await
            .unwrap()
            .into_inner()
            .json;
    let bobs: serde_json::Value = serde_json::from_str(&bobs).unwrap();
    for part in ["agenda_items", "attended", "knowledge_shared", "committees"] {
        assert_eq!(bobs[part].as_array().map(Vec::len), Some(0), "{part}");
    }
    e.stop().await;
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

async fn terms_end_and_the_only_organiser_is_nudged_once(backend: Backend) {
    let clock = Clock::system();
    let mut e = Env::start_with_clock(backend, clock.clone()).await;
    let g = e.group("olive", lpb::JoinPolicy::Open, 0).await;
    join_all(&mut e, &g, &["alice", "bob"]).await;
    e.weekly_meetings(&g, "olive", Utc::now().date_naive() + Duration::days(1))
        .await;
    // Alice chairs every meeting; the group sets a chair's term of three
    // months and an organiser's of six.
    e.mc.set_rota(as_person(
        pb::SetRotaRequest {
            group_id: g.clone(),
            duty: "chair".into(),
            volunteer_person_ids: vec!["alice".into()],
        },
        "olive",
    ))
    .await
    .unwrap();
    e.mc.set_my_sharing(as_person(
        pb::SetMySharingRequest {
            group_id: g.clone(),
            willing: vec!["organise".into()],
            skills: String::new(),
            counted: true,
        },
        "bob",
    ))
    .await
    .unwrap();
    e.mc.update_group_practice(as_person(
        pb::UpdateGroupPracticeRequest {
            group_id: g.clone(),
            practice: Some(pb::GroupPractice {
                organiser_term_months: 6,
                chair_term_months: 3,
                agenda_cutoff_hours: 24,
                attendance: false,
            }),
        },
        "olive",
    ))
    .await
    .unwrap();
    // The rounds (every second) see Olive as the organiser from now.
    tokio::time::sleep(StdDuration::from_secs(2)).await;

    clock.advance(StdDuration::from_secs(100 * 86_400));
    let chair = notice(&mut e, ev::NoticeKind::TermEnded).await;
    assert_eq!(
        (chair.title.as_str(), chair.holder_id.as_str()),
        ("chair", "alice")
    );
    assert_eq!(chair.months, 3);
    let mut to = chair.recipient_ids.clone();
    to.sort();
    assert_eq!(to, ["alice", "bob", "olive"], "the group is reminded");
    assert_eq!(notices_of(&e, ev::NoticeKind::SoleOrganiser), 0);

    clock.advance(StdDuration::from_secs(100 * 86_400));
    let organiser = e
        .outside
        .expect_matching(NOTICE, |m| {
            ev::GroupNotice::decode(m.payload.clone()).is_ok_and(|n| n.title == "organiser")
        })
        .await;
    let organiser = ev::GroupNotice::decode(organiser.payload.clone()).unwrap();
    assert_eq!(organiser.holder_id, "olive");
    assert_eq!(organiser.months, 6);

    // A year as the only organiser: nudged, with how many are willing.
    clock.advance(StdDuration::from_secs(200 * 86_400));
    let nudge = notice(&mut e, ev::NoticeKind::SoleOrganiser).await;
    assert_eq!(nudge.recipient_ids, ["olive"]);
    assert_eq!((nudge.months, nudge.willing), (12, 1));
    // Rounds go on for another year; then a later event settles the count.
    clock.advance(StdDuration::from_secs(365 * 86_400));
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let forum =
        e.mc.get_forum(as_person(
            pb::GetForumRequest {
                group_id: g.clone(),
                meeting_key: String::new(),
            },
            "bob",
        ))
        .await
        .unwrap()
        .into_inner();
    let coming = forum.meetings.iter().find(|m| m.agenda_open).unwrap();
    e.mc.add_agenda_item(as_person(
        pb::AddAgendaItemRequest {
            group_id: g.clone(),
            meeting_key: coming.meeting_key.clone(),
            text: "Who will organise with Olive?".into(),
        },
        "bob",
    ))
    .await
    .unwrap();
    notice(&mut e, ev::NoticeKind::AgendaItem).await;
    assert_eq!(
        notices_of(&e, ev::NoticeKind::SoleOrganiser),
        1,
        "nudged once"
    );
    // One reminder a term at most, however far the clock jumped: the chair's
    // at 3, 6, 12 and 24 months, the organiser's at 6, 12 and 24.
    let terms = |role: &str| {
        notices_where(&e, |n| {
            n.kind() == ev::NoticeKind::TermEnded && n.title == role
        })
    };
    assert_eq!((terms("chair"), terms("organiser")), (4, 3));
    e.stop().await;
}

per_backend!(
    the_forum_knowledge_and_committees_are_for_members,
    terms_end_and_the_only_organiser_is_nudged_once
);
