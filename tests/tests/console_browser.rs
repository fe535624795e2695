//! The console's pages in Debian's headless Chromium (tests/browser/console.mjs, playwright-core)
//! against a real `relay serve` on SQLite: invite, keys, end users, members, sign-out, 360 px, dark.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, Backend, MockProvider, TestDb};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const OWNER_PASSWORD: &str = "owner passphrase for the browser";
const VIEWER_PASSWORD: &str = "viewer passphrase for the browser";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Connects a key the mock accepts for `label`, as the widget would; the key.
async fn connect(server: &ServerProcess, mock: &MockProvider, rly: &str, label: &str) -> String {
    let client = reqwest::Client::new();
    let token = server.registration_token(&client, rly, label).await;
    let key = fake_keys::for_provider("openai");
    mock.accept(&key);
    let res = client
        .post(server.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": key}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200, "connect {label}");
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    assert!(std::path::Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing (scripts/test installs it)");
    assert!(browser_dir().join("node_modules").exists(), "run `npm ci` in tests/browser (scripts/test does)");
    let db = TestDb::new(Backend::Sqlite).await;
    let mock = MockProvider::start().await;
    // The invite links and the cookie name the origin the browser uses: http://localhost:PORT
    // (plain-http localhost, so the cookie is not Secure and the links reach this server).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let public = format!("http://localhost:{port}");
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_PUBLIC_URL".into(), public.clone()),
    ];
    let args = ["tenant", "create", "--name", "Acme Notes", "--owner-email", "owner@example.com", "--json"];
    let (status, out, err) = run_cli(&args, &as_refs(&env), None);
    assert!(status.success(), "tenant create: {err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let invite = created["ownerInviteUrl"].as_str().expect("ownerInviteUrl").to_owned();
    assert!(invite.starts_with(&format!("{public}/console/invite/rci_")), "the link names this server");
    let rly = created["apiKey"].as_str().expect("apiKey").to_owned();

    let server = ServerProcess::start_on(&format!("127.0.0.1:{port}"), &as_refs(&env), None);
    let erased_key = connect(&server, &mock, &rly, "jieun_123").await;
    let kept_key = connect(&server, &mock, &rly, "minho_456").await;

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts").join("console");
    let mut node = tokio::process::Command::new("node");
    node.arg("console.mjs")
        .current_dir(browser_dir())
        .env("RELAY_URL", &public)
        .env("RELAY_DIRECT_URL", &server.address)
        .env("OWNER_INVITE_URL", &invite)
        .env("OWNER_PASSWORD", OWNER_PASSWORD)
        .env("VIEWER_PASSWORD", VIEWER_PASSWORD)
        .env("RELAY_API_KEY", &rly)
        .env("ERASED_USER", "jieun_123")
        .env("ERASED_FINGERPRINT", format!("sk-proj-…{}", &erased_key[erased_key.len() - 4..]))
        .env("KEPT_USER", "minho_456")
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(120), node.output()).await;
    let out = run.expect("the browser run ends within 2 minutes").expect("start node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed ({}):\n{stdout}\n{stderr}", out.status);
    let seen: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("the browser script prints JSON last:\n{stdout}"));
    assert_eq!(seen["steps"].as_array().map(Vec::len), Some(8), "every step ran: {seen}");

    // What the pages did is what the store holds: the erased user is gone, the other is not.
    let client = reqwest::Client::new();
    let get = |label: &str| client.get(server.url(&format!("/v1/users/{label}"))).bearer_auth(&rly).send();
    assert_eq!(get("jieun_123").await.expect("send").status(), 404);
    assert_eq!(get("minho_456").await.expect("send").status(), 200);

    let logs = server.logs();
    assert!(logs.contains("/console/api/sign-in"), "the requests were logged");
    let invite_token = invite.rsplit('/').next().expect("token");
    for (what, secret) in [
        ("owner password", OWNER_PASSWORD),
        ("viewer password", VIEWER_PASSWORD),
        ("invite token", invite_token),
        ("rly- key", rly.as_str()),
        ("provider key", erased_key.as_str()),
        ("provider key", kept_key.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the server log");
    }
}
