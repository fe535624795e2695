//! A `chat.completion` (what every dialect answers) -> an Anthropic `message`: content blocks,
//! stop reason and usage, shared with the stream.

use serde_json::{json, Value};

use crate::providers::unified::{TranslateError, Usage};

/// What a Messages answer needs that the Chat answer does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesContext {
    /// `msg_…`, the same on every event of a stream.
    pub id: String,
    /// The model as the client named it.
    pub model: String,
}

/// Chat's finish reason -> Anthropic's stop reason.
pub(super) fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Usage in Anthropic's terms: input excludes what was read from the cache.
pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens + u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    })
}

/// A tool call's argument text -> its input object (`{}` when empty).
pub(super) fn tool_input(arguments: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(TranslateError::new("the provider sent tool call arguments that are not a JSON object", None)),
    }
}

/// A `chat.completion` -> a `message`.
/// `usage` is the dialect's reading of the provider's own answer, when it has one.
pub fn message_from_chat(chat: &Value, usage: Option<Usage>, ctx: &MessagesContext) -> Result<Value, TranslateError> {
    let choice = chat.pointer("/choices/0").ok_or_else(|| TranslateError::new("the answer has no choices", None))?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({ "type": "thinking", "thinking": r, "signature": "" }));
    }
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text", "text": t }));
    }
    for call in msg["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let f = &call["function"];
        content.push(json!({
            "type": "tool_use",
            "id": call["id"].as_str().unwrap_or_default(),
            "name": f["name"].as_str().unwrap_or_default(),
            "input": tool_input(f["arguments"].as_str().unwrap_or_default())?,
        }));
    }
    let usage = usage.or_else(|| chat.get("usage").and_then(Usage::from_json)).unwrap_or_default();
    Ok(json!({
        "id": ctx.id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": usage_json(&usage),
    }))
}
