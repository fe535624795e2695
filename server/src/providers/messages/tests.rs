//! Unit tests of the Messages translation; the wire scenarios are in tests/fixtures/messages.

use serde_json::json;

use super::*;
use crate::providers::unified::{SseEvent, StreamItem, StreamTranslator, Usage};
use crate::providers::ProviderId;

#[test]
fn request_becomes_the_chat_request_each_dialect_already_takes() {
    let req = json!({
        "model": "gpt-4o", "max_tokens": 100, "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u1"},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 5000},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "ok"}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [{"type": "text", "text": "next"}, {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "42"}]}]},
        ],
    });
    let chat = chat_request(&req, ProviderId::OpenAi).expect("translated");
    assert_eq!(
        chat,
        json!({
            "model": "gpt-4o", "max_completion_tokens": 100, "stop": ["END"], "temperature": 0.5, "user": "u1",
            "reasoning_effort": "medium",
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "parallel_tool_calls": false,
            "messages": [
                {"role": "system", "content": "A\n\nB"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": "ok", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "user", "content": [{"type": "text", "text": "next"}]},
            ],
        })
    );
    let google = chat_request(&req, ProviderId::Google).expect("translated");
    assert_eq!(google["max_tokens"], 100);
}

#[test]
fn what_no_target_can_honour_is_refused_by_name() {
    let base = json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let with = |k: &str, v: serde_json::Value| {
        let mut r = base.clone();
        r[k] = v;
        chat_request(&r, ProviderId::OpenAi).expect_err("refused").param
    };
    assert_eq!(with("top_k", json!(5)), Some("top_k".into()));
    assert_eq!(with("container", json!("c")), Some("container".into()));
    assert_eq!(with("tools", json!([{"type": "web_search_20250305", "name": "web_search"}])), Some("tools[0]".into()));
    let mut no_max = base.clone();
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    assert_eq!(chat_request(&no_max, ProviderId::OpenAi).expect_err("refused").param, Some("max_tokens".into()));
    assert_eq!(with("output_config", json!({"effort": "high"})), Some("output_config.effort".into()));
    assert_eq!(with("output_config", json!({"format": {"type": "text"}})), Some("output_config.format.type".into()));
    assert_eq!(
        with("output_config", json!({"format": {"type": "json_schema"}})),
        Some("output_config.format.schema".into())
    );
    let e = rename_param(crate::providers::unified::TranslateError::new("x", Some("response_format.json_schema")));
    assert_eq!(e.param.as_deref(), Some("output_config.format"));
    let e = rename_param(crate::providers::unified::TranslateError::new("x", Some("reasoning_effort")));
    assert_eq!(e.param.as_deref(), Some("thinking"));
    let e = rename_param(crate::providers::unified::TranslateError::new("x", Some("messages[2].content")));
    assert_eq!(e.param.as_deref(), Some("messages[2].content"));
}

#[test]
fn chat_answer_becomes_a_message() {
    let chat = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":\"b\"}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}});
    let ctx = MessagesContext { id: "msg_1".into(), model: "gpt-4o".into() };
    let m = message_from_chat(&chat, None, &ctx).expect("message");
    assert_eq!(
        m,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": ""}, {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "call_9", "name": "f", "input": {"a": "b"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 6, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 5}})
    );
}

#[test]
fn errors_take_anthropics_shape() {
    let e = anthropic_error(
        &json!({"error": {"message": "m", "type": "invalid_request_error", "param": "top_k", "code": "unsupported_parameter"}}),
        Some(400),
    );
    assert_eq!(
        e,
        Some(
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "m", "code": "unsupported_parameter", "param": "top_k"}})
        )
    );
    let e = anthropic_error(
        &json!({"error": {"message": "m", "type": "upstream_error", "code": "upstream_unavailable"}}),
        Some(502),
    );
    assert_eq!(e.map(|e| e["error"]["type"].clone()), Some(json!("api_error")));
    assert_eq!(anthropic_error_type("insufficient_quota", None, Some(429)), "billing_error");
    assert_eq!(anthropic_error_type("whatever", None, Some(529)), "overloaded_error");
    assert_eq!(anthropic_error(&json!({"ok": true}), Some(400)), None);
}

/// A chat stream of fixed chunks, standing in for a dialect.
struct Chunks(Vec<serde_json::Value>, Option<Usage>);

impl StreamTranslator for Chunks {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        match event.data.as_str() {
            "error" => vec![StreamItem::Error(json!({"error": {"message": "boom", "type": "overloaded_error"}}))],
            _ => std::mem::take(&mut self.0).into_iter().map(StreamItem::Chunk).collect(),
        }
    }
    fn finish(&mut self) -> Vec<StreamItem> {
        vec![StreamItem::Done]
    }
    fn usage(&self) -> Option<Usage> {
        self.1
    }
}

fn events(items: &[StreamItem]) -> Vec<serde_json::Value> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Raw(b) => {
                let text = String::from_utf8_lossy(b);
                let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
                serde_json::from_str(data).ok()
            }
            StreamItem::Error(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn chat_chunks_become_anthropics_event_sequence() {
    let c = |delta: serde_json::Value, finish: serde_json::Value| json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let chunks = vec![
        c(json!({"role": "assistant", "content": ""}), json!(null)),
        c(json!({"reasoning_content": "r"}), json!(null)),
        c(json!({"content": "Hi"}), json!(null)),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            json!(null),
        ),
        c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}), json!(null)),
        c(json!({}), json!("tool_calls")),
    ];
    let usage = Usage { prompt_tokens: 7, completion_tokens: 3, ..Usage::default() };
    let ctx = MessagesContext { id: "msg_1".into(), model: "m".into() };
    let mut s = MessagesStream::new(Box::new(Chunks(chunks, Some(usage))), ctx);
    let mut items = s.on_event(&SseEvent { event: None, data: "x".into() });
    items.extend(s.finish());
    assert_eq!(items.last(), Some(&StreamItem::Done));
    let types: Vec<String> = events(&items)
        .iter()
        .map(|e| {
            let sub = e["delta"]["type"].as_str().or(e["content_block"]["type"].as_str()).unwrap_or_default();
            format!("{}{}{}", e["type"].as_str().unwrap_or_default(), if sub.is_empty() { "" } else { ":" }, sub)
        })
        .collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start:thinking",
            "content_block_delta:thinking_delta",
            "content_block_stop",
            "content_block_start:text",
            "content_block_delta:text_delta",
            "content_block_stop",
            "content_block_start:tool_use",
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let all = events(&items);
    assert_eq!(all[10]["delta"]["stop_reason"], "tool_use");
    assert_eq!(all[10]["usage"]["input_tokens"], 7);
    assert_eq!(all[10]["usage"]["output_tokens"], 3);

    let mut s =
        MessagesStream::new(Box::new(Chunks(vec![], None)), MessagesContext { id: "msg_2".into(), model: "m".into() });
    let items = s.on_event(&SseEvent { event: None, data: "error".into() });
    assert_eq!(
        events(&items),
        vec![json!({"type": "error", "error": {"type": "overloaded_error", "message": "boom"}})]
    );
    assert!(s.finish().is_empty(), "nothing after the error");
}
