//! The askama templates (compiled into the binary from `templates/`) and the data each
//! one shows. Only rendering lives here: no I/O, no decisions about who may see what.

use askama::Template;

/// A one-line message at the top of a page, chosen from a fixed list (never reflected
/// from the request).
#[derive(Debug, Clone, Copy)]
pub struct Notice {
    /// CSS class: `info` or `error`.
    pub kind: &'static str,
    /// ARIA role: `status` for news, `alert` for problems.
    pub role: &'static str,
    /// The text.
    pub text: &'static str,
}

impl Notice {
    /// Maps the `notice` query parameter to its message; unknown values show nothing.
    pub fn from_code(code: &str) -> Option<Notice> {
        let (kind, text) = match code {
            "expired" => ("error", "Session expired. Please log in again."),
            "invalid" => ("error", "Invalid session. Please log in again."),
            "logged_out" => ("info", "You have been logged out."),
            "password_changed" => ("info", "Password changed. Every other session has been ended."),
            "fresh" => ("error", "For your safety, confirm your password before ending other sessions."),
            "reauthed" => ("info", "Password confirmed."),
            "session_ended" => ("info", "Session ended."),
            "app_revoked" => ("info", "Access withdrawn: the application is signed out and must ask again."),
            "app_gone" => ("error", "That application had no access any more."),
            "sessions_ended" => ("info", "All other sessions have been ended."),
            "session_gone" => ("error", "That session had already ended."),
            "logout_retry" => ("error", "Your sign-in had timed out and has been renewed; press Log out again."),
            "password_reset" => {
                ("info", "Password changed. Every session has been ended: log in with the new password.")
            }
            "email_verified" => ("info", "E-mail address confirmed."),
            // A form post whose CSRF proof no longer matched (a tab left open across a new
            // sign-in, or a post that lost its origin): the form is shown again to retry.
            "page_expired" => ("error", "This page had expired, please try again."),
            "verification_sent" => ("info", "A new verification link is on its way."),
            "mfa_policy" => ("error", "Your role now requires a second factor: sign in again to set one up."),
            "mfa_removed" => ("info", "The authenticator app and the recovery codes were removed."),
            "mfa_confirmed" => ("info", "Password and second factor confirmed."),
            "mfa_failed" => ("error", "That sign-in could not be finished. Enter your password again."),
            "email_change_sent" => {
                ("info", "A confirmation link has been sent to the new address; it takes effect once you follow it.")
            }
            _ => return None,
        };
        let role = if kind == "error" { "alert" } else { "status" };
        Some(Notice { kind, role, text })
    }

    /// The `notice` query parameter of a URI query string, if it names a known notice.
    pub fn from_query(query: Option<&str>) -> Option<Notice> {
        #[derive(serde::Deserialize)]
        struct Q {
            notice: Option<String>,
        }
        let q: Q = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
        Notice::from_code(q.notice.as_deref()?)
    }
}

/// A moment shown to people, with its machine-readable form for `<time datetime>`.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// RFC 3339.
    pub iso: String,
    /// e.g. `25 Nov 2026, 16:30 UTC`.
    pub text: String,
}

impl Stamp {
    /// From epoch seconds.
    pub fn at(secs: i64) -> Stamp {
        let fmt =
            time::macros::format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
        let text =
            time::OffsetDateTime::from_unix_timestamp(secs).ok().and_then(|t| t.format(&fmt).ok()).unwrap_or_default();
        Stamp { iso: crate::domain::clock::rfc3339(secs), text }
    }
}

/// `/`, signed out.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Stylesheet URL (content-versioned).
    pub css_href: &'static str,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The username entered last time.
    pub username: String,
    /// Where a successful sign-in goes (an authorization request of an OAuth client).
    pub return_to: Option<String>,
}

/// `/register`.
#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// A problem that belongs to no single field.
    pub error: Option<String>,
    /// The username entered last time.
    pub username: String,
    /// The e-mail entered last time.
    pub email: String,
    /// Problem with the username.
    pub username_error: Option<String>,
    /// Problem with the e-mail.
    pub email_error: Option<String>,
    /// Problem with the password.
    pub password_error: Option<String>,
    /// Problem with the password confirmation.
    pub confirm_error: Option<String>,
    /// A message above the form (e.g. a stale page).
    pub notice: Option<Notice>,
    /// The shortest password accepted now (the runtime setting).
    pub password_min_length: usize,
    /// Registration is closed: the page says so instead of showing the form.
    pub closed: bool,
}

impl RegisterPage {
    /// The id of the first field with an error, in form order (it gets `autofocus`:
    /// the CSP allows no script to move the focus), or `""`.
    pub fn first_invalid(&self) -> &'static str {
        [
            ("username", &self.username_error),
            ("email", &self.email_error),
            ("password", &self.password_error),
            ("confirm_password", &self.confirm_error),
        ]
        .into_iter()
        .find(|(_, e)| e.is_some())
        .map_or("", |(id, _)| id)
    }

    /// Whether any field has an error.
    pub fn has_field_errors(&self) -> bool {
        !self.first_invalid().is_empty()
    }
}

/// One row of the sessions list.
#[derive(Debug, Clone)]
pub struct SessionItem {
    /// Session id.
    pub id: String,
    /// Whether it is the session viewing the page.
    pub current: bool,
    /// Start.
    pub created_at: Stamp,
    /// Last refresh.
    pub last_used_at: Stamp,
    /// Browser, as it named itself.
    pub user_agent: String,
    /// Client address.
    pub ip: String,
}

/// One row of the allowed-applications list.
#[derive(Debug, Clone)]
pub struct AppItem {
    /// The client id (the withdraw form's path).
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// What it may do, in plain words.
    pub scopes: Vec<String>,
    /// Last allowed or signed in.
    pub since: Stamp,
}

/// Errors shown on the signed-in page, each next to its form field.
#[derive(Debug, Default)]
pub struct HomeErrors {
    /// Step-up password confirmation.
    pub reauth: Option<String>,
    /// Password form, not tied to a field.
    pub password_form: Option<String>,
    /// Current password field.
    pub current_password: Option<String>,
    /// New password field.
    pub new_password: Option<String>,
    /// The address-change form's error.
    pub email_form: Option<String>,
    /// The address typed into the change form, shown again with its error.
    pub new_email: String,
    /// The second-factor section's error.
    pub mfa: Option<String>,
    /// The second-factor section's step-up form error.
    pub mfa_reauth: Option<String>,
}

/// `/`, signed in.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// Account name.
    pub username: String,
    /// Account e-mail.
    pub email: Option<String>,
    /// Whether `email` is verified.
    pub email_verified: bool,
    /// Roles, comma-separated.
    pub roles: String,
    /// Account creation.
    pub created_at: Stamp,
    /// Live sessions.
    pub sessions: Vec<SessionItem>,
    /// Applications the user has allowed (OAuth clients).
    pub apps: Vec<AppItem>,
    /// Whether the login is fresh enough to end other sessions without re-entering the
    /// password.
    pub fresh: bool,
    /// The session's CSRF token for the hidden form fields.
    pub csrf_token: String,
    /// Step-up error.
    pub reauth_error: Option<String>,
    /// Password form error.
    pub password_form_error: Option<String>,
    /// Current-password field error.
    pub current_password_error: Option<String>,
    /// New-password field error.
    pub new_password_error: Option<String>,
    /// The address-change form's error.
    pub email_form_error: Option<String>,
    /// The address typed into the change form, shown again with its error.
    pub new_email: String,
    /// The shortest password accepted now (the runtime setting).
    pub password_min_length: usize,
    /// Whether an authenticator app is active.
    pub mfa_active: bool,
    /// Whether the account has any second factor (the app or a passkey): recovery codes
    /// and the step-up forms follow from it.
    pub has_factor: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Whether this session is fresh and included the second factor (changing factors
    /// needs it).
    pub fresh_mfa: bool,
    /// The second-factor section's error.
    pub mfa_error: Option<String>,
    /// The second-factor section's step-up form error.
    pub mfa_reauth_error: Option<String>,
}

/// The page that renews an expired sign-in through a POST (see `docs/browser.md`).
#[derive(Template)]
#[template(path = "resume.html")]
pub struct ResumePage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Where the form posts: the page-refresh route.
    pub action: &'static str,
    /// Echo of the CSRF cookie (double submit).
    pub csrf_token: String,
}

/// The forgotten-password form.
#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Show the "sent" notice.
    pub sent: bool,
    /// What was typed.
    pub login: String,
    /// An error to show.
    pub error: Option<String>,
}

/// The new-password form of a reset link.
#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// The link's token, posted back.
    pub token: String,
    /// An error to show.
    pub error: Option<String>,
    /// The shortest password accepted now (the runtime setting).
    pub password_min_length: usize,
}

/// The landing page of a verification or address-change link.
#[derive(Template)]
#[template(path = "verify.html")]
pub struct VerifyPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// The link's token, posted back.
    pub token: String,
    /// An error to show.
    pub error: Option<String>,
}

/// The second login step: a code from the authenticator app, or a recovery code.
#[derive(Template)]
#[template(path = "login_mfa.html")]
pub struct LoginMfaPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// The challenge of the password step, posted back (bound to this browser).
    pub challenge: String,
    /// The name typed at the password step, to fill the login form again if needed.
    pub username: String,
    /// Why the last attempt was refused.
    pub error: Option<String>,
    /// The error belongs to the recovery-code form (which is then shown open).
    pub recovery: bool,
    /// The account has a passkey: offer it (with the passkey script).
    pub webauthn: bool,
    /// Where the sign-in goes on to (an OAuth authorization request), if not `/`.
    pub return_to: Option<String>,
}

/// The sign-in of an account whose role requires a second factor it lacks.
#[derive(Template)]
#[template(path = "mfa_enrol_required.html")]
pub struct EnrolRequiredPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// The enrolment challenge, posted back.
    pub challenge: String,
    /// The name typed at the password step.
    pub username: String,
    /// An error to show.
    pub error: Option<String>,
}

/// Setting up an authenticator app: the key (once) and the confirming code's form.
#[derive(Template)]
#[template(path = "mfa_setup.html")]
pub struct MfaSetupPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// The key in base32; `None` when the form is shown again after a wrong code.
    pub secret: Option<String>,
    /// The key as a QR code (an SVG element made here from the `otpauth://` URI).
    pub qr_svg: Option<String>,
    /// Where the code goes.
    pub confirm_action: &'static str,
    /// Where "start over" goes.
    pub restart_action: &'static str,
    /// The enrolment challenge, during sign-in.
    pub challenge: Option<String>,
    /// The name typed at the password step, during sign-in.
    pub username: String,
    /// The session's CSRF token, when signed in.
    pub csrf_token: Option<String>,
    /// An error to show.
    pub error: Option<String>,
}

/// New recovery codes, shown once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// What just happened.
    pub notice: Option<Notice>,
    /// The codes.
    pub codes: Vec<String>,
}
