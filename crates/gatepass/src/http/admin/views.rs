//! The console's askama templates (`templates/admin/`) and the data each one shows. Only
//! rendering lives here: no I/O, no decisions about who may see what.

use askama::Template;

pub use crate::http::pages::views::{Notice, Stamp};

/// The navigation bar and what every console page's forms need.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The section shown: `overview`, `users`, `keys`, `audit`, `settings` or `apps`.
    pub section: &'static str,
    /// The signed-in admin's name.
    pub admin: String,
    /// The session's CSRF token, for the page's forms.
    pub csrf_token: String,
    /// Whether the sign-in is fresh enough for destructive actions.
    pub fresh: bool,
}

impl Nav {
    /// `aria-current="page"` for the link of `section` (askama escapes nothing in it).
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// Maps the console's `notice` query parameter to its message; unknown values show nothing.
pub fn notice(query: Option<&str>) -> Option<Notice> {
    #[derive(serde::Deserialize)]
    struct Q {
        notice: Option<String>,
    }
    let q: Q = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    let (kind, text) = match q.notice.as_deref()? {
        "reauthed" => ("info", "Password confirmed: you can now confirm the action."),
        "reauth_failed" => ("error", "That password (or code) was not accepted."),
        "disabled" => ("info", "The account is disabled and its sessions have ended."),
        "enabled" => ("info", "The account is enabled."),
        "roles" => ("info", "Roles saved."),
        "deleted" => ("info", "The account is deleted and its sessions have ended."),
        "created" => ("success", "The account was created."),
        "email_changed" => ("info", "The address was saved (not verified yet)."),
        "session_ended" => ("info", "Session ended."),
        "sessions_ended" => ("info", "Every session of the account has ended."),
        "session_gone" => ("error", "That session had already ended."),
        "mfa_reset" => ("info", "The second factors were removed."),
        "verification_sent" => ("info", "A verification link is on its way."),
        "verified" => ("info", "The address is marked verified."),
        "reset_sent" => ("info", "A password-reset link is on its way."),
        "rotated" => ("info", "A new signing key was added; it signs after the activation delay."),
        "revoked" => ("info", "The key is revoked: every token it signed is refused."),
        "saved" => ("info", "Settings saved; they are in force now."),
        "app_saved" => ("info", "Application saved."),
        "app_promoted" => ("info", "The application's limits were lifted."),
        "app_deleted" => ("info", "Application deleted; its grants were revoked."),
        _ => return None,
    };
    let role = if kind == "error" { "alert" } else { "status" };
    Some(Notice { kind, role, text })
}

/// The page of a signed-in user who may not use the console.
#[derive(Template)]
#[template(path = "admin/forbidden.html")]
pub struct ForbiddenPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// One bar of the overview chart (SVG user units).
#[derive(Debug, Clone)]
pub struct Bar {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: i64,
    /// Height.
    pub h: i64,
    /// `ok` (sign-ins) or `fail` (failures).
    pub class: &'static str,
    /// For the tooltip and screen readers.
    pub label: String,
}

/// `/admin`.
#[derive(Template)]
#[template(path = "admin/overview.html")]
pub struct OverviewPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A problem to announce.
    pub error: Option<String>,
    /// Accounts.
    pub users: i64,
    /// Live sessions.
    pub live_sessions: i64,
    /// Mails waiting.
    pub outbox: i64,
    /// Sign-ins over 24 h.
    pub sign_ins: i64,
    /// Failures over 24 h.
    pub failures: i64,
    /// The chart's bars.
    pub bars: Vec<Bar>,
    /// The chart's text alternative.
    pub chart_summary: String,
    /// Signing keys.
    pub keys: Vec<KeyItem>,
    /// `local` or `redis`.
    pub rate_limit_backend: &'static str,
    /// Shared store state in words.
    pub redis_state: &'static str,
    /// `sqlite` or `postgres`.
    pub storage_backend: &'static str,
    /// The instances serving this database.
    pub instances: Vec<InstanceItem>,
}

/// An instance as the overview lists it.
#[derive(Debug, Clone)]
pub struct InstanceItem {
    /// Its address.
    pub listen: String,
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started_at: Stamp,
    /// Its latest heartbeat.
    pub last_seen: Stamp,
    /// Heard from recently.
    pub up: bool,
    /// The instance answering this page.
    pub this: bool,
}

/// A signing key as the console lists it.
#[derive(Debug, Clone)]
pub struct KeyItem {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `pending`, `active`, `retired`, `expired` or `revoked`.
    pub state: String,
    /// Generated.
    pub created_at: Stamp,
    /// Signs from.
    pub activates_at: Stamp,
    /// Stops signing, if a successor exists.
    pub retires_at: Option<Stamp>,
    /// Revoked, if it was.
    pub revoked_at: Option<Stamp>,
}

/// An account in a listing.
#[derive(Debug, Clone)]
pub struct UserItem {
    /// Id.
    pub id: String,
    /// Name.
    pub username: String,
    /// Address, if any.
    pub email: Option<String>,
    /// Whether the address is verified.
    pub verified: bool,
    /// Roles, comma-separated.
    pub roles: String,
    /// Whether sign-in is refused.
    pub disabled: bool,
}

/// `/admin/users`.
#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct UsersPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A bad filter.
    pub error: Option<String>,
    /// The search text.
    pub q: String,
    /// The role filter.
    pub role: String,
    /// `any`, `disabled` or `enabled`.
    pub status: String,
    /// Only unverified addresses.
    pub unverified: bool,
    /// The page.
    pub users: Vec<UserItem>,
    /// Matches in all.
    pub total: i64,
    /// First shown (1-based), for "n–m of t".
    pub first: i64,
    /// Last shown.
    pub last: i64,
    /// Link of the previous page.
    pub prev: Option<String>,
    /// Link of the next page.
    pub next: Option<String>,
}

/// A session of an account.
#[derive(Debug, Clone)]
pub struct SessionItem {
    /// Session id.
    pub id: String,
    /// Client, described.
    pub agent: String,
    /// Address.
    pub ip: String,
    /// Started.
    pub created_at: Stamp,
    /// Last used.
    pub last_used_at: Stamp,
    /// The OAuth client it is a grant to, if any.
    pub client: Option<String>,
}

/// An audit entry as the console lists it.
#[derive(Debug, Clone)]
pub struct AuditItem {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: Stamp,
    /// Event name.
    pub event: String,
    /// Who acted.
    pub actor: String,
    /// Acted upon.
    pub subject: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Client address.
    pub ip: String,
}

/// `/admin/users/{id}`.
#[derive(Template)]
#[template(path = "admin/user.html")]
pub struct UserPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A refused change, announced.
    pub error: Option<String>,
    /// The account.
    pub user: UserItem,
    /// Created.
    pub created_at: Stamp,
    /// The roles field's value (what was typed, after a refused change).
    pub roles_value: String,
    /// Live sessions.
    pub sessions: Vec<SessionItem>,
    /// The authenticator app in words.
    pub totp: &'static str,
    /// Passkeys.
    pub passkeys: i64,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Consents: client id, name, scopes.
    pub consents: Vec<(String, String, String)>,
    /// The newest audit entries about the account.
    pub audit: Vec<AuditItem>,
}

/// The confirmation step of a destructive action, with the step-up form when the sign-in
/// is not fresh.
#[derive(Template)]
#[template(path = "admin/confirm.html")]
pub struct ConfirmPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A problem to announce.
    pub error: Option<String>,
    /// Heading.
    pub title: String,
    /// What will happen.
    pub message: String,
    /// Where the confirming form posts.
    pub action: String,
    /// The confirming button's text.
    pub button: &'static str,
    /// Where "Cancel" goes.
    pub back: String,
    /// This page's path (the step-up comes back here).
    pub here: String,
    /// Whether the step-up asks for a code too.
    pub needs_code: bool,
}

/// `/admin/keys`.
#[derive(Template)]
#[template(path = "admin/keys.html")]
pub struct KeysPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A refused action, announced.
    pub error: Option<String>,
    /// The keys.
    pub keys: Vec<KeyItem>,
}

/// `/admin/audit`.
#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// A bad filter.
    pub error: Option<String>,
    /// Event filter.
    pub event: String,
    /// User filter.
    pub user: String,
    /// From (as typed).
    pub from: String,
    /// To (as typed).
    pub to: String,
    /// The page.
    pub entries: Vec<AuditItem>,
    /// Link of the next (older) page.
    pub next: Option<String>,
    /// The filters as a query string, for the export links.
    pub filter_query: String,
    /// Whether the chain checks out.
    pub chain_intact: bool,
    /// The verdict in words.
    pub chain_text: String,
}

/// One runtime setting on the settings form.
#[derive(Debug, Clone)]
pub struct SettingField {
    /// Form field name (a `PATCH /api/info` key, dotted under `rate_limit`).
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Current value (or what was typed, after a refused change).
    pub value: String,
    /// `number`, `text` or `checkbox`.
    pub kind: &'static str,
}

/// `/admin/settings`.
#[derive(Template)]
#[template(path = "admin/settings.html")]
pub struct SettingsPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// Why the change was refused.
    pub error: Option<String>,
    /// The runtime settings.
    pub fields: Vec<SettingField>,
    /// The static configuration, read-only (never a secret).
    pub config: Vec<(&'static str, String)>,
}

/// An OAuth client as the console shows it.
#[derive(Debug, Clone, Default)]
pub struct AppItem {
    /// Client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Redirect URIs, one a line.
    pub redirect_uris: String,
    /// Post-logout redirect URIs, one a line.
    pub post_logout_redirect_uris: String,
    /// The default audience of its access tokens (empty: the client id).
    pub resource: String,
    /// Further resources it may ask tokens for, one a line.
    pub resources: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// Grant types, space-separated.
    pub grant_types: String,
    /// Whether it is a public client.
    pub public: bool,
    /// Whether consent is skipped.
    pub first_party: bool,
    /// Registered itself (dynamic registration) and not promoted yet.
    pub limited: bool,
}

/// `/admin/apps`.
#[derive(Template)]
#[template(path = "admin/apps.html")]
pub struct AppsPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// Why creating was refused.
    pub error: Option<String>,
    /// The clients.
    pub apps: Vec<AppItem>,
    /// The creation form's values.
    pub draft: AppItem,
    /// Whether the OAuth provider is on.
    pub provider_on: bool,
    /// Who may register apps at `/oauth/register` (`GATEPASS_OAUTH_REGISTRATION`), in words.
    pub registration: &'static str,
}

/// `/admin/apps/{client_id}`, and the page that shows a new secret once.
#[derive(Template)]
#[template(path = "admin/app.html")]
pub struct AppPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Message from a redirect.
    pub notice: Option<Notice>,
    /// Why a change was refused.
    pub error: Option<String>,
    /// The client (or, after a refused change, what was typed).
    pub app: AppItem,
    /// A secret just made, shown this once.
    pub secret: Option<String>,
}
