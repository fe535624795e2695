//! The widget and the hosted connect page: their headers over HTTP, and the whole thing in
//! Debian's headless Chromium (tests/browser/widget.test.mjs, playwright-core). Relay serves on
//! `localhost`; the host pages on `127.0.0.1` (an allowed origin) and on another port (not
//! allowed), so the widget really is cross-origin. After the browser connected a key, that key
//! serves a chat completion through the mock upstream.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use relay::auth::tokens::generate_registration_token;
use relay::store::{NewRegistrationToken, TenantSettings};
use relay_tests::app::{assert_error, spawn_app, TestApp};
use relay_tests::mock::Reply;
use relay_tests::{fake_keys, fixtures, Backend};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Digest;

#[path = "widget_browser/own_cap.rs"]
mod own_cap;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The host pages: tests/browser/host/*, with `{{RELAY_URL}}` filled in.
struct HostServer {
    allowed: String,
    other: String,
    handle: actix_web::dev::ServerHandle,
}

async fn host_file(req: HttpRequest, relay_url: web::Data<String>) -> HttpResponse {
    let name = match req.path() {
        "/" => "host.html",
        p => p.trim_start_matches('/'),
    };
    let allowed = ["host.html", "hostile.html", "callback.html", "host.css", "hostile.css", "hostile.js", "harness.js"];
    if !allowed.contains(&name) {
        return HttpResponse::NotFound().finish();
    }
    let text = std::fs::read_to_string(browser_dir().join("host").join(name)).expect("host file");
    let content_type = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/javascript; charset=utf-8",
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-store"))
        .body(text.replace("{{RELAY_URL}}", relay_url.as_str()))
}

impl HostServer {
    async fn start(relay_url: &str) -> Self {
        let allowed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind host");
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind other host");
        let urls = (
            format!("http://127.0.0.1:{}", allowed.local_addr().expect("addr").port()),
            format!("http://127.0.0.1:{}", other.local_addr().expect("addr").port()),
        );
        let relay_url = web::Data::new(relay_url.to_owned());
        let server =
            HttpServer::new(move || App::new().app_data(relay_url.clone()).default_service(web::to(host_file)))
                .workers(1)
                .disable_signals()
                .listen(allowed)
                .expect("listen")
                .listen(other)
                .expect("listen")
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { allowed: urls.0, other: urls.1, handle }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn allow_origins(app: &TestApp, origins: &[&str]) -> String {
    let settings =
        TenantSettings { allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(), ..Default::default() };
    assert!(app.store.update_tenant_settings(app.tenant_id, &settings).await.expect("settings"));
    app.store.get_tenant(app.tenant_id).await.expect("store").expect("tenant").app_id
}

/// A token for `label` that expired five minutes ago.
async fn expired_token(app: &TestApp, label: &str) -> String {
    let user = app.store.upsert_end_user(app.tenant_id, label, chrono::Utc::now()).await.expect("user");
    let (token, hash) = generate_registration_token();
    let now = chrono::Utc::now();
    app.store
        .insert_registration_token(&NewRegistrationToken {
            id: uuid::Uuid::new_v4(),
            tenant_id: app.tenant_id,
            end_user_id: user.id,
            token_hash: hash.0,
            provider: None,
            created_at: now - chrono::Duration::minutes(20),
            expires_at: now - chrono::Duration::minutes(5),
        })
        .await
        .expect("insert");
    token.expose_secret().to_owned()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("{name} header missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_in_headless_chromium() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (scripts/test does: apt-get install -y chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser (scripts/test does)"
    );
    let app = spawn_app(Backend::Sqlite).await;
    // Relay on `localhost`, the host pages on 127.0.0.1: two sites, so the frame is cross-origin
    // (and out of process) exactly as on a real tenant's page.
    let relay_url = app.address.replace("127.0.0.1", "localhost");
    let host = HostServer::start(&relay_url).await;
    let app_id = allow_origins(&app, &[&host.allowed]).await;

    let anthropic_key = fake_keys::for_provider("anthropic");
    let openai_key = fake_keys::for_provider("openai");
    app.mock.accept(&anthropic_key);
    app.mock.accept(&openai_key);
    let rejected_key = fake_keys::for_provider("openai");
    let used_token = app.registration_token("used-user", None).await;
    let groq_key = fake_keys::for_provider("groq");
    app.mock.accept(&groq_key);
    // A self-hosted, OpenAI-compatible server: the mock, on a loopback address the test's SSRF
    // policy allow-lists (as an operator would a LAN server).
    let compatible_key = "local-server-key-7f3e";
    app.mock.accept(compatible_key);
    let compatible_base = format!("{}/v1", app.mock.url);
    assert_eq!(app.connect(&used_token, "groq", &groq_key).await.status(), 200);
    let expired = expired_token(&app, "expired-user").await;
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts").join("widget");

    let mut node = tokio::process::Command::new("node");
    node.arg("widget.test.mjs")
        .current_dir(browser_dir())
        .env("RELAY_URL", &relay_url)
        .env("RELAY_DIRECT_URL", &app.address)
        .env("HOST_URL", &host.allowed)
        .env("OTHER_HOST_URL", &host.other)
        .env("RELAY_API_KEY", &app.api_key)
        .env("APP_ID", &app_id)
        .env("FLOW_USER", "flow-user")
        .env("CAP_USER", own_cap::CAP_USER)
        .env("ANTHROPIC_KEY", &anthropic_key)
        .env("COMPATIBLE_KEY", compatible_key)
        .env("COMPATIBLE_BASE_URL", &compatible_base)
        .env("OPENAI_KEY", &openai_key)
        .env("REJECTED_KEY", &rejected_key)
        .env("USED_TOKEN", &used_token)
        .env("EXPIRED_TOKEN", &expired)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(300), node.output()).await;
    let out = run.expect("the browser test finishes within 5 minutes").expect("start node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed ({}):\n{stdout}\n{stderr}", out.status);
    eprintln!("{stdout}");

    // The key the browser typed is the one stored: it serves a chat completion upstream.
    let upstream = fixtures::read_json(&fixtures::fixtures_dir("anthropic").join("text/upstream_response.json"));
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: upstream["body"].clone() });
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "flow-user")
        .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Say hello in French."}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "Bonjour !");
    let seen = app.mock.last_post();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(anthropic_key.as_str()), "the pasted key went upstream");

    // The key connected through /connect was stored too, for its user.
    let user: Value = app.get_user("native-user").await.json().await.expect("json");
    assert_eq!(user["providers"][0]["provider"], "openai");
    let rejected: Value = app.get_user("rejected-user").await.json().await.expect("json");
    assert_eq!(rejected["providers"], json!([]), "a rejected key is not stored");

    own_cap::the_cap_set_in_the_browser_holds(&app, &anthropic_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_script_is_versioned_and_cached() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.client.get(app.url("/widget.js")).send().await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&res, "cache-control"), "public, max-age=300");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "access-control-allow-origin"), "*");
    let etag = header(&res, "etag").to_owned();
    let version = header(&res, "x-relay-widget-version").to_owned();
    let integrity = header(&res, "x-relay-widget-integrity").to_owned();
    assert_eq!(etag, format!("\"{version}\""));
    let body = res.bytes().await.expect("body");
    assert!(std::str::from_utf8(&body).expect("utf-8").contains("Relay"));
    let sha384 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&body));
    assert_eq!(integrity, format!("sha384-{sha384}"), "the SRI value matches the body");

    let res = app.client.get(app.url("/widget.js")).header("if-none-match", &etag).send().await.expect("request");
    assert_eq!(res.status(), 304);
    assert_eq!(header(&res, "etag"), etag);

    let res = app.client.get(app.url(&format!("/widget.js?v={version}"))).send().await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "public, max-age=31536000, immutable");
    let res = app.client.get(app.url("/widget.js?v=0000000000000000")).send().await.expect("request");
    assert_eq!(header(&res, "cache-control"), "public, max-age=300", "a stale version is not cached for a year");

    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css"), ("strings.js", "text/javascript")] {
        let res = app.client.get(app.url(&format!("/widget/{asset}"))).send().await.expect("request");
        assert_eq!(res.status(), 200, "{asset}");
        assert!(header(&res, "content-type").starts_with(kind), "{asset}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    }
    let res = app.client.get(app.url("/widget/secret.txt")).send().await.expect("request");
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_and_connect_pages_have_strict_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let app_id = allow_origins(&app, &["https://app.example.com", "http://localhost:5173"]).await;
    let csp_of = |res: &reqwest::Response| header(res, "content-security-policy").to_owned();
    let strict = |res: &reqwest::Response| {
        assert_eq!(header(res, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(res, "referrer-policy"), "no-referrer");
        assert_eq!(header(res, "x-content-type-options"), "nosniff");
        assert_eq!(header(res, "cache-control"), "no-store");
        let csp = header(res, "content-security-policy");
        for directive in ["default-src 'self'", "script-src 'self';", "style-src 'self';", "form-action 'none'"] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "no unsafe-* in {csp}");
    };

    // The frame, for an allowed parent: framed only by the tenant's origins, told its parent.
    let url = format!("/widget/frame?app={app_id}&origin=https%3A%2F%2Fapp.example.com&theme=dark&locale=ko");
    let res = app.client.get(app.url(&url)).send().await.expect("request");
    assert_eq!(res.status(), 200);
    strict(&res);
    assert!(
        csp_of(&res).ends_with("frame-ancestors https://app.example.com http://localhost:5173"),
        "{}",
        csp_of(&res)
    );
    let html = res.text().await.expect("body");
    assert!(html.contains(r#"data-parent-origin="https://app.example.com""#));
    assert!(html.contains(r#"data-app-name="Test App""#));
    assert!(html.contains(r#"<html lang="ko" data-mode="frame" data-theme="dark""#));
    assert!(!html.contains("data-error"));
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");

    // A parent that is not allowed is never trusted; an unknown app may not be framed at all.
    let url = format!("/widget/frame?app={app_id}&origin=https%3A%2F%2Fevil.example");
    let html = app.client.get(app.url(&url)).send().await.expect("request").text().await.expect("body");
    assert!(html.contains(r#"data-error="origin_not_allowed""#) && !html.contains("data-parent-origin"));
    let res = app.client.get(app.url("/widget/frame?app=app_nope&origin=https%3A%2F%2Fapp.example.com")).send().await;
    let res = res.expect("request");
    assert!(csp_of(&res).ends_with("frame-ancestors 'none'"));
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert!(res.text().await.expect("body").contains(r#"data-error="app_unknown""#));
    // Markup in a query value stays text.
    let res = app.client.get(app.url("/widget/frame?theme=%22%3E%3Cscript%3E&locale=%3Cb%3E")).send().await;
    let html = res.expect("request").text().await.expect("body");
    assert!(!html.contains("<script>") && !html.contains("<b>"));

    // The connect page finds the tenant from the token, even a spent one.
    let token = app.registration_token("page-user", None).await;
    let res = app.client.get(app.url(&format!("/connect?token={token}"))).send().await.expect("request");
    assert_eq!(res.status(), 200);
    strict(&res);
    assert!(csp_of(&res).ends_with("frame-ancestors https://app.example.com http://localhost:5173"));
    let html = res.text().await.expect("body");
    assert!(html.contains(r#"data-mode="page""#));
    assert!(html.contains(r#"data-allowed-origins="https://app.example.com http://localhost:5173""#));
    assert!(!html.contains(&token), "the page does not echo the token");

    let ok = "https%3A%2F%2Fapp.example.com%2Fdone%3Fx%3D1";
    let res = app.client.get(app.url(&format!("/connect?token={token}&redirect_uri={ok}&state=s1"))).send().await;
    let html = res.expect("request").text().await.expect("body");
    assert!(html.contains(r#"data-redirect-uri="https://app.example.com/done?x=1""#), "{html}");
    assert!(html.contains(r#"data-state="s1""#));
    for bad in
        ["https%3A%2F%2Fevil.example%2Fcb", "javascript%3Aalert(1)", "https%3A%2F%2Fapp.example.com.evil.example%2F"]
    {
        let res = app.client.get(app.url(&format!("/connect?token={token}&redirect_uri={bad}"))).send().await;
        let html = res.expect("request").text().await.expect("body");
        assert!(html.contains(r#"data-error="redirect_uri_not_allowed""#), "{bad}");
        assert!(!html.contains("data-redirect-uri"), "{bad}");
    }
    // Without a token (or with a bogus one) the tenant is unknown: no framing, no redirect.
    let res = app.client.get(app.url("/connect?token=rrt-bogus&redirect_uri=https%3A%2F%2Fapp.example.com%2F")).send();
    let res = res.await.expect("request");
    assert!(csp_of(&res).ends_with("frame-ancestors 'none'"));
    assert!(res.text().await.expect("body").contains(r#"data-error="redirect_uri_not_allowed""#));
    let res = app.client.get(app.url("/connect")).send().await.expect("request");
    assert_eq!(res.status(), 200);

    // The frame and /connect POST from Relay's own origin, which no tenant lists: same-origin
    // requests pass the origin check; other origins still do not.
    let post = |origin: String, fetch_site: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/v1/connect"))
            .header("origin", origin)
            .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": "nope"}));
        if let Some(site) = fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    assert_error(post(app.address.clone(), None).await.expect("request"), 400, "provider_key_malformed").await;
    let res = post("http://localhost:1".into(), Some("same-origin")).await.expect("request");
    assert_error(res, 400, "provider_key_malformed").await;
    let res = post("https://evil.example".into(), Some("cross-site")).await.expect("request");
    assert_error(res, 403, "origin_not_allowed").await;

    // What the frame checks the token against.
    let d: Value = app.describe_token(&token).await.json().await.expect("json");
    assert_eq!(d["appId"], app_id.as_str());
}
