//! The unified API for OpenAI-format providers (OpenAI, Groq, Mistral, OpenRouter): requests go
//! through with only the model renamed, streams are piped event by event, errors keep their
//! status and rate-limit headers, and a client that leaves cancels the upstream at once.

use std::time::{Duration, Instant};

use futures::StreamExt;
use relay_tests::app::{assert_error, spawn_app, spawn_app_with, SpawnOptions, TestApp};
use relay_tests::mock::Reply;
use relay_tests::Backend;
use serde_json::{json, Value};

async fn chat(app: &TestApp, user: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", user)
        .json(body)
        .send()
        .await
        .expect("send")
}

fn completion(model: &str) -> Value {
    json!({
        "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    })
}

/// An OpenAI-style stream: role, two content deltas, finish, optional usage chunk, [DONE].
fn openai_stream(with_usage: bool) -> String {
    let base = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![
        base(json!({"role": "assistant", "content": ""}), Value::Null),
        base(json!({"content": "Hel"}), Value::Null),
        base(json!({"content": "lo, wörld"}), Value::Null),
        base(json!({}), json!("stop")),
    ];
    if with_usage {
        events.push(json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
                           "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}));
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    text
}

/// The `data:` payloads of an SSE body.
fn data_lines(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
}

async fn wait_for_usage(app: &TestApp, n: usize) -> Vec<relay::store::UsageEvent> {
    for _ in 0..100 {
        let events = app.store.list_usage_events(app.tenant_id, 100).await.expect("usage");
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no usage event recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_goes_through_with_only_the_model_renamed_postgres() {
    non_streaming_passthrough(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_goes_through_with_only_the_model_renamed_sqlite() {
    non_streaming_passthrough(Backend::Sqlite).await;
}

async fn non_streaming_passthrough(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = app.connect_new_key("ana", "groq").await;
    let upstream = completion("llama-3.3-70b-versatile");
    app.mock.reply(Reply::Json {
        status: 200,
        headers: vec![
            ("x-request-id".into(), "req_groq_123".into()),
            ("x-ratelimit-remaining-requests".into(), "99".into()),
        ],
        body: upstream.clone(),
    });
    let request = json!({"model": "groq/llama-3.3-70b-versatile", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.2, "some_future_param": {"kept": true}});
    let res = chat(&app, "ana", &request).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-upstream-request-id"], "req_groq_123");
    assert_eq!(res.headers()["x-ratelimit-remaining-requests"], "99");
    assert!(res.headers()["x-relay-request-id"].to_str().expect("ascii").starts_with("req_"));
    assert_eq!(res.json::<Value>().await.expect("json"), upstream, "the answer is passed on unchanged");

    let seen = app.mock.last_post();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {key}").as_str()));
    let mut expected = request.clone();
    expected["model"] = json!("llama-3.3-70b-versatile");
    assert_eq!(seen.json(), expected, "only the model is renamed");
    assert_eq!(seen.header("x-relay-user"), None, "Relay's own headers stay with Relay");

    let events = wait_for_usage(&app, 1).await;
    let e = &events[0];
    assert_eq!((e.provider.as_str(), e.model.as_str(), e.status), ("groq", "groq/llama-3.3-70b-versatile", 200));
    assert_eq!((e.prompt_tokens, e.completion_tokens), (Some(9), Some(2)));
    assert!(e.paid);
    // The key's last use is recorded.
    let user: Value = app.get_user("ana").await.json().await.expect("json");
    assert!(user["providers"][0]["lastUsedAt"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_piped_event_by_event_and_usage_is_recorded() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("bo", "openai").await;
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: openai_stream(true),
        max_piece: 7,
        delay: Duration::from_millis(2),
    });
    let req = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "bo")
        .header("x-relay-paid", "false")
        .json(&req)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
    let body = res.text().await.expect("body");
    // Relay asked for usage; the client did not, so it does not get the usage chunk.
    let sent = app.mock.last_post().json();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    let expected: Vec<String> = data_lines(&openai_stream(false));
    assert_eq!(data_lines(&body), expected, "every event passed on as sent, in order");
    let events = wait_for_usage(&app, 1).await;
    assert_eq!((events[0].prompt_tokens, events[0].completion_tokens), (Some(12), Some(4)));
    assert!(!events[0].paid, "X-Relay-Paid: false is recorded");
    assert!(events[0].ttft_ms.is_some());

    // A client that asks for usage gets the chunk.
    let mut req = req.clone();
    req["stream_options"] = json!({"include_usage": true});
    let body = chat(&app, "bo", &req).await.text().await.expect("body");
    assert_eq!(data_lines(&body), data_lines(&openai_stream(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_keep_status_and_rate_limit_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("cy", "openai").await;
    for status in [400u16, 401, 403, 404, 413, 429, 500, 529] {
        // A user per status: a 401 or 403 marks the key invalid (key health).
        let label = format!("cy{status}");
        app.connect_new_key(&label, "openai").await;
        app.mock.reply(Reply::Json {
            status,
            headers: vec![
                ("retry-after".into(), "7".into()),
                ("x-ratelimit-reset-requests".into(), "1s".into()),
                ("set-cookie".into(), "tracking=1".into()),
            ],
            body: json!({"error": {"message": format!("upstream says {status}"), "type": "invalid_request_error", "param": null, "code": "x"}}),
        });
        let res =
            chat(&app, &label, &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(res.headers()["retry-after"], "7");
        assert_eq!(res.headers()["x-ratelimit-reset-requests"], "1s");
        assert!(res.headers().get("set-cookie").is_none(), "only allowed headers come through");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"]["message"], format!("upstream says {status}"));
    }
    // A provider that echoes the key in its message: the client never sees it.
    let key = app.connect_new_key("cy2", "openai").await;
    app.mock.reply(Reply::Json {
        status: 401,
        headers: vec![],
        body: json!({"error": {"message": format!("Incorrect API key provided: {key}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
    });
    let res = chat(&app, "cy2", &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(res.status(), 401);
    let text = res.text().await.expect("body");
    assert!(!text.contains(&key) && !text.contains(&key[8..]), "{text}");
    assert!(text.contains("Incorrect API key provided: sk-proj-…"), "{text}");

    // The same in the middle of a stream, passed on as OpenAI's error event. (The 401 marked the
    // key invalid: a new one is connected first.)
    let key = app.connect_new_key("cy2", "openai").await;
    let event =
        json!({"error": {"message": format!("Incorrect API key provided: {key}."), "type": "invalid_request_error"}});
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: format!("data: {}\n\ndata: {event}\n\n", json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]})),
        max_piece: 7,
        delay: Duration::from_millis(5),
    });
    let res =
        chat(&app, "cy2", &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    assert!(!text.contains(&key) && !text.contains(&key[8..]), "{text}");
    assert!(text.contains("Incorrect API key provided: sk-proj-…"), "{text}");

    // Not JSON at all: still OpenAI's shape.
    app.mock.reply(Reply::Json { status: 502, headers: vec![], body: json!("Bad Gateway") });
    let res = chat(&app, "cy", &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_upstream_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("di", "openai").await;
    // About 60 s of stream if nobody stops it.
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: openai_stream(false).repeat(40),
        max_piece: 16,
        delay: Duration::from_millis(100),
    });
    let res =
        chat(&app, "di", &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    let left_at = Instant::now();
    drop(stream);
    for _ in 0..100 {
        if let Some(end) = app.mock.stream_ends().first() {
            assert!(!end.completed, "the stream was cut, not finished");
            assert!(end.at.duration_since(left_at) < Duration::from_secs(1), "upstream closed within a second");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream stream was not closed after the client left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_ends_the_stream_with_an_error() {
    let options = SpawnOptions { idle_timeout: Duration::from_millis(500), ..SpawnOptions::default() };
    let app = spawn_app_with(Backend::Sqlite, options).await;
    app.connect_new_key("ed", "mistral").await;
    // The first piece arrives, then 2 s of silence.
    app.mock.reply(Reply::Sse {
        headers: vec![],
        text: openai_stream(false),
        max_piece: 200,
        delay: Duration::from_secs(2),
    });
    let res = chat(
        &app,
        "ed",
        &json!({"model": "mistral-small-latest", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    let last = data_lines(&body).pop().expect("some data");
    let err: Value = serde_json::from_str(&last).expect("json");
    assert_eq!(err["error"]["code"], "upstream_timeout", "{body}");
    assert!(!body.contains("[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_problems_are_clear() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("fay", "openai").await;
    let ok = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let send = |user: Option<&'static str>, body: Value| {
        let mut req = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&app.api_key).json(&body);
        if let Some(u) = user {
            req = req.header("x-relay-user", u);
        }
        req.send()
    };
    let err = assert_error(send(None, ok.clone()).await.expect("send"), 400, "missing_end_user").await;
    assert_eq!(err["error"]["param"], "X-Relay-User");
    assert_error(send(Some("nobody"), ok.clone()).await.expect("send"), 404, "enduser_key_missing").await;
    assert_error(
        send(Some("fay"), json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}))
            .await
            .expect("send"),
        404,
        "enduser_key_missing",
    )
    .await;
    let err = assert_error(
        send(Some("fay"), json!({"model": "llama-3", "messages": [{"role": "user", "content": "x"}]}))
            .await
            .expect("send"),
        400,
        "model_unknown",
    )
    .await;
    assert!(err["error"]["message"].as_str().expect("msg").contains("groq/"), "names the accepted forms");
    assert_error(send(Some("fay"), json!({"messages": []})).await.expect("send"), 400, "missing_model").await;
    assert_error(send(Some("fay"), json!({"model": "gpt-4o"})).await.expect("send"), 400, "invalid_messages").await;
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "fay")
        .header("x-relay-paid", "maybe")
        .json(&ok)
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "invalid_header").await;
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "fay")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "invalid_json").await;
    // Nothing reached the provider.
    assert!(app.mock.requests().iter().all(|r| r.method != "POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_embeddings() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("gus", "openai").await;
    app.connect_new_key("gus", "groq").await;
    app.mock.models(
        json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "x"}]}),
    );
    let res = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "gus")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.expect("json");
    assert_eq!(list["object"], "list");
    let mut ids: Vec<&str> = list["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["gpt-4o", "groq/gpt-4o"], "each id routes back to the provider that listed it");

    let upstream = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                          "model": "text-embedding-3-small", "usage": {"prompt_tokens": 3, "total_tokens": 3}});
    app.mock.reply(Reply::Json { status: 200, headers: vec![], body: upstream.clone() });
    let res = app
        .client
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "gus")
        .json(&json!({"model": "text-embedding-3-small", "input": "hello"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), upstream);
    assert_eq!(app.mock.last_post().path, "/v1/embeddings");
    let res = app
        .client
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&app.api_key)
        .header("x-relay-user", "gus")
        .json(&json!({"model": "claude-sonnet-4-5", "input": "hello"}))
        .send()
        .await
        .expect("send");
    assert_error(res, 400, "model_not_supported").await;
}
