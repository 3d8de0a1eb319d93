//! Request-body parsing: the JSON and form bodies of register, login and password change,
//! then the domain validation they feed. Nothing may panic, and whatever validates must
//! satisfy the documented invariants.
#![no_main]

use gatepass::domain::{Email, PasswordPolicy, Username};
use gatepass::http::api::accounts::{LoginRequest, PasswordRequest, RegisterRequest};
use libfuzzer_sys::fuzz_target;

fn check_fields(username: Option<&str>, password: Option<&str>, email: Option<&str>) {
    if let Some(u) = username {
        if let Ok(name) = Username::parse(u) {
            assert!((3..=64).contains(&name.as_str().len()));
            assert!(name.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        }
        if let Some(p) = password {
            if let Ok(pw) = PasswordPolicy::default().check(p, u, "password") {
                assert!((8..=1024).contains(&pw.expose().len()));
                assert_eq!(pw.expose(), p, "passwords are never altered");
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
