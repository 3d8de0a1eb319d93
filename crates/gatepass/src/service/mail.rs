//! Mail: composing messages from the templates in `templates/mail/`, the [`Mailer`] seam
//! (an SMTP server through lettre, or `.eml` files when none is configured), and the
//! sender task that delivers the durable outbox.
//!
//! A mail is rendered when its action happens and stored in the outbox in that action's
//! transaction (see [`crate::storage::mail`]). The sender claims due mails under a lease,
//! delivers them and deletes them; a temporary failure (connection refused, a 4xx answer)
//! is retried with exponential back-off, a permanent one (5xx) is kept as failed. Each
//! mail carries a `Message-ID` made from its outbox id, so a retry after an unclear answer
//! is the same message, not a second one.

use askama::Template;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{AuthService, Core, now};
use crate::storage::OutboxMail;

/// How mail is built: the link base, the sender, token lifetimes and the notice switches.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Base of every link (`GATEPASS_PUBLIC_URL`, without a trailing slash).
    pub public_url: String,
    /// The `From` mailbox.
    pub from: Mailbox,
    /// Password-reset link lifetime, seconds.
    pub reset_ttl: i64,
    /// Verification and address-change link lifetime, seconds.
    pub verify_ttl: i64,
    /// Send "your password was changed".
    pub notify_password_changed: bool,
    /// Send "your address was changed" to the old address.
    pub notify_email_changed: bool,
    /// Send "a sign-in from a new device".
    pub notify_new_device: bool,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            from: Mailbox::new(Some("gatepass".into()), lettre::Address::new("gatepass", "localhost").expect("valid")),
            reset_ttl: 1800,
            verify_ttl: 86_400,
            notify_password_changed: true,
            notify_email_changed: true,
            notify_new_device: true,
        }
    }
}

impl MailConfig {
    /// The domain part of `Message-ID`s: the sender's domain.
    fn message_id_domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Worth retrying: no connection, a timeout, a 4xx answer.
    Temporary(String),
    /// Retrying cannot help: a 5xx answer, an address the server refuses.
    Permanent(String),
}

/// Delivers one rendered mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Hands the mail over; `Ok` once the receiving side has accepted it.
    async fn send(&self, mail: &OutboxMail) -> Result<(), SendError>;
}

/// Builds the MIME message: plain text and HTML alternatives, a stable `Message-ID`.
fn build_message(config: &MailConfig, mail: &OutboxMail) -> Result<Message, SendError> {
    // Addresses were validated (no CR/LF) before they were queued; a parse failure here is
    // a row nobody can deliver.
    let to: Mailbox = mail.recipient.parse().map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
    let date = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(mail.created_at).unwrap_or(0));
    Message::builder()
        .from(config.from.clone())
        .to(to)
        .subject(mail.subject.as_str())
        .date(date)
        .message_id(Some(format!("<{}@{}>", mail.id, config.message_id_domain())))
        .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))
        .map_err(|e| SendError::Permanent(format!("message: {e}")))
}

/// Delivers through an SMTP server (lettre, rustls).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    config: MailConfig,
}

impl SmtpMailer {
    /// A mailer for `url` (`smtp://`, `smtps://`; see [`crate::mailing::MailArgs`]).
    ///
    /// # Errors
    /// When lettre cannot read the URL.
    pub fn new(url: &str, config: &MailConfig) -> Result<Self, lettre::transport::smtp::Error> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.timeout(Some(SMTP_TIMEOUT)).build();
        Ok(Self { transport, config: config.clone() })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutboxMail) -> Result<(), SendError> {
        let message = build_message(&self.config, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Temporary(e.to_string())),
        }
    }
}

/// Writes each mail as `<dir>/<id>.eml` instead of sending it: the zero-configuration
/// default, so that a first run needs no mail server.
pub struct FileMailer {
    dir: PathBuf,
    config: MailConfig,
}

impl FileMailer {
    /// Writes into `dir`, which must exist.
    pub fn new(dir: PathBuf, config: &MailConfig) -> Self {
        Self { dir, config: config.clone() }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &OutboxMail) -> Result<(), SendError> {
        let message = build_message(&self.config, mail)?;
        let path = self.dir.join(format!("{}.eml", mail.id));
        let tmp = self.dir.join(format!("{}.eml.tmp", mail.id));
        let bytes = message.formatted();
        let write = async {
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        write.await.map_err(|e| SendError::Temporary(format!("writing {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), kind = %mail.kind, "mail written to a file, not sent (no GATEPASS_SMTP_URL)");
        Ok(())
    }
}

/// The one layout of every mail, in two renderings.
#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextMail<'a> {
    username: &'a str,
    paragraphs: &'a [String],
    action: Option<&'a (String, String)>,
    after: &'a [String],
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlMail<'a> {
    subject: &'a str,
    username: &'a str,
    paragraphs: &'a [String],
    action: Option<&'a (String, String)>,
    after: &'a [String],
}

/// What one mail says, before rendering.
pub(crate) struct Compose<'a> {
    /// Outbox kind.
    pub kind: &'static str,
    /// Recipient address.
    pub to: &'a str,
    /// Subject line.
    pub subject: String,
    /// The account it is about.
    pub username: &'a str,
    /// Paragraphs before the link.
    pub paragraphs: Vec<String>,
    /// The one link: (button label, URL).
    pub action: Option<(String, String)>,
    /// Paragraphs after the link.
    pub after: Vec<String>,
}

impl Core {
    /// The mail settings in force.
    pub fn mail_config(&self) -> &MailConfig {
        &self.mail
    }

    /// Sets the mail settings (the server and the commands that queue mail).
    pub fn with_mail(mut self, config: MailConfig) -> Self {
        self.mail = config;
        self
    }

    /// `path` (with its query) under the public URL.
    pub(crate) fn link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.mail.public_url)
    }

    /// Renders a mail into an outbox row.
    pub(crate) fn compose(&self, c: Compose<'_>) -> crate::error::Result<OutboxMail> {
        let text =
            TextMail { username: c.username, paragraphs: &c.paragraphs, action: c.action.as_ref(), after: &c.after }
                .render()
                .map_err(|e| crate::error::Error::Internal(format!("mail template: {e}")))?;
        let html = HtmlMail {
            subject: &c.subject,
            username: c.username,
            paragraphs: &c.paragraphs,
            action: c.action.as_ref(),
            after: &c.after,
        }
        .render()
        .map_err(|e| crate::error::Error::Internal(format!("mail template: {e}")))?;
        Ok(OutboxMail {
            id: uuid::Uuid::now_v7().simple().to_string(),
            kind: c.kind.to_owned(),
            recipient: c.to.to_owned(),
            subject: c.subject,
            text_body: text,
            html_body: html,
            created_at: now(),
            attempts: 0,
        })
    }

    /// Counts mails just committed to the outbox and wakes this instance's sender.
    pub(crate) fn queued(&self, mails: &[OutboxMail]) {
        for m in mails {
            metrics::counter!("gatepass_mail_queued_total", "kind" => m.kind.clone()).increment(1);
        }
        if !mails.is_empty() {
            self.outbox_wake.notify_one();
        }
    }

    /// Mails waiting in the outbox (not failed).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn outbox_depth(&self) -> crate::error::Result<i64> {
        Ok(self.storage.outbox_depth().await?)
    }
}

/// How long a sender holds claimed mails before another may take them over (also how
/// long a mail waits when its sender was killed mid-delivery). Longer than one SMTP
/// command may take (the transport's timeout).
const LEASE_SECS: i64 = 60;
/// Longest wait for one SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// Mails claimed at a time.
const BATCH: i64 = 20;
/// Longest wait between two attempts at one mail.
const MAX_BACKOFF_SECS: i64 = 300;
/// A mail still undelivered after this long is given up (and kept as failed).
const GIVE_UP_AFTER_SECS: i64 = 3 * 86_400;

/// Seconds until the next attempt after `attempts` failed ones: 1, 2, 4, … 300.
pub(crate) fn backoff_secs(attempts: i64) -> i64 {
    1i64.checked_shl(u32::try_from(attempts.clamp(0, 16)).unwrap_or(16))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// Starts the sender: delivers due mails through `mailer` until the server stops.
pub fn spawn_sender(service: Arc<AuthService>, mailer: Arc<dyn Mailer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let core = service.core();
        let lease = uuid::Uuid::now_v7().to_string();
        loop {
            let delivered_some = match core.storage.claim_mails(&lease, now(), LEASE_SECS, BATCH).await {
                Ok(batch) => {
                    let any = !batch.is_empty();
                    for mail in batch {
                        deliver(core, mailer.as_ref(), &lease, mail).await;
                    }
                    any
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: cannot claim mails; retrying");
                    false
                }
            };
            if !delivered_some {
                // Mails queued by this instance wake it at once; those of other instances,
                // the command line and retries coming due are found by the poll.
                let _ = tokio::time::timeout(Duration::from_secs(1), core.outbox_wake.notified()).await;
            }
        }
    })
}

async fn deliver(core: &Core, mailer: &dyn Mailer, lease: &str, mail: OutboxMail) {
    let outcome = mailer.send(&mail).await;
    let t = now();
    let stored = match outcome {
        Ok(()) => {
            metrics::counter!("gatepass_mail_sent_total", "kind" => mail.kind.clone()).increment(1);
            tracing::info!(id = %mail.id, kind = %mail.kind, "mail delivered");
            core.storage.mail_sent(&mail.id, lease).await
        }
        Err(SendError::Temporary(e)) if t - mail.created_at < GIVE_UP_AFTER_SECS => {
            metrics::counter!("gatepass_mail_retried_total", "kind" => mail.kind.clone()).increment(1);
            let next = t + backoff_secs(mail.attempts);
            tracing::warn!(id = %mail.id, kind = %mail.kind, attempts = mail.attempts + 1, error = %e,
                "mail not delivered; will retry");
            core.storage.mail_retry(&mail.id, lease, next, &clip(&e)).await
        }
        Err(SendError::Temporary(e) | SendError::Permanent(e)) => {
            metrics::counter!("gatepass_mail_failed_total", "kind" => mail.kind.clone()).increment(1);
            tracing::error!(id = %mail.id, kind = %mail.kind, error = %e, "mail failed for good; kept as failed in the outbox");
            core.storage.mail_failed(&mail.id, lease, t, &clip(&e)).await
        }
    };
    match stored {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(id = %mail.id, "outbox: the lease on this mail ran out before its outcome was stored")
        }
        Err(e) => tracing::warn!(id = %mail.id, error = %e, "outbox: could not store a delivery outcome"),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let steps: Vec<i64> = (0..12).map(backoff_secs).collect();
        assert_eq!(&steps[..5], &[1, 2, 4, 8, 16]);
        assert!(steps.iter().all(|s| *s <= MAX_BACKOFF_SECS));
        assert_eq!(backoff_secs(1_000), MAX_BACKOFF_SECS);
        assert_eq!(backoff_secs(-3), 1);
    }

    #[test]
    fn a_message_has_both_parts_and_a_stable_message_id() {
        let config = MailConfig::default();
        let mail = OutboxMail {
            id: "0190abcd".into(),
            kind: "password_reset".into(),
            recipient: "ann@example.com".into(),
            subject: "Reset".into(),
            text_body: "plain".into(),
            html_body: "<p>html</p>".into(),
            created_at: 1_900_000_000,
            attempts: 0,
        };
        let a = String::from_utf8(build_message(&config, &mail).unwrap().formatted()).unwrap();
        assert!(a.contains("Message-ID: <0190abcd@localhost>"), "{a}");
        assert!(a.contains("multipart/alternative") && a.contains("text/plain") && a.contains("text/html"));
        let bad = OutboxMail { recipient: "a@b.c\r\nBcc: x@y.z".into(), ..mail };
        assert!(matches!(build_message(&config, &bad), Err(SendError::Permanent(_))));
    }
}
