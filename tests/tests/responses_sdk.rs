//! `/v1/responses` as developers use it: the official `openai` packages for Python and Node
//! (`responses.create`, `responses.stream`) with `base_url` at Relay, for a claude, a gemini and a
//! gpt model. Every scenario of tests/fixtures/responses is replayed by the mock provider (split
//! at random points, with real delays): the whole answer and the stream's final response must
//! both be the expected response, a mid-stream error must reach the SDK, and what reached the
//! provider must be the expected request. One Relay and one process per SDK serve every scenario.

use std::time::Duration;

use relay_tests::fixtures::read_json;
use relay_tests::mock::Reply;
use relay_tests::responses::{scenarios, ResponsesScenario};
use relay_tests::sdk::{Sdk, Session};
use relay_tests::{spawn_app, Backend, TestApp};
use serde_json::{json, Value};

fn without_stream(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().map(|o| o.remove("stream"));
    v
}

/// What reached the provider is what the fixture says (OpenAI: the body as the SDK sent it).
fn check_upstream(app: &TestApp, s: &ResponsesScenario, streamed: bool, key: &str, what: &str) {
    let seen = app.mock.last_post();
    let body = seen.json();
    if s.provider == "openai" {
        assert_eq!(seen.path, "/v1/responses", "{what}");
        assert_eq!(without_stream(&body), without_stream(&s.request), "{what}: the body as sent");
        assert_eq!(body.get("stream").cloned().unwrap_or(json!(false)), json!(streamed), "{what}: stream flag");
        assert_eq!(seen.header("authorization"), Some(format!("Bearer {key}").as_str()), "{what}: the stored key");
        return;
    }
    let file = if streamed { "upstream_stream_request.json" } else { "upstream_request.json" };
    let want = read_json(&s.dir.join(file));
    let path = want["path"].as_str().expect("path");
    let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
    assert_eq!((seen.path.as_str(), seen.query.as_str()), (want_path, want_query), "{what}: upstream path");
    assert_eq!(body, want["body"], "{what}: upstream body");
    let header = match s.provider.as_str() {
        "google" => seen.header("x-goog-api-key"),
        _ => seen.header("x-api-key"),
    };
    assert_eq!(header, Some(key), "{what}: the stored key in the provider's header");
}

/// The SDKs' parsed extras (`parsed`, `parsed_arguments`, `output_parsed`) are not on the wire.
fn wire(s: &ResponsesScenario, r: &Value) -> Value {
    let mut r = r.clone();
    r.as_object_mut().map(|o| o.remove("output_parsed"));
    for item in r["output"].as_array_mut().into_iter().flatten() {
        item.as_object_mut().map(|o| o.remove("parsed_arguments"));
        for part in item["content"].as_array_mut().into_iter().flatten() {
            part.as_object_mut().map(|o| o.remove("parsed"));
        }
    }
    s.comparable(&r)
}

fn run_scenario(app: &TestApp, sdk: &mut Session, which: Sdk, s: &ResponsesScenario, user: &str, key: &str) {
    let what = format!("{} via {which:?}", s.name);
    let job =
        |request: Value| json!({"base_url": app.address, "api_key": app.api_key, "user": user, "request": request});
    let expected = read_json(&s.dir.join("expected.json"));
    if let Some(resp) = &s.upstream_response {
        let status = u16::try_from(resp["status"].as_u64().expect("status")).expect("u16");
        let headers = resp["headers"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        app.mock.reply(Reply::Json { status, headers, body: resp["body"].clone() });
        let got = sdk.run(&job(without_stream(&s.request)));
        assert!(got.get("error").is_none(), "{what}: {got}");
        check_upstream(app, s, false, key, &what);
        assert_eq!(wire(s, &got["response"]), s.comparable(&expected["response"]), "{what}");
    }
    let sse = s.upstream_stream.as_ref().expect("a stream");
    let text = String::from_utf8(sse.clone()).expect("text");
    app.mock.reply_to_streams(Reply::Sse { headers: vec![], text, max_piece: 40, delay: Duration::from_millis(1) });
    let mut request = s.request.clone();
    request["stream"] = json!(true);
    let got = sdk.run(&job(request));
    check_upstream(app, s, true, key, &what);
    let events: Vec<&str> = got["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(events.first(), Some(&"response.created"), "{what}: {got}");
    if let Some(want) = expected.get("error") {
        let message = got["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(want["message"].as_str().expect("message")), "{what}: the SDK saw {got}");
        assert!(events.contains(&"response.output_text.delta"), "{what}: output came before the error");
    } else {
        assert!(got.get("error").is_none(), "{what}: {got}");
        assert_eq!(wire(s, &got["response"]), s.comparable(&expected["response"]), "{what}: final response");
        let text: String = got["response"]["output"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(got["text"].as_str(), Some(text.as_str()), "{what}: text deltas");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_through_the_openai_sdks() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut keys = std::collections::HashMap::new();
    for provider in ["openai", "anthropic", "google"] {
        let user = format!("responses-{provider}");
        let key = app.connect_new_key(&user, provider).await;
        keys.insert(provider, (user, key));
    }
    let mut sessions = [
        (Sdk::Python, Session::start(Sdk::Python, "responses", "openai")),
        (Sdk::Node, Session::start(Sdk::Node, "responses", "openai")),
    ];
    let mut ran = 0;
    for s in scenarios() {
        let (user, key) = &keys[s.provider.as_str()];
        for (which, session) in sessions.iter_mut() {
            run_scenario(&app, session, *which, &s, user, key);
            ran += 1;
        }
    }
    assert!(ran >= 36, "ran {ran} SDK scenarios");

    // Relay's own refusals reach the SDKs as OpenAI-shaped 400s naming the parameter.
    let (user, _) = &keys["anthropic"];
    for (param, value) in
        [("previous_response_id", json!("resp_123")), ("store", json!(true)), ("top_logprobs", json!(2))]
    {
        let mut request = json!({"model": "claude-sonnet-4-5", "input": "hi"});
        request[param] = value;
        for (which, session) in sessions.iter_mut() {
            let got = session
                .run(&json!({"base_url": app.address, "api_key": app.api_key, "user": user, "request": request}));
            assert_eq!(got["error"]["status"], 400, "{param} via {which:?}: {got}");
            assert!(
                got["error"]["message"].as_str().is_some_and(|m| m.contains(param)),
                "{param} via {which:?}: {got}"
            );
        }
        let res = app
            .client
            .post(app.url("/v1/responses"))
            .bearer_auth(&app.api_key)
            .header("x-relay-user", user.as_str())
            .json(&request)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 400);
        let v: Value = res.json().await.expect("json");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["code"], "unsupported_parameter", "{v}");
    }
}
