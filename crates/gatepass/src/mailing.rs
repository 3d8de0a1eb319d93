//! E-mail configuration: where mail goes (an SMTP server, or `.eml` files in the data
//! directory when none is configured), who it is from, the public URL every link is built
//! from, token lifetimes and the notice switches, as flags and environment variables.

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{parse_bool, secs};
use crate::service::mail::{FileMailer, MailConfig, Mailer, SmtpMailer};

/// Mail settings of `gatepass serve` and of the commands that queue mail.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// SMTP server: `smtp://user:pass@host:587` (STARTTLS required), `smtps://user:pass@host:465`
    /// (TLS), or `smtp://127.0.0.1:1025` (a relay on loopback, no TLS). Unset: mails are written
    /// to `<data dir>/outbox/` and not sent.
    #[arg(long, env = "GATEPASS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// The `From` of every mail, e.g. `gatepass <noreply@example.com>`.
    #[arg(long, env = "GATEPASS_MAIL_FROM", default_value = "gatepass <gatepass@localhost>")]
    pub mail_from: String,
    /// Base URL of every link in a mail (`https://auth.example.com`); never taken from a
    /// request's `Host`. Required with an SMTP server; otherwise `http://<listen address>`.
    #[arg(long, env = "GATEPASS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Lifetime of a password-reset link.
    #[arg(long, env = "GATEPASS_RESET_TOKEN_TTL", default_value = "30m", value_parser = crate::config::parse_duration)]
    pub reset_token_ttl: Duration,
    /// Lifetime of an address-verification or address-change link.
    #[arg(long, env = "GATEPASS_VERIFY_TOKEN_TTL", default_value = "24h", value_parser = crate::config::parse_duration)]
    pub verify_token_ttl: Duration,
    /// Refuse login until the account's address is verified (changeable at run time).
    #[arg(long, env = "GATEPASS_REQUIRE_VERIFIED_EMAIL", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub require_verified_email: bool,
    /// Mail the owner when their password was changed or reset.
    #[arg(long, env = "GATEPASS_NOTIFY_PASSWORD_CHANGED", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub notify_password_changed: bool,
    /// Mail the old address when the account's address was changed.
    #[arg(long, env = "GATEPASS_NOTIFY_EMAIL_CHANGED", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub notify_email_changed: bool,
    /// Mail the owner about a sign-in from a device not seen before.
    #[arg(long, env = "GATEPASS_NOTIFY_NEW_DEVICE", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub notify_new_device: bool,
}

impl MailArgs {
    /// The service's mail settings; `listen` gives the link base when no public URL is
    /// configured (file mode only).
    ///
    /// # Errors
    /// A malformed `From`, public URL or SMTP URL; an SMTP server without a public URL.
    pub fn config(&self, listen: Option<std::net::SocketAddr>) -> anyhow::Result<MailConfig> {
        let from: lettre::message::Mailbox = self
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("GATEPASS_MAIL_FROM is not a valid mailbox ({e}): {:?}", self.mail_from))?;
        let public_url = match (&self.public_url, &self.smtp_url) {
            (Some(url), _) => check_public_url(url)?,
            (None, Some(_)) => anyhow::bail!(
                "GATEPASS_SMTP_URL is set but GATEPASS_PUBLIC_URL is not: links in mails are built only from \
                 the configured public URL (never from a request's Host header); set it to the address users \
                 reach gatepass at, e.g. GATEPASS_PUBLIC_URL=https://auth.example.com"
            ),
            (None, None) => match listen {
                Some(addr) => {
                    if addr.ip().is_unspecified() {
                        tracing::warn!(
                            %addr,
                            "links in mails point at the listen address, which other machines cannot open; \
                             set GATEPASS_PUBLIC_URL"
                        );
                    }
                    format!("http://{addr}")
                }
                None => "http://127.0.0.1:8080".to_owned(),
            },
        };
        Ok(MailConfig {
            public_url,
            from,
            reset_ttl: secs(self.reset_token_ttl).clamp(60, 86_400),
            verify_ttl: secs(self.verify_token_ttl).clamp(60, 30 * 86_400),
            notify_password_changed: self.notify_password_changed,
            notify_email_changed: self.notify_email_changed,
            notify_new_device: self.notify_new_device,
        })
    }

    /// Where mail goes: the SMTP server, or files in `<data dir>/outbox/`.
    ///
    /// # Errors
    /// An SMTP URL lettre cannot use; an outbox directory that cannot be created.
    pub fn mailer(&self, config: &MailConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Mailer>> {
        match &self.smtp_url {
            Some(url) => {
                let mailer = SmtpMailer::new(&with_starttls(url.expose_secret()), config)
                    .map_err(|e| anyhow::anyhow!("GATEPASS_SMTP_URL is not usable: {e}"))?;
                Ok(Arc::new(mailer))
            }
            None => {
                let dir = data_dir.join("outbox");
                crate::config::ensure_data_dir(&dir)?;
                tracing::warn!(
                    dir = %dir.display(),
                    "no GATEPASS_SMTP_URL: mails (verification, password recovery) are written to this directory \
                     and do not leave the machine"
                );
                Ok(Arc::new(FileMailer::new(dir, config)))
            }
        }
    }
}

/// lettre reads a bare `smtp://` URL as "no TLS at all"; gatepass reads it as STARTTLS
/// required (`?tls=required`), except for a relay on loopback. An explicit `tls=` in the
/// URL is kept as written.
fn with_starttls(url: &str) -> String {
    let Some(rest) = url.strip_prefix("smtp://") else { return url.to_owned() };
    if url.contains("tls=") {
        return url.to_owned();
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}tls=required")
}

fn check_public_url(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim_end_matches('/');
    let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && trimmed.len() > "https://".len()
        && !trimmed.contains(['?', '#', ' ', '"', '<', '>'])
        && !trimmed.chars().any(char::is_control);
    if !ok {
        anyhow::bail!("GATEPASS_PUBLIC_URL must be an http:// or https:// URL without query or fragment: {url:?}");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        mail: MailArgs,
    }

    #[test]
    fn plain_smtp_urls_require_starttls_beyond_loopback() {
        assert_eq!(with_starttls("smtp://u:p@mail.example.com:587"), "smtp://u:p@mail.example.com:587?tls=required");
        assert_eq!(with_starttls("smtp://mail.example.com"), "smtp://mail.example.com?tls=required");
        for kept in [
            "smtp://127.0.0.1:1025",
            "smtp://localhost:25",
            "smtp://[::1]:25",
            "smtp://u:p@mail.example.com:587?tls=opportunistic",
            "smtps://u:p@mail.example.com:465",
        ] {
            assert_eq!(with_starttls(kept), kept);
        }
    }

    #[test]
    fn smtp_without_a_public_url_is_refused_and_file_mode_needs_nothing() {
        let args = Wrapper::try_parse_from(["x", "--smtp-url", "smtp://127.0.0.1:25"]).unwrap().mail;
        let err = args.config(None).unwrap_err().to_string();
        assert!(err.contains("GATEPASS_PUBLIC_URL"), "{err}");
        let args = Wrapper::try_parse_from(["x"]).unwrap().mail;
        let listen = "127.0.0.1:9000".parse().ok();
        assert_eq!(args.config(listen).unwrap().public_url, "http://127.0.0.1:9000");
        for bad in ["ftp://x", "https://a.b/?q=1", "https://", "javascript:alert(1)"] {
            let args = Wrapper::try_parse_from(["x", "--public-url", bad]).unwrap().mail;
            assert!(args.config(None).is_err(), "{bad}");
        }
        let args = Wrapper::try_parse_from(["x", "--mail-from", "a@b.c\r\nBcc: x@y.z"]).unwrap().mail;
        assert!(args.config(None).is_err());
    }
}
