//! `GET /v1/usage` answers the numbers a scripted workload produced, grouped by day, model or
//! provider, for the tenant or one end user.

use std::time::Duration;

use relay_tests::app::assert_error;
use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(usage_adds_up);

async fn chat(app: &TestApp, user: &str, model: &str) -> u16 {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", user)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

async fn usage(app: &TestApp, query: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/v1/usage?{query}"))).bearer_auth(&app.api_key).send().await.expect("send")
}

fn group<'a>(body: &'a Value, key: &str) -> &'a Value {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group {key} in {body}"))
}

async fn usage_adds_up(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("ann", "openai").await;
    app.connect_new_key("ben", "openai").await;
    app.connect_new_key("ben", "anthropic").await;
    let ok = |p: u64, c: u64| Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}),
    };
    app.mock.reply(ok(10, 3));
    assert_eq!(chat(&app, "ann", "gpt-4o-mini").await, 200);
    assert_eq!(chat(&app, "ann", "gpt-4o-mini").await, 200);
    app.mock.reply(ok(20, 5));
    assert_eq!(chat(&app, "ben", "gpt-4o").await, 200);
    app.mock.reply(Reply::Json {
        status: 429,
        headers: vec![],
        body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    });
    assert_eq!(chat(&app, "ben", "claude-haiku-4-5").await, 429);
    // Usage records are written as responses finish.
    for _ in 0..100 {
        if app.store.list_usage_events(app.tenant_id, 10).await.expect("store").len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let res = usage(&app, "groupBy=provider").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["total"]["requests"], 4);
    assert_eq!(body["total"]["errors"], 1);
    assert_eq!(body["total"]["promptTokens"], 40);
    assert_eq!(body["total"]["completionTokens"], 11);
    assert!(body["total"]["latencyMs"]["p95"].as_u64().is_some());
    let openai = group(&body, "openai");
    assert_eq!(
        (openai["requests"].as_u64(), openai["errors"].as_u64(), openai["promptTokens"].as_u64()),
        (Some(3), Some(0), Some(40))
    );
    let anthropic = group(&body, "anthropic");
    assert_eq!((anthropic["requests"].as_u64(), anthropic["errors"].as_u64()), (Some(1), Some(1)));

    let body: Value = usage(&app, "groupBy=model&endUserLabel=ann").await.json().await.expect("json");
    assert_eq!(body["total"]["requests"], 2);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(group(&body, "gpt-4o-mini")["completionTokens"], 6);

    let body: Value = usage(&app, "").await.json().await.expect("json");
    assert_eq!(body["groupBy"], "day");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(group(&body, &today)["requests"], 4);

    // A range without the workload is empty; bad parameters are clear.
    let body: Value = usage(&app, "from=2020-01-01&to=2020-02-01").await.json().await.expect("json");
    assert_eq!(body["total"]["requests"], 0);
    assert_error(usage(&app, "groupBy=hour").await, 400, "invalid_group_by").await;
    assert_error(usage(&app, "from=yesterday").await, 400, "invalid_time").await;
    assert_error(usage(&app, "from=2026-02-01&to=2026-01-01").await, 400, "invalid_time").await;
    assert_error(usage(&app, "endUserLabel=nobody").await, 404, "enduser_not_found").await;
    assert_error(usage(&app, "bogus=1").await, 400, "invalid_query").await;
    // Another tenant sees none of it.
    let (_, other) = app.other_tenant().await;
    let res = app.client.get(app.url("/v1/usage")).bearer_auth(&other).send().await.expect("send");
    assert_eq!(res.json::<Value>().await.expect("json")["total"]["requests"], 0);
}
