//! Key health: a provider's 401 marks the stored key `invalid` (shown in `GET /v1/users/{label}`
//! with a masked reason and a time) and later calls are refused with 403 `enduser_key_invalid`
//! without reaching the provider, on the unified API and the passthrough alike, until a key is
//! connected again; a quota error marks `quota_exhausted` and the next success clears it; a
//! plain rate limit changes nothing. The byok flow's `GET /keys` shows the same, and its
//! `POST /keys/{provider}` resets it.

use relay_tests::app::{assert_error, spawn_app, TestApp};
use relay_tests::mock::{Reply, PRESENTED_KEY};
use relay_tests::Backend;
use serde_json::{json, Value};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Postgres).await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(relay_tests::Backend::Sqlite).await } )* }
    };
}

both_backends!(
    a_401_marks_the_key_invalid_and_later_calls_never_reach_the_provider,
    the_passthrough_marks_and_refuses_the_same_way,
    a_quota_error_marks_quota_exhausted_and_a_success_clears_it,
    a_rate_limit_changes_nothing,
    the_byok_flow_lists_the_status_and_storing_a_key_resets_it,
    a_call_in_flight_does_not_mark_a_key_connected_since,
);

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Json { status, headers: vec![], body }
}

fn completion() -> Reply {
    json_reply(
        200,
        json!({
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        }),
    )
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "u")
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn chat(app: &TestApp, model: &str) -> reqwest::Response {
    post(app, "/v1/chat/completions", json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})).await
}

/// The one provider entry of user `u` in `GET /v1/users/u`.
async fn stored(app: &TestApp) -> Value {
    let res = app.get_user("u").await;
    assert_eq!(res.status(), 200);
    let user: Value = res.json().await.expect("json");
    assert_eq!(user["providers"].as_array().map(Vec::len), Some(1), "{user}");
    user["providers"][0].clone()
}

fn assert_ok(entry: &Value) {
    assert_eq!(entry["status"], "ok", "{entry}");
    assert!(entry["statusReason"].is_null() && entry.get("statusReason").is_some(), "{entry}");
    assert!(entry.get("statusAt").is_some(), "{entry}");
}

/// `invalid`, with a reason that names the provider's answer and never holds `key`.
fn assert_invalid(entry: &Value, key: &str, starts: &str) {
    assert_eq!(entry["status"], "invalid", "{entry}");
    let reason = entry["statusReason"].as_str().expect("a reason");
    assert!(reason.starts_with(starts), "{reason}");
    assert!(!reason.contains(key) && !reason.contains(&key[key.len() - 12..]), "the key in {reason}");
    let at = entry["statusAt"].as_str().expect("a time");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
}

async fn metrics(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.expect("scrape").text().await.expect("text")
}

async fn a_401_marks_the_key_invalid_and_later_calls_never_reach_the_provider(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = app.connect_new_key("u", "openai").await;
    assert_ok(&stored(&app).await);
    app.mock.reply(json_reply(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {PRESENTED_KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
    ));
    let res = chat(&app, "gpt-4o-mini").await;
    assert_eq!(res.status(), 401, "the provider's answer is passed on");
    assert!(!res.text().await.expect("body").contains(&key));
    assert_invalid(&stored(&app).await, &key, "openai answered 401 invalid_request_error: Incorrect API key provided");
    let text = metrics(&app).await;
    assert!(text.contains(r#"relay_key_status_changes_total{provider="openai",status="invalid"} 1"#), "{text}");

    // Refused at once on every route, the provider never asked again.
    let reached = app.mock.requests().len();
    let refusals = [
        chat(&app, "gpt-4o-mini").await,
        post(&app, "/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "hi"})).await,
        app.client
            .get(app.url("/v1/models"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "u")
            .send()
            .await
            .expect("request"),
        post(&app, "/relay/openai/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": []})).await,
    ];
    for res in refusals {
        let body = assert_error(res, 403, "enduser_key_invalid").await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("openai") && message.contains("connect a new"), "{message}");
        assert!(!body.to_string().contains(&key));
    }
    assert_eq!(app.mock.requests().len(), reached, "no call reached the provider");
    assert_invalid(&stored(&app).await, &key, "openai answered 401");

    // Connecting a key again restores it; calls go through.
    app.mock.reply(completion());
    let new_key = app.connect_new_key("u", "openai").await;
    assert_ok(&stored(&app).await);
    let res = chat(&app, "gpt-4o-mini").await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.mock.last_post().header("authorization"), Some(format!("Bearer {new_key}").as_str()));
}

async fn the_passthrough_marks_and_refuses_the_same_way(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = app.connect_new_key("u", "anthropic").await;
    app.mock.reply(json_reply(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {PRESENTED_KEY}")}}),
    ));
    let messages =
        json!({"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let res = post(&app, "/relay/anthropic/v1/messages", messages.clone()).await;
    assert_eq!(res.status(), 401, "the provider's answer is passed on");
    assert!(!res.text().await.expect("body").contains(&key));
    assert_invalid(&stored(&app).await, &key, "anthropic answered 401 authentication_error: invalid x-api-key");

    let reached = app.mock.requests().len();
    assert_error(post(&app, "/relay/anthropic/v1/messages", messages.clone()).await, 403, "enduser_key_invalid").await;
    assert_error(chat(&app, "claude-haiku-4-5").await, 403, "enduser_key_invalid").await;
    assert_eq!(app.mock.requests().len(), reached, "no call reached the provider");

    app.mock.reply(json_reply(200, json!({"id": "msg_1", "type": "message", "role": "assistant", "content": []})));
    let new_key = app.connect_new_key("u", "anthropic").await;
    assert_ok(&stored(&app).await);
    let res = post(&app, "/relay/anthropic/v1/messages", messages).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.mock.last_post().header("x-api-key"), Some(new_key.as_str()));
}

async fn a_quota_error_marks_quota_exhausted_and_a_success_clears_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = app.connect_new_key("u", "openai").await;
    app.mock.reply(json_reply(
        429,
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
    ));
    assert_eq!(chat(&app, "gpt-4o-mini").await.status(), 429);
    let entry = stored(&app).await;
    assert_eq!(entry["status"], "quota_exhausted", "{entry}");
    let reason = entry["statusReason"].as_str().expect("a reason");
    assert!(reason.starts_with("openai answered 429 insufficient_quota: You exceeded your current quota"), "{reason}");
    assert!(!reason.contains(&key));
    assert!(entry["statusAt"].is_string());

    // Still called (the key may be topped up); the same answer again is no new change.
    let reached = app.mock.requests().len();
    assert_eq!(chat(&app, "gpt-4o-mini").await.status(), 429);
    assert_eq!(app.mock.requests().len(), reached + 1, "a quota_exhausted key is still used");
    let text = metrics(&app).await;
    assert!(text.contains(r#"relay_key_status_changes_total{provider="openai",status="quota_exhausted"} 1"#), "{text}");

    app.mock.reply(completion());
    assert_eq!(chat(&app, "gpt-4o-mini").await.status(), 200);
    let entry = stored(&app).await;
    assert_eq!(entry["status"], "ok", "{entry}");
    assert!(entry["statusReason"].is_null() && entry["statusAt"].is_string(), "{entry}");
    let text = metrics(&app).await;
    assert!(text.contains(r#"relay_key_status_changes_total{provider="openai",status="ok"} 1"#), "{text}");
}

async fn a_rate_limit_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.connect_new_key("u", "openai").await;
    app.mock.reply(json_reply(
        429,
        json!({"error": {"message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    ));
    let reached = app.mock.requests().len();
    for _ in 0..2 {
        assert_eq!(chat(&app, "gpt-4o-mini").await.status(), 429);
    }
    assert_eq!(app.mock.requests().len(), reached + 2);
    let entry = stored(&app).await;
    assert_ok(&entry);
    assert!(entry["statusAt"].is_null(), "{entry}");
    assert!(!metrics(&app).await.contains("relay_key_status_changes_total{"), "no change counted");
}

async fn the_byok_flow_lists_the_status_and_storing_a_key_resets_it(backend: Backend) {
    const ORIGIN: &str = "https://app.example.com";
    let app = spawn_app(backend).await;
    let settings = relay::store::TenantSettings {
        byok_flow_enabled: true,
        allowed_origins: vec![ORIGIN.into()],
        ..Default::default()
    };
    assert!(app.store.update_tenant_settings(app.tenant_id, &settings).await.expect("settings"));
    let app_id = app.store.get_tenant(app.tenant_id).await.expect("store").expect("tenant").app_id;
    let res = app.client.post(app.url("/users")).header("origin", ORIGIN).json(&json!({"app_id": app_id})).send();
    let registered: Value = res.await.expect("register").json().await.expect("json");
    let token = registered["token"].as_str().expect("a session token").to_owned();
    let store_key = |key: String| {
        app.mock.accept(&key);
        app.client
            .post(app.url("/keys/openai"))
            .header("origin", ORIGIN)
            .header("x-relay-token", &token)
            .json(&json!({"key": key}))
            .send()
    };
    let listed = || async {
        let res = app.client.get(app.url("/keys")).header("origin", ORIGIN).header("x-relay-token", &token).send();
        let v: Value = res.await.expect("list").json().await.expect("json");
        v["keys"][0].clone()
    };
    let relay = || {
        app.client
            .post(app.url("/relay/openai/v1/chat/completions"))
            .header("origin", ORIGIN)
            .header("x-relay-token", &token)
            .json(&json!({"model": "gpt-4o-mini", "messages": []}))
            .send()
    };

    let key = relay_tests::fake_keys::for_provider("openai");
    assert_eq!(store_key(key.clone()).await.expect("store").status(), 200);
    assert_ok(&listed().await);
    app.mock.reply(json_reply(401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})));
    assert_eq!(relay().await.expect("relay").status(), 401);
    assert_invalid(&listed().await, &key, "openai answered 401 invalid_request_error: Incorrect API key provided");
    let reached = app.mock.requests().len();
    assert_error(relay().await.expect("relay"), 403, "enduser_key_invalid").await;
    assert_eq!(app.mock.requests().len(), reached, "no call reached the provider");

    app.mock.reply(completion());
    assert_eq!(store_key(relay_tests::fake_keys::for_provider("openai")).await.expect("store").status(), 200);
    assert_ok(&listed().await);
    assert_eq!(relay().await.expect("relay").status(), 200);
}

async fn a_call_in_flight_does_not_mark_a_key_connected_since(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    app.connect_new_key("u", "openai").await;
    // A 401 whose body takes a while: Relay reads it before it judges the key.
    let body = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}});
    app.mock.reply(Reply::Raw {
        status: 401,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
        max_piece: 8,
        delay: std::time::Duration::from_millis(150),
    });
    let in_flight = tokio::spawn({
        let app = app.clone();
        async move { chat(&app, "gpt-4o-mini").await.status() }
    });
    while !app.mock.requests().iter().any(|r| r.method == "POST") {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.connect_new_key("u", "openai").await;
    assert!(!in_flight.is_finished(), "the old call was still being answered when the new key came");
    assert_eq!(in_flight.await.expect("the call"), 401);
    let entry = stored(&app).await;
    assert_ok(&entry);
    assert!(entry["statusAt"].is_null(), "the new key was never marked: {entry}");
}
