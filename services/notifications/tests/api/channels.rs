//! Preferences, email over a real SMTP server, webhooks to a real HTTP
//! receiver, digests with two replicas, quiet hours, saved alerts and the
//! delivery log — on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use selfhelp_testkit::SmtpServer;

use super::*;

fn tok(person: &str) -> String {
    token(person, REGION, &[])
}

fn channel_on(prefs: &pb::Preferences, category: pb::Category, channel: pb::Channel) -> bool {
    prefs
        .channels
        .iter()
        .find(|c| c.category == category as i32 && c.channel == channel as i32)
        .map(|c| c.enabled)
        .expect("every category × channel is listed")
}

fn with_smtp(mut config: Config, smtp: &SmtpServer) -> Config {
    config.email.transport = "smtp".into();
    config.email.smtp.host = "127.0.0.1".into();
    config.email.smtp.port = smtp.port();
    config.email.smtp.tls = "none".into();
    config.email.from = "Selfhelp Notts <no-reply@selfhelp.test>".into();
    config
}

async fn all_deliveries(
    client: &mut NotificationsServiceClient<Channel>,
    person: &str,
) -> Vec<pb::Delivery> {
    client
        .list_deliveries(with_token(
            pb::ListDeliveriesRequest {
                page: Some(PageRequest {
                    page_size: 100,
                    page_token: String::new(),
                }),
                ..Default::default()
            },
            &tok(person),
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

/// The person's delivery log but for the emails confirming their address.
async fn deliveries(
    client: &mut NotificationsServiceClient<Channel>,
    person: &str,
) -> Vec<pb::Delivery> {
    let mut log = all_deliveries(client, person).await;
    log.retain(|d| !d.confirms_email);
    log
}

/// The service on `clock` with its email links served on a port the system
/// picked (returned), which the links in its emails lead to.
async fn start_with_links(mut config: Config, clock: Clock) -> (RunningService, u16) {
    let page = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = page.local_addr().unwrap().port();
    config.http.public_url = format!("http://127.0.0.1:{port}");
    let svc = RunningService::start(SERVICE_NAME, move |l, s| {
        selfhelp_notifications::run_with_listeners(config, clock, l, Some(page), s)
    })
    .await;
    (svc, port)
}

const CONFIRM_SUBJECT: &str = "Please confirm your email address";

fn addressed_to(raw: &[u8], to: &str) -> bool {
    let mail = mailparse::parse_mail(raw).unwrap();
    mail.headers
        .iter()
        .any(|h| h.get_key_ref().eq_ignore_ascii_case("to") && h.get_value().contains(to))
}

/// The links in the confirmation emails sent to `to`, oldest first.
fn confirmation_links(smtp: &SmtpServer, to: &str) -> Vec<String> {
    smtp.messages()
        .into_iter()
        .filter(|raw| addressed_to(raw, to))
        .filter_map(|raw| {
            let mail = mailparse::parse_mail(&raw).unwrap();
            if header(&mail, "Subject") != CONFIRM_SUBJECT {
                return None;
            }
            let text = part(&mail, "text/plain");
            let at = text.find("http")?;
            let link = text[at..].split_whitespace().next()?.to_string();
            link.contains("/confirm-email?token=").then_some(link)
        })
        .collect()
}

/// Confirms `to` as its owner would: waits for its confirmation email and
/// presses the button the link leads to. The link.
async fn confirm_address(smtp: &SmtpServer, to: &str) -> String {
    let link = eventually("the confirmation email", Duration::from_secs(20), || {
        let found = confirmation_links(smtp, to);
        async move { found.last().cloned() }
    })
    .await;
    let done = reqwest::Client::new().post(&link).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK, "{link}");
    link
}

/// The emails sent to `to` but those asking to confirm the address.
fn mails_to(smtp: &SmtpServer, to: &str) -> Vec<Vec<u8>> {
    smtp.messages()
        .into_iter()
        .filter(|raw| {
            addressed_to(raw, to)
                && header(&mailparse::parse_mail(raw).unwrap(), "Subject") != CONFIRM_SUBJECT
        })
        .collect()
}

fn header(mail: &mailparse::ParsedMail, name: &str) -> String {
    use mailparse::MailHeaderMap;
    mail.headers.get_first_value(name).unwrap_or_default()
}

fn part(mail: &mailparse::ParsedMail, mime: &str) -> String {
    mail.subparts
        .iter()
        .find(|p| p.ctype.mimetype == mime)
        .map(|p| p.get_body().unwrap())
        .unwrap_or_else(|| panic!("no {mime} part"))
}

/// Listings' word that group `g`'s meeting on `date` is cancelled (at `version`).
async fn meeting_cancelled(nats: &Nats, g: &str, version: i64, date: &str) {
    publish(
        nats,
        LISTINGS,
        "occurrence.cancelled",
        g,
        &cancelled(g, version, date),
    )
    .await;
}

fn cancelled(g: &str, version: i64, date: &str) -> ev::OccurrenceCancelled {
    ev::OccurrenceCancelled {
        group: snapshot(g, &["olive"], version),
        date: date.into(),
        note: String::new(),
        occurred_at: None,
    }
}

async fn preferences_have_defaults_and_bad_input_names_the_field(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);

    let prefs = get_prefs(&mut client, "ann").await;
    assert_eq!(prefs.email, "");
    assert_eq!(prefs.cadence, pb::Cadence::Immediate as i32);
    assert_eq!(prefs.channels.len(), 8, "4 categories × email, webhook");
    assert!(prefs.channels.iter().all(|c| c.enabled));
    assert!(prefs.member_joined && !prefs.member_left, "{backend:?}");

    let bad = pb::Preferences {
        email: "not an address".into(),
        channels: vec![pb::ChannelSetting {
            category: pb::Category::Reminders as i32,
            channel: pb::Channel::InApp as i32,
            enabled: false,
        }],
        quiet_hours: Some(pb::QuietHours {
            start: "25:00".into(),
            end: "07:00".into(),
        }),
        time_zone: "Mars/Olympus".into(),
        muted_group_ids: vec!["x".into()],
        ..Default::default()
    };
    let err = client
        .update_preferences(with_token(
            pb::UpdatePreferencesRequest {
                preferences: Some(bad),
            },
            &tok("ann"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "channels[0].channel",
            "email",
            "muted_group_ids[0]",
            "quiet_hours.start",
            "time_zone"
        ]
    );

    let saved = set_prefs(&mut client, "ann", |p| {
        p.email = "ann@example.org".into();
        p.cadence = pb::Cadence::WeeklyDigest as i32;
        p.time_zone = "Europe/London".into();
        p.quiet_hours = Some(pb::QuietHours {
            start: "22:00".into(),
            end: "07:30".into(),
        });
        for c in &mut p.channels {
            if c.category == pb::Category::NewGroupAlerts as i32 {
                c.enabled = false;
            }
        }
        p.member_left = true;
    })
    .await;
    assert_eq!(get_prefs(&mut client, "ann").await, saved);
    assert!(!channel_on(
        &saved,
        pb::Category::NewGroupAlerts,
        pb::Channel::Email
    ));
    assert!(channel_on(
        &saved,
        pb::Category::Reminders,
        pb::Channel::Email
    ));
    // Another person's are their own.
    assert_eq!(get_prefs(&mut client, "bob").await.email, "");
    let anonymous = client
        .get_preferences(tonic::Request::new(pb::GetPreferencesRequest {}))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    svc.stop().await.unwrap();
}

per_backend!(preferences_have_defaults_and_bad_input_names_the_field);

async fn organisers_opt_in_to_joins_and_leaves_and_a_muted_group_stays_quiet(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();
    // Olive wants to hear of leaves, Oscar of neither; Bob mutes the group.
    group_known(&nats, &g, "Walk and talk", &["olive", "oscar"]).await;
    set_prefs(&mut client, "olive", |p| p.member_left = true).await;
    set_prefs(&mut client, "oscar", |p| p.member_joined = false).await;
    set_prefs(&mut client, "bob", |p| p.muted_group_ids = vec![g.clone()]).await;

    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, "bob", &ce, &ce).await;
    publish(
        &nats,
        MEMBERSHIP,
        "member.left",
        "m-bob",
        &changed(&g, "bob", "LEFT", 2),
    )
    .await;
    member_joined(
        &nats,
        &g,
        "cat",
        &uuid::Uuid::now_v7().to_string(),
        &uuid::Uuid::now_v7().to_string(),
    )
    .await;
    settle(&nats).await;
    meeting_cancelled(&nats, &g, 5, "2030-12-09").await;
    settle(&nats).await;

    use pb::NotificationKind as K;
    assert_eq!(
        kinds(&inbox(&mut client, "olive").await),
        [K::MemberJoined, K::MemberLeft, K::MemberJoined],
        "{backend:?}: newest first"
    );
    assert!(inbox(&mut client, "oscar").await.notifications.is_empty());
    // Bob's welcome is his own news; the cancelled meeting is muted (and he left).
    assert_eq!(kinds(&inbox(&mut client, "bob").await), [K::Welcome]);
    assert_eq!(
        kinds(&inbox(&mut client, "cat").await),
        [K::MeetingChanged, K::Welcome]
    );
    svc.stop().await.unwrap();
}

per_backend!(organisers_opt_in_to_joins_and_leaves_and_a_muted_group_stays_quiet);

async fn email_goes_through_smtp_without_the_group_in_the_subject_and_unsubscribes_in_one_click(
    backend: Backend,
) {
    let smtp = SmtpServer::start();
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    // An operator's templates: one for the region, and a subject template
    // that tries to show the group's name.
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir(templates.path().join(REGION)).unwrap();
    std::fs::write(
        templates.path().join(REGION).join("meeting_changed.html"),
        "<p>Notts template</p><p>{{ body }}</p><a href=\"{{ unsubscribe_url }}\">stop</a>",
    )
    .unwrap();
    std::fs::write(
        templates.path().join("meeting_changed.subject"),
        "{{ group_name }}: {{ title }}",
    )
    .unwrap();
    let mut config = with_smtp(config(&db, &nats), &smtp);
    config.email.templates_dir = Some(templates.path().to_path_buf());
    let (svc, port) = start_with_links(config, Clock::system()).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);

    let g = uuid::Uuid::now_v7().to_string();
    let bob = format!("bob-{backend:?}");
    let address = format!("{bob}@example.org");
    publish(
        &nats,
        LISTINGS,
        "group.updated",
        &g,
        &ev::GroupUpdated {
            changed_fields: vec![],
            group: snapshot(&g, &["olive"], 3),
            occurred_at: None,
        },
    )
    .await;
    set_prefs(&mut client, &bob, |p| p.email = address.clone()).await;
    confirm_address(&smtp, &address).await;
    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, &bob, &ce, &ce).await;
    settle(&nats).await;
    meeting_cancelled(&nats, &g, 4, "2030-12-09").await;

    // The welcome and the cancelled meeting, each by email.
    let mails = eventually("two emails", Duration::from_secs(30), || {
        let found = mails_to(&smtp, &address);
        async move { (found.len() == 2).then_some(found) }
    })
    .await;
    let parsed: Vec<_> = mails
        .iter()
        .map(|m| mailparse::parse_mail(m).unwrap())
        .collect();
    let meeting = parsed
        .iter()
        .find(|m| header(m, "Subject") == "A meeting has changed")
        .expect("the subject is the title, not the operator's template naming the group");
    for mail in &parsed {
        assert!(
            !header(mail, "Subject").contains("Grief"),
            "{}",
            header(mail, "Subject")
        );
    }
    let text = part(meeting, "text/plain");
    assert!(
        text.contains("Grief café Beeston meeting on 2030-12-09 is cancelled"),
        "{text}"
    );
    let html = part(meeting, "text/html");
    assert!(html.starts_with("<p>Notts template</p>"), "{html}");
    let unsubscribe = header(meeting, "List-Unsubscribe");
    assert_eq!(
        header(meeting, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let url = unsubscribe
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/unsubscribe?token=")),
        "{url}"
    );
    let token = url.split("token=").nth(1).unwrap();
    assert!(html.contains(token), "the link is in the body too");

    // A forged link does nothing; the real one needs no login.
    let http = reqwest::Client::new();
    let forged = http
        .get(format!("http://127.0.0.1:{port}/unsubscribe?token=x.y"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    // Following the link (what mail scanners do too) only asks.
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    let prefs = get_prefs(&mut client, &bob).await;
    assert!(channel_on(
        &prefs,
        pb::Category::GroupUpdates,
        pb::Channel::Email
    ));
    // The button, or the mail client's one-click POST, does it.
    let done = http.post(&url).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let prefs = get_prefs(&mut client, &bob).await;
    assert!(!channel_on(
        &prefs,
        pb::Category::GroupUpdates,
        pb::Channel::Email
    ));
    assert!(channel_on(
        &prefs,
        pb::Category::MembershipRequests,
        pb::Channel::Email
    ));

    // The next change reaches the inbox but no email is queued.
    meeting_cancelled(&nats, &g, 5, "2030-12-16").await;
    settle(&nats).await;
    assert_eq!(inbox(&mut client, &bob).await.notifications.len(), 3);
    // The two earlier emails are marked sent once out; no third is queued.
    let log = eventually("both emails marked sent", Duration::from_secs(10), || {
        let (mut c, bob) = (client.clone(), bob.clone());
        async move {
            let log = deliveries(&mut c, &bob).await;
            log.iter()
                .all(|d| d.status == pb::DeliveryStatus::Sent as i32)
                .then_some(log)
        }
    })
    .await;
    assert_eq!(log.len(), 2, "{backend:?}: {log:?}");
    assert_eq!(mails_to(&smtp, &address).len(), 2);
    svc.stop().await.unwrap();
}

per_backend!(
    email_goes_through_smtp_without_the_group_in_the_subject_and_unsubscribes_in_one_click
);

async fn a_new_address_gets_only_its_confirmation_link_until_it_is_confirmed(backend: Backend) {
    let smtp = SmtpServer::start();
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let clock = Clock::system();
    let (svc, port) = start_with_links(with_smtp(config(&db, &nats), &smtp), clock.clone()).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let http = reqwest::Client::new();
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Walk and talk", &["olive"]).await;
    let ann = format!("ann-{backend:?}");
    let first = format!("{ann}@example.org");

    let prefs = set_prefs(&mut client, &ann, |p| p.email = first.clone()).await;
    assert!(!prefs.email_confirmed);
    let first_link = eventually("the first link", Duration::from_secs(20), || {
        let found = confirmation_links(&smtp, &first);
        async move { found.first().cloned() }
    })
    .await;
    assert!(
        first_link.starts_with(&format!("http://127.0.0.1:{port}/confirm-email?token=")),
        "{first_link}"
    );
    assert!(
        !first_link.contains("example.org"),
        "no address in the link"
    );
    // Following the link (what mail scanners do too) only asks.
    let page = http.get(&first_link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert!(!get_prefs(&mut client, &ann).await.email_confirmed);

    // Meanwhile news reaches the inbox, and nothing but the link the address.
    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, &ann, &ce, &ce).await;
    settle(&nats).await;
    assert_eq!(inbox(&mut client, &ann).await.notifications.len(), 1);
    // Saving the same address again within the hour sends no second link.
    set_prefs(&mut client, &ann, |p| p.member_left = true).await;
    let log = all_deliveries(&mut client, &ann).await;
    assert_eq!(log.len(), 1, "{backend:?}: {log:?}");
    assert!(log[0].confirms_email && log[0].notification_id.is_empty());

    // Another address: the first one's link confirms nothing now.
    let second = format!("{ann}.new@example.org");
    set_prefs(&mut client, &ann, |p| p.email = second.clone()).await;
    let stale = http.post(&first_link).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let forged = http
        .post(format!("http://127.0.0.1:{port}/confirm-email?token=x.y"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(!get_prefs(&mut client, &ann).await.email_confirmed);
    let second_link = confirm_address(&smtp, &second).await;
    assert!(get_prefs(&mut client, &ann).await.email_confirmed);
    let again = http.post(&second_link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "a second press is harmless");

    // Now news goes by email, to the confirmed address only.
    meeting_cancelled(&nats, &g, 4, "2030-12-09").await;
    eventually("the news by email", Duration::from_secs(20), || {
        let found = mails_to(&smtp, &second);
        async move { (found.len() == 1).then_some(()) }
    })
    .await;
    assert!(mails_to(&smtp, &first).is_empty());
    // Saving the confirmed address again keeps it confirmed and sends no link.
    let prefs = set_prefs(&mut client, &ann, |p| p.email = second.to_uppercase()).await;
    assert!(prefs.email_confirmed);

    // Five links a day: three more new addresses, then the next is refused.
    for n in 3..=5 {
        let prefs = set_prefs(&mut client, &ann, |p| {
            p.email = format!("{ann}.{n}@example.org")
        })
        .await;
        assert!(!prefs.email_confirmed);
    }
    let mut sixth = get_prefs(&mut client, &ann).await;
    sixth.email = format!("{ann}.6@example.org");
    let refused = client
        .update_preferences(with_token(
            pb::UpdatePreferencesRequest {
                preferences: Some(sixth.clone()),
            },
            &tok(&ann),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        get_prefs(&mut client, &ann).await.email,
        format!("{ann}.5@example.org")
    );
    let log = all_deliveries(&mut client, &ann).await;
    assert_eq!(log.iter().filter(|d| d.confirms_email).count(), 5);

    // A week later the fifth address's link has expired; a day's cap is over.
    let fifth = format!("{ann}.5@example.org");
    let fifth_link = eventually("the fifth link", Duration::from_secs(20), || {
        let found = confirmation_links(&smtp, &fifth);
        async move { found.first().cloned() }
    })
    .await;
    clock.advance(Duration::from_secs(8 * 86_400));
    let expired = http.post(&fifth_link).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(!get_prefs(&mut client, &ann).await.email_confirmed);
    client
        .update_preferences(with_token(
            pb::UpdatePreferencesRequest {
                preferences: Some(sixth),
            },
            &tok(&ann),
        ))
        .await
        .expect("a new day, a new link");
    svc.stop().await.unwrap();
}

per_backend!(a_new_address_gets_only_its_confirmation_link_until_it_is_confirmed);

async fn quiet_hours_hold_email_until_they_end_then_send_it(backend: Backend) {
    use chrono::Timelike;
    let smtp = SmtpServer::start();
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let clock = Clock::system();
    let (svc, _) = start_with_links(with_smtp(config(&db, &nats), &smtp), clock.clone()).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();
    group_known(&nats, &g, "Carers' coffee", &["olive"]).await;
    // Quiet (in UTC) from an hour ago until the start of the minute an
    // hour from now.
    let now = clock.now();
    let start = (now - chrono::Duration::hours(1))
        .format("%H:%M")
        .to_string();
    let end_at = (now + chrono::Duration::hours(1))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let end = end_at.format("%H:%M").to_string();
    let address = format!("olive-{backend:?}@example.org");
    set_prefs(&mut client, "olive", |p| {
        p.email = address.clone();
        p.time_zone = "UTC".into();
        p.quiet_hours = Some(pb::QuietHours {
            start: start.clone(),
            end: end.clone(),
        });
    })
    .await;
    // The confirmation link goes at once, quiet hours or not: they wait for it.
    confirm_address(&smtp, &address).await;
    let ce = uuid::Uuid::now_v7().to_string();
    member_joined(&nats, &g, "bob", &ce, &ce).await;
    settle(&nats).await;
    let log = deliveries(&mut client, "olive").await;
    assert_eq!(log.len(), 1, "{backend:?}");
    let held = &log[0];
    assert_eq!(held.status, pb::DeliveryStatus::Pending as i32, "{held:?}");
    assert_eq!(held.attempts, 0);
    let due = held.next_attempt_at.unwrap();
    assert_eq!(
        due.seconds,
        end_at.timestamp(),
        "held until the quiet hours end"
    );
    assert!(mails_to(&smtp, &address).is_empty());

    // When they end, it goes; its sent time (on the service's clock)
    // proves it did not go earlier.
    let wait = (end_at - clock.now()).to_std().unwrap_or_default();
    clock.advance(wait + Duration::from_secs(1));
    eventually("the held email", Duration::from_secs(20), || {
        let found = mails_to(&smtp, &address);
        async move { (!found.is_empty()).then_some(()) }
    })
    .await;
    let log = eventually("the delivery marked sent", Duration::from_secs(10), || {
        let mut c = client.clone();
        async move {
            let log = deliveries(&mut c, "olive").await;
            (log[0].status == pb::DeliveryStatus::Sent as i32).then_some(log)
        }
    })
    .await;
    assert!(log[0].sent_at.unwrap().seconds >= end_at.timestamp());
    assert_eq!(log[0].attempts, 1, "{:?}", log[0]);
    svc.stop().await.unwrap();
}

per_backend!(quiet_hours_hold_email_until_they_end_then_send_it);

async fn a_daily_digest_gathers_several_events_and_goes_out_once_with_two_replicas(
    backend: Backend,
) {
    let smtp = SmtpServer::start();
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    // First the day's digest time has passed already: what arrives waits
    // for tomorrow's.
    let earlier = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .format("%H:%M:%S")
        .to_string();
    let mut config = with_smtp(config(&db, &nats), &smtp);
    config.digests.send_at = earlier;
    let (svc, _) = start_with_links(config.clone(), Clock::system()).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let olive = format!("olive-{backend:?}");
    let address = format!("{olive}@example.org");
    set_prefs(&mut client, &olive, |p| {
        p.email = address.clone();
        p.time_zone = "UTC".into();
        p.cadence = pb::Cadence::DailyDigest as i32;
    })
    .await;
    confirm_address(&smtp, &address).await;
    let g = uuid::Uuid::now_v7().to_string();
    let organisers = [olive.as_str()];
    let published = ev::GroupPublished {
        group: snapshot(&g, &organisers, 3),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "group.published", &g, &published).await;
    let review = ev::GroupReviewDue {
        group: snapshot(&g, &organisers, 4),
        occurred_at: None,
        ..Default::default()
    };
    publish(&nats, LISTINGS, "group.review_due", &g, &review).await;
    publish(
        &nats,
        MEMBERSHIP,
        "member.requested",
        "m-dan",
        &changed(&g, "dan", "REQUESTED", 1),
    )
    .await;
    // Olive follows her group: a meeting change is time-critical and goes
    // at once, digest or not.
    let follow = ev::FollowChanged {
        group_id: g.clone(),
        person_id: olive.clone(),
        following: true,
        occurred_at: None,
    };
    publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    settle(&nats).await;
    publish(&nats, LISTINGS, "occurrence.cancelled", &g, &{
        let mut c = cancelled(&g, 5, "2030-12-09");
        c.group = snapshot(&g, &organisers, 5);
        c
    })
    .await;
    settle(&nats).await;
    let immediate = eventually(
        "the meeting change by email",
        Duration::from_secs(20),
        || {
            let found = mails_to(&smtp, &address);
            async move { (found.len() == 1).then_some(found) }
        },
    )
    .await;
    let first = mailparse::parse_mail(&immediate[0]).unwrap();
    assert_eq!(header(&first, "Subject"), "A meeting has changed");
    let held: Vec<_> = deliveries(&mut client, &olive)
        .await
        .into_iter()
        .filter(|d| d.status == pb::DeliveryStatus::HeldForDigest as i32)
        .collect();
    assert_eq!(
        held.len(),
        3,
        "{backend:?}: listed, review due, join request wait"
    );
    svc.stop().await.unwrap();

    // Now two replicas whose digest time comes in an hour (after all
    // three were held), on one clock: when it is moved on, both try to
    // make the digest.
    let clock = Clock::system();
    let digest_at = clock.now() + chrono::Duration::hours(1);
    config.digests.send_at = digest_at.format("%H:%M:%S").to_string();
    let a = start_on(config.clone(), clock.clone()).await;
    let b = start_on(config.clone(), clock.clone()).await;
    clock.advance(Duration::from_secs(3_601));
    let digest = eventually("the digest", Duration::from_secs(30), || {
        let found = mails_to(&smtp, &address);
        async move { (found.len() == 2).then_some(found) }
    })
    .await;
    let digest = digest
        .iter()
        .map(|m| mailparse::parse_mail(m).unwrap())
        .find(|m| header(m, "Subject") != "A meeting has changed")
        .unwrap();
    assert_eq!(header(&digest, "Subject"), "Your daily summary: 3 updates");
    let text = part(&digest, "text/plain");
    for title in [
        "Your group is now listed",
        "Please check your group's details",
        "Someone asked to join your group",
    ] {
        assert!(text.contains(title), "{title} missing from {text}");
    }
    let client = NotificationsServiceClient::new(a.channel().await);
    // The mail is out before its delivery is marked sent.
    let log = eventually("the digest marked sent", Duration::from_secs(10), || {
        let (mut c, olive) = (client.clone(), olive.clone());
        async move {
            let log = deliveries(&mut c, &olive).await;
            log.iter()
                .any(|d| {
                    d.notification_id.is_empty() && d.status == pb::DeliveryStatus::Sent as i32
                })
                .then_some(log)
        }
    })
    .await;
    let digests: Vec<_> = log
        .iter()
        .filter(|d| d.notification_id.is_empty())
        .collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].status, pb::DeliveryStatus::Sent as i32);
    let in_digest = log
        .iter()
        .filter(|d| {
            d.status == pb::DeliveryStatus::InDigest as i32 && d.digest_id == digests[0].digest_id
        })
        .count();
    assert_eq!(in_digest, 3);
    // Once both have stopped (a stop finishes what is being sent), a
    // second digest could no longer slip in unseen.
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert_eq!(
        mails_to(&smtp, &address).len(),
        2,
        "{backend:?}: one digest only"
    );
}

per_backend!(a_daily_digest_gathers_several_events_and_goes_out_once_with_two_replicas);

/// A webhook receiver: answers as `mode` says, keeps what it accepted.
#[derive(Clone, Default)]
struct Receiver {
    mode: Arc<Mutex<StatusCode>>,
    accepted: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    calls: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *r.calls.lock().unwrap() += 1;
    let mode = *r.mode.lock().unwrap();
    if mode.is_success() {
        r.accepted.lock().unwrap().push((headers, body));
    }
    mode
}

/// A port of its own for a receiver; until it serves, connections wait unanswered.
async fn receiver_port() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

impl Receiver {
    /// Answers on `listener` from now on.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    fn set(&self, status: StatusCode) {
        *self.mode.lock().unwrap() = status;
    }

    /// Accepted messages by `webhook-id`, each verified with the Standard
    /// Webhooks reference library.
    fn verified(&self, secret: &str) -> HashMap<String, (usize, serde_json::Value)> {
        let verifier = standardwebhooks::Webhook::new(secret).unwrap();
        let mut out: HashMap<String, (usize, serde_json::Value)> = HashMap::new();
        for (headers, body) in self.accepted.lock().unwrap().iter() {
            verifier.verify(body, headers).expect("a valid signature");
            let id = headers["webhook-id"].to_str().unwrap().to_string();
            let entry = out
                .entry(id)
                .or_insert((0, serde_json::from_slice(body).unwrap()));
            entry.0 += 1;
        }
        out
    }
}

async fn register(
    client: &mut NotificationsServiceClient<Channel>,
    owner: &str,
    url: &str,
    kinds: Vec<pb::NotificationKind>,
) -> Result<pb::RegisterWebhookResponse, tonic::Status> {
    client
        .register_webhook(with_token(
            pb::RegisterWebhookRequest {
                url: url.into(),
                kinds: kinds.into_iter().map(|k| k as i32).collect(),
            },
            &tok(owner),
        ))
        .await
        .map(|r| r.into_inner())
}

async fn a_webhook_down_for_a_while_gets_every_message_once_signed(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut config = config(&db, &nats);
    config.webhooks.allow_private_addresses = true;
    config.webhooks.timeout_secs = 1;
    config.delivery.max_attempts = 40;
    let svc = start_with(config).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let (listener, port) = receiver_port().await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let hook = register(
        &mut client,
        "org",
        &url,
        vec![pb::NotificationKind::MeetingChanged],
    )
    .await
    .unwrap();
    assert!(hook.secret.starts_with("whsec_"));
    let listed = client
        .list_webhooks(with_token(pb::ListWebhooksRequest {}, &tok("org")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.webhooks, vec![hook.webhook.clone().unwrap()]);

    // The organisation follows a group; three meetings change while its
    // receiver hangs (calls time out).
    let g = uuid::Uuid::now_v7().to_string();
    let follow = ev::FollowChanged {
        group_id: g.clone(),
        person_id: "org".into(),
        following: true,
        occurred_at: None,
    };
    publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    settle(&nats).await;
    for (version, date) in [(4, "2030-12-02"), (5, "2030-12-09"), (6, "2030-12-16")] {
        publish(
            &nats,
            LISTINGS,
            "occurrence.cancelled",
            &g,
            &cancelled(&g, version, date),
        )
        .await;
    }
    settle(&nats).await;
    // Every call has timed out at least once...
    eventually("timed-out attempts", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move {
            let log = deliveries(&mut c, "org").await;
            (log.len() == 3 && log.iter().all(|d| d.attempts >= 1)).then_some(())
        }
    })
    .await;
    // ...then it answers, but with errors, for a while; then it recovers.
    let receiver = Receiver::default();
    receiver.set(StatusCode::SERVICE_UNAVAILABLE);
    receiver.serve(listener);
    eventually("calls answered 503", Duration::from_secs(30), || {
        let calls = *receiver.calls.lock().unwrap();
        async move { (calls >= 3).then_some(()) }
    })
    .await;
    receiver.set(StatusCode::NO_CONTENT);
    let got = eventually("three deliveries", Duration::from_secs(30), || {
        let got = receiver.verified(&hook.secret);
        async move { (got.len() == 3).then_some(got) }
    })
    .await;
    let mut dates: Vec<String> = got
        .values()
        .map(|(_, json)| {
            assert_eq!(json["type"], "notification.meeting_changed");
            json["data"]["body"].as_str().unwrap().to_string()
        })
        .collect();
    dates.sort();
    assert!(
        dates[0].contains("2030-12-02") && dates[2].contains("2030-12-16"),
        "{dates:?}"
    );
    assert!(*receiver.calls.lock().unwrap() > 3, "it was retried");
    let log = eventually(
        "three deliveries marked sent",
        Duration::from_secs(10),
        || {
            let mut c = client.clone();
            async move {
                let log = deliveries(&mut c, "org").await;
                log.iter()
                    .all(|d| d.status == pb::DeliveryStatus::Sent as i32)
                    .then_some(log)
            }
        },
    )
    .await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d.attempts > 1), "{log:?}");
    // Stopped, it can send nothing more: what the receiver has is final.
    svc.stop().await.unwrap();
    let got_after = receiver.verified(&hook.secret);
    assert_eq!(got_after.len(), 3, "{backend:?}");
    assert!(
        got_after.values().all(|(times, _)| *times == 1),
        "each id once: {got_after:?}"
    );
}

per_backend!(a_webhook_down_for_a_while_gets_every_message_once_signed);

/// A receiver that holds every call until it is opened, and notes the most
/// calls it had open at once.
#[derive(Clone)]
struct HeldReceiver {
    open: Arc<Mutex<(usize, usize)>>,
    received: Arc<Mutex<usize>>,
    gate: tokio::sync::watch::Sender<bool>,
}

impl HeldReceiver {
    fn serve(listener: tokio::net::TcpListener) -> HeldReceiver {
        let me = HeldReceiver {
            open: Arc::default(),
            received: Arc::default(),
            gate: tokio::sync::watch::channel(false).0,
        };
        let server = me.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let me = server.clone();
                async move {
                    {
                        let mut open = me.open.lock().unwrap();
                        open.0 += 1;
                        open.1 = open.1.max(open.0);
                    }
                    let _ = me.gate.subscribe().wait_for(|opened| *opened).await;
                    me.open.lock().unwrap().0 -= 1;
                    *me.received.lock().unwrap() += 1;
                    StatusCode::NO_CONTENT
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        me
    }

    /// Lets every held call, and every later one, through.
    fn open(&self) {
        self.gate.send_replace(true);
    }
}

/// The share of calls per owner is in the replica's memory: SQLite only.
#[tokio::test]
async fn a_slow_receiver_holds_up_only_its_owner_and_errors_tell_nothing_of_the_network() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let mut config = config(&db, &nats);
    config.webhooks.allow_private_addresses = true;
    config.webhooks.max_in_flight_per_owner = 2;
    config.delivery.interval_ms = 100;
    let svc = start_with(config).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);

    let (listener, slow_port) = receiver_port().await;
    let slow = HeldReceiver::serve(listener);
    let quick = Receiver::default();
    let (listener, quick_port) = receiver_port().await;
    quick.serve(listener);
    quick.set(StatusCode::NO_CONTENT);
    // Nothing listens here: the delivery fails to connect.
    let (closed, closed_port) = receiver_port().await;
    drop(closed);
    let kinds = vec![pb::NotificationKind::MeetingChanged];
    for (owner, port) in [
        ("slowpoke", slow_port),
        ("quick", quick_port),
        ("nobody", closed_port),
    ] {
        register(
            &mut client,
            owner,
            &format!("http://127.0.0.1:{port}/hook"),
            kinds.clone(),
        )
        .await
        .unwrap();
    }
    let g = uuid::Uuid::now_v7().to_string();
    for person in ["slowpoke", "quick", "nobody"] {
        let follow = ev::FollowChanged {
            group_id: g.clone(),
            person_id: person.into(),
            following: true,
            occurred_at: None,
        };
        publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    }
    settle(&nats).await;
    // Eight changes: eight calls each.
    for version in 4..12 {
        let date = format!("2030-12-{:02}", version);
        publish(
            &nats,
            LISTINGS,
            "occurrence.cancelled",
            &g,
            &cancelled(&g, version, &date),
        )
        .await;
    }
    // The slow owner's calls are all held: the quick owner is served anyway.
    eventually(
        "the quick receiver served in full",
        Duration::from_secs(20),
        || async { (quick.accepted.lock().unwrap().len() == 8).then_some(()) },
    )
    .await;
    assert_eq!(
        *slow.received.lock().unwrap(),
        0,
        "the slow owner's calls are held"
    );
    // Exactly its share is open at the slow receiver, and no more.
    eventually(
        "two calls held at the slow receiver",
        Duration::from_secs(20),
        || async { (slow.open.lock().unwrap().0 == 2).then_some(()) },
    )
    .await;
    assert_eq!(slow.open.lock().unwrap().1, 2, "calls to one owner at once");
    slow.open();
    eventually(
        "the slow receiver served in full",
        Duration::from_secs(60),
        || async { (*slow.received.lock().unwrap() == 8).then_some(()) },
    )
    .await;
    assert_eq!(
        slow.open.lock().unwrap().1,
        2,
        "never more than two calls to one owner at once"
    );

    let failed = eventually("a failed call recorded", Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let log = deliveries(&mut client, "nobody").await;
            log.into_iter().find(|d| !d.last_error.is_empty())
        }
    })
    .await;
    assert_eq!(failed.last_error, "could not connect");
    svc.stop().await.unwrap();
}

async fn a_gone_webhook_is_turned_off_its_owner_told_and_an_operator_replays_failures(
    backend: Backend,
) {
    // Alone in its process, so the delivery counts are this test's only.
    let variant = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let name = selfhelp_testkit::test_path(
        module_path!(),
        &format!(
            "a_gone_webhook_is_turned_off_its_owner_told_and_an_operator_replays_failures::{variant}"
        ),
    );
    if !selfhelp_testkit::alone_in_process(&name) {
        return;
    }
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut config = config(&db, &nats);
    config.webhooks.allow_private_addresses = true;
    config.delivery.max_attempts = 3;
    let scrape = selfhelp_testkit::metrics::Scrape::configure(&mut config.common.metrics);
    let svc = start_with(config).await;
    let before = scrape.text().await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let receiver = Receiver::default();
    let (listener, port) = receiver_port().await;
    receiver.serve(listener);
    let url = format!("http://127.0.0.1:{port}/hook");
    let g = uuid::Uuid::now_v7().to_string();
    for who in ["gone-org", "flaky-org"] {
        let follow = ev::FollowChanged {
            group_id: g.clone(),
            person_id: who.into(),
            following: true,
            occurred_at: None,
        };
        publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    }
    settle(&nats).await;

    // 410 Gone: turned off at once.
    receiver.set(StatusCode::GONE);
    let gone = register(&mut client, "gone-org", &url, vec![])
        .await
        .unwrap();
    meeting_cancelled(&nats, &g, 4, "2030-12-02").await;
    let told = eventually("the owner told", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            let inbox = inbox(&mut c, "gone-org").await;
            inbox
                .notifications
                .into_iter()
                .find(|n| n.kind == pb::NotificationKind::WebhookDisabled as i32)
        }
    })
    .await;
    assert!(told.body.contains("410"), "{}", told.body);
    let hooks = client
        .list_webhooks(with_token(pb::ListWebhooksRequest {}, &tok("gone-org")))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    assert!(!hooks[0].active && hooks[0].disabled_reason.contains("410"));
    let _ = gone;

    // A receiver failing every attempt: the delivery fails after three.
    receiver.set(StatusCode::INTERNAL_SERVER_ERROR);
    let flaky = register(&mut client, "flaky-org", &url, vec![])
        .await
        .unwrap();
    meeting_cancelled(&nats, &g, 5, "2030-12-09").await;
    let operator = token("op", REGION, &["operator"]);
    let failed = eventually("a failed delivery", Duration::from_secs(30), || {
        let mut c = client.clone();
        let operator = operator.clone();
        async move {
            let req = pb::ListDeliveriesRequest {
                status: pb::DeliveryStatus::Failed as i32,
                all: true,
                ..Default::default()
            };
            let list = c
                .list_deliveries(with_token(req, &operator))
                .await
                .unwrap()
                .into_inner();
            list.deliveries
                .into_iter()
                .find(|d| d.recipient_id == "flaky-org")
        }
    })
    .await;
    assert_eq!(failed.attempts, 3, "{backend:?}");
    assert_eq!(failed.last_error, "HTTP 500");
    // Retries ran out: the webhook is off and its owner told.
    let notice = kinds(&inbox(&mut client, "flaky-org").await);
    assert!(
        notice.contains(&pb::NotificationKind::WebhookDisabled),
        "{notice:?}"
    );
    let hooks = client
        .list_webhooks(with_token(pb::ListWebhooksRequest {}, &tok("flaky-org")))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    assert!(!hooks[0].active && hooks[0].disabled_reason.contains("3 times"));
    // Counted: two turned off (gone, and flaky after three failures); flaky's
    // first two failures retried; its third and gone's one failed.
    let after = scrape.text().await;
    let moved = |sample: &str| {
        let at = |text: &str| selfhelp_platform::metrics::value_of(text, sample).unwrap_or(0.0);
        at(&after) - at(&before)
    };
    let webhook = |outcome: &str| {
        format!(
            r#"selfhelp_deliveries_total{{channel="webhook",kind="notification",outcome="{outcome}"}}"#
        )
    };
    assert_eq!(moved("selfhelp_webhooks_turned_off_total"), 2.0, "{after}");
    assert_eq!(moved(&webhook("retry")), 2.0, "{after}");
    assert_eq!(moved(&webhook("failed")), 2.0, "{after}");
    // Only operators see everyone's log and replay.
    let denied = client
        .list_deliveries(with_token(
            pb::ListDeliveriesRequest {
                all: true,
                ..Default::default()
            },
            &tok("flaky-org"),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = client
        .replay_delivery(with_token(
            pb::ReplayDeliveryRequest {
                delivery_id: failed.id.clone(),
            },
            &tok("flaky-org"),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // The receiver is fixed; the operator replays; it arrives, once.
    receiver.set(StatusCode::OK);
    let replayed = client
        .replay_delivery(with_token(
            pb::ReplayDeliveryRequest {
                delivery_id: failed.id.clone(),
            },
            &operator,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.status, pb::DeliveryStatus::Pending as i32);
    let got = eventually("the replayed delivery", Duration::from_secs(20), || {
        let got = receiver.verified(&flaky.secret);
        async move { (!got.is_empty()).then_some(got) }
    })
    .await;
    assert_eq!(got.len(), 1);
    assert!(
        got.contains_key(&failed.id),
        "the webhook-id is the delivery's id"
    );
    let hooks = client
        .list_webhooks(with_token(pb::ListWebhooksRequest {}, &tok("flaky-org")))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    assert!(hooks[0].active, "the replay turned it back on");
    let again = client
        .replay_delivery(with_token(
            pb::ReplayDeliveryRequest {
                delivery_id: failed.id.clone(),
            },
            &operator,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "only failed ones replay"
    );
    svc.stop().await.unwrap();
}

per_backend!(a_gone_webhook_is_turned_off_its_owner_told_and_an_operator_replays_failures);

#[tokio::test]
async fn webhook_endpoints_must_be_public_unless_allowed() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await; // private addresses not allowed
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "ftp://example.org/hook",
        "",
    ] {
        let err = register(&mut client, "org", url, vec![]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{url}");
        assert_eq!(violated_fields(&err), ["url"], "{url}");
    }
    let err = register(
        &mut client,
        "org",
        "https://hooks.example.org/x",
        vec![pb::NotificationKind::Unspecified],
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&err), ["kinds[0]"]);
    let ok = register(&mut client, "org", "https://hooks.example.org/x", vec![])
        .await
        .unwrap();
    // Someone else cannot remove it.
    let id = ok.webhook.unwrap().id;
    let err = client
        .delete_webhook(with_token(
            pb::DeleteWebhookRequest {
                webhook_id: id.clone(),
            },
            &tok("eve"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    client
        .delete_webhook(with_token(
            pb::DeleteWebhookRequest { webhook_id: id },
            &tok("org"),
        ))
        .await
        .unwrap();
    svc.stop().await.unwrap();
}

async fn saved_alerts_tell_about_new_groups_nearby_on_the_topic(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let alert = |topics: &[&str], radius_km: f64| pb::CreateAlertRequest {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        // Nottingham city centre.
        latitude: 52.9548,
        longitude: -1.1581,
        radius_km,
        label: "near home".into(),
        ..Default::default()
    };
    let create = |person: &str, req: pb::CreateAlertRequest| {
        let mut c = client.clone();
        let t = tok(person);
        async move { c.create_alert(with_token(req, &t)).await }
    };
    let ann = create("ann", alert(&["bereavement"], 30.0))
        .await
        .unwrap()
        .into_inner();
    create("ben", alert(&["bereavement"], 5.0)).await.unwrap(); // too far
    create("cal", alert(&["anxiety"], 30.0)).await.unwrap(); // other topic
    create("dee", alert(&[], 30.0)).await.unwrap(); // any topic
    let err = create(
        "eve",
        pb::CreateAlertRequest {
            radius_km: 0.0,
            latitude: 91.0,
            topics: vec!["no spaces please".into()],
            ..alert(&[], 1.0)
        },
    )
    .await
    .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["latitude", "radius_km", "topics[0]"]);
    // By postcode, as people give it: known, and not beside a point.
    let by_postcode = |postcode: &str, topics: &[&str], radius_km: f64, include_online: bool| {
        pb::CreateAlertRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            postcode: postcode.into(),
            radius_km,
            include_online,
            label: "by postcode".into(),
            ..Default::default()
        }
    };
    for (wrong, field) in [
        (by_postcode("ZZ99 9ZZ", &[], 10.0, false), "postcode"),
        (
            pb::CreateAlertRequest {
                latitude: 52.9,
                longitude: -1.1,
                ..by_postcode("NG1", &[], 10.0, false)
            },
            "postcode",
        ),
        (by_postcode("NG1", &[], 0.0, false), "radius_km"),
        (by_postcode("", &[], 10.0, false), "radius_km"),
    ] {
        let err = create("eve", wrong).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&err), [field]);
    }
    let gil = create("gil", by_postcode("ng1 5fs", &["bereavement"], 30.0, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (gil.postcode.as_str(), gil.include_online),
        ("NG1 5FS", false)
    );
    assert!(
        (gil.latitude - 52.954).abs() < 0.01,
        "placed by its outward code"
    );
    // A broad topic, near Nottingham, online groups included or not.
    create("jo", by_postcode("NG7", &["mental-health"], 5.0, true))
        .await
        .unwrap();
    create("kit", by_postcode("NG7", &["mental-health"], 5.0, false))
        .await
        .unwrap();
    // No area: anywhere in the region, any topic.
    create("lou", by_postcode("", &[], 0.0, false))
        .await
        .unwrap();
    let listed = client
        .list_alerts(with_token(pb::ListAlertsRequest {}, &tok("ann")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.alerts, vec![ann.clone()]);

    // A proposal nearby is listed as being started: its organiser is told,
    // but it is not the new group that alerts wait for.
    let p = uuid::Uuid::now_v7().to_string();
    let mut proposal = snapshot(&p, &["pat"], 3).unwrap();
    proposal.status = "PROPOSAL_LISTED".into();
    proposal.places = vec![ev::GeoPoint {
        latitude: 52.9548,
        longitude: -1.1581,
    }];
    let listed_proposal = ev::GroupStatusChanged {
        group: Some(proposal),
        ..Default::default()
    };
    publish(
        &nats,
        LISTINGS,
        "group.proposal_listed",
        &p,
        &listed_proposal,
    )
    .await;
    settle(&nats).await;
    let pat = inbox(&mut client, "pat").await;
    assert_eq!(
        kinds(&pat),
        [pb::NotificationKind::GroupListed],
        "{backend:?}"
    );
    assert_eq!(pat.notifications[0].title, "Your proposal is now listed");
    for person in ["ann", "ben", "cal", "dee"] {
        assert!(inbox(&mut client, person).await.notifications.is_empty());
    }

    // A bereavement group in Derby (about 21 km away) is listed.
    let g = uuid::Uuid::now_v7().to_string();
    let mut group = snapshot(&g, &["olive"], 3).unwrap();
    group.places = vec![ev::GeoPoint {
        latitude: 52.9225,
        longitude: -1.4746,
    }];
    let published = ev::GroupPublished {
        group: Some(group),
        occurred_at: None,
    };
    // Fay and Ann followed it while it was being started: they hear that
    // it has started instead (Ann once, though her alert matches too).
    for person in ["fay", "ann"] {
        let follow = ev::FollowChanged {
            group_id: g.clone(),
            person_id: person.into(),
            following: true,
            occurred_at: None,
        };
        publish(&nats, MEMBERSHIP, "follow.started", &g, &follow).await;
    }
    settle(&nats).await;
    publish(&nats, LISTINGS, "group.published", &g, &published).await;
    settle(&nats).await;
    use pb::NotificationKind as K;
    for (person, told) in [
        ("ann", true),
        ("ben", false),
        ("cal", false),
        ("dee", true),
        ("fay", true),
        ("gil", true),
        ("jo", false),
        ("kit", false),
        ("lou", true),
    ] {
        let got = kinds(&inbox(&mut client, person).await);
        assert_eq!(
            got == [K::NewGroupAlert],
            told,
            "{backend:?} {person}: {got:?}"
        );
    }
    for (person, title) in [
        ("ann", "A group you follow has started"),
        ("fay", "A group you follow has started"),
        ("dee", "A new group matches your alert"),
    ] {
        let got = inbox(&mut client, person).await;
        assert_eq!(got.notifications[0].title, title, "{backend:?} {person}");
    }
    assert_eq!(kinds(&inbox(&mut client, "olive").await), [K::GroupListed]);
    // Listed again (after a suspension, say): not news to those told once.
    let mut again = published.clone();
    again.group.as_mut().unwrap().version = 5;
    publish(&nats, LISTINGS, "group.published", &g, &again).await;
    settle(&nats).await;
    assert_eq!(kinds(&inbox(&mut client, "ann").await), [K::NewGroupAlert]);
    assert_eq!(kinds(&inbox(&mut client, "fay").await), [K::NewGroupAlert]);
    assert_eq!(kinds(&inbox(&mut client, "olive").await).len(), 2);

    // An anxiety group meeting only online: those asking for mental health
    // and online groups hear of it, wherever they are; the others do not.
    let online = uuid::Uuid::now_v7().to_string();
    let mut group = snapshot(&online, &["olive"], 3).unwrap();
    group.topics = vec!["anxiety".into()];
    group.broader_topics = vec!["mental-health".into()];
    group.meets_online = true;
    let published = ev::GroupPublished {
        group: Some(group),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "group.published", &online, &published).await;
    settle(&nats).await;
    for (person, alerts) in [("jo", 1), ("kit", 0), ("gil", 1), ("lou", 2), ("dee", 1)] {
        let got = kinds(&inbox(&mut client, person).await);
        assert_eq!(got, vec![K::NewGroupAlert; alerts], "{backend:?} {person}");
    }

    // Deleting: only one's own.
    let err = client
        .delete_alert(with_token(
            pb::DeleteAlertRequest {
                alert_id: ann.id.clone(),
            },
            &tok("ben"),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    client
        .delete_alert(with_token(
            pb::DeleteAlertRequest { alert_id: ann.id },
            &tok("ann"),
        ))
        .await
        .unwrap();
    let listed = client
        .list_alerts(with_token(pb::ListAlertsRequest {}, &tok("ann")))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.alerts.is_empty());
    svc.stop().await.unwrap();
}

per_backend!(saved_alerts_tell_about_new_groups_nearby_on_the_topic);

async fn caps_hold_when_many_requests_arrive_at_once(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut config = config(&db, &nats);
    config.webhooks.allow_private_addresses = true;
    config.webhooks.max_per_owner = 4;
    // On PostgreSQL two replicas on one database: the caps must hold
    // across them too (SQLite serves a single replica).
    let mut replicas = vec![start_with(config.clone()).await];
    if backend == selfhelp_testkit::Backend::Postgres {
        replicas.push(start_with(config).await);
    }
    let mut clients = Vec::new();
    for r in &replicas {
        clients.push(NotificationsServiceClient::new(r.channel().await));
    }
    let clients = &clients;
    let alerts = (0..30).map(|i| {
        let mut c = clients[i % clients.len()].clone();
        async move {
            c.create_alert(with_token(
                pb::CreateAlertRequest {
                    topics: vec!["bereavement".into()],
                    latitude: 52.9548,
                    longitude: -1.1581,
                    radius_km: 5.0,
                    label: format!("alert {i}"),
                    ..Default::default()
                },
                &tok("keen"),
            ))
            .await
        }
    });
    let hooks = (0..12).map(|i| {
        let mut c = clients[i % clients.len()].clone();
        async move {
            register(
                &mut c,
                "keen",
                &format!("http://127.0.0.1:9/hook{i}"),
                vec![],
            )
            .await
        }
    });
    let (alerts, hooks) = futures::future::join(
        futures::future::join_all(alerts),
        futures::future::join_all(hooks),
    )
    .await;
    for refused in alerts.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
    let mut c = clients[0].clone();
    let held = c
        .list_alerts(with_token(pb::ListAlertsRequest {}, &tok("keen")))
        .await
        .unwrap()
        .into_inner()
        .alerts
        .len();
    assert_eq!(held, 20, "{backend:?}: alerts capped at 20");
    assert_eq!(alerts.iter().filter(|r| r.is_ok()).count(), 20);
    assert_eq!(hooks.iter().filter(|r| r.is_ok()).count(), 4, "{backend:?}");
    let listed = c
        .list_webhooks(with_token(pb::ListWebhooksRequest {}, &tok("keen")))
        .await
        .unwrap()
        .into_inner()
        .webhooks
        .len();
    assert_eq!(listed, 4, "{backend:?}: webhooks capped at 4");
    for r in replicas {
        r.stop().await.unwrap();
    }
}

per_backend!(caps_hold_when_many_requests_arrive_at_once);

async fn addresses_stored_before_confirmation_existed_count_as_confirmed(backend: Backend) {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;
    use selfhelp_notifications::store::{Migrator, preference};
    let tdb = TestDb::new(backend).await;
    let db = selfhelp_platform::db::connect(&tdb.url, 2).await.unwrap();
    // The schema as it was before confirmation, with two people's settings.
    let before = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m0103_notifications_channels")
        .expect("the migration before confirmation");
    Migrator::up(&db, Some(before as u32 + 1)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO preference (person_id, email, doc, updated_at_ms) \
         VALUES ('kept', 'kept@example.org', '{}', 5), ('none', '', '{}', 6)",
    )
    .await
    .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let kept = preference::get(&db, "kept").await.unwrap();
    assert_eq!(kept.confirmed_email(), Some("kept@example.org"));
    let none = preference::get(&db, "none").await.unwrap();
    assert_eq!(none.email_confirmed_at_ms, None);
}

per_backend!(addresses_stored_before_confirmation_existed_count_as_confirmed);

/// The web's word that someone signed in with an address: it counts as
/// confirmed, but only from a token for that purpose, only for an address
/// that is theirs (none yet, or the same), and never replaces another.
async fn an_address_used_to_sign_in_counts_as_confirmed(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let svc = start(&db, &nats).await;
    let mut c = NotificationsServiceClient::new(svc.channel().await);
    let confirm = |email: &str| pb::ConfirmSignInAddressRequest {
        email: email.into(),
    };
    let by_web = |who: &str| token(who, REGION, &["signed-in-by-email"]);
    let refused = c
        .confirm_sign_in_address(with_token(confirm("ann@example.org"), &tok("ann")))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "not from a plain token"
    );
    let bad = c
        .confirm_sign_in_address(with_token(confirm("not an address"), &by_web("ann")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["email"]);
    let held = c
        .confirm_sign_in_address(with_token(confirm("Ann@Example.org"), &by_web("ann")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (held.email.as_str(), held.email_confirmed),
        ("ann@example.org", true)
    );
    // Someone whose settings name another address keeps it, unconfirmed.
    c.update_preferences(with_token(
        pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                email: "bo@work.example".into(),
                ..Default::default()
            }),
        },
        &tok("bo"),
    ))
    .await
    .unwrap();
    let held = c
        .confirm_sign_in_address(with_token(confirm("bo@home.example"), &by_web("bo")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (held.email.as_str(), held.email_confirmed),
        ("bo@work.example", false)
    );
    svc.stop().await.unwrap();
}

per_backend!(an_address_used_to_sign_in_counts_as_confirmed);

async fn a_lapsed_claim_cannot_record_and_another_dispatcher_takes_over(backend: Backend) {
    use selfhelp_notifications::store::{Migrator, delivery};
    let tdb = TestDb::new(backend).await;
    let cfg = selfhelp_platform::config::DatabaseConfig {
        url: tdb.url.clone(),
        max_connections: 2,
        ..Default::default()
    };
    let db = selfhelp_platform::service::open_database::<Migrator>(
        &cfg,
        &selfhelp_platform::Shutdown::new().1,
    )
    .await
    .unwrap();
    let row = delivery::NewDelivery {
        notification_id: uuid::Uuid::now_v7().to_string(),
        is_digest: false,
        recipient_id: "p".into(),
        channel: "WEBHOOK",
        webhook_id: "w".into(),
        status: delivery::PENDING,
        next_attempt_at_ms: 1_000,
        is_confirmation: false,
    };
    // The same delivery twice (a redelivered event) is stored once.
    delivery::insert_all(&db, &[row.clone(), row.clone()], 1_000)
        .await
        .unwrap();
    delivery::insert_all(&db, &[row], 1_000).await.unwrap();
    let a = delivery::claim_due(&db, "a", 2_000, 1_000, 8)
        .await
        .unwrap();
    assert_eq!(a.len(), 1, "{backend:?}");
    // Held by A: B gets nothing until the lease lapses.
    assert!(
        delivery::claim_due(&db, "b", 2_500, 1_000, 8)
            .await
            .unwrap()
            .is_empty()
    );
    let b = delivery::claim_due(&db, "b", 3_500, 1_000, 8)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    // A comes back late: its outcome does not count; B's does.
    let sent = delivery::Outcome::Sent;
    assert!(
        !delivery::record(&db, &a[0].id, "a", 1, &sent, 3_600)
            .await
            .unwrap()
    );
    assert!(
        delivery::record(&db, &b[0].id, "b", 1, &sent, 3_700)
            .await
            .unwrap()
    );
    let stored = delivery::find(&db, &a[0].id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.attempts),
        (delivery::SENT, 1)
    );
    assert!(
        delivery::claim_due(&db, "c", 10_000, 1_000, 8)
            .await
            .unwrap()
            .is_empty()
    );
}

per_backend!(a_lapsed_claim_cannot_record_and_another_dispatcher_takes_over);

async fn finished_deliveries_and_old_digests_are_pruned_failed_ones_kept(backend: Backend) {
    use selfhelp_notifications::store::{Migrator, delivery, digest};
    let tdb = TestDb::new(backend).await;
    let cfg = selfhelp_platform::config::DatabaseConfig {
        url: tdb.url.clone(),
        max_connections: 2,
        ..Default::default()
    };
    let db = selfhelp_platform::service::open_database::<Migrator>(
        &cfg,
        &selfhelp_platform::Shutdown::new().1,
    )
    .await
    .unwrap();
    let new = |n: u32| delivery::NewDelivery {
        notification_id: format!("n-{n}"),
        is_digest: false,
        recipient_id: "p".into(),
        channel: "EMAIL",
        webhook_id: String::new(),
        status: delivery::PENDING,
        next_attempt_at_ms: 0,
        is_confirmation: false,
    };
    delivery::insert_all(&db, &[new(1), new(2), new(3)], 1_000)
        .await
        .unwrap();
    let claimed = delivery::claim_due(&db, "c", 1_000, 60_000, 8)
        .await
        .unwrap();
    let outcomes = [
        delivery::Outcome::Sent,
        delivery::Outcome::Failed {
            error: "HTTP 500".into(),
        },
        delivery::Outcome::Cancelled {
            why: "turned off".into(),
        },
    ];
    for (d, outcome) in claimed.iter().zip(&outcomes) {
        assert!(
            delivery::record(&db, &d.id, "c", 1, outcome, 2_000)
                .await
                .unwrap()
        );
    }
    digest::create_once(&db, "p", "daily:2026-01-01", 1, 2_000)
        .await
        .unwrap();
    // A digest whose email failed keeps itself and its items for a replay.
    let failed_digest = digest::create_once(&db, "p", "daily:2026-01-02", 1, 2_000)
        .await
        .unwrap()
        .unwrap();
    let email = delivery::NewDelivery {
        notification_id: failed_digest.clone(),
        is_digest: true,
        ..new(9)
    };
    let item = delivery::NewDelivery {
        status: delivery::HELD_FOR_DIGEST,
        ..new(10)
    };
    delivery::insert_all(&db, &[email, item], 1_000)
        .await
        .unwrap();
    let held = delivery::held_before(&db, "p", 5_000, 10).await.unwrap();
    delivery::move_into_digest(&db, &[held[0].id.clone()], &failed_digest, 2_000)
        .await
        .unwrap();
    let email = delivery::claim_due(&db, "d", 2_000, 60_000, 8)
        .await
        .unwrap();
    let failed = delivery::Outcome::Failed {
        error: "SMTP 451".into(),
    };
    assert!(
        delivery::record(&db, &email[0].id, "d", 1, &failed, 2_000)
            .await
            .unwrap()
    );
    let keep = delivery::unfinished_digests(&db).await.unwrap();
    assert_eq!(keep, std::slice::from_ref(&failed_digest));
    // Nothing is old enough yet.
    assert_eq!(
        delivery::delete_finished_before(&db, 2_000, &keep)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        delivery::delete_finished_before(&db, 3_000, &keep)
            .await
            .unwrap(),
        2,
        "{backend:?}: the sent and the cancelled one"
    );
    assert_eq!(digest::delete_before(&db, 3_000, &keep).await.unwrap(), 1);
    let mut left: Vec<String> = delivery::all_for(&db, "p")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.status)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [delivery::FAILED, delivery::FAILED, delivery::IN_DIGEST]
    );
    assert!(digest::find(&db, &failed_digest).await.unwrap().is_some());
}

per_backend!(finished_deliveries_and_old_digests_are_pruned_failed_ones_kept);

/// Calls every RPC with a well-formed request as the holder of `auth` (none
/// for anonymous); returns each RPC's status code.
async fn every_rpc(
    client: &mut NotificationsServiceClient<Channel>,
    auth: Option<&str>,
) -> Vec<(&'static str, Code)> {
    fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    }
    fn req<M>(m: M, auth: Option<&str>) -> tonic::Request<M> {
        match auth {
            Some(t) => with_token(m, t),
            None => tonic::Request::new(m),
        }
    }
    let id = || uuid::Uuid::now_v7().to_string();
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $method:ident, $msg:expr) => {
            out.push(($name, code(client.$method(req($msg, auth)).await)));
        };
    }
    call!("ListNotifications", list_notifications, Default::default());
    call!(
        "MarkRead",
        mark_read,
        pb::MarkReadRequest {
            notification_ids: vec![],
            all: true,
        }
    );
    call!(
        "GetNotification",
        get_notification,
        pb::GetNotificationRequest {
            notification_id: id()
        }
    );
    call!(
        "OpenListingCheck",
        open_listing_check,
        pb::OpenListingCheckRequest {
            token: "x.y".into()
        }
    );
    call!(
        "WatchNotifications",
        watch_notifications,
        Default::default()
    );
    call!("ExportMyData", export_my_data, pb::ExportMyDataRequest {});
    call!(
        "GetPreferences",
        get_preferences,
        pb::GetPreferencesRequest {}
    );
    call!(
        "UpdatePreferences",
        update_preferences,
        pb::UpdatePreferencesRequest {
            preferences: Some(Default::default()),
        }
    );
    call!(
        "ConfirmSignInAddress",
        confirm_sign_in_address,
        pb::ConfirmSignInAddressRequest {
            email: "op2@example.org".into(),
        }
    );
    call!(
        "ContactOrganisers",
        contact_organisers,
        pb::ContactOrganisersRequest {
            group_id: id(),
            message: "Hello".into(),
            ..Default::default()
        }
    );
    call!(
        "CreateAlert",
        create_alert,
        pb::CreateAlertRequest {
            latitude: 52.9,
            longitude: -1.1,
            radius_km: 5.0,
            ..Default::default()
        }
    );
    call!("ListAlerts", list_alerts, pb::ListAlertsRequest {});
    call!(
        "DeleteAlert",
        delete_alert,
        pb::DeleteAlertRequest { alert_id: id() }
    );
    call!(
        "RegisterWebhook",
        register_webhook,
        pb::RegisterWebhookRequest {
            url: "https://hooks.example.org/x".into(),
            kinds: vec![],
        }
    );
    call!("ListWebhooks", list_webhooks, pb::ListWebhooksRequest {});
    call!(
        "DeleteWebhook",
        delete_webhook,
        pb::DeleteWebhookRequest { webhook_id: id() }
    );
    call!("ListDeliveries", list_deliveries, Default::default());
    call!(
        "ReplayDelivery",
        replay_delivery,
        pb::ReplayDeliveryRequest { delivery_id: id() }
    );
    out
}

#[tokio::test]
async fn no_rpc_answers_anonymous_callers_or_other_regions() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let anonymous = every_rpc(&mut client, None).await;
    let called: Vec<String> = anonymous.iter().map(|(rpc, _)| rpc.to_string()).collect();
    assert_eq!(
        called,
        selfhelp_testkit::rpc_names("NotificationsService"),
        "every RPC of the service is called"
    );
    for (rpc, got) in anonymous {
        assert_eq!(got, Code::Unauthenticated, "{rpc} without a token");
    }
    let elsewhere = token("op2", "leeds", &["operator"]);
    for (rpc, got) in every_rpc(&mut client, Some(&elsewhere)).await {
        assert_eq!(
            got,
            Code::PermissionDenied,
            "{rpc} by another region's operator"
        );
    }
    // Nothing was stored for either.
    let here = token("op2", REGION, &[]);
    let mut c = client.clone();
    let alerts = c
        .list_alerts(with_token(pb::ListAlertsRequest {}, &here))
        .await
        .unwrap()
        .into_inner();
    assert!(alerts.alerts.is_empty());
    svc.stop().await.unwrap();
}

/// Only the gateway's relay token relays a visitor's message; bad fields are
/// named; a group not listed here is not found.
#[tokio::test]
async fn a_visitors_message_needs_the_relay_role_and_names_bad_fields() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut c = NotificationsServiceClient::new(svc.channel().await);
    let relay = token("web-contact-relay", REGION, &["contact-relay"]);
    let asked = |group_id: &str, message: &str, reply_to: &str| pb::ContactOrganisersRequest {
        group_id: group_id.into(),
        sender_name: "Vic".into(),
        message: message.into(),
        reply_to: reply_to.into(),
    };
    let group = uuid::Uuid::now_v7().to_string();
    let refused = c
        .contact_organisers(with_token(asked(&group, "Hello", ""), &tok("ann")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = c
        .contact_organisers(with_token(asked("x", " ", "not an address"), &relay))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, ["group_id", "message", "reply_to"]);
    let refused = c
        .contact_organisers(with_token(
            asked(&group, "Hello", "vic@example.org"),
            &relay,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn bad_ids_and_filters_are_refused_with_the_field_named() {
    let nats = Nats::start();
    let db = TestDb::new(selfhelp_testkit::Backend::Sqlite).await;
    let svc = start(&db, &nats).await;
    let mut c = NotificationsServiceClient::new(svc.channel().await);
    let ann = tok("ann");
    let op = token("op", REGION, &["operator"]);
    fn fields<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Vec<String> {
        let e = r.map(|_| ()).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let mut f = violated_fields(&e);
        f.sort();
        f
    }
    let r = c
        .delete_alert(with_token(
            pb::DeleteAlertRequest {
                alert_id: "x".into(),
            },
            &ann,
        ))
        .await;
    assert_eq!(fields(r), ["alert_id"]);
    let r = c
        .delete_webhook(with_token(
            pb::DeleteWebhookRequest {
                webhook_id: "x".into(),
            },
            &ann,
        ))
        .await;
    assert_eq!(fields(r), ["webhook_id"]);
    let r = c
        .replay_delivery(with_token(
            pb::ReplayDeliveryRequest {
                delivery_id: "x".into(),
            },
            &op,
        ))
        .await;
    assert_eq!(fields(r), ["delivery_id"]);
    let r = c
        .update_preferences(with_token(
            pb::UpdatePreferencesRequest { preferences: None },
            &ann,
        ))
        .await;
    assert_eq!(fields(r), ["preferences"]);
    let bad_list = pb::ListDeliveriesRequest {
        page: Some(PageRequest {
            page_size: 500,
            page_token: "x".into(),
        }),
        status: 99,
        all: true,
        recipient_id: "bob".into(),
    };
    let r = c.list_deliveries(with_token(bad_list, &op)).await;
    assert_eq!(
        fields(r),
        [
            "page.page_size",
            "page.page_token",
            "recipient_id",
            "status"
        ]
    );
    // Well-formed but unknown: not found.
    let missing = pb::ReplayDeliveryRequest {
        delivery_id: uuid::Uuid::now_v7().to_string(),
    };
    let err = c
        .replay_delivery(with_token(missing, &op))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // One's own deliveries only, unless an operator.
    let others = pb::ListDeliveriesRequest {
        recipient_id: "bob".into(),
        ..Default::default()
    };
    let err = c
        .list_deliveries(with_token(others.clone(), &ann))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    c.list_deliveries(with_token(others, &op)).await.unwrap();
    svc.stop().await.unwrap();
}

/// A review-due reminder carries, for each organiser, a one-click link to the
/// web that names them, the group and the confirmation it is about; only the
/// web (role `listing-check`) may open it, and a link altered in any way, or
/// another kind of token, opens nothing.
async fn a_review_due_reminder_carries_a_one_click_link_only_the_web_opens(backend: Backend) {
    let nats = Nats::start();
    let db = TestDb::new(backend).await;
    let mut config = config(&db, &nats);
    config.http.web_url = "https://web.example/".into();
    let svc = start_with(config).await;
    let mut client = NotificationsServiceClient::new(svc.channel().await);
    let g = uuid::Uuid::now_v7().to_string();
    let organisers = ["olive", "oscar"];
    let checked = prost_types::Timestamp {
        seconds: 1_765_000_000,
        nanos: 250_000_000,
    };
    let review = ev::GroupReviewDue {
        group: snapshot(&g, &organisers, 4),
        assured_at: Some(checked),
        occurred_at: None,
    };
    publish(&nats, LISTINGS, "group.review_due", &g, &review).await;
    let prefix = format!("https://web.example/groups/{g}/still-right?token=");
    let mut tokens = Vec::new();
    for person in organisers {
        let body = eventually("the reminder", Duration::from_secs(20), || {
            let mut c = client.clone();
            async move {
                inbox(&mut c, person)
                    .await
                    .notifications
                    .into_iter()
                    .find(|n| n.kind() == pb::NotificationKind::ReviewDue)
                    .map(|n| n.body)
            }
        })
        .await;
        let token = body
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("a link in {body:?}"))
            .to_string();
        tokens.push(token);
    }
    let open = |token: &str| pb::OpenListingCheckRequest {
        token: token.into(),
    };
    let web = token("web-listing-check", REGION, &["listing-check"]);
    for (person, t) in organisers.iter().zip(&tokens) {
        let check = client
            .open_listing_check(with_token(open(t), &web))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(check.person_id, *person);
        assert_eq!(check.group_id, g);
        let at = check.checked_at.unwrap();
        assert_eq!((at.seconds, at.nanos), (checked.seconds, 250_000_000));
    }
    let refused = client
        .open_listing_check(with_token(open(&tokens[0]), &token("olive", REGION, &[])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let (claim, sig) = tokens[0].split_once('.').unwrap();
    for forged in [
        format!("{claim}.{}", &sig[1..]),
        format!("{}.{sig}", &claim[1..]),
        "garbage".into(),
    ] {
        let refused = client
            .open_listing_check(with_token(open(&forged), &web))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{forged}");
    }
    svc.stop().await.unwrap();
}

per_backend!(a_review_due_reminder_carries_a_one_click_link_only_the_web_opens);
