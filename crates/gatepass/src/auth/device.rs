//! Device cookies: "this browser signed into this account before", as a value only the
//! server can mint. It carries a random device id and the accounts (user ids) that signed
//! in from the browser, under an HMAC-SHA256 whose key is derived from the server secret
//! with its own label; a value that does not verify is simply not recognised.
//!
//! The back-off uses it to tell the owner from strangers ([`crate::auth::ratelimit`]): a
//! recognised device is judged by its own failure record for that account only. It is no
//! credential: it proves nothing but an earlier successful sign-in, and is checked only
//! together with the password.
//!
//! Form: `<device id>.<user id>~<user id>….<mac>`, base64url without padding for the id
//! and the MAC, most recent account first.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a browser stays recognised after its last sign-in: 180 days.
pub const MAX_AGE_SECS: i64 = 180 * 86_400;
/// Accounts one browser is recognised for (the most recent sign-ins).
pub const MAX_ACCOUNTS: usize = 4;
/// Longest value looked at; anything longer is not ours.
const MAX_VALUE_LEN: usize = 512;
/// Longest user id accepted in a value.
const MAX_USER_ID_LEN: usize = 64;

/// A device cookie value as the client presented it (verified only by [`DeviceCookies`]).
/// Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedDevice(pub String);

impl std::fmt::Debug for PresentedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedDevice(..)")
    }
}

/// A verified device cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Random id of the browser (128 bits, base64url).
    pub id: String,
    /// User ids that signed in from it, most recent first.
    pub accounts: Vec<String>,
}

impl Device {
    /// Whether the account `user_id` signed in from this device.
    pub fn knows(&self, user_id: &str) -> bool {
        self.accounts.iter().any(|a| a == user_id)
    }
}

/// Mints and checks device cookies.
#[derive(Clone)]
pub struct DeviceCookies {
    key: [u8; 32],
}

impl DeviceCookies {
    /// Derives the device-cookie key from the server secret (its own label, so it is
    /// unrelated to the CSRF and refresh keys).
    pub fn new(secret: &[u8]) -> Self {
        Self { key: mac(secret, b"gatepass device cookie v1") }
    }

    /// A key known to this process only: its cookies are recognised by nobody else and
    /// not after a restart (for a service built without the server secret).
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// The device a presented value stands for, if it is one this server minted.
    pub fn verify(&self, presented: &PresentedDevice) -> Option<Device> {
        let value = presented.0.as_str();
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let (signed, tag) = value.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // Constant time: the MAC is checked before anything else of the value is believed.
        if !bool::from(mac(&self.key, signed.as_bytes()).as_slice().ct_eq(tag.as_slice())) {
            return None;
        }
        let (id, accounts) = signed.split_once('.')?;
        if URL_SAFE_NO_PAD.decode(id).ok()?.len() != 16 {
            return None;
        }
        let accounts: Vec<String> = accounts.split('~').map(str::to_owned).collect();
        if accounts.len() > MAX_ACCOUNTS || !accounts.iter().all(|a| valid_user_id(a)) {
            return None;
        }
        Some(Device { id: id.to_owned(), accounts })
    }

    /// The value to set after `user_id` signed in from `device` (a verified cookie of this
    /// browser, if it showed one): the same device id (a new one for a new browser), with
    /// this account first.
    pub fn remember(&self, device: Option<&Device>, user_id: &str) -> String {
        let id = match device {
            Some(d) => d.id.clone(),
            None => {
                let mut bytes = [0u8; 16];
                rand::rng().fill_bytes(&mut bytes);
                URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        let mut accounts = vec![user_id.to_owned()];
        if let Some(d) = device {
            accounts.extend(d.accounts.iter().filter(|a| *a != user_id).cloned());
        }
        accounts.truncate(MAX_ACCOUNTS);
        let signed = format!("{id}.{}", accounts.join("~"));
        let tag = URL_SAFE_NO_PAD.encode(mac(&self.key, signed.as_bytes()));
        format!("{signed}.{tag}")
    }
}

/// User ids are UUIDs; anything outside their alphabet (and the cookie-safe `_`) is not.
fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_USER_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0190a1b2-0000-7000-8000-000000000001";
    const BOB: &str = "0190a1b2-0000-7000-8000-000000000002";

    fn presented(v: &str) -> PresentedDevice {
        PresentedDevice(v.to_owned())
    }

    #[test]
    fn a_minted_value_verifies_and_binds_its_accounts() {
        let d = DeviceCookies::new(&[7u8; 32]);
        let first = d.remember(None, ALICE);
        let device = d.verify(&presented(&first)).expect("verifies");
        assert!(device.knows(ALICE) && !device.knows(BOB));
        // Signing into another account keeps the device id and both accounts.
        let second = d.verify(&presented(&d.remember(Some(&device), BOB))).expect("verifies");
        assert_eq!(second.id, device.id);
        assert_eq!(second.accounts, vec![BOB.to_owned(), ALICE.to_owned()]);
        // A new browser gets a new id.
        assert_ne!(d.verify(&presented(&d.remember(None, ALICE))).expect("verifies").id, device.id);
    }

    #[test]
    fn tampered_foreign_and_malformed_values_are_not_recognised() {
        let d = DeviceCookies::new(&[7u8; 32]);
        let value = d.remember(None, ALICE);
        let (signed, tag) = value.rsplit_once('.').unwrap();
        let (id, _) = signed.split_once('.').unwrap();
        for bad in [
            format!("{id}.{BOB}.{tag}"),
            format!("{id}.{ALICE}~{BOB}.{tag}"),
            format!("{signed}.{}", &tag[1..]),
            format!("{signed}x.{tag}"),
            value.replace(id, "AAAAAAAAAAAAAAAAAAAAAA"),
            String::new(),
            "garbage".to_owned(),
            format!("{value}.{tag}"),
            "a".repeat(10_000),
        ] {
            assert_eq!(d.verify(&presented(&bad)), None, "{bad}");
        }
        assert_eq!(DeviceCookies::new(&[8u8; 32]).verify(&presented(&value)), None, "another server's key");
        assert!(format!("{:?}", presented(&value)).find(tag).is_none(), "Debug hides the value");
    }

    #[test]
    fn at_most_four_accounts_most_recent_first() {
        let d = DeviceCookies::new(&[7u8; 32]);
        let mut device = None;
        for i in 0..6 {
            let value = d.remember(device.as_ref(), &format!("user-{i}"));
            device = d.verify(&presented(&value));
        }
        let device = device.expect("verifies");
        assert_eq!(device.accounts, ["user-5", "user-4", "user-3", "user-2"]);
    }
}
