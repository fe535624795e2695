//! A non-streaming Gemini `generateContent` answer -> an OpenAI `chat.completion`, and the finish
//! reason, usage and function call mapping that the stream shares.

use serde_json::{json, Value};

use super::call_id::{encode_call_id, new_call_id};
use crate::providers::unified::{finish, ChatContext, TranslateError, Usage};

/// Gemini's finish reason in OpenAI's terms. MALFORMED_FUNCTION_CALL, OTHER and anything new
/// become `stop`: OpenAI has no reason for "the model failed", and clients handle `stop` safely.
pub(super) fn map_finish(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => finish::LENGTH,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => finish::CONTENT_FILTER,
        _ => finish::STOP,
    }
}

/// `usageMetadata` in OpenAI's terms: thoughts count as completion (and reasoning) tokens, since
/// `candidatesTokenCount` leaves them out (total = prompt + tool-use prompt + candidates +
/// thoughts); tool-use prompt tokens (code execution, search) as prompt tokens, so the total
/// matches Gemini's. `promptTokenCount` already includes `cachedContentTokenCount`. Gemini bills
/// no cache writes per call (explicit caches are billed for storage), so there are none.
pub(super) fn usage_from(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        prompt_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        completion_tokens: n("candidatesTokenCount") + thoughts,
        cached_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
        cost_nanos: None,
    }
}

/// The usage of a whole `generateContent` answer.
pub fn chat_usage(body: &Value) -> Option<Usage> {
    body.get("usageMetadata").filter(|u| u.is_object()).map(usage_from)
}

/// One complete Gemini function call as an OpenAI tool call: (id, name, arguments JSON).
pub(super) fn tool_call_of(part: &Value) -> Option<(String, String, String)> {
    let fc = part.get("functionCall")?;
    let name = fc.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
    let base =
        fc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned).unwrap_or_else(new_call_id);
    let id = encode_call_id(&base, part.get("thoughtSignature").and_then(Value::as_str));
    let args = match fc.get("args") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(a) => a.to_string(),
    };
    Some((id, name, args))
}

/// A non-streaming `generateContent` answer -> an OpenAI `chat.completion`.
pub fn chat_response(body: &Value, ctx: &ChatContext) -> Result<Value, TranslateError> {
    if !body.is_object() {
        return Err(TranslateError::new("Gemini's answer is not a JSON object", None));
    }
    let usage = body.get("usageMetadata").map(usage_from).unwrap_or_default();
    let candidate = body.pointer("/candidates/0");
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    let finish_reason = match candidate {
        None if body.pointer("/promptFeedback/blockReason").is_some() => finish::CONTENT_FILTER,
        None => return Err(TranslateError::new("Gemini's answer has no candidates", None)),
        Some(c) => {
            for part in c.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(call) = tool_call_of(part) {
                    calls.push(call);
                } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                    let thought = part.get("thought").and_then(Value::as_bool).unwrap_or(false);
                    let slot = if thought { &mut reasoning } else { &mut content };
                    slot.get_or_insert_with(String::new).push_str(text);
                }
            }
            match c.get("finishReason").and_then(Value::as_str) {
                _ if !calls.is_empty() => finish::TOOL_CALLS,
                Some(r) => map_finish(r),
                None => finish::STOP,
            }
        }
    };
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
        message["reasoning_content"] = r.into();
    }
    if !calls.is_empty() {
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|(id, name, args)| json!({ "id": id, "type": "function", "function": { "name": name, "arguments": args } }))
            .collect();
        message["tool_calls"] = calls.into();
    }
    Ok(json!({
        "id": ctx.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason }],
        "usage": usage.to_json(),
    }))
}
