//! An organiser messages the group's members: only organisers and
//! co-organisers may, the message is checked and named when wrong, a group
//! sends at most its day's number, and each message is one `group.announced`
//! event on the restricted subject carrying the message and no person.

use prost::Message;
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_testkit::{Backend, join_request, per_backend};
use tonic::Code;

use super::{Env, REGION, as_person};

fn message(group_id: &str, title: &str, body: &str) -> pb::SendAnnouncementRequest {
    pb::SendAnnouncementRequest {
        group_id: group_id.to_string(),
        title: title.to_string(),
        body: body.to_string(),
        include_followers: true,
    }
}

async fn organisers_message_their_members_a_few_times_a_day(backend: Backend) {
    let mut e = Env::start(backend).await;
    let g = e.group("alice", lpb::JoinPolicy::Open, 0).await;
    e.mc.join_group(as_person(join_request(&g), "bob"))
        .await
        .unwrap();

    // A member may not; nor may someone outside the group.
    for who in ["bob", "mallory"] {
        let refused =
            e.mc.send_announcement(as_person(message(&g, "Hello", "All welcome"), who))
                .await
                .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{who}: {refused:?}");
    }
    // Wrong fields are named.
    let refused =
        e.mc.send_announcement(as_person(message(&g, "  ", &"x".repeat(4_001)), "alice"))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["title", "body"]);
    let refused =
        e.mc.send_announcement(as_person(message("not-a-group", "Hi", "Hi"), "alice"))
            .await
            .unwrap_err();
    assert_eq!(violated_fields(&refused), ["group_id"]);

    // Three a day (the default); the fourth is refused, saying when.
    let sent =
        e.mc.send_announcement(as_person(
            message(&g, "No meeting on the 24th", "Back on the 31st."),
            "alice",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.title, "No meeting on the 24th");
    let event = e
        .outside
        .expect(&format!("selfhelp.{REGION}.membership.group.announced"))
        .await;
    let announced = ev::GroupAnnounced::decode(event.payload.clone()).unwrap();
    assert_eq!(
        (
            announced.announcement_id.as_str(),
            announced.group_id.as_str(),
            announced.body.as_str(),
            announced.include_followers
        ),
        (sent.id.as_str(), g.as_str(), "Back on the 31st.", true)
    );
    let raw = String::from_utf8_lossy(&event.payload);
    assert!(
        !raw.contains("alice") && !raw.contains("bob"),
        "no person in it"
    );
    for n in 2..=3 {
        e.mc.send_announcement(as_person(message(&g, &format!("News {n}"), "…"), "alice"))
            .await
            .unwrap();
    }
    let refused =
        e.mc.send_announcement(as_person(message(&g, "One more", "…"), "alice"))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("24 hours"), "{refused:?}");

    // A group not listed sends nothing.
    let draft = super::create_group(&mut e.lc, "alice", lpb::JoinPolicy::Open, false).await;
    let refused =
        e.mc.send_announcement(as_person(message(&draft.id, "Hi", "Hi"), "alice"))
            .await
            .unwrap_err();
    assert!(
        matches!(refused.code(), Code::FailedPrecondition | Code::NotFound),
        "{refused:?}"
    );
}

per_backend!(organisers_message_their_members_a_few_times_a_day);
