//! The unified API as developers use it: the official `openai` packages for Python and Node,
//! pointed at Relay. Every provider wire scenario in tests/fixtures is replayed by the mock
//! upstream (split at random points, with real delays) and what the SDKs hand back must equal
//! the scenario's expected result; what reached the provider must equal its expected request.

use std::time::Duration;

use relay_tests::fixtures::{self, Scenario};
use relay_tests::mock::Reply;
use relay_tests::sdk::{self, Sdk};
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::{json, Value};

fn headers_of(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-length"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Scripts the mock with the scenario's upstream answer.
fn script(app: &TestApp, scenario: &Scenario) {
    if let Some(sse) = &scenario.upstream_stream {
        let text = String::from_utf8(sse.clone()).expect("sse is text");
        app.mock.reply(Reply::Sse { headers: vec![], text, max_piece: 48, delay: Duration::from_millis(3) });
    } else {
        let r = scenario.upstream_response.as_ref().expect("upstream_response.json");
        let status = u16::try_from(r["status"].as_u64().expect("status")).expect("u16");
        app.mock.reply(Reply::Json { status, headers: headers_of(r), body: r["body"].clone() });
    }
}

/// Usage fields the scenario names must match; SDKs may add zero-valued details.
fn assert_usage(got: &Value, want: &Value, what: &str) {
    if want.is_null() {
        assert!(got.is_null(), "{what}: no usage expected, got {got}");
        return;
    }
    for key in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(got[key], want[key], "{what}: usage.{key}");
    }
    for (outer, inner) in
        [("prompt_tokens_details", "cached_tokens"), ("completion_tokens_details", "reasoning_tokens")]
    {
        let w = want[outer][inner].as_u64().unwrap_or(0);
        let g = got[outer][inner].as_u64().unwrap_or(0);
        assert_eq!(g, w, "{what}: usage.{outer}.{inner}");
    }
}

fn assert_result(got: &Value, want: &Value, request: &Value, what: &str) {
    assert!(got.get("error").is_none(), "{what}: unexpected error {got}");
    // An empty string and no text at all are the same to a developer.
    let text = |v: &Value| if v == "" { Value::Null } else { v.clone() };
    assert_eq!(text(&got["content"]), text(&want["content"]), "{what}: content");
    assert_eq!(text(&got["reasoning_content"]), text(&want["reasoning_content"]), "{what}: reasoning_content");
    assert_eq!(got["finish_reason"], want["finish_reason"], "{what}: finish_reason");
    let (g, w) = (got["tool_calls"].as_array().expect("calls"), want["tool_calls"].as_array().expect("calls"));
    assert_eq!(g.len(), w.len(), "{what}: number of tool calls in {got}");
    for (i, (g, w)) in g.iter().zip(w).enumerate() {
        assert_eq!(g["name"], w["name"], "{what}: tool call {i} name");
        assert_eq!(g["arguments"], w["arguments"], "{what}: tool call {i} arguments");
        assert!(g["id"].as_str().is_some_and(|s| !s.is_empty()), "{what}: tool call {i} has an id");
        if w["id"].as_str().is_some_and(|id| !id.starts_with("call_")) {
            assert_eq!(g["id"], w["id"], "{what}: tool call {i} keeps the provider's id");
        }
    }
    assert_usage(&got["usage"], &want["usage"], what);
    assert_eq!(got["ids"].as_array().map(Vec::len), Some(1), "{what}: one id for the whole stream");
    assert!(got["ids"][0].as_str().is_some_and(|s| s.starts_with("chatcmpl-")), "{what}: id");
    assert_eq!(got["models"], json!([request["model"]]), "{what}: one model, as requested");
    if request["stream"] == true {
        assert_eq!(got["indexes"], json!([0]), "{what}: choices[0].index is always 0");
        let n = g.len();
        assert_eq!(got["tool_call_indexes"], json!((0..n).collect::<Vec<_>>()), "{what}: tool calls indexed 0..n");
    }
    assert!(
        got["request_id"].as_str().is_some_and(|s| s.starts_with("req_")),
        "{what}: the SDK sees Relay's request id: {got}"
    );
}

async fn run_scenarios(provider: &str) {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ran = 0;
    for scenario in fixtures::scenarios(provider) {
        let (request, expected, upstream) = (&scenario.request, &scenario.expected, &scenario.upstream_request);
        let endpoint = if scenario.is_embeddings() { "embeddings" } else { "chat" };
        for which in sdk::ALL {
            let what = format!("{} via {which:?}", scenario.name);
            // A user (and key) of its own per run: a scenario whose provider refuses the key
            // marks it invalid (key health), which must not decide the next run.
            let user = format!("sdk-user-{ran}");
            let key = app.connect_new_key(&user, provider).await;
            script(&app, &scenario);
            let job = json!({"base_url": app.address, "api_key": app.api_key, "user": user, "endpoint": endpoint, "request": request});
            let got = sdk::run(which, job).await;

            // What reached the provider: exactly the expected translation, the key in its header.
            let seen = app.mock.last_post();
            let path = upstream["path"].as_str().expect("path");
            let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
            assert_eq!(seen.path, want_path, "{what}: upstream path");
            assert_eq!(seen.query, want_query, "{what}: upstream query");
            let mut body = seen.json();
            if which == Sdk::Python && endpoint == "embeddings" && request.get("encoding_format").is_none() {
                // The Python SDK asks for base64 on its own and decodes it.
                assert_eq!(
                    body["requests"].as_array().map(Vec::len),
                    upstream["body"]["requests"].as_array().map(Vec::len)
                );
                body = upstream["body"].clone();
            }
            assert_eq!(body, upstream["body"], "{what}: upstream body");
            assert!(!seen.query.contains(&key) && !seen.path.contains(&key), "{what}: the key is never in the URL");
            match provider {
                "anthropic" => assert_eq!(seen.header("x-api-key"), Some(key.as_str()), "{what}"),
                _ => assert_eq!(seen.header("x-goog-api-key"), Some(key.as_str()), "{what}"),
            }
            assert!(seen.header("authorization").is_none(), "{what}: no other credential");

            check(&got, expected, request, endpoint, &what);
            ran += 1;
        }
    }
    assert!(ran >= 20, "ran {ran} SDK scenarios for {provider}");
}

fn check(got: &Value, expected: &Value, request: &Value, endpoint: &str, what: &str) {
    if let Some(err) = expected.get("error") {
        let e = &got["error"];
        assert_eq!(e["status"], expected["status"], "{what}: status kept: {got}");
        // The Python SDK prefixes "Error code: N - " to the message.
        let (got_msg, want_msg) = (e["message"].as_str().unwrap_or(""), err["message"].as_str().unwrap_or("?"));
        assert!(got_msg.ends_with(want_msg), "{what}: provider message passed on: {got_msg:?} vs {want_msg:?}");
        return;
    }
    if endpoint == "embeddings" {
        let want = &expected["response"];
        let want = if want.is_null() { &expected["completion"] } else { want };
        let data = want["data"].as_array().expect("data");
        let got_e = got["embeddings"].as_array().expect("embeddings");
        assert_eq!(got_e.len(), data.len(), "{what}");
        if data.first().is_some_and(|d| d["embedding"].is_array()) {
            for (g, w) in got_e.iter().zip(data) {
                let (g, w) = (g.as_array().expect("vec"), w["embedding"].as_array().expect("vec"));
                assert_eq!(g.len(), w.len(), "{what}");
                for (a, b) in g.iter().zip(w) {
                    let (a, b) = (a.as_f64().expect("f64"), b.as_f64().expect("f64"));
                    assert!((a - b).abs() < 1e-6, "{what}: {a} vs {b}");
                }
            }
        }
        return;
    }
    if let Some(chunks) = expected.get("chunks").and_then(Value::as_array) {
        if let Some(last_error) = chunks.last().and_then(|c| c.get("error")) {
            // An error after output started: the SDK raises it, with the provider's message.
            let e = &got["error"];
            assert!(!e.is_null(), "{what}: the SDK raised the mid-stream error: {got}");
            let (got_msg, want_msg) =
                (e["message"].as_str().unwrap_or(""), last_error["message"].as_str().unwrap_or("?"));
            assert!(got_msg.contains(want_msg), "{what}: {got_msg:?} vs {want_msg:?}");
            return;
        }
        assert_result(got, &expected["accumulated"], request, what);
        return;
    }
    assert_result(got, &fixtures::accumulated_from_completion(&expected["completion"]), request, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_scenarios_through_the_python_and_node_sdks() {
    run_scenarios("anthropic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_scenarios_through_the_python_and_node_sdks() {
    run_scenarios("google").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_passthrough_through_the_python_and_node_sdks() {
    let app = spawn_app(Backend::Sqlite).await;
    app.connect_new_key("p", "openai").await;
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],
               "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
    ];
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    for which in sdk::ALL {
        app.mock.reply(Reply::Sse {
            headers: vec![],
            text: text.clone(),
            max_piece: 20,
            delay: Duration::from_millis(2),
        });
        let req = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
                         "messages": [{"role": "user", "content": "hi"}]});
        let job = json!({"base_url": app.address, "api_key": app.api_key, "user": "p", "request": req});
        let got = sdk::run(which, job).await;
        assert_eq!(got["finish_reason"], "tool_calls", "{which:?}: {got}");
        assert_eq!(got["tool_calls"], json!([{"id": "call_a", "name": "f", "arguments": "{\"x\": 1}"}]), "{which:?}");
        assert_eq!(got["usage"]["total_tokens"], 8, "{which:?}");
        assert!(got["request_id"].as_str().is_some_and(|s| s.starts_with("req_")), "{which:?}: {got}");
    }
}
