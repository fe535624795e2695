//! `/v1/messages` as developers use it: the official `anthropic` packages for Python and Node with
//! `base_url` at Relay, for a gpt, a gemini and a claude model. Every scenario of
//! tests/fixtures/messages is replayed by the mock provider (split at random points, with real
//! delays): the whole answer and the stream's `get_final_message()` / `finalMessage()` must both be
//! the expected message, a mid-stream error must reach the SDK, and what reached the provider must
//! be the expected request. Plus the route's own answers: credentials, errors in Anthropic's shape.

use std::time::Duration;

use relay_tests::fixtures::read_json;
use relay_tests::messages::{scenarios, MessagesScenario};
use relay_tests::mock::Reply;
use relay_tests::sdk;
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::{json, Value};

fn without_stream(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().map(|o| o.remove("stream"));
    v
}

/// What reached the provider is what the fixture says (Anthropic: the body as the SDK sent it).
fn check_upstream(app: &TestApp, s: &MessagesScenario, streamed: bool, key: &str, what: &str) {
    let seen = app.mock.last_post();
    let body = seen.json();
    if s.provider == "anthropic" {
        assert_eq!(seen.path, "/v1/messages", "{what}");
        assert_eq!(without_stream(&body), without_stream(&s.request), "{what}: the body as sent");
        assert_eq!(body.get("stream").cloned().unwrap_or(json!(false)), json!(streamed), "{what}: stream flag");
        assert_eq!(seen.header("x-api-key"), Some(key), "{what}: the stored key");
        assert!(seen.header("anthropic-version").is_some(), "{what}");
        return;
    }
    let file = if streamed { "upstream_stream_request.json" } else { "upstream_request.json" };
    let want = read_json(&s.dir.join(file));
    let path = want["path"].as_str().expect("path");
    let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
    assert_eq!((seen.path.as_str(), seen.query.as_str()), (want_path, want_query), "{what}: upstream path");
    assert_eq!(body, want["body"], "{what}: upstream body");
    let header = if s.provider == "google" { seen.header("x-goog-api-key") } else { seen.header("authorization") };
    assert!(header.is_some_and(|h| h.ends_with(key)), "{what}: the stored key in the provider's header");
}

fn text_of(message: &Value) -> String {
    message["content"].as_array().into_iter().flatten().filter_map(|b| b["text"].as_str()).collect()
}

async fn run_scenarios(provider: &str) {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ran = 0;
    for s in scenarios().into_iter().filter(|s| s.provider == provider) {
        for which in sdk::ALL {
            let what = format!("{} via {which:?}", s.name);
            let user = format!("messages-user-{ran}");
            let key = app.connect_new_key(&user, provider).await;
            // Both ways the Anthropic SDKs send a key: x-api-key, and a Bearer token.
            let auth = if ran % 2 == 0 { "x-api-key" } else { "bearer" };
            let job = |request: Value| json!({"base_url": app.address, "api_key": app.api_key, "user": user, "auth": auth, "request": request});
            let mut whole = None;
            if let Some(resp) = &s.upstream_response {
                let status = u16::try_from(resp["status"].as_u64().expect("status")).expect("u16");
                let headers = resp["headers"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                    .unwrap_or_default();
                app.mock.reply(Reply::Json { status, headers, body: resp["body"].clone() });
                let got = sdk::run_messages(which, job(without_stream(&s.request))).await;
                assert!(got.get("error").is_none(), "{what}: {got}");
                check_upstream(&app, &s, false, &key, &what);
                assert_eq!(s.comparable(&got["message"], false), s.comparable(&s.expected["message"], false), "{what}");
                assert!(got["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{what}: request id {got}");
                whole = Some(got["message"].clone());
            }
            if let Some(sse) = &s.upstream_stream {
                let text = String::from_utf8(sse.clone()).expect("text");
                app.mock.reply(Reply::Sse { headers: vec![], text, max_piece: 40, delay: Duration::from_millis(2) });
                let mut request = s.request.clone();
                request["stream"] = json!(true);
                let got = sdk::run_messages(which, job(request)).await;
                check_upstream(&app, &s, true, &key, &what);
                let events: Vec<&str> =
                    got["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                assert!(events.contains(&"message_start"), "{what}: {got}");
                if let Some(want) = s.expected.get("error") {
                    let e = &got["error"];
                    let message = e["message"].as_str().unwrap_or_default();
                    assert!(
                        message.contains(want["message"].as_str().expect("message")),
                        "{what}: the SDK raised {got}"
                    );
                    assert!(events.contains(&"content_block_delta"), "{what}: output came before the error");
                } else {
                    assert!(got.get("error").is_none(), "{what}: {got}");
                    let streamed = s.comparable(&got["message"], true);
                    assert_eq!(streamed, s.comparable(&s.expected["message"], true), "{what}: final message");
                    if let Some(whole) = &whole {
                        assert_eq!(
                            streamed,
                            s.comparable(whole, true),
                            "{what}: the stream's final message is the whole answer"
                        );
                    }
                    assert_eq!(got["text"].as_str(), Some(text_of(&got["message"]).as_str()), "{what}: text events");
                    assert!(got["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{what}: {got}");
                }
            }
            ran += 1;
        }
    }
    assert!(ran >= 8, "ran {ran} SDK scenarios for {provider}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_scenarios_through_the_anthropic_sdks() {
    run_scenarios("openai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_scenarios_through_the_anthropic_sdks() {
    run_scenarios("google").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_passthrough_through_the_anthropic_sdks() {
    run_scenarios("anthropic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_anthropics_shape_with_the_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("u", "openai").await;
    let url = app.url("/v1/messages");
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let send = |headers: Vec<(&'static str, String)>, body: Value| {
        let mut req = app.client.post(&url).header("anthropic-version", "2023-06-01").json(&body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let check = |res: reqwest::Response, status: u16, kind: &'static str| async move {
        assert_eq!(res.status().as_u16(), status);
        let id = res.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(id.is_some_and(|i| i.starts_with("req_")), "request-id header");
        let v: Value = res.json().await.expect("json");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    };
    let key = app.api_key.clone();
    check(send(vec![], body.clone()).await.expect("send"), 401, "authentication_error").await;
    let wrong = format!("{}x", &key[..key.len() - 1]);
    check(send(vec![("x-api-key", wrong)], body.clone()).await.expect("send"), 401, "authentication_error").await;
    check(send(vec![("x-api-key", key.clone())], body.clone()).await.expect("send"), 400, "invalid_request_error")
        .await;
    let user = || ("x-relay-user", "u".to_owned());
    let mut top_k = body.clone();
    top_k["top_k"] = json!(5);
    let v =
        check(send(vec![("x-api-key", key.clone()), user()], top_k).await.expect("send"), 400, "invalid_request_error")
            .await;
    assert_eq!(v["error"]["param"], "top_k", "the parameter is named: {v}");
    let mut gemini = body.clone();
    gemini["model"] = json!("gemini-2.5-flash");
    check(send(vec![("x-api-key", key.clone()), user()], gemini).await.expect("send"), 404, "not_found_error").await;
    // The provider's own error, translated from OpenAI's shape, its status kept.
    app.mock.reply(Reply::Json {
        status: 429,
        headers: vec![("retry-after".into(), "3".into())],
        body: json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    });
    let res = send(vec![("authorization", format!("Bearer {key}")), user()], body.clone()).await.expect("send");
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
    let v = check(res, 429, "rate_limit_error").await;
    assert_eq!(v["error"]["message"], "Rate limit reached for gpt-4o-mini");
}
