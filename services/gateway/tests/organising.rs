//! Organisers and staff on the web (issue 33), against the whole system for
//! real: NATS, the three services on their own databases (SQLite, and
//! PostgreSQL when `TEST_DATABASE_URL` is set), a real SMTP server, a real
//! OpenID Connect provider for staff, and the gateway. Olive proposes a group
//! through the form; Sam, an operator, sees it and approves it; it appears in
//! search. Olive edits it (the significant change waits, shown to both as a
//! difference), sets when it meets after a preview, answers Ann's request to
//! join, and cancels a meeting, which reaches Ann, and makes Ann a
//! co-organiser, whose desk it then is too. Every organiser and staff page
//! and form is tried by everyone else, and refused.

use std::time::Duration;

mod common;

use common::oidc::{Provider, python_packages, staff_config, staff_sign_in};
use common::web::{browser, field, get, mails_to, post, sign_in, unescape};
use common::{WholeSystem, group_request};
use selfhelp_testkit::{Backend, eventually, per_backend};

const NAME: &str = "Lakeside carers' circle";

/// Staff pages and forms refuse everyone else: `others` (someone signed out,
/// then two signed-in people who are not staff) each get GET `page` (when
/// given) and each POST of `forms`, sent with their own session's token:
/// signed out, sent to the staff sign-in; signed in, 403.
async fn staff_only(
    sys: &WholeSystem,
    others: [&reqwest::Client; 4],
    page: Option<&str>,
    forms: &[(&str, &[(&str, &str)])],
) {
    let gw = &sys.gateway;
    for (n, b) in others.into_iter().enumerate() {
        let signed_out = n == 0;
        let refused = if signed_out { 303 } else { 403 };
        if let Some(page) = page {
            let (status, _) = get(b, gw, page).await;
            assert_eq!(status, refused, "caller {n}: GET {page}");
        }
        let token = if signed_out {
            String::new()
        } else {
            csrf(b, sys, "/my/settings").await
        };
        for (path, fields) in forms {
            let mut form = vec![("csrf", token.as_str())];
            form.extend_from_slice(fields);
            let (status, to, _) = post(b, gw, path, &form).await;
            assert_eq!(status, refused, "caller {n}: POST {path}");
            if signed_out {
                assert!(to.starts_with("/staff/sign-in"), "POST {path}: {to}");
            }
        }
    }
}

/// The form token on `path`'s page.
async fn csrf(b: &reqwest::Client, sys: &WholeSystem, path: &str) -> String {
    let (status, page) = get(b, &sys.gateway, path).await;
    assert_eq!(status, 200, "{path}: {page}");
    field(&page, "csrf")
}

/// Every value a page's fields named `name` hold, in order.
fn values_of(page: &str, name: &str) -> Vec<String> {
    let marker = format!("name=\"{name}\" value=\"");
    page.split(&marker)
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .collect()
}

/// The errors a page lists, to show when a form was refused.
fn error_summary(page: &str) -> &str {
    page.split("error-summary-title")
        .nth(2)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or(page)
}

/// Owned form pairs as `post` takes them.
fn pairs_of(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The card as Olive fills it in, with `postcode` and what to do.
fn card<'a>(token: &'a str, postcode: &'a str, action: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", token),
        ("action", action),
        ("name", NAME),
        ("summary", "Tea and talk for people caring for someone"),
        ("description", "We meet in the library's quiet room."),
        ("topics", "carers"),
        ("format", "in_person"),
        ("join_policy", "approval"),
        ("join_question", "Who do you care for?"),
        ("venue-0-name", "Lakeside library"),
        ("venue-0-address", "1 Lake Street"),
        ("venue-0-town", "Nottingham"),
        ("venue-0-postcode", postcode),
        ("venue-0-accessibility", "Step-free, hearing loop"),
        ("cost_kind", "free"),
        ("languages", "en"),
        ("contact_name", "Group coordinator"),
        ("joining_details", "Ring the bell at the side door"),
        // A bot fills every field; the card has no such one.
        ("website_url", ""),
    ]
}

async fn organisers_and_staff_on_the_web(backend: Backend) {
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();
    let mut provider: Option<Provider> = None;
    let sys = WholeSystem::start_with(backend, |config, web_url| {
        let p = Provider::start(&packages, &format!("{web_url}/staff/callback"));
        staff_config(&p, config);
        provider = Some(p);
    })
    .await;
    let gw = &sys.gateway;
    let (olive, sam, ann, bea) = (browser(), browser(), browser(), browser());
    // Dora is an operator of another region: staff here, but not of here.
    let dora = browser();
    sign_in(&olive, gw, &sys.smtp, "olive@example.org", 0).await;
    sign_in(&ann, gw, &sys.smtp, "ann@example.org", 0).await;
    sign_in(&bea, gw, &sys.smtp, "bea@example.org", 0).await;
    staff_sign_in(&sam, gw, "sam").await;
    staff_sign_in(&dora, gw, "dora").await;
    // Bea runs a group of her own (made over gRPC as her person id).
    let (_, bea_data) = get(&bea, gw, "/my/data/download").await;
    let bea_id = serde_json::from_str::<serde_json::Value>(&bea_data).unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut client = sys.client.clone();
    let beas_group = common::create_as(
        &mut client,
        group_request("Bea's walking group", &["carers"], "NG7 2RD"),
        true,
        &bea_id,
    )
    .await;

    // Olive runs nothing yet; the form names a postcode listings refuses.
    let (status, page) = get(&olive, gw, "/organise").await;
    assert_eq!(status, 200);
    assert!(page.contains("You do not run a group here yet"), "{page}");
    let token = csrf(&olive, &sys, "/organise/new").await;
    let (status, _, refused) = post(
        &olive,
        gw,
        "/organise/new",
        &card(&token, "NOT A POSTCODE", "submit"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains("id=\"venue-0-postcode-error\""),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("value=\"{}\"", "Lakeside library")),
        "what she typed is kept"
    );
    let (status, to, page) = post(
        &olive,
        gw,
        "/organise/new",
        &card(&token, "NG1 5FS", "submit"),
    )
    .await;
    assert_eq!(status, 303, "{}", error_summary(&page));
    let desk = to.clone();
    let id = desk.trim_start_matches("/organise/").to_string();
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("Waiting for the region&#x27;s staff to check it"),
        "{page}"
    );
    let (_, page) = get(&olive, gw, "/organise").await;
    assert!(
        page.contains(&format!("href=\"/organise/{id}\"")),
        "listed as hers"
    );
    // Nobody finds it yet.
    let (_, found) = get(&ann, gw, "/?q=Lakeside").await;
    assert!(
        !found.contains(&format!("/groups/{id}\"")),
        "not before review"
    );

    // Sam sees it waiting, the whole card, and must choose a decision.
    let (status, staff) = get(&sam, gw, "/staff").await;
    assert_eq!(status, 200);
    assert!(
        staff.contains(&format!("href=\"/staff/groups/{id}\"")),
        "{staff}"
    );
    let review = format!("/staff/groups/{id}");
    let (status, page) = get(&sam, gw, &review).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("A new listing") && page.contains("Step-free, hearing loop"),
        "{page}"
    );
    let sam_token = field(&page, "csrf");
    let (status, _, refused) = post(
        &sam,
        gw,
        &format!("{review}/review"),
        &[("csrf", &sam_token)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"decision-error\""), "{refused}");
    let (status, _, refused) = post(
        &sam,
        gw,
        &format!("{review}/review"),
        &[("csrf", &sam_token), ("decision", "reject")],
    )
    .await;
    assert_eq!(status, 400, "a rejection needs a note");
    assert!(refused.contains("id=\"note-error\""), "{refused}");
    let (status, _, _) = post(
        &sam,
        gw,
        &format!("{review}/review"),
        &[("csrf", &sam_token), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 303);
    let found = eventually("the group in search", Duration::from_secs(20), || async {
        let (_, found) = get(&ann, gw, "/?q=Lakeside").await;
        found.contains(&format!("/groups/{id}\"")).then_some(found)
    })
    .await;
    assert!(found.contains(NAME) || found.contains("Lakeside carers&#x27; circle"));

    // Listed, it is to be confirmed once a year: from Olive's desk, or by
    // staff from its review page; each confirmation goes into its history.
    let desk_path = format!("/organise/{id}");
    let (_, page) = get(&olive, gw, &desk_path).await;
    assert!(page.contains("Details last confirmed on"), "{page}");
    let token = field(&page, "csrf");
    let (status, to, _) = post(
        &olive,
        gw,
        &format!("{desk_path}/confirm"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, desk_path.as_str()));
    let (status, to, _) = post(
        &sam,
        gw,
        &format!("{review}/confirm"),
        &[("csrf", &sam_token)],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, review.as_str()));
    let (_, page) = get(&sam, gw, &review).await;
    assert_eq!(
        page.matches("<th scope=\"row\">checked</th>").count(),
        2,
        "{page}"
    );
    let (_, staff) = get(&sam, gw, "/staff").await;
    assert!(
        staff.contains("Every listed group has been checked within the year."),
        "{staff}"
    );

    // A significant edit waits, shown as a difference to Olive and to Sam.
    let edit = format!("/organise/{id}/edit");
    let (status, page) = get(&olive, gw, &edit).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("the region's staff check your change before people see it"),
        "said before saving: {page}"
    );
    let version = field(&page, "version");
    let token = field(&page, "csrf");
    let mut changed = card(&token, "NG1 5FS", "save");
    changed.retain(|(k, _)| *k != "summary");
    changed.push(("summary", "Tea, talk and a walk for carers"));
    changed.push(("version", &version));
    let (status, to, page) = post(&olive, gw, &edit, &changed).await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/organise/{id}?saved=1").as_str()),
        "{page}"
    );
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("Tea, talk and a walk for carers"),
        "her change is shown: {page}"
    );
    let (_, public) = get(&ann, gw, &format!("/groups/{id}")).await;
    assert!(
        !public.contains("Tea, talk and a walk"),
        "not public before review"
    );
    let (_, page) = get(&sam, gw, &review).await;
    assert!(
        page.contains("Public now") && page.contains("Tea, talk and a walk for carers"),
        "{page}"
    );
    let (_, page) = get(&olive, gw, &edit).await;
    assert!(
        page.contains("A change of yours is already waiting for the staff"),
        "{page}"
    );
    // An edit of a version long gone: someone else's edit came in between;
    // said so, and what she typed is kept.
    let mut stale = changed.clone();
    stale.retain(|(k, _)| *k != "version");
    stale.push(("version", "1"));
    let (status, _, page) = post(&olive, gw, &edit, &stale).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Someone else changed this group"), "{page}");
    assert!(page.contains("Tea, talk and a walk for carers"), "kept");
    let (status, _, _) = post(
        &sam,
        gw,
        &format!("{review}/review"),
        &[("csrf", &sam_token), ("decision", "approve")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, public) = get(&ann, gw, &format!("/groups/{id}")).await;
    assert!(
        public.contains("Tea, talk and a walk for carers"),
        "approved"
    );
    // A second place: the form shows each place and one blank to add
    // another; a place whose fields are emptied is removed. Places are not
    // a change the staff check, so each applies at once.
    let edit_with = |page: &str, places: &[(&'static str, &'static str)]| {
        let mut pairs: Vec<(String, String)> = card("", "", "save")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("venue-") && *k != "csrf" && *k != "summary")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.push(("summary".into(), "Tea, talk and a walk for carers".into()));
        pairs.push(("csrf".into(), field(page, "csrf")));
        pairs.push(("version".into(), field(page, "version")));
        pairs.extend(places.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        pairs
    };
    let (_, page) = get(&olive, gw, &edit).await;
    assert!(
        page.contains("Place 1") && page.contains("Another place (optional)"),
        "{page}"
    );
    assert!(page.contains("id=\"venue-1-name\""), "a blank place to add");
    let two = edit_with(
        &page,
        &[
            ("venue-0-name", "Lakeside library"),
            ("venue-0-town", "Nottingham"),
            ("venue-0-postcode", "NG1 5FS"),
            ("venue-1-name", "Riverside room"),
            ("venue-1-town", ""),
            ("venue-1-postcode", "NG1 5FS"),
        ],
    );
    let (status, _, page) = post(&olive, gw, &edit, &pairs_of(&two)).await;
    assert_eq!(status, 400, "the second place's town is named: {page}");
    assert!(page.contains("id=\"venue-1-town-error\""), "{page}");
    assert!(page.contains("The town (place 2)"), "{page}");
    let mut two = two;
    two.retain(|(k, _)| k != "venue-1-town");
    two.push(("venue-1-town".into(), "Nottingham".into()));
    let (status, _, page) = post(&olive, gw, &edit, &pairs_of(&two)).await;
    assert_eq!(status, 303, "{page}");
    let (_, public) = get(&ann, gw, &format!("/groups/{id}")).await;
    assert!(
        public.contains("Lakeside library") && public.contains("Riverside room"),
        "both places: {public}"
    );
    let (_, page) = get(&olive, gw, &edit).await;
    assert!(page.contains("Place 2") && page.contains("value=\"Riverside room\""));
    let one = edit_with(
        &page,
        &[
            ("venue-1-name", "Riverside room"),
            ("venue-1-town", "Nottingham"),
            ("venue-1-postcode", "NG1 5FS"),
        ],
    );
    let (status, _, page) = post(&olive, gw, &edit, &pairs_of(&one)).await;
    assert_eq!(status, 303, "{page}");
    let (_, public) = get(&ann, gw, &format!("/groups/{id}")).await;
    assert!(
        !public.contains("Lakeside library") && public.contains("Riverside room"),
        "the emptied place is gone: {public}"
    );
    // The staff see every decision and change, and who made it.
    let (_, page) = get(&sam, gw, &review).await;
    for line in [
        "History: every change and decision",
        "held edit",
        "approved",
        "PUBLISHED",
        "an organiser",
        "staff or a former organiser",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }

    // When it meets: a preview names a wrong field, then shows the rule and
    // the meetings without saving; saving keeps it.
    let token = csrf(&olive, &sys, &desk).await;
    let schedule = format!("/organise/{id}/schedule");
    let today = chrono::Utc::now().date_naive().to_string();
    let rule = |action: &'static str, start: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("action", action.to_string()),
            ("pattern", "weekly".to_string()),
            ("interval", "1".to_string()),
            ("weekday", "wednesday".to_string()),
            ("start_time", start.to_string()),
            ("end_time", "20:30".to_string()),
            ("valid_from", today.clone()),
        ]
    };
    let posted = |b: &reqwest::Client, path: String, form: Vec<(&'static str, String)>| {
        let b = b.clone();
        let url = gw.url(&path);
        async move {
            let answer = b.post(url).form(&form).send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap())
        }
    };
    let (status, page) = posted(&olive, schedule.clone(), rule("preview", "25:00")).await;
    assert_eq!(status, 400);
    assert!(page.contains("id=\"start_time-error\""), "{page}");
    let (status, page) = posted(&olive, schedule.clone(), rule("preview", "19:00")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Every Wednesday") && page.contains("Nothing is saved yet"),
        "{page}"
    );
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("No regular meetings are set"),
        "a preview saves nothing"
    );
    let (status, _) = posted(&olive, schedule.clone(), rule("save", "19:00")).await;
    assert_eq!(status, 303);
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(page.contains("Now: <strong>Every Wednesday"), "{page}");
    let meeting_dates = values_of(&page, "date");
    let first_meeting = meeting_dates[0].clone();

    // Ann asks to join with her answer; Olive sees it and says yes.
    let group_page = format!("/groups/{id}");
    let ann_token = csrf(&ann, &sys, &group_page).await;
    let (status, _, _) = post(
        &ann,
        gw,
        &format!("{group_page}/join"),
        &[
            ("csrf", &ann_token),
            ("agree", "1"),
            ("display_name", "Ann"),
            ("answer", "My mother"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let page = eventually(
        "Ann's request on Olive's desk",
        Duration::from_secs(20),
        || async {
            let (_, page) = get(&olive, gw, &desk).await;
            page.contains("My mother").then_some(page)
        },
    )
    .await;
    let approve = page
        .split("action=\"")
        .find(|a| a.contains("/approve\""))
        .and_then(|a| a.split('"').next())
        .unwrap()
        .to_string();
    let membership_id = approve.split('/').nth(4).unwrap().to_string();

    // Everyone else is refused every organiser and staff page and form, and
    // nothing changes: anonymous, a member, the organiser of another group,
    // an operator (on organisers' pages), the organiser on staff pages, and
    // an operator of another region on both.
    let stranger = browser();
    let callers: [(&str, &reqwest::Client); 6] = [
        ("anonymous", &stranger),
        ("member", &ann),
        ("other organiser", &bea),
        ("operator", &sam),
        ("organiser", &olive),
        ("operator of another region", &dora),
    ];
    let organisers_pages = [
        format!("/organise/{id}"),
        format!("/organise/{id}/edit"),
        format!("/organise/{id}/sharing"),
    ];
    let organisers_forms = [
        format!("/organise/{id}/edit"),
        format!("/organise/{id}/schedule"),
        format!("/organise/{id}/meetings/cancel"),
        format!("/organise/{id}/meetings/move"),
        format!("/organise/{id}/meetings/add"),
        format!("/organise/{id}/submit"),
        format!("/organise/{id}/confirm"),
        approve.clone(),
        format!("/organise/{id}/requests/{membership_id}/decline"),
        format!("/organise/{id}/members/{membership_id}/co_organiser"),
        format!("/organise/{id}/members/{membership_id}/remove"),
        format!("/organise/{id}/invitations"),
        format!("/organise/{id}/announce"),
        format!("/organise/{id}/rota"),
        format!("/organise/{id}/sharing/correct"),
    ];
    let staff_forms = [
        format!("/staff/groups/{id}/review"),
        format!("/staff/groups/{id}/suspend"),
        format!("/staff/groups/{id}/confirm"),
    ];
    for (who, b) in callers {
        let organiser = who == "organiser";
        let operator = who == "operator";
        for path in &organisers_pages {
            let (status, page) = get(b, gw, path).await;
            let expected = match who {
                "anonymous" => 303,
                "organiser" => 200,
                _ => 403,
            };
            assert_eq!(status, expected, "{who} GET {path}");
            if !organiser {
                assert!(!page.contains("My mother"), "{who} sees no request");
            }
        }
        // Their own session's token, so only the permission can refuse them.
        let token = if who == "anonymous" {
            String::new()
        } else {
            csrf(b, &sys, "/my/settings").await
        };
        if !organiser {
            for path in &organisers_forms {
                let form = [
                    ("csrf", token.as_str()),
                    ("date", first_meeting.as_str()),
                    ("note", "closed"),
                    ("pattern", "weekly"),
                    ("weekday", "friday"),
                    ("start_time", "10:00"),
                    ("end_time", "11:00"),
                    ("valid_from", today.as_str()),
                    ("action", "save"),
                    ("name", "Taken over"),
                ];
                let (status, to, _) = post(b, gw, path, &form).await;
                if who == "anonymous" {
                    assert_eq!(status, 303, "{who} POST {path}");
                    assert!(to.starts_with("/sign-in"), "{who} POST {path}: {to}");
                } else {
                    assert_eq!(status, 403, "{who} POST {path}");
                }
            }
        }
        let (status, page) = get(b, gw, &review).await;
        let expected = match who {
            "anonymous" => 303,
            "operator" => 200,
            _ => 403,
        };
        assert_eq!(status, expected, "{who} GET {review}");
        if !operator {
            assert!(!page.contains("Public now"));
            for path in &staff_forms {
                let form = [
                    ("csrf", token.as_str()),
                    ("decision", "reject"),
                    ("note", "no"),
                    ("reason", "no"),
                ];
                let (status, to, _) = post(b, gw, path, &form).await;
                if who == "anonymous" {
                    assert_eq!(status, 303, "{who} POST {path}");
                    assert!(to.starts_with("/staff/sign-in"), "{who} POST {path}: {to}");
                } else {
                    assert_eq!(status, 403, "{who} POST {path}");
                }
            }
        }
    }
    // Bea's own desk is hers, not Olive's.
    let (status, _) = get(&olive, gw, &format!("/organise/{}", beas_group.id)).await;
    assert_eq!(status, 403);
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("Now: <strong>Every Wednesday"),
        "the schedule stands"
    );
    assert!(page.contains("My mother"), "the request stands");
    assert!(
        page.contains(&format!("value=\"{first_meeting}\"")),
        "no meeting was cancelled"
    );
    let (_, public) = get(&ann, gw, &format!("/groups/{id}")).await;
    assert!(!public.contains("Taken over"), "nobody else renamed it");

    // Olive says yes with a note; Ann is a member and told.
    let token = csrf(&olive, &sys, &desk).await;
    let (status, _, _) = post(
        &olive,
        gw,
        &approve,
        &[("csrf", &token), ("note", "See you Wednesday")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, mine) = get(&ann, gw, "/my/groups").await;
    assert!(
        mine.contains(&format!("href=\"/groups/{id}\"")) && mine.contains("Member"),
        "{mine}"
    );

    // Olive messages the members: an empty message is named; then it reaches
    // Ann (inbox and email) and not Bea, who follows the group but was not
    // included, nor anyone's address.
    let bea_token = csrf(&bea, &sys, &group_page).await;
    let (status, _, _) = post(
        &bea,
        gw,
        &format!("{group_page}/follow"),
        &[("csrf", &bea_token)],
    )
    .await;
    assert_eq!(status, 303, "Bea follows");
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("1 person follows it for news without joining."),
        "how many, not who"
    );
    let announce = format!("/organise/{id}/announce");
    let (status, _, page) = post(
        &olive,
        gw,
        &announce,
        &[("csrf", &token), ("title", "Christmas"), ("body", "")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"announce_body-error\""),
        "{}",
        error_summary(&page)
    );
    assert!(page.contains("value=\"Christmas\""), "the subject is kept");
    let (status, to, _) = post(
        &olive,
        gw,
        &announce,
        &[
            ("csrf", &token),
            ("title", "Christmas"),
            ("body", "Mince pies at the next meeting"),
        ],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/organise/{id}?sent=1").as_str())
    );
    eventually(
        "the message in Ann's inbox",
        Duration::from_secs(30),
        || async {
            let (_, inbox) = get(&ann, gw, "/my/notifications").await;
            unescape(&inbox)
                .contains("Mince pies at the next meeting")
                .then_some(())
        },
    )
    .await;
    // Ann reports the message to the staff: her reason is asked for, and
    // Sam sees the message and the reason but not who sent the report. The
    // report page is Ann's alone.
    let (_, inbox) = get(&ann, gw, "/my/notifications").await;
    let report_message = inbox
        .split("href=\"")
        .filter_map(|a| a.split('"').next())
        .find(|a| a.starts_with("/my/notifications/") && a.ends_with("/report"))
        .expect("a report link on the organisers' message")
        .to_string();
    let (status, page) = get(&ann, gw, &report_message).await;
    assert_eq!(status, 200);
    assert!(unescape(&page).contains("Mince pies at the next meeting"));
    for (who, b) in [("other person", &bea), ("organiser", &olive)] {
        let (status, page) = get(b, gw, &report_message).await;
        assert_eq!(status, 404, "{who}: {page}");
    }
    let ann_token = field(&page, "csrf");
    let (status, _, page) = post(
        &ann,
        gw,
        &report_message,
        &[("csrf", &ann_token), ("reason", "")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"reason-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post(
        &ann,
        gw,
        &report_message,
        &[("csrf", &ann_token), ("reason", "Off topic for the group")],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{report_message}?sent=1").as_str())
    );
    let (_, staff) = get(&sam, gw, "/staff").await;
    let staff = unescape(&staff);
    assert!(
        staff.contains("A member reported a message the organisers sent")
            && staff.contains("Why: Off topic for the group")
            && staff.contains("Mince pies at the next meeting"),
        "{staff}"
    );
    // What listings holds of it has no reply address (and a report has no
    // field for who sent it).
    let queued = sys
        .client
        .clone()
        .list_staff_reports(selfhelp_testkit::with_token(
            selfhelp_proto::listings::v1::ListStaffReportsRequest { page: None },
            &selfhelp_testkit::token("olu", common::REGION, &["operator"]),
        ))
        .await
        .unwrap()
        .into_inner()
        .reports;
    let reported = queued
        .iter()
        .find(|r| r.message.contains("Off topic for the group"))
        .expect("the report, queued");
    assert_eq!(reported.group_id, id);
    assert!(reported.reply_to.is_empty(), "{reported:?}");
    let close = staff
        .split("action=\"")
        .filter_map(|a| a.split('"').next())
        .find(|a| a.starts_with("/staff/reports/"))
        .unwrap()
        .to_string();
    let sam_token = csrf(&sam, &sys, "/staff").await;
    let (status, _, _) = post(
        &sam,
        gw,
        &close,
        &[("csrf", &sam_token), ("note", "Spoke to Olive")],
    )
    .await;
    assert_eq!(status, 303);

    eventually(
        "the message in Ann's email",
        Duration::from_secs(30),
        || async {
            mails_to(&sys.smtp, "ann@example.org")
                .iter()
                .find(|m| m.contains("Mince pies at the next meeting"))
                .map(|m| assert!(!m.contains("olive@example.org"), "no address: {m}"))
        },
    )
    .await;

    // Olive cancels the first meeting with a note; Ann is told, in her inbox
    // and by email.
    let (status, _, _) = post(
        &olive,
        gw,
        &format!("/organise/{id}/meetings/cancel"),
        &[
            ("csrf", &token),
            ("date", &first_meeting),
            ("note", "The library is closed"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        !page.contains(&format!("value=\"{first_meeting}\"")),
        "cancelled: {page}"
    );
    eventually(
        "the cancellation in Ann's inbox",
        Duration::from_secs(30),
        || async {
            let (_, inbox) = get(&ann, gw, "/my/notifications").await;
            unescape(&inbox)
                .contains("The library is closed")
                .then_some(())
        },
    )
    .await;
    eventually(
        "the cancellation in Ann's email",
        Duration::from_secs(30),
        || async {
            mails_to(&sys.smtp, "ann@example.org")
                .iter()
                .any(|m| m.contains("The library is closed"))
                .then_some(())
        },
    )
    .await;
    // Bea follows the group, so she hears of the cancellation (meeting
    // changes go to followers), but not of the members' message.
    let (_, inbox) = get(&bea, gw, "/my/notifications").await;
    assert!(
        !unescape(&inbox).contains("Mince pies"),
        "the message went to members only"
    );

    // A meeting moved, and a one-off added (a wrong time named first).
    let second = meeting_dates[1].clone();
    let moved_to = (chrono::NaiveDate::parse_from_str(&second, "%Y-%m-%d").unwrap()
        + chrono::Duration::days(1))
    .to_string();
    let (status, _, _) = post(
        &olive,
        gw,
        &format!("/organise/{id}/meetings/move"),
        &[
            ("csrf", &token),
            ("date", &second),
            ("new_date", &moved_to),
            ("start_time", "18:00"),
            ("end_time", "19:30"),
            ("note", "Thursday this week"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let picnic = (chrono::Utc::now().date_naive() + chrono::Duration::days(20)).to_string();
    let (status, _, page) = post(
        &olive,
        gw,
        &format!("/organise/{id}/meetings/add"),
        &[
            ("csrf", &token),
            ("date", &picnic),
            ("start_time", "noon"),
            ("end_time", "15:00"),
            ("note", "Summer picnic"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"add_start_time-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, _, _) = post(
        &olive,
        gw,
        &format!("/organise/{id}/meetings/add"),
        &[
            ("csrf", &token),
            ("date", &picnic),
            ("start_time", "12:00"),
            ("end_time", "15:00"),
            ("note", "Summer picnic"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = get(&olive, gw, &desk).await;
    let page = unescape(&page);
    assert!(
        page.contains("Thursday this week") && page.contains("6:00pm"),
        "moved: {page}"
    );
    assert!(page.contains("Summer picnic"), "added");

    // An invitation code: a wrong number named, then one shown once.
    let invite = format!("/organise/{id}/invitations");
    let (status, _, page) = post(
        &olive,
        gw,
        &invite,
        &[("csrf", &token), ("max_uses", "0"), ("valid_days", "7")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("id=\"max_uses-error\""));
    let (status, _, page) = post(
        &olive,
        gw,
        &invite,
        &[("csrf", &token), ("max_uses", "5"), ("valid_days", "7")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("The invitation code is"), "{page}");
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(!page.contains("The invitation code is"), "shown once");

    // A visitor writes to the organisers from the group's page: a bot's
    // hidden field sends nothing; without the box ticked the address typed
    // stays behind; with it, Olive may reply. The visitor's address caps how
    // many they send.
    let contact = format!("/groups/{id}/contact");
    let (_, public) = get(&ann, gw, &group_page).await;
    assert!(
        public.contains(&format!("href=\"{contact}\"")),
        "linked from the page"
    );
    let visitor = browser();
    let (status, page) = get(&visitor, gw, &contact).await;
    assert_eq!(status, 200, "{page}");
    let t = field(&page, "csrf");
    let (status, _, page) = post(&visitor, gw, &contact, &[("csrf", &t), ("message", " ")]).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"message-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post(
        &visitor,
        gw,
        &contact,
        &[
            ("csrf", &t),
            ("message", "Cheap pills"),
            ("website", "http://spam.example"),
        ],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{contact}?sent=1").as_str())
    );
    for (message, tick) in [
        ("Is it open to dads?", false),
        ("Can I bring my son?", true),
    ] {
        let mut form = vec![
            ("csrf", t.as_str()),
            ("name", "Vic"),
            ("message", message),
            ("reply_to", "vic@example.org"),
        ];
        if tick {
            form.push(("may_reply", "1"));
        }
        let (status, _, _) = post(&visitor, gw, &contact, &form).await;
        assert_eq!(status, 303, "{message}");
    }
    let inbox = eventually(
        "the visitor's messages in Olive's inbox",
        Duration::from_secs(30),
        || async {
            let (_, inbox) = get(&olive, gw, "/my/notifications").await;
            let inbox = unescape(&inbox);
            (inbox.contains("Is it open to dads?") && inbox.contains("Can I bring my son?"))
                .then_some(inbox)
        },
    )
    .await;
    assert!(
        !inbox.contains("Cheap pills"),
        "the bot's message went nowhere"
    );
    assert_eq!(
        inbox.matches("vic@example.org").count(),
        1,
        "only where allowed: {inbox}"
    );
    assert!(inbox.contains("They did not give an address for a reply."));
    let (_, annbox) = get(&ann, gw, "/my/notifications").await;
    assert!(
        !unescape(&annbox).contains("Is it open to dads?"),
        "to the organisers only"
    );
    let (status, _, _) = post(&visitor, gw, &contact, &[("csrf", &t), ("message", "Four")]).await;
    assert_eq!(status, 303);
    let (status, _, _) = post(&visitor, gw, &contact, &[("csrf", &t), ("message", "Five")]).await;
    assert_eq!(status, 303);
    let (status, _, _) = post(&visitor, gw, &contact, &[("csrf", &t), ("message", "Six")]).await;
    assert_eq!(status, 429, "five an hour from one address");

    // A visitor reports a problem with the listing, and another tells staff
    // of a group the directory lacks; a bot's hidden field queues nothing.
    // Sam sees both, the reply address only where allowed, and closes one
    // with a note; nobody else may close them.
    let report = format!("/groups/{id}/report");
    assert!(
        public.contains(&format!("href=\"{report}\"")),
        "linked from the page"
    );
    let reporter = browser();
    let (status, page) = get(&reporter, gw, &report).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Report a problem with this listing"));
    let t = field(&page, "csrf");
    let (status, _, page) = post(&reporter, gw, &report, &[("csrf", &t), ("message", "")]).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"message-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, _, page) = post(
        &reporter,
        gw,
        &report,
        &[("csrf", &t), ("message", "Moved"), ("may_reply", "1")],
    )
    .await;
    assert_eq!(status, 400, "a reply needs an address");
    assert!(
        page.contains("id=\"reply_to-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post(
        &reporter,
        gw,
        &report,
        &[
            ("csrf", &t),
            ("message", "It meets in the library now"),
            ("may_reply", "1"),
            ("reply_to", "rae@example.org"),
        ],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{report}?sent=1").as_str())
    );
    let (_, page) = get(&reporter, gw, &to).await;
    assert!(
        page.contains("the region&#x27;s staff have your message")
            || page.contains("the region's staff have your message"),
        "{page}"
    );
    let (_, home) = get(&reporter, gw, "/").await;
    assert!(home.contains("href=\"/tell-us\""), "the footer asks");
    let (status, page) = get(&reporter, gw, "/tell-us").await;
    assert_eq!(status, 200);
    let t = field(&page, "csrf");
    let (status, _, page) = post(
        &reporter,
        gw,
        "/tell-us",
        &[
            ("csrf", &t),
            ("message", "Tuesdays at the chapel"),
            ("reply_to", "rae@example.org"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"name-error\""),
        "{}",
        error_summary(&page)
    );
    assert!(
        page.contains("Tuesdays at the chapel"),
        "what was typed is kept"
    );
    for (name, website) in [
        ("Chapel walkers", ""),
        ("Cheap pills", "http://spam.example"),
    ] {
        let (status, to, _) = post(
            &reporter,
            gw,
            "/tell-us",
            &[
                ("csrf", &t),
                ("name", name),
                ("message", "Tuesdays at the chapel"),
                ("reply_to", "rae@example.org"),
                ("website", website),
            ],
        )
        .await;
        assert_eq!((status, to.as_str()), (303, "/tell-us?sent=1"), "{name}");
    }
    let (status, staff) = get(&sam, gw, "/staff").await;
    assert_eq!(status, 200);
    let staff = unescape(&staff);
    assert!(staff.contains("2 waiting"), "{staff}");
    assert!(
        staff.contains("It meets in the library now") && staff.contains("reply to rae@example.org")
    );
    assert!(staff.contains("Suggested group: Chapel walkers") && staff.contains("no reply wanted"));
    assert!(!staff.contains("Cheap pills"));
    assert_eq!(
        staff.matches("rae@example.org").count(),
        1,
        "not ticked, not kept"
    );
    let close = staff
        .split("action=\"")
        .filter_map(|a| a.split('"').next())
        .find(|a| a.starts_with("/staff/reports/"))
        .unwrap()
        .to_string();
    let report_id = close.split('/').nth(3).unwrap().to_string();
    staff_only(
        &sys,
        [&stranger, &ann, &olive, &dora],
        Some("/staff"),
        &[(close.as_str(), &[("note", "mine")])],
    )
    .await;
    let sam_token = csrf(&sam, &sys, "/staff").await;
    let (status, _, page) = post(&sam, gw, &close, &[("csrf", &sam_token), ("note", " ")]).await;
    assert_eq!(status, 400);
    assert!(
        page.contains(&format!("id=\"note-{report_id}-error\"")),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post(
        &sam,
        gw,
        &close,
        &[
            ("csrf", &sam_token),
            ("note", "Venue updated with the organisers"),
        ],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/staff"));
    let (_, staff) = get(&sam, gw, "/staff").await;
    let staff = unescape(&staff);
    assert!(
        staff.contains("1 waiting") && !staff.contains("It meets in the library now"),
        "{staff}"
    );
    // Five reports an hour from one address (Ann's, the problem, the
    // suggestion: corrections and the bot's were not counted), then no more.
    for expected in [303, 303, 429] {
        let (status, _, _) = post(
            &reporter,
            gw,
            "/tell-us",
            &[("csrf", &t), ("name", "Another"), ("message", "Somewhere")],
        )
        .await;
        assert_eq!(status, expected);
    }

    // Olive shares the running of it: Ann becomes a co-organiser, and the
    // desk is hers too once listings has membership's word of it; the staff
    // pages stay closed to her.
    let token = csrf(&olive, &sys, &desk).await;
    let (_, page) = get(&olive, gw, &desk).await;
    let make_co = format!("/organise/{id}/members/{membership_id}/co_organiser");
    assert!(page.contains(&make_co), "Ann is among the members: {page}");
    let (status, _, _) = post(&olive, gw, &make_co, &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(page.contains("Co-organiser"), "{page}");
    eventually(
        "Ann's desk as co-organiser",
        Duration::from_secs(30),
        || async {
            let (status, _) = get(&ann, gw, &desk).await;
            (status == 200).then_some(())
        },
    )
    .await;
    let (_, page) = get(&ann, gw, "/organise").await;
    assert!(page.contains(&format!("href=\"{desk}\"")), "{page}");
    let (status, _) = get(&ann, gw, &review).await;
    assert_eq!(status, 403, "a co-organiser is not staff");

    // Olive shares the chair: members numbered in turn order (a bad number
    // and a missing duty are named), then the rota and the next turns show.
    let token = csrf(&olive, &sys, &desk).await;
    let (_, page) = get(&olive, gw, &desk).await;
    let orders: Vec<String> = page
        .split("name=\"order-")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|m| format!("order-{m}"))
        .collect();
    assert_eq!(orders.len(), 1, "Ann, the one member: {orders:?}");
    let rota = format!("/organise/{id}/rota");
    let (status, _, page) = post(
        &olive,
        gw,
        &rota,
        &[("csrf", &token), ("duty", ""), (&orders[0], "first")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"duty-error\""),
        "{}",
        error_summary(&page)
    );
    assert!(
        page.contains(&format!("id=\"{}-error\"", orders[0])),
        "{}",
        error_summary(&page)
    );
    let (status, to, page) = post(
        &olive,
        gw,
        &rota,
        &[("csrf", &token), ("duty", "chair"), (&orders[0], "1")],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, desk.as_str()),
        "{}",
        error_summary(&page)
    );
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(
        page.contains("<h3>Chair</h3>") && page.contains("In turn: "),
        "{page}"
    );

    // Ann says what she would do, on her own page; Olive sees it on "Is the
    // work shared?" (no meeting has taken place yet, so no turns).
    let part = format!("/my/groups/{id}/sharing");
    let (status, page) = get(&ann, gw, &part).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("You have not had a turn on a rota this year"),
        "{page}"
    );
    assert!(
        page.contains("value=\"chair\""),
        "the group's duties offered"
    );
    let ann_token = field(&page, "csrf");
    let too_long = "y".repeat(501);
    let (status, _, page) = post(
        &ann,
        gw,
        &part,
        &[
            ("csrf", &ann_token),
            ("willing", "chair"),
            ("other", "welcome, Newsletter"),
            ("skills", &too_long),
            ("counted", "1"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"skills-error\""),
        "{}",
        error_summary(&page)
    );
    assert!(
        page.contains("welcome, Newsletter"),
        "what she typed is kept"
    );
    let (status, to, _) = post(
        &ann,
        gw,
        &part,
        &[
            ("csrf", &ann_token),
            ("willing", "chair"),
            ("other", "welcome, Newsletter"),
            ("skills", "I can design posters"),
            ("counted", "1"),
        ],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{part}?saved=1").as_str())
    );
    let (_, page) = get(&ann, gw, &part).await;
    assert!(
        page.contains("I can design posters") && page.contains(" checked"),
        "{page}"
    );
    let sharing = format!("/organise/{id}/sharing");
    let (status, page) = get(&olive, gw, &sharing).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("No turns were taken on a rota in this period")
            && page.contains("chair, welcome, newsletter"),
        "{page}"
    );
    // Olive offers the next welcome turns to the willing: a welcome rota,
    // Ann first.
    assert!(
        page.contains("Ann: said they would do welcome, and has not done it in this period"),
        "{page}"
    );
    let offer = page
        .split("<form")
        .find(|f| f.contains("name=\"duty\" value=\"welcome\""))
        .expect("the welcome offer's form");
    let sharing_token = field(&page, "csrf");
    let mut fields = vec![
        ("csrf".to_string(), sharing_token),
        ("duty".to_string(), "welcome".to_string()),
    ];
    for part in offer.split("name=\"order-").skip(1) {
        let membership = part.split('"').next().unwrap();
        let number = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        fields.push((format!("order-{membership}"), number.to_string()));
    }
    assert_eq!(fields.len(), 3, "Ann alone: {fields:?}");
    let (status, to, _) = post(
        &olive,
        gw,
        &format!("/organise/{id}/rota"),
        &pairs_of(&fields),
    )
    .await;
    assert_eq!((status, to.as_str()), (303, desk.as_str()));
    let (_, page) = get(&olive, gw, &desk).await;
    assert!(page.contains("<h3>Welcome</h3>"), "{page}");
    let (status, page) = get(&olive, gw, &format!("{sharing}?from=last+spring")).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"from-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, _) = get(&bea, gw, &part).await;
    assert_eq!(status, 403, "not her group");

    // Sam keeps the topics: a bad code is named, a new topic is added (and
    // offered to the public at once), renamed, and retired in favour of
    // another once one is chosen; a taken code is refused on its field.
    // Nobody else may see or change them.
    let topics = "/staff/topics";
    let (status, page) = get(&sam, gw, topics).await;
    assert_eq!(status, 200);
    assert!(page.contains("Add a topic"), "{page}");
    let t = field(&page, "csrf");
    let new_topic = |code: &'static str| {
        [
            ("csrf", t.clone()),
            ("code", code.to_string()),
            ("name", "Tinnitus".to_string()),
            ("parent_id", String::new()),
        ]
    };
    let post_owned = |b: &reqwest::Client, path: String, form: Vec<(&'static str, String)>| {
        let b = b.clone();
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&b, gw, &path, &form).await
        }
    };
    let (status, _, page) = post_owned(&sam, topics.into(), new_topic("Tinnitus!").to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"code-error\""),
        "{}",
        error_summary(&page)
    );
    assert!(
        page.contains("value=\"Tinnitus\""),
        "what was typed is kept"
    );
    let (status, to, _) = post_owned(&sam, topics.into(), new_topic("tinnitus").to_vec()).await;
    assert_eq!((status, to.as_str()), (303, topics));
    let (status, _, page) = post_owned(&sam, topics.into(), new_topic("tinnitus").to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("Another topic has this code"),
        "{}",
        error_summary(&page)
    );
    let (_, public) = get(&ann, gw, "/topics").await;
    assert!(public.contains("Tinnitus"), "offered at once");
    let (_, page) = get(&sam, gw, topics).await;
    let topic_page = page
        .split("href=\"")
        .filter_map(|a| a.split('"').next())
        .find(|a| a.starts_with("/staff/topics/") && page.contains(&format!("{a}\">Tinnitus<")))
        .expect("the new topic's page")
        .to_string();
    let (status, page) = get(&sam, gw, &topic_page).await;
    assert_eq!(status, 200);
    let carers = page
        .split("<option value=\"")
        .filter_map(|o| o.split_once("\">"))
        .find(|(_, label)| label.starts_with("Carers"))
        .map(|(id, _)| id.to_string())
        .expect("another topic to choose");
    let rename = vec![
        ("csrf", t.clone()),
        ("name", "Tinnitus and hearing".to_string()),
        ("description", "Living with tinnitus".to_string()),
        ("parent_id", String::new()),
    ];
    let (status, to, _) = post_owned(&sam, format!("{topic_page}/save"), rename).await;
    assert_eq!((status, to.as_str()), (303, topics));
    let retire = |replacement: &str| {
        vec![
            ("csrf", t.clone()),
            ("replacement_id", replacement.to_string()),
        ]
    };
    let (status, _, page) = post_owned(&sam, format!("{topic_page}/retire"), retire("")).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"replacement_id-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post_owned(&sam, format!("{topic_page}/retire"), retire(&carers)).await;
    assert_eq!((status, to.as_str()), (303, topics));
    let (_, page) = get(&sam, gw, topics).await;
    assert!(
        page.contains("Tinnitus and hearing") && page.contains("Retired: use Carers"),
        "{page}"
    );
    let (_, public) = get(&ann, gw, "/topics").await;
    assert!(
        !public.contains("Tinnitus"),
        "retired topics are not offered"
    );
    let (save, retire) = (format!("{topic_page}/save"), format!("{topic_page}/retire"));
    let mine = [
        ("code", "mine"),
        ("name", "Mine"),
        ("replacement_id", carers.as_str()),
    ];
    staff_only(
        &sys,
        [&stranger, &bea, &olive, &dora],
        Some(topics),
        &[
            (topics, &mine),
            (save.as_str(), &mine),
            (retire.as_str(), &mine),
        ],
    )
    .await;
    let (_, page) = get(&sam, gw, topics).await;
    assert!(!page.contains(">Mine<"), "nothing was added by anyone else");

    // Olive invites Vera by email: a bad address is named; the email carries
    // a code for her alone and the group's address, and the desk shows no
    // code. Vera signs in and joins with it: in at once, though the group
    // asks for approval.
    let token = csrf(&olive, &sys, &desk).await;
    let invite = format!("/organise/{id}/invitations");
    let by_email = |email: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("max_uses", "1".to_string()),
            ("valid_days", "14".to_string()),
            ("email", email.to_string()),
        ]
    };
    let (status, _, page) = post_owned(&olive, invite.clone(), by_email("not an address")).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"email-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, _, page) = post_owned(&olive, invite.clone(), by_email("vera@example.org")).await;
    assert_eq!(status, 200, "{}", error_summary(&page));
    assert!(
        page.contains("The invitation has gone to that address"),
        "{page}"
    );
    assert!(!page.contains("The invitation code is"), "not shown");
    let code_in = |mail: &str| {
        mail.lines()
            .map(str::trim)
            .find(|l| l.len() == 12 && l.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_string)
    };
    let mail = eventually("Vera's invitation", Duration::from_secs(30), || async {
        mails_to(&sys.smtp, "vera@example.org")
            .into_iter()
            .find(|m| m.contains("You are invited to join"))
    })
    .await;
    assert!(mail.contains(&format!("/groups/{id}")), "{mail}");
    let vera_code = code_in(&mail).expect("a code in the email");
    let vera = browser();
    sign_in(&vera, gw, &sys.smtp, "vera@example.org", 1).await;
    let vera_token = csrf(&vera, &sys, &group_page).await;
    let join = format!("{group_page}/join");
    let (status, _, _) = post(
        &vera,
        gw,
        &join,
        &[("csrf", &vera_token), ("agree", "1"), ("code", &vera_code)],
    )
    .await;
    assert_eq!(status, 303);
    let (_, mine) = get(&vera, gw, "/my/groups").await;
    assert!(
        mine.contains(&format!("href=\"/groups/{id}\"")) && mine.contains("Member"),
        "in without waiting: {mine}"
    );

    // A group that came in by import has nobody to answer its requests:
    // Sam invites Rita to organise it; she joins with the code from her
    // email and runs it. Nobody else may send such an invitation.
    let doc = serde_json::json!({
        "id": "svc-imported-walkers",
        "name": "Imported walkers",
        "description": "Walks for people living with grief",
        "schedules": [{"freq": "WEEKLY", "byday": "SA", "opens_at": "10:00",
            "closes_at": "12:00", "attending_type": "Online", "interval": 1,
            "valid_from": "2026-01-03"}],
    });
    let imported = client
        .import_open_referral(selfhelp_testkit::with_token(
            selfhelp_proto::listings::v1::ImportOpenReferralRequest {
                services_json: vec![doc.to_string()],
                dry_run: false,
            },
            &selfhelp_testkit::token("sam-import", common::REGION, &["operator"]),
        ))
        .await
        .unwrap()
        .into_inner();
    let imported_id = imported.results[0].group_id.clone();
    let imported_review = format!("/staff/groups/{imported_id}");
    let imported_invite = format!("{imported_review}/invite");
    let (_, page) = get(&sam, gw, &imported_review).await;
    assert!(page.contains("Nobody organises it"), "{page}");
    staff_only(
        &sys,
        [&stranger, &bea, &olive, &dora],
        None,
        &[(
            imported_invite.as_str(),
            &[("email", "mallory@example.org")],
        )],
    )
    .await;
    let sam_token = csrf(&sam, &sys, &imported_review).await;
    let (status, _, page) = post(
        &sam,
        gw,
        &imported_invite,
        &[("csrf", &sam_token), ("email", "rita")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"email-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, to, _) = post(
        &sam,
        gw,
        &imported_invite,
        &[("csrf", &sam_token), ("email", "rita@example.org")],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{imported_review}?invited=1").as_str())
    );
    let (_, page) = get(&sam, gw, &to).await;
    assert!(page.contains("has gone to that address"), "{page}");
    let mail = eventually("Rita's invitation", Duration::from_secs(30), || async {
        mails_to(&sys.smtp, "rita@example.org")
            .into_iter()
            .find(|m| m.contains("invite you to organise Imported walkers"))
    })
    .await;
    assert!(mails_to(&sys.smtp, "mallory@example.org").is_empty());
    let rita_code = code_in(&mail).expect("a code in the email");
    let rita = browser();
    sign_in(&rita, gw, &sys.smtp, "rita@example.org", 1).await;
    let imported_page = format!("/groups/{imported_id}");
    let rita_token = csrf(&rita, &sys, &imported_page).await;
    let (status, _, _) = post(
        &rita,
        gw,
        &format!("{imported_page}/join"),
        &[("csrf", &rita_token), ("agree", "1"), ("code", &rita_code)],
    )
    .await;
    assert_eq!(status, 303);
    eventually("Rita's desk", Duration::from_secs(30), || async {
        let (status, _) = get(&rita, gw, &format!("/organise/{imported_id}")).await;
        (status == 200).then_some(())
    })
    .await;
    let (_, page) = get(&sam, gw, &imported_review).await;
    assert!(
        !page.contains("Nobody organises it"),
        "it has an organiser now"
    );

    // Sam imports a CSV of groups: checked first (nothing changes), each
    // group's fate said, the refused one's reasons given; then imported. A
    // file that cannot be read is named; nobody else may import.
    let import = "/staff/import";
    let (status, page) = get(&sam, gw, import).await;
    assert_eq!(status, 200);
    let t = field(&page, "csrf");
    let csv = "id,name,summary,topics,venue_name,town,postcode,frequency,weekday,start_time,end_time,valid_from,format\n\
               csv-1,Beeston carers,Tea and talk,carers,Library,Beeston,NG9 1GA,weekly,Wednesday,10:00,12:00,2026-12-02,In person\n\
               csv-2,Nowhere group,,,,,,weekly,Friday,19:00,20:00,2026-12-04,In person\n";
    let (status, _, page) = post(
        &sam,
        gw,
        import,
        &[
            ("csrf", &t),
            ("documents", "colour\nred\n"),
            ("action", "check"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("id=\"documents-error\""),
        "{}",
        error_summary(&page)
    );
    let (status, _, page) = post(
        &sam,
        gw,
        import,
        &[("csrf", &t), ("documents", csv), ("action", "check")],
    )
    .await;
    assert_eq!(status, 200, "{}", error_summary(&page));
    let page = unescape(&page);
    assert!(
        page.contains("1 would be imported, 0 already here, 1 refused"),
        "{page}"
    );
    assert!(
        page.contains("needs at least one venue"),
        "the reason: {page}"
    );
    let (_, found) = get(&ann, gw, "/?q=Beeston+carers").await;
    assert!(
        !found.contains(">Beeston carers<"),
        "a check changes nothing"
    );
    let (status, _, page) = post(
        &sam,
        gw,
        import,
        &[("csrf", &t), ("documents", csv), ("action", "import")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        unescape(&page).contains("1 imported, 0 already here, 1 refused"),
        "{page}"
    );
    eventually(
        "the imported group in search",
        Duration::from_secs(20),
        || async {
            let (_, found) = get(&ann, gw, "/?q=Beeston+carers").await;
            found.contains(">Beeston carers<").then_some(())
        },
    )
    .await;
    let (_, _, page) = post(
        &sam,
        gw,
        import,
        &[("csrf", &t), ("documents", csv), ("action", "check")],
    )
    .await;
    assert!(
        unescape(&page).contains("0 would be imported, 1 already here, 1 refused"),
        "{page}"
    );
    staff_only(
        &sys,
        [&stranger, &bea, &olive, &dora],
        Some(import),
        &[(import, &[("documents", csv), ("action", "import")])],
    )
    .await;

    // An event nobody can apply (a listing's news without its group): the
    // consumers park it. Sam sees it on the dead-letter page with its error
    // and not what it says; replayed, it fails again and stays. Nobody else
    // may see or replay dead letters.
    let poison_group = uuid::Uuid::now_v7().to_string();
    let event_id = uuid::Uuid::now_v7().to_string();
    selfhelp_testkit::publish_event(
        &sys.nats.url(),
        selfhelp_proto::streams::LISTINGS,
        common::REGION,
        "group.published",
        &poison_group,
        &selfhelp_proto::events::v1::GroupPublished {
            group: None,
            occurred_at: None,
        },
        &event_id,
        &event_id,
    )
    .await;
    let letters = "/staff/dead-letters";
    let page = eventually("the parked event", Duration::from_secs(30), || async {
        let (_, page) = get(&sam, gw, letters).await;
        (page
            .matches("org.selfhelp.listings.group.published")
            .count()
            >= 2)
            .then_some(page)
    })
    .await;
    assert!(
        page.contains("Nothing is parked."),
        "listings parked nothing: {page}"
    );
    let t = field(&page, "csrf");
    let (status, to, _) = post(
        &sam,
        gw,
        &format!("{letters}/notifications/replay"),
        &[("csrf", &t)],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = get(&sam, gw, &to).await;
    assert!(page.contains("0 applied, 1 still parked"), "{page}");
    assert_eq!(
        page.matches("<span class=\"code\">org.selfhelp.listings.group.published.v1</span>")
            .count(),
        2,
        "still parked: {page}"
    );
    let (status, _, _) = post(
        &sam,
        gw,
        &format!("{letters}/nowhere/replay"),
        &[("csrf", &t)],
    )
    .await;
    assert_eq!(status, 404);
    let replay = format!("{letters}/membership/replay");
    staff_only(
        &sys,
        [&stranger, &bea, &olive, &dora],
        Some(letters),
        &[(replay.as_str(), &[])],
    )
    .await;
    drop(provider);
}

per_backend!(organisers_and_staff_on_the_web);

/// A review-due reminder's one-click link: Olive, not signed in, opens it
/// from her email and says the details are still right; the link then does
/// nothing more, and one altered does nothing at all. (Reminders fall due at
/// once here: `freshness.warn_after_days` is 0.)
async fn a_reminder_confirms_a_listing_in_one_click(backend: Backend) {
    let sys = WholeSystem::start_tweaked(
        backend,
        |_, _| {},
        |listings| {
            listings.freshness.warn_after_days = 0;
            listings.freshness.check_interval_secs = 1;
        },
    )
    .await;
    let gw = &sys.gateway;
    let olive = browser();
    sign_in(&olive, gw, &sys.smtp, "olive@example.org", 0).await;
    let (_, data) = get(&olive, gw, "/my/data/download").await;
    let olive_id = serde_json::from_str::<serde_json::Value>(&data).unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut client = sys.client.clone();
    let group = common::create_as(
        &mut client,
        group_request("Riverside walkers", &["carers"], "NG7 2RD"),
        true,
        &olive_id,
    )
    .await;
    let path = format!("/groups/{}/still-right?token=", group.id);
    let link = eventually(
        "the reminder with its link",
        Duration::from_secs(30),
        || async {
            mails_to(&sys.smtp, "olive@example.org")
                .iter()
                .flat_map(|m| m.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .find(|w| w.contains(&path))
        },
    )
    .await;
    let link = link
        .split_once(&gw.url(""))
        .map_or(link.clone(), |(_, p)| p.to_string());
    let page_path = link.clone();
    let stranger = browser();
    let (status, page) = get(&stranger, gw, &page_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("These details are still right"), "{page}");
    let t = field(&page, "csrf");
    let token = field(&page, "token");
    let post_to = format!("/groups/{}/still-right", group.id);
    let (status, _, page) = post(&stranger, gw, &post_to, &[("csrf", &t), ("token", &token)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("the details are confirmed as still right"),
        "{page}"
    );
    let (status, _, page) = post(&stranger, gw, &post_to, &[("csrf", &t), ("token", &token)]).await;
    assert_eq!(status, 409);
    assert!(
        page.contains("confirmed after this link was sent"),
        "once: {page}"
    );
    let forged = format!("{}x", token);
    let (status, _, page) =
        post(&stranger, gw, &post_to, &[("csrf", &t), ("token", &forged)]).await;
    assert_eq!(status, 409);
    assert!(page.contains("not valid or has expired"), "{page}");
    let (_, desk) = get(&olive, gw, &format!("/organise/{}", group.id)).await;
    assert!(desk.contains("Details last confirmed on"), "{desk}");
}

per_backend!(a_reminder_confirms_a_listing_in_one_click);
