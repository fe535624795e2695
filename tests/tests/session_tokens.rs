//! Session tokens over HTTP, on PostgreSQL and SQLite: issuing (`POST /v1/session-tokens`),
//! verifying (`x-relay-token` on the browser routes and in-process), expiry, tampering,
//! revocation (the revoke route, erasing the user), and the shared, vault-sealed signing key
//! (several nodes, first start races, `relay kek rotate`).

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use relay::auth::session::{signing_key_context, SessionClaims, SessionService, SIGNING_KEY_NAME};
use relay::keys::KeyService;
use relay::providers::ProviderId;
use relay::store::{DatabaseUrl, DynStore, TenantSettings};
use relay::upstream::{UpstreamTimeouts, Upstreams};
use relay::vault::{LocalKeyring, Vault};
use relay_tests::app::{assert_error, spawn_app, TestApp};
use relay_tests::{Backend, TestDb};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    issue_and_verify,
    input_is_checked,
    providers_scope_the_token,
    expired_tokens_are_refused,
    tampered_tokens_are_refused,
    revoke_route_revokes,
    erasing_the_user_revokes,
    signing_key_is_shared_and_survives_rotation,
    first_start_race_yields_one_key,
    debug_never_shows_key_or_token,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn vault(master_keys: &str) -> Vault {
    Vault::new(Arc::new(LocalKeyring::parse(&SecretString::from(master_keys.to_owned())).expect("keyring")))
}

/// A session service over the app's store and keyring: another node of the same deployment.
async fn node(app: &TestApp) -> SessionService {
    SessionService::load(app.store.clone(), &vault(&app.master_keys)).await.expect("load signing key")
}

/// Makes `label` an end user of the app's tenant (registration tokens create them).
async fn end_user(app: &TestApp, label: &str) {
    let res = app.create_registration_token(&json!({ "endUserLabel": label })).await;
    assert_eq!(res.status(), 201);
}

async fn issue(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/v1/session-tokens")).bearer_auth(&app.api_key).json(body).send().await.expect("request")
}

/// A session token for `label` (created first), asserted to be issued.
async fn token_for(app: &TestApp, label: &str) -> String {
    end_user(app, label).await;
    let res = issue(app, &json!({ "endUserLabel": label })).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned()
}

/// Turns the byok flow on so `GET /keys` can stand in for any session-authenticated call.
async fn enable_flow(app: &TestApp) {
    let settings = TenantSettings { byok_flow_enabled: true, ..Default::default() };
    assert!(app.store.update_tenant_settings(app.tenant_id, &settings).await.expect("store"));
}

async fn get_keys(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/keys"));
    if let Some(t) = token {
        req = req.header("x-relay-token", t);
    }
    req.send().await.expect("request")
}

/// Asserts a 401 with `code`, and that the body does not echo the token.
async fn assert_refused(app: &TestApp, token: &str, code: &str) {
    let res = get_keys(app, Some(token)).await;
    let body = assert_error(res, 401, code).await;
    assert!(!body.to_string().contains(token), "the token is not echoed");
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().expect("header")).expect("b64")).expect("json");
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().expect("claims")).expect("b64")).expect("json");
    (header, claims, it.next().expect("signature").to_owned())
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn issue_and_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    enable_flow(&app).await;
    end_user(&app, "ana@example.com").await;
    let res = issue(&app, &json!({ "endUserLabel": "ana@example.com" })).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["endUserLabel"], "ana@example.com");
    assert!(body["providers"].is_null(), "unrestricted by default");
    let token = body["sessionToken"].as_str().expect("token").to_owned();
    let expires: chrono::DateTime<chrono::Utc> =
        body["expiresAt"].as_str().expect("expiresAt").parse().expect("rfc3339");
    let ttl = expires - chrono::Utc::now();
    assert!(ttl > chrono::Duration::seconds(880) && ttl <= chrono::Duration::seconds(900), "default TTL is 900 s");

    // A JWT: HS256, Relay's claims.
    let user = app.end_user("ana@example.com").await;
    let (header, claims, _) = parts(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["iss"], "relay");
    assert_eq!(claims["tid"], app.tenant_id.to_string());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["gen"], 0);
    assert!(claims.get("prv").is_none());
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 900);
    assert_eq!(claims["exp"].as_i64(), Some(expires.timestamp()));
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(!token.contains("ana@"), "the label is not in the token");

    // Verified in-process by another node, and over HTTP.
    let (verified, who) = node(&app).await.verify(&token).await.expect("verifies");
    assert_eq!(who, user);
    assert_eq!(verified.sub, user.id);
    let res = get_keys(&app, Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({ "keys": [] }));

    // Two tokens for one user differ.
    let again = issue(&app, &json!({ "endUserLabel": "ana@example.com" })).await;
    let again = again.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    assert_ne!(again, token);
}

async fn input_is_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    end_user(&app, "u1").await;
    for ttl in [59, 86_401, 0, -5] {
        assert_error(issue(&app, &json!({"endUserLabel": "u1", "expiresIn": ttl})).await, 400, "invalid_expires_in")
            .await;
    }
    for (ttl, want) in [(60, 60), (86_400, 86_400)] {
        let res = issue(&app, &json!({"endUserLabel": "u1", "expiresIn": ttl})).await;
        assert_eq!(res.status(), 201, "expiresIn {ttl}");
        let token = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
        let (_, claims, _) = parts(&token);
        assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), want);
    }
    assert_error(issue(&app, &json!({"endUserLabel": "nobody"})).await, 404, "enduser_not_found").await;
    let body = assert_error(
        issue(&app, &json!({"endUserLabel": "u1", "providers": ["openai", "gpt"]})).await,
        400,
        "provider_unknown",
    )
    .await;
    assert_eq!(body["error"]["param"], "providers");
    assert_error(issue(&app, &json!({"endUserLabel": "u1", "providers": []})).await, 400, "invalid_providers").await;
    assert_error(issue(&app, &json!({"endUserLabel": ""})).await, 400, "invalid_end_user_label").await;
    assert_error(issue(&app, &json!({"endUserLabel": "u1", "extra": 1})).await, 400, "invalid_request_body").await;

    // Developer credentials only: no key, a session token as key, another tenant's key.
    let res = app.client.post(app.url("/v1/session-tokens")).json(&json!({"endUserLabel": "u1"})).send().await;
    assert_error(res.expect("request"), 401, "relay_key_missing").await;
    let token = token_for(&app, "u2").await;
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&token)
        .json(&json!({"endUserLabel": "u1"}))
        .send()
        .await;
    assert_error(res.expect("request"), 401, "relay_key_invalid").await;
    let (_, other_key) = app.other_tenant().await;
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&other_key)
        .json(&json!({"endUserLabel": "u1"}))
        .send()
        .await
        .expect("request");
    assert_error(res, 404, "enduser_not_found").await;
}

async fn providers_scope_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    end_user(&app, "u1").await;
    let res = issue(&app, &json!({"endUserLabel": "u1", "providers": ["anthropic", "openai", "anthropic"]})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["providers"], json!(["anthropic", "openai"]), "deduplicated, in order");
    let token = body["sessionToken"].as_str().expect("token");
    let (claims, _) = node(&app).await.verify(token).await.expect("verifies");
    assert_eq!(claims.prv, Some(vec!["anthropic".to_owned(), "openai".to_owned()]));
    assert!(claims.allows(ProviderId::OpenAi) && claims.allows(ProviderId::Anthropic));
    assert!(!claims.allows(ProviderId::Google));
}

async fn expired_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    enable_flow(&app).await;
    let token = token_for(&app, "u1").await;
    let sessions = node(&app).await;
    let (claims, _) = sessions.verify(&token).await.expect("fresh token verifies");

    // Correctly signed with the real key, expired half a minute ago.
    let expired = SessionClaims { iat: now() - 120, exp: now() - 30, ..claims.clone() };
    let expired = sessions.sign(&expired).expect("sign");
    assert_eq!(sessions.verify(expired.expose_secret()).await.expect_err("expired").code(), "session_token_expired");
    assert_refused(&app, expired.expose_secret(), "session_token_expired").await;

    // The shortest TTL the API issues is still valid when issued.
    let res = issue(&app, &json!({"endUserLabel": "u1", "expiresIn": 60})).await;
    let short = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    assert_eq!(get_keys(&app, Some(&short)).await.status(), 200);
}

async fn tampered_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    enable_flow(&app).await;
    let token = token_for(&app, "alice").await;
    let bob_token = token_for(&app, "bob").await;
    assert_eq!(get_keys(&app, Some(&token)).await.status(), 200, "the untouched token works");
    let (header, claims, sig) = parts(&token);
    let (_, bob_claims, _) = parts(&bob_token);

    // A flipped signature byte.
    let mut sig_bytes = URL_SAFE_NO_PAD.decode(&sig).expect("b64");
    sig_bytes[7] ^= 0x01;
    let flipped = format!("{}.{}.{}", b64(&header), b64(&claims), URL_SAFE_NO_PAD.encode(&sig_bytes));
    assert_refused(&app, &flipped, "session_token_invalid").await;

    // alg none, with or without the old signature.
    let none = json!({"alg": "none", "typ": "JWT"});
    assert_refused(&app, &format!("{}.{}.", b64(&none), b64(&claims)), "session_token_invalid").await;
    assert_refused(&app, &format!("{}.{}.{sig}", b64(&none), b64(&claims)), "session_token_invalid").await;
    // Another algorithm label over the same bytes.
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    assert_refused(&app, &format!("{}.{}.{sig}", b64(&hs512), b64(&claims)), "session_token_invalid").await;

    // Claims moved to another end user or tenant, signature kept.
    let mut as_bob = claims.clone();
    as_bob["sub"] = bob_claims["sub"].clone();
    assert_refused(&app, &format!("{}.{}.{sig}", b64(&header), b64(&as_bob)), "session_token_invalid").await;
    let (other_tenant, _) = app.other_tenant().await;
    let mut other = claims.clone();
    other["tid"] = json!(other_tenant.to_string());
    assert_refused(&app, &format!("{}.{}.{sig}", b64(&header), b64(&other)), "session_token_invalid").await;
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().expect("exp") + 86_400);
    assert_refused(&app, &format!("{}.{}.{sig}", b64(&header), b64(&longer)), "session_token_invalid").await;

    // Correctly signed, but not Relay's issuer, or issued in the future.
    let sessions = node(&app).await;
    let (real, _) = sessions.verify(&token).await.expect("verifies");
    let foreign = sessions.sign(&SessionClaims { iss: "someone-else".into(), ..real.clone() }).expect("sign");
    assert_refused(&app, foreign.expose_secret(), "session_token_invalid").await;
    let future = sessions.sign(&SessionClaims { iat: now() + 3600, exp: now() + 7200, ..real.clone() }).expect("sign");
    assert_refused(&app, future.expose_secret(), "session_token_invalid").await;

    // Another deployment's key.
    let elsewhere = spawn_app(backend).await;
    let foreign_token = token_for(&elsewhere, "alice").await;
    assert_refused(&app, &foreign_token, "session_token_invalid").await;

    // Not a JWT at all, or a developer key in the wrong header.
    for junk in ["abc", "a.b.c", "...", &format!("{token}x"), &app.api_key] {
        assert_refused(&app, junk, "session_token_invalid").await;
    }
    assert_error(get_keys(&app, None).await, 401, "session_token_missing").await;
    let res = app.client.get(app.url("/keys")).header("x-relay-token", "  ").send().await.expect("request");
    assert_error(res, 401, "session_token_missing").await;
    // A developer key does not open the browser routes either.
    let res = app.client.get(app.url("/keys")).bearer_auth(&app.api_key).send().await.expect("request");
    assert_error(res, 401, "session_token_missing").await;
}

async fn revoke_route_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    enable_flow(&app).await;
    let first = token_for(&app, "u1").await;
    let second = token_for(&app, "u1").await;
    let other = token_for(&app, "u2").await;
    let revoke = |label: &str, key: Option<&str>| {
        let mut req = app.client.post(app.url(&format!("/v1/users/{label}/sessions/revoke")));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    assert_error(revoke("u1", None).await.expect("request"), 401, "relay_key_missing").await;
    assert_eq!(get_keys(&app, Some(&first)).await.status(), 200, "not revoked without a key");

    let res = revoke("u1", Some(&app.api_key)).await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({"endUserLabel": "u1", "revoked": true}));
    assert_refused(&app, &first, "session_token_revoked").await;
    assert_refused(&app, &second, "session_token_revoked").await;
    assert_eq!(get_keys(&app, Some(&other)).await.status(), 200, "other users keep their tokens");
    assert_eq!(app.end_user("u1").await.token_generation, 1);

    // A token issued after the revocation works.
    let res = issue(&app, &json!({"endUserLabel": "u1"})).await;
    let fresh = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    assert_eq!(get_keys(&app, Some(&fresh)).await.status(), 200);
    assert_eq!(parts(&fresh).1["gen"], 1);

    assert_error(revoke("nobody", Some(&app.api_key)).await.expect("request"), 404, "enduser_not_found").await;
    let (_, other_key) = app.other_tenant().await;
    assert_error(revoke("u2", Some(&other_key)).await.expect("request"), 404, "enduser_not_found").await;
    assert_eq!(get_keys(&app, Some(&other)).await.status(), 200, "another tenant cannot revoke");
    let audit = app.store.list_audit(Some(app.tenant_id), 50).await.expect("audit");
    assert!(audit.iter().any(|e| e.action == "session.revoke"));
}

async fn erasing_the_user_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    enable_flow(&app).await;
    let token = token_for(&app, "gone@example.com").await;
    assert_eq!(get_keys(&app, Some(&token)).await.status(), 200);
    assert_eq!(app.delete_user("gone@example.com").await.status(), 200);
    assert_refused(&app, &token, "session_token_revoked").await;
    // A new user under the same label is someone else: the old token stays dead.
    end_user(&app, "gone@example.com").await;
    assert_refused(&app, &token, "session_token_revoked").await;
}

async fn signing_key_is_shared_and_survives_rotation(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = token_for(&app, "u1").await;
    let user = app.end_user("u1").await;

    // Another node (same store, same master keys) verifies it, and its tokens verify here.
    let other = node(&app).await;
    other.verify(&token).await.expect("another node verifies");
    let theirs = other.issue(&user, None, chrono::Duration::minutes(5)).expect("issue");
    enable_flow(&app).await;
    assert_eq!(get_keys(&app, Some(theirs.token.expose_secret())).await.status(), 200);

    // `relay kek rotate` (KeyService::rotate) re-wraps the signing key too.
    let row = app.store.get_session_signing_key(SIGNING_KEY_NAME).await.expect("store").expect("row");
    assert_eq!(row.sealed.kek_version, 1);
    let v2 = LocalKeyring::generate_entry(2).expose_secret().to_owned();
    let both = format!("{v2},{}", app.master_keys);
    let upstreams = Upstreams::new(&HashMap::new(), &UpstreamTimeouts::default()).expect("upstreams");
    let keys = KeyService::new(app.store.clone(), vault(&both), upstreams, false);
    let report = keys.rotate().await.expect("rotate");
    assert_eq!((report.rewrapped, report.failed), (0, 0), "no provider keys stored: {report:?}");
    assert_eq!((report.signing_keys_rewrapped, report.signing_keys_failed), (1, 0), "{report:?}");
    let rotated = app.store.get_session_signing_key(SIGNING_KEY_NAME).await.expect("store").expect("row");
    assert_eq!(rotated.id, row.id);
    assert_eq!(rotated.sealed.kek_version, 2);
    assert_eq!(rotated.sealed.ciphertext, row.sealed.ciphertext, "the key itself did not change");
    assert_eq!(keys.rotate().await.expect("rotate again").signing_keys_rewrapped, 0, "nothing left to do");

    // A node that only has v2 now opens it, and old tokens stay valid.
    let v2_only = SessionService::load(app.store.clone(), &vault(&v2)).await.expect("opens under v2 alone");
    v2_only.verify(&token).await.expect("token issued before rotation");
    // A node without the right master key refuses to start rather than minting a new key.
    let stranger = LocalKeyring::generate_entry(3).expose_secret().to_owned();
    let err = SessionService::load(app.store.clone(), &vault(&stranger)).await.expect_err("wrong master key");
    assert!(format!("{err:#}").contains("master key"), "{err:#}");
}

async fn first_start_race_yields_one_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store: DynStore = relay::store::connect(&DatabaseUrl::parse(&db.url).expect("url")).await.expect("open");
    store.migrate().await.expect("migrate");
    let master = LocalKeyring::generate_entry(1).expose_secret().to_owned();
    let (tenant, _) = relay::tenants::create_tenant(&store, "Race", "test").await.expect("tenant");
    let user = store.upsert_end_user(tenant.id, "u", chrono::Utc::now()).await.expect("user");

    let nodes = futures::future::join_all((0..4).map(|_| {
        let store = store.clone();
        let vault = vault(&master);
        async move { SessionService::load(store, &vault).await }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .expect("every node starts");
    for a in &nodes {
        let issued = a.issue(&user, None, chrono::Duration::minutes(1)).expect("issue");
        for b in &nodes {
            b.verify(issued.token.expose_secret()).await.expect("every node verifies every other node's token");
        }
    }
    let row = store.get_session_signing_key(SIGNING_KEY_NAME).await.expect("store").expect("one row");
    assert_eq!(store.session_signing_keys_not_on_version(0).await.expect("store").len(), 1, "exactly one key");
    vault(&master).open(&signing_key_context(row.id), &row.sealed).await.expect("sealed under the master key");
    drop(nodes);
    drop(store);
    drop(db);
}

async fn debug_never_shows_key_or_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let sessions = node(&app).await;
    let row = app.store.get_session_signing_key(SIGNING_KEY_NAME).await.expect("store").expect("row");
    let key = vault(&app.master_keys).open(&signing_key_context(row.id), &row.sealed).await.expect("opens");
    let key = key.expose_secret().to_owned();
    let raw_key = URL_SAFE_NO_PAD.decode(&key).expect("base64 key");
    assert_eq!(raw_key.len(), 32, "a 256-bit key");

    end_user(&app, "u1").await;
    let issued = sessions.issue(&app.end_user("u1").await, None, chrono::Duration::minutes(5)).expect("issue");
    let token = issued.token.expose_secret().to_owned();
    let printed = format!("{sessions:?} {issued:?} {:?}", issued.token);
    assert!(!printed.contains(&key), "{printed}");
    assert!(!printed.contains(&token), "{printed}");
    assert!(!printed.contains(token.split('.').nth(2).expect("signature")), "{printed}");
    assert!(printed.contains("[REDACTED]"));

    // Nor is the key anywhere in what the database holds in plain form.
    let dump = app.db.dump().await;
    assert!(!dump.windows(key.len()).any(|w| w == key.as_bytes()), "the signing key is stored sealed");
    assert!(!dump.windows(raw_key.len()).any(|w| w == raw_key.as_slice()), "the signing key is stored sealed");
    // PostgreSQL's dump renders bytea as hex.
    let hex: String = raw_key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.windows(hex.len()).any(|w| w == hex.as_bytes()), "the signing key is stored sealed");
}
