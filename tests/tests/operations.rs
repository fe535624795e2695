//! What operators rely on: Prometheus metrics that add up after a scripted workload and carry
//! no secret or end-user label, and a graceful shutdown that lets an open stream finish.

use std::time::Duration;

use futures::StreamExt;
use relay_tests::mock::Reply;
use relay_tests::process::{run_cli, ServerProcess};
use relay_tests::{fake_keys, spawn_app, Backend, MockProvider, TestDb};
use serde_json::{json, Value};

/// The value of one sample line `name{labels} value`, labels given in exposition order.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

fn openai_stream() -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}});
    let mut text: String =
        [chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null), chunk(json!({}), json!("stop")), usage]
            .iter()
            .map(|e| format!("data: {e}\n\n"))
            .collect();
    text.push_str("data: [DONE]\n\n");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_add_up_and_carry_no_secret() {
    let app = spawn_app(Backend::Sqlite).await;
    let label = "private.person@example.com";
    let key = app.connect_new_key(label, "openai").await;
    let chat = |body: Value| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", label)
            .json(&body)
            .send()
    };
    let msg = json!([{"role": "user", "content": "hi"}]);

    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}),
    });
    for _ in 0..2 {
        assert_eq!(chat(json!({"model": "gpt-4o", "messages": msg})).await.expect("send").status(), 200);
    }
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: openai_stream(),
        max_piece: 30,
        delay: Duration::from_millis(2),
    });
    let res = chat(json!({"model": "gpt-4o", "stream": true, "messages": msg})).await.expect("send");
    assert!(res.text().await.expect("body").contains("[DONE]"));
    app.mock.reply(Reply::Json { status: 429, headers: vec![], body: json!({"error": {"message": "slow"}}) });
    assert_eq!(chat(json!({"model": "gpt-4o", "messages": msg})).await.expect("send").status(), 429);
    let res = app.client.post(app.url("/v1/chat/completions")).json(&json!({})).send().await.expect("send");
    assert_eq!(res.status(), 401);

    // A stored key that no longer opens counts as a decrypt failure.
    let pool = sqlx::SqlitePool::connect(&app.db.url).await.expect("db");
    sqlx::query("UPDATE provider_keys SET kek_version = 99").execute(&pool).await.expect("update");
    assert_eq!(chat(json!({"model": "gpt-4o", "messages": msg})).await.expect("send").status(), 500);

    // Usage records are written after the response; give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = app.client.get(app.url("/metrics")).send().await.expect("scrape");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");

    let route = r#"route="/v1/chat/completions""#;
    assert_eq!(sample(&text, &format!(r#"relay_http_requests_total{{method="POST",{route},status="200"}}"#)), 3.0);
    assert_eq!(sample(&text, &format!(r#"relay_http_requests_total{{method="POST",{route},status="429"}}"#)), 1.0);
    assert_eq!(sample(&text, &format!(r#"relay_http_requests_total{{method="POST",{route},status="401"}}"#)), 1.0);
    assert_eq!(sample(&text, &format!(r#"relay_http_requests_total{{method="POST",{route},status="500"}}"#)), 1.0);
    assert_eq!(sample(&text, r#"relay_upstream_requests_total{kind="chat",provider="openai",status="200"}"#), 3.0);
    assert_eq!(sample(&text, r#"relay_upstream_requests_total{kind="chat",provider="openai",status="429"}"#), 1.0);
    assert_eq!(sample(&text, r#"relay_upstream_time_to_first_byte_seconds_count{provider="openai"}"#), 4.0);
    assert_eq!(sample(&text, r#"relay_overhead_seconds_count{kind="chat"}"#), 2.0);
    assert_eq!(sample(&text, r#"relay_overhead_seconds_count{kind="chat_stream"}"#), 1.0);
    assert_eq!(sample(&text, r#"relay_tokens_total{direction="prompt",provider="openai"}"#), 27.0);
    assert_eq!(sample(&text, r#"relay_tokens_total{direction="completion",provider="openai"}"#), 11.0);
    assert_eq!(sample(&text, "relay_key_decrypt_failures_total"), 1.0);
    assert_eq!(sample(&text, "relay_active_streams"), 0.0);
    assert!(sample(&text, &format!("relay_http_request_duration_seconds_count{{{route}}}")) >= 6.0);

    for secret in [label, "private.person", "Test App", key.as_str(), app.api_key.as_str(), &app.tenant_id.to_string()]
    {
        assert!(!text.contains(secret), "metrics mention {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish_then_exits_zero() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mock = MockProvider::start().await;
    let master = run_cli(&["kek", "generate"], &[], None).1.trim().to_owned();
    let env_owned: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("RELAY_MASTER_KEYS".into(), master),
        ("RELAY_UPSTREAM_OPENAI".into(), mock.url.clone()),
        ("RELAY_SHUTDOWN_TIMEOUT".into(), "20".into()),
        ("RELAY_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
        ("RELAY_WORKERS".into(), "2".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created: Value =
        serde_json::from_str(&run_cli(&["tenant", "create", "--name", "T", "--json"], &env, None).1).expect("json");
    let rly = created["apiKey"].as_str().expect("key").to_owned();
    let mut server = ServerProcess::start(&env, None);
    let client = reqwest::Client::new();

    // On its own listener, /metrics is not on the main one.
    let res = client.get(server.url("/metrics")).send().await.expect("send");
    assert_eq!(res.status(), 404);

    let token = server.registration_token(&client, &rly, "u").await;
    let key = fake_keys::for_provider("openai");
    mock.accept(&key);
    // The key is checked (a provider call) on another connection than the stream's, so likely
    // on the other worker: a worker that stops first must not take the stream's provider
    // connection with it.
    let res = reqwest::Client::new()
        .post(server.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": key}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);

    // A stream that takes about 2 s.
    mock.reply(Reply::Sse { headers: vec![], text: openai_stream(), max_piece: 12, delay: Duration::from_millis(60) });
    let res = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&rly)
        .header("x-relay-user", "u")
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut body = Vec::new();
    body.extend_from_slice(&stream.next().await.expect("first bytes").expect("ok"));

    server.signal("TERM");
    // No new connections once draining.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = reqwest::Client::new().get(server.url("/api/health")).timeout(Duration::from_secs(2)).send().await;
    assert!(refused.is_err(), "a draining server accepts no new connections");

    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("the stream is not cut"));
    }
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("data: [DONE]"), "the open stream finished: {text}");
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15))).expect("the server exited");
    assert!(status.success(), "exit status {status}; logs:\n{}", server.logs());
}
