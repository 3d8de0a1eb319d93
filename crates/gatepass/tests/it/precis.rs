//! Issue #22 (GP-21, GP-22): usernames in the RFC 8265 UsernameCaseMapped profile and
//! passwords in OpaqueString, over HTTP on whichever backend `GATEPASS_TEST_BACKEND`
//! selects: every spelling of a name is one account, look-alike script mixes are
//! refused, and a hash made from a password as typed (before normalisation) still signs
//! in and is replaced by a hash of the normalised form.

use crate::common::{TestApp, expect_error, s};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use serde_json::{Value, json};
use sqlx::Connection;

/// `Élodie` composed (U+00C9), as most keyboards send it.
const ELODIE: &str = "\u{c9}lodie";
/// The same name decomposed: `E` + U+0301 COMBINING ACUTE ACCENT.
const ELODIE_DECOMPOSED: &str = "E\u{301}lodie";

async fn login_status(app: &TestApp, username: &str, password: &str) -> u16 {
    app.post("/api/login", json!({ "username": username, "password": password })).await.status().as_u16()
}

/// Argon2id at the test servers' cost, over `password`'s bytes exactly as given.
fn argon2_of_bytes(password: &str) -> String {
    let params = Params::new(1024, 1, 1, None).expect("params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}

fn verifies(password: &str, stored: &str) -> bool {
    let hash = PasswordHash::new(stored).expect("PHC string");
    Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
}

#[tokio::test]
async fn every_spelling_of_a_unicode_name_is_one_account() {
    let app = TestApp::spawn().await;
    let body = app.register(ELODIE, "une phrase de passe").await;
    assert_eq!(body["user"]["username"], ELODIE);
    let id = s(&body["user"], "id").to_owned();

    // Upper case, the decomposed form, and both: the same account.
    for spelling in [ELODIE, "\u{c9}LODIE", "\u{e9}lodie", ELODIE_DECOMPOSED, "e\u{301}LODIE"] {
        let login = app.login(spelling, "une phrase de passe").await;
        assert_eq!(login["user"]["id"], id.as_str(), "{spelling:?}");
        assert_eq!(login["user"]["username"], ELODIE, "the display form is the registered one");
    }
    for taken in ["\u{e9}lodie", "\u{c9}LODIE", ELODIE_DECOMPOSED] {
        let r = app.post("/api/register", json!({ "username": taken, "password": "another passphrase" })).await;
        expect_error(r, 409, "username_taken").await;
    }
    // The stored canonical form is the NFC, case-mapped one on every backend.
    let user = app.storage.user_by_username("\u{e9}lodie").await.expect("read").expect("found by canonical form");
    assert_eq!(user.id.as_str(), id);
    assert!(app.storage.user_by_username(ELODIE).await.expect("read").is_none(), "look-ups use the canonical form");

    // The admin API finds it by any spelling and by a prefix in any case.
    let r: Value = app.get_auth("/api/admin/users?prefix=%C3%89L", app.operator()).await.json().await.unwrap();
    assert_eq!(r["users"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["users"][0]["username"], ELODIE);
}

#[tokio::test]
async fn fullwidth_letters_are_the_ascii_name() {
    let app = TestApp::spawn().await;
    let body = app.register("\u{ff42}\u{ff4f}\u{ff42}", "a long passphrase here").await;
    assert_eq!(body["user"]["username"], "bob", "width-mapped");
    let id = s(&body["user"], "id").to_owned();
    for spelling in ["bob", "BOB", "\u{ff22}\u{ff2f}\u{ff22}"] {
        assert_eq!(app.login(spelling, "a long passphrase here").await["user"]["id"], id.as_str(), "{spelling}");
    }
    let r = app.post("/api/register", json!({ "username": "Bob", "password": "another passphrase" })).await;
    expect_error(r, 409, "username_taken").await;
}

#[tokio::test]
async fn confusable_and_invisible_names_are_refused() {
    let app = TestApp::spawn().await;
    for (name, says) in [
        // Latin with a Cyrillic "а" (U+0430): passes for "paypal".
        ("p\u{430}ypal", "mix scripts"),
        // Latin with a Greek omicron.
        ("g\u{3bf}ogle", "mix scripts"),
        ("bob smith", "may contain only"),
        ("bo\u{200d}b", "may contain only"),
        ("tab\tname", "may contain only"),
        ("x/y", "may contain only"),
        ("\u{e9}\u{e9}", "3 to 64 characters"),
    ] {
        let r = app.post("/api/register", json!({ "username": name, "password": "a fine passphrase" })).await;
        let body = expect_error(r, 400, "validation_failed").await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("username: ") && error.contains(says), "{name:?}: {body}");
    }
    let long = "\u{e9}".repeat(65);
    let r = app.post("/api/register", json!({ "username": long, "password": "a fine passphrase" })).await;
    expect_error(r, 400, "validation_failed").await;
    // 64 characters of two bytes each is within the limit, and a single-script
    // Cyrillic name is fine.
    app.register(&"\u{e9}".repeat(64), "a fine passphrase").await;
    app.register("\u{44f}\u{440}\u{43e}\u{441}\u{43b}\u{430}\u{432}", "a fine passphrase").await;
    assert_eq!(app.storage.count_users().await.expect("count"), 2, "nothing else was created");
}

#[tokio::test]
async fn passwords_are_normalised_before_hashing() {
    let app = TestApp::spawn().await;
    // Registered decomposed, signed in composed (and the other way round).
    app.register("cafe-lover", "Cafe\u{301} au lait, s'il vous pla\u{ee}t").await;
    assert_eq!(login_status(&app, "cafe-lover", "Caf\u{e9} au lait, s'il vous pla\u{ee}t").await, 200);
    assert_eq!(login_status(&app, "cafe-lover", "Cafe\u{301} au lait, s'il vous plai\u{302}t").await, 200);
    // A non-ASCII space is the ASCII one.
    assert_eq!(login_status(&app, "cafe-lover", "Caf\u{e9}\u{a0}au lait, s'il vous pla\u{ee}t").await, 200);
    // Exact otherwise: no case folding, no trimming.
    assert_eq!(login_status(&app, "cafe-lover", "CAF\u{c9} au lait, s'il vous pla\u{ee}t").await, 401);
    assert_eq!(login_status(&app, "cafe-lover", " Caf\u{e9} au lait, s'il vous pla\u{ee}t").await, 401);
    let user = app.storage.user_by_username("cafe-lover").await.expect("read").expect("exists");
    assert!(verifies("Caf\u{e9} au lait, s'il vous pla\u{ee}t", &user.password_hash), "the NFC form was hashed");

    // A control character is refused in a new password, with the field named.
    let r = app.post("/api/register", json!({ "username": "ctrl", "password": "tab\there please" })).await;
    let body = expect_error(r, 400, "validation_failed").await;
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("password: ")), "{body}");
}

#[tokio::test]
async fn a_hash_of_the_password_as_typed_signs_in_and_is_upgraded() {
    let app = TestApp::spawn().await;
    let typed = "cre\u{300}me bru\u{302}le\u{301}e au dessert";
    let nfc = "cr\u{e8}me br\u{fb}l\u{e9}e au dessert";
    let body = app.register("gourmet", "a temporary passphrase").await;
    let id = gatepass::domain::UserId::parse(s(&body["user"], "id")).expect("id");
    // What an earlier release stored: Argon2id over the bytes as typed.
    let old = argon2_of_bytes(typed);
    assert!(app.storage.set_password_hash(&id, &old, 0).await.expect("write"));

    // Exact verification: the NFC form alone does not match a hash of another spelling,
    // and a wrong password with a decomposed form is still wrong.
    assert_eq!(login_status(&app, "gourmet", nfc).await, 401);
    assert_eq!(login_status(&app, "gourmet", "cre\u{300}me bru\u{302}le\u{301}e au gouter").await, 401);
    assert_eq!(app.storage.user_by_username("gourmet").await.unwrap().unwrap().password_hash, old);

    // The password as typed signs in, and the hash is replaced by one of the NFC form.
    assert_eq!(login_status(&app, "gourmet", typed).await, 200);
    let upgraded = app.storage.user_by_username("gourmet").await.unwrap().unwrap().password_hash;
    assert_ne!(upgraded, old);
    assert!(verifies(nfc, &upgraded), "the new hash is of the NFC form");
    assert!(!verifies(typed, &upgraded));
    // Now every spelling signs in, and nothing is rehashed again.
    assert_eq!(login_status(&app, "gourmet", nfc).await, 200);
    assert_eq!(login_status(&app, "gourmet", typed).await, 200);
    assert_eq!(app.storage.user_by_username("gourmet").await.unwrap().unwrap().password_hash, upgraded);
}

#[tokio::test]
async fn unicode_names_import_and_sign_in() {
    let app = TestApp::spawn().await;
    let src = app.data_dir().join("unicode-seed.db");
    let url = format!("sqlite://{}?mode=rwc", src.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, password TEXT NOT NULL, email TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let bcrypt_of_typed = bcrypt::hash("mot de passe e\u{301}crit", 4).unwrap();
    for (u, p) in [
        (ELODIE, "mot de passe d'\u{c9}lodie"),
        (ELODIE_DECOMPOSED.to_uppercase().as_str(), "duplicate spelling"),
        ("Ren\u{e9}", bcrypt_of_typed.as_str()),
        ("p\u{430}ypal", "look-alike name"),
    ] {
        sqlx::query("INSERT INTO users (username, password) VALUES (?1, ?2)")
            .bind(u)
            .bind(p)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let report =
        gatepass::service::import::import_sqlite(app.state.service.core(), &src, &Default::default(), false, |_, _| {})
            .await
            .unwrap();
    assert_eq!(report.imported, 2, "{:?}", report.skipped);
    let reasons: Vec<String> = report.skipped.iter().map(|(u, r)| format!("{u}: {r}")).collect();
    assert!(reasons.iter().any(|r| r.contains("duplicate username")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("invalid username") && r.contains("mix scripts")), "{reasons:?}");

    assert_eq!(app.login("\u{e9}lodie", "mot de passe d'\u{c9}lodie").await["user"]["username"], ELODIE);
    // A legacy bcrypt hash of a decomposed password: accepted, then upgraded to Argon2id
    // of the NFC form.
    app.login("REN\u{c9}", "mot de passe e\u{301}crit").await;
    let rene = app.storage.user_by_username("ren\u{e9}").await.unwrap().unwrap();
    assert!(verifies("mot de passe \u{e9}crit", &rene.password_hash));
    assert_eq!(login_status(&app, "rene\u{301}", "mot de passe \u{e9}crit").await, 200);
}

/// Registrations of one name in different spellings, fired together: the unique index on
/// the canonical form lets exactly one through, the others get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_spellings_of_one_name_create_one_account() {
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    const ROUNDS: usize = 50;
    for round in 0..ROUNDS {
        let spellings = [
            format!("\u{c9}lodie{round}"),
            format!("\u{e9}LODIE{round}"),
            format!("E\u{301}lodie{round}"),
            format!("e\u{301}lodie{round}"),
        ];
        let attempts = spellings.map(|name| {
            let app = (app.client.clone(), app.url("/api/register"));
            tokio::spawn(async move {
                app.0.post(app.1).json(&json!({ "username": name, "password": "racing passphrase" })).send().await
            })
        });
        let mut created = 0;
        for attempt in attempts {
            let r = attempt.await.expect("task").expect("request");
            match r.status().as_u16() {
                201 => created += 1,
                _ => {
                    expect_error(r, 409, "username_taken").await;
                }
            }
        }
        assert_eq!(created, 1, "round {round}");
    }
    assert_eq!(app.storage.count_users().await.expect("count"), ROUNDS as i64);
}
