//! A person at a browser: the helpers the web tests share (a cookie-keeping
//! client, reading forms and emails, signing in).

use std::time::Duration;

use selfhelp_testkit::{SmtpServer, eventually};

use super::Gateway;

/// A browser: keeps cookies, does not follow redirects (the test looks at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The hidden `name` field's value in a page's form.
pub fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    unescape(&rest[..rest.find('"').unwrap()])
}

/// What the template engine escaped, as the browser reads it.
pub fn unescape(value: &str) -> String {
    value
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every text part of `mail` (the plain and HTML alternatives of a
/// multipart one), one after the other.
fn text_of(mail: &mailparse::ParsedMail<'_>) -> String {
    if mail.subparts.is_empty() {
        mail.get_body().unwrap_or_default()
    } else {
        mail.subparts
            .iter()
            .map(text_of)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The bodies of the emails sent to `to` so far, oldest first.
pub fn mails_to(smtp: &SmtpServer, to: &str) -> Vec<String> {
    smtp.messages()
        .into_iter()
        .filter_map(|raw| {
            let mail = mailparse::parse_mail(&raw).ok()?;
            let to_them = mail
                .headers
                .iter()
                .any(|h| h.get_key_ref().eq_ignore_ascii_case("to") && h.get_value().contains(to));
            to_them.then(|| text_of(&mail))
        })
        .collect()
}

/// The link and the code of the sign-in email sent to `to` after the
/// `before` it had already been sent.
pub async fn sign_in_email(smtp: &SmtpServer, to: &str, before: usize) -> (String, String) {
    let text = eventually("the sign-in email", Duration::from_secs(20), || {
        let found = mails_to(smtp, to).into_iter().nth(before);
        async move { found }
    })
    .await;
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/sign-in/link/"))
        .expect("a link")
        .to_string();
    let code = text
        .split("enter this code: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a code")
        .to_string();
    (link, code)
}

pub async fn count(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

pub fn smtp_config(smtp: &SmtpServer, config: &mut selfhelp_gateway::Config) {
    config.email.transport = "smtp".into();
    config.email.smtp.host = "127.0.0.1".into();
    config.email.smtp.port = smtp.port();
    config.email.smtp.tls = "none".into();
    config.email.from = "Selfhelp Notts <no-reply@selfhelp.test>".into();
}

/// Asks for a link for `email` in `browser` at `gateway`; returns the page
/// that asks for the code.
pub async fn ask(browser: &reqwest::Client, gateway: &Gateway, email: &str) -> String {
    let form = browser
        .get(gateway.url("/sign-in?next=/topics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let asked = browser
        .post(gateway.url("/sign-in"))
        .form(&[
            ("csrf", field(&form, "csrf")),
            ("email", email.to_string()),
            ("next", field(&form, "next")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 303, "asked");
    let to = asked.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/sign-in/sent?link="), "{to}");
    browser
        .get(gateway.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Signs `email` in at `gateway` in `browser` by the link of its
/// `nth` sign-in email (0 for the first sent to it).
pub async fn sign_in(
    browser: &reqwest::Client,
    gateway: &Gateway,
    smtp: &SmtpServer,
    email: &str,
    nth: usize,
) {
    ask(browser, gateway, email).await;
    let (link, _) = sign_in_email(smtp, &email.to_lowercase(), nth).await;
    let token = link.rsplit('/').next().unwrap();
    let page = browser
        .get(gateway.url(&format!("/sign-in/link/{token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed = browser
        .post(gateway.url("/sign-in/link"))
        .form(&[("csrf", field(&page, "csrf")), ("token", token.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303, "{email} signed in");
}

/// `path` read as `browser` sees it: its status and its text.
pub async fn get(browser: &reqwest::Client, gateway: &Gateway, path: &str) -> (u16, String) {
    let answer = browser.get(gateway.url(path)).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

/// A form posted to `path`; its status, where it sends the browser, and its text.
pub async fn post(
    browser: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let answer = browser
        .post(gateway.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, answer.text().await.unwrap())
}
