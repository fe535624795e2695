//! A `chat.completion` (what every dialect answers) -> an OpenAI `response`: output items,
//! status, usage and the request's settings echoed, shared with the stream.

use serde_json::{json, Value};

use crate::providers::unified::{TranslateError, Usage};

/// What a Responses answer needs that the Chat answer does not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesContext {
    /// `resp_…`, the same on every event of a stream; item ids are made from it.
    pub id: String,
    /// The model as the client named it.
    pub model: String,
    pub created_at: i64,
    /// Whether the client asked for reasoning summaries (`reasoning.summary`).
    pub summaries: bool,
    /// The request's settings a response repeats (`instructions`, `tools`, `temperature`, …).
    pub echo: Value,
}

impl ResponsesContext {
    /// `request` is the client's Responses request.
    pub fn new(id: String, model: String, created_at: i64, request: &Value) -> Self {
        let get = |k: &str| request.get(k).filter(|v| !v.is_null()).cloned();
        let summaries = request
            .pointer("/reasoning/summary")
            .or_else(|| request.pointer("/reasoning/generate_summary"))
            .is_some_and(|s| !s.is_null());
        let echo = json!({
            "instructions": get("instructions"),
            "max_output_tokens": get("max_output_tokens"),
            "metadata": get("metadata").unwrap_or_else(|| json!({})),
            "parallel_tool_calls": get("parallel_tool_calls").unwrap_or(json!(true)),
            "reasoning": get("reasoning").map_or_else(|| json!({ "effort": null, "summary": null }), |r| json!({
                "effort": r.get("effort").cloned().unwrap_or(Value::Null),
                "summary": r.get("summary").cloned().unwrap_or(Value::Null),
            })),
            "temperature": get("temperature").unwrap_or(json!(1.0)),
            "text": { "format": request.pointer("/text/format").filter(|f| !f.is_null()).cloned().unwrap_or_else(|| json!({ "type": "text" })) },
            "tool_choice": get("tool_choice").unwrap_or(json!("auto")),
            "tools": get("tools").unwrap_or_else(|| json!([])),
            "top_p": get("top_p").unwrap_or(json!(1.0)),
            "user": get("user"),
        });
        Self { id, model, created_at, summaries, echo }
    }

    /// An output item's id: a type prefix and the response's own suffix with the item's index.
    pub(super) fn item_id(&self, prefix: &str, index: usize) -> String {
        let suffix = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{suffix}{index:02}")
    }

    /// The response object with `status`, `output` and `usage`.
    pub(super) fn response(&self, status: &str, output: Vec<Value>, usage: Option<&Usage>) -> Value {
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "model": self.model,
            "output": output,
            "previous_response_id": null,
            "store": false,
            "truncation": "disabled",
            "usage": usage.map(usage_json),
        });
        if let (Some(r), Some(echo)) = (r.as_object_mut(), self.echo.as_object()) {
            for (k, v) in echo {
                r.insert(k.clone(), v.clone());
            }
        }
        r
    }
}

/// Usage in the Responses API's terms.
pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": { "cached_tokens": u.cached_tokens },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": { "reasoning_tokens": u.reasoning_tokens },
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// Chat's finish reason -> the response's status and why it is incomplete.
pub(super) fn status(finish: Option<&str>) -> (&'static str, Option<Value>) {
    match finish {
        Some("length") => ("incomplete", Some(json!({ "reason": "max_output_tokens" }))),
        Some("content_filter") => ("incomplete", Some(json!({ "reason": "content_filter" }))),
        _ => ("completed", None),
    }
}

pub(super) fn reasoning_item(id: String, text: &str) -> Value {
    json!({ "id": id, "type": "reasoning", "summary": [{ "type": "summary_text", "text": text }] })
}

pub(super) fn message_item(id: String, status: &str, content: Vec<Value>) -> Value {
    json!({ "id": id, "type": "message", "role": "assistant", "status": status, "content": content })
}

pub(super) fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

pub(super) fn call_item(id: String, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({ "id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments })
}

/// A `chat.completion` -> a `response`.
/// `usage` is the dialect's reading of the provider's own answer, when it has one.
pub fn response_from_chat(chat: &Value, usage: Option<Usage>, ctx: &ResponsesContext) -> Result<Value, TranslateError> {
    let choice = chat.pointer("/choices/0").ok_or_else(|| TranslateError::new("the answer has no choices", None))?;
    let msg = &choice["message"];
    let mut output = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty() && ctx.summaries) {
        output.push(reasoning_item(ctx.item_id("rs", output.len()), r));
    }
    let mut content = Vec::new();
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(text_part(t));
    }
    if let Some(r) = msg["refusal"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({ "type": "refusal", "refusal": r }));
    }
    if !content.is_empty() {
        output.push(message_item(ctx.item_id("msg", output.len()), "completed", content));
    }
    for call in msg["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let f = &call["function"];
        let id = ctx.item_id("fc", output.len());
        output.push(call_item(
            id,
            "completed",
            call["id"].as_str().unwrap_or_default(),
            f["name"].as_str().unwrap_or_default(),
            f["arguments"].as_str().unwrap_or_default(),
        ));
    }
    let usage = usage.or_else(|| chat.get("usage").and_then(Usage::from_json)).unwrap_or_default();
    let (status, incomplete) = status(choice["finish_reason"].as_str());
    let mut r = ctx.response(status, output, Some(&usage));
    r["incomplete_details"] = incomplete.unwrap_or(Value::Null);
    Ok(r)
}
