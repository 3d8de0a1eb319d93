//! Request-body parsing: the JSON and form bodies of register, login and password change,
//! then the domain validation they feed. Nothing may panic, and whatever validates must
//! satisfy the documented invariants.
#![no_main]

use gatepass::domain::{Email, Password, PasswordPolicy, Username};
use gatepass::http::api::accounts::{LoginRequest, PasswordRequest, RegisterRequest};
use libfuzzer_sys::fuzz_target;

fn check_fields(username: Option<&str>, password: Option<&str>, email: Option<&str>) {
    if let Some(u) = username {
        if let Ok(name) = Username::parse(u) {
            assert!((3..=64).contains(&name.as_str().chars().count()));
            assert!(name.as_str().chars().all(|c| !c.is_whitespace() && !c.is_control()));
            // Stored names are parsed again when read back.
            assert_eq!(Username::parse(name.as_str()).as_ref(), Ok(&name), "parsing is idempotent");
            assert_eq!(Username::lookup_key(u), name.canonical());
        }
        if let Some(p) = password {
            if let Ok(pw) = PasswordPolicy::default().check(p, u, "password") {
                assert!((8..=1024).contains(&pw.expose().len()));
                // What a login verifies is what was hashed when the password was set.
                let login = Password::parse_existing(p, "password").expect("a valid new password is a valid login");
                assert_eq!(pw.expose(), login.expose(), "one normal form");
            }
        }
    }
    if let Some(e) = email {
        let _ = Email::parse(e);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<RegisterRequest>(data) {
        let (u, p, e) = r.fields();
        check_fields(u, p, e);
    }
    if let Ok(r) = serde_json::from_slice::<LoginRequest>(data) {
        let (u, p) = r.fields();
        check_fields(u, p, None);
    }
    if let Ok(r) = serde_urlencoded::from_bytes::<LoginRequest>(data) {
        let (u, p) = r.fields();
        check_fields(u, p, None);
    }
    if let Ok(r) = serde_json::from_slice::<PasswordRequest>(data) {
        let (c, n) = r.fields();
        check_fields(Some("fuzzer"), n, None);
        let _ = c;
    }
});
