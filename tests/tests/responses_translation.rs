//! `/v1/responses` translation as data, on every scenario of tests/fixtures/responses: the
//! upstream request (whole and streaming), the answer as a response, and each stream, cut at many
//! points, as the Responses events that accumulate to the same response. OpenAI's own stream is
//! relayed event for event.

use bytes::Bytes;
use relay::providers::responses::{self, Passthrough, ResponsesContext, ResponsesStream};
use relay::providers::unified::{StreamItem, StreamTranslator};
use relay::providers::ProviderId;
use relay::sse::{named_frame, SseParser};
use relay_tests::fixtures::{self, cut_patterns, read_json};
use relay_tests::messages::frames;
use relay_tests::responses::{accumulate_events, reported_error, scenarios, ResponsesScenario};
use serde_json::{json, Value};

fn provider(s: &ResponsesScenario) -> ProviderId {
    s.provider.parse().expect("provider")
}

fn context(s: &ResponsesScenario) -> ResponsesContext {
    ResponsesContext::new("resp_test".into(), s.model().into(), 1_767_225_600, &s.request)
}

/// The upstream request for a streamed (`stream`) or whole answer, as the gateway builds it.
fn upstream_request(s: &ResponsesScenario, stream: bool) -> Value {
    let p = provider(s);
    let mut req = s.request.clone();
    req["stream"] = json!(stream);
    let chat = responses::chat_request(&req, p).expect("translated");
    let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
    let prepared = p.def().dialect.chat_request(chat, s.model(), &ctx, stream).expect("the dialect takes it");
    json!({ "path": prepared.path, "body": prepared.body })
}

/// Runs the stream over `sse` cut at `cuts`, framing as the gateway does; returns the bytes.
fn translate_stream(s: &ResponsesScenario, sse: &[u8], cuts: &[usize]) -> Vec<u8> {
    let p = provider(s);
    let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
    let mut t: Box<dyn StreamTranslator> = if responses::native(p) {
        Box::new(Passthrough::new())
    } else {
        Box::new(ResponsesStream::new(p.def().dialect.chat_stream(ctx), context(s)))
    };
    let mut parser = SseParser::new();
    let mut items = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([sse.len()]) {
        for event in parser.push(&sse[start..end.max(start)]) {
            items.extend(t.on_event(&event));
        }
        start = end.max(start);
    }
    if let Some(event) = parser.finish() {
        items.extend(t.on_event(&event));
    }
    if !items.iter().any(|i| matches!(i, StreamItem::Error(_) | StreamItem::Done)) {
        items.extend(t.finish());
    }
    let mut bytes = Vec::new();
    for item in items {
        match item {
            StreamItem::Raw(b) => bytes.extend_from_slice(&b),
            StreamItem::Error(v) => {
                let v = t.error_event(v);
                bytes.extend_from_slice(&named_frame(v["type"].as_str().expect("type"), &v.to_string()));
                break;
            }
            StreamItem::Done => break,
            StreamItem::Chunk(c) => panic!("a chat chunk on /v1/responses: {c}"),
        }
    }
    bytes
}

fn bless(path: &std::path::Path, got: &Value) {
    if std::env::var_os("RELAY_BLESS").is_some() && !path.exists() {
        std::fs::write(path, serde_json::to_string_pretty(got).expect("json") + "\n").expect("bless");
    }
}

#[test]
fn every_scenario_translates_as_its_fixtures_say() {
    let mut failures = Vec::new();
    let all = scenarios();
    assert!(all.len() >= 18, "found {} scenarios", all.len());
    for s in &all {
        if let Err(e) = check(s) {
            failures.push(format!("{}: {e}", s.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check(s: &ResponsesScenario) -> Result<(), String> {
    let p = provider(s);
    if !responses::native(p) {
        for (stream, file) in [(false, "upstream_request.json"), (true, "upstream_stream_request.json")] {
            let got = upstream_request(s, stream);
            let path = s.dir.join(file);
            bless(&path, &got);
            fixtures::same(file, &got, &read_json(&path))?;
        }
    }
    let expected_path = s.dir.join("expected.json");
    let mut expected = s.expected.clone();
    if let Some(resp) = &s.upstream_response {
        let body = fixtures::raw_body(&resp["body"]);
        let response = if responses::native(p) {
            serde_json::from_slice(&body).map_err(|e| e.to_string())?
        } else {
            let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
            let (chat, usage) = p.def().dialect.chat_response(Bytes::from(body), &ctx).map_err(|e| e.to_string())?;
            let chat: Value = serde_json::from_slice(&chat).map_err(|e| e.to_string())?;
            responses::response_from_chat(&chat, usage, &context(s)).map_err(|e| e.to_string())?
        };
        bless(&expected_path, &json!({ "response": response }));
        expected = read_json(&expected_path);
        fixtures::same("response", &s.comparable(&response), &s.comparable(&expected["response"]))?;
    }
    if let Some(sse) = &s.upstream_stream {
        for (name, cuts) in cut_patterns(sse.len()) {
            let got = accumulate_events(&frames(&translate_stream(s, sse, &cuts)));
            if let Err(event) = &got {
                bless(&expected_path, &json!({ "error": reported_error(event) }));
                expected = read_json(&expected_path);
            }
            let what = format!("stream ({name})");
            match (got, expected.get("error")) {
                (Ok(response), None) => {
                    fixtures::same(&what, &s.comparable(&response), &s.comparable(&expected["response"]))?
                }
                (Err(event), Some(want)) => fixtures::same(&what, &reported_error(&event), want)?,
                (got, _) => return Err(format!("{what}: got {got:?}, expected {expected}")),
            }
        }
        if responses::native(p) {
            // Passed through: every event as it came, the error event included.
            let got = frames(&translate_stream(s, sse, &[]));
            fixtures::same("passed-through events", &json!(got), &json!(frames(sse)))?;
        }
    }
    Ok(())
}

#[test]
fn a_stream_that_breaks_ends_in_response_failed_after_the_output_so_far() {
    let s = scenarios().into_iter().find(|s| s.name == "responses/google_text").expect("scenario");
    let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
    let mut t = ResponsesStream::new(ProviderId::Google.def().dialect.chat_stream(ctx), context(&s));
    let sse = s.upstream_stream.as_deref().expect("stream");
    let mut parser = SseParser::new();
    let first = parser.push(sse).into_iter().next().expect("an event");
    let mut bytes: Vec<u8> = Vec::new();
    for item in t.on_event(&first) {
        if let StreamItem::Raw(b) = item {
            bytes.extend_from_slice(&b);
        }
    }
    // What the gateway's stream does when the connection breaks: Relay's error, in OpenAI's shape.
    let relay_error = json!({"error": {"message": "The connection to google broke during the stream.", "type": "upstream_error", "param": null, "code": "upstream_disconnected"}});
    let v = t.error_event(relay_error);
    bytes.extend_from_slice(&named_frame(v["type"].as_str().expect("type"), &v.to_string()));
    let event = accumulate_events(&frames(&bytes)).expect_err("failed");
    assert_eq!(event["type"], "response.failed");
    assert_eq!(event["response"]["status"], "failed");
    assert_eq!(event["response"]["error"]["message"], "The connection to google broke during the stream.");
    assert_eq!(event["response"]["output"][0]["content"][0]["text"], "Hello");
}
