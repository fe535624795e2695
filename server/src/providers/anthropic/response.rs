//! A non-streaming Anthropic message -> an OpenAI `chat.completion`, and the usage and finish
//! reason mapping that the stream shares.

use serde_json::{json, Value};

use super::tools::RESPONSE_TOOL;
use crate::providers::unified::{finish, ChatContext, TranslateError, Usage};

fn malformed(what: &str) -> TranslateError {
    TranslateError::new(format!("the Anthropic message {what}"), None)
}

/// Anthropic usage -> OpenAI usage: prompt tokens count cached reads and cache writes too.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RawUsage {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
}

impl RawUsage {
    /// Takes the fields `u` has (message_delta repeats them cumulatively, or sends only some).
    pub(super) fn update(&mut self, u: &Value) {
        let set = |key: &str, slot: &mut u64| {
            if let Some(n) = u.get(key).and_then(Value::as_u64) {
                *slot = n;
            }
        };
        set("input_tokens", &mut self.input);
        set("cache_creation_input_tokens", &mut self.cache_creation);
        set("cache_read_input_tokens", &mut self.cache_read);
        set("output_tokens", &mut self.output);
    }

    pub(super) fn to_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.input + self.cache_creation + self.cache_read,
            completion_tokens: self.output,
            cached_tokens: self.cache_read,
            cache_write_tokens: self.cache_creation,
            // Anthropic does not report thinking tokens separately (they are in output_tokens,
            // billed at the output price).
            reasoning_tokens: 0,
            cost_nanos: None,
        }
    }
}

pub(super) fn finish_reason(stop_reason: Option<&str>, tool_called: bool) -> &'static str {
    if tool_called {
        return finish::TOOL_CALLS;
    }
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => finish::LENGTH,
        Some("refusal") => finish::CONTENT_FILTER,
        // end_turn, stop_sequence, pause_turn, and tool_use when the only tool was the response
        // format's.
        _ => finish::STOP,
    }
}

/// The usage of an Anthropic message (2xx body), cache writes included.
pub fn chat_usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let mut usage = RawUsage::default();
    usage.update(u);
    Some(usage.to_usage())
}

/// An Anthropic message (2xx body) -> an OpenAI `chat.completion`.
pub fn chat_response(body: &Value, ctx: &ChatContext) -> Result<Value, TranslateError> {
    if body["type"] == "error" {
        return Err(malformed("is an error object"));
    }
    let blocks = body["content"].as_array().ok_or_else(|| malformed("has no content array"))?;
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut answered = false;
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => {
                text.push_str(block["text"].as_str().ok_or_else(|| malformed("has a text block without text"))?)
            }
            Some("thinking") => {
                let t = block["thinking"].as_str().ok_or_else(|| malformed("has a thinking block without text"))?;
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => {
                let name = block["name"].as_str().ok_or_else(|| malformed("has a tool_use block without a name"))?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input).map_err(|_| malformed("has unreadable tool input"))?;
                if name == RESPONSE_TOOL {
                    // The formatted answer; a second one could only break the JSON.
                    if !answered {
                        text.push_str(&arguments);
                        answered = true;
                    }
                    continue;
                }
                let id = block["id"].as_str().ok_or_else(|| malformed("has a tool_use block without an id"))?;
                tool_calls.push(
                    json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }),
                );
            }
            // redacted_thinking, server tools, future block types: nothing OpenAI can show.
            _ => {}
        }
    }
    let mut usage = RawUsage::default();
    usage.update(&body["usage"]);
    let content = if text.is_empty() { Value::Null } else { Value::String(text) };
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if let Some(r) = reasoning {
        message["reasoning_content"] = json!(r);
    }
    let reason = finish_reason(body["stop_reason"].as_str(), !tool_calls.is_empty());
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    Ok(json!({
        "id": ctx.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": reason }],
        "usage": usage.to_usage().to_json(),
    }))
}
