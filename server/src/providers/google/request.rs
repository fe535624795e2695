//! OpenAI chat request -> Gemini `generateContent` / `streamGenerateContent` request: which
//! parameters pass, the model in the path, and `generationConfig`.

use serde_json::{json, Map, Value};

use super::messages::convert_messages;
use super::tools::{clean_schema, convert_tools};
use crate::providers::unified::{Prepared, TranslateError};

/// Chat parameters that need no translation: Relay or the transport handles them, or Gemini has
/// no equivalent and ignoring them changes nothing the client can observe.
const IGNORED_CHAT_PARAMS: &[&str] = &[
    "model",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
];

pub(super) fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

/// The model goes into the URL path: only plain model names, never `../` or a query.
pub(super) fn check_model(model: &str) -> Result<(), TranslateError> {
    let ok = !model.is_empty()
        && model.len() <= 128
        && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !model.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(bad("the model name has characters a Gemini model name cannot have", "model"))
    }
}

/// An OpenAI chat completion request -> a Gemini `generateContent` (or, when `stream` is true,
/// `streamGenerateContent?alt=sse`) request for `upstream_model`.
pub fn chat_request(req: &Value, upstream_model: &str) -> Result<Prepared, TranslateError> {
    check_model(upstream_model)?;
    let obj = req.as_object().ok_or_else(|| TranslateError::new("the request body must be a JSON object", None))?;
    let get = |k: &str| present(obj, k);

    for (key, value) in obj {
        if value.is_null() || IGNORED_CHAT_PARAMS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "messages"
            | "stream"
            | "tools"
            | "tool_choice"
            | "stop"
            | "max_tokens"
            | "max_completion_tokens"
            | "temperature"
            | "top_p"
            | "seed"
            | "response_format"
            | "reasoning_effort"
            | "presence_penalty"
            | "frequency_penalty" => {}
            "n" if value.as_u64() == Some(1) => {}
            "n" => return Err(bad("Gemini models return one choice per request here: `n` must be 1", "n")),
            "logprobs" if value == &Value::Bool(false) => {}
            "top_logprobs" if value.as_u64() == Some(0) => {}
            "logit_bias" if value.as_object().is_some_and(Map::is_empty) => {}
            "modalities" if value.as_array().is_some_and(|m| m.iter().all(|x| x == "text")) => {}
            "functions" | "function_call" => {
                return Err(bad(format!("`{key}` is deprecated; use `tools` and `tool_choice`"), key))
            }
            _ => return Err(bad(format!("`{key}` is not supported for Gemini models"), key)),
        }
    }

    let stream = match get("stream") {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| bad("`stream` must be a boolean", "stream"))?,
    };
    let messages = get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("`messages` must be a non-empty array", "messages"))?;

    let (system, contents) = convert_messages(messages)?;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let (tools, tool_config) = convert_tools(get("tools"), get("tool_choice"))?;
    if let Some(tools) = tools {
        body.insert("tools".into(), tools);
    }
    if let Some(tool_config) = tool_config {
        body.insert("toolConfig".into(), tool_config);
    }
    let generation = generation_config(obj)?;
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }

    let path = if stream {
        format!("/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{upstream_model}:generateContent")
    };
    Ok(Prepared { path, body: Value::Object(body) })
}

/// A parameter that is there and not null (clients send `null` for "default").
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn generation_config(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let get = |k: &str| present(obj, k);
    let mut g = Map::new();
    let number = |k: &str| -> Result<Option<f64>, TranslateError> {
        match get(k) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(format!("`{k}` must be a number"), k)),
        }
    };

    if let Some(stop) = get("stop") {
        let list: Vec<Value> = match stop {
            Value::String(s) => vec![Value::String(s.clone())],
            Value::Array(a) if a.iter().all(Value::is_string) => a.clone(),
            _ => return Err(bad("`stop` must be a string or an array of strings", "stop")),
        };
        if !list.is_empty() {
            g.insert("stopSequences".into(), Value::Array(list));
        }
    }
    let max_key = if get("max_completion_tokens").is_some() { "max_completion_tokens" } else { "max_tokens" };
    if let Some(v) = get(max_key) {
        let n = v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(format!("`{max_key}` must be a positive integer"), max_key))?;
        g.insert("maxOutputTokens".into(), n.into());
    }
    // The client's numbers are passed as written (1 stays 1, 0.7 stays 0.7).
    for (key, gemini) in [("temperature", "temperature"), ("top_p", "topP")] {
        if number(key)?.is_some() {
            g.insert(gemini.into(), get(key).cloned().unwrap_or(Value::Null));
        }
    }
    if let Some(v) = get("seed") {
        let seed = v.as_i64().ok_or_else(|| bad("`seed` must be an integer", "seed"))?;
        g.insert("seed".into(), seed.into());
    }
    // Sent only when they ask for something: some Gemini models reject the field outright.
    for (key, gemini) in [("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")] {
        if let Some(p) = number(key)? {
            if p != 0.0 {
                g.insert(gemini.into(), get(key).cloned().unwrap_or(p.into()));
            }
        }
    }
    if let Some(rf) = get("response_format") {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                g.insert("responseMimeType".into(), "application/json".into());
            }
            Some("json_schema") => {
                g.insert("responseMimeType".into(), "application/json".into());
                match rf.pointer("/json_schema/schema") {
                    None | Some(Value::Null) => {}
                    Some(s @ Value::Object(_)) => {
                        g.insert("responseJsonSchema".into(), clean_schema(s));
                    }
                    Some(_) => {
                        return Err(bad("the schema must be a JSON object", "response_format.json_schema.schema"))
                    }
                }
            }
            _ => {
                return Err(bad(
                    "`response_format.type` must be text, json_object or json_schema",
                    "response_format.type",
                ))
            }
        }
    }
    if let Some(effort) = get("reasoning_effort") {
        // Google's own OpenAI-compatible mapping: low 1K, medium 8K, high 24K thinking tokens.
        // thinkingBudget also drives Gemini 3 (which maps it onto thinking levels).
        let config = match effort.as_str() {
            Some("none") => json!({ "thinkingBudget": 0 }),
            Some("minimal" | "low") => json!({ "thinkingBudget": 1024, "includeThoughts": true }),
            Some("medium") => json!({ "thinkingBudget": 8192, "includeThoughts": true }),
            Some("high") => json!({ "thinkingBudget": 24576, "includeThoughts": true }),
            _ => return Err(bad("`reasoning_effort` must be none, minimal, low, medium or high", "reasoning_effort")),
        };
        g.insert("thinkingConfig".into(), config);
    }
    Ok(g)
}
