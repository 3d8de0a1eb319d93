//! One behavioural contract for every `Storage` backend: each scenario below is an async
//! function over `Arc<dyn Storage>`, run once against SQLite and once against PostgreSQL
//! (a fresh database per test; skipped with a notice when `GATEPASS_TEST_POSTGRES_URL` is
//! unset).

use crate::common::pg::{TestDb, admin_url, with_database};
use gatepass::domain::StoredKey;
use gatepass::domain::{Email, Revocation, Roles, User, UserId, Username};
use gatepass::storage::audit::{AuditEvent, AuditKey, ChainCheck, GENESIS_HASH};
use gatepass::storage::{
    AuthCode, CodeRedemption, DeviceApproval, DeviceCode, DeviceRedemption, EmailConfirmed, FeedItem, KeyRevocation,
    NewSession, OAuthClient, OneTimeToken, OutboxMail, PostgresStorage, Replaced, RotateRequest, Rotation,
    SessionFilter, SessionRecord, SqliteStorage, Storage, StorageError, TokenPurpose, UserPatch, UserSearch,
};
use std::sync::Arc;

const NOW: i64 = 1_900_000_000;

/// The audit chain key of these tests.
fn audit_key() -> AuditKey {
    AuditKey::from_bytes(&[42; 32])
}

/// Whether the whole audit trail checks out under [`audit_key`].
async fn chain_intact(s: &dyn Storage) -> bool {
    let key = audit_key();
    let anchor = s.audit_anchor().await.expect("anchor");
    let mut check = ChainCheck::new(&key, anchor.as_ref()).expect("anchor verifies");
    check.feed(&s.audit_chain(0, 10_000).await.expect("chain")).is_ok() && check.finish().is_ok()
}

fn user(name: &str) -> User {
    User {
        id: UserId::new(),
        username: Username::parse(name).expect("valid name"),
        email: None,
        email_verified: false,
        password_hash: "$argon2id$placeholder".into(),
        roles: Roles::default_user(),
        disabled: false,
        created_at: NOW,
    }
}

fn session(id: &str, user_id: &str, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user_id.into(),
        created_at,
        last_used_at: created_at,
        expires_at: created_at + 86_400,
        auth_time: created_at,
        access_expires_at: created_at + 900,
        user_agent: Some("ua".into()),
        ip: Some("127.0.0.1".into()),
        revoked_at: None,
        amr: vec!["pwd".into()],
        client_id: None,
        scope: None,
        resource: None,
    }
}

/// A new session of an account with the default roles, replacing nothing.
fn started<'a>(record: &'a SessionRecord, refresh_hash: &'a str, refresh_expires_at: i64) -> NewSession<'a> {
    static ROLES: std::sync::LazyLock<Roles> = std::sync::LazyLock::new(Roles::default_user);
    NewSession { record, roles: &ROLES, refresh_hash, refresh_expires_at, replaces: None }
}

fn rotate<'a>(presented: &'a str, successor: &'a str, now: i64, grace: i64) -> RotateRequest<'a> {
    RotateRequest {
        presented_hash: presented,
        successor_hash: successor,
        now,
        grace_secs: grace,
        refresh_ttl_secs: 3600,
        // Below every test session's own value, so these scenarios leave it as it is.
        access_expires_at: now,
        audit: None,
    }
}

/// A user with one session `sid` whose refresh token hash is `h0`.
async fn user_with_session(s: &dyn Storage, name: &str, sid: &str) -> User {
    let u = user(name);
    s.insert_user(&u).await.expect("insert");
    s.create_session(started(&session(sid, u.id.as_str(), NOW), "h0", NOW + 3600))
        .await
        .expect("session")
        .expect("stored");
    u
}

async fn users(s: Arc<dyn Storage>) {
    let alice = user("Alice");
    s.insert_user(&alice).await.expect("insert alice");
    for name in ["bob", "a_b", "a-c", "carol"] {
        s.insert_user(&user(name)).await.expect("insert");
    }
    let by_id = s.user_by_id(&alice.id).await.expect("query").expect("found");
    assert_eq!(by_id.username.as_str(), "Alice");
    assert_eq!(by_id.roles, Roles::default_user());
    assert!(!by_id.disabled);
    assert_eq!(by_id.created_at, NOW);
    assert_eq!(s.user_by_username("alice").await.expect("query").expect("found").id, alice.id);
    assert!(s.user_by_username("Alice").await.expect("query").is_none(), "lookup is by canonical name");
    assert!(s.user_by_id(&UserId::new()).await.expect("query").is_none());
    assert_eq!(s.count_users().await.expect("count"), 5);

    let names = |v: Vec<User>| v.into_iter().map(|u| u.username.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(s.list_users(None, 10, 0).await.expect("list")), ["a-c", "a_b", "Alice", "bob", "carol"]);
    assert_eq!(names(s.list_users(None, 2, 1).await.expect("list")), ["a_b", "Alice"]);
    assert_eq!(names(s.list_users(Some("A"), 10, 0).await.expect("list")), ["a-c", "a_b", "Alice"]);
    // LIKE wildcards in the prefix are literal (`_` would otherwise match `-`).
    assert_eq!(names(s.list_users(Some("a_"), 10, 0).await.expect("list")), ["a_b"]);

    assert!(s.set_password_hash(&alice.id, "new-hash", NOW + 1).await.expect("set"));
    assert_eq!(s.user_by_id(&alice.id).await.expect("q").expect("found").password_hash, "new-hash");
    assert!(!s.set_password_hash(&UserId::new(), "x", NOW).await.expect("set"));

    let admin = Roles::parse(&["admin", "user"]).expect("roles");
    let email = Email::parse("alice@example.com").expect("email");
    let patch = UserPatch { roles: Some(admin.clone()), disabled: Some(true), email: Some(Some(email.clone())) };
    assert!(s.update_user(&alice.id, &patch, NOW + 2).await.expect("update").is_some());
    let got = s.user_by_id(&alice.id).await.expect("q").expect("found");
    assert_eq!((got.roles.clone(), got.disabled, got.email.clone()), (admin.clone(), true, Some(email.clone())));
    // An empty patch changes nothing; clearing the e-mail leaves the rest.
    assert!(s.update_user(&alice.id, &UserPatch::default(), NOW + 3).await.expect("update").is_some());
    assert_eq!(s.user_by_id(&alice.id).await.expect("q").expect("found").email, Some(email));
    let clear = UserPatch { email: Some(None), ..UserPatch::default() };
    assert!(s.update_user(&alice.id, &clear, NOW + 4).await.expect("update").is_some());
    let got = s.user_by_id(&alice.id).await.expect("q").expect("found");
    assert_eq!((got.roles, got.disabled, got.email), (admin, true, None));
    assert!(s.update_user(&UserId::new(), &clear, NOW).await.expect("update").is_none());
}

async fn username_conflicts_ignore_case(s: Arc<dyn Storage>) {
    s.insert_user(&user("Dave")).await.expect("first");
    for name in ["dave", "DAVE", "Dave"] {
        assert!(matches!(s.insert_user(&user(name)).await, Err(StorageError::Conflict)), "{name}");
    }
    assert_eq!(s.count_users().await.expect("count"), 1);
}

async fn concurrent_inserts_of_one_name(s: Arc<dyn Storage>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let name = if i % 2 == 0 { "erin" } else { "ERIN" };
            tokio::spawn(async move { s.insert_user(&user(name)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(StorageError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.count_users().await.expect("count"), 1);
}

async fn sessions(s: Arc<dyn Storage>) {
    let u = user("frank");
    s.insert_user(&u).await.expect("insert");
    let uid = u.id.as_str();
    s.create_session(started(&session("s1", uid, NOW), "h1", NOW + 3600)).await.expect("s1").expect("stored");
    s.create_session(started(&session("s2", uid, NOW + 5), "h2", NOW + 3600)).await.expect("s2").expect("stored");
    let mut expired = session("s3", uid, NOW - 90_000);
    expired.expires_at = NOW - 1;
    s.create_session(started(&expired, "h3", NOW - 1)).await.expect("s3").expect("stored");
    assert_eq!(s.session("s1").await.expect("q"), Some(session("s1", uid, NOW)));
    assert_eq!(s.session("nope").await.expect("q"), None);
    let live: Vec<_> = s.live_sessions(uid, NOW + 10).await.expect("live").into_iter().map(|r| r.id).collect();
    assert_eq!(live, ["s2", "s1"], "newest first, expired left out");
    assert_eq!(s.count_live_sessions(NOW + 10).await.expect("count"), 2);
    assert!(s.live_sessions("someone-else", NOW).await.expect("live").is_empty());
    // A duplicate refresh hash is a conflict, and nothing of that session is kept.
    assert!(matches!(
        s.create_session(started(&session("s4", uid, NOW), "h1", NOW + 3600)).await,
        Err(StorageError::Conflict)
    ));
    assert_eq!(s.session("s4").await.expect("q"), None);

    // access_expires_at only ever grows.
    assert!(s.note_access_issued("s1", NOW + 2000).await.expect("note"));
    assert!(s.note_access_issued("s1", NOW + 1000).await.expect("note"));
    assert_eq!(s.session("s1").await.expect("q").expect("s1").access_expires_at, NOW + 2000);

    // No token is noted for a revoked (or unknown) session, and the revocation's entry
    // outlives every token noted before it.
    let revoked = s.revoke_sessions(uid, SessionFilter::One("s1"), NOW + 10).await.expect("revoke");
    assert!(revoked[0].until >= NOW + 2000);
    assert!(!s.note_access_issued("s1", NOW + 5000).await.expect("note"));
    assert_eq!(s.session("s1").await.expect("q").expect("s1").access_expires_at, NOW + 2000);
    assert!(!s.note_access_issued("nope", NOW + 5000).await.expect("note"));

    // A disabled or missing owner gets no new session.
    let patch = UserPatch { disabled: Some(true), ..UserPatch::default() };
    assert!(s.update_user(&u.id, &patch, NOW).await.expect("disable").is_some());
    assert!(s.create_session(started(&session("s5", uid, NOW), "h5", NOW + 3600)).await.expect("refused").is_none());
    assert_eq!(s.session("s5").await.expect("q"), None);
    let ghost = UserId::new();
    assert!(
        s.create_session(started(&session("s6", ghost.as_str(), NOW), "h6", NOW + 3600))
            .await
            .expect("refused")
            .is_none()
    );
}

/// A session is stored only while its owner still has the roles its first token carries,
/// and a replacing session ends the old one in the same transaction (or, when the old one
/// must be live and is not, is refused).
async fn session_roles_and_replacement(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "renewer", "old").await;
    let uid = u.id.as_str();
    let admin = Roles::parse(&["admin", "user"]).expect("roles");
    let stale_record = session("stale", uid, NOW);
    let stale = NewSession { roles: &admin, ..started(&stale_record, "hs", NOW + 3600) };
    assert!(s.create_session(stale).await.expect("refused").is_none(), "roles changed: refused");
    assert_eq!(s.session("stale").await.expect("q"), None);

    let old = Replaced { user_id: uid, sid: "old", must_be_live: true, now: NOW + 1 };
    let new_record = session("new", uid, NOW + 1);
    let renewed = NewSession { replaces: Some(old), ..started(&new_record, "hn", NOW + 3600) };
    let ended = s.create_session(renewed).await.expect("create").expect("stored");
    assert_eq!(ended.iter().map(|r| r.sid.as_str()).collect::<Vec<_>>(), ["old"]);
    assert!(s.session("old").await.expect("q").expect("old").revoked_at.is_some());
    assert!(s.session("new").await.expect("q").expect("new").revoked_at.is_none());

    // "old" has ended: a step-up of it is refused and stores nothing; a login over it
    // (the old session need not be live) just starts the new one.
    let again_record = session("again", uid, NOW + 2);
    let again = NewSession { replaces: Some(old), ..started(&again_record, "ha", NOW + 3600) };
    assert!(s.create_session(again).await.expect("refused").is_none());
    assert_eq!(s.session("again").await.expect("q"), None);
    let loose = Replaced { must_be_live: false, ..old };
    let login_record = session("login", uid, NOW + 2);
    let login = NewSession { replaces: Some(loose), ..started(&login_record, "hl", NOW + 3600) };
    assert!(s.create_session(login).await.expect("create").expect("stored").is_empty());
}

async fn rotation_outcomes(s: Arc<dyn Storage>) {
    user_with_session(s.as_ref(), "grace", "s1").await;
    // Unknown token.
    assert_eq!(s.rotate_refresh(rotate("nope", "x", NOW, 10)).await.expect("rotate"), Rotation::Invalid);
    // Current token → rotated; successor recorded and current.
    let Rotation::Rotated(rec) = s.rotate_refresh(rotate("h0", "h1", NOW + 1, 10)).await.expect("rotate") else {
        panic!("expected Rotated")
    };
    assert_eq!((rec.id.as_str(), rec.last_used_at), ("s1", NOW + 1));
    assert_eq!(s.session("s1").await.expect("q").expect("s1").last_used_at, NOW + 1);
    // Old token again inside the grace window → the same successor is handed out again.
    assert!(matches!(s.rotate_refresh(rotate("h0", "h1", NOW + 5, 10)).await.expect("r"), Rotation::Replayed(_)));
    // Successor rotates normally.
    assert!(matches!(s.rotate_refresh(rotate("h1", "h2", NOW + 6, 10)).await.expect("r"), Rotation::Rotated(_)));
    // h0's successor h1 is no longer current: reuse, even inside the window.
    let Rotation::Reused(r) = s.rotate_refresh(rotate("h0", "h1", NOW + 7, 10)).await.expect("r") else {
        panic!("expected Reused")
    };
    assert_eq!((r.sid.as_str(), r.reason), ("s1", Revocation::Revoked));
    assert_eq!(r.until, NOW + 900 + 60);
    assert_eq!(s.session("s1").await.expect("q").expect("s1").revoked_at, Some(NOW + 7));
    assert!(s.live_revocations(NOW + 7).await.expect("rev").contains(&r));
    // Everything of a revoked session is dead.
    assert_eq!(s.rotate_refresh(rotate("h2", "h3", NOW + 8, 10)).await.expect("r"), Rotation::Invalid);

    // Outside the grace window, a rotated token is reuse.
    let u = user("late");
    s.insert_user(&u).await.expect("insert");
    s.create_session(started(&session("s3", u.id.as_str(), NOW), "k0", NOW + 3600))
        .await
        .expect("session")
        .expect("stored");
    assert!(matches!(s.rotate_refresh(rotate("k0", "k1", NOW + 1, 10)).await.expect("r"), Rotation::Rotated(_)));
    assert!(matches!(s.rotate_refresh(rotate("k0", "k1", NOW + 12, 10)).await.expect("r"), Rotation::Reused(_)));

    // Expired token / expired session → invalid.
    let u = user("expired");
    s.insert_user(&u).await.expect("insert");
    s.create_session(started(&session("s4", u.id.as_str(), NOW), "e0", NOW + 10))
        .await
        .expect("session")
        .expect("stored");
    assert_eq!(s.rotate_refresh(rotate("e0", "e1", NOW + 10, 10)).await.expect("r"), Rotation::Invalid);
    let mut short = session("s5", u.id.as_str(), NOW);
    short.expires_at = NOW + 5;
    s.create_session(started(&short, "f0", NOW + 3600)).await.expect("session").expect("stored");
    assert_eq!(s.rotate_refresh(rotate("f0", "f1", NOW + 5, 10)).await.expect("r"), Rotation::Invalid);
    // A successor never outlives its session.
    let mut capped = session("s6", u.id.as_str(), NOW);
    capped.expires_at = NOW + 100;
    s.create_session(started(&capped, "g0", NOW + 100)).await.expect("session").expect("stored");
    assert!(matches!(s.rotate_refresh(rotate("g0", "g1", NOW, 10)).await.expect("r"), Rotation::Rotated(_)));
    assert_eq!(s.rotate_refresh(rotate("g1", "g2", NOW + 100, 10)).await.expect("r"), Rotation::Invalid);
}

/// Many simultaneous presentations of one token: exactly one rotation; with a grace window
/// the rest replay the same successor, without one the session is revoked as reuse.
async fn concurrent_rotation(s: Arc<dyn Storage>) {
    for (name, sid, grace) in [("racer1", "s1", 30), ("racer2", "s2", -1)] {
        let u = user(name);
        s.insert_user(&u).await.expect("insert");
        let first = format!("{sid}-t0");
        let next = format!("{sid}-t1");
        s.create_session(started(&session(sid, u.id.as_str(), NOW), &first, NOW + 3600))
            .await
            .expect("session")
            .expect("stored");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, first, next) = (s.clone(), first.clone(), next.clone());
                tokio::spawn(async move { s.rotate_refresh(rotate(&first, &next, NOW, grace)).await })
            })
            .collect();
        let (mut rotated, mut replayed, mut reused, mut invalid) = (0, 0, 0, 0);
        for t in tasks {
            match t.await.expect("task").expect("rotate") {
                Rotation::Rotated(_) => rotated += 1,
                Rotation::Replayed(_) => replayed += 1,
                Rotation::Reused(_) => reused += 1,
                Rotation::Invalid => invalid += 1,
            }
        }
        assert_eq!(rotated, 1, "{name}: exactly one rotation");
        if grace > 0 {
            assert_eq!(replayed, 7, "{name}");
            // The single successor chain continues.
            let third = format!("{sid}-t2");
            assert!(matches!(
                s.rotate_refresh(rotate(&next, &third, NOW + 1, grace)).await.expect("r"),
                Rotation::Rotated(_)
            ));
        } else {
            assert_eq!((replayed, reused, reused + invalid), (0, 1, 7), "{name}: one reuse revokes the session");
            assert!(s.session(sid).await.expect("q").expect("session").revoked_at.is_some());
            let third = format!("{sid}-t2");
            assert_eq!(s.rotate_refresh(rotate(&next, &third, NOW + 1, grace)).await.expect("r"), Rotation::Invalid);
        }
    }
}

/// A rotation records the access token's expiry and, for an enabled owner, its audit
/// entry in the same transaction; a refused rotation records neither.
async fn rotation_bookkeeping(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "keeper", "s1").await;
    let uid = u.id.as_str();
    let event = AuditEvent::new("refresh", "success").client(Some("10.0.0.1"), Some("ua"));
    let with = |presented, successor, now, exp| RotateRequest {
        access_expires_at: exp,
        audit: Some(&event),
        ..rotate(presented, successor, now, 10)
    };
    assert!(matches!(s.rotate_refresh(with("h0", "h1", NOW + 1, NOW + 5000)).await.expect("r"), Rotation::Rotated(_)));
    assert_eq!(s.session("s1").await.expect("q").expect("s1").access_expires_at, NOW + 5000);
    // A replay records its token too; the expiry never goes back.
    assert!(matches!(s.rotate_refresh(with("h0", "h1", NOW + 2, NOW + 6000)).await.expect("r"), Rotation::Replayed(_)));
    assert!(matches!(s.rotate_refresh(with("h1", "h2", NOW + 3, NOW + 100)).await.expect("r"), Rotation::Rotated(_)));
    assert_eq!(s.session("s1").await.expect("q").expect("s1").access_expires_at, NOW + 6000);
    assert_eq!(s.rotate_refresh(with("nope", "x", NOW + 3, NOW + 9000)).await.expect("r"), Rotation::Invalid);

    let entries = s.audit_chain(0, 100).await.expect("audit");
    assert_eq!(entries.len(), 3, "one entry per successful rotation");
    for e in &entries {
        assert_eq!((e.event.event.as_str(), e.event.actor.as_deref()), ("refresh", Some(uid)));
        assert_eq!((e.event.subject.as_deref(), e.event.ip.as_deref()), (Some(uid), Some("10.0.0.1")));
    }
    assert!(chain_intact(s.as_ref()).await);

    // A disabled owner's session still rotates (the service refuses the token), unaudited.
    let patch = UserPatch { disabled: Some(true), ..UserPatch::default() };
    assert!(s.update_user(&u.id, &patch, NOW + 4).await.expect("disable").is_some());
    assert!(matches!(s.rotate_refresh(with("h2", "h3", NOW + 4, NOW + 7000)).await.expect("r"), Rotation::Rotated(_)));
    assert_eq!(s.audit_chain(0, 100).await.expect("audit").len(), 3);
}

/// Many sessions rotating at once (committed together in groups) end exactly as
/// if rotated one by one: one successor per token, replays for the duplicates, reuse
/// detected, and a rotation that fails does not fail the others.
async fn concurrent_rotations_of_many_sessions(s: Arc<dyn Storage>) {
    let u = user("crowd");
    s.insert_user(&u).await.expect("insert");
    let uid = u.id.as_str();
    for i in 0..24 {
        s.create_session(started(&session(&format!("c{i}"), uid, NOW), &format!("c{i}-t0"), NOW + 3600))
            .await
            .expect("s")
            .expect("stored");
    }
    // c0 already rotated long ago: presenting its first token again is reuse.
    assert!(matches!(
        s.rotate_refresh(rotate("c0-t0", "c0-t1", NOW - 100, 10)).await.expect("r"),
        Rotation::Rotated(_)
    ));
    // c1's successor already exists as another session's token: its rotation fails.
    s.create_session(started(&session("clash", uid, NOW), "c1-t1", NOW + 3600)).await.expect("s").expect("stored");

    let event = AuditEvent::new("refresh", "success");
    let tasks: Vec<_> = (0..24)
        .flat_map(|i| (0..3).map(move |copy| (i, copy)))
        .map(|(i, _)| {
            let (s, event) = (s.clone(), event.clone());
            tokio::spawn(async move {
                let (first, next) = (format!("c{i}-t0"), format!("c{i}-t1"));
                let req = RotateRequest { audit: Some(&event), ..rotate(&first, &next, NOW, 30) };
                (i, s.rotate_refresh(req).await)
            })
        })
        .collect();
    let mut per_session = vec![(0, 0, 0, 0, 0); 24];
    for t in tasks {
        let (i, outcome) = t.await.expect("task");
        let slot = &mut per_session[i];
        match outcome {
            Ok(Rotation::Rotated(_)) => slot.0 += 1,
            Ok(Rotation::Replayed(_)) => slot.1 += 1,
            Ok(Rotation::Reused(_)) => slot.2 += 1,
            Ok(Rotation::Invalid) => slot.3 += 1,
            Err(StorageError::Conflict) => slot.4 += 1,
            Err(e) => panic!("session c{i}: {e}"),
        }
    }
    // c0: one presentation finds the token rotated 100 s ago and revokes the session; the
    // others then find it revoked (or also reused, if they got there first).
    let c0 = per_session[0];
    assert_eq!((c0.0, c0.1, c0.2 + c0.3), (0, 0, 3), "c0 {c0:?}");
    assert!(c0.2 >= 1, "c0 reuse detected");
    assert!(s.session("c0").await.expect("q").expect("c0").revoked_at.is_some());
    assert_eq!(per_session[1], (0, 0, 0, 0, 3), "c1: every attempt fails on the duplicate successor");
    for (i, outcome) in per_session.iter().enumerate().skip(2) {
        assert_eq!(*outcome, (1, 2, 0, 0, 0), "c{i}: one rotation, two replays");
    }
    // Every other session's chain goes on from its single successor.
    for i in 2..24 {
        let (next, third) = (format!("c{i}-t1"), format!("c{i}-t2"));
        assert!(matches!(s.rotate_refresh(rotate(&next, &third, NOW + 1, 30)).await.expect("r"), Rotation::Rotated(_)));
    }
    let entries = s.audit_chain(0, 1000).await.expect("audit");
    assert_eq!(entries.len(), 22 * 3, "an entry for each rotation and replay, none for failures");
    assert!(chain_intact(s.as_ref()).await, "the chain stays linear");
}

async fn revocations(s: Arc<dyn Storage>) {
    let u = user("grace");
    s.insert_user(&u).await.expect("insert");
    let uid = u.id.as_str();
    for (i, sid) in ["a", "b", "c", "d"].iter().enumerate() {
        s.create_session(started(&session(sid, uid, NOW + i as i64), &format!("h{sid}"), NOW + 3600))
            .await
            .expect("session")
            .expect("stored");
    }
    let before = s.revocations_version().await.expect("version");
    let one = s.revoke_sessions(uid, SessionFilter::One("a"), NOW + 10).await.expect("revoke");
    assert_eq!(one.len(), 1);
    // Other processes notice a new revocation by this version alone.
    let after_one = s.revocations_version().await.expect("version");
    assert_ne!(after_one, before, "a revocation must change the version");
    assert_eq!((one[0].sid.as_str(), one[0].until, one[0].reason), ("a", NOW + 960, Revocation::Revoked));
    assert!(s.revoke_sessions(uid, SessionFilter::One("a"), NOW + 11).await.expect("again").is_empty());
    assert_eq!(s.revocations_version().await.expect("version"), after_one, "nothing new was revoked");
    // Another user's session is out of reach.
    assert!(s.revoke_sessions("other", SessionFilter::One("b"), NOW).await.expect("other").is_empty());
    let mut others: Vec<_> = s
        .revoke_sessions(uid, SessionFilter::AllExcept("b"), NOW + 12)
        .await
        .expect("r")
        .into_iter()
        .map(|r| r.sid)
        .collect();
    others.sort();
    assert_eq!(others, ["c", "d"]);
    let all: Vec<_> =
        s.revoke_sessions(uid, SessionFilter::All, NOW + 13).await.expect("r").into_iter().map(|r| r.sid).collect();
    assert_eq!(all, ["b"]);
    assert!(s.live_sessions(uid, NOW + 14).await.expect("live").is_empty());
    let mut live: Vec<_> = s.live_revocations(NOW + 14).await.expect("live").into_iter().map(|r| r.sid).collect();
    live.sort();
    assert_eq!(live, ["a", "b", "c", "d"]);
    let after_all = s.revocations_version().await.expect("version");
    assert_ne!(after_all, after_one);
    // Revocations end once every access token has expired (+ margin).
    assert!(s.live_revocations(NOW + 3 + 960).await.expect("live").is_empty());
}

async fn revocation_log(s: Arc<dyn Storage>) {
    assert_eq!(s.revocation_log_head().await.expect("head"), 0);
    let u = user("ivy");
    s.insert_user(&u).await.expect("insert");
    let uid = u.id.as_str();
    for sid in ["x", "y"] {
        s.create_session(started(&session(sid, uid, NOW), &format!("h{sid}"), NOW + 3600)).await.expect("s");
    }
    s.revoke_sessions(uid, SessionFilter::One("x"), NOW).await.expect("revoke");
    s.record_key_revocation("k1", NOW + 100).await.expect("key");
    s.revoke_sessions(uid, SessionFilter::One("y"), NOW).await.expect("revoke");
    let log = s.revocation_log(0, NOW, 100).await.expect("log");
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(matches!(&log[0].item, FeedItem::Session(r) if r.sid == "x"));
    assert_eq!(log[1].item, FeedItem::Key { kid: "k1".into(), until: NOW + 100 });
    assert!(matches!(&log[2].item, FeedItem::Session(r) if r.sid == "y"));
    assert_eq!(s.revocation_log_head().await.expect("head"), seqs[2]);
    // After a position: only what follows; a page limit; expired entries left out.
    assert_eq!(s.revocation_log(seqs[0], NOW, 100).await.expect("log").len(), 2);
    assert_eq!(s.revocation_log(0, NOW, 1).await.expect("log").len(), 1);
    assert_eq!(s.revocation_log(0, NOW + 100, 100).await.expect("log").len(), 2, "the key's entry expired");
    // A key revocation is no session revocation.
    let live: Vec<_> = s.live_revocations(NOW).await.expect("live").into_iter().map(|r| r.sid).collect();
    assert_eq!(live.len(), 2);
    assert!(!live.iter().any(|sid| sid.contains("k1")));
    // Revoking again moves the entry to the end (its news is new).
    s.record_key_revocation("k1", NOW + 200).await.expect("key");
    let log = s.revocation_log(seqs[2], NOW, 100).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].item, FeedItem::Key { kid: "k1".into(), until: NOW + 200 });
}

/// Positions follow commit order: a reader that follows the log by position while
/// revocations commit concurrently never skips one (a position drawn before another but
/// committed after it would be skipped).
async fn concurrent_revocations_are_read_in_commit_order(s: Arc<dyn Storage>) {
    const N: usize = 300;
    let writers: Vec<_> = (0..N)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.record_key_revocation(&format!("k{i}"), NOW + 100).await.expect("key") })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    let mut writers = writers.into_iter().peekable();
    loop {
        for e in s.revocation_log(cursor, NOW, 1000).await.expect("log") {
            assert!(e.seq > cursor);
            cursor = e.seq;
            if let FeedItem::Key { kid, .. } = e.item {
                assert!(seen.insert(kid), "each entry once");
            }
        }
        if writers.peek().is_none() {
            break;
        }
        // Drain finished writers without waiting for all of them.
        while writers.peek().is_some_and(|w| w.is_finished()) {
            writers.next().expect("peeked").await.expect("writer");
        }
        tokio::task::yield_now().await;
    }
    // Everything committed: one more read picks up the rest.
    for e in s.revocation_log(cursor, NOW, 1000).await.expect("log") {
        if let FeedItem::Key { kid, .. } = e.item {
            assert!(seen.insert(kid), "each entry once");
        }
    }
    assert_eq!(seen.len(), N, "a reader following positions missed entries");
}

async fn delete_user(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "henry", "live").await;
    let uid = u.id.as_str();
    // A session ended earlier whose access token is still unexpired must be refused as
    // "deleted" too.
    s.create_session(started(&session("ended", uid, NOW), "h-ended", NOW + 3600))
        .await
        .expect("session")
        .expect("stored");
    s.revoke_sessions(uid, SessionFilter::One("ended"), NOW + 1).await.expect("revoke");
    let revoked = s.delete_user(&u.id, NOW + 2).await.expect("delete").expect("existed");
    let mut sids: Vec<_> = revoked.iter().map(|r| r.sid.as_str()).collect();
    sids.sort();
    assert_eq!(sids, ["ended", "live"]);
    assert!(revoked.iter().all(|r| r.reason == Revocation::UserDeleted && r.until == NOW + 960));
    assert!(s.user_by_id(&u.id).await.expect("q").is_none());
    assert!(s.session("live").await.expect("q").is_none(), "sessions go with the user");
    assert_eq!(s.rotate_refresh(rotate("h0", "h1", NOW + 3, 10)).await.expect("r"), Rotation::Invalid);
    let live = s.live_revocations(NOW + 3).await.expect("live");
    assert_eq!(live.iter().filter(|r| r.reason == Revocation::UserDeleted).count(), 2);
    assert!(s.delete_user(&u.id, NOW + 4).await.expect("delete").is_none());
    // The name is free again.
    s.insert_user(&user("Henry")).await.expect("re-register");
}

async fn purge(s: Arc<dyn Storage>) {
    let u = user("ida");
    s.insert_user(&u).await.expect("insert");
    let uid = u.id.as_str();
    s.create_session(started(&session("keep", uid, NOW), "k", NOW + 3600)).await.expect("s").expect("stored");
    s.create_session(started(&session("gone", uid, NOW), "g", NOW + 3600)).await.expect("s").expect("stored");
    s.revoke_sessions(uid, SessionFilter::One("gone"), NOW).await.expect("revoke");
    // Nothing is due yet.
    assert_eq!(s.purge_expired(NOW + 10).await.expect("purge"), 0);
    assert!(s.session("gone").await.expect("q").is_some());
    // After the revoked session's tokens expired: its revocation and row go, the live
    // session and its refresh token stay.
    let later = NOW + 900 + 60;
    assert!(s.purge_expired(later).await.expect("purge") >= 2);
    assert!(s.session("gone").await.expect("q").is_none());
    assert!(s.live_revocations(NOW).await.expect("live").is_empty());
    assert!(s.session("keep").await.expect("q").is_some());
    assert!(matches!(s.rotate_refresh(rotate("k", "k1", later, 10)).await.expect("r"), Rotation::Rotated(_)));
}

async fn settings(s: Arc<dyn Storage>) {
    assert!(s.settings().await.expect("settings").is_empty());
    let put = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    s.put_settings(&put(&[("registration_open", "false"), ("access_token_ttl", "300")])).await.expect("put");
    s.put_settings(&put(&[("access_token_ttl", "600")])).await.expect("put");
    assert_eq!(
        s.settings().await.expect("settings"),
        put(&[("access_token_ttl", "600"), ("registration_open", "false")])
    );
}

/// A new database's anchor is unsealed until a process seals it with its key; appends need
/// that key; sealing again (with any key) changes nothing.
async fn audit_anchor(s: Arc<dyn Storage>) {
    let fresh = open_unkeyed(s.backend()).await;
    let unsealed = fresh.storage.audit_anchor().await.expect("anchor").expect("the migration creates the row");
    assert_eq!(unsealed.seal, None);
    let event = AuditEvent::new("login", "success");
    assert!(fresh.storage.append_audit(&event, NOW).await.is_err(), "no append without the key");
    let key = audit_key();
    let sealed = fresh.storage.seal_audit_anchor(&key, NOW).await.expect("seal").expect("row");
    assert_eq!((sealed.keyed_from, sealed.prev_hash.as_deref()), (Some(1), Some(GENESIS_HASH)));
    assert!(key.check_anchor(Some(&sealed)).is_ok());
    let other = AuditKey::from_bytes(&[1; 32]);
    assert_eq!(fresh.storage.seal_audit_anchor(&other, NOW + 5).await.expect("seal"), Some(sealed.clone()));
    assert!(other.check_anchor(Some(&sealed)).is_err());
    fresh.storage.enable_audit_appends(key.clone());
    let e = fresh.storage.append_audit(&event, NOW).await.expect("append");
    assert_eq!((e.id, e.prev_hash.as_str()), (1, GENESIS_HASH));
    assert_eq!(e.hash, key.link(1, NOW, &event, GENESIS_HASH));
    assert!(chain_intact(fresh.storage.as_ref()).await);
    // The already-keyed storage of this scenario links the same way.
    assert!(s.append_audit(&event, NOW).await.is_ok());
    assert!(chain_intact(s.as_ref()).await);
}

fn stored_key(kid: &str, activates_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        public_jwk: "{}".into(),
        private_key: "sealed".into(),
        created_at: activates_at,
        activates_at,
        revoked_at: None,
    }
}

/// Revoking a key marks it and stores its replacement together, once; an unknown or
/// already revoked key changes nothing; every change moves the keys version.
async fn key_revocation(s: Arc<dyn Storage>) {
    let v0 = s.signing_keys_version().await.expect("version");
    s.insert_signing_key(&stored_key("k1", NOW)).await.expect("insert");
    let v1 = s.signing_keys_version().await.expect("version");
    assert_ne!(v1, v0, "an insert moves the version");
    assert_eq!(
        s.revoke_signing_key("nope", NOW, Some(&stored_key("r0", NOW)), NOW + 500).await.expect("r"),
        KeyRevocation::Unknown
    );
    assert_eq!(s.signing_keys().await.expect("keys").len(), 1, "nothing stored for an unknown key");

    let head = s.revocation_log_head().await.expect("head");
    let outcome =
        s.revoke_signing_key("k1", NOW + 10, Some(&stored_key("r1", NOW + 10)), NOW + 500).await.expect("revoke");
    assert_eq!(outcome, KeyRevocation::Revoked);
    // Logged for the revocation feed in the same transaction, once.
    let log: Vec<_> = s.revocation_log(head, NOW, 100).await.expect("log").into_iter().map(|e| e.item).collect();
    assert_eq!(log, [FeedItem::Key { kid: "k1".into(), until: NOW + 500 }]);
    assert_ne!(s.signing_keys_version().await.expect("version"), v1, "a revocation moves the version");
    let again =
        s.revoke_signing_key("k1", NOW + 20, Some(&stored_key("r2", NOW + 20)), NOW + 600).await.expect("again");
    assert_eq!(again, KeyRevocation::AlreadyRevoked { at: NOW + 10 });
    let mut keys = s.signing_keys().await.expect("keys");
    keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    let summary: Vec<_> = keys.iter().map(|k| (k.kid.as_str(), k.revoked_at)).collect();
    assert_eq!(summary, [("k1", Some(NOW + 10)), ("r1", None)], "one replacement, the first revocation's time");
    let log = s.revocation_log(head, NOW, 100).await.expect("log");
    assert_eq!(log.len(), 1, "a second revocation announces nothing: {log:?}");

    // Revocations of one key racing each other: exactly one wins and stores its replacement.
    for round in 0..20 {
        let kid = format!("race{round}");
        s.insert_signing_key(&stored_key(&kid, NOW)).await.expect("insert");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, kid) = (s.clone(), kid.clone());
                tokio::spawn(async move {
                    let replacement = stored_key(&format!("{kid}-r{i}"), NOW + 1);
                    s.revoke_signing_key(&kid, NOW + 1, Some(&replacement), NOW + 500).await.expect("revoke")
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                KeyRevocation::Revoked => won += 1,
                KeyRevocation::AlreadyRevoked { at } => assert_eq!(at, NOW + 1),
                KeyRevocation::Unknown => panic!("{kid} vanished"),
            }
        }
        assert_eq!(won, 1, "{kid}: one revocation wins");
        let replacements =
            s.signing_keys().await.expect("keys").iter().filter(|k| k.kid.starts_with(&format!("{kid}-r"))).count();
        assert_eq!(replacements, 1, "{kid}: one replacement");
    }
}

async fn failure_records(s: Arc<dyn Storage>) {
    assert_eq!(s.failure_record("acct:x").await.expect("read"), None);
    assert!(s.swap_failure_record("acct:x", None, "1/5/5", NOW + 60).await.expect("insert"));
    assert!(!s.swap_failure_record("acct:x", None, "9/9/9", NOW + 60).await.expect("insert"), "a row exists");
    assert!(!s.swap_failure_record("acct:x", Some("0/0/"), "9/9/9", NOW + 60).await.expect("swap"), "stale");
    assert!(!s.swap_failure_record("acct:y", Some("1/5/5"), "9/9/9", NOW + 60).await.expect("swap"), "no row");
    assert_eq!(s.failure_record("acct:x").await.expect("read").as_deref(), Some("1/5/5"));
    assert!(s.swap_failure_record("acct:x", Some("1/5/5"), "2/6/5,6", NOW + 60).await.expect("swap"));
    assert_eq!(s.failure_record("acct:x").await.expect("read").as_deref(), Some("2/6/5,6"));
    assert_eq!(s.failure_record("acct:y").await.expect("read"), None);
    // Expired rows go with the sweep; live ones stay.
    assert!(s.swap_failure_record("dev:u:d", None, "1/1/1", NOW - 1).await.expect("insert"));
    assert!(s.purge_expired(NOW).await.expect("purge") >= 1);
    assert_eq!(s.failure_record("dev:u:d").await.expect("read"), None);
    assert_eq!(s.failure_record("acct:x").await.expect("read").as_deref(), Some("2/6/5,6"));
}

/// Compare-and-swap increments from many tasks at once: none is lost.
async fn concurrent_failure_record_swaps(s: Arc<dyn Storage>) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let s = s.clone();
        set.spawn(async move {
            for _ in 0..EACH {
                loop {
                    let current = s.failure_record("acct:counter").await.expect("read");
                    let n: usize = current.as_deref().map_or(0, |c| c.parse().expect("a number"));
                    let next = (n + 1).to_string();
                    if s.swap_failure_record("acct:counter", current.as_deref(), &next, NOW + 60).await.expect("swap") {
                        break;
                    }
                }
            }
        });
    }
    set.join_all().await;
    let total = s.failure_record("acct:counter").await.expect("read");
    assert_eq!(total, Some((TASKS * EACH).to_string()));
}

async fn ping_and_backend(s: Arc<dyn Storage>) {
    s.ping().await.expect("ping");
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}

/// A storage whose audit anchor is sealed with [`audit_key`], appends enabled, as a server
/// opens it.
async fn keyed(s: Arc<dyn Storage>) -> Arc<dyn Storage> {
    let key = audit_key();
    let anchor = s.seal_audit_anchor(&key, NOW).await.expect("seal");
    key.check_anchor(anchor.as_ref()).expect("sealed under the key");
    s.enable_audit_appends(key);
    s
}

async fn open_sqlite() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (keyed(Arc::new(SqliteStorage::connect(&url).await.expect("sqlite"))).await, dir)
}

async fn open_postgres() -> Option<(Arc<dyn Storage>, TestDb)> {
    let admin = admin_url()?;
    let db = TestDb::create(&admin).await;
    let storage = PostgresStorage::connect(&db.url).await.expect("connect to the test database");
    Some((keyed(Arc::new(storage)).await, db))
}

/// A second, fresh database of `backend`, as migrated and not yet opened by any process.
struct Unkeyed {
    storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

async fn open_unkeyed(backend: &str) -> Unkeyed {
    if backend == "postgres" {
        let db = TestDb::create(&admin_url().expect("postgres configured")).await;
        let storage = PostgresStorage::connect(&db.url).await.expect("connect to the test database");
        return Unkeyed { storage: Arc::new(storage), _dir: None, _db: Some(db) };
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Unkeyed { storage: Arc::new(SqliteStorage::connect(&url).await.expect("sqlite")), _dir: Some(dir), _db: None }
}

fn with_email(name: &str, email: &str) -> User {
    User { email: Some(Email::parse(email).expect("valid address")), ..user(name) }
}

fn token(n: u8, purpose: TokenPurpose, user_id: &str, email: Option<&str>, expires_at: i64) -> OneTimeToken {
    OneTimeToken {
        token_hash: format!("{n:064x}"),
        purpose,
        user_id: user_id.to_owned(),
        email: email.map(str::to_owned),
        created_at: NOW,
        expires_at,
    }
}

fn mail(n: usize) -> OutboxMail {
    OutboxMail {
        id: format!("mail-{n:04}"),
        kind: "test".into(),
        recipient: format!("r{n}@example.com"),
        subject: "s".into(),
        text_body: "t".into(),
        html_body: "h".into(),
        created_at: NOW + n as i64,
        attempts: 0,
    }
}

async fn addresses_are_unique_ignoring_case(s: Arc<dyn Storage>) {
    let ann = with_email("ann", "Ann@Example.com");
    s.insert_user(&ann).await.expect("first");
    let found = s.user_by_email("ann@example.com").await.expect("lookup").expect("found");
    assert_eq!(found.id, ann.id);
    assert!(!found.email_verified);
    let taken = s.insert_user_with(&with_email("ann2", "ANN@example.COM"), None, &[mail(1)]).await;
    assert!(matches!(taken, Err(StorageError::Conflict)));
    assert_eq!(s.outbox_depth().await.expect("depth"), 0, "a refused insert queues nothing");
    let bob = with_email("bob", "bob@example.com");
    s.insert_user(&bob).await.expect("bob");
    let patch = UserPatch { email: Some(Some(Email::parse("ANN@EXAMPLE.COM").unwrap())), ..Default::default() };
    assert!(matches!(s.update_user(&bob.id, &patch, NOW).await, Err(StorageError::Conflict)));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let u = with_email(&format!("cy{i}"), if i % 2 == 0 { "cy@example.com" } else { "CY@example.com" });
            tokio::spawn(async move { s.insert_user(&u).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task").is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "one account per address");
}

async fn one_time_tokens_are_single_use(s: Arc<dyn Storage>) {
    let ann = with_email("ann", "ann@example.com");
    let t1 = token(1, TokenPurpose::VerifyEmail, ann.id.as_str(), Some("ann@example.com"), NOW + 3600);
    s.insert_user_with(&ann, Some(&t1), &[mail(1)]).await.expect("insert");
    assert_eq!(s.outbox_depth().await.expect("depth"), 1, "queued with the account");
    assert!(s.peek_token(&t1.token_hash, TokenPurpose::VerifyEmail, NOW).await.unwrap().is_some());
    assert!(
        s.peek_token(&t1.token_hash, TokenPurpose::PasswordReset, NOW).await.unwrap().is_none(),
        "bound to its purpose"
    );
    assert!(s.peek_token(&t1.token_hash, TokenPurpose::VerifyEmail, NOW + 3600).await.unwrap().is_none(), "expires");
    assert_eq!(s.tokens_issued_since(ann.id.as_str(), TokenPurpose::VerifyEmail, NOW).await.unwrap(), 1);
    // Used concurrently: one confirms.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, h) = (s.clone(), t1.token_hash.clone());
            tokio::spawn(async move { s.confirm_email(&h, TokenPurpose::VerifyEmail, NOW, &[]).await })
        })
        .collect();
    let mut confirmed = 0;
    for t in tasks {
        match t.await.expect("task").expect("confirm") {
            EmailConfirmed::Confirmed { .. } => confirmed += 1,
            EmailConfirmed::Invalid => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(confirmed, 1);
    assert!(s.user_by_id(&ann.id).await.unwrap().unwrap().email_verified);

    // An address change: only the latest request counts; a taken address changes nothing.
    let c1 = token(2, TokenPurpose::ChangeEmail, ann.id.as_str(), Some("first@example.com"), NOW + 3600);
    let c2 = token(3, TokenPurpose::ChangeEmail, ann.id.as_str(), Some("bob@example.com"), NOW + 3600);
    s.issue_token(&c1, &[], true).await.unwrap();
    s.issue_token(&c2, &[], true).await.unwrap();
    let stale = s.confirm_email(&c1.token_hash, TokenPurpose::ChangeEmail, NOW, &[]).await.unwrap();
    assert_eq!(stale, EmailConfirmed::Invalid);
    s.insert_user(&with_email("bob", "BOB@example.com")).await.unwrap();
    let taken = s.confirm_email(&c2.token_hash, TokenPurpose::ChangeEmail, NOW, &[mail(2)]).await.unwrap();
    assert_eq!(taken, EmailConfirmed::AddressTaken);
    assert_eq!(s.user_by_id(&ann.id).await.unwrap().unwrap().email.unwrap().as_str(), "ann@example.com");
    assert_eq!(s.outbox_depth().await.unwrap(), 1, "nothing queued by a refused change");

    // A reset: single use, voids the other reset tokens, ends sessions, queues the notice.
    user_with_session(s.as_ref(), "dee", "sid-dee").await;
    let dee = s.user_by_username("dee").await.unwrap().unwrap();
    let r1 = token(4, TokenPurpose::PasswordReset, dee.id.as_str(), None, NOW + 600);
    let r2 = token(5, TokenPurpose::PasswordReset, dee.id.as_str(), None, NOW + 600);
    s.issue_token(&r1, &[], false).await.unwrap();
    s.issue_token(&r2, &[], false).await.unwrap();
    assert!(s.reset_password(&r1.token_hash, &ann.id, "$argon2id$x", NOW, &[]).await.unwrap().is_none(), "owner-bound");
    let ended = s.reset_password(&r1.token_hash, &dee.id, "$argon2id$new", NOW, &[mail(3)]).await.unwrap();
    assert_eq!(ended.expect("reset").len(), 1);
    assert_eq!(s.user_by_id(&dee.id).await.unwrap().unwrap().password_hash, "$argon2id$new");
    for t in [&r1, &r2] {
        assert!(s.reset_password(&t.token_hash, &dee.id, "$argon2id$again", NOW, &[]).await.unwrap().is_none());
    }
    assert_eq!(s.outbox_depth().await.unwrap(), 2);
}

async fn outbox_claims_are_exclusive(s: Arc<dyn Storage>) {
    let mails: Vec<OutboxMail> = (0..30).map(mail).collect();
    s.enqueue_mails(&mails).await.expect("enqueue");
    assert_eq!(s.outbox_depth().await.unwrap(), 30);
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let lease = format!("lease-{i}");
                let mut got = Vec::new();
                loop {
                    let batch = s.claim_mails(&lease, NOW + 100, 60, 3).await.expect("claim");
                    if batch.is_empty() {
                        return (lease, got);
                    }
                    got.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut held = Vec::new();
    for t in tasks {
        let (lease, ids) = t.await.expect("task");
        for id in ids {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
            held.push((lease.clone(), id));
        }
    }
    assert_eq!(seen.len(), 30);
    // Leased mails are not due for anyone else until the lease runs out.
    assert!(s.claim_mails("other", NOW + 159, 60, 50).await.unwrap().is_empty());
    let (lease, id) = held[0].clone();
    assert!(!s.mail_sent(&id, "other").await.unwrap(), "only the lease holder settles a mail");
    assert!(s.mail_sent(&id, &lease).await.unwrap());
    let (lease, id) = held[1].clone();
    assert!(s.mail_retry(&id, &lease, NOW + 1000, "421 try later").await.unwrap());
    let (lease, id) = held[2].clone();
    assert!(s.mail_failed(&id, &lease, NOW + 100, "550 no such user").await.unwrap());
    assert_eq!(s.outbox_depth().await.unwrap(), 28, "sent and failed mails are not waiting");
    // After the lease: the 27 still leased come back; the retried one when it is due.
    let again = s.claim_mails("late", NOW + 160, 60, 100).await.unwrap();
    assert_eq!(again.len(), 27);
    for m in &again {
        assert!(s.mail_sent(&m.id, "late").await.unwrap());
    }
    let retried = s.claim_mails("later", NOW + 1000, 60, 100).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
}

/// Second factors: pending vs active TOTP, the step compare-and-swap, recovery codes used
/// once, challenges taken once and refused after expiry, removal taking the codes along.
async fn mfa_factors_and_challenges(s: Arc<dyn Storage>) {
    let alice = user("mfa-alice");
    s.insert_user(&alice).await.expect("insert");
    let id = alice.id.as_str();
    assert!(s.totp_factor(id).await.unwrap().is_none());
    assert!(s.put_pending_totp(id, "sealed-1", NOW).await.unwrap());
    // A pending factor can be replaced, and is not yet usable.
    assert!(s.put_pending_totp(id, "sealed-2", NOW).await.unwrap());
    assert!(!s.accept_totp_step(id, 5).await.unwrap());
    assert!(!s.replace_recovery_codes(id, &["h0".into()], NOW).await.unwrap());
    // Only the current pending secret activates.
    let codes: Vec<String> = (0..10).map(|i| format!("hash-{i}")).collect();
    assert!(!s.activate_totp(id, "sealed-1", 5, NOW, &codes).await.unwrap());
    assert!(s.activate_totp(id, "sealed-2", 5, NOW, &codes).await.unwrap());
    assert!(!s.activate_totp(id, "sealed-2", 5, NOW, &codes).await.unwrap());
    let f = s.totp_factor(id).await.unwrap().expect("factor");
    assert!(f.active);
    assert_eq!((f.secret.as_str(), f.last_step, f.confirmed_at), ("sealed-2", Some(5), Some(NOW)));
    // An active factor is never overwritten by a new enrolment.
    assert!(!s.put_pending_totp(id, "sealed-3", NOW).await.unwrap());
    // Steps: only later than the last accepted.
    assert!(!s.accept_totp_step(id, 5).await.unwrap());
    assert!(!s.accept_totp_step(id, 4).await.unwrap());
    assert!(s.accept_totp_step(id, 6).await.unwrap());
    assert!(!s.accept_totp_step(id, 6).await.unwrap());
    // Recovery codes: once each, only the account's own.
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 10);
    assert!(s.use_recovery_code(id, "hash-3", NOW).await.unwrap());
    assert!(!s.use_recovery_code(id, "hash-3", NOW).await.unwrap());
    assert!(!s.use_recovery_code(id, "unknown", NOW).await.unwrap());
    assert!(!s.use_recovery_code("someone-else", "hash-4", NOW).await.unwrap());
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 9);
    assert!(s.replace_recovery_codes(id, &["new-0".into(), "new-1".into()], NOW).await.unwrap());
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 2);
    assert!(!s.use_recovery_code(id, "hash-4", NOW).await.unwrap());
    // Challenges: taken once; expired ones are refused.
    let ch = |h: &str, exp: i64| gatepass::storage::MfaChallenge {
        challenge_hash: h.into(),
        user_id: id.into(),
        client_hash: "client".into(),
        created_at: NOW,
        expires_at: exp,
    };
    s.insert_mfa_challenge(&ch("c1", NOW + 300)).await.unwrap();
    s.insert_mfa_challenge(&ch("c2", NOW + 1)).await.unwrap();
    // Peeking leaves a live challenge in place and never shows an expired one.
    assert_eq!(s.peek_mfa_challenge("c1", NOW).await.unwrap(), Some(ch("c1", NOW + 300)));
    assert_eq!(s.peek_mfa_challenge("c2", NOW + 1).await.unwrap(), None);
    assert_eq!(s.peek_mfa_challenge("nope", NOW).await.unwrap(), None);
    assert_eq!(s.take_mfa_challenge("c1", NOW).await.unwrap(), Some(ch("c1", NOW + 300)));
    assert_eq!(s.peek_mfa_challenge("c1", NOW).await.unwrap(), None);
    assert_eq!(s.take_mfa_challenge("c1", NOW).await.unwrap(), None);
    assert_eq!(s.take_mfa_challenge("c2", NOW + 1).await.unwrap(), None);
    // Removal takes the codes along.
    assert!(s.remove_totp(id).await.unwrap());
    assert!(!s.remove_totp(id).await.unwrap());
    assert!(s.totp_factor(id).await.unwrap().is_none());
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 0);
}

/// Concurrent uses of one recovery code and of one time step: exactly one wins, every round.
async fn concurrent_mfa_uses(s: Arc<dyn Storage>) {
    let bob = user("mfa-bob");
    s.insert_user(&bob).await.expect("insert");
    let id = bob.id.as_str().to_owned();
    assert!(s.put_pending_totp(&id, "sealed", NOW).await.unwrap());
    let codes: Vec<String> = (0..10).map(|i| format!("code-{i}")).collect();
    assert!(s.activate_totp(&id, "sealed", 1, NOW, &codes).await.unwrap());
    for round in 0..10i64 {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (s, id) = (s.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let code = s.use_recovery_code(&id, &format!("code-{round}"), NOW).await.unwrap();
                let step = s.accept_totp_step(&id, 10 + round).await.unwrap();
                (code, step)
            }));
        }
        let mut codes_won = 0;
        let mut steps_won = 0;
        for t in tasks {
            let (c, st) = t.await.unwrap();
            codes_won += i32::from(c);
            steps_won += i32::from(st);
        }
        assert_eq!((codes_won, steps_won), (1, 1), "round {round}");
    }
}

/// Concurrent confirmations of one pending factor, racing new enrolments and a removal:
/// exactly one confirmation wins, and an active factor always holds the secret that was
/// confirmed, with the codes of that confirmation.
async fn concurrent_mfa_enrolment(s: Arc<dyn Storage>) {
    for round in 0..25 {
        let u = user(&format!("mfa-enrol{round}"));
        s.insert_user(&u).await.expect("insert");
        let id = u.id.as_str().to_owned();
        assert!(s.put_pending_totp(&id, "first", NOW).await.unwrap());
        let mut tasks = Vec::new();
        for n in 0..6 {
            let (s, id) = (s.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let codes = vec![format!("c{n}")];
                let won = s.activate_totp(&id, "first", 1, NOW, &codes).await.unwrap();
                // A new enrolment in between must never replace an active factor.
                let replaced = s.put_pending_totp(&id, &format!("other{n}"), NOW).await.unwrap();
                (won, replaced, n)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (won, _, n) = t.await.unwrap();
            if won {
                winners.push(n);
            }
        }
        let f = s.totp_factor(&id).await.unwrap().expect("factor");
        match winners.as_slice() {
            [n] => {
                assert!(f.active && f.secret == "first", "round {round}: {f:?}");
                assert!(s.use_recovery_code(&id, &format!("c{n}"), NOW).await.unwrap());
                assert_eq!(s.recovery_codes_left(&id).await.unwrap(), 0);
            }
            // An enrolment replaced the pending secret before any confirmation ran.
            [] => assert!(!f.active, "round {round}: {f:?}"),
            more => panic!("round {round}: {} confirmations won", more.len()),
        }
    }
}

fn passkey(id: &str, user_id: &str, name: &str, credential_id: &str) -> gatepass::storage::PasskeyRecord {
    gatepass::storage::PasskeyRecord {
        id: id.into(),
        user_id: user_id.into(),
        name: name.into(),
        credential_id: credential_id.into(),
        credential: format!("{{\"cred\":\"{credential_id}\"}}"),
        sign_count: 0,
        backup_eligible: true,
        backup_state: false,
        created_at: NOW,
        last_used_at: None,
    }
}

/// Passkeys: names unique per account, credential ids unique overall, the first one
/// brings recovery codes and the last one takes them, counters move by compare-and-swap,
/// ceremonies are taken once, only as their kind, and not after expiry.
async fn passkeys_and_ceremonies(s: Arc<dyn Storage>) {
    let (alice, bob) = (user("pk-alice"), user("pk-bob"));
    s.insert_user(&alice).await.expect("insert");
    s.insert_user(&bob).await.expect("insert");
    let (a, b) = (alice.id.as_str(), bob.id.as_str());
    let codes: Vec<String> = (0..10).map(|i| format!("pk-code-{i}")).collect();
    assert!(s.add_passkey(&passkey("p1", a, "Laptop", "cred-1"), &codes).await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 10);
    // A second passkey brings no new codes.
    assert!(!s.add_passkey(&passkey("p2", a, "Phone", "cred-2"), &["other".into()]).await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 10);
    // Same name on the same account, same credential anywhere: conflicts, nothing stored.
    assert!(matches!(s.add_passkey(&passkey("p3", a, "Laptop", "cred-3"), &[]).await, Err(StorageError::Conflict)));
    assert!(matches!(s.add_passkey(&passkey("p3", b, "Key", "cred-1"), &codes).await, Err(StorageError::Conflict)));
    assert_eq!(s.passkey_count(b).await.unwrap(), 0);
    assert_eq!(s.recovery_codes_left(b).await.unwrap(), 0);
    // Another account may use the name.
    assert!(s.add_passkey(&passkey("p4", b, "Laptop", "cred-4"), &[]).await.is_ok());
    let mine = s.passkeys(a).await.unwrap();
    assert_eq!(mine.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
    assert_eq!(mine[0], passkey("p1", a, "Laptop", "cred-1"));
    assert_eq!(s.passkey_by_credential_id("cred-4").await.unwrap().map(|p| p.user_id), Some(b.to_owned()));
    assert!(s.passkey_by_credential_id("nope").await.unwrap().is_none());
    // Renaming: only one's own, never onto another of one's names.
    assert!(matches!(s.rename_passkey(a, "p2", "Laptop").await, Err(StorageError::Conflict)));
    assert!(!s.rename_passkey(b, "p2", "Mine").await.unwrap());
    assert!(s.rename_passkey(a, "p2", "Work phone").await.unwrap());
    // Counter compare-and-swap.
    let used = |old: i64, new: i64| gatepass::storage::PasskeyUse {
        id: "p1",
        old_count: old,
        new_count: new,
        credential: "{\"cred\":\"updated\"}",
        backup_state: true,
        now: NOW + 5,
    };
    assert!(s.record_passkey_use(used(0, 3)).await.unwrap());
    assert!(!s.record_passkey_use(used(0, 4)).await.unwrap(), "read at a stale counter");
    let p1 = s.passkey_by_credential_id("cred-1").await.unwrap().unwrap();
    assert_eq!((p1.sign_count, p1.backup_state, p1.last_used_at), (3, true, Some(NOW + 5)));
    // Removal: only one's own; the last factor takes the codes.
    assert!(!s.remove_passkey(b, "p1").await.unwrap());
    assert!(s.remove_passkey(a, "p1").await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 10);
    assert!(s.remove_passkey(a, "p2").await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 0);
    assert!(!s.remove_passkey(a, "p2").await.unwrap());
    // An administrator's reset takes every factor of the account, and only of that one.
    assert!(!s.replace_recovery_codes(a, &["x".into()], NOW).await.unwrap(), "no factor, no codes");
    assert!(s.add_passkey(&passkey("p5", a, "Key", "cred-5"), &codes).await.unwrap());
    // A passkey alone is a factor whose codes can be replaced.
    assert!(s.replace_recovery_codes(a, &["new-1".into(), "new-2".into()], NOW).await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 2);
    assert!(s.remove_all_factors(a).await.unwrap());
    assert_eq!((s.passkey_count(a).await.unwrap(), s.recovery_codes_left(a).await.unwrap()), (0, 0));
    assert!(!s.remove_all_factors(a).await.unwrap(), "nothing left to remove");
    assert_eq!(s.passkey_count(b).await.unwrap(), 1);
    // Ceremonies.
    let ceremony = |id: &str, kind: &str, exp: i64| gatepass::storage::PasskeyCeremony {
        id: id.into(),
        kind: kind.into(),
        user_id: Some(a.into()),
        client_hash: "client".into(),
        state: "{}".into(),
        created_at: NOW,
        expires_at: exp,
    };
    s.put_passkey_ceremony(&ceremony("k1", "registration", NOW + 300)).await.unwrap();
    s.put_passkey_ceremony(&ceremony("k2", "login", NOW + 1)).await.unwrap();
    assert_eq!(s.take_passkey_ceremony("k1", "login", NOW).await.unwrap(), None, "another kind");
    assert_eq!(
        s.take_passkey_ceremony("k1", "registration", NOW).await.unwrap(),
        Some(ceremony("k1", "registration", NOW + 300))
    );
    assert_eq!(s.take_passkey_ceremony("k1", "registration", NOW).await.unwrap(), None);
    assert_eq!(s.take_passkey_ceremony("k2", "login", NOW + 1).await.unwrap(), None, "expired");
    // Putting again under one id replaces.
    s.put_passkey_ceremony(&ceremony("k3", "mfa", NOW + 300)).await.unwrap();
    let mut newer = ceremony("k3", "mfa", NOW + 300);
    newer.state = "{\"new\":1}".into();
    s.put_passkey_ceremony(&newer).await.unwrap();
    assert_eq!(s.take_passkey_ceremony("k3", "mfa", NOW).await.unwrap(), Some(newer));
    // A challenge can be read without taking it.
    let ch = gatepass::storage::MfaChallenge {
        challenge_hash: "pk-c".into(),
        user_id: a.into(),
        client_hash: "client".into(),
        created_at: NOW,
        expires_at: NOW + 300,
    };
    s.insert_mfa_challenge(&ch).await.unwrap();
    assert_eq!(s.peek_mfa_challenge("pk-c", NOW).await.unwrap(), Some(ch.clone()));
    assert_eq!(s.peek_mfa_challenge("pk-c", NOW + 300).await.unwrap(), None);
    assert_eq!(s.take_mfa_challenge("pk-c", NOW).await.unwrap(), Some(ch));
    // An account's TOTP removal leaves the codes its passkeys need.
    assert!(s.add_passkey(&passkey("p5", a, "Key", "cred-5"), &codes).await.unwrap());
    assert!(s.put_pending_totp(a, "sealed", NOW).await.unwrap());
    assert!(s.remove_totp(a).await.unwrap());
    assert_eq!(s.recovery_codes_left(a).await.unwrap(), 10);
}

/// Concurrent takes of one ceremony and concurrent counter updates: exactly one wins.
async fn concurrent_passkey_uses(s: Arc<dyn Storage>) {
    let u = user("pk-racer");
    s.insert_user(&u).await.expect("insert");
    let id = u.id.as_str().to_owned();
    s.add_passkey(&passkey("pr", &id, "Key", "cred-r"), &[]).await.unwrap();
    for round in 0..50i64 {
        let c = gatepass::storage::PasskeyCeremony {
            id: format!("race-{round}"),
            kind: "login".into(),
            user_id: None,
            client_hash: "client".into(),
            state: "{}".into(),
            created_at: NOW,
            expires_at: NOW + 300,
        };
        s.put_passkey_ceremony(&c).await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..6i64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let taken = s.take_passkey_ceremony(&format!("race-{round}"), "login", NOW).await.unwrap().is_some();
                let used = gatepass::storage::PasskeyUse {
                    id: "pr",
                    old_count: round,
                    new_count: round + 1,
                    credential: "{}",
                    backup_state: n % 2 == 0,
                    now: NOW,
                };
                (taken, s.record_passkey_use(used).await.unwrap())
            }));
        }
        let (mut taken, mut used) = (0, 0);
        for t in tasks {
            let (a, b) = t.await.unwrap();
            taken += i32::from(a);
            used += i32::from(b);
        }
        assert_eq!((taken, used), (1, 1), "round {round}");
    }
}

fn oauth_client(id: &str) -> OAuthClient {
    OAuthClient {
        client_id: id.into(),
        secret_hash: Some("ab".repeat(32)),
        name: format!("App {id}"),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example.com/bye".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["openid".into(), "profile".into()],
        first_party: false,
        limited: true,
        resource: None,
        resources: vec!["https://api.example.com/v1".into(), "urn:example:reports".into()],
        created_at: NOW,
        updated_at: NOW,
        version: 1,
        id_token_alg: gatepass::storage::IdTokenAlg::Es256,
    }
}

fn auth_code(hash: &str, client_id: &str, user_id: &str, browser_sid: &str, expires_at: i64) -> AuthCode {
    AuthCode {
        code_hash: hash.into(),
        client_id: client_id.into(),
        user_id: user_id.into(),
        browser_sid: browser_sid.into(),
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: "openid profile".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: NOW,
        amr: "pwd".into(),
        created_at: NOW,
        expires_at,
        used_at: None,
        issued_sid: None,
        resource: Some("https://api.example.com/v1".into()),
    }
}

fn grant_record(id: &str, user_id: &str, client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: Some(client_id.into()),
        scope: Some("openid profile".into()),
        resource: Some("https://api.example.com/v1".into()),
        ..session(id, user_id, NOW)
    }
}

async fn oauth_clients_and_consent(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "olga", "browser-1").await;
    let c = oauth_client("c1");
    s.insert_client(&c).await.unwrap();
    assert!(matches!(s.insert_client(&c).await, Err(StorageError::Conflict)));
    assert_eq!(s.client("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(s.client("nope").await.unwrap(), None);
    // Compare-and-swap on the version: a stale writer changes nothing.
    let changed = OAuthClient {
        name: "Renamed".into(),
        post_logout_redirect_uris: vec!["https://app.example.com/signed-out".into()],
        limited: false,
        version: 2,
        ..c.clone()
    };
    assert!(s.update_client(&changed, 1).await.unwrap());
    assert_eq!(s.client("c1").await.unwrap(), Some(changed.clone()));
    let stale = OAuthClient { name: "Stale".into(), version: 2, ..c.clone() };
    assert!(!s.update_client(&stale, 1).await.unwrap());
    assert_eq!(s.client("c1").await.unwrap().unwrap().name, "Renamed");
    assert_eq!(s.list_clients().await.unwrap().len(), 1);
    s.grant_consent(u.id.as_str(), "c1", "openid profile", NOW).await.unwrap();
    s.grant_consent(u.id.as_str(), "c1", "openid profile", NOW + 1).await.unwrap();
    assert_eq!(s.consents(u.id.as_str(), "c1").await.unwrap(), vec!["openid profile".to_owned()]);
    let listed = s.user_consents(u.id.as_str()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].client_name.as_str(), listed[0].scope.as_str()), ("Renamed", "openid profile"));
    // Withdrawing forgets the consent (no grant to revoke here); a second time finds nothing.
    assert_eq!(s.withdraw_consent(u.id.as_str(), "c1", NOW).await.unwrap(), Some(vec![]));
    assert_eq!(s.withdraw_consent(u.id.as_str(), "c1", NOW).await.unwrap(), None);
    assert!(s.user_consents(u.id.as_str()).await.unwrap().is_empty());
    // The provider's keys: the first of each algorithm is stored once (two instances
    // starting together keep the first); rotations add more; expired ones are deleted.
    let key =
        |kid: &str, alg: &str, activates_at: i64| StoredKey { alg: alg.into(), activates_at, ..stored_key(kid, NOW) };
    let kids = |keys: Vec<StoredKey>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert!(s.oauth_keys().await.unwrap().is_empty());
    assert!(s.insert_first_oauth_key(&key("rs256-a", "RS256", NOW)).await.unwrap());
    assert!(!s.insert_first_oauth_key(&key("rs256-b", "RS256", NOW)).await.unwrap());
    assert!(s.insert_first_oauth_key(&key("es256-a", "ES256", NOW)).await.unwrap());
    assert!(!s.insert_first_oauth_key(&key("es256-b", "ES256", NOW)).await.unwrap());
    assert_eq!(kids(s.oauth_keys().await.unwrap()), ["es256-a", "rs256-a"]);
    s.add_oauth_key(&key("rs256-c", "RS256", NOW + 600)).await.unwrap();
    s.add_oauth_key(&key("es256-c", "ES256", NOW + 600)).await.unwrap();
    let all = s.oauth_keys().await.unwrap();
    assert_eq!(kids(all.clone()), ["es256-a", "rs256-a", "es256-c", "rs256-c"], "by activation, then kid");
    assert_eq!((all[3].alg.as_str(), all[3].activates_at, all[3].revoked_at), ("RS256", NOW + 600, None));
    assert_eq!(s.delete_oauth_keys(&["rs256-a".into(), "es256-a".into(), "none".into()]).await.unwrap(), 2);
    assert_eq!(kids(s.oauth_keys().await.unwrap()), ["es256-c", "rs256-c"]);
    assert!(!s.insert_first_oauth_key(&key("rs256-d", "RS256", NOW)).await.unwrap(), "the algorithm has a key");
}

/// Instances starting together on a new database each try to store the first provider
/// key of an algorithm: exactly one is stored, whatever the interleaving.
async fn concurrent_first_provider_keys(s: Arc<dyn Storage>) {
    for round in 0..50 {
        let alg = format!("T{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, barrier) = (s.clone(), barrier.clone());
                let key = StoredKey { alg: alg.clone(), ..stored_key(&format!("{alg}-{i}"), NOW) };
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.insert_first_oauth_key(&key).await.expect("insert")
                })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            stored += usize::from(t.await.expect("task"));
        }
        assert_eq!(stored, 1, "round {round}: one insert reports storing");
        let keys = s.oauth_keys().await.expect("keys");
        assert_eq!(keys.iter().filter(|k| k.alg == alg).count(), 1, "round {round}: one key stored");
    }
}

async fn oauth_codes_redeem_once_and_replays_revoke(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "oskar", "browser-2").await;
    s.insert_client(&oauth_client("c2")).await.unwrap();
    let code = auth_code("code-1", "c2", u.id.as_str(), "browser-2", NOW + 60);
    s.insert_code(&code).await.unwrap();
    assert_eq!(s.code("code-1").await.unwrap(), Some(code.clone()));
    let record = grant_record("grant-1", u.id.as_str(), "c2");
    let new = started(&record, "rh-grant-1", NOW + 3600);
    assert_eq!(s.redeem_code("code-1", NOW + 1, new).await.unwrap(), CodeRedemption::Issued);
    let stored = s.session("grant-1").await.unwrap().unwrap();
    assert_eq!(stored.client_id.as_deref(), Some("c2"));
    assert_eq!(stored.scope.as_deref(), Some("openid profile"));
    assert_eq!(stored.resource.as_deref(), Some("https://api.example.com/v1"));
    // A second redemption revokes the grant the first one made, and stores nothing new.
    let record2 = grant_record("grant-2", u.id.as_str(), "c2");
    match s.redeem_code("code-1", NOW + 2, started(&record2, "rh-grant-2", NOW + 3600)).await.unwrap() {
        CodeRedemption::Replayed(revoked) => {
            assert_eq!(revoked.iter().map(|r| r.sid.as_str()).collect::<Vec<_>>(), ["grant-1"])
        }
        other => panic!("{other:?}"),
    }
    assert!(s.session("grant-1").await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(s.session("grant-2").await.unwrap(), None);
    // Expired, unknown, or approved by a browser session that has ended: refused, nothing stored.
    s.insert_code(&auth_code("code-old", "c2", u.id.as_str(), "browser-2", NOW)).await.unwrap();
    let r3 = grant_record("grant-3", u.id.as_str(), "c2");
    assert_eq!(
        s.redeem_code("code-old", NOW + 1, started(&r3, "rh-3", NOW + 3600)).await.unwrap(),
        CodeRedemption::Refused
    );
    assert_eq!(
        s.redeem_code("unknown", NOW + 1, started(&r3, "rh-3", NOW + 3600)).await.unwrap(),
        CodeRedemption::Refused
    );
    s.insert_code(&auth_code("code-2", "c2", u.id.as_str(), "browser-2", NOW + 60)).await.unwrap();
    s.revoke_sessions(u.id.as_str(), SessionFilter::One("browser-2"), NOW + 1).await.unwrap();
    assert_eq!(
        s.redeem_code("code-2", NOW + 2, started(&r3, "rh-3", NOW + 3600)).await.unwrap(),
        CodeRedemption::Refused
    );
    assert_eq!(s.session("grant-3").await.unwrap(), None);
    assert_eq!(s.code("code-2").await.unwrap().unwrap().used_at, None);
}

async fn concurrent_code_redemptions(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "otto", "browser-3").await;
    s.insert_client(&oauth_client("c3")).await.unwrap();
    for round in 0..5 {
        let hash = format!("code-race-{round}");
        s.insert_code(&auth_code(&hash, "c3", u.id.as_str(), "browser-3", NOW + 60)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            let (hash, uid) = (hash.clone(), u.id.as_str().to_owned());
            tasks.push(tokio::spawn(async move {
                let record = grant_record(&format!("g-{round}-{i}"), &uid, "c3");
                s.redeem_code(&hash, NOW + 1, started(&record, &format!("rh-{round}-{i}"), NOW + 3600)).await.unwrap()
            }));
        }
        let mut issued = 0;
        for t in tasks {
            if t.await.unwrap() == CodeRedemption::Issued {
                issued += 1;
            }
        }
        assert_eq!(issued, 1, "round {round}");
        let winner = s.code(&hash).await.unwrap().unwrap().issued_sid.unwrap();
        // Every loser saw a replay: the one grant is revoked.
        assert!(s.session(&winner).await.unwrap().unwrap().revoked_at.is_some(), "round {round}");
    }
}

async fn deleting_a_client_revokes_its_grants(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "oda", "browser-4").await;
    s.insert_client(&oauth_client("c4")).await.unwrap();
    s.insert_client(&oauth_client("c5")).await.unwrap();
    s.insert_code(&auth_code("code-4", "c4", u.id.as_str(), "browser-4", NOW + 60)).await.unwrap();
    let r4 = grant_record("grant-4", u.id.as_str(), "c4");
    assert_eq!(
        s.redeem_code("code-4", NOW + 1, started(&r4, "rh-4", NOW + 3600)).await.unwrap(),
        CodeRedemption::Issued
    );
    s.insert_code(&auth_code("code-5", "c5", u.id.as_str(), "browser-4", NOW + 60)).await.unwrap();
    let r5 = grant_record("grant-5", u.id.as_str(), "c5");
    assert_eq!(
        s.redeem_code("code-5", NOW + 1, started(&r5, "rh-5", NOW + 3600)).await.unwrap(),
        CodeRedemption::Issued
    );
    s.insert_code(&auth_code("code-4b", "c4", u.id.as_str(), "browser-4", NOW + 60)).await.unwrap();
    let revoked = s.delete_client("c4", NOW + 2).await.unwrap().unwrap();
    assert_eq!(revoked.iter().map(|r| r.sid.as_str()).collect::<Vec<_>>(), ["grant-4"]);
    assert!(s.live_revocations(NOW + 2).await.unwrap().iter().any(|r| r.sid == "grant-4"));
    assert_eq!(s.client("c4").await.unwrap(), None);
    assert_eq!(s.code("code-4b").await.unwrap(), None);
    assert!(s.session("grant-5").await.unwrap().unwrap().revoked_at.is_none());
    assert!(s.session("browser-4").await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(s.delete_client("c4", NOW + 3).await.unwrap(), None);
}

fn device_code(hash: &str, user_hash: &str, client_id: &str, expires_at: i64) -> DeviceCode {
    DeviceCode {
        device_hash: hash.into(),
        user_code_hash: user_hash.into(),
        client_id: client_id.into(),
        scope: "openid profile".into(),
        resource: Some("https://api.example.com/v1".into()),
        created_at: NOW,
        expires_at,
        interval_secs: 5,
        last_poll_at: None,
        status: "pending".into(),
        user_id: None,
        browser_sid: None,
        auth_time: None,
        amr: None,
        decided_at: None,
        used_at: None,
        issued_sid: None,
    }
}

fn approval<'a>(user_id: &'a str, browser_sid: &'a str) -> DeviceApproval<'a> {
    DeviceApproval { user_id, browser_sid, auth_time: NOW - 5, amr: "pwd otp" }
}

/// Device codes: stored as given, user codes unique, polls recorded by compare-and-swap,
/// decided once, redeemed once (only when approved, unexpired and its browser session
/// live), and dropped with the consent.
async fn device_codes_decide_and_redeem_once(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "dora", "browser-d").await;
    let uid = u.id.as_str();
    s.insert_client(&oauth_client("cd")).await.unwrap();
    let d = device_code("dev-1", "user-1", "cd", NOW + 600);
    s.insert_device_code(&d).await.unwrap();
    assert!(matches!(
        s.insert_device_code(&device_code("dev-x", "user-1", "cd", NOW + 600)).await,
        Err(StorageError::Conflict)
    ));
    assert_eq!(s.device_code("dev-1").await.unwrap(), Some(d.clone()));
    assert_eq!(s.device_code_by_user_code("user-1").await.unwrap(), Some(d.clone()));
    assert_eq!(s.device_code("dev-x").await.unwrap(), None);
    // Polls: the first from "never", then only from the value seen.
    assert!(s.record_device_poll("dev-1", None, NOW + 1, 5).await.unwrap());
    assert!(!s.record_device_poll("dev-1", None, NOW + 2, 10).await.unwrap());
    assert!(s.record_device_poll("dev-1", Some(NOW + 1), NOW + 2, 10).await.unwrap());
    let polled = s.device_code("dev-1").await.unwrap().unwrap();
    assert_eq!((polled.last_poll_at, polled.interval_secs), (Some(NOW + 2), 10));
    // Not approved yet: nothing to redeem.
    let r1 = grant_record("dgrant-1", uid, "cd");
    assert_eq!(
        s.redeem_device_code("dev-1", NOW + 3, started(&r1, "rh-d1", NOW + 3600)).await.unwrap(),
        DeviceRedemption::Refused
    );
    // Decided once: the approval wins, a later denial changes nothing.
    assert!(s.decide_device_code("user-1", uid, Some(approval(uid, "browser-d")), NOW + 3).await.unwrap());
    assert!(!s.decide_device_code("user-1", uid, None, NOW + 4).await.unwrap());
    assert!(!s.decide_device_code("user-unknown", uid, None, NOW + 4).await.unwrap());
    let approved = s.device_code("dev-1").await.unwrap().unwrap();
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.user_id.as_deref(), Some(uid));
    assert_eq!(approved.browser_sid.as_deref(), Some("browser-d"));
    assert_eq!((approved.auth_time, approved.amr.as_deref()), (Some(NOW - 5), Some("pwd otp")));
    assert_eq!(approved.decided_at, Some(NOW + 3));
    // The approval remembered the consent, in the same transaction.
    assert_eq!(s.consents(uid, "cd").await.unwrap(), vec!["openid profile".to_owned()]);
    // A poll no longer records anything once decided.
    assert!(!s.record_device_poll("dev-1", Some(NOW + 2), NOW + 5, 5).await.unwrap());
    assert_eq!(
        s.redeem_device_code("dev-1", NOW + 6, started(&r1, "rh-d1", NOW + 3600)).await.unwrap(),
        DeviceRedemption::Issued
    );
    let used = s.device_code("dev-1").await.unwrap().unwrap();
    assert_eq!(
        (used.status.as_str(), used.used_at, used.issued_sid.as_deref()),
        ("used", Some(NOW + 6), Some("dgrant-1"))
    );
    assert_eq!(s.session("dgrant-1").await.unwrap().unwrap().client_id.as_deref(), Some("cd"));
    let r2 = grant_record("dgrant-2", uid, "cd");
    assert_eq!(
        s.redeem_device_code("dev-1", NOW + 7, started(&r2, "rh-d2", NOW + 3600)).await.unwrap(),
        DeviceRedemption::Refused
    );
    assert_eq!(s.session("dgrant-2").await.unwrap(), None);
    // A used code revokes nothing when presented again (unlike an authorization code).
    assert!(s.session("dgrant-1").await.unwrap().unwrap().revoked_at.is_none());
    // Denied: never redeemable. Expired: neither decided nor redeemed.
    s.insert_device_code(&device_code("dev-2", "user-2", "cd", NOW + 600)).await.unwrap();
    assert!(s.decide_device_code("user-2", uid, None, NOW + 1).await.unwrap());
    let denied = s.device_code("dev-2").await.unwrap().unwrap();
    assert_eq!((denied.status.as_str(), denied.browser_sid), ("denied", None));
    assert_eq!(
        s.redeem_device_code("dev-2", NOW + 2, started(&r2, "rh-d2", NOW + 3600)).await.unwrap(),
        DeviceRedemption::Refused
    );
    s.insert_device_code(&device_code("dev-3", "user-3", "cd", NOW + 10)).await.unwrap();
    assert!(!s.decide_device_code("user-3", uid, Some(approval(uid, "browser-d")), NOW + 10).await.unwrap());
    assert_eq!(s.device_code("dev-3").await.unwrap().unwrap().status, "pending");
    // Approved by a browser session that has ended since: refused, nothing stored.
    s.insert_device_code(&device_code("dev-4", "user-4", "cd", NOW + 600)).await.unwrap();
    assert!(s.decide_device_code("user-4", uid, Some(approval(uid, "browser-d")), NOW + 1).await.unwrap());
    s.revoke_sessions(uid, SessionFilter::One("browser-d"), NOW + 2).await.unwrap();
    assert_eq!(
        s.redeem_device_code("dev-4", NOW + 3, started(&r2, "rh-d2", NOW + 3600)).await.unwrap(),
        DeviceRedemption::Refused
    );
    assert_eq!(s.device_code("dev-4").await.unwrap().unwrap().status, "approved");
    assert_eq!(s.session("dgrant-2").await.unwrap(), None);
    // Withdrawing the consent drops the unredeemed codes the user decided; the used one stays.
    assert!(s.withdraw_consent(uid, "cd", NOW + 4).await.unwrap().is_some());
    assert_eq!(s.device_code("dev-4").await.unwrap(), None);
    assert_eq!(s.device_code("dev-2").await.unwrap(), None);
    assert!(s.device_code("dev-1").await.unwrap().is_some());
    assert!(s.device_code("dev-3").await.unwrap().is_some());
    // Codes expired for an hour are dropped with the next insert; deleting the client drops the rest.
    s.insert_device_code(&DeviceCode { created_at: NOW + 3700, ..device_code("dev-5", "user-5", "cd", NOW + 4300) })
        .await
        .unwrap();
    assert_eq!(s.device_code("dev-3").await.unwrap(), None);
    s.delete_client("cd", NOW + 3701).await.unwrap();
    assert_eq!(s.device_code("dev-5").await.unwrap(), None);
}

/// Of concurrent decisions one wins; of concurrent redemptions one issues.
async fn concurrent_device_decisions_and_redemptions(s: Arc<dyn Storage>) {
    let u = user_with_session(s.as_ref(), "dirk", "browser-e").await;
    s.insert_client(&oauth_client("ce")).await.unwrap();
    for round in 0..5 {
        let (dev, usr) = (format!("dev-race-{round}"), format!("user-race-{round}"));
        s.insert_device_code(&device_code(&dev, &usr, "ce", NOW + 600)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            let (usr, uid) = (usr.clone(), u.id.as_str().to_owned());
            tasks.push(tokio::spawn(async move {
                let allow = i % 2 == 0;
                let a = allow.then_some(DeviceApproval {
                    user_id: &uid,
                    browser_sid: "browser-e",
                    auth_time: NOW,
                    amr: "pwd",
                });
                (allow, s.decide_device_code(&usr, &uid, a, NOW + 1).await.unwrap())
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            let (allow, ok) = t.await.unwrap();
            if ok {
                won.push(allow);
            }
        }
        assert_eq!(won.len(), 1, "round {round}");
        let status = s.device_code(&dev).await.unwrap().unwrap().status;
        assert_eq!(status, if won[0] { "approved" } else { "denied" }, "round {round}");
        // Another code, approved, polled by many at once.
        let (dev, usr) = (format!("dev-ok-{round}"), format!("user-ok-{round}"));
        s.insert_device_code(&device_code(&dev, &usr, "ce", NOW + 600)).await.unwrap();
        let uid = u.id.as_str();
        let a = DeviceApproval { user_id: uid, browser_sid: "browser-e", auth_time: NOW, amr: "pwd" };
        assert!(s.decide_device_code(&usr, uid, Some(a), NOW + 1).await.unwrap());
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            let (dev, uid) = (dev.clone(), u.id.as_str().to_owned());
            tasks.push(tokio::spawn(async move {
                let record = grant_record(&format!("dg-{round}-{i}"), &uid, "ce");
                s.redeem_device_code(&dev, NOW + 2, started(&record, &format!("drh-{round}-{i}"), NOW + 3600))
                    .await
                    .unwrap()
            }));
        }
        let mut issued = 0;
        for t in tasks {
            if t.await.unwrap() == DeviceRedemption::Issued {
                issued += 1;
            }
        }
        assert_eq!(issued, 1, "round {round}");
        let winner = s.device_code(&dev).await.unwrap().unwrap().issued_sid.unwrap();
        assert!(s.session(&winner).await.unwrap().unwrap().revoked_at.is_none(), "round {round}");
    }
}

/// The console's search: prefixes of the canonical name or the address (either), role,
/// disabled and unverified filters (all), name order, paging and the total.
async fn console_search(s: Arc<dyn Storage>) {
    let add = |name: &str, email: Option<&str>, roles: &[&str], disabled: bool, verified: bool| {
        let mut u = user(name);
        u.email = email.map(|e| Email::parse(e).expect("valid address"));
        u.email_verified = verified;
        u.roles = Roles::parse(roles).expect("roles");
        u.disabled = disabled;
        u
    };
    let all = [
        add("alice", Some("alice@example.com"), &["admin"], false, true),
        add("albert", Some("bert@example.com"), &[], true, false),
        add("bob", Some("al_bob@example.com"), &["admin_x"], false, false),
        add("carol", None, &[], false, false),
    ];
    for u in &all {
        s.insert_user(u).await.expect("insert");
    }
    let names = |users: &[User]| users.iter().map(|u| u.username.as_str().to_owned()).collect::<Vec<_>>();
    let search = |f: &dyn Fn(&mut UserSearch)| {
        let mut q = UserSearch { limit: 50, ..UserSearch::default() };
        f(&mut q);
        q
    };
    let (found, total) = s.search_users(&search(&|_| {})).await.expect("search");
    assert_eq!((names(&found), total), (vec!["albert".into(), "alice".into(), "bob".into(), "carol".into()], 4));
    let q = search(&|q| {
        q.name_prefix = Some("al".into());
        q.email_prefix = Some("al".into());
    });
    let (found, _) = s.search_users(&q).await.expect("search");
    assert_eq!(names(&found), ["albert", "alice", "bob"], "name or address prefix");
    let q = search(&|q| q.email_prefix = Some("al_".into()));
    assert_eq!(names(&s.search_users(&q).await.expect("search").0), ["bob"], "`_` means itself");
    let q = search(&|q| q.role = Some("admin".into()));
    assert_eq!(names(&s.search_users(&q).await.expect("search").0), ["alice"], "whole role names only");
    let q = search(&|q| q.disabled = Some(true));
    assert_eq!(names(&s.search_users(&q).await.expect("search").0), ["albert"]);
    let q = search(&|q| {
        q.unverified = true;
        q.disabled = Some(false);
    });
    assert_eq!(names(&s.search_users(&q).await.expect("search").0), ["bob"], "carol has no address");
    let q = search(&|q| {
        q.limit = 2;
        q.offset = 1;
    });
    let (found, total) = s.search_users(&q).await.expect("search");
    assert_eq!((names(&found), total), (vec!["alice".into(), "bob".into()], 4));
    assert!(s.audit_hourly(&["login"], NOW).await.expect("counts").is_empty());
}

async fn instance_heartbeats(s: Arc<dyn Storage>) {
    use gatepass::storage::InstanceBeat;
    let beat = |id: &str, last_seen: i64| InstanceBeat {
        id: id.into(),
        listen: "127.0.0.1:8080".into(),
        version: "1.0.0".into(),
        started_at: NOW - 100,
        last_seen,
    };
    assert!(s.instances().await.expect("list").is_empty());
    s.heartbeat(&beat("a", NOW - 50), 0).await.expect("first beat");
    s.heartbeat(&beat("b", NOW - 10), 0).await.expect("other instance");
    // A later beat moves last_seen (and takes the version an upgraded process reports).
    let mut later = beat("a", NOW);
    later.version = "1.1.0".into();
    s.heartbeat(&later, 0).await.expect("second beat");
    let list = s.instances().await.expect("list");
    assert_eq!(list, vec![later.clone(), beat("b", NOW - 10)], "most recently seen first");
    // Instances silent since before the cut-off are forgotten with the next beat.
    s.heartbeat(&beat("c", NOW), NOW - 5).await.expect("pruning beat");
    let ids: Vec<String> = s.instances().await.expect("list").into_iter().map(|b| b.id).collect();
    assert_eq!(ids, ["a", "c"]);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (s, _dir) = super::open_sqlite().await;
                    super::$name(s).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some((s, _db)) = super::open_postgres().await else { return };
                    super::$name(s).await;
                }
            )*
        }
    };
}

conformance!(
    users,
    username_conflicts_ignore_case,
    concurrent_inserts_of_one_name,
    sessions,
    session_roles_and_replacement,
    rotation_outcomes,
    rotation_bookkeeping,
    concurrent_rotation,
    concurrent_rotations_of_many_sessions,
    revocations,
    revocation_log,
    concurrent_revocations_are_read_in_commit_order,
    delete_user,
    purge,
    settings,
    audit_anchor,
    key_revocation,
    failure_records,
    concurrent_failure_record_swaps,
    ping_and_backend,
    addresses_are_unique_ignoring_case,
    one_time_tokens_are_single_use,
    outbox_claims_are_exclusive,
    mfa_factors_and_challenges,
    concurrent_mfa_uses,
    concurrent_mfa_enrolment,
    passkeys_and_ceremonies,
    concurrent_passkey_uses,
    oauth_clients_and_consent,
    concurrent_first_provider_keys,
    oauth_codes_redeem_once_and_replays_revoke,
    concurrent_code_redemptions,
    deleting_a_client_revokes_its_grants,
    device_codes_decide_and_redeem_once,
    concurrent_device_decisions_and_redemptions,
    console_search,
    instance_heartbeats,
);

#[test]
fn test_database_urls() {
    assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgres://u@h/test?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}
