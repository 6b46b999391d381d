//! Email: templates (built in, overridable per kind and region by the operator)
//! rendered with minijinja, sent over SMTP or written as `.eml` files.
//!
//! Subject lines may show on a lock screen or a shared computer, so a subject
//! template sees only the notification's title (which never names a group or a
//! condition), and a rendered subject that still names the group is replaced by
//! the title.

use std::path::Path;

use anyhow::Context;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use minijinja::{Environment, context};
use serde::Serialize;

use crate::config::EmailConfig;
use crate::domain::messages::Kind;

/// The built-in templates; operators override any of them by name.
const BUILT_IN: [(&str, &str); 10] = [
    (
        "default.subject",
        include_str!("../../templates/default.subject"),
    ),
    ("default.txt", include_str!("../../templates/default.txt")),
    ("default.html", include_str!("../../templates/default.html")),
    (
        "meeting_changed.txt",
        include_str!("../../templates/meeting_changed.txt"),
    ),
    (
        "digest.subject",
        include_str!("../../templates/digest.subject"),
    ),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    ("digest.html", include_str!("../../templates/digest.html")),
    (
        "confirm_email.subject",
        include_str!("../../templates/confirm_email.subject"),
    ),
    (
        "confirm_email.txt",
        include_str!("../../templates/confirm_email.txt"),
    ),
    (
        "confirm_email.html",
        include_str!("../../templates/confirm_email.html"),
    ),
];

/// The subject used when a template gives nothing usable.
const FALLBACK_SUBJECT: &str = "News from your groups";
const MAX_SUBJECT_CHARS: usize = 120;

/// An email ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One notification as an email shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    #[serde(skip)]
    pub kind: Kind,
    pub title: String,
    pub body: String,
    /// Local time it was created, for digests.
    pub when: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates plus the operator's from `dir` (`<name>` for all
    /// regions, `<region>/<name>` for one). A template that does not parse
    /// stops the start-up with its file named. Every template may link to the
    /// person's pages on the web at `web_url` (`inbox_url`, `settings_url`;
    /// empty when there is no web).
    pub fn load(dir: Option<&Path>, web_url: &str) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let web = web_url.trim_end_matches('/');
        let page = |path: &str| {
            if web.is_empty() {
                String::new()
            } else {
                format!("{web}{path}")
            }
        };
        env.add_global("web_url", web.to_string());
        env.add_global("inbox_url", page("/my/notifications"));
        env.add_global("settings_url", page("/my/settings"));
        for (name, source) in BUILT_IN {
            env.add_template(name, source)
                .with_context(|| format!("built-in template {name}"))?;
        }
        if let Some(dir) = dir {
            for (name, path) in template_files(dir)? {
                let source = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading template {}", path.display()))?;
                env.add_template_owned(name, source)
                    .with_context(|| format!("template {}", path.display()))?;
            }
        }
        Ok(Templates { env })
    }

    /// The most specific template for `stem.ext`: the region's, then every
    /// region's, then the region's default, then the built-in default.
    fn pick(&self, region: &str, stem: &str, ext: &str) -> Option<minijinja::Template<'_, '_>> {
        [
            format!("{region}/{stem}.{ext}"),
            format!("{stem}.{ext}"),
            format!("{region}/default.{ext}"),
            format!("default.{ext}"),
        ]
        .iter()
        .find_map(|name| self.env.get_template(name).ok())
    }

    /// The email for one notification. `group_name` is only checked against
    /// the subject, never given to it.
    pub fn notification(
        &self,
        region: &str,
        item: &Item,
        group_name: &str,
        unsubscribe_url: &str,
    ) -> anyhow::Result<Rendered> {
        let stem = item.kind.as_str().to_ascii_lowercase();
        let subject = self.subject(
            region,
            &stem,
            context! { title => item.title.clone(), kind => item.kind.as_str() },
        );
        let paragraphs: Vec<String> = item.body.split("\n\n").map(str::to_string).collect();
        let ctx = context! {
            title => item.title.clone(),
            body => item.body.clone(),
            paragraphs => paragraphs,
            kind => item.kind.as_str(),
            group_name => group_name.to_string(),
            unsubscribe_url => unsubscribe_url.to_string(),
        };
        Ok(Rendered {
            subject: safe_subject(subject, &item.title, &[group_name]),
            text: self.body(region, &stem, "txt", &ctx)?,
            html: self.body(region, &stem, "html", &ctx)?,
        })
    }

    /// A digest of `items`; `cadence` is "daily" or "weekly".
    pub fn digest(
        &self,
        region: &str,
        cadence: &str,
        items: &[Item],
        group_names: &[String],
        unsubscribe_url: &str,
    ) -> anyhow::Result<Rendered> {
        let subject = self.subject(
            region,
            "digest",
            context! { count => items.len(), cadence => cadence.to_string() },
        );
        let names: Vec<&str> = group_names.iter().map(String::as_str).collect();
        let fallback = format!("Your {cadence} summary");
        let ctx = context! {
            items => minijinja::Value::from(minijinja::value::Serde(items.to_vec())),
            cadence => cadence.to_string(),
            unsubscribe_url => unsubscribe_url.to_string(),
        };
        Ok(Rendered {
            subject: safe_subject(subject, &fallback, &names),
            text: self.body(region, "digest", "txt", &ctx)?,
            html: self.body(region, "digest", "html", &ctx)?,
        })
    }

    /// The email asking the person to confirm their address with `confirm_url`.
    pub fn confirmation(
        &self,
        region: &str,
        confirm_url: &str,
        valid_until: &str,
        unsubscribe_url: &str,
    ) -> anyhow::Result<Rendered> {
        let ctx = context! {
            confirm_url => confirm_url.to_string(),
            valid_until => valid_until.to_string(),
            unsubscribe_url => unsubscribe_url.to_string(),
        };
        let subject = self.subject(region, "confirm_email", ctx.clone());
        Ok(Rendered {
            subject: safe_subject(subject, "Please confirm your email address", &[]),
            text: self.body(region, "confirm_email", "txt", &ctx)?,
            html: self.body(region, "confirm_email", "html", &ctx)?,
        })
    }

    fn subject(&self, region: &str, stem: &str, ctx: minijinja::Value) -> Option<String> {
        let template = self.pick(region, stem, "subject")?;
        match template.render(ctx) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(template = template.name(), error = %e, "subject template failed; using the title");
                None
            }
        }
    }

    fn body(
        &self,
        region: &str,
        stem: &str,
        ext: &str,
        ctx: &minijinja::Value,
    ) -> anyhow::Result<String> {
        let template = self
            .pick(region, stem, ext)
            .with_context(|| format!("no template for {stem}.{ext}"))?;
        template
            .render(ctx)
            .with_context(|| format!("rendering {}", template.name()))
    }
}

/// The subject to send: the rendered one when it is a single short line that
/// names none of `forbidden` (group names), else `fallback`.
pub fn safe_subject(rendered: Option<String>, fallback: &str, forbidden: &[&str]) -> String {
    // The fallback (a title) is held to one short line too: a title carrying
    // line breaks or control characters must not reach a mail header as they are.
    let fallback = one_short_line(fallback);
    let fallback = if fallback.is_empty() {
        FALLBACK_SUBJECT.to_string()
    } else {
        fallback
    };
    let Some(subject) = rendered.map(|s| s.trim().to_string()) else {
        return fallback;
    };
    let lower = subject.to_lowercase();
    let names_a_group = forbidden
        .iter()
        .map(|n| n.trim().to_lowercase())
        .any(|n| !n.is_empty() && lower.contains(&n));
    if subject.is_empty()
        || subject.contains(char::is_control)
        || subject.chars().count() > MAX_SUBJECT_CHARS
        || names_a_group
    {
        fallback
    } else {
        subject
    }
}

/// `text` on one line: control characters and runs of white space become one
/// space, and it is cut (with "…") to the subject's length.
fn one_short_line(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    if line.chars().count() <= MAX_SUBJECT_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `(name, path)` of every template file under `dir`, one level of region
/// folders deep.
fn template_files(dir: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("templates_dir {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?;
                if inner.path().is_file() {
                    let file = inner.file_name().to_string_lossy().to_string();
                    out.push((format!("{name}/{file}"), inner.path()));
                }
            }
        } else if path.is_file() {
            out.push((name, path));
        }
    }
    Ok(out)
}

/// Sends rendered emails the configured way.
pub struct Mailer {
    sender: selfhelp_platform::email::Sender,
}

impl Mailer {
    pub fn from_config(cfg: &EmailConfig) -> anyhow::Result<Mailer> {
        Ok(Mailer {
            sender: selfhelp_platform::email::Sender::from_config(cfg)?,
        })
    }

    /// Sends `email` to `to`, with a one-click unsubscribe link (RFC 8058).
    pub async fn send(
        &self,
        to: &str,
        email: &Rendered,
        unsubscribe_url: &str,
    ) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError {
            permanent: true,
            message: format!("recipient address: {e}"),
        })?;
        let message = Message::builder()
            .from(self.sender.from().clone())
            .to(to)
            .subject(email.subject.clone())
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{unsubscribe_url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError {
                permanent: true,
                message: format!("building the email: {e}"),
            })?;
        self.sender.send(message).await.map_err(|e| MailError {
            permanent: e.permanent,
            message: e.message,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    pub permanent: bool,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: Kind) -> Item {
        Item {
            kind,
            title: "A meeting has changed".into(),
            body: "The Riverside Bereavement Circle meeting on 2026-12-02 is cancelled.".into(),
            when: String::new(),
        }
    }

    #[test]
    fn built_in_templates_render_text_and_html_with_the_link() {
        let t = Templates::load(None, "https://groups.example.org").unwrap();
        let e = t
            .notification(
                "notts",
                &item(Kind::MeetingChanged),
                "Riverside Bereavement Circle",
                "https://x/u?t=1",
            )
            .unwrap();
        assert_eq!(e.subject, "A meeting has changed");
        assert!(e.text.contains("before you travel"), "{}", e.text);
        assert!(e.text.contains("https://x/u?t=1"));
        assert!(
            e.html
                .contains("<p>The Riverside Bereavement Circle meeting"),
            "{}",
            e.html
        );
        // The person's pages on the web, not "the app".
        assert!(
            e.text
                .contains("https://groups.example.org/my/notifications"),
            "{}",
            e.text
        );
        let other = t
            .notification(
                "notts",
                &item(Kind::Welcome),
                "Riverside",
                "https://x/u?t=1",
            )
            .unwrap();
        assert!(
            other
                .text
                .contains("https://groups.example.org/my/settings"),
            "{}",
            other.text
        );
        // (HTML writes the slashes as entities, which browsers read back.)
        assert!(
            other
                .html
                .contains("groups.example.org&#x2f;my&#x2f;settings"),
            "{}",
            other.html
        );
        assert!(!other.text.contains("the app"), "{}", other.text);
        let no_web = Templates::load(None, "").unwrap();
        let e = no_web
            .notification(
                "notts",
                &item(Kind::Welcome),
                "Riverside",
                "https://x/u?t=1",
            )
            .unwrap();
        assert!(
            !e.text.contains("/my/"),
            "no links without a web: {}",
            e.text
        );
    }

    #[test]
    fn a_subject_naming_the_group_falls_back_to_the_title() {
        assert_eq!(
            safe_subject(
                Some("Update from Riverside Bereavement Circle".into()),
                "A meeting has changed",
                &["Riverside bereavement circle"]
            ),
            "A meeting has changed"
        );
        assert_eq!(safe_subject(Some("two\nlines".into()), "T", &[]), "T");
        assert_eq!(safe_subject(None, "", &[]), FALLBACK_SUBJECT);
        assert_eq!(safe_subject(Some("Fine".into()), "T", &["g"]), "Fine");
    }

    /// Found by the `email_templates` fuzz target: a title with a carriage
    /// return went into the subject as it was when the template's subject was
    /// refused.
    #[test]
    fn the_fallback_title_is_one_short_line_too() {
        assert_eq!(safe_subject(None, "J\r*J\u{c}", &[]), "J *J");
        assert_eq!(safe_subject(Some("a\tb".into()), "x\n\ny", &[]), "x y");
        assert_eq!(safe_subject(None, " \r\n ", &[]), FALLBACK_SUBJECT);
        let long = safe_subject(None, &"word ".repeat(100), &[]);
        assert_eq!(long.chars().count(), MAX_SUBJECT_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn operator_templates_override_per_region_and_html_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("notts")).unwrap();
        std::fs::write(
            dir.path().join("notts/meeting_changed.html"),
            "<b>{{ body }}</b>",
        )
        .unwrap();
        // A subject template cannot reach the group name: it is not given one.
        std::fs::write(
            dir.path().join("meeting_changed.subject"),
            "{{ group_name }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path()), "").unwrap();
        let mut it = item(Kind::MeetingChanged);
        it.body = "Tea & <cake>".into();
        let notts = t.notification("notts", &it, "G", "u").unwrap();
        assert_eq!(notts.html, "<b>Tea &amp; &lt;cake&gt;</b>");
        assert_eq!(notts.subject, "A meeting has changed");
        let leeds = t.notification("leeds", &it, "G", "u").unwrap();
        assert!(leeds.html.starts_with("<!doctype html>"));
    }
}
