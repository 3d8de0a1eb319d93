//! Credentials of the services allowed to call token introspection (RFC 7662):
//! `id:secret` pairs from configuration, checked in constant time.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The services allowed to introspect tokens.
#[derive(Default)]
pub struct IntrospectionClients {
    clients: Vec<(String, SecretString)>,
}

impl IntrospectionClients {
    /// Parses `id:secret,id2:secret2`. Secrets must be at least 32 bytes; ids must be
    /// non-empty and free of `:`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut clients = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("GATEPASS_INTROSPECTION_CLIENTS: expected id:secret entries"))?;
            if id.is_empty() || secret.len() < 32 {
                anyhow::bail!(
                    "GATEPASS_INTROSPECTION_CLIENTS: each client needs an id and a secret of at least 32 bytes"
                );
            }
            clients.push((id.to_owned(), SecretString::from(secret.to_owned())));
        }
        Ok(Self { clients })
    }

    /// Whether `id`/`secret` are configured credentials. Every configured secret is compared
    /// (in constant time) so the answer's timing does not reveal which ids exist.
    pub fn check(&self, id: &str, secret: &str) -> bool {
        let mut ok = subtle::Choice::from(0);
        for (cid, csecret) in &self.clients {
            let id_eq = cid.as_bytes().ct_eq(id.as_bytes());
            let secret_eq = csecret.expose_secret().as_bytes().ct_eq(secret.as_bytes());
            ok |= id_eq & secret_eq;
        }
        ok.into()
    }
}
