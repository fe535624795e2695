//! OpenAI chat request -> Anthropic Messages request: which parameters pass, limits, thinking, and
//! the body's assembly (messages are converted in `messages`, tools and formats in `tools`).

use serde_json::{json, Map, Value};

use super::messages::convert_messages;
use super::tools::{plan_tools, response_format, Format};
use crate::providers::unified::{Prepared, TranslateError};

/// `max_tokens` when the client sends neither `max_tokens` nor `max_completion_tokens` (Anthropic
/// requires one). 4096 is the largest output every Claude model accepts (Claude 3 Haiku and Opus
/// stop there), so a default never makes a request fail; clients wanting longer answers say so.
/// With thinking on, the thinking budget is added on top.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(super) const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with one valid JSON object and nothing else: no prose before or after it, no Markdown code fences.";

/// Parameters dropped on purpose (see the module comment).
const IGNORED_PARAMS: [&str; 9] = [
    "model",
    "seed",
    "store",
    "metadata",
    "service_tier",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "stream_options",
];

/// Parameters read (and checked) by the translation below.
const HANDLED_PARAMS: [&str; 22] = [
    "messages",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "user",
    "safety_identifier",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "n",
    "logprobs",
    "top_logprobs",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "modalities",
];

pub(super) fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

/// A field that is present and not `null` (clients send `null` for "not set").
pub(super) fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An OpenAI chat completion request -> an Anthropic Messages request (`POST /v1/messages`).
pub fn chat_request(req: &Value, upstream_model: &str) -> Result<Prepared, TranslateError> {
    let req = req.as_object().ok_or_else(|| TranslateError::new("The request body must be a JSON object.", None))?;
    check_params(req)?;
    let stream = match field(req, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream must be true or false.", "stream")),
    };
    let (mut system, messages) = convert_messages(req)?;
    let format = response_format(req)?;
    if matches!(format, Format::JsonObject) {
        system.push(json!({ "type": "text", "text": JSON_OBJECT_INSTRUCTION }));
    }
    let tools = plan_tools(req, &format)?;

    // Thinking: only where Anthropic can do it (see the module comment).
    let continues_tool_loop = messages.last().is_some_and(|m| {
        m["role"] == "user" && m["content"].as_array().is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    });
    let budget = thinking_budget(req)?.filter(|_| !tools.forced && !continues_tool_loop);
    let (max_tokens, budget) = match (requested_max_tokens(req)?, budget) {
        (Some((m, _)), None) => (m, None),
        (None, None) => (DEFAULT_MAX_TOKENS, None),
        (None, Some(b)) => (DEFAULT_MAX_TOKENS + b, Some(b)),
        (Some((m, param)), Some(b)) => {
            let b = if b < m { b } else { (m / 2).max(MIN_THINKING_BUDGET) };
            if b >= m {
                return Err(bad(
                    format!(
                        "With reasoning_effort, Anthropic models need {param} above {MIN_THINKING_BUDGET} (the smallest thinking budget)."
                    ),
                    param,
                ));
            }
            (m, Some(b))
        }
    };

    let mut body = Map::new();
    body.insert("model".into(), json!(upstream_model));
    body.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !tools.tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools.tools));
    }
    if let Some(choice) = tools.choice {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(stop) = stop_sequences(req)? {
        body.insert("stop_sequences".into(), stop);
    }
    let temperature = number_in(req, "temperature", 0.0, 1.0, "Anthropic models accept a temperature from 0 to 1.")?;
    let top_p = number_in(req, "top_p", 0.0, 1.0, "top_p must be a number from 0 to 1.")?;
    let top_k = match field(req, "top_k") {
        None => None,
        Some(v) => {
            Some(v.as_u64().filter(|k| *k > 0).ok_or_else(|| bad("top_k must be a positive integer.", "top_k"))?)
        }
    };
    if budget.is_some() {
        // Anthropic's rules for thinking; OpenAI's reasoning models refuse these the same way.
        if temperature.as_ref().and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
            return Err(bad(
                "With reasoning_effort, Anthropic models only accept temperature 1 (or none).",
                "temperature",
            ));
        }
        if top_p.as_ref().and_then(Value::as_f64).is_some_and(|p| p < 0.95) {
            return Err(bad("With reasoning_effort, Anthropic models only accept top_p from 0.95 to 1.", "top_p"));
        }
        if top_k.is_some() {
            return Err(bad("With reasoning_effort, Anthropic models do not accept top_k.", "top_k"));
        }
    }
    // With thinking the temperature can only be 1, Anthropic's default: leave it out.
    if let Some(t) = temperature.filter(|_| budget.is_none()) {
        body.insert("temperature".into(), t);
    }
    if let Some(p) = top_p {
        body.insert("top_p".into(), p);
    }
    if let Some(k) = top_k {
        body.insert("top_k".into(), json!(k));
    }
    if let Some(user) = end_user(req)? {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(b) = budget {
        body.insert("thinking".into(), json!({ "type": "enabled", "budget_tokens": b }));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Prepared { path: "/v1/messages".into(), body: Value::Object(body) })
}

/// Refuses what Anthropic cannot do rather than answering something else.
fn check_params(req: &Map<String, Value>) -> Result<(), TranslateError> {
    for (key, value) in req {
        if value.is_null() || IGNORED_PARAMS.contains(&key.as_str()) || HANDLED_PARAMS.contains(&key.as_str()) {
            continue;
        }
        let message = match key.as_str() {
            "functions" | "function_call" => {
                format!("{key} (the legacy function calling API) is not supported; use tools and tool_choice.")
            }
            _ => format!("{key} is not supported for Anthropic models."),
        };
        return Err(bad(message, key));
    }
    if let Some(n) = field(req, "n") {
        if n.as_u64() != Some(1) {
            return Err(bad("Anthropic models return one choice per request: n must be 1.", "n"));
        }
    }
    if let Some(v) = field(req, "logprobs") {
        if v != &Value::Bool(false) {
            return Err(bad("Anthropic models do not return log probabilities.", "logprobs"));
        }
    }
    if let Some(v) = field(req, "top_logprobs") {
        if v.as_u64() != Some(0) {
            return Err(bad("Anthropic models do not return log probabilities.", "top_logprobs"));
        }
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        if let Some(v) = field(req, key) {
            if v.as_f64() != Some(0.0) {
                return Err(bad(format!("Anthropic models do not support {key}."), key));
            }
        }
    }
    if let Some(v) = field(req, "logit_bias") {
        if !v.as_object().is_some_and(Map::is_empty) {
            return Err(bad("Anthropic models do not support logit_bias.", "logit_bias"));
        }
    }
    if let Some(v) = field(req, "modalities") {
        if v != &json!(["text"]) {
            return Err(bad("Anthropic models only produce text: modalities must be [\"text\"].", "modalities"));
        }
    }
    Ok(())
}

/// A number in `lo..=hi`, as the client wrote it (so `1` stays `1`, not `1.0`).
fn number_in(
    req: &Map<String, Value>,
    key: &str,
    lo: f64,
    hi: f64,
    msg: &str,
) -> Result<Option<Value>, TranslateError> {
    match field(req, key) {
        None => Ok(None),
        Some(v) => v.as_f64().filter(|x| (lo..=hi).contains(x)).map(|_| Some(v.clone())).ok_or_else(|| bad(msg, key)),
    }
}

/// `max_completion_tokens` wins over the older `max_tokens`; returns the value and its name.
fn requested_max_tokens(req: &Map<String, Value>) -> Result<Option<(u32, &'static str)>, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(req, key) {
            let n = v
                .as_u64()
                .filter(|n| *n > 0)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(format!("{key} must be a positive integer."), key))?;
            return Ok(Some((n, key)));
        }
    }
    Ok(None)
}

fn stop_sequences(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let list = match field(req, "stop") {
        None => return Ok(None),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("stop must be a string or an array of strings.", "stop"))?,
        Some(_) => return Err(bad("stop must be a string or an array of strings.", "stop")),
    };
    Ok((!list.is_empty()).then(|| json!(list)))
}

fn end_user(req: &Map<String, Value>) -> Result<Option<String>, TranslateError> {
    for key in ["user", "safety_identifier"] {
        if let Some(v) = field(req, key) {
            let s = v.as_str().ok_or_else(|| bad(format!("{key} must be a string."), key))?;
            if !s.is_empty() {
                return Ok(Some(s.to_owned()));
            }
        }
    }
    Ok(None)
}

const MIN_THINKING_BUDGET: u32 = 1024;

/// `reasoning_effort` -> thinking budget in tokens: minimal and low 1024 (Anthropic's minimum),
/// medium 4096, high 16384, xhigh 24576 (with the default max_tokens still under the 32k output
/// cap of Claude Opus 4); `none` turns thinking off.
fn thinking_budget(req: &Map<String, Value>) -> Result<Option<u32>, TranslateError> {
    let Some(v) = field(req, "reasoning_effort") else { return Ok(None) };
    match v.as_str() {
        Some("none") => Ok(None),
        Some("minimal" | "low") => Ok(Some(MIN_THINKING_BUDGET)),
        Some("medium") => Ok(Some(4096)),
        Some("high") => Ok(Some(16384)),
        Some("xhigh") => Ok(Some(24576)),
        _ => Err(bad("reasoning_effort must be one of none, minimal, low, medium, high, xhigh.", "reasoning_effort")),
    }
}
