//! `openai-compatible`: the base URL is chosen when the key is stored, checked by the SSRF
//! policy, sealed with the key, and the only place the key is ever sent.

use relay_tests::app::{assert_error, TestApp};
use relay_tests::mock::Reply;
use relay_tests::{spawn_app, Backend};
use serde_json::{json, Value};

async fn connect(app: &TestApp, label: &str, provider: &str, key: &str, base_url: Option<&str>) -> reqwest::Response {
    let token = app.registration_token(label, None).await;
    let mut body = json!({"registrationToken": token, "provider": provider, "apiKey": key});
    if let Some(b) = base_url {
        body["baseUrl"] = json!(b);
    }
    app.client.post(app.url("/v1/connect")).json(&body).send().await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_urls_are_checked_when_the_key_is_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    let key = "local-model-key-1234";
    app.mock.accept(key);
    let cases: [(&str, Option<&str>, u16, &str); 9] = [
        ("openai-compatible", None, 400, "base_url_required"),
        ("openai", Some("https://api.example.com/v1"), 400, "base_url_not_allowed"),
        ("openai-compatible", Some("https://169.254.169.254/latest"), 400, "upstream_not_allowed"),
        ("openai-compatible", Some("https://10.0.0.5/v1"), 400, "upstream_not_allowed"),
        ("openai-compatible", Some("https://[::ffff:127.0.0.1]/v1"), 400, "upstream_not_allowed"),
        // 169.254.169.254 spelled in hex.
        ("openai-compatible", Some("https://0xA9FEA9FE/latest"), 400, "upstream_not_allowed"),
        ("openai-compatible", Some("http://api.example.com/v1"), 400, "upstream_not_https"),
        ("openai-compatible", Some("https://user:pw@api.example.com/v1"), 400, "invalid_upstream_url"),
        ("openai-compatible", Some("https://localhost/v1"), 400, "upstream_not_allowed"),
    ];
    for (provider, base, status, code) in cases {
        let res = connect(&app, "u", provider, key, base).await;
        let err = assert_error(res, status, code).await;
        assert_eq!(err["error"]["param"], "baseUrl", "{base:?}");
    }
    assert!(app.mock.requests().is_empty(), "no refused base URL was contacted");
    let user = app.end_user("u").await;
    assert!(app.store.list_provider_keys(user.id).await.expect("list").is_empty());

    // The operator allow-listed 127.0.0.1 (as for a LAN server): accepted, key checked there.
    let base = format!("{}/v1", app.mock.url);
    let res = connect(&app, "u", "openai-compatible", key, Some(&base)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body, json!({"provider": "openai-compatible", "fingerprint": "…1234"}));
    let check = app.mock.requests().pop().expect("key check");
    assert_eq!((check.method.as_str(), check.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(check.header("authorization"), Some(format!("Bearer {key}").as_str()));
    // A key the server refuses is not stored.
    let res = connect(&app, "v", "openai-compatible", "wrong-key", Some(&base)).await;
    assert_error(res, 400, "provider_key_rejected").await;
    let refused = app.end_user("v").await;
    assert!(app.store.list_provider_keys(refused.id).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_only_the_stored_server() {
    let app = spawn_app(Backend::Postgres).await;
    let key = "ollama-style-key-abcd";
    app.mock.accept(key);
    let base = format!("{}/v1", app.mock.url);
    assert_eq!(connect(&app, "ana", "openai-compatible", key, Some(&base)).await.status(), 200);
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![],
        body: json!({"id": "x", "object": "chat.completion", "created": 1, "model": "llama3",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
    });
    let relay = |path: &str| {
        app.client
            .post(app.url(&format!("/relay/openai-compatible{path}")))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", "ana")
            .json(&json!({"model": "llama3", "messages": []}))
    };

    // Passthrough, below the stored base URL.
    let res = relay("/chat/completions").send().await.expect("send");
    assert_eq!(res.status(), 200);
    let seen = app.mock.last_post();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {key}").as_str()));
    // x-relay-base-url may name the stored server (normalised), and nothing else.
    let res = relay("/chat/completions").header("x-relay-base-url", format!("{base}/")).send().await.expect("send");
    assert_eq!(res.status(), 200);
    let res = relay("/chat/completions")
        .header("x-relay-base-url", "https://attacker.example/v1")
        .send()
        .await
        .expect("send");
    assert_error(res, 403, "base_url_mismatch").await;
    let res = relay("/admin/users").send().await.expect("send");
    assert_error(res, 403, "path_not_allowed").await;

    // The unified API: openai-compatible/<model>.
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "ana")
        .json(&json!({"model": "openai-compatible/llama3", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let seen = app.mock.last_post();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json()["model"], "llama3");

    // The base URL is sealed with the key: pointing the row elsewhere makes the key unusable.
    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("db");
    sqlx::query("UPDATE provider_keys SET base_url = 'http://127.0.0.1:9/v1'").execute(&pool).await.expect("update");
    let before = app.mock.requests().len();
    let res = relay("/chat/completions").send().await.expect("send");
    assert_error(res, 500, "provider_key_undecryptable").await;
    assert_eq!(app.mock.requests().len(), before, "nothing was sent anywhere");
}
