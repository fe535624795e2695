//! @relay/react (sdk/react): `<RelayConnect>` built with tsc, bundled into a React page with
//! esbuild, in Debian's headless Chromium against a real `relay serve` with the mock provider.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, Backend, MockProvider, TestDb};
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn node(args: &[&str], dir: &Path, what: &str) {
    let out = Command::new("node").args(args).current_dir(dir).stdin(Stdio::null()).output().expect("node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", out.status);
}

/// sdk/react's dist/ (tsc), then the test page (sdk/react/test/page.jsx) bundled with React.
fn build_page() -> String {
    let dir = repo().join("sdk/react");
    assert!(dir.join("node_modules").exists(), "run `npm ci` in sdk/react (scripts/test does)");
    node(&["scripts/build.mjs"], &dir, "npm run build in sdk/react");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("react-component-page.js");
    let outfile = out.display().to_string();
    node(&["test/bundle.mjs", &outfile], &dir, "esbuild");
    std::fs::read_to_string(out).expect("the bundle")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RelayConnect</title></head>
<body><div id="root"></div><script type="module" src="/page.js"></script></body></html>"#;

async fn serve(req: HttpRequest, bundle: web::Data<String>) -> HttpResponse {
    match req.path() {
        "/" => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE),
        "/page.js" => HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(bundle.to_string()),
        _ => HttpResponse::NotFound().finish(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_connect_in_chromium() {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing (scripts/test installs it)");
    let browser = repo().join("tests/browser");
    assert!(browser.join("node_modules/playwright-core").exists(), "run `npm ci` in tests/browser (scripts/test does)");
    let bundle = tokio::task::spawn_blocking(build_page).await.expect("join");

    // A real `relay serve` on SQLite with the mock as OpenAI, and a tenant made with the CLI.
    let db = TestDb::new(Backend::Sqlite).await;
    let mock = MockProvider::start().await;
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
    ];
    let created = run_cli(&["tenant", "create", "--name", "React app", "--json"], &as_refs(&env), None);
    assert!(created.0.success(), "tenant create: {}", created.2);
    let created: Value = serde_json::from_str(&created.1).expect("json");
    let (rly, tenant_id, app_id) = (
        created["apiKey"].as_str().expect("apiKey"),
        created["tenantId"].as_str().expect("tenantId"),
        created["appId"].as_str().expect("appId"),
    );

    // The page on 127.0.0.1, Relay as `localhost`: two sites, the frame cross-origin.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let page_url = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let allow = ["tenant", "update", "--id", tenant_id, "--allowed-origin", &page_url];
    let (status, _, stderr) = run_cli(&allow, &as_refs(&env), None);
    assert!(status.success(), "tenant update: {stderr}");
    let server = ServerProcess::start(&as_refs(&env), None);
    let bundle = web::Data::new(bundle);
    let pages = HttpServer::new(move || App::new().app_data(bundle.clone()).default_service(web::to(serve)))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let pages_handle = pages.handle();
    tokio::spawn(pages);

    let client = reqwest::Client::new();
    let token = server.registration_token(&client, rly, "jieun_123").await;
    let token2 = server.registration_token(&client, rly, "jieun_123").await;
    let relay_url = server.address.replace("127.0.0.1", "localhost");
    let query: String = url_query(&[("relay", &relay_url), ("app", app_id), ("token", &token), ("token2", &token2)]);
    let key = fake_keys::for_provider("openai");
    mock.accept(&key);

    let mut cmd = Command::new("node");
    cmd.arg("react_component.mjs")
        .current_dir(&browser)
        .env("PAGE_URL", format!("{page_url}/?{query}"))
        .env("RELAY_URL", &relay_url)
        .env("PROVIDER_KEY", &key)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null());
    let run = tokio::task::spawn_blocking(move || cmd.output().expect("node"));
    let out = tokio::time::timeout(Duration::from_secs(180), run).await.expect("within 3 minutes").expect("join");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser run failed:\n{stdout}\n{stderr}\nrelay:\n{}", server.logs());
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the browser script prints JSON");

    let fingerprint = format!("sk-proj-…{}", &key[key.len() - 4..]);
    // Strict mode's double mount left one widget and one script tag; the props reached it.
    assert_eq!(seen["mounted"], serde_json::json!({"hosts": 1, "scripts": 1}), "{seen}");
    assert_eq!((&seen["theme"], &seen["locale"]), (&"dark".into(), &"ko".into()), "{seen}");
    assert_eq!(seen["fingerprint"], fingerprint.as_str(), "{seen}");
    assert_eq!(seen["result"], format!("openai {fingerprint}"), "onSuccess got provider and fingerprint: {seen}");
    assert_eq!(seen["afterSwap"], serde_json::json!({"hosts": 1, "scripts": 1, "success": false}), "{seen}");
    assert_eq!(seen["afterUnmount"], serde_json::json!({"hosts": 0, "scripts": 1, "frames": 0}), "{seen}");
    assert_eq!(seen["remounted"], serde_json::json!({"hosts": 1, "scripts": 1}), "{seen}");
    assert_eq!(seen["errors"], "", "onError was not called: {seen}");

    // The key went upstream through Relay, and neither Relay nor the page logged it.
    assert!(mock.requests().iter().any(|r| r.header("authorization") == Some(format!("Bearer {key}").as_str())));
    assert!(!server.logs().contains(&key), "Relay logged the key");
    drop(pages_handle.stop(false));
}

fn url_query(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}
