//! `gatepass clients add|list|show|update|rotate-secret|delete`: OAuth clients in the data
//! directory (works while the server runs). Answers are the RFC 7591 metadata as JSON; a
//! secret appears once, in the answer of `add` or `rotate-secret`.

use clap::Subcommand;

use super::fail;
use crate::app;
use crate::config::{SecurityArgs, StoreArgs};
use crate::service::Actor;
use crate::service::oauth::clients::ClientMetadata;

/// What to set on a client (flags left out stay as they are, or take their defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientFlags {
    /// Name shown on the consent page.
    #[arg(long)]
    pub name: Option<String>,
    /// A redirect URI (repeat for several): https, http on loopback (any port matches), or an
    /// app's own scheme with a dot.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Where a logout request may send the browser back to (repeat for several); same rules
    /// as --redirect-uri, matched exactly.
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A grant type (repeat): authorization_code (default), refresh_token, client_credentials,
    /// urn:ietf:params:oauth:grant-type:device_code.
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// A scope the client may ask for (repeat; default openid, profile, email).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Skip the consent page (an application of the same operator).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub first_party: Option<bool>,
    /// Whether the client stays limited as a dynamically registered one (public, PKCE,
    /// code and refresh only, not first-party); `--limited false` promotes it.
    #[arg(long, action = clap::ArgAction::Set)]
    pub limited: Option<bool>,
    /// Audience of the client's access tokens (default: its client id).
    #[arg(long)]
    pub resource: Option<String>,
    /// A further resource (RFC 8707 absolute URI) the client may ask tokens for with the
    /// `resource` parameter (repeat; replaces the list).
    #[arg(long = "allowed-resource")]
    pub resources: Vec<String>,
    /// What the client's ID tokens are signed with: RS256 (default) or ES256.
    #[arg(long)]
    pub id_token_alg: Option<String>,
}

impl ClientFlags {
    fn metadata(self, auth_method: Option<&str>) -> ClientMetadata {
        ClientMetadata {
            client_name: self.name,
            redirect_uris: (!self.redirect_uris.is_empty()).then_some(self.redirect_uris),
            post_logout_redirect_uris: (!self.post_logout_redirect_uris.is_empty())
                .then_some(self.post_logout_redirect_uris),
            grant_types: (!self.grants.is_empty()).then_some(self.grants),
            response_types: None,
            scope: (!self.scopes.is_empty()).then(|| self.scopes.join(" ")),
            token_endpoint_auth_method: auth_method.map(str::to_owned),
            first_party: self.first_party,
            limited: self.limited,
            resource: self.resource,
            resources: (!self.resources.is_empty()).then_some(self.resources),
            id_token_signed_response_alg: self.id_token_alg,
        }
    }
}

/// `gatepass clients …`
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its metadata (and secret, once) as JSON.
    Add {
        /// What to set.
        #[command(flatten)]
        flags: ClientFlags,
        /// A public client (native or browser app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// List clients.
    List {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Show a client.
    Show {
        /// The client id.
        client_id: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Change a client: the flags given replace what is stored.
    Update {
        /// The client id.
        client_id: String,
        /// What to set.
        #[command(flatten)]
        flags: ClientFlags,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret {
        /// The client id.
        client_id: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Delete a client and revoke every grant it holds.
    Delete {
        /// The client id.
        client_id: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// Runs one `gatepass clients` command.
pub(super) async fn run(cmd: ClientsCommand) -> anyhow::Result<()> {
    let (ClientsCommand::Add { store, security, .. }
    | ClientsCommand::List { store, security }
    | ClientsCommand::Show { store, security, .. }
    | ClientsCommand::Update { store, security, .. }
    | ClientsCommand::RotateSecret { store, security, .. }
    | ClientsCommand::Delete { store, security, .. }) = &cmd;
    let core = app::open_core(store, security).await?;
    let by = Actor::cli();
    let out = match cmd {
        ClientsCommand::Add { flags, public, .. } => {
            let method = if public { "none" } else { "client_secret_basic" };
            serde_json::to_value(core.register_client(flags.metadata(Some(method)), &by).await.map_err(fail)?)?
        }
        ClientsCommand::List { .. } => serde_json::to_value(core.clients().await.map_err(fail)?)?,
        ClientsCommand::Show { client_id, .. } => serde_json::to_value(core.client(&client_id).await.map_err(fail)?)?,
        ClientsCommand::Update { client_id, flags, .. } => {
            serde_json::to_value(core.update_client(&client_id, flags.metadata(None), &by).await.map_err(fail)?)?
        }
        ClientsCommand::RotateSecret { client_id, .. } => {
            serde_json::to_value(core.rotate_client_secret(&client_id, &by).await.map_err(fail)?)?
        }
        ClientsCommand::Delete { client_id, .. } => {
            let n = core.delete_client(&client_id, &by).await.map_err(fail)?;
            serde_json::json!({ "client_id": client_id, "grants_revoked": n })
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
