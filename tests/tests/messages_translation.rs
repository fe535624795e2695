//! `/v1/messages` translation as data, on every scenario of tests/fixtures/messages: the upstream
//! request (whole and streaming), the answer as a message, and each stream, cut at many points,
//! as Anthropic's events that accumulate to the same message. Anthropic's own stream is relayed
//! event for event.

use bytes::Bytes;
use relay::providers::messages::{self, MessagesContext, MessagesStream, Passthrough};
use relay::providers::unified::{StreamItem, StreamTranslator};
use relay::providers::ProviderId;
use relay::sse::SseParser;
use relay_tests::fixtures::{self, cut_patterns, read_json};
use relay_tests::messages::{accumulate_events, frames, scenarios, MessagesScenario};
use serde_json::{json, Value};

fn provider(s: &MessagesScenario) -> ProviderId {
    s.provider.parse().expect("provider")
}

/// The upstream request for a streamed (`stream`) or whole answer, as the gateway builds it.
fn upstream_request(s: &MessagesScenario, stream: bool) -> Value {
    let p = provider(s);
    let mut req = s.request.clone();
    req["stream"] = json!(stream);
    let chat = messages::chat_request(&req, p).expect("translated");
    let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
    let prepared = p.def().dialect.chat_request(chat, s.model(), &ctx, stream).expect("the dialect takes it");
    json!({ "path": prepared.path, "body": prepared.body })
}

/// Runs the translated stream over `sse` cut at `cuts`; returns the client's frames.
fn translate_stream(s: &MessagesScenario, sse: &[u8], cuts: &[usize]) -> Vec<StreamItem> {
    let p = provider(s);
    let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
    let mut t: Box<dyn StreamTranslator> = if messages::native(p) {
        Box::new(Passthrough::new(s.model()))
    } else {
        let mctx = MessagesContext { id: "msg_test".into(), model: s.model().into() };
        Box::new(MessagesStream::new(p.def().dialect.chat_stream(ctx), mctx))
    };
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([sse.len()]) {
        for event in parser.push(&sse[start..end.max(start)]) {
            out.extend(t.on_event(&event));
        }
        start = end.max(start);
    }
    if let Some(event) = parser.finish() {
        out.extend(t.on_event(&event));
    }
    if !out.iter().any(|i| matches!(i, StreamItem::Error(_) | StreamItem::Done)) {
        out.extend(t.finish());
    }
    out
}

/// The message an SDK accumulates from the frames, or the error event that ended them.
fn client_view(items: &[StreamItem]) -> Result<Value, Value> {
    let mut bytes = Vec::new();
    for item in items {
        match item {
            StreamItem::Raw(b) => bytes.extend_from_slice(b),
            StreamItem::Error(v) => bytes.extend_from_slice(format!("event: error\ndata: {v}\n\n").as_bytes()),
            StreamItem::Done => {}
            StreamItem::Chunk(c) => panic!("a chat chunk on /v1/messages: {c}"),
        }
    }
    accumulate_events(&frames(&bytes))
}

#[test]
fn every_scenario_translates_as_its_fixtures_say() {
    let mut failures = Vec::new();
    let all = scenarios();
    assert!(all.len() >= 12, "found {} scenarios", all.len());
    for s in &all {
        if let Err(e) = check(s) {
            failures.push(format!("{}: {e}", s.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check(s: &MessagesScenario) -> Result<(), String> {
    let p = provider(s);
    if !messages::native(p) {
        for (stream, file) in [(false, "upstream_request.json"), (true, "upstream_stream_request.json")] {
            let got = upstream_request(s, stream);
            let path = s.dir.join(file);
            if std::env::var_os("RELAY_BLESS").is_some() && !path.exists() {
                std::fs::write(&path, serde_json::to_string_pretty(&got).expect("json") + "\n").expect("bless");
            }
            fixtures::same(file, &got, &read_json(&path))?;
        }
    }
    let expected = &s.expected;
    if let Some(resp) = &s.upstream_response {
        let body = fixtures::raw_body(&resp["body"]);
        let message = if messages::native(p) {
            serde_json::from_slice(&body).map_err(|e| e.to_string())?
        } else {
            let ctx = fixtures::chat_context(&json!({"model": s.request["model"]}));
            let (chat, usage) = p.def().dialect.chat_response(Bytes::from(body), &ctx).map_err(|e| e.to_string())?;
            let chat: Value = serde_json::from_slice(&chat).map_err(|e| e.to_string())?;
            let mctx = MessagesContext { id: "msg_test".into(), model: s.model().into() };
            messages::message_from_chat(&chat, usage, &mctx).map_err(|e| e.to_string())?
        };
        fixtures::same("message", &s.comparable(&message, false), &s.comparable(&expected["message"], false))?;
    }
    if let Some(sse) = &s.upstream_stream {
        for (name, cuts) in cut_patterns(sse.len()) {
            let items = translate_stream(s, sse, &cuts);
            let what = format!("stream ({name})");
            match (client_view(&items), expected.get("error")) {
                (Ok(message), None) => {
                    fixtures::same(&what, &s.comparable(&message, true), &s.comparable(&expected["message"], true))?
                }
                (Err(error), Some(want)) => fixtures::same(&what, &error["error"], want)?,
                (got, _) => return Err(format!("{what}: got {got:?}, expected {expected}")),
            }
        }
        if messages::native(p) {
            // Passed through: every event as it came, the error event included.
            let got = frames(&translate_stream(s, sse, &[]).iter().fold(Vec::new(), |mut b, i| {
                match i {
                    StreamItem::Raw(x) => b.extend_from_slice(x),
                    StreamItem::Error(v) => b.extend_from_slice(format!("event: error\ndata: {v}\n\n").as_bytes()),
                    _ => {}
                }
                b
            }));
            fixtures::same("passed-through events", &json!(got), &json!(frames(sse)))?;
        }
    }
    Ok(())
}
