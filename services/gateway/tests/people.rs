//! People signing in on the web (issue 32): by a link sent by email, read
//! from a real SMTP server, or its code typed on another device; sessions
//! shared by two gateway replicas on one database (SQLite, and PostgreSQL
//! when `TEST_DATABASE_URL` is set); signing out here and everywhere; the
//! tokens the gateway gives the services, checked the way the services
//! check them, across a key rotation.

use std::time::Duration;

mod common;

use common::web::{ask, browser, count, field, mails_to, sign_in_email, smtp_config};
use common::{Gateway, REGION, system};
use selfhelp_testkit::{Backend, SmtpServer, TestDb, eventually, per_backend};

async fn two_replicas_share_sign_in(backend: Backend) {
    let sys = system().await;
    let smtp = SmtpServer::start();
    let db = TestDb::new(backend).await;
    let start = |db_url: String| {
        let listings = sys.listings.url();
        let smtp = &smtp;
        async move {
            Gateway::start(&listings, |c| {
                c.database.url = db_url;
                smtp_config(smtp, c);
            })
            .await
        }
    };
    let (one, two) = (start(db.url.clone()).await, start(db.url.clone()).await);

    // Asked through one replica, the link opened through the other.
    let ann = browser();
    ask(&ann, &one, "Ann@Example.org").await;
    let (link, _) = sign_in_email(&smtp, "ann@example.org", 0).await;
    let token = link.rsplit('/').next().unwrap();
    let page = ann
        .get(two.url(&format!("/sign-in/link/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let page = page.text().await.unwrap();
    let signed = ann
        .post(two.url("/sign-in/link"))
        .form(&[("csrf", field(&page, "csrf")), ("token", token.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303, "{backend:?}");
    assert_eq!(
        signed.headers()["location"],
        "/topics",
        "back where they were"
    );
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // The session made through one replica works through the other.
    for gateway in [&one, &two] {
        let account = ann.get(gateway.url("/account")).send().await.unwrap();
        assert_eq!(account.status().as_u16(), 200);
        assert_eq!(
            account.headers()["cache-control"],
            "no-store",
            "never shared"
        );
        assert!(account.text().await.unwrap().contains("ann@example.org"));
    }
    // The link works once.
    let again = ann
        .post(one.url("/sign-in/link"))
        .form(&[("csrf", field(&page, "csrf")), ("token", token.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 410);

    // On another device: the code from the email, typed where the link was
    // asked for. The same person (one account per address).
    let phone = browser();
    let sent = ask(&phone, &two, "ann@example.org").await;
    let (_, code) = sign_in_email(&smtp, "ann@example.org", 1).await;
    let wrong = phone
        .post(one.url("/sign-in/code"))
        .form(&[
            ("csrf", field(&sent, "csrf")),
            ("link", field(&sent, "link")),
            ("code", "WRONG222".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    assert!(
        wrong.text().await.unwrap().contains("id=\"code-error\""),
        "the field named"
    );
    let typed = phone
        .post(one.url("/sign-in/code"))
        .form(&[
            ("csrf", field(&sent, "csrf")),
            ("link", field(&sent, "link")),
            ("code", code.to_lowercase()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status().as_u16(), 303);
    let people = sea_orm::Database::connect(&db.url).await.unwrap();
    assert_eq!(
        count(&people, "account").await,
        1,
        "{backend:?}: one person, however many times they sign in"
    );
    assert_eq!(count(&people, "session").await, 2);

    // Signing out everywhere ends the phone's session too.
    let account = ann
        .get(one.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = ann
        .post(two.url("/sign-out/everywhere"))
        .form(&[("csrf", field(&account, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    for browser in [&ann, &phone] {
        let account = browser.get(one.url("/account")).send().await.unwrap();
        assert_eq!(account.status().as_u16(), 303, "signed out");
    }
}

per_backend!(two_replicas_share_sign_in);

/// The answer is the same whether an address can have an account or asks too
/// often; forms without their token are refused; `next` stays on this site.
#[tokio::test]
async fn sign_in_tells_strangers_nothing_and_refuses_forged_forms() {
    let sys = system().await;
    let smtp = SmtpServer::start();
    let gateway = Gateway::start(&sys.listings.url(), |c| {
        smtp_config(&smtp, c);
        c.sign_in.links_per_address_per_hour = 2;
    })
    .await;
    let b = browser();
    for _ in 0..3 {
        let sent = ask(&b, &gateway, "bob@example.org").await;
        assert!(sent.contains("Check your email"));
    }
    eventually("two emails", Duration::from_secs(20), || {
        let n = smtp.messages().len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    // A bad address is named in the form.
    let form = b
        .get(gateway.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bad = b
        .post(gateway.url("/sign-in"))
        .form(&[("csrf", field(&form, "csrf")), ("email", "nope".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("id=\"email-error\""));
    // Without the form's token (another site posting it): refused.
    let forged = browser()
        .post(gateway.url("/sign-in"))
        .form(&[("csrf", "guess"), ("email", "carol@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 400);
    assert_eq!(smtp.messages().len(), 2, "nothing sent for a forged form");
    // `next` leads only to this site.
    let page = b
        .get(gateway.url("/sign-in?next=//evil.example/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(field(&page, "next"), "/");
}

/// Sessions end when unused for the idle limit, and at the absolute limit
/// however used; the clock is moved, not waited for.
#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_limit() {
    let sys = system().await;
    let smtp = SmtpServer::start();
    let clock = selfhelp_core::time::Clock::system();
    let dir = tempfile::tempdir().unwrap();
    let mut config = selfhelp_gateway::Config {
        listings_url: sys.listings.url(),
        area_name: "Nottinghamshire".into(),
        region: REGION.into(),
        ..Default::default()
    };
    config.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
    config.http.rate_limit_per_second = 0;
    config.sessions.idle_hours = 2;
    config.sessions.absolute_hours = 5;
    smtp_config(&smtp, &mut config);
    let gateway = Gateway::start_with(config, clock.clone(), dir).await;
    let sign_in = |b: reqwest::Client| {
        let (gateway, smtp) = (&gateway, &smtp);
        async move {
            let before = mails_to(smtp, "dee@example.org").len();
            let sent = ask(&b, gateway, "dee@example.org").await;
            let (_, code) = sign_in_email(smtp, "dee@example.org", before).await;
            let done = b
                .post(gateway.url("/sign-in/code"))
                .form(&[
                    ("csrf", field(&sent, "csrf")),
                    ("link", field(&sent, "link")),
                    ("code", code),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(done.status().as_u16(), 303);
            b
        }
    };
    let signed_in = |b: &reqwest::Client| {
        let url = gateway.url("/account");
        let b = b.clone();
        async move { b.get(url).send().await.unwrap().status().as_u16() == 200 }
    };
    let idle = sign_in(browser()).await;
    clock.advance(Duration::from_secs(3 * 3_600));
    assert!(!signed_in(&idle).await, "idle for longer than 2 hours");

    let busy = sign_in(browser()).await;
    for _ in 0..4 {
        clock.advance(Duration::from_secs(3_600 + 60));
        assert!(signed_in(&busy).await, "in use");
    }
    clock.advance(Duration::from_secs(3_600));
    assert!(
        !signed_in(&busy).await,
        "5 hours after signing in, however used"
    );
}

/// The services check the gateway's tokens against its JWKS, as deployed:
/// a token signed before a key rotation still works, and one after it too.
#[tokio::test]
async fn tokens_for_the_services_survive_a_key_rotation() {
    let sys = system().await;
    let clock = selfhelp_core::time::Clock::system();
    let dir = tempfile::tempdir().unwrap();
    let mut config = selfhelp_gateway::Config {
        listings_url: sys.listings.url(),
        region: REGION.into(),
        ..Default::default()
    };
    config.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
    config.tokens.rotate_after_days = 1;
    let gateway = Gateway::start_with(config.clone(), clock.clone(), dir).await;
    let auth = selfhelp_platform::auth::Authenticator::from_config(
        &selfhelp_platform::config::AuthConfig {
            jwks_url: Some(gateway.url("/.well-known/jwks.json")),
            issuer: Some(config.tokens.issuer.clone()),
            audience: Some(config.tokens.audience.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The gateway's keys as a second replica holds them (the same database).
    let db = selfhelp_platform::db::connect(&config.database.url, 1)
        .await
        .unwrap();
    let keys =
        selfhelp_gateway::keys::Keys::new(db, clock.clone(), config.tokens.clone(), REGION.into());
    keys.reload().await.unwrap();
    let before = keys.token("p-1", &[]).await.unwrap();
    assert_eq!(auth.authenticate(&before).await.unwrap().person_id, "p-1");
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let published = || async {
        let jwks: serde_json::Value = reqwest::get(gateway.url("/.well-known/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Shortly before the day is out the next key is published, and does not
    // sign yet: the services' caches learn it first.
    clock.advance(Duration::from_secs(86_400 - 60));
    keys.maintain().await.unwrap();
    assert_eq!(published().await.len(), 2, "the next key published ahead");
    assert_eq!(kid(&keys.token("p-1", &[]).await.unwrap()), kid(&before));
    // Then it signs, and the old one stays published while its tokens live.
    clock.advance(Duration::from_secs(120));
    keys.maintain().await.unwrap();
    let after = keys.token("p-2", &[]).await.unwrap();
    assert_ne!(kid(&before), kid(&after), "signed by the new key");
    let now = published().await;
    assert!(
        now.contains(&kid(&before)) && now.contains(&kid(&after)),
        "{now:?}"
    );
    // A service (its cache as it would be by then) takes both.
    let service = selfhelp_platform::auth::Authenticator::from_config(
        &selfhelp_platform::config::AuthConfig {
            jwks_url: Some(gateway.url("/.well-known/jwks.json")),
            issuer: Some(config.tokens.issuer.clone()),
            audience: Some(config.tokens.audience.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(service.authenticate(&after).await.unwrap().person_id, "p-2");
    assert_eq!(
        service.authenticate(&before).await.unwrap().person_id,
        "p-1"
    );
    // Once every token of the old key has expired, it is published no more.
    clock.advance(Duration::from_secs(config.tokens.ttl_secs + 120));
    keys.maintain().await.unwrap();
    assert_eq!(published().await, vec![kid(&after)]);
}
