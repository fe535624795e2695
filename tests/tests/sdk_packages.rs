//! Relay's own SDKs (sdk/js and sdk/python) against a real Relay with a mock provider: every
//! method, RelayError on 4xx (a revoked key too), the OpenAI client's error after a key is
//! removed, retries of 429/5xx, timeouts, and webhook verification.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use relay_tests::mock::Reply;
use relay_tests::sdk::{drive, sdk_dir};
use relay_tests::{fake_keys, spawn_app, Backend, TestApp};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The mock answers chat calls as OpenAI would, with and without streaming.
fn script_chat(app: &TestApp) {
    let completion = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    });
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: completion });
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = [
        chunk(json!({"role": "assistant", "content": "Streamed "}), Value::Null),
        chunk(json!({"content": "hello"}), Value::Null),
        chunk(json!({}), json!("stop")),
    ];
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    app.mock.reply_to_streams(Reply::Sse { headers: vec![], text, max_piece: 40, delay: Duration::from_millis(2) });
}

/// A Relay with a mock provider that accepts a fresh key, and the job for a driver.
async fn relay_for(user: &str) -> (TestApp, String, Value) {
    let app = spawn_app(Backend::Sqlite).await;
    let provider_key = fake_keys::for_provider("openai");
    app.mock.accept(&provider_key);
    script_chat(&app);
    // A second rly- key of the tenant's, revoked: the SDKs must report it as such.
    let revoked =
        relay::tenants::create_api_key(&app.store, app.tenant_id, Some("revoked"), "test").await.expect("key");
    let revoked_ok =
        app.store.revoke_api_key(app.tenant_id, &revoked.record.public_id, chrono::Utc::now()).await.expect("revoke");
    assert!(revoked_ok);
    let job = json!({"base_url": app.address, "api_key": app.api_key, "provider_key": provider_key, "user": user,
        "revoked_key": secrecy::ExposeSecret::expose_secret(&revoked.secret)});
    (app, provider_key, job)
}

async fn run(cmd: Command, job: Value, what: &'static str) -> Value {
    tokio::task::spawn_blocking(move || drive(cmd, &job, what)).await.expect("join")
}

fn assert_relay_error(e: &Value, status: u16, code: &str, what: &str) {
    assert_eq!(e["isRelayError"], true, "{what}: a RelayError: {e}");
    assert_eq!(e["status"], status, "{what}: status: {e}");
    assert_eq!(e["code"], code, "{what}: code: {e}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: message: {e}");
}

/// What both drivers report, checked the same way.
fn check(out: &Value, app: &TestApp, provider_key: &str, user: &str, sdk: &str) {
    let text = out.to_string();
    assert!(!text.contains(&app.api_key), "{sdk}: the rly- key shows up in what the SDK handed back");
    assert!(!text.contains(provider_key), "{sdk}: the provider key shows up in what the SDK handed back");

    assert_eq!(out["webhook_created"]["has_secret"], true, "{sdk}: {}", out["webhook_created"]);
    assert_eq!(out["webhook_list"], json!([out["webhook_created"]["id"]]), "{sdk}");
    assert_eq!(out["webhook_retrieved"], "sdk test", "{sdk}");

    assert_eq!(out["registration"], json!({"prefix": "rrt-", "user": user, "provider": "openai"}), "{sdk}");
    assert_eq!(out["described"]["provider"], "openai", "{sdk}: {}", out["described"]);
    assert_eq!(out["other_token_user"], format!("{user}-2"), "{sdk}");
    assert_eq!(out["connect_status"], 200, "{sdk}: the widget's connect call");

    assert_eq!(out["chat"]["content"], "Hello from the mock", "{sdk}: {}", out["chat"]);
    assert!(out["chat"]["request_id"].as_str().is_some_and(|s| s.starts_with("req_")), "{sdk}: {}", out["chat"]);
    assert_eq!(out["stream"], "Streamed hello", "{sdk}: streaming");
    assert_eq!(out["free_chat"], "Hello from the mock", "{sdk}: paid: false");
    let sent: Vec<_> = app.mock.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert!(sent.iter().all(|r| r.header("authorization") == Some(&format!("Bearer {provider_key}"))), "{sdk}");
    assert!(sent.iter().all(|r| !String::from_utf8_lossy(&r.body).contains(&app.api_key)), "{sdk}");

    assert_eq!(out["user"]["endUserLabel"], user, "{sdk}: {}", out["user"]);
    assert_eq!(out["user"]["providers"][0]["provider"], "openai", "{sdk}");
    assert_eq!(out["user"]["paid"], false, "{sdk}: the last call said X-Relay-Paid: false");
    assert_eq!(out["session"], json!({"user": user, "providers": ["openai"], "has_token": true}), "{sdk}");
    assert_eq!(out["session2"], Value::Null, "{sdk}: no providers given, all allowed");
    for k in ["revoked", "revoked2"] {
        assert_eq!(out[k], json!({"endUserLabel": user, "revoked": true}), "{sdk}: {k}");
    }
    assert_eq!(out["budget_set"]["limitUsd"], 100.0, "{sdk}: {}", out["budget_set"]);
    assert_eq!(out["budget_set"]["alertAt"], 0.5, "{sdk}");
    assert_eq!(out["budget_get"]["period"], "month", "{sdk}");
    assert_eq!(out["budget_del"]["deleted"], true, "{sdk}");
    assert_eq!(out["budget_default"], "end_user_default", "{sdk}");
    assert_eq!(out["user_budget_set"]["endUserLabel"], user, "{sdk}: {}", out["user_budget_set"]);
    assert_eq!(out["user_budget_get"]["limitUsd"], 5.0, "{sdk}");
    assert_eq!(out["user_budget_del"]["deleted"], true, "{sdk}");
    assert_eq!(out["usage"]["groupBy"], "model", "{sdk}: {}", out["usage"]);
    assert_eq!(out["usage"]["endUserLabel"], user, "{sdk}");
    assert_eq!(out["usage"]["total"]["requests"], 3, "{sdk}: chat, stream and free chat: {}", out["usage"]);

    assert_relay_error(&out["not_found"], 404, "enduser_not_found", sdk);
    assert!(out["not_found"]["requestId"].as_str().is_some_and(|s| s.starts_with("req_")), "{sdk}");
    assert_relay_error(&out["bad_key"], 401, "relay_key_invalid", sdk);
    assert!(out["bad_key"]["requestId"].as_str().is_some_and(|s| s.starts_with("req_")), "{sdk}");
    assert_eq!(out["bad_key_leaks"], false, "{sdk}: the bad key is not in the error");
    assert_eq!(out["bad_request"]["status"], 400, "{sdk}: {}", out["bad_request"]);

    assert_eq!(out["retry"]["hits"], 2, "{sdk}: one 429, then the answer: {}", out["retry"]);
    assert!(out["retry"]["waited_ms"].as_u64().is_some_and(|ms| ms >= 900), "{sdk}: Retry-After: 1 was honoured");
    assert_eq!(out["retry"]["user"], "x", "{sdk}");
    assert_relay_error(&out["no_retry"], 429, "rate_limit_exceeded", sdk);
    assert_eq!(out["no_retry"]["requestId"], "req_limited", "{sdk}");
    assert_relay_error(&out["unavailable"], 503, "store_unavailable", sdk);
    assert_eq!(out["unavailable_hits"], 2, "{sdk}: retried once at once, not after an hour's Retry-After");
    assert_eq!(out["timeout"]["status"], Value::Null, "{sdk}: {}", out["timeout"]);
    assert_eq!(out["timeout"]["code"], "timeout", "{sdk}");
    assert_eq!(out["timeout_hits"], 2, "{sdk}: the timed-out attempt was retried once");

    assert_eq!(out["webhook_event"], json!({"type": "key.connected", "user": user}), "{sdk}");
    assert_eq!(out["webhook_event_text"], "key.connected", "{sdk}");
    assert_eq!(out["webhook_tampered"], "no matching signature", "{sdk}");
    assert_eq!(out["webhook_wrong_secret"], "no matching signature", "{sdk}");
    assert_eq!(out["webhook_old"], "webhook-timestamp is too far from now", "{sdk}");
    assert!(out["webhook_unsigned"].as_str().is_some_and(|m| m.starts_with("missing")), "{sdk}");
    assert!(out["deliveries"].as_array().is_some_and(|d| d.contains(&json!("key.connected"))), "{sdk}");

    assert_eq!(out["key_deleted"], json!({"endUserLabel": user, "provider": "openai", "deleted": true}), "{sdk}");
    let after = &out["chat_after_delete"];
    assert_eq!(after["openaiError"], true, "{sdk}: the OpenAI client's own error: {after}");
    assert_eq!(
        (after["status"].as_u64(), after["code"].as_str()),
        (Some(404), Some("enduser_key_missing")),
        "{sdk}: {after}"
    );
    assert!(after["requestId"].as_str().is_some_and(|id| id.starts_with("req_")), "{sdk}: Relay's request id: {after}");
    assert_relay_error(&out["revoked_key"], 401, "relay_key_revoked", &format!("{sdk}: a revoked key"));
    assert!(
        out["revoked_key"]["requestId"].as_str().is_some_and(|id| id.starts_with("req_")),
        "{sdk}: {}",
        out["revoked_key"]
    );
    assert_eq!(out["user_deleted"], json!({"endUserLabel": user, "deleted": true}), "{sdk}");
    assert_eq!(out["webhook_deleted"]["deleted"], true, "{sdk}");
}

/// A folder under the system's temp directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("relay-sdk-{}", uuid::Uuid::new_v4().simple())))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn node_modules(dir: &Path) {
    assert!(dir.join("node_modules").exists(), "run `npm ci` in {} (scripts/test does)", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_against_relay() {
    let js = repo().join("sdk/js");
    node_modules(&js);
    node_modules(&sdk_dir());
    // The test runs what the working tree builds, ESM and CommonJS.
    let status = Command::new("node").arg("scripts/build.mjs").current_dir(&js).status().expect("node");
    assert!(status.success(), "npm run build in sdk/js failed");

    let user = "jieun_123";
    let (app, provider_key, job) = relay_for(user).await;
    let mut cmd = Command::new("node");
    cmd.arg("drive_relay_sdk.mjs").current_dir(sdk_dir());
    let out = run(cmd, job, "JS SDK").await;
    check(&out, &app, &provider_key, user, "js");
    assert_eq!(out["cjs"], json!({"relay": true, "openai": true}), "require() of the CommonJS build");
    assert_eq!(out["relay_json"], json!({"baseURL": app.address}).to_string(), "JSON.stringify(relay) has no key");
    assert!(!out["bad_key"]["json"].as_str().unwrap_or("").contains("rly-"), "{}", out["bad_key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_against_relay() {
    // Installed the way a developer would (`pip install ./sdk/python`), into a folder of its own.
    let target = TempDir::new();
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-build-isolation"])
        .arg("--target")
        .arg(target.path())
        .arg(repo().join("sdk/python"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .status()
        .expect("pip");
    assert!(status.success(), "pip install ./sdk/python failed");
    assert!(target.path().join("relay_sdk/py.typed").exists(), "the package ships py.typed");

    let user = "minho_456";
    let (app, provider_key, job) = relay_for(user).await;
    let mut cmd = Command::new("python3");
    cmd.arg(sdk_dir().join("drive_relay_sdk.py")).env("PYTHONPATH", target.path());
    let out = run(cmd, job, "Python SDK").await;
    check(&out, &app, &provider_key, user, "python");
    assert_eq!(out["relay_repr"], format!("Relay(base_url='{}')", app.address), "repr(relay) has no key");
    let a = &out["async"];
    assert_eq!(a["user"], user, "AsyncRelay: {a}");
    assert_eq!(a["token_user"], format!("{user}-async"));
    assert_eq!(a["usage"], "usage");
    assert_eq!(a["not_found"]["status"], 404);
    assert_eq!(a["not_found"]["code"], "enduser_not_found");
    assert_eq!((&a["openai_type"], &out["openai_type"]), (&json!("AsyncOpenAI"), &json!("OpenAI")));
    assert_eq!((&a["chat"], &a["stream"]), (&json!("Hello from the mock"), &json!("Streamed hello")));
}

#[test]
fn the_js_sdks_types_match_the_openapi_document() {
    let js = repo().join("sdk/js");
    node_modules(&js);
    let out = Command::new("node").args(["scripts/generate.mjs", "--check"]).current_dir(&js).output().expect("node");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
