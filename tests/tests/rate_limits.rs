//! Rate limits and tiers: GCRA per rly- key, per end user (free and paid apart), per client IP
//! on the key-connect routes; 429 in OpenAI's shape with Retry-After and x-ratelimit-*; the
//! free-tier model allowlist; limits shared by two relay processes through Redis.

use std::time::Duration;

use relay::ratelimit::{Limit, Limits};
use relay_tests::app::{assert_error, spawn_app_with, test_limits, SpawnOptions, TestApp};
use relay_tests::mock::Reply;
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, Backend, MockProvider, TestDb};
use serde_json::{json, Value};

fn limit(s: &str) -> Limit {
    s.parse().expect("limit")
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn app_with(backend: Backend, limits: Limits) -> TestApp {
    spawn_app_with(backend, SpawnOptions { limits, ..SpawnOptions::default() }).await
}

fn chat_reply() -> Reply {
    Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
    }
}

async fn chat(app: &TestApp, user: &str, model: &str, paid: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", user)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(p) = paid {
        req = req.header("x-relay-paid", p);
    }
    req.send().await.expect("send")
}

fn cli_env(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![("DATABASE_URL", app.db.url.clone()), ("RELAY_MASTER_KEYS", app.master_keys.clone())]
}

/// `relay tenant update --id <tenant> <args…> --json`, asserted to succeed.
fn tenant_update(app: &TestApp, args: &[&str]) -> Value {
    let id = app.tenant_id.to_string();
    let mut all = vec!["tenant", "update", "--id", id.as_str(), "--json"];
    all.extend_from_slice(args);
    let env = cli_env(app);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, stdout, stderr) = run_cli(&all, &env, None);
    assert!(status.success(), "tenant update {args:?}: {stderr}");
    serde_json::from_str(&stdout).expect("json")
}

async fn key_limit(backend: Backend) {
    let app = app_with(backend, Limits { api_key: limit("3/min"), ..test_limits() }).await;
    let get = |key: String| {
        let req = app.client.get(app.url("/v1/users/nobody")).bearer_auth(key);
        async move { req.send().await.expect("send") }
    };
    for remaining in ["2", "1", "0"] {
        let res = get(app.api_key.clone()).await;
        assert_eq!(res.status(), 404, "counted, then answered as usual");
        assert_eq!(header(&res, "x-ratelimit-limit-requests").as_deref(), Some("3"));
        assert_eq!(header(&res, "x-ratelimit-remaining-requests").as_deref(), Some(remaining));
        assert!(header(&res, "x-ratelimit-reset-requests").is_some_and(|v| v.ends_with('s')));
    }
    let res = get(app.api_key.clone()).await;
    // 3 a minute: one more fits 20 s after the first.
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((19..=20).contains(&retry), "{retry}");
    let retry_ms: u64 = header(&res, "retry-after-ms").expect("retry-after-ms").parse().expect("ms");
    assert!((19_000..=20_000).contains(&retry_ms), "{retry_ms}");
    assert_eq!(header(&res, "x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert!(header(&res, "x-relay-request-id").is_some(), "a request id on the 429");
    let err = assert_error(res, 429, "rate_limit_exceeded").await;
    assert_eq!(err["error"]["type"], "rate_limit_error");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains("3 requests per minute"), "{message}");
    assert!(!message.contains(&app.api_key), "the key is not echoed");

    // Another tenant's key has its own allowance.
    let (_, other_key) = app.other_tenant().await;
    assert_eq!(get(other_key).await.status(), 404);

    // The tenant's own limit replaces the server's: off, then a larger one.
    let shown = tenant_update(&app, &["--rate-limit-key", "off"]);
    assert_eq!(shown["rateLimits"]["apiKey"], "off");
    for _ in 0..5 {
        let res = get(app.api_key.clone()).await;
        assert_eq!(res.status(), 404);
        assert!(header(&res, "x-ratelimit-limit-requests").is_none(), "no limit, no headers");
    }
    tenant_update(&app, &["--rate-limit-key", "10/s"]);
    let res = get(app.api_key.clone()).await;
    assert_eq!(header(&res, "x-ratelimit-limit-requests").as_deref(), Some("10"));
    let shown = tenant_update(&app, &["--rate-limit-key", "default"]);
    assert_eq!(shown["rateLimits"]["apiKey"], Value::Null);
    assert_eq!(get(app.api_key.clone()).await.status(), 429, "back on the server's 3/min");

    // A bad limit is refused by the CLI and changes nothing.
    let id = app.tenant_id.to_string();
    let env = cli_env(&app);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, stderr) =
        run_cli(&["tenant", "update", "--id", &id, "--rate-limit-key", "5/fortnight"], &env, None);
    assert!(!status.success());
    assert!(stderr.contains("not a rate"), "{stderr}");

    let metrics = app.client.get(app.url("/metrics")).send().await.expect("send").text().await.expect("text");
    assert!(metrics.contains(r#"relay_rate_limited_total{scope="api_key"} 2"#), "{metrics}");
    assert!(!metrics.contains(&app.api_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_key_limit() {
    key_limit(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_key_limit() {
    key_limit(Backend::Sqlite).await;
}

async fn tiers(backend: Backend) {
    let app =
        app_with(backend, Limits { end_user: limit("4/min"), free_end_user: limit("2/min"), ..test_limits() }).await;
    app.connect_new_key("u", "openai").await;
    app.connect_new_key("v", "openai").await;
    app.mock.reply(chat_reply());

    // Free: two, then 429 naming the free tier.
    for _ in 0..2 {
        let res = chat(&app, "u", "gpt-4o-mini", Some("false")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-ratelimit-limit-requests").as_deref(), Some("2"));
    }
    assert!(!app.get_user("u").await.json::<Value>().await.expect("json")["paid"].as_bool().expect("paid"));
    let res = chat(&app, "u", "gpt-4o-mini", Some("false")).await;
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((29..=30).contains(&retry), "{retry}");
    let err = assert_error(res, 429, "rate_limit_exceeded").await;
    assert!(err["error"]["message"].as_str().expect("message").contains("free tier"), "{err}");
    let upstream_calls = app.mock.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(upstream_calls, 2, "a refused call never reaches the provider");

    // Paid (header absent, or true): its own, larger allowance.
    for paid in [None, Some("true"), None, Some("TRUE")] {
        let res = chat(&app, "u", "gpt-4o-mini", paid).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-ratelimit-limit-requests").as_deref(), Some("4"));
    }
    assert_error(chat(&app, "u", "gpt-4o-mini", None).await, 429, "rate_limit_exceeded").await;
    assert!(app.get_user("u").await.json::<Value>().await.expect("json")["paid"].as_bool().expect("paid"));
    // Another end user is not affected.
    assert_eq!(chat(&app, "v", "gpt-4o-mini", Some("false")).await.status(), 200);
    assert_error(chat(&app, "v", "gpt-4o-mini", Some("maybe")).await, 400, "invalid_header").await;

    // Usage records carry the tier.
    let mut counts = (0, 0);
    for _ in 0..100 {
        let events = app.store.list_usage_events(app.tenant_id, 100).await.expect("usage");
        let free = events.iter().filter(|e| !e.paid && e.status == 200).count();
        let paid = events.iter().filter(|e| e.paid && e.status == 200).count();
        counts = (free, paid);
        if counts == (3, 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counts, (3, 4), "usage events by tier (free, paid)");

    // The tenant's own free-tier limit.
    tenant_update(&app, &["--rate-limit-free-user", "off"]);
    for _ in 0..3 {
        assert_eq!(chat(&app, "u", "gpt-4o-mini", Some("false")).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tiers() {
    tiers(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tiers() {
    tiers(Backend::Sqlite).await;
}

async fn free_models(backend: Backend) {
    let app = app_with(backend, test_limits()).await;
    app.connect_new_key("u", "openai").await;
    app.mock.reply(chat_reply());
    let shown = tenant_update(&app, &["--free-model", "gpt-4o-mini", "--free-model", "text-embedding-3-*"]);
    assert_eq!(shown["freeModels"], json!(["gpt-4o-mini", "text-embedding-3-*"]));

    let before = app.mock.requests().len();
    let err = assert_error(chat(&app, "u", "gpt-4o", Some("false")).await, 403, "model_not_allowed").await;
    assert_eq!(err["error"]["param"], "model");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains("gpt-4o") && message.contains("gpt-4o-mini, text-embedding-3-*"), "{message}");
    assert_eq!(app.mock.requests().len(), before, "the provider was not called");
    assert_eq!(chat(&app, "u", "gpt-4o-mini", Some("false")).await.status(), 200);
    assert_eq!(chat(&app, "u", "openai/gpt-4o-mini", Some("false")).await.status(), 200, "explicit provider prefix");
    assert_eq!(chat(&app, "u", "openai/GPT-4o-Mini", Some("false")).await.status(), 200, "case-insensitive");
    // Paid users may call any model.
    assert_eq!(chat(&app, "u", "gpt-4o", None).await.status(), 200);

    // Embeddings too.
    let embed = |model: &'static str| {
        app.client
            .post(app.url("/v1/embeddings"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "u")
            .header("x-relay-paid", "false")
            .json(&json!({"model": model, "input": "hi"}))
            .send()
    };
    assert_error(embed("text-embedding-ada-002").await.expect("send"), 403, "model_not_allowed").await;

    // /v1/models shows a free user the models they may call.
    app.mock.models(json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model"}, {"id": "gpt-4o-mini", "object": "model"},
        {"id": "text-embedding-3-small", "object": "model"}]}));
    let list = |paid: &'static str| {
        app.client
            .get(app.url("/v1/models"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "u")
            .header("x-relay-paid", paid)
            .send()
    };
    let ids = |v: Value| -> Vec<String> {
        v["data"].as_array().expect("data").iter().map(|m| m["id"].as_str().expect("id").to_owned()).collect()
    };
    let free: Value = list("false").await.expect("send").json().await.expect("json");
    assert_eq!(ids(free), ["gpt-4o-mini", "text-embedding-3-small"]);
    let paid: Value = list("true").await.expect("send").json().await.expect("json");
    assert_eq!(ids(paid).len(), 3);

    // The raw passthrough reads the model from the body: refused before the provider, and an
    // allowed body reaches the provider byte for byte.
    let relay = |body: &'static str| {
        app.client
            .post(app.url("/relay/openai/v1/chat/completions"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "u")
            .header("x-relay-paid", "false")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let before = app.mock.requests().len();
    assert_error(relay(r#"{"model":"gpt-4o","messages":[]}"#).await.expect("send"), 403, "model_not_allowed").await;
    assert_eq!(app.mock.requests().len(), before);
    // A body without a readable model could call any: a form upload, JSON without `model`.
    let form = app
        .client
        .post(app.url("/relay/openai/v1/audio/transcriptions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "u")
        .header("x-relay-paid", "false")
        .header("content-type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n")
        .send()
        .await
        .expect("send");
    assert_error(form, 403, "model_not_allowed").await;
    assert_error(relay(r#"{"messages":[]}"#).await.expect("send"), 403, "model_not_allowed").await;
    assert_eq!(app.mock.requests().len(), before);
    let allowed = r#"{ "model" : "gpt-4o-mini", "messages": [{"role":"user","content":"hi"}] }"#;
    assert_eq!(relay(allowed).await.expect("send").status(), 200);
    assert_eq!(app.mock.last_post().body, allowed.as_bytes());

    // Clearing the list lets free users call every model again.
    let shown = tenant_update(&app, &["--clear-free-models"]);
    assert_eq!(shown["freeModels"], json!([]));
    assert_eq!(chat(&app, "u", "gpt-4o", Some("false")).await.status(), 200);
    let env = cli_env(&app);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let id = app.tenant_id.to_string();
    let (status, _, _) = run_cli(&["tenant", "update", "--id", &id, "--free-model", "has space"], &env, None);
    assert!(!status.success(), "a pattern with a space is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_free_models() {
    free_models(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_free_models() {
    free_models(Backend::Sqlite).await;
}

/// A browser's session-token calls are limited by the tier the backend last set, whatever the
/// browser sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_use_the_stored_tier() {
    let app = app_with(Backend::Sqlite, Limits { free_end_user: limit("2/min"), ..test_limits() }).await;
    app.connect_new_key("u", "openai").await;
    app.mock.reply(chat_reply());
    tenant_update(&app, &["--free-model", "gpt-4o-mini"]);
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .header("x-relay-paid", "false")
        .json(&json!({"endUserLabel": "u"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.expect("json")["sessionToken"].as_str().expect("token").to_owned();
    let call = |model: &'static str| {
        app.client
            .post(app.url("/relay/openai/v1/chat/completions"))
            .header("x-relay-token", &token)
            .header("x-relay-paid", "true")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // A refused model counts as an attempt.
    assert_error(call("gpt-4o").await.expect("send"), 403, "model_not_allowed").await;
    assert_eq!(call("gpt-4o-mini").await.expect("send").status(), 200);
    assert_error(call("gpt-4o-mini").await.expect("send"), 429, "rate_limit_exceeded").await;
}

/// The public key-connect routes are limited per client address, before the token is looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_routes_are_limited_per_ip() {
    let app = app_with(Backend::Sqlite, Limits { connect: limit("3/min"), ..test_limits() }).await;
    for _ in 0..2 {
        assert_error(app.describe_token("rrt-nope").await, 404, "registration_token_invalid").await;
    }
    let res = app.connect("rrt-nope", "openai", &fake_keys::for_provider("openai")).await;
    assert_error(res, 404, "registration_token_invalid").await;
    let res = app.describe_token("rrt-nope").await;
    assert!(header(&res, "retry-after").is_some());
    assert_error(res, 429, "rate_limit_exceeded").await;
    // Developer routes are not limited by it.
    assert_eq!(app.create_registration_token(&json!({"endUserLabel": "u"})).await.status(), 201);
}

/// Two relay processes on one database and one Redis enforce one combined limit; Redis holds
/// hashes, never the key's id; a Redis that does not answer at start stops the server with a
/// message that does not show its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_limit_through_redis() {
    let db = TestDb::new(Backend::Postgres).await;
    let mock = MockProvider::start().await;
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let prefix = format!("relay-test:{}:", uuid::Uuid::new_v4().simple());
    let env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
        ("RELAY_REDIS_PREFIX".into(), prefix.clone()),
        ("RELAY_RATE_LIMIT_KEY".into(), "6/min".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let a = ServerProcess::start(&env, None);
    let b = ServerProcess::start(&env, None);
    let client = reqwest::Client::new();
    let get = |server: &ServerProcess| client.get(server.url("/v1/users/nobody")).bearer_auth(&rly).send();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { &a } else { &b };
        statuses.push(get(server).await.expect("send").status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 404, 404, 404, 404, 429, 429], "6 a minute across both nodes");
    let res = get(&b).await.expect("send");
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=10).contains(&retry), "{retry}");

    let redis = redis::Client::open("redis://127.0.0.1:6379").expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let hash = keys[0].strip_prefix(&prefix).expect("prefix");
    assert!(hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()), "{hash}");
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut conn).await.expect("ttl");
    assert!((1..=61_000).contains(&ttl), "state expires once the limit has recovered: {ttl}");
    let _: i64 = redis::cmd("DEL").arg(&keys[0]).query_async(&mut conn).await.expect("del");
    for server in [&a, &b] {
        let logs = server.logs();
        assert!(!logs.contains(&rly), "a key in the logs");
    }

    // A Redis that is not there: the server refuses to start, without printing the password.
    let mut bad: Vec<(&str, &str)> = env.iter().filter(|(k, _)| *k != "RELAY_REDIS_URL").copied().collect();
    bad.push(("RELAY_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:1"));
    let (status, stdout, stderr) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &bad, None);
    assert!(!status.success());
    assert!(stderr.contains("RELAY_REDIS_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "{stderr}");
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(50)).await;
}
