//! Sending email the configured way (`email.*`): written as `.eml` files in a
//! folder (the embedded default) or handed to an SMTP server. Notifications
//! sends people's notices with it, the gateway its sign-in links.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// `file` (the embedded default: each email becomes an `.eml` file in
    /// `file_dir`) or `smtp`.
    pub transport: String,
    pub file_dir: PathBuf,
    /// Sender, e.g. `Selfhelp Nottinghamshire <no-reply@example.org>`.
    pub from: String,
    pub smtp: SmtpConfig,
    /// Operator templates: `<kind>.subject|txt|html` for every region,
    /// `<region>/<kind>.…` for one; the built-in ones fill the gaps.
    pub templates_dir: Option<PathBuf>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            transport: "file".into(),
            file_dir: PathBuf::from("mail"),
            from: "selfhelp <no-reply@localhost>".into(),
            smtp: SmtpConfig::default(),
            templates_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, usually port 465) or `none`
    /// (only for a relay on the same host).
    pub tls: String,
    pub username: String,
    /// A file holding the password (kept out of the config and environment).
    pub password_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password_file: None,
            timeout_secs: 30,
        }
    }
}

enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends built messages the configured way, from the configured sender.
pub struct Sender {
    transport: Transport,
    from: Mailbox,
}

/// Why a message was not sent; `permanent` when trying again cannot help
/// (an SMTP 5xx answer, an address that does not parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

impl Sender {
    pub fn from_config(cfg: &EmailConfig) -> anyhow::Result<Sender> {
        let from: Mailbox = cfg
            .from
            .parse()
            .with_context(|| format!("email.from {:?} is not an address", cfg.from))?;
        let transport = match cfg.transport.as_str() {
            "file" => {
                std::fs::create_dir_all(&cfg.file_dir).with_context(|| {
                    format!("creating email.file_dir {}", cfg.file_dir.display())
                })?;
                Transport::File(AsyncFileTransport::new(&cfg.file_dir))
            }
            "smtp" => {
                let smtp = &cfg.smtp;
                let builder = match smtp.tls.as_str() {
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
                    "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                    other => {
                        anyhow::bail!("email.smtp.tls must be starttls, tls or none, not {other:?}")
                    }
                };
                let mut builder = builder
                    .port(smtp.port)
                    .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
                if !smtp.username.is_empty() {
                    let password = match &smtp.password_file {
                        Some(file) => std::fs::read_to_string(file)
                            .with_context(|| {
                                format!("email.smtp.password_file {}", file.display())
                            })?
                            .trim()
                            .to_string(),
                        None => String::new(),
                    };
                    builder =
                        builder.credentials(Credentials::new(smtp.username.clone(), password));
                }
                Transport::Smtp(builder.build())
            }
            other => anyhow::bail!("email.transport must be file or smtp, not {other:?}"),
        };
        Ok(Sender { transport, from })
    }

    /// The address emails come from (`email.from`).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match &self.transport {
            Transport::File(t) => t.send(message).await.map(|_| ()).map_err(|e| SendError {
                permanent: false,
                message: e.to_string(),
            }),
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| SendError {
                // A 5xx reply (no such mailbox): trying again will not help.
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
        }
    }
}
