//! Row shapes shared by the SQLite and PostgreSQL backends: both store the same columns
//! with the same Rust types, and `FromRow` is generic over the database.

use sqlx::FromRow;

use super::mail::{OneTimeToken, OutboxMail, TokenPurpose};
use super::{SessionRecord, StorageError, StorageResult};
use crate::domain::{Email, Roles, StoredKey, User, UserId, Username};

#[derive(FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    password_hash: String,
    roles: String,
    disabled: bool,
    created_at: i64,
}

impl UserRow {
    pub(crate) fn into_user(self) -> StorageResult<User> {
        Ok(User {
            id: UserId::from_trusted(self.id),
            username: Username::parse(&self.username)
                .map_err(|_| StorageError::Other("stored username is invalid".into()))?,
            email: self.email.as_deref().and_then(|e| Email::parse(e).ok()),
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            roles: Roles::from_stored(&self.roles),
            disabled: self.disabled,
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    auth_time: i64,
    access_expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    revoked_at: Option<i64>,
    amr: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            id: r.id,
            user_id: r.user_id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            auth_time: r.auth_time,
            access_expires_at: r.access_expires_at,
            user_agent: r.user_agent,
            ip: r.ip,
            revoked_at: r.revoked_at,
            // Sessions from before second factors were all password sign-ins.
            amr: match r.amr.as_deref() {
                None | Some("") => vec!["pwd".to_owned()],
                Some(list) => list.split(' ').map(str::to_owned).collect(),
            },
            client_id: r.client_id,
            scope: r.scope,
            resource: r.resource,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    private_key: String,
    created_at: i64,
    activates_at: i64,
    revoked_at: Option<i64>,
}

impl From<KeyRow> for StoredKey {
    fn from(r: KeyRow) -> Self {
        StoredKey {
            kid: r.kid,
            alg: r.alg,
            public_jwk: r.public_jwk,
            private_key: r.private_key,
            created_at: r.created_at,
            activates_at: r.activates_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct TokenRow {
    token_hash: String,
    purpose: String,
    user_id: String,
    email: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl TokenRow {
    /// `None` for a purpose this version does not know (never accepted).
    pub(crate) fn into_token(self) -> Option<OneTimeToken> {
        let purpose = [TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail, TokenPurpose::PasswordReset]
            .into_iter()
            .find(|p| p.as_str() == self.purpose)?;
        Some(OneTimeToken {
            token_hash: self.token_hash,
            purpose,
            user_id: self.user_id,
            email: self.email,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct MailRow {
    pub(crate) id: String,
    kind: String,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    pub(crate) created_at: i64,
    attempts: i64,
}

impl From<MailRow> for OutboxMail {
    fn from(r: MailRow) -> Self {
        OutboxMail {
            id: r.id,
            kind: r.kind,
            recipient: r.recipient,
            subject: r.subject,
            text_body: r.text_body,
            html_body: r.html_body,
            created_at: r.created_at,
            attempts: r.attempts,
        }
    }
}
