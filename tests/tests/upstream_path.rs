//! One upstream path, one policy: the unified API (`/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`) and the raw passthrough (`/relay/{provider}/…`) meet a silent provider, a
//! redirect, an error that quotes the stored key and the provider's request id the same way.

use std::time::Duration;

use rand::distributions::{Alphanumeric, DistString};
use relay_tests::app::{assert_error, spawn_app_with, SpawnOptions, TestApp};
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
    first_byte_timeout_is_504_upstream_timeout_on_both_paths,
    first_byte_timeout_answer_is_the_same_on_both_paths,
    echoed_key_is_masked_on_unified_chat,
    echoed_key_is_masked_in_a_unified_stream,
    echoed_key_is_masked_on_embeddings,
    echoed_key_is_masked_on_models,
    echoed_key_is_masked_on_the_passthrough,
    redirects_are_502_upstream_redirect_on_both_paths,
    google_request_id_comes_back_on_both_paths,
);

/// Small, so a silent provider is given up on quickly; whole seconds, as messages state them.
const FIRST_BYTE: Duration = Duration::from_secs(1);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, SpawnOptions { first_byte_timeout: FIRST_BYTE, ..SpawnOptions::default() }).await
}

/// Relay's redirects, if it sent any, must be seen, not followed.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn post(app: &TestApp, client: &reqwest::Client, path: &str, user: &str, body: &Value) -> reqwest::RequestBuilder {
    client.post(app.url(path)).bearer_auth(&app.api_key).header("x-relay-user", user).json(body)
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// Everything a test asserts, collected, so one run names every path that breaks the contract.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn finish(self) {
        assert!(self.0.is_empty(), "{} problem(s):\n- {}", self.0.len(), self.0.join("\n- "));
    }
}

/// A response read whole: status, every header as `name: value`, body.
struct Seen {
    status: u16,
    headers: Vec<String>,
    body: String,
}

impl Seen {
    async fn read(res: reqwest::Response) -> Self {
        let status = res.status().as_u16();
        let headers =
            res.headers().iter().map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()))).collect();
        let body = res.text().await.expect("body");
        Self { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| h.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")))
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

// 1. A provider that accepts the connection and never answers.

async fn timeouts(app: &TestApp) -> Vec<(&'static str, reqwest::Response)> {
    app.connect_new_key("u", "openai").await;
    app.mock.reply(Reply::Hang);
    let client = &app.client;
    let mut out = Vec::new();
    for (name, path, body) in [
        ("/v1/chat/completions", "/v1/chat/completions", chat_body("gpt-4o-mini")),
        ("/relay/openai/v1/chat/completions", "/relay/openai/v1/chat/completions", chat_body("gpt-4o-mini")),
    ] {
        let before = app.mock.requests().len();
        // Not a speed check: without a first-byte timeout Relay would wait forever; this turns
        // that hang into a failure.
        let res = post(app, client, path, "u", &body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("Relay answers although the provider never does");
        assert_eq!(app.mock.requests().len(), before + 1, "{name}: the request reached the silent provider");
        out.push((name, res));
    }
    out
}

async fn first_byte_timeout_is_504_upstream_timeout_on_both_paths(backend: Backend) {
    let app = app(backend).await;
    for (path, res) in timeouts(&app).await {
        let err = assert_error(res, 504, "upstream_timeout").await;
        assert_eq!(err["error"]["type"], "upstream_error", "{path}: {err}");
    }
    // A stream that never starts is the same failure: nothing was sent yet, so a plain 504.
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let res = post(&app, &app.client, "/v1/chat/completions", "u", &body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("Relay answers although the provider never does");
    let err = assert_error(res, 504, "upstream_timeout").await;
    assert_eq!(err["error"]["type"], "upstream_error", "stream: {err}");
}

async fn first_byte_timeout_answer_is_the_same_on_both_paths(backend: Backend) {
    let app = app(backend).await;
    let mut errors = Vec::new();
    for (path, res) in timeouts(&app).await {
        let body: Value = res.json().await.expect("json");
        errors.push((path, body["error"].clone()));
    }
    let (unified, passthrough) = (&errors[0], &errors[1]);
    assert_eq!(
        unified.1, passthrough.1,
        "one timeout, one answer: {} said {}, {} said {}",
        unified.0, unified.1, passthrough.0, passthrough.1
    );
}

// 2. A provider error that quotes the key it was sent.

/// A stored key of one shape, for an end user who connected only that provider.
struct Shape {
    provider: &'static str,
    label: &'static str,
    key: String,
    chat_model: &'static str,
    embedding_model: &'static str,
    relay_path: &'static str,
    /// As `GET /v1/users/{label}` shows it.
    fingerprint: String,
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

async fn connect_shapes(app: &TestApp) -> Vec<Shape> {
    let mut shapes = vec![
        Shape {
            provider: "openai",
            label: "openai-user",
            key: format!("sk-proj-{}", random(40)),
            chat_model: "gpt-4o-mini",
            embedding_model: "text-embedding-3-small",
            relay_path: "/relay/openai/v1/chat/completions",
            fingerprint: String::new(),
        },
        Shape {
            provider: "mistral",
            label: "mistral-user",
            key: random(32),
            chat_model: "mistral-small-latest",
            embedding_model: "mistral/mistral-embed",
            relay_path: "/relay/mistral/v1/chat/completions",
            fingerprint: String::new(),
        },
        Shape {
            provider: "openai-compatible",
            label: "compatible-user",
            key: format!("local-{}", random(24)),
            chat_model: "openai-compatible/some-model",
            embedding_model: "openai-compatible/embed-model",
            relay_path: "/relay/openai-compatible/chat/completions",
            fingerprint: String::new(),
        },
    ];
    for shape in &mut shapes {
        app.mock.accept(&shape.key);
        let token = app.registration_token(shape.label, None).await;
        let mut body = json!({"registrationToken": token, "provider": shape.provider, "apiKey": shape.key});
        if shape.provider == "openai-compatible" {
            body["baseUrl"] = json!(format!("{}/v1", app.mock.url));
        }
        let res = app.client.post(app.url("/v1/connect")).json(&body).send().await.expect("send");
        assert_eq!(res.status(), 200, "connect {}: {}", shape.provider, res.text().await.unwrap_or_default());
        let user: Value = app.get_user(shape.label).await.json().await.expect("json");
        let providers = user["providers"].as_array().expect("providers");
        assert_eq!(providers.len(), 1, "{} connected one provider only", shape.label);
        shape.fingerprint = providers[0]["fingerprint"].as_str().expect("fingerprint").to_owned();
        assert!(!shape.key.contains(&shape.fingerprint), "a fingerprint is not a piece of the key");
    }
    shapes
}

/// What OpenAI answers to a key it refuses, quoting the key.
fn key_refused() -> Reply {
    Reply::Json {
        status: 401,
        headers: vec![],
        body: json!({"error": {"message": format!("Incorrect API key provided: {PRESENTED_KEY}. Check it."),
                               "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
    }
}

/// The key, or any 12 characters of it in a row, is in `text`.
fn leaks(text: &str, key: &str) -> bool {
    let chars: Vec<char> = key.chars().collect();
    chars.windows(12).any(|w| text.contains(&w.iter().collect::<String>()))
}

/// The key appears nowhere in the response; the status is `status`; the body is JSON with an
/// error message that shows the key as its fingerprint.
fn check_masked(problems: &mut Problems, what: &str, shape: &Shape, seen: &Seen, status: u16) {
    let at = format!("{what} ({} key)", shape.provider);
    problems.check(seen.status == status, || format!("{at}: status {} instead of {status}", seen.status));
    problems.check(!seen.headers.iter().any(|h| leaks(h, &shape.key)), || format!("{at}: the key is in a header"));
    problems.check(!leaks(&seen.body, &shape.key), || format!("{at}: the key is in the body: {}", seen.body));
    let message = seen.json().and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned));
    match message {
        Some(m) if !m.is_empty() => problems.check(m.contains(&shape.fingerprint), || {
            format!("{at}: the message does not show the key as its fingerprint {:?}: {m:?}", shape.fingerprint)
        }),
        _ => problems.0.push(format!("{at}: no JSON error message in {:?}", seen.body)),
    }
}

async fn echoed_key_is_masked_on_unified_chat(backend: Backend) {
    let app = app(backend).await;
    let shapes = connect_shapes(&app).await;
    app.mock.answer_every_request(Some(key_refused()));
    let mut problems = Problems::default();
    for shape in &shapes {
        let res = post(&app, &app.client, "/v1/chat/completions", shape.label, &chat_body(shape.chat_model));
        let seen = Seen::read(res.send().await.expect("send")).await;
        check_masked(&mut problems, "/v1/chat/completions", shape, &seen, 401);
    }
    problems.finish();
}

async fn echoed_key_is_masked_in_a_unified_stream(backend: Backend) {
    let app = app(backend).await;
    let shapes = connect_shapes(&app).await;
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]});
    // The key in the message and, as some servers do, in `param`.
    let error = json!({"error": {"message": format!("key {PRESENTED_KEY} was revoked"), "type": "invalid_request_error",
                                 "param": PRESENTED_KEY, "code": "invalid_api_key"}});
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: format!("data: {chunk}\n\ndata: {error}\n\n"),
        max_piece: 9,
        delay: Duration::from_millis(2),
    });
    let mut problems = Problems::default();
    for shape in &shapes {
        let mut body = chat_body(shape.chat_model);
        body["stream"] = json!(true);
        let res = post(&app, &app.client, "/v1/chat/completions", shape.label, &body).send().await.expect("send");
        let seen = Seen::read(res).await;
        let at = format!("stream ({} key)", shape.provider);
        problems.check(seen.status == 200, || format!("{at}: status {}", seen.status));
        problems.check(!seen.headers.iter().any(|h| leaks(h, &shape.key)), || format!("{at}: the key is in a header"));
        problems.check(!leaks(&seen.body, &shape.key), || format!("{at}: the key is in the stream: {}", seen.body));
        let events: Vec<Value> = seen
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        assert!(
            events.iter().any(|e| e.pointer("/choices/0/delta/content") == Some(&json!("a"))),
            "{at}: the content came first, so the error is mid-stream: {}",
            seen.body
        );
        let Some(err) = events.iter().find_map(|e| e.get("error")) else {
            problems.0.push(format!("{at}: no error event in {}", seen.body));
            continue;
        };
        let message = err["message"].as_str().unwrap_or_default();
        problems.check(message.contains(&shape.fingerprint), || {
            format!("{at}: the message does not show the fingerprint {:?}: {message:?}", shape.fingerprint)
        });
        let param = err["param"].as_str().unwrap_or_default();
        problems.check(param.contains(&shape.fingerprint), || {
            format!("{at}: `param` does not show the fingerprint {:?}: {param:?}", shape.fingerprint)
        });
    }
    problems.finish();
}

async fn echoed_key_is_masked_on_embeddings(backend: Backend) {
    let app = app(backend).await;
    let shapes = connect_shapes(&app).await;
    app.mock.answer_every_request(Some(key_refused()));
    let mut problems = Problems::default();
    for shape in &shapes {
        let body = json!({"model": shape.embedding_model, "input": "hello"});
        let seen =
            Seen::read(post(&app, &app.client, "/v1/embeddings", shape.label, &body).send().await.expect("send")).await;
        check_masked(&mut problems, "/v1/embeddings", shape, &seen, 401);
    }
    let seen = app.mock.requests();
    assert!(
        seen.iter().filter(|r| r.method == "POST").all(|r| r.path.ends_with("/embeddings")),
        "embeddings were asked"
    );
    problems.finish();
}

async fn echoed_key_is_masked_on_models(backend: Backend) {
    let app = app(backend).await;
    let shapes = connect_shapes(&app).await;
    app.mock.answer_every_request(Some(key_refused()));
    let mut problems = Problems::default();
    for shape in &shapes {
        let res = app
            .client
            .get(app.url("/v1/models"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", shape.label)
            .send()
            .await
            .expect("send");
        // Every connected provider (here the only one) failed: its error, status kept.
        check_masked(&mut problems, "/v1/models", shape, &Seen::read(res).await, 401);
    }
    problems.finish();
}

async fn echoed_key_is_masked_on_the_passthrough(backend: Backend) {
    let app = app(backend).await;
    let shapes = connect_shapes(&app).await;
    app.mock.answer_every_request(Some(key_refused()));
    let mut problems = Problems::default();
    for shape in &shapes {
        let res = post(&app, &app.client, shape.relay_path, shape.label, &chat_body("some-model"));
        check_masked(&mut problems, shape.relay_path, shape, &Seen::read(res.send().await.expect("send")).await, 401);
    }
    problems.finish();
}

// 3. A provider that redirects: never followed, never passed on.

async fn redirects_are_502_upstream_redirect_on_both_paths(backend: Backend) {
    let app = app(backend).await;
    app.connect_new_key("u", "openai").await;
    let key = "local-redirecting-server-key";
    app.mock.accept(key);
    let token = app.registration_token("c", None).await;
    let body = json!({"registrationToken": token, "provider": "openai-compatible", "apiKey": key,
                      "baseUrl": format!("{}/v1", app.mock.url)});
    assert_eq!(app.client.post(app.url("/v1/connect")).json(&body).send().await.expect("send").status(), 200);
    app.mock.reply(Reply::Json {
        status: 302,
        headers: vec![("location".into(), "http://127.0.0.1:1/elsewhere".into())],
        body: json!({}),
    });
    let client = no_redirects();
    let mut problems = Problems::default();
    for (user, path, model) in [
        ("u", "/v1/chat/completions", "gpt-4o-mini"),
        ("u", "/relay/openai/v1/chat/completions", "gpt-4o-mini"),
        ("c", "/v1/chat/completions", "openai-compatible/some-model"),
        ("c", "/relay/openai-compatible/chat/completions", "some-model"),
    ] {
        let before = app.mock.requests().len();
        let seen = Seen::read(post(&app, &client, path, user, &chat_body(model)).send().await.expect("send")).await;
        assert_eq!(app.mock.requests().len(), before + 1, "{path} ({model}) reached the redirecting provider");
        let at = format!("{path} ({model})");
        problems.check(seen.status == 502, || format!("{at}: status {} instead of 502", seen.status));
        problems.check(seen.header("location").is_none(), || format!("{at}: a location header was passed on"));
        problems.check(!seen.body.contains("127.0.0.1:1"), || format!("{at}: the redirect target is in the body"));
        problems.check(seen.header("x-relay-request-id").is_some_and(|i| i.starts_with("req_")), || {
            format!("{at}: no x-relay-request-id")
        });
        let err = seen.json().map(|v| v["error"].clone()).unwrap_or_default();
        problems.check(err["type"] == "upstream_error" && err["code"] == "upstream_redirect", || {
            format!("{at}: not upstream_error/upstream_redirect: {}", seen.body)
        });
    }
    problems.finish();
}

// 4. The provider's request id.

async fn google_request_id_comes_back_on_both_paths(backend: Backend) {
    let app = app(backend).await;
    app.connect_new_key("u", "google").await;
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![("x-goog-request-id".into(), "goog-req-42".into())],
        body: json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                     "modelVersion": "gemini-2.5-flash"}),
    });
    let mut problems = Problems::default();
    for (path, body) in [
        ("/v1/chat/completions", chat_body("gemini-2.5-flash")),
        (
            "/relay/google/v1beta/models/gemini-2.5-flash:generateContent",
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
    ] {
        let seen = Seen::read(post(&app, &app.client, path, "u", &body).send().await.expect("send")).await;
        assert_eq!(seen.status, 200, "{path}: {}", seen.body);
        assert!(app.mock.last_post().path.ends_with(":generateContent"), "{path} reached Gemini");
        problems.check(seen.header("x-upstream-request-id") == Some("goog-req-42"), || {
            format!("{path}: x-upstream-request-id is {:?}", seen.header("x-upstream-request-id"))
        });
    }
    problems.finish();
}
