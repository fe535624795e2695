//! The byok-relay browser flow and CORS, on PostgreSQL and SQLite, driven like a browser would:
//! explicit `Origin` headers and `OPTIONS` preflights. Registration with an app id (off by
//! default, rate-limited per client IP), storing / listing / deleting one's own keys with the
//! session token, per-tenant origins on preflights and actual requests, and `relay tenant update`.

use relay::store::TenantSettings;
use relay_tests::app::{assert_error, spawn_app, spawn_app_with, SpawnOptions, TestApp};
use relay_tests::process::run_cli;
use relay_tests::{fake_keys, Backend};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    whole_flow_from_a_browser,
    keys_are_checked_like_connect,
    flow_is_off_by_default,
    users_only_see_their_own_keys,
    provider_scoped_tokens,
    registrations_are_rate_limited,
    trusted_proxy_names_the_client,
    cors_allows_only_the_tenants_origins,
    connect_routes_check_the_origin,
    cli_tenant_update,
);

const ORIGIN: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example.net";

// ---------------------------------------------------------------------------------------------
// Helpers

async fn configure(app: &TestApp, tenant: uuid::Uuid, flow: bool, origins: &[&str]) {
    let settings = TenantSettings {
        byok_flow_enabled: flow,
        allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..Default::default()
    };
    assert!(app.store.update_tenant_settings(tenant, &settings).await.expect("store"));
}

async fn app_id(app: &TestApp, tenant: uuid::Uuid) -> String {
    app.store.get_tenant(tenant).await.expect("store").expect("tenant").app_id
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("request")
}

async fn register(app: &TestApp, app_id: &str, origin: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/users")).json(&json!({ "app_id": app_id }));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("request")
}

/// Registers an anonymous user from ORIGIN and returns the session token.
async fn new_user(app: &TestApp, app_id: &str) -> String {
    let res = register(app, app_id, Some(ORIGIN)).await;
    assert_eq!(res.status(), 201, "register");
    res.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

async fn store_key(app: &TestApp, token: &str, provider: &str, key: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/keys/{provider}")))
        .header("origin", ORIGIN)
        .header("x-relay-token", token)
        .json(&json!({ "key": key }))
        .send()
        .await
        .expect("request")
}

async fn list_keys(app: &TestApp, token: &str, origin: &str) -> reqwest::Response {
    app.client
        .get(app.url("/keys"))
        .header("origin", origin)
        .header("x-relay-token", token)
        .send()
        .await
        .expect("request")
}

async fn delete_key(app: &TestApp, token: &str, provider: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/keys/{provider}")))
        .header("origin", ORIGIN)
        .header("x-relay-token", token)
        .send()
        .await
        .expect("request")
}

/// The providers `GET /keys` lists for this token.
async fn providers(app: &TestApp, token: &str) -> Vec<String> {
    let res = list_keys(app, token, ORIGIN).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.expect("json");
    v["keys"].as_array().expect("keys").iter().map(|k| k["provider"].as_str().expect("provider").to_owned()).collect()
}

fn keys_service(app: &TestApp) -> relay::keys::KeyService {
    let vault = relay::vault::Vault::new(std::sync::Arc::new(
        relay::vault::LocalKeyring::parse(&secrecy::SecretString::from(app.master_keys.clone())).expect("keyring"),
    ));
    let upstreams = relay::upstream::Upstreams::new(&Default::default(), &Default::default()).expect("upstreams");
    relay::keys::KeyService::new(app.store.clone(), vault, upstreams, false)
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn whole_flow_from_a_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    configure(&app, app.tenant_id, true, &[ORIGIN, "http://localhost:5173"]).await;
    let id = app_id(&app, app.tenant_id).await;
    let mut seen = String::new();

    // Preflight for the registration, then the registration.
    let res = preflight(&app, "/users", ORIGIN, "POST", "content-type").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    let allowed = header(&res, "access-control-allow-headers").expect("allow-headers").to_lowercase();
    for h in [
        "content-type",
        "x-relay-token",
        "authorization",
        "x-relay-user",
        "anthropic-version",
        "anthropic-beta",
        "openai-organization",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(header(&res, "access-control-allow-methods").expect("methods").contains("POST"));
    assert!(header(&res, "access-control-allow-credentials").is_none(), "no cookies involved");
    assert!(header(&res, "x-relay-request-id").is_some(), "preflights get a request id too");

    let res = register(&app, &id, Some(ORIGIN)).await;
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    let exposed = header(&res, "access-control-expose-headers").expect("expose").to_lowercase();
    assert!(exposed.contains("x-relay-request-id") && exposed.contains("x-request-id"), "{exposed}");
    assert!(header(&res, "vary").is_some_and(|v| v.to_lowercase().contains("origin")));
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
    let body: Value = res.json().await.expect("json");
    let token = body["token"].as_str().expect("token").to_owned();
    let expires: chrono::DateTime<chrono::Utc> = body["expiresAt"].as_str().expect("expiresAt").parse().expect("time");
    assert!(expires - chrono::Utc::now() > chrono::Duration::hours(23), "anonymous tokens last 24 h");

    // Preflight for the key calls, with the session header.
    for (path, method) in [("/keys/openai", "POST"), ("/keys", "GET"), ("/keys/openai", "DELETE")] {
        let res = preflight(&app, path, ORIGIN, method, "content-type,x-relay-token").await;
        assert_eq!(res.status(), 200, "{method} {path}");
        assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    }

    let key = fake_keys::for_provider("openai");
    app.mock.accept(&key);
    let res = store_key(&app, &token, "openai", &format!(" {key}\n")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    let text = res.text().await.expect("body");
    seen.push_str(&text);
    let stored: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(stored["provider"], "openai");
    assert_eq!(stored["fingerprint"], format!("sk-proj-…{}", &key[key.len() - 4..]));
    let check = app.mock.requests().last().cloned().expect("the provider was asked");
    assert_eq!(check.header("authorization"), Some(format!("Bearer {key}").as_str()), "live check like connect");

    let res = list_keys(&app, &token, ORIGIN).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    seen.push_str(&text);
    let listed: Value = serde_json::from_str(&text).expect("json");
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["provider"], "openai");
    assert_eq!(keys[0]["fingerprint"], stored["fingerprint"]);
    assert!(keys[0]["createdAt"].is_string() && keys[0]["lastUsedAt"].is_null());

    // The anonymous user is a normal end user of the tenant, and the key opens to what was sent.
    let (claims, user) = relay::auth::session::SessionService::load(app.store.clone(), keys_service(&app).vault())
        .await
        .expect("load")
        .verify(&token)
        .await
        .expect("verifies");
    assert_eq!(claims.tid, app.tenant_id);
    assert!(user.label.starts_with("anon_") && user.label.len() == 29, "{}", user.label);
    let (_, opened) = keys_service(&app).open(&user, relay::providers::ProviderId::OpenAi).await.expect("open");
    assert_eq!(opened.expose_secret(), key);
    // The developer sees the user like any other.
    let res = app.get_user(&user.label).await;
    assert_eq!(res.status(), 200);
    seen.push_str(&res.text().await.expect("body"));

    let res = delete_key(&app, &token, "openai").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    seen.push_str(&text);
    assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), json!({"provider": "openai", "deleted": true}));
    assert_eq!(providers(&app, &token).await, Vec::<String>::new());
    assert_error(delete_key(&app, &token, "openai").await, 404, "enduser_key_missing").await;

    let row =
        app.store.get_session_signing_key(relay::auth::session::SIGNING_KEY_NAME).await.expect("store").expect("row");
    let ctx = relay::auth::session::signing_key_context(row.id);
    let signing_key = keys_service(&app).vault().open(&ctx, &row.sealed).await.expect("opens");
    assert!(!seen.contains(signing_key.expose_secret()), "the signing key is in no response");
    assert!(!seen.contains(&key), "no provider key in any response");
    assert!(!seen.contains(&token), "the session token is shown once, at registration");
    let audit = app.store.list_audit(Some(app.tenant_id), 50).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for a in ["end_user.register", "provider_key.connect", "provider_key.delete"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

async fn keys_are_checked_like_connect(backend: Backend) {
    let app = spawn_app(backend).await;
    configure(&app, app.tenant_id, true, &[ORIGIN]).await;
    let token = new_user(&app, &app_id(&app, app.tenant_id).await).await;

    let rejected = fake_keys::for_provider("anthropic");
    let body = assert_error(store_key(&app, &token, "anthropic", &rejected).await, 400, "provider_key_rejected").await;
    assert_eq!(body["error"]["param"], "key");
    assert!(!body.to_string().contains(&rejected));
    let body = assert_error(store_key(&app, &token, "openai", "not-a-key").await, 400, "provider_key_malformed").await;
    assert_eq!(body["error"]["param"], "key");
    assert_error(store_key(&app, &token, "gpt", "x").await, 400, "provider_unknown").await;
    app.mock.fail_with(Some(503));
    let key = fake_keys::for_provider("groq");
    app.mock.accept(&key);
    assert_error(store_key(&app, &token, "groq", &key).await, 502, "provider_unavailable").await;
    app.mock.fail_with(None);
    assert_eq!(providers(&app, &token).await, Vec::<String>::new(), "nothing was stored");

    // Bodies are strict.
    let res = app
        .client
        .post(app.url("/keys/groq"))
        .header("x-relay-token", &token)
        .json(&json!({"key": key, "extra": true}))
        .send()
        .await
        .expect("request");
    assert_error(res, 400, "invalid_request_body").await;

    // A second key for the same provider replaces the first.
    assert_eq!(store_key(&app, &token, "groq", &key).await.status(), 200);
    let newer = fake_keys::for_provider("groq");
    app.mock.accept(&newer);
    let res = store_key(&app, &token, "groq", &newer).await;
    let fp = res.json::<Value>().await.expect("json")["fingerprint"].clone();
    let listed: Value = list_keys(&app, &token, ORIGIN).await.json().await.expect("json");
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["keys"][0]["fingerprint"], fp);
}

async fn flow_is_off_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app_id(&app, app.tenant_id).await;
    assert!(id.starts_with("app_") && id.len() == 28, "{id}");
    assert_error(register(&app, &id, None).await, 403, "byok_flow_disabled").await;
    assert_error(register(&app, "app_doesnotexist00000000000", None).await, 404, "app_not_found").await;
    // Ids no app can have (a NUL byte, which PostgreSQL refuses in text; another alphabet) are
    // unknown apps too, never a server error.
    for bad in ["app_a\u{0}b", "app_a-b", "", "app_"] {
        assert_error(register(&app, bad, None).await, 404, "app_not_found").await;
    }
    let res = app.client.post(app.url("/users")).json(&json!({"appId": id})).send().await.expect("request");
    assert_error(res, 400, "invalid_request_body").await;

    // A developer-issued session token cannot use the key routes while the flow is off.
    app.create_registration_token(&json!({"endUserLabel": "dev-user"})).await;
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .json(&json!({"endUserLabel": "dev-user"}))
        .send()
        .await
        .expect("request");
    let token = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    let res = app.client.get(app.url("/keys")).header("x-relay-token", &token).send().await.expect("request");
    assert_error(res, 403, "byok_flow_disabled").await;
    let key = fake_keys::for_provider("openai");
    app.mock.accept(&key);
    let res = app
        .client
        .post(app.url("/keys/openai"))
        .header("x-relay-token", &token)
        .json(&json!({"key": key}))
        .send()
        .await
        .expect("request");
    assert_error(res, 403, "byok_flow_disabled").await;

    // Turned on, then off again: registration follows.
    configure(&app, app.tenant_id, true, &[]).await;
    assert_eq!(register(&app, &id, None).await.status(), 201);
    configure(&app, app.tenant_id, false, &[]).await;
    assert_error(register(&app, &id, None).await, 403, "byok_flow_disabled").await;
}

async fn users_only_see_their_own_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    configure(&app, app.tenant_id, true, &[ORIGIN]).await;
    let id = app_id(&app, app.tenant_id).await;
    let a = new_user(&app, &id).await;
    let b = new_user(&app, &id).await;
    let key_a = fake_keys::for_provider("openai");
    let key_b = fake_keys::for_provider("anthropic");
    let key_b2 = fake_keys::for_provider("openai");
    for k in [&key_a, &key_b, &key_b2] {
        app.mock.accept(k);
    }
    assert_eq!(store_key(&app, &a, "openai", &key_a).await.status(), 200);
    assert_eq!(store_key(&app, &b, "anthropic", &key_b).await.status(), 200);
    assert_eq!(store_key(&app, &b, "openai", &key_b2).await.status(), 200);

    assert_eq!(providers(&app, &a).await, vec!["openai"]);
    assert_eq!(providers(&app, &b).await, vec!["anthropic", "openai"]);
    let listed = list_keys(&app, &a, ORIGIN).await.text().await.expect("body");
    assert!(listed.contains(&format!("…{}", &key_a[key_a.len() - 4..])), "A sees A's fingerprint");
    assert!(!listed.contains(&format!("…{}", &key_b2[key_b2.len() - 4..])), "A does not see B's");

    // A cannot delete B's keys: only A's own are addressed.
    assert_error(delete_key(&app, &a, "anthropic").await, 404, "enduser_key_missing").await;
    assert_eq!(delete_key(&app, &a, "openai").await.status(), 200);
    assert_eq!(providers(&app, &b).await, vec!["anthropic", "openai"], "B's keys are untouched");
    assert_eq!(providers(&app, &a).await, Vec::<String>::new());
}

async fn provider_scoped_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    configure(&app, app.tenant_id, true, &[ORIGIN]).await;
    app.create_registration_token(&json!({"endUserLabel": "scoped"})).await;
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .json(&json!({"endUserLabel": "scoped", "providers": ["anthropic"]}))
        .send()
        .await
        .expect("request");
    let token = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    let openai = fake_keys::for_provider("openai");
    let anthropic = fake_keys::for_provider("anthropic");
    app.mock.accept(&openai);
    app.mock.accept(&anthropic);
    let asked = app.mock.requests().len();
    assert_error(store_key(&app, &token, "openai", &openai).await, 403, "provider_not_allowed").await;
    assert_eq!(app.mock.requests().len(), asked, "refused before the key was checked upstream");
    assert_eq!(store_key(&app, &token, "anthropic", &anthropic).await.status(), 200);
    assert_error(delete_key(&app, &token, "openai").await, 403, "provider_not_allowed").await;
    assert_eq!(providers(&app, &token).await, vec!["anthropic"]);
}

async fn registrations_are_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    configure(&app, app.tenant_id, true, &[ORIGIN]).await;
    let id = app_id(&app, app.tenant_id).await;
    // The default: 10 a minute per client, as a burst. Unknown app ids count too.
    assert_error(register(&app, "app_unknown", Some(ORIGIN)).await, 404, "app_not_found").await;
    for i in 0..9 {
        assert_eq!(register(&app, &id, Some(ORIGIN)).await.status(), 201, "registration {i}");
    }
    let res = register(&app, &id, Some(ORIGIN)).await;
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN), "the page can read the 429");
    assert_error(res, 429, "rate_limit_exceeded").await;
    // X-Forwarded-For from an untrusted peer changes nothing.
    let res = app
        .client
        .post(app.url("/users"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"app_id": id}))
        .send()
        .await
        .expect("request");
    assert_error(res, 429, "rate_limit_exceeded").await;
}

async fn trusted_proxy_names_the_client(backend: Backend) {
    let browser = relay::browser::BrowserConfig {
        trusted_proxies: relay::browser::parse_trusted_proxies("127.0.0.1/32, ::1").expect("parses"),
    };
    let limits =
        relay::ratelimit::Limits { registration: "2/min".parse().expect("limit"), ..relay_tests::app::test_limits() };
    let app = spawn_app_with(backend, SpawnOptions { browser, limits, ..SpawnOptions::default() }).await;
    configure(&app, app.tenant_id, true, &[]).await;
    let id = app_id(&app, app.tenant_id).await;
    let from = |xff: &'static str| {
        app.client.post(app.url("/users")).header("x-forwarded-for", xff).json(&json!({"app_id": id})).send()
    };
    // The rightmost hop that is not a trusted proxy is the client.
    assert_eq!(from("198.51.100.7").await.expect("request").status(), 201);
    assert_eq!(from("10.9.9.9, 198.51.100.7, 127.0.0.1").await.expect("request").status(), 201);
    assert_error(from("198.51.100.7").await.expect("request"), 429, "rate_limit_exceeded").await;
    // A client cannot escape by prepending its own hops.
    assert_error(from("1.2.3.4, 198.51.100.7").await.expect("request"), 429, "rate_limit_exceeded").await;
    // Another client has its own allowance.
    assert_eq!(from("198.51.100.8").await.expect("request").status(), 201);
}

async fn cors_allows_only_the_tenants_origins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (other, other_key) = app.other_tenant().await;
    const OTHER_ORIGIN: &str = "https://other.example.org";
    configure(&app, app.tenant_id, true, &[ORIGIN]).await;
    configure(&app, other, true, &[OTHER_ORIGIN]).await;
    let id = app_id(&app, app.tenant_id).await;

    // An origin no tenant allows: preflight and actual request refused, no CORS headers.
    let res = preflight(&app, "/users", FOREIGN, "POST", "content-type").await;
    assert!(header(&res, "access-control-allow-origin").is_none());
    assert_error(res, 403, "origin_not_allowed").await;
    let res = register(&app, &id, Some(FOREIGN)).await;
    assert!(header(&res, "access-control-allow-origin").is_none());
    assert_error(res, 403, "origin_not_allowed").await;
    let res = preflight(&app, "/relay/openai/v1/models", FOREIGN, "GET", "x-relay-token").await;
    assert_error(res, 403, "origin_not_allowed").await;
    assert_eq!(
        app.store
            .list_audit(Some(app.tenant_id), 50)
            .await
            .expect("audit")
            .iter()
            .filter(|e| e.action == "end_user.register")
            .count(),
        0
    );

    // Another tenant's origin: the preflight passes (it carries no credentials), the actual
    // request for this tenant does not.
    let res = preflight(&app, "/users", OTHER_ORIGIN, "POST", "content-type").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(OTHER_ORIGIN));
    assert_error(register(&app, &id, Some(OTHER_ORIGIN)).await, 403, "origin_not_allowed").await;
    let token = new_user(&app, &id).await;
    assert_error(list_keys(&app, &token, OTHER_ORIGIN).await, 403, "origin_not_allowed").await;
    assert_error(list_keys(&app, &token, FOREIGN).await, 403, "origin_not_allowed").await;
    assert_eq!(list_keys(&app, &token, ORIGIN).await.status(), 200);
    // Without Origin (a server, curl) CORS does not apply.
    let res = app.client.get(app.url("/keys")).header("x-relay-token", &token).send().await.expect("request");
    assert_eq!(res.status(), 200);
    assert!(header(&res, "access-control-allow-origin").is_none());

    // Preflights only for what the flow sends.
    let res = preflight(&app, "/keys", ORIGIN, "GET", "x-relay-token,x-not-allowed").await;
    assert!(!res.status().is_success());
    assert!(header(&res, "access-control-allow-origin").is_none());
    let res = preflight(
        &app,
        "/relay/anthropic/v1/messages",
        ORIGIN,
        "POST",
        "content-type,x-relay-token,anthropic-version,anthropic-beta",
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = preflight(
        &app,
        "/relay/openai/v1/chat/completions",
        ORIGIN,
        "POST",
        "authorization,x-relay-user,openai-organization",
    )
    .await;
    assert_eq!(res.status(), 200);

    // Developer routes are not for browsers: no preflight, no CORS headers, but a server that
    // happens to send Origin still works.
    let res = preflight(&app, "/v1/users/x", ORIGIN, "GET", "authorization").await;
    assert_error(res, 403, "origin_not_allowed").await;
    let res = preflight(&app, "/v1/session-tokens", ORIGIN, "POST", "authorization,content-type").await;
    assert_error(res, 403, "origin_not_allowed").await;
    app.create_registration_token(&json!({"endUserLabel": "dev"})).await;
    let res = app
        .client
        .get(app.url("/v1/users/dev"))
        .bearer_auth(&app.api_key)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert!(header(&res, "access-control-allow-origin").is_none());
    let res = app
        .client
        .get(app.url("/v1/users/dev"))
        .bearer_auth(&other_key)
        .header("origin", FOREIGN)
        .send()
        .await
        .expect("request");
    assert_error(res, 404, "enduser_not_found").await;
    // Origins match exactly: scheme, host and port.
    for near in ["http://app.example.com", "https://app.example.com:8443", "https://app.example.com.evil.net", "null"] {
        let res = preflight(&app, "/users", near, "POST", "content-type").await;
        assert_error(res, 403, "origin_not_allowed").await;
    }
}

async fn connect_routes_check_the_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let (other, _) = app.other_tenant().await;
    const OTHER_ORIGIN: &str = "https://other.example.org";
    configure(&app, app.tenant_id, false, &[ORIGIN]).await;
    configure(&app, other, false, &[OTHER_ORIGIN]).await;
    let token = app.registration_token("widget-user", None).await;
    let key = fake_keys::for_provider("mistral");
    app.mock.accept(&key);
    let connect = |origin: &'static str| {
        app.client
            .post(app.url("/v1/connect"))
            .header("origin", origin)
            .json(&json!({"registrationToken": token, "provider": "mistral", "apiKey": key}))
            .send()
    };
    let describe =
        |origin: &'static str| app.client.get(app.url(&format!("/v1/connect/{token}"))).header("origin", origin).send();

    // The widget's origin is checked against the token's tenant, whatever the flow setting.
    let res = preflight(&app, "/v1/connect", ORIGIN, "POST", "content-type").await;
    assert_eq!(res.status(), 200);
    assert_error(describe(OTHER_ORIGIN).await.expect("request"), 403, "origin_not_allowed").await;
    assert_error(describe(FOREIGN).await.expect("request"), 403, "origin_not_allowed").await;
    assert_error(connect(OTHER_ORIGIN).await.expect("request"), 403, "origin_not_allowed").await;
    let res = describe(ORIGIN).await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    let res = connect(ORIGIN).await.expect("request");
    assert_eq!(res.status(), 200, "the refused attempts left the token usable");
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert!(!res.text().await.expect("body").contains(&key));
}

async fn cli_tenant_update(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant_id.to_string();
    let env = [("DATABASE_URL", app.db.url.as_str()), ("RELAY_MASTER_KEYS", app.master_keys.as_str())];
    let cli = |args: &[&str]| run_cli(args, &env, None);

    let (status, out, err) = cli(&[
        "tenant",
        "update",
        "--id",
        &tenant,
        "--allowed-origin",
        "https://b.example.com",
        "--allowed-origin",
        "HTTPS://A.Example.com:443",
        "--byok-flow",
        "on",
        "--json",
    ]);
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["appId"], app_id(&app, app.tenant_id).await);
    assert_eq!(v["byokFlow"], true);
    assert_eq!(v["allowedOrigins"], json!(["https://a.example.com", "https://b.example.com"]), "normalised, sorted");
    let settings = app.store.get_tenant_settings(app.tenant_id).await.expect("store").expect("tenant");
    assert!(settings.byok_flow_enabled);
    assert_eq!(settings.allowed_origins, vec!["https://a.example.com", "https://b.example.com"]);

    // Text output names the app id; no flags only prints.
    let (status, out, err) = cli(&["tenant", "update", "--id", &tenant]);
    assert!(status.success(), "{err}");
    assert!(out.contains(&app_id(&app, app.tenant_id).await) && out.contains("byok flow:       on"), "{out}");

    // Bad origins are refused and change nothing.
    for bad in ["https://a.example.com/app", "a.example.com", "ftp://a.example.com", "https://a.example.com/"] {
        let (status, _, err) = cli(&["tenant", "update", "--id", &tenant, "--allowed-origin", bad]);
        assert!(!status.success(), "{bad} accepted");
        assert!(err.contains("--allowed-origin"), "{err}");
    }
    let (status, _, _) = cli(&["tenant", "update", "--id", &tenant, "--byok-flow", "maybe"]);
    assert!(!status.success());
    let (status, _, _) = cli(&["tenant", "update", "--id", &uuid::Uuid::new_v4().to_string(), "--byok-flow", "on"]);
    assert!(!status.success(), "unknown tenant");
    assert_eq!(app.store.get_tenant_settings(app.tenant_id).await.expect("store"), Some(settings));

    let (status, out, err) =
        cli(&["tenant", "update", "--id", &tenant, "--clear-allowed-origins", "--byok-flow", "off", "--json"]);
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!((v["byokFlow"].clone(), v["allowedOrigins"].clone()), (json!(false), json!([])));

    // `tenant create` prints the app id too.
    let (status, out, err) = cli(&["tenant", "create", "--name", "Browser App", "--json"]);
    assert!(status.success(), "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let app_id = created["appId"].as_str().expect("appId");
    let id: uuid::Uuid = created["tenantId"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(app.store.find_tenant_by_app_id(app_id).await.expect("store").map(|t| t.id), Some(id));
}
