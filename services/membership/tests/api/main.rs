//! The membership service in-process over real gRPC/TCP, with listings running
//! beside it, real nats-servers and real databases.

use std::time::Duration;

use selfhelp_core::time::Clock;
use selfhelp_membership::{Config, SERVICE_NAME};
use selfhelp_platform::bad_request::violated_fields;
use selfhelp_proto::events::v1 as ev;
use selfhelp_proto::listings::v1 as lpb;
use selfhelp_proto::listings::v1::listings_service_client::ListingsServiceClient;
use selfhelp_proto::membership::v1 as pb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_proto::streams::LISTINGS;
use selfhelp_testkit::{
    Backend, Nats, OutsideSubscriber, RunningService, TestDb, assert_cloudevent, ce_subject_of,
    eventually, join_request, per_backend, publish_event, token, wait_consumer_caught_up,
    with_token,
};
use tonic::Code;
use tonic::transport::Channel;

mod announcements;
mod erasure;
mod flows;
mod group_life;
mod matrix;
mod rota;
mod sharing;

const REGION: &str = "notts";

/// Listings and membership on one NATS, with an outside subscriber watching.
struct Env {
    nats: Nats,
    listings: RunningService,
    membership: RunningService,
    mdb: TestDb,
    _ldb: TestDb,
    lc: ListingsServiceClient<Channel>,
    mc: MembershipServiceClient<Channel>,
    outside: OutsideSubscriber,
}

impl Env {
    async fn start(backend: selfhelp_testkit::Backend) -> Env {
        Env::start_with_clock(backend, Clock::system()).await
    }

    /// With membership on `clock`, which the test moves forward.
    async fn start_with_clock(backend: selfhelp_testkit::Backend, clock: Clock) -> Env {
        let nats = Nats::start();
        let (ldb, mdb) = (TestDb::new(backend).await, TestDb::new(backend).await);
        let listings = start_listings(&ldb, &nats).await;
        let membership = start_membership(&mdb, &nats, &listings.url(), clock).await;
        let outside = OutsideSubscriber::connect(&nats.url()).await;
        let lc = ListingsServiceClient::new(listings.channel().await);
        let mc = MembershipServiceClient::new(membership.channel().await);
        Env {
            nats,
            listings,
            membership,
            mdb,
            _ldb: ldb,
            lc,
            mc,
            outside,
        }
    }

    /// A published group of `organiser`'s that membership's read model already holds.
    async fn group(&mut self, organiser: &str, policy: lpb::JoinPolicy, capacity: i32) -> String {
        let g = create_group_with(&mut self.lc, organiser, policy, capacity, true).await;
        self.seen_by_membership("group.published", &g.id).await;
        g.id
    }

    /// Waits until listings' `event` about `group_id` is on NATS (its relay runs
    /// apart) and membership has consumed it.
    async fn seen_by_membership(&mut self, event: &str, group_id: &str) {
        self.outside
            .expect_matching(&format!("selfhelp.{REGION}.listings.{event}"), |m| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get("ce-subject"))
                    .is_some_and(|v| v.as_str() == group_id)
            })
            .await;
        wait_consumer_caught_up(
            &self.nats.url(),
            "LISTINGS",
            &format!("membership-{REGION}-listings"),
        )
        .await;
    }

    /// The first `member.<what>` event on NATS, decoded.
    async fn membership_event(
        &mut self,
        what: &str,
    ) -> selfhelp_proto::events::v1::MembershipChanged {
        use prost::Message;
        let msg = self
            .outside
            .expect(&format!("selfhelp.{REGION}.membership.member.{what}"))
            .await;
        selfhelp_proto::events::v1::MembershipChanged::decode(msg.payload.clone()).unwrap()
    }

    /// `person`'s only membership.
    async fn my_membership(&mut self, person: &str) -> pb::Membership {
        let mut list = self
            .mc
            .list_my_memberships(as_person(
                pb::ListMyMembershipsRequest { page: None },
                person,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        assert_eq!(list.len(), 1, "{person} has one membership");
        list.remove(0)
    }

    /// Weekly meetings of `group_id` at 19:00, the first on `first`, set by
    /// its organiser and seen by membership.
    async fn weekly_meetings(&mut self, group_id: &str, organiser: &str, first: chrono::NaiveDate) {
        use chrono::Datelike;
        self.lc
            .set_schedule(with_token(
                lpb::SetScheduleRequest {
                    group_id: group_id.to_string(),
                    schedule: Some(lpb::Schedule {
                        frequency: lpb::Frequency::Weekly.into(),
                        interval: 1,
                        weekday: rota::weekday(first.weekday()).into(),
                        valid_from: chrono::Utc::now().date_naive().to_string(),
                        start_time: "19:00".into(),
                        end_time: "21:00".into(),
                        ..Default::default()
                    }),
                },
                &token(organiser, REGION, &[]),
            ))
            .await
            .unwrap();
        self.seen_by_membership("schedule.changed", group_id).await;
    }

    async fn stop(self) {
        self.membership.stop().await.unwrap();
        self.listings.stop().await.unwrap();
    }
}

/// `message` sent by `person` of this region.
fn as_person<T>(message: T, person: &str) -> tonic::Request<T> {
    with_token(message, &token(person, REGION, &[]))
}

async fn start_listings(db: &TestDb, nats: &Nats) -> RunningService {
    let config = selfhelp_listings::Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    RunningService::start(selfhelp_listings::SERVICE_NAME, move |l, s| {
        selfhelp_listings::run(config, l, s)
    })
    .await
}

async fn start_membership(
    db: &TestDb,
    nats: &Nats,
    listings_url: &str,
    clock: Clock,
) -> RunningService {
    let mut config = Config {
        common: selfhelp_testkit::common_config(&db.url, &nats.url(), REGION),
        ..Default::default()
    };
    config.listings.url = listings_url.to_string();
    // Reminders four days ahead, looked for every second.
    config.rota.reminder_lead_hours = 96;
    config.rota.check_interval_secs = 1;
    // Erasure requests are overdue at once (notifications does not run here).
    config.privacy.confirm_within_hours = 0;
    RunningService::start(SERVICE_NAME, move |l, s| {
        selfhelp_membership::run_with_clock(config, clock, l, s)
    })
    .await
}

async fn create_group(
    listings: &mut ListingsServiceClient<Channel>,
    organiser: &str,
    policy: lpb::JoinPolicy,
    publish: bool,
) -> lpb::Group {
    create_group_with(listings, organiser, policy, 0, publish).await
}

async fn create_group_with(
    listings: &mut ListingsServiceClient<Channel>,
    organiser: &str,
    policy: lpb::JoinPolicy,
    capacity: i32,
    publish: bool,
) -> lpb::Group {
    let t = token(organiser, REGION, &[]);
    let req = lpb::CreateGroupRequest {
        proposed: false,
        name: "Long Covid peer support".into(),
        summary: "Share what helps".into(),
        description: String::new(),
        topics: vec!["long-covid".into()],
        format: lpb::MeetingFormat::Online.into(),
        join_policy: policy.into(),
        venues: vec![],
        capacity,
        ..Default::default()
    };
    let g = listings
        .create_group(with_token(req, &t))
        .await
        .unwrap()
        .into_inner();
    if !publish {
        return g;
    }
    listings
        .submit_group(with_token(
            lpb::SubmitGroupRequest {
                group_id: g.id.clone(),
            },
            &t,
        ))
        .await
        .unwrap();
    let op = token("op", REGION, &["operator"]);
    let approve = lpb::ReviewGroupRequest {
        group_id: g.id,
        decision: lpb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    listings
        .review_group(with_token(approve, &op))
        .await
        .unwrap()
        .into_inner()
}

fn join(group_id: &str, person: &str) -> tonic::Request<pb::JoinGroupRequest> {
    with_token(join_request(group_id), &token(person, REGION, &[]))
}

/// What [`apart`] starts: listings, membership, membership's NATS, what to
/// keep for as long as they run (their databases, listings' NATS), and a
/// client of each.
type Apart = (
    RunningService,
    RunningService,
    Nats,
    (TestDb, TestDb, Nats),
    ListingsServiceClient<Channel>,
    MembershipServiceClient<Channel>,
);

/// Listings and membership on NATS servers of their own: membership hears of a
/// group only when a test tells it (`created_in_read_model`), so it must ask
/// listings.
async fn apart(backend: Backend) -> Apart {
    let (listings_nats, membership_nats) = (Nats::start(), Nats::start());
    let (ldb, mdb) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let listings = start_listings(&ldb, &listings_nats).await;
    let membership =
        start_membership(&mdb, &membership_nats, &listings.url(), Clock::system()).await;
    let lc = ListingsServiceClient::new(listings.channel().await);
    let mc = MembershipServiceClient::new(membership.channel().await);
    let keep = (ldb, mdb, listings_nats);
    (listings, membership, membership_nats, keep, lc, mc)
}

async fn join_works_right_after_publishing_even_before_the_event_arrives(backend: Backend) {
    // Membership never hears of the group through events, so it must ask listings.
    let (listings, membership, membership_nats, _keep, mut lc, mut mc) = apart(backend).await;
    let mut outside = OutsideSubscriber::connect(&membership_nats.url()).await;

    let group = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, true).await;
    let m = mc
        .join_group(join(&group.id, "bob"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.state(), pb::MembershipState::Active, "{backend:?}");
    assert_eq!(m.role(), pb::GroupRole::Member);
    assert_eq!(m.person_id, "bob");
    // Joining again is harmless and returns the same membership.
    let again = mc
        .join_group(join(&group.id, "bob"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, m.id);

    let mine = mc
        .list_my_memberships(with_token(
            pb::ListMyMembershipsRequest { page: None },
            &token("bob", REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.memberships.len(), 1);
    assert_eq!(mine.memberships[0].group_id, group.id);
    let others = mc
        .list_my_memberships(with_token(
            pb::ListMyMembershipsRequest { page: None },
            &token("carol", REGION, &[]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        others.memberships.is_empty(),
        "a person sees only their own memberships"
    );

    let joined_on = format!("selfhelp.{REGION}.membership.member.joined");
    let joined = outside.expect(&joined_on).await;
    assert_cloudevent(
        &joined,
        "org.selfhelp.membership.member.joined.v1",
        &format!("urn:selfhelp:{REGION}:membership"),
        "selfhelp.events.v1.MemberJoined",
    );
    // Carol joins after Bob's repeat: once her event is here, anything the
    // repeat had written (before hers, in the same outbox) would be here too.
    let carols = mc
        .join_group(join(&group.id, "carol"))
        .await
        .unwrap()
        .into_inner();
    outside
        .expect_matching(&joined_on, |e| ce_subject_of(e) == Some(carols.id.as_str()))
        .await;
    assert_eq!(
        outside.seen_about(&joined_on, &m.id),
        1,
        "a repeated join emits nothing"
    );
    membership.stop().await.unwrap();
    listings.stop().await.unwrap();
}

per_backend!(join_works_right_after_publishing_even_before_the_event_arrives);

async fn a_group_the_read_model_has_not_heard_of_is_asked_of_listings(backend: Backend) {
    let (listings, membership, _membership_nats, _keep, mut lc, mut mc) = apart(backend).await;
    let group = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, true).await;
    let draft = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, false).await;
    mc.join_group(join(&group.id, "bob")).await.unwrap();
    let members = |group_id: &str, person: &str| {
        as_person(
            pb::ListGroupMembersRequest {
                group_id: group_id.to_string(),
                states: vec![],
                page: None,
            },
            person,
        )
    };

    // Its organiser manages it at once, as listings names her organiser.
    let listed = mc
        .list_group_members(members(&group.id, "alice"))
        .await
        .expect("the organiser lists the members of a group just published")
        .into_inner();
    assert_eq!(
        listed
            .members
            .iter()
            .map(|m| m.person_id.as_str())
            .collect::<Vec<_>>(),
        ["bob"],
        "{backend:?}"
    );
    let refused = |group_id: &str, person: &str| {
        let (mut mc, ask) = (mc.clone(), members(group_id, person));
        async move { mc.list_group_members(ask).await.unwrap_err().code() }
    };
    // Anyone else is told no as before; a draft listings hides stays unknown.
    assert_eq!(refused(&group.id, "carol").await, Code::PermissionDenied);
    assert_eq!(refused(&draft.id, "carol").await, Code::NotFound);

    // With listings away, a group the read model does not know is to be asked
    // again, not said not to exist.
    listings.stop().await.unwrap();
    assert_eq!(refused(&group.id, "alice").await, Code::Unavailable);
    membership.stop().await.unwrap();
}

per_backend!(a_group_the_read_model_has_not_heard_of_is_asked_of_listings);

async fn joins_that_must_fail(backend: Backend) {
    let nats = Nats::start();
    let (ldb, mdb) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let listings = start_listings(&ldb, &nats).await;
    let membership = start_membership(&mdb, &nats, &listings.url(), Clock::system()).await;
    let mut lc = ListingsServiceClient::new(listings.channel().await);
    let mut mc = MembershipServiceClient::new(membership.channel().await);

    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        mc.join_group(join(&unknown, "bob"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "{backend:?}"
    );
    let err = mc.join_group(join("not-a-uuid", "bob")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["group_id"]);
    let anon = mc.join_group(join_request(&unknown)).await.unwrap_err();
    assert_eq!(anon.code(), Code::Unauthenticated);
    let leeds = with_token(join_request(&unknown), &token("bob", "leeds", &[]));
    assert_eq!(
        mc.join_group(leeds).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A draft: once membership has heard of it, joining is refused as a precondition.
    let draft = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, false).await;
    eventually(
        "joining a draft to be refused",
        Duration::from_secs(20),
        || {
            let mut mc = mc.clone();
            let id = draft.id.clone();
            async move {
                (mc.join_group(join(&id, "bob")).await.err()?.code() == Code::FailedPrecondition)
                    .then_some(())
            }
        },
    )
    .await;
    // Invitation-only groups need an invitation.
    let closed = create_group(&mut lc, "alice", lpb::JoinPolicy::InviteOnly, true).await;
    let refused = mc.join_group(join(&closed.id, "bob")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("invitation"),
        "{}",
        refused.message()
    );
    // No consent, a 20,000-character answer: refused naming the fields.
    let mut bad = join_request(&closed.id);
    bad.consent = None;
    bad.answer = "x".repeat(20_000);
    let err = mc
        .join_group(with_token(bad, &token("bob", REGION, &[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["consent", "answer"]);
    membership.stop().await.unwrap();
    listings.stop().await.unwrap();
}

per_backend!(joins_that_must_fail);

/// Tells membership (on its own NATS) that alice's group `group_id` was created
/// in `status` with `join_policy`, as listings would, and waits until it has
/// taken it in.
async fn created_in_read_model(
    nats: &Nats,
    group_id: &str,
    name: &str,
    status: &str,
    join_policy: &str,
) {
    let created = ev::GroupCreated {
        group: Some(ev::GroupSnapshot {
            group_id: group_id.to_string(),
            region: REGION.into(),
            name: name.to_string(),
            status: status.into(),
            join_policy: join_policy.into(),
            organiser_ids: vec!["alice".into()],
            topics: vec![],
            version: 1,
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
        "group.created",
        group_id,
        &created,
        &id,
        &id,
    )
    .await;
    wait_consumer_caught_up(
        &nats.url(),
        "LISTINGS",
        &format!("membership-{REGION}-listings"),
    )
    .await;
}

async fn a_read_model_that_lags_behind_publishing_is_checked_with_listings(backend: Backend) {
    let (listings, membership, membership_nats, _keep, mut lc, mut mc) = apart(backend).await;

    let draft = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, false).await;
    // Membership learns of the draft, and then nothing more.
    created_in_read_model(&membership_nats, &draft.id, &draft.name, "DRAFT", "OPEN").await;
    assert_eq!(
        mc.join_group(join(&draft.id, "bob"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition,
        "{backend:?}"
    );

    // Listings publishes it; membership's read model still says DRAFT.
    let t = token("alice", REGION, &[]);
    lc.submit_group(with_token(
        lpb::SubmitGroupRequest {
            group_id: draft.id.clone(),
        },
        &t,
    ))
    .await
    .unwrap();
    let op = token("op", REGION, &["operator"]);
    let approve = lpb::ReviewGroupRequest {
        group_id: draft.id.clone(),
        decision: lpb::ReviewDecision::Approve.into(),
        note: String::new(),
    };
    lc.review_group(with_token(approve, &op)).await.unwrap();

    let bob = mc
        .join_group(join(&draft.id, "bob"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (bob.state(), bob.role()),
        (pb::MembershipState::Active, pb::GroupRole::Member)
    );
    let alice = mc
        .join_group(join(&draft.id, "alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        alice.role(),
        pb::GroupRole::Organiser,
        "the organiser joins as organiser"
    );

    // A proposal the read model knows, for following without listings.
    let proposal_id = uuid::Uuid::now_v7().to_string();
    created_in_read_model(
        &membership_nats,
        &proposal_id,
        "A proposed group",
        "PROPOSED",
        "OPEN",
    )
    .await;
    // A group the read model still shows invitation-only, which listings now
    // shows open (its change on the way): a join is not refused on the old word.
    let opened = create_group(&mut lc, "alice", lpb::JoinPolicy::Open, true).await;
    created_in_read_model(
        &membership_nats,
        &opened.id,
        &opened.name,
        "PUBLISHED",
        "INVITE_ONLY",
    )
    .await;
    let erin = mc
        .join_group(join(&opened.id, "erin"))
        .await
        .expect("a join checked with listings, which shows the group open")
        .into_inner();
    assert_eq!(erin.state(), pb::MembershipState::Active, "{backend:?}");

    // Listings gone while the read model still says DRAFT: that may only be
    // behind, so joining or following is to be retried, not refused.
    listings.stop().await.unwrap();
    let carol = token("carol", REGION, &[]);
    let follow = |group_id: &str| {
        with_token(
            pb::FollowGroupRequest {
                group_id: group_id.to_string(),
            },
            &carol,
        )
    };
    let refused = mc.join_group(join(&draft.id, "carol")).await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unavailable,
        "{backend:?}: {refused:?}"
    );
    assert!(
        refused.message().contains("listings cannot be reached"),
        "{refused:?}"
    );
    let refused = mc.follow_group(follow(&draft.id)).await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unavailable,
        "{backend:?}: {refused:?}"
    );
    let refused = mc.join_group(join(&opened.id, "frank")).await.unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unavailable,
        "{backend:?}: invitation-only on the read model's word alone: {refused:?}"
    );
    // What the read model shows open needs no listings.
    mc.follow_group(follow(&proposal_id))
        .await
        .expect("following a proposal the read model knows, listings away");
    membership.stop().await.unwrap();
}

per_backend!(a_read_model_that_lags_behind_publishing_is_checked_with_listings);
