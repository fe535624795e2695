//! The end user's own monthly cap, set in Chromium by `widget.test.mjs` (the widget for OpenAI,
//! /connect for Anthropic): shown to the tenant, enforced, and out of the tenant's reach (no
//! route, and neither a registration token nor a session token it mints works without the key).

use relay::store::UsageEvent;
use relay_tests::app::{assert_error, TestApp};
use relay_tests::mock::Reply;
use relay_tests::{fake_keys, fixtures};
use serde_json::{json, Value};

/// The end user who set their own monthly cap in the browser: $0.05 on their OpenAI key in the
/// widget, $2.50 on their Anthropic key on /connect.
pub const CAP_USER: &str = "cap-user";

async fn caps(app: &TestApp) -> Vec<(String, Value)> {
    let user: Value = app.get_user(CAP_USER).await.json().await.expect("json");
    let mut caps: Vec<(String, Value)> = (user["providers"].as_array().expect("providers").iter())
        .map(|p| (p["provider"].as_str().expect("provider").to_owned(), p["monthlyCapUsd"].clone()))
        .collect();
    caps.sort_by(|a, b| a.0.cmp(&b.0));
    caps
}

async fn chat(app: &TestApp, model: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", CAP_USER)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "Say hello in French."}]}))
        .send()
        .await
        .expect("request")
}

/// A call on the capped OpenAI key: 402 naming the end user's own cap, the provider not called.
async fn refused(app: &TestApp) {
    let seen = app.mock.requests().len();
    let body = assert_error(chat(app, "gpt-4o-mini").await, 402, "budget_exceeded").await;
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("end user's own monthly cap of $0.05 on their openai key"), "{message}");
    assert_eq!(app.mock.requests().len(), seen, "the provider was not called");
}

/// Enforced once spent, for that key only; and nothing the tenant holds can raise it.
pub async fn the_cap_set_in_the_browser_holds(app: &TestApp, anthropic_key: &str) {
    let set = vec![("anthropic".to_owned(), json!(2.5)), ("openai".to_owned(), json!(0.05))];
    assert_eq!(caps(app).await, set);

    // $0.05 spent on the OpenAI key this month, as priced calls would record it.
    let user = app.end_user(CAP_USER).await;
    let spent = UsageEvent {
        id: uuid::Uuid::new_v4(),
        tenant_id: app.tenant_id,
        end_user_id: Some(user.id),
        api_key_id: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        paid: true,
        prompt_tokens: Some(1000),
        completion_tokens: Some(500),
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        latency_ms: 40,
        ttft_ms: None,
        created_at: chrono::Utc::now(),
        cost_nanos: Some(50_000_000),
    };
    app.store.insert_usage_events(&[spent]).await.expect("spend");
    refused(app).await;

    // The same user's Anthropic key has its own cap, not reached.
    let upstream = fixtures::read_json(&fixtures::fixtures_dir("anthropic").join("text/upstream_response.json"));
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: upstream["body"].clone() });
    assert_eq!(chat(app, "claude-sonnet-4-5").await.status(), 200);
    assert_eq!(app.mock.last_post().header("x-api-key"), Some(anthropic_key));

    // No route changes it with the tenant's rly- key.
    for path in [format!("/v1/users/{CAP_USER}"), format!("/v1/users/{CAP_USER}/keys/openai")] {
        for method in [reqwest::Method::PUT, reqwest::Method::PATCH, reqwest::Method::POST] {
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&app.api_key)
                .json(&json!({"monthlyCapUsd": 1000}))
                .send()
                .await
                .expect("request");
            assert!([404, 405].contains(&res.status().as_u16()), "{method} {path}: {}", res.status());
        }
    }
    // A registration token the tenant mints does not change it without the key: no key is a
    // 400, a wrong key is refused by the provider check. Neither spends the token.
    let token = app.registration_token(CAP_USER, Some("openai")).await;
    let res = app
        .client
        .post(app.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "monthlyCapUsd": 1000}))
        .send()
        .await
        .expect("request");
    assert_error(res, 400, "invalid_request_body").await;
    let guess = fake_keys::for_provider("openai");
    let res = app
        .client
        .post(app.url("/v1/connect"))
        .json(&json!({"registrationToken": token, "provider": "openai", "apiKey": guess, "monthlyCapUsd": 1000}))
        .send()
        .await
        .expect("request");
    assert_error(res, 400, "provider_key_rejected").await;
    assert_eq!(app.describe_token(&token).await.status(), 200, "the token is unused");

    // Nor does a session token the tenant mints for the user, with the browser flow on.
    let mut settings = app.store.get_tenant_settings(app.tenant_id).await.expect("store").unwrap_or_default();
    settings.byok_flow_enabled = true;
    assert!(app.store.update_tenant_settings(app.tenant_id, &settings).await.expect("store"));
    let res = app
        .client
        .post(app.url("/v1/session-tokens"))
        .bearer_auth(&app.api_key)
        .json(&json!({"endUserLabel": CAP_USER}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let session: Value = res.json().await.expect("json");
    let session = session["sessionToken"].as_str().expect("session token");
    for (body, code) in [
        (json!({"monthlyCapUsd": 1000}), "invalid_request_body"),
        (json!({"key": guess, "monthlyCapUsd": 1000}), "provider_key_rejected"),
    ] {
        let res = app
            .client
            .post(app.url("/keys/openai"))
            .header("x-relay-token", session)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_error(res, 400, code).await;
    }
    assert_eq!(caps(app).await, set, "the caps are unchanged");
    refused(app).await;
}
