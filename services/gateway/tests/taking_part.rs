//! A person takes part on the web (issue 32), against the whole system for
//! real: NATS, the three services on their own databases (SQLite, and
//! PostgreSQL when `TEST_DATABASE_URL` is set) trusting the gateway's keys,
//! a real SMTP server, and the gateway. Ann signs in with the emailed link,
//! joins a group with consent, sees its members-only details, her rota turns
//! and the welcome; sets how she is told and an alert by postcode; makes her
//! private calendar; downloads everything; and is erased, with every
//! service's confirmation. Bea, signed in beside her, can read or change
//! none of it.

use std::time::Duration;

mod common;

use common::web::{browser, field, get, mails_to, post, sign_in, unescape};
use common::{REGION, WholeSystem, create, group_request, weekly};
use selfhelp_proto::listings::v1 as pb;
use selfhelp_proto::membership::v1 as mpb;
use selfhelp_proto::membership::v1::membership_service_client::MembershipServiceClient;
use selfhelp_testkit::{Backend, eventually, per_backend, with_token};

const DETAILS: &str = "Room 4 at the back; ring the bell";

/// Her person id, from her own download.
async fn person_id(b: &reqwest::Client, sys: &WholeSystem) -> String {
    let (status, json) = get(b, &sys.gateway, "/my/data/download").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    doc["person_id"].as_str().unwrap().to_string()
}

/// The form token on `path`'s page.
async fn csrf(b: &reqwest::Client, sys: &WholeSystem, path: &str) -> String {
    let (status, page) = get(b, &sys.gateway, path).await;
    assert_eq!(status, 200, "{path}");
    field(&page, "csrf")
}

async fn a_person_takes_part_on_the_web(backend: Backend) {
    let sys = WholeSystem::start(backend).await;
    let gw = &sys.gateway;
    let mut client = sys.client.clone();
    let mut req = group_request("Riverside bereavement circle", &["bereavement"], "NG1 5FS");
    req.joining_details = DETAILS.into();
    // The organisers give the details in the welcome too.
    req.welcome_with_joining_details = true;
    let group = create(&mut client, req, true).await;
    weekly(
        &mut client,
        &group.id,
        pb::Weekday::Wednesday,
        "19:00",
        "20:30",
    )
    .await;
    let other = create(
        &mut client,
        group_request("Carers' coffee morning", &["carers"], "NG7 2RD"),
        true,
    )
    .await;

    let walking = create(
        &mut client,
        group_request("Walk and talk", &["bereavement"], "NG5 1AA"),
        true,
    )
    .await;

    let (ann, bea) = (browser(), browser());
    sign_in(&ann, gw, &sys.smtp, "ann@example.org", 0).await;
    sign_in(&bea, gw, &sys.smtp, "bea@example.org", 0).await;

    // The group's page: the consent to agree to, and a refusal naming the
    // box when it is not ticked.
    let page_path = format!("/groups/{}", group.id);
    let (status, page) = get(&ann, gw, &page_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("Before you join"), "the consent is shown");
    assert!(!page.contains(DETAILS), "members-only details stay hidden");
    let token = field(&page, "csrf");
    let join = format!("/groups/{}/join", group.id);
    let (status, _, refused) = post(
        &ann,
        gw,
        &join,
        &[("csrf", &token), ("display_name", "Ann")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"agree-error\""), "the box is named");
    // A display name too long is named by the service, in the form.
    let long = "x".repeat(61);
    let (status, _, refused) = post(
        &ann,
        gw,
        &join,
        &[("csrf", &token), ("agree", "1"), ("display_name", &long)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"display_name-error\""), "{refused}");
    let (status, to, _) = post(
        &ann,
        gw,
        &join,
        &[
            ("csrf", &token),
            ("agree", "1"),
            ("display_name", "Ann"),
            ("hidden", "1"),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, page_path.as_str()));
    let (_, page) = get(&ann, gw, &page_path).await;
    assert!(page.contains("You are a member of this group."));
    assert!(page.contains(DETAILS), "a member sees the joining details");
    // Ann walks too; Bea does not.
    let walk_page = format!("/groups/{}", walking.id);
    let token_walk = csrf(&ann, &sys, &walk_page).await;
    let (status, _, _) = post(
        &ann,
        gw,
        &format!("{walk_page}/join"),
        &[("csrf", &token_walk), ("agree", "1")],
    )
    .await;
    assert_eq!(status, 303);
    // Bea joins too (not hidden), and follows the other group.
    let token_b = csrf(&bea, &sys, &page_path).await;
    let (status, _, _) = post(
        &bea,
        gw,
        &join,
        &[("csrf", &token_b), ("agree", "1"), ("display_name", "Bea")],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _, _) = post(
        &bea,
        gw,
        &format!("/groups/{}/follow", other.id),
        &[("csrf", &token_b)],
    )
    .await;
    assert_eq!(status, 303);

    // The organiser sees Ann hidden from others (recorded as she chose) and
    // the consent she gave.
    let mut mc = MembershipServiceClient::new(sys.membership.channel().await);
    let organiser = token_of("olive-organiser");
    let members = eventually("the organiser to see both", Duration::from_secs(20), || {
        let mut mc = mc.clone();
        let request = with_token(
            mpb::ListGroupMembersRequest {
                group_id: group.id.clone(),
                ..Default::default()
            },
            &organiser,
        );
        async move {
            let members = mc
                .list_group_members(request)
                .await
                .ok()?
                .into_inner()
                .members;
            (members.len() >= 2).then_some(members)
        }
    })
    .await;
    let ann_member = members.iter().find(|m| m.display_name == "Ann").unwrap();
    assert!(ann_member.hidden, "hidden, as she asked");
    let ann_id = person_id(&ann, &sys).await;
    let bea_id = person_id(&bea, &sys).await;
    assert_eq!(ann_member.person_id, ann_id);

    // A rota: Ann and Bea chair in turn.
    mc.set_rota(with_token(
        mpb::SetRotaRequest {
            group_id: group.id.clone(),
            duty: "chair".into(),
            volunteer_person_ids: vec![ann_id.clone(), bea_id.clone()],
        },
        &organiser,
    ))
    .await
    .unwrap();

    // My groups: the membership, the members-only details, the next
    // meetings, her turns with skip and swap.
    let (status, mine) = get(&ann, gw, "/my/groups").await;
    assert_eq!(status, 200);
    assert!(mine.contains("Riverside bereavement circle"));
    assert!(mine.contains(DETAILS));
    assert!(mine.contains("Next meetings"));
    assert!(mine.contains("You are <strong>chair</strong>"), "{mine}");
    let first_turn = field(&mine, "meeting_key");
    let token = field(&mine, "csrf");
    let skip = format!("/my/groups/{}/rota/skip", group.id);
    let swap = format!("/my/groups/{}/rota/swap", group.id);
    // A swap without the turn to take is named in the form.
    let (status, _, refused) = post(
        &ann,
        gw,
        &swap,
        &[
            ("csrf", &token),
            ("duty", "chair"),
            ("meeting_key", &first_turn),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("There is a problem"), "{refused}");
    let (status, to, _) = post(
        &ann,
        gw,
        &skip,
        &[
            ("csrf", &token),
            ("duty", "chair"),
            ("meeting_key", &first_turn),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/my/groups"));
    let rota = mc
        .get_rota(with_token(
            mpb::GetRotaRequest {
                group_id: group.id.clone(),
                duty: "chair".into(),
                meetings: 6,
            },
            &token_of(&ann_id),
        ))
        .await
        .unwrap()
        .into_inner();
    let turn = rota.rotas[0]
        .turns
        .iter()
        .find(|t| t.meeting_key == first_turn)
        .unwrap();
    assert!(
        !turn.mine,
        "the turn she skipped went to the next volunteer"
    );

    // Ann asks Bea to swap one of her turns: nothing changes until Bea
    // agrees on her own page.
    let (_, mine) = get(&ann, gw, "/my/groups").await;
    let her_turn = field(&mine, "meeting_key");
    let options = &mine[mine
        .find("name=\"other_meeting_key\"")
        .expect("a swap form")..];
    let beas_turn = options
        .split("<option value=\"")
        .nth(1)
        .and_then(|o| o.split('"').next())
        .expect("a turn to swap with")
        .to_string();
    let (status, to, _) = post(
        &ann,
        gw,
        &swap,
        &[
            ("csrf", &token),
            ("duty", "chair"),
            ("meeting_key", &her_turn),
            ("other_meeting_key", &beas_turn),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/my/groups"));
    let (_, mine) = get(&ann, gw, "/my/groups").await;
    assert!(mine.contains("Waiting for their answer"), "{mine}");
    let holder = |rota: &mpb::GetRotaResponse, key: &str| {
        rota.rotas[0]
            .turns
            .iter()
            .find(|t| t.meeting_key == key)
            .map(|t| t.mine)
    };
    let anns_rota = || {
        with_token(
            mpb::GetRotaRequest {
                group_id: group.id.clone(),
                duty: "chair".into(),
                meetings: 6,
            },
            &token_of(&ann_id),
        )
    };
    let before = mc.get_rota(anns_rota()).await.unwrap().into_inner();
    assert_eq!(holder(&before, &her_turn), Some(true), "still hers");
    let (_, beas) = get(&bea, gw, "/my/groups").await;
    assert!(beas.contains("asks to swap turns as chair"), "{beas}");
    let bea_csrf = field(&beas, "csrf");
    let answer = format!("/my/groups/{}/rota/answer", group.id);
    let swap_id = field(&beas, "swap_id");
    let agree = [
        ("csrf", bea_csrf.as_str()),
        ("swap_id", swap_id.as_str()),
        ("answer", "yes"),
    ];
    let (status, to, _) = post(&bea, gw, &answer, &agree).await;
    assert_eq!((status, to.as_str()), (303, "/my/groups"));
    // A second click finds it answered, and says so on her page.
    let (status, _, again) = post(&bea, gw, &answer, &agree).await;
    assert_eq!(status, 400);
    assert!(again.contains("That swap is no longer waiting"), "{again}");
    let after = mc.get_rota(anns_rota()).await.unwrap().into_inner();
    assert_eq!(
        (holder(&after, &her_turn), holder(&after, &beas_turn)),
        (Some(false), Some(true)),
        "swapped once Bea agreed"
    );

    // The welcome reaches her inbox, and her email (linking to the web).
    // Both groups' welcomes, whatever else has reached her by then; the page
    // last seen is shown if they never come.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let inbox = loop {
        let (_, page) = get(&ann, gw, "/my/notifications").await;
        let welcomed = |group: &str| page.contains(&format!("You are now a member of {group}"));
        if welcomed("Riverside bereavement circle") && welcomed("Walk and talk") {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 30s waiting for both welcomes in her inbox; it shows: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(inbox.contains("unread"), "{inbox}");
    assert!(
        inbox.contains("href=\"/groups/"),
        "it links to the group: {inbox}"
    );
    // The organisers chose to give the joining details in the welcome; the
    // walking group did not.
    assert_eq!(inbox.matches(DETAILS).count(), 1, "{inbox}");
    let welcome = eventually("the welcome email", Duration::from_secs(30), || {
        let mails = mails_to(&sys.smtp, "ann@example.org");
        async move {
            mails
                .into_iter()
                .find(|m| m.contains("Riverside bereavement circle"))
        }
    })
    .await;
    assert!(welcome.contains(&gw.url("/my/notifications")), "{welcome}");
    assert!(
        welcome.contains(DETAILS),
        "and so does its email: {welcome}"
    );
    let (status, to, _) = post(
        &ann,
        gw,
        "/my/notifications/read",
        &[("csrf", &field(&inbox, "csrf"))],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/my/notifications"));
    let (_, inbox) = get(&ann, gw, "/my/notifications").await;
    assert!(inbox.contains("Nothing unread"));
    // Live: the stream answers as server-sent events.
    let live = ann
        .get(gw.url("/my/notifications/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    drop(live);

    // How she is told: a wrong quiet hour is named; then saved.
    let token = csrf(&ann, &sys, "/my/settings").await;
    let (status, _, refused) = post(
        &ann,
        gw,
        "/my/settings",
        &[
            ("csrf", &token),
            ("email", "ann@example.org"),
            ("cadence", "daily"),
            ("quiet_start", "25:00"),
            ("quiet_end", "07:00"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"quiet_start-error\""), "{refused}");
    let (status, to, _) = post(
        &ann,
        gw,
        "/my/settings",
        &[
            ("csrf", &token),
            ("email", "ann@example.org"),
            ("group_updates", "1"),
            ("cadence", "daily"),
            ("quiet_start", "22:00"),
            ("quiet_end", "07:00"),
            ("muted", &other.id),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/my/settings?saved=1"));
    let (_, settings) = get(&ann, gw, "/my/settings?saved=1").await;
    assert!(settings.contains("Your settings are saved."));
    assert!(settings.contains("value=\"22:00\""));
    assert!(
        settings.contains(
            "id=\"cadence-daily\" name=\"cadence\" type=\"radio\" value=\"daily\" checked"
        )
    );
    assert!(
        settings.contains("Confirmed."),
        "signing in confirmed her address"
    );

    // An alert by postcode: an unknown one is named; a known one is kept.
    let token = csrf(&ann, &sys, "/my/alerts").await;
    let (status, _, refused) = post(
        &ann,
        gw,
        "/my/alerts",
        &[
            ("csrf", &token),
            ("topic", "bereavement"),
            ("postcode", "ZZ99 9ZZ"),
            ("distance", "10"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"postcode-error\""), "{refused}");
    let (status, _, _) = post(
        &ann,
        gw,
        "/my/alerts",
        &[
            ("csrf", &token),
            ("topic", "mental-health"),
            ("postcode", "ng1 5fs"),
            ("distance", "10"),
            ("include_online", "1"),
            ("label", "near home"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, alerts) = get(&ann, gw, "/my/alerts").await;
    assert!(alerts.contains("within 10 km of NG1 5FS"), "{alerts}");
    assert!(alerts.contains("ones that meet online"));
    let alert_id = field(&alerts, "id");

    // Her private calendar: shown once, read without a session, renewed.
    let token = csrf(&ann, &sys, "/my/calendar").await;
    let (status, _, made) = post(&ann, gw, "/my/calendar", &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    let address = made
        .split("<p class=\"details\"><a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|href| unescape(href).replacen("webcal://", "http://", 1))
        .expect("the address");
    let feed = reqwest::get(&address).await.unwrap();
    assert_eq!(feed.status().as_u16(), 200);
    assert_eq!(feed.headers()["cache-control"], "private, no-store");
    let ics = feed.text().await.unwrap();
    assert!(ics.contains("Riverside bereavement circle"), "{ics}");
    assert!(!ics.contains("Carers"), "only her groups");
    let (status, _, _) = post(&ann, gw, "/my/calendar", &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        reqwest::get(&address).await.unwrap().status().as_u16(),
        404,
        "renewed: the old one stops"
    );

    // Bea, signed in beside her, reads and changes none of Ann's things.
    let bea_token = csrf(&bea, &sys, "/my/groups").await;
    let ann_token = csrf(&ann, &sys, "/my/groups").await;
    // What only Ann's pages hold: her walking group (and its welcome), her
    // quiet hours, her alert, her address.
    for (path, secret) in [
        ("/my/groups", "Walk and talk"),
        ("/my/notifications", walking.id.as_str()),
        ("/my/settings", "22:00"),
        ("/my/alerts", "near home"),
        ("/my/data/download", "ann@example.org"),
        ("/account", "ann@example.org"),
    ] {
        let (_, own) = get(&ann, gw, path).await;
        assert!(own.contains(secret), "Ann's own {path} shows {secret}");
        let (status, page) = get(&bea, gw, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!page.contains(secret), "Bea read Ann's {path}");
    }
    let (_, download) = get(&bea, gw, "/my/data/download").await;
    assert!(!download.contains(&ann_id), "Bea's download names Ann");
    // Changes: each with Bea's own token (or Ann's, which Bea's session
    // refuses), aimed at Ann's things; each leaves them as they were.
    let ann_turn = field(&get(&ann, gw, "/my/groups").await.1, "meeting_key");
    let attempts: [Attempt<'_>; 4] = [
        (
            "skip Ann's turn",
            skip.clone(),
            vec![
                ("csrf", bea_token.clone()),
                ("duty", "chair".into()),
                ("meeting_key", ann_turn.clone()),
            ],
        ),
        (
            "delete Ann's alert",
            "/my/alerts/delete".into(),
            vec![("csrf", bea_token.clone()), ("id", alert_id.clone())],
        ),
        (
            "Ann's token with Bea's session",
            "/my/data/erase".into(),
            vec![("csrf", ann_token.clone()), ("confirm", "1".into())],
        ),
        (
            "mark Ann's notifications read",
            "/my/notifications/read".into(),
            vec![("csrf", bea_token.clone())],
        ),
    ];
    for (what, path, form) in &attempts {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, _) = post(&bea, gw, path, &form).await;
        // Refused outright, or done to Bea's own things only.
        assert!(status >= 300, "{what}: {status}");
    }
    let (_, alerts) = get(&ann, gw, "/my/alerts").await;
    assert!(alerts.contains("near home"), "Ann's alert stands");
    let (status, _) = get(&bea, gw, "/account").await;
    assert_eq!(status, 200, "Bea was not erased with Ann's token");
    let (_, mine) = get(&ann, gw, "/my/groups").await;
    assert!(
        mine.contains("You are <strong>chair</strong>"),
        "Ann's turns stand"
    );
    // Another's calendar address is not found without the secret.
    let (status, _) = get(&bea, gw, "/calendars/guess.ics").await;
    assert_eq!(status, 404);

    // Everything about her, from every service and the web, in one file.
    let (status, json) = get(&ann, gw, "/my/data/download").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["web"]["sign_in_address"], "ann@example.org");
    assert!(doc["membership"].to_string().contains(&group.id));
    assert!(doc["notifications"].to_string().contains("Welcome"));
    assert!(doc["listings"].is_object(), "{doc}");
    assert_eq!(doc["listings"]["person_id"], ann_id.as_str());

    // Erase me: the box must be ticked; then every service confirms.
    let token = csrf(&ann, &sys, "/my/data").await;
    let (status, _, refused) = post(&ann, gw, "/my/data/erase", &[("csrf", &token)]).await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"confirm-error\""));
    let erased = ann
        .post(gw.url("/my/data/erase"))
        .form(&[("csrf", token.as_str()), ("confirm", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status().as_u16(), 200);
    let cleared = erased.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let page = erased.text().await.unwrap();
    assert!(page.contains("You have been erased"), "{page}");
    for service in [
        "The website",
        "The directory",
        "Memberships",
        "Notifications",
    ] {
        assert!(page.contains(service), "{service} confirmed: {page}");
    }
    let (status, _) = get(&ann, gw, "/my/groups").await;
    assert_eq!(status, 303, "signed out");
    // Nothing of her is left on the web's side.
    let web_db = sea_orm::Database::connect(&sys.dbs[3].url).await.unwrap();
    for table in ["account", "session", "sign_in_link", "calendar_feed"] {
        let n = rows_naming(&web_db, table, &ann_id, "ann@example.org").await;
        assert_eq!(n, 0, "{backend:?}: {table} still names her");
    }
    // Bea is still a member; Ann is not.
    let members = mc
        .list_group_members(with_token(
            mpb::ListGroupMembersRequest {
                group_id: group.id.clone(),
                ..Default::default()
            },
            &organiser,
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    assert!(members.iter().all(|m| m.person_id != ann_id));
    assert!(members.iter().any(|m| m.person_id == bea_id));
}

per_backend!(a_person_takes_part_on_the_web);

/// A change Bea tries on Ann's things: what, where, and the form.
type Attempt<'a> = (&'a str, String, Vec<(&'a str, String)>);

/// A development token for `person` (the services take them beside the
/// gateway's), for reading what the web shows from the service's side.
fn token_of(person: &str) -> String {
    selfhelp_testkit::token(person, REGION, &[])
}

/// Rows of the web's `table` naming the person by id or address.
async fn rows_naming(
    db: &sea_orm::DatabaseConnection,
    table: &str,
    person_id: &str,
    email: &str,
) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let condition = match table {
        "account" => format!("person_id = '{person_id}' OR email = '{email}'"),
        "sign_in_link" => format!("email = '{email}'"),
        _ => format!("person_id = '{person_id}'"),
    };
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table} WHERE {condition}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}
