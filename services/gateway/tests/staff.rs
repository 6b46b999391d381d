//! Staff sign in through a real OpenID Connect provider (issue 32):
//! `oidc/provider.py`, written with Authlib from PyPI, requiring PKCE and a
//! nonce. Only someone whose configured claim says so becomes an operator
//! and sees the staff page (which calls listings as them: the operator role
//! is in the gateway's token); anyone else the provider signs in is an
//! ordinary person. Used, forged and declined returns sign no one in.

mod common;

use common::oidc::{
    CLIENT_ID, CLIENT_SECRET, Provider, python_packages, staff_config, through_provider,
};
use common::web::{browser, get};
use common::{Gateway, REGION, create, group_request, system_trusting};
use selfhelp_proto::listings::v1 as pb;
use selfhelp_testkit::{token, with_token};

#[tokio::test]
async fn staff_sign_in_through_the_regions_provider_and_only_operators_see_staff_pages() {
    let packages = tokio::task::spawn_blocking(python_packages).await.unwrap();
    // The gateway's address first: listings takes its tokens.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_url = format!("http://{}", web.local_addr().unwrap());
    let mut sys = system_trusting(Some(&web_url)).await;
    // A listing waiting for review, which the staff page shows.
    let waiting = create(
        &mut sys.client,
        group_request("Queued circle", &["carers"], "NG1 5FS"),
        false,
    )
    .await;
    sys.client
        .submit_group(with_token(
            pb::SubmitGroupRequest {
                group_id: waiting.id.clone(),
            },
            &token("olive-organiser", REGION, &[]),
        ))
        .await
        .unwrap();

    let callback = format!("{web_url}/staff/callback");
    let provider = Provider::start(&packages, &callback);
    let dir = tempfile::tempdir().unwrap();
    let mut config = selfhelp_gateway::Config {
        listings_url: sys.listings.url(),
        area_name: "Nottinghamshire".into(),
        region: REGION.into(),
        ..Default::default()
    };
    config.database.url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    );
    config.email.file_dir = dir.path().join("mail");
    config.nats.url = String::new();
    config.http.rate_limit_per_second = 0;
    staff_config(&provider, &mut config);
    let gateway = Gateway::start_on(web, config, selfhelp_core::time::Clock::system(), dir).await;

    // Not signed in: the staff page sends to the staff sign-in.
    let sam = browser();
    let (status, _) = get(&sam, &gateway, "/staff").await;
    assert_eq!(status, 303);
    let (_, sign_in) = get(&sam, &gateway, "/sign-in").await;
    assert!(
        sign_in.contains("href=\"/staff/sign-in\""),
        "offered to staff"
    );

    // Sam's claim names the operators' group: an operator of the region.
    let back = through_provider(&sam, &gateway, "sam").await;
    assert!(back.starts_with(&callback), "{back}");
    let signed = sam.get(&back).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 303);
    assert_eq!(signed.headers()["location"], "/staff");
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (status, page) = get(&sam, &gateway, "/staff").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Queued circle"),
        "listings answered as an operator: {page}"
    );
    let (_, account) = get(&sam, &gateway, "/account").await;
    assert!(account.contains("signed in as staff"));

    // The same return again, or one never begun here: nobody signed in.
    let stranger = browser();
    let again = stranger.get(&back).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 410, "a used sign-in");
    let forged = stranger
        .get(gateway.url("/staff/callback?code=made-up&state=made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 410);
    let (status, _) = get(&stranger, &gateway, "/account").await;
    assert_eq!(status, 303, "still signed out");

    // Pat is signed in by the same provider, but not an operator here.
    let pat = browser();
    let back = through_provider(&pat, &gateway, "pat").await;
    assert_eq!(pat.get(&back).send().await.unwrap().status().as_u16(), 303);
    let (status, _) = get(&pat, &gateway, "/account").await;
    assert_eq!(status, 200, "signed in");
    let (status, page) = get(&pat, &gateway, "/staff").await;
    assert_eq!(status, 403, "only operators: {page}");
    assert!(!page.contains("Queued circle"));

    // Someone the provider does not know is declined, and told so.
    let nobody = browser();
    let back = through_provider(&nobody, &gateway, "mallory").await;
    assert!(back.contains("error="), "{back}");
    let declined = nobody.get(&back).send().await.unwrap();
    assert_eq!(declined.status().as_u16(), 403);

    // The provider requires PKCE: a code exchanged without its verifier is
    // refused, so each sign-in above proved the gateway sent it.
    let other = browser();
    let back = through_provider(&other, &gateway, "sam").await;
    let code = back
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .to_string();
    let tokens = reqwest::Client::new()
        .post(format!("{}/token", provider.url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status().as_u16(), 400, "no verifier, no tokens");
}
