//! Anthropic Messages API <-> OpenAI Chat Completions translation, streaming included.
//! Pure JSON in, JSON out: the route layer (`gateway`) does HTTP, keys and piping.
//!
//! Request choices worth knowing (each one is also tested):
//! - Every `system` and `developer` message is hoisted, in order, into `system`. Consecutive
//!   same-role turns are merged (tool results become `tool_result` blocks in one user turn, and
//!   always come first in it, as Anthropic requires).
//! - `seed`, `store`, `metadata`, `service_tier`, `prediction`, `prompt_cache_key`,
//!   `prompt_cache_retention` and `stream_options` are dropped: they do not change what the model
//!   writes, and Anthropic has no equivalent. Tool `strict` is dropped too (a weaker guarantee, not
//!   a different answer). Anything else Anthropic cannot honour (`n > 1`, `logprobs`, penalties,
//!   `logit_bias`, audio, legacy `functions`, unknown parameters) is a 400 naming the parameter.
//! - `response_format: json_object` adds a system instruction; `json_schema` becomes a tool whose
//!   input schema is the client's schema, forced so the answer is schema-shaped. That tool's call is
//!   turned back into message content, in responses and in streams. When the client's own
//!   `tool_choice` already forces a tool call (`required` or a named function) the answer is a tool
//!   call, so the format tool is left out.
//! - `reasoning_effort` enables extended thinking with a budget (see `thinking_budget`), except
//!   when a tool is forced (Anthropic refuses thinking then) or the request continues a tool-use
//!   loop (Anthropic needs the signed thinking blocks of that turn back, which OpenAI clients do not
//!   keep). `max_tokens` always stays above the budget.

mod provider;
pub use provider::PROVIDER;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::unified::{
    chunk, finish, usage_chunk, ChatContext, Prepared, SseEvent, StreamItem, StreamTranslator, TranslateError,
    UpstreamError, Usage,
};

/// `max_tokens` when the client sends neither `max_tokens` nor `max_completion_tokens` (Anthropic
/// requires one). 4096 is the largest output every Claude model accepts (Claude 3 Haiku and Opus
/// stop there), so a default never makes a request fail; clients wanting longer answers say so.
/// With thinking on, the thinking budget is added on top.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The tool that carries a `json_schema` response. Reserved: a client tool of this name is refused,
/// so a call to it in a response can only be the formatted answer.
const RESPONSE_TOOL: &str = "relay_json_response";

const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with one valid JSON object and nothing else: no prose before or after it, no Markdown code fences.";

/// The image types Anthropic accepts.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

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

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

/// A field that is present and not `null` (clients send `null` for "not set").
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

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

// --- messages --------------------------------------------------------------------------------

/// Returns the `system` blocks and the alternating `messages`.
fn convert_messages(req: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let list = field(req, "messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("messages must be a non-empty array.", "messages"))?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let p = format!("messages[{i}]");
        let m = m.as_object().ok_or_else(|| bad("Each message must be an object.", &p))?;
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Each message needs a role.", &format!("{p}.role")))?;
        match role {
            "system" | "developer" => system.extend(system_blocks(field(m, "content"), &format!("{p}.content"))?),
            "user" => {
                let content =
                    field(m, "content").ok_or_else(|| bad("A user message needs content.", &format!("{p}.content")))?;
                push_turn(&mut turns, "user", content_blocks(content, &format!("{p}.content"))?);
            }
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(m, &p)?),
            "tool" => push_turn(&mut turns, "user", vec![tool_result(m, &p)?]),
            "function" => {
                return Err(bad("Legacy function messages are not supported; use tool messages.", &format!("{p}.role")))
            }
            _ => {
                return Err(bad(
                    "A message role must be system, developer, user, assistant or tool.",
                    &format!("{p}.role"),
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err(bad(
            "Anthropic models need at least one user or assistant message besides system messages.",
            "messages",
        ));
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut content)| {
            if role == "user" {
                // Anthropic wants a turn's tool results before anything else in it.
                let (mut results, rest): (Vec<Value>, Vec<Value>) =
                    content.into_iter().partition(|b| b["type"] == "tool_result");
                results.extend(rest);
                content = results;
            }
            json!({ "role": role, "content": content })
        })
        .collect();
    Ok((system, messages))
}

/// Anthropic wants user and assistant turns to alternate: same-role neighbours become one turn.
/// A message with nothing to say (empty text) is left out.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, content)) if *last == role => content.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn text_block(text: &str, part: Option<&Value>) -> Value {
    let mut block = json!({ "type": "text", "text": text });
    copy_cache_control(part, &mut block);
    block
}

/// Anthropic's prompt caching breakpoints ride along on content parts, as several OpenAI-compatible
/// clients already send them.
fn copy_cache_control(part: Option<&Value>, block: &mut Value) {
    if let Some(cc) = part.and_then(|p| p.get("cache_control")).filter(|c| c.is_object()) {
        block["cache_control"] = cc.clone();
    }
}

fn system_blocks(content: Option<&Value>, p: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![text_block(s, None)] }),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let text = if part["type"] == "text" { part["text"].as_str() } else { None };
                let text = text
                    .ok_or_else(|| bad("System and developer messages may only contain text.", &format!("{p}[{j}]")))?;
                if !text.is_empty() {
                    out.push(text_block(text, Some(part)));
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad("content must be a string or an array of content parts.", p)),
    }
}

/// User (and tool result) content: text, images, PDF files.
fn content_blocks(content: &Value, p: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Value::String(s) => return Ok(if s.is_empty() { Vec::new() } else { vec![text_block(s, None)] }),
        Value::Array(parts) => parts,
        _ => return Err(bad("content must be a string or an array of content parts.", p)),
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}[{j}]");
        let mut block = match part["type"].as_str() {
            Some("text") => {
                let text =
                    part["text"].as_str().ok_or_else(|| bad("A text part needs text.", &format!("{pp}.text")))?;
                if text.is_empty() {
                    continue;
                }
                json!({ "type": "text", "text": text })
            }
            Some("image_url") => image_block(part, &format!("{pp}.image_url"))?,
            Some("file") => file_block(part, &format!("{pp}.file"))?,
            Some("input_audio") => return Err(bad("Anthropic models do not accept audio input.", &pp)),
            _ => return Err(bad("Unsupported content part type: use text, image_url or file.", &format!("{pp}.type"))),
        };
        copy_cache_control(Some(part), &mut block);
        out.push(block);
    }
    Ok(out)
}

/// `data:` URLs become base64 sources, http(s) URLs become url sources.
fn image_block(part: &Value, p: &str) -> Result<Value, TranslateError> {
    let url = match &part["image_url"] {
        Value::String(s) => Some(s.as_str()),
        v => v["url"].as_str(),
    }
    .ok_or_else(|| bad("An image_url part needs a url.", p))?;
    if let Some((media_type, data)) = parse_data_url(url) {
        let media_type = if media_type == "image/jpg" { "image/jpeg".to_owned() } else { media_type };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(bad("Anthropic models accept JPEG, PNG, GIF and WebP images.", p));
        }
        return Ok(json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data } }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(bad("An image URL must be an http(s) URL or a base64 data: URL.", p))
}

/// `data:<media type>[;params];base64,<data>` -> (lowercased media type, data). Only base64.
fn parse_data_url(url: &str) -> Option<(String, &str)> {
    let rest = url.get(..5).filter(|s| s.eq_ignore_ascii_case("data:")).and(url.get(5..))?;
    let (meta, data) = rest.split_once(',')?;
    let mut meta = meta.split(';');
    let media_type = meta.next().unwrap_or_default().trim().to_ascii_lowercase();
    let base64 = meta.any(|m| m.trim().eq_ignore_ascii_case("base64"));
    (base64 && !data.is_empty()).then_some((media_type, data))
}

/// OpenAI `file` parts with inline PDF data become Anthropic documents.
fn file_block(part: &Value, p: &str) -> Result<Value, TranslateError> {
    let data = part["file"]["file_data"].as_str().and_then(parse_data_url);
    match data {
        Some((media_type, data)) if media_type == "application/pdf" => {
            Ok(json!({ "type": "document", "source": { "type": "base64", "media_type": media_type, "data": data } }))
        }
        _ => Err(bad(
            "Anthropic models accept files as inline base64 PDF data (file.file_data); file ids are not supported.",
            p,
        )),
    }
}

fn assistant_blocks(m: &Map<String, Value>, p: &str) -> Result<Vec<Value>, TranslateError> {
    if field(m, "function_call").is_some() {
        return Err(bad(
            "The legacy function_call field is not supported; use tool_calls.",
            &format!("{p}.function_call"),
        ));
    }
    let mut out = Vec::new();
    match field(m, "content") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => out.push(text_block(s, None)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part["type"].as_str() {
                    Some("text") => part["text"].as_str(),
                    Some("refusal") => part["refusal"].as_str(),
                    _ => None,
                }
                .ok_or_else(|| bad("Assistant messages may only contain text.", &format!("{p}.content[{j}]")))?;
                if !text.is_empty() {
                    out.push(text_block(text, Some(part)));
                }
            }
        }
        Some(_) => return Err(bad("content must be a string or an array of content parts.", &format!("{p}.content"))),
    }
    if let Some(calls) = field(m, "tool_calls") {
        let calls = calls.as_array().ok_or_else(|| bad("tool_calls must be an array.", &format!("{p}.tool_calls")))?;
        for (j, call) in calls.iter().enumerate() {
            let cp = format!("{p}.tool_calls[{j}]");
            let id = call["id"].as_str().ok_or_else(|| bad("A tool call needs an id.", &format!("{cp}.id")))?;
            let name = call["function"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("A tool call needs a function name.", &format!("{cp}.function.name")))?;
            let input = parse_arguments(call["function"].get("arguments"), &format!("{cp}.function.arguments"))?;
            out.push(
                json!({ "type": "tool_use", "id": tool_id(id, &format!("{cp}.id"))?, "name": name, "input": input }),
            );
        }
    }
    Ok(out)
}

/// Tool call arguments are a JSON string; Anthropic wants the object. Empty means no arguments.
fn parse_arguments(args: Option<&Value>, p: &str) -> Result<Value, TranslateError> {
    match args {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(o)) => Ok(Value::Object(o.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(bad("Tool call arguments must be a JSON object.", p)),
            Err(e) => Err(bad(
                format!("Tool call arguments are not valid JSON (line {}, column {}).", e.line(), e.column()),
                p,
            )),
        },
        Some(_) => Err(bad("Tool call arguments must be a JSON string.", p)),
    }
}

/// Anthropic tool ids match `^[a-zA-Z0-9_-]+$`; ids minted by other providers may not. The same
/// mapping on both sides keeps tool_use and tool_result paired.
fn tool_id(id: &str, p: &str) -> Result<String, TranslateError> {
    if id.is_empty() {
        return Err(bad("A tool call id must not be empty.", p));
    }
    Ok(id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect())
}

fn tool_result(m: &Map<String, Value>, p: &str) -> Result<Value, TranslateError> {
    let id_param = format!("{p}.tool_call_id");
    let id = field(m, "tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("A tool message needs a tool_call_id.", &id_param))?;
    let mut block = json!({ "type": "tool_result", "tool_use_id": tool_id(id, &id_param)? });
    match field(m, "content") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => block["content"] = json!(s),
        Some(content) => {
            let blocks = content_blocks(content, &format!("{p}.content"))?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
    }
    Ok(block)
}

// --- tools and response_format ---------------------------------------------------------------

enum Format {
    Text,
    JsonObject,
    /// The response tool's definition.
    JsonSchema(Value),
}

fn response_format(req: &Map<String, Value>) -> Result<Format, TranslateError> {
    let Some(rf) = field(req, "response_format") else { return Ok(Format::Text) };
    match rf["type"].as_str() {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => {
            let js = &rf["json_schema"];
            let Some(schema) = js.get("schema").filter(|s| !s.is_null()) else { return Ok(Format::JsonObject) };
            let mut schema = schema
                .as_object()
                .cloned()
                .ok_or_else(|| bad("The schema must be a JSON object.", "response_format.json_schema.schema"))?;
            match schema.get("type") {
                None => {
                    schema.insert("type".into(), json!("object"));
                }
                Some(t) if t == "object" => {}
                Some(_) => {
                    return Err(bad(
                        "For Anthropic models the response schema must describe an object at the top level.",
                        "response_format.json_schema.schema",
                    ))
                }
            }
            let mut description =
                "Give your final answer by calling this tool: its input is the complete response".to_owned();
            if let Some(name) = js["name"].as_str().filter(|n| !n.is_empty()) {
                description.push_str(&format!(" ({name})"));
            }
            description.push('.');
            if let Some(d) = js["description"].as_str().filter(|d| !d.is_empty()) {
                description.push(' ');
                description.push_str(d);
            }
            Ok(Format::JsonSchema(json!({ "name": RESPONSE_TOOL, "description": description, "input_schema": schema })))
        }
        _ => Err(bad("response_format type must be text, json_object or json_schema.", "response_format.type")),
    }
}

enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

struct ToolPlan {
    tools: Vec<Value>,
    choice: Option<Value>,
    /// The model must call a tool (Anthropic refuses thinking then).
    forced: bool,
}

fn plan_tools(req: &Map<String, Value>, format: &Format) -> Result<ToolPlan, TranslateError> {
    let (mut tools, names) = client_tools(req)?;
    let choice = match field(req, "tool_choice") {
        None => None,
        Some(v) => Some(match (v.as_str(), v["type"].as_str(), v["function"]["name"].as_str()) {
            (Some("auto"), ..) => Choice::Auto,
            (Some("none"), ..) => Choice::None,
            (Some("required"), ..) => Choice::Required,
            (None, Some("function"), Some(name)) => Choice::Named(name.to_owned()),
            _ => return Err(bad(
                "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}.",
                "tool_choice",
            )),
        }),
    };
    let parallel_off = match field(req, "parallel_tool_calls") {
        None => false,
        Some(Value::Bool(b)) => !b,
        Some(_) => return Err(bad("parallel_tool_calls must be true or false.", "parallel_tool_calls")),
    };
    match &choice {
        Some(Choice::Required) if tools.is_empty() => {
            return Err(bad("tool_choice required needs tools.", "tool_choice"));
        }
        Some(Choice::Named(name)) if !names.contains(name) => {
            return Err(bad("tool_choice names a function that is not in tools.", "tool_choice"));
        }
        _ => {}
    }
    let with_parallel = |mut v: Value| {
        if parallel_off {
            v["disable_parallel_tool_use"] = json!(true);
        }
        v
    };
    let client_forces = matches!(choice, Some(Choice::Required | Choice::Named(_)));
    if let Format::JsonSchema(response_tool) = format {
        if !client_forces {
            let only_ours = tools.is_empty() || matches!(choice, Some(Choice::None));
            tools.push(response_tool.clone());
            let choice = if only_ours {
                // One answer: never two calls of the response tool.
                json!({ "type": "tool", "name": RESPONSE_TOOL, "disable_parallel_tool_use": true })
            } else {
                // Either one of the client's tools or the formatted answer: never free text.
                with_parallel(json!({ "type": "any" }))
            };
            return Ok(ToolPlan { tools, choice: Some(choice), forced: true });
        }
    }
    let choice = if tools.is_empty() {
        None
    } else {
        match choice {
            None => parallel_off.then(|| json!({ "type": "auto", "disable_parallel_tool_use": true })),
            Some(Choice::Auto) => Some(with_parallel(json!({ "type": "auto" }))),
            Some(Choice::None) => Some(json!({ "type": "none" })),
            Some(Choice::Required) => Some(with_parallel(json!({ "type": "any" }))),
            Some(Choice::Named(name)) => Some(with_parallel(json!({ "type": "tool", "name": name }))),
        }
    };
    Ok(ToolPlan { tools, choice, forced: client_forces })
}

/// OpenAI function tools -> Anthropic tools, and their names.
fn client_tools(req: &Map<String, Value>) -> Result<(Vec<Value>, Vec<String>), TranslateError> {
    let Some(list) = field(req, "tools") else { return Ok((Vec::new(), Vec::new())) };
    let list = list.as_array().ok_or_else(|| bad("tools must be an array.", "tools"))?;
    let mut tools = Vec::new();
    let mut names = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        if tool["type"] != "function" {
            return Err(bad("Anthropic models support function tools only.", &format!("{p}.type")));
        }
        let f = &tool["function"];
        let name = f["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("A function tool needs a name.", &format!("{p}.function.name")))?;
        if name == RESPONSE_TOOL {
            return Err(bad(
                format!("The tool name {RESPONSE_TOOL} is reserved by Relay."),
                &format!("{p}.function.name"),
            ));
        }
        let mut schema = match f.get("parameters").filter(|v| !v.is_null()) {
            None => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(bad("parameters must be a JSON Schema object.", &format!("{p}.function.parameters")))
            }
        };
        match schema.get("type") {
            None => {
                schema.insert("type".into(), json!("object"));
                schema.entry("properties").or_insert_with(|| json!({}));
            }
            Some(t) if t == "object" => {}
            Some(_) => {
                return Err(bad(
                    "Function parameters must describe an object at the top level.",
                    &format!("{p}.function.parameters"),
                ))
            }
        }
        let mut out = json!({ "name": name });
        if let Some(d) = f["description"].as_str().filter(|d| !d.is_empty()) {
            out["description"] = json!(d);
        }
        out["input_schema"] = Value::Object(schema);
        tools.push(out);
        names.push(name.to_owned());
    }
    Ok((tools, names))
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

fn malformed(what: &str) -> TranslateError {
    TranslateError::new(format!("the Anthropic message {what}"), None)
}

/// Anthropic usage -> OpenAI usage: prompt tokens count cached reads and cache writes too.
#[derive(Debug, Clone, Copy, Default)]
struct RawUsage {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
}

impl RawUsage {
    /// Takes the fields `u` has (message_delta repeats them cumulatively, or sends only some).
    fn update(&mut self, u: &Value) {
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

    fn to_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.input + self.cache_creation + self.cache_read,
            completion_tokens: self.output,
            cached_tokens: self.cache_read,
            // Anthropic does not report thinking tokens separately (they are in output_tokens).
            reasoning_tokens: 0,
        }
    }
}

fn finish_reason(stop_reason: Option<&str>, tool_called: bool) -> &'static str {
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

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// What an open Anthropic content block is, by Anthropic's block index.
#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    /// A client tool call, with its OpenAI index (order of appearance) and whether any argument
    /// text went out yet.
    Tool {
        index: usize,
        sent_args: bool,
    },
    /// The response-format tool: its input is the message content.
    Answer {
        sent: bool,
    },
    Ignored,
}

/// Anthropic stream events -> `chat.completion.chunk`s.
#[derive(Debug)]
pub struct AnthropicStream {
    ctx: ChatContext,
    started: bool,
    done: bool,
    blocks: BTreeMap<u64, Block>,
    tool_calls: usize,
    answered: bool,
    stop_reason: Option<String>,
    usage: Option<RawUsage>,
}

/// A translator for one stream; `ctx` gives every chunk its id, model and creation time.
pub fn chat_stream(ctx: ChatContext) -> AnthropicStream {
    AnthropicStream {
        ctx,
        started: false,
        done: false,
        blocks: BTreeMap::new(),
        tool_calls: 0,
        answered: false,
        stop_reason: None,
        usage: None,
    }
}

impl AnthropicStream {
    fn role_chunk(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ "role": "assistant", "content": "" }), None)));
        }
    }

    fn emit(&mut self, out: &mut Vec<StreamItem>, delta: Value) {
        self.role_chunk(out);
        out.push(StreamItem::Chunk(chunk(&self.ctx, delta, None)));
    }

    fn content(&mut self, out: &mut Vec<StreamItem>, text: &str) {
        if !text.is_empty() {
            self.emit(out, json!({ "content": text }));
        }
    }

    fn arguments(&mut self, out: &mut Vec<StreamItem>, index: usize, fragment: &str) {
        self.emit(out, json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }));
    }

    fn update_usage(&mut self, u: Option<&Value>) {
        if let Some(u) = u.filter(|u| u.is_object()) {
            self.usage.get_or_insert_with(RawUsage::default).update(u);
        }
    }

    fn block_start(&mut self, out: &mut Vec<StreamItem>, index: u64, block: &Value) {
        let kind = match block["type"].as_str() {
            Some("text") => {
                self.content(out, block["text"].as_str().unwrap_or_default());
                Block::Text
            }
            Some("thinking") => {
                if let Some(t) = block["thinking"].as_str().filter(|t| !t.is_empty()) {
                    self.emit(out, json!({ "reasoning_content": t }));
                }
                Block::Thinking
            }
            Some("tool_use") if block["name"] == RESPONSE_TOOL => {
                if self.answered {
                    Block::Ignored
                } else {
                    self.answered = true;
                    let mut sent = false;
                    if let Some(input) = non_empty_input(block) {
                        self.content(out, &input);
                        sent = true;
                    }
                    Block::Answer { sent }
                }
            }
            Some("tool_use") => {
                let tool = self.tool_calls;
                self.tool_calls += 1;
                let call = json!({
                    "index": tool,
                    "id": block["id"].as_str().unwrap_or_default(),
                    "type": "function",
                    "function": { "name": block["name"].as_str().unwrap_or_default(), "arguments": "" },
                });
                self.emit(out, json!({ "tool_calls": [call] }));
                let mut sent_args = false;
                if let Some(input) = non_empty_input(block) {
                    self.arguments(out, tool, &input);
                    sent_args = true;
                }
                Block::Tool { index: tool, sent_args }
            }
            _ => Block::Ignored,
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(&mut self, out: &mut Vec<StreamItem>, index: u64, delta: &Value) {
        let fragment = |key: &str| delta[key].as_str().filter(|s| !s.is_empty());
        let Some(block) = self.blocks.get_mut(&index) else { return };
        let chunk_delta = match (block, delta["type"].as_str()) {
            (Block::Text, Some("text_delta")) => fragment("text").map(|t| json!({ "content": t })),
            (Block::Thinking, Some("thinking_delta")) => {
                fragment("thinking").map(|t| json!({ "reasoning_content": t }))
            }
            (Block::Tool { index, sent_args }, Some("input_json_delta")) => fragment("partial_json").map(|f| {
                *sent_args = true;
                json!({ "tool_calls": [{ "index": *index, "function": { "arguments": f } }] })
            }),
            (Block::Answer { sent }, Some("input_json_delta")) => fragment("partial_json").map(|f| {
                *sent = true;
                json!({ "content": f })
            }),
            // signature_delta, citations_delta, and anything newer: nothing to show.
            _ => None,
        };
        if let Some(d) = chunk_delta {
            self.emit(out, d);
        }
    }

    /// A tool call whose input never arrived has no arguments: say so as `{}`.
    fn close_block(&mut self, out: &mut Vec<StreamItem>, block: Block) {
        match block {
            Block::Tool { index, sent_args: false } => self.arguments(out, index, "{}"),
            Block::Answer { sent: false } => self.content(out, "{}"),
            _ => {}
        }
    }

    /// Closes what is open, then the finish chunk and (if asked for) the usage chunk.
    fn finish_message(&mut self, out: &mut Vec<StreamItem>) {
        self.role_chunk(out);
        for block in std::mem::take(&mut self.blocks).into_values() {
            self.close_block(out, block);
        }
        let reason = finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0);
        out.push(StreamItem::Chunk(chunk(&self.ctx, json!({}), Some(reason))));
        if self.ctx.include_usage {
            let usage = self.usage.unwrap_or_default().to_usage();
            out.push(StreamItem::Chunk(usage_chunk(&self.ctx, &usage)));
        }
        self.done = true;
    }

    fn fail(&mut self, err: UpstreamError) -> Vec<StreamItem> {
        self.done = true;
        vec![StreamItem::Error(err.to_json())]
    }
}

/// A tool_use block that starts with input already in it (streams normally start with `{}`).
fn non_empty_input(block: &Value) -> Option<String> {
    block.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())).map(Value::to_string)
}

impl StreamTranslator for AnthropicStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return self.fail(UpstreamError {
                message: "Anthropic sent a stream event that is not JSON.".into(),
                kind: "api_error".into(),
                code: None,
                param: None,
            });
        };
        // The payload's own type is authoritative; the SSE event name is a fallback.
        let kind = data["type"].as_str().or(event.event.as_deref()).unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                self.update_usage(data.pointer("/message/usage"));
                self.role_chunk(&mut out);
            }
            "content_block_start" => {
                if let Some(index) = data["index"].as_u64() {
                    self.block_start(&mut out, index, &data["content_block"]);
                }
            }
            "content_block_delta" => {
                if let Some(index) = data["index"].as_u64() {
                    self.block_delta(&mut out, index, &data["delta"]);
                }
            }
            "content_block_stop" => {
                if let Some(block) = data["index"].as_u64().and_then(|i| self.blocks.remove(&i)) {
                    self.close_block(&mut out, block);
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                self.update_usage(data.get("usage"));
            }
            "message_stop" => self.finish_message(&mut out),
            "error" => return self.fail(error_from(None, Some(&data))),
            // ping, and event types added later.
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        if !self.started {
            return self.fail(UpstreamError {
                message: "Anthropic closed the stream before sending a message.".into(),
                kind: "api_error".into(),
                code: None,
                param: None,
            });
        }
        // The stream ended without message_stop: deliver what is owed, with the stop reason seen
        // (if any) rather than an invented one.
        let mut out = Vec::new();
        self.finish_message(&mut out);
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(RawUsage::to_usage)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A non-2xx Anthropic answer (`{"type":"error","error":{"type","message"}}`, or anything else)
/// -> OpenAI error fields. Also used for a mid-stream `event: error`.
pub fn upstream_error(status: u16, body: &[u8]) -> UpstreamError {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    error_from(Some(status), parsed.as_ref())
}

/// Anthropic error type -> (OpenAI type, code). Unknown types pass through.
fn map_error_type(t: &str) -> (String, Option<&'static str>) {
    let (kind, code) = match t {
        "invalid_request_error" => ("invalid_request_error", None),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "conflict_error" => ("invalid_request_error", Some("conflict")),
        "authentication_error" => ("authentication_error", None),
        "permission_error" => ("permission_error", None),
        "not_found_error" => ("not_found_error", None),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "overloaded_error" => ("overloaded_error", Some("overloaded")),
        "timeout_error" => ("api_error", Some("timeout")),
        "api_error" => ("api_error", None),
        other => return (other.to_owned(), None),
    };
    (kind.to_owned(), code)
}

fn error_type_for_status(status: Option<u16>) -> &'static str {
    match status {
        Some(400 | 413 | 422) => "invalid_request_error",
        Some(401) => "authentication_error",
        Some(402) => "billing_error",
        Some(403) => "permission_error",
        Some(404) => "not_found_error",
        Some(429) => "rate_limit_error",
        Some(529) => "overloaded_error",
        Some(504) => "timeout_error",
        _ => "api_error",
    }
}

fn error_from(status: Option<u16>, body: Option<&Value>) -> UpstreamError {
    let error = body.map(|b| &b["error"]);
    let anthropic_type = error.and_then(|e| e["type"].as_str()).filter(|t| !t.is_empty());
    let (kind, code) = map_error_type(anthropic_type.unwrap_or_else(|| error_type_for_status(status)));
    let message = error
        .and_then(|e| e["message"].as_str())
        .or_else(|| error.and_then(Value::as_str))
        .or_else(|| body.and_then(|b| b["message"].as_str()))
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| match status {
            Some(s) => format!("Anthropic answered HTTP {s} without an error message."),
            None => "Anthropic reported an error in the middle of the stream without a message.".to_owned(),
        });
    UpstreamError { message, kind, code: code.map(str::to_owned), param: None }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::sse::SseParser;

    fn fixtures_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/anthropic")
    }

    fn read_json(path: &Path) -> Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn ctx(model: &str, include_usage: bool) -> ChatContext {
        ChatContext { id: "chatcmpl-test".into(), model: model.into(), created: 1_700_000_000, include_usage }
    }

    fn ctx_for(req: &Value) -> ChatContext {
        let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        ctx(req["model"].as_str().expect("model"), include_usage)
    }

    fn item_json(item: StreamItem) -> Value {
        match item {
            StreamItem::Chunk(v) | StreamItem::Error(v) => v,
            other => panic!("a translator only makes chunks and errors, not {other:?}"),
        }
    }

    /// Feeds `sse` cut at `cuts` through the SSE parser into a fresh translator, as the route does.
    fn run_stream(sse: &[u8], cuts: &[usize], ctx: &ChatContext) -> (Vec<Value>, Option<Usage>) {
        let mut parser = SseParser::new();
        let mut tr = chat_stream(ctx.clone());
        let mut out = Vec::new();
        let mut errored = false;
        let feed = |events: Vec<SseEvent>, tr: &mut AnthropicStream, out: &mut Vec<Value>, errored: &mut bool| {
            for ev in events {
                if *errored {
                    return;
                }
                for item in tr.on_event(&ev) {
                    *errored |= matches!(item, StreamItem::Error(_));
                    out.push(item_json(item));
                }
            }
        };
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&sse.len())) {
            let events = parser.push(&sse[start..cut]);
            feed(events, &mut tr, &mut out, &mut errored);
            start = cut;
        }
        feed(parser.finish().into_iter().collect(), &mut tr, &mut out, &mut errored);
        if !errored {
            out.extend(tr.finish().into_iter().map(item_json));
        }
        (out, tr.usage())
    }

    /// What an SDK's stream accumulator yields (tests/fixtures/README.md).
    fn accumulate(chunks: &[Value]) -> Value {
        let mut content: Option<String> = None;
        let mut reasoning: Option<String> = None;
        let mut calls: Vec<Value> = Vec::new();
        let mut finish = Value::Null;
        let mut usage = Value::Null;
        for c in chunks {
            if c.get("error").is_some() {
                continue;
            }
            if c["choices"] == json!([]) {
                usage = c["usage"].clone();
                continue;
            }
            let choice = &c["choices"][0];
            let d = &choice["delta"];
            if let Some(t) = d["content"].as_str() {
                content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = usize::try_from(tc["index"].as_u64().expect("index")).expect("small index");
                while calls.len() <= i {
                    calls.push(json!({ "id": null, "name": null, "arguments": "" }));
                }
                if let Some(id) = tc.get("id") {
                    calls[i]["id"] = id.clone();
                }
                if let Some(name) = tc["function"].get("name") {
                    calls[i]["name"] = name.clone();
                }
                let args = format!(
                    "{}{}",
                    calls[i]["arguments"].as_str().unwrap_or(""),
                    tc["function"]["arguments"].as_str().unwrap_or("")
                );
                calls[i]["arguments"] = json!(args);
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
        json!({ "content": content, "reasoning_content": reasoning, "tool_calls": calls, "finish_reason": finish, "usage": usage })
    }

    /// Deterministic cut points, so a failure can be replayed.
    fn random_cuts(len: usize, seed: u64) -> Vec<usize> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let count = usize::try_from(next() % 40).expect("small") + 1;
        let mut cuts: Vec<usize> =
            (0..count).map(|_| usize::try_from(next() % (len as u64 + 1)).expect("fits")).collect();
        cuts.sort_unstable();
        cuts
    }

    fn check_stream_invariants(name: &str, chunks: &[Value]) {
        for (i, c) in chunks.iter().enumerate() {
            if c.get("error").is_some() {
                assert_eq!(i, chunks.len() - 1, "{name}: the error is the last item");
                continue;
            }
            if c["choices"] == json!([]) {
                continue;
            }
            let choice = &c["choices"][0];
            let empty = choice["delta"].as_object().is_some_and(Map::is_empty);
            assert!(!empty || !choice["finish_reason"].is_null(), "{name}: chunk {i} has an empty delta");
            if i == 0 {
                assert_eq!(choice["delta"], json!({ "role": "assistant", "content": "" }), "{name}: role chunk first");
            }
        }
    }

    fn check_scenario(dir: &Path) {
        let name = dir.file_name().and_then(|n| n.to_str()).expect("scenario name").to_owned();
        let req = read_json(&dir.join("openai_request.json"));
        let expected = read_json(&dir.join("expected.json"));
        let upstream = read_json(&dir.join("upstream_request.json"));
        let model = req["model"].as_str().expect("model");
        let prepared = chat_request(&req, model).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(json!({ "path": prepared.path, "body": prepared.body }), upstream, "{name}: upstream request");
        assert_eq!(
            prepared.body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            req["stream"].as_bool().unwrap_or(false),
            "{name}: stream flag"
        );
        let ctx = ctx_for(&req);

        let response_path = dir.join("upstream_response.json");
        let stream_path = dir.join("upstream_stream.sse");
        if response_path.exists() {
            let response = read_json(&response_path);
            let status = u16::try_from(response["status"].as_u64().expect("status")).expect("u16");
            assert_eq!(expected["status"].as_u64(), Some(u64::from(status)), "{name}: status");
            if (200..300).contains(&status) {
                let got = chat_response(&response["body"], &ctx).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_eq!(got, expected["completion"], "{name}: completion");
            } else {
                let body = match &response["body"] {
                    Value::String(s) => s.clone().into_bytes(),
                    v => serde_json::to_vec(v).expect("body"),
                };
                let got = upstream_error(status, &body).to_json();
                assert_eq!(got["error"], expected["error"], "{name}: error");
            }
        } else {
            let sse = std::fs::read(&stream_path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(expected["status"], 200, "{name}: status");
            let want = expected["chunks"].as_array().expect("chunks");
            check_stream_invariants(&name, want);
            let mut patterns: Vec<Vec<usize>> = vec![Vec::new(), (1..sse.len()).collect()];
            patterns.extend((1..=25).map(|seed| random_cuts(sse.len(), seed)));
            for cuts in &patterns {
                let (got, usage) = run_stream(&sse, cuts, &ctx);
                assert_eq!(&got, want, "{name}: chunks with {} cuts", cuts.len());
                if let Some(acc) = expected.get("accumulated") {
                    assert_eq!(&accumulate(&got), acc, "{name}: accumulated");
                    if !acc["usage"].is_null() {
                        assert_eq!(usage.map(|u| u.to_json()).as_ref(), Some(&acc["usage"]), "{name}: usage()");
                    }
                }
            }
        }
    }

    #[test]
    fn fixtures_translate_exactly() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
            .expect("fixtures dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let names: Vec<String> = dirs.iter().filter_map(|d| d.file_name()?.to_str().map(str::to_owned)).collect();
        for required in [
            "text",
            "text_stream",
            "thinking_stream",
            "parallel_tool_calls_stream",
            "tool_call_no_arguments_stream",
            "cache_usage",
            "cache_usage_stream",
            "overloaded_mid_stream",
            "status_529_before_output",
            "status_429_before_output",
            "request_translation",
            "max_tokens_default",
            "json_object_response",
        ] {
            assert!(names.iter().any(|n| n == required), "missing scenario {required}");
        }
        for dir in &dirs {
            check_scenario(dir);
        }
    }

    // --- request edge cases ------------------------------------------------------------------

    fn translate(req: Value) -> Result<Value, TranslateError> {
        chat_request(&req, "claude-sonnet-4-5").map(|p| p.body)
    }

    fn user(text: &str) -> Value {
        json!({ "role": "user", "content": text })
    }

    fn param_of(req: Value) -> Option<String> {
        translate(req).expect_err("should be refused").param
    }

    fn weather_tool() -> Value {
        json!({ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } })
    }

    #[test]
    fn invalid_tool_arguments_name_the_parameter() {
        let req = |args: &str| {
            json!({ "model": "m", "messages": [
                user("hi"),
                { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "f", "arguments": args } }] },
                { "role": "tool", "tool_call_id": "call_1", "content": "ok" },
            ] })
        };
        let err = translate(req("{\"city\": ")).expect_err("invalid JSON");
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        assert_eq!(param_of(req("[1, 2]")).as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
        for empty in ["", "  "] {
            let body = translate(req(empty)).expect("empty arguments are no arguments");
            assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
        }
    }

    #[test]
    fn unsupported_parameters_are_refused_by_name() {
        let base = |k: &str, v: Value| {
            let mut r = json!({ "model": "m", "messages": [user("hi")] });
            r[k] = v;
            r
        };
        assert_eq!(param_of(base("n", json!(2))).as_deref(), Some("n"));
        assert!(translate(base("n", json!(1))).is_ok());
        assert!(translate(base("n", Value::Null)).is_ok());
        assert_eq!(param_of(base("logprobs", json!(true))).as_deref(), Some("logprobs"));
        assert!(translate(base("logprobs", json!(false))).is_ok());
        assert_eq!(param_of(base("top_logprobs", json!(3))).as_deref(), Some("top_logprobs"));
        assert_eq!(param_of(base("frequency_penalty", json!(0.5))).as_deref(), Some("frequency_penalty"));
        assert!(translate(base("presence_penalty", json!(0))).is_ok());
        assert_eq!(param_of(base("logit_bias", json!({ "50256": -100 }))).as_deref(), Some("logit_bias"));
        assert_eq!(param_of(base("modalities", json!(["text", "audio"]))).as_deref(), Some("modalities"));
        assert_eq!(param_of(base("audio", json!({ "voice": "alloy" }))).as_deref(), Some("audio"));
        assert_eq!(param_of(base("functions", json!([]))).as_deref(), Some("functions"));
        assert_eq!(param_of(base("frobnicate", json!(1))).as_deref(), Some("frobnicate"));
        assert_eq!(param_of(base("temperature", json!(1.5))).as_deref(), Some("temperature"));
        assert_eq!(param_of(base("max_tokens", json!(0))).as_deref(), Some("max_tokens"));
        assert_eq!(param_of(base("stop", json!([1]))).as_deref(), Some("stop"));
        assert_eq!(param_of(base("stream", json!("yes"))).as_deref(), Some("stream"));
        // Dropped on purpose: no effect on the answer.
        for (k, v) in [
            ("seed", json!(7)),
            ("store", json!(true)),
            ("service_tier", json!("auto")),
            ("metadata", json!({ "a": "b" })),
        ] {
            let body = translate(base(k, v)).expect("ignored");
            assert!(body.get(k).is_none() || k == "metadata" && body.get("metadata").is_none());
        }
    }

    #[test]
    fn messages_must_hold_a_conversation() {
        assert_eq!(param_of(json!({ "model": "m", "messages": [] })).as_deref(), Some("messages"));
        assert_eq!(param_of(json!({ "model": "m" })).as_deref(), Some("messages"));
        assert_eq!(
            param_of(json!({ "model": "m", "messages": [{ "role": "system", "content": "be nice" }] })).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of(json!({ "model": "m", "messages": [{ "role": "wizard", "content": "x" }] })).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(json!({ "model": "m", "messages": [{ "role": "function", "name": "f", "content": "x" }] }))
                .as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(json!({ "model": "m", "messages": [{ "role": "user" }] })).as_deref(),
            Some("messages[0].content")
        );
        assert!(translate(json!("not an object")).is_err());
    }

    #[test]
    fn tool_choice_variants() {
        let req = |choice: Value, parallel: Option<bool>| {
            let mut r = json!({ "model": "m", "messages": [user("weather?")], "tools": [weather_tool()] });
            if !choice.is_null() {
                r["tool_choice"] = choice;
            }
            if let Some(p) = parallel {
                r["parallel_tool_calls"] = json!(p);
            }
            translate(r).expect("translates")
        };
        assert_eq!(req(json!("none"), None)["tool_choice"], json!({ "type": "none" }));
        assert_eq!(req(json!("none"), Some(false))["tool_choice"], json!({ "type": "none" }));
        assert_eq!(req(json!("auto"), None)["tool_choice"], json!({ "type": "auto" }));
        assert_eq!(req(json!("required"), None)["tool_choice"], json!({ "type": "any" }));
        assert_eq!(
            req(json!({ "type": "function", "function": { "name": "get_weather" } }), None)["tool_choice"],
            json!({ "type": "tool", "name": "get_weather" })
        );
        assert!(req(Value::Null, None).get("tool_choice").is_none());
        assert!(req(Value::Null, Some(true)).get("tool_choice").is_none());
        assert_eq!(
            req(Value::Null, Some(false))["tool_choice"],
            json!({ "type": "auto", "disable_parallel_tool_use": true })
        );
        assert_eq!(
            req(json!("required"), Some(false))["tool_choice"],
            json!({ "type": "any", "disable_parallel_tool_use": true })
        );

        // Without tools: auto/none say nothing, forcing is an error.
        let bare = |choice: Value| json!({ "model": "m", "messages": [user("hi")], "tool_choice": choice });
        assert!(translate(bare(json!("none"))).expect("fine").get("tool_choice").is_none());
        assert_eq!(param_of(bare(json!("required"))).as_deref(), Some("tool_choice"));
        let mut unknown = json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()] });
        unknown["tool_choice"] = json!({ "type": "function", "function": { "name": "nope" } });
        assert_eq!(param_of(unknown).as_deref(), Some("tool_choice"));
        let mut odd = json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()] });
        odd["tool_choice"] = json!("sometimes");
        assert_eq!(param_of(odd).as_deref(), Some("tool_choice"));
    }

    #[test]
    fn tools_are_checked() {
        let with_tool = |tool: Value| json!({ "model": "m", "messages": [user("hi")], "tools": [tool] });
        assert_eq!(param_of(with_tool(json!({ "type": "web_search" }))).as_deref(), Some("tools[0].type"));
        assert_eq!(
            param_of(with_tool(json!({ "type": "function", "function": { "name": RESPONSE_TOOL } }))).as_deref(),
            Some("tools[0].function.name")
        );
        assert_eq!(
            param_of(with_tool(
                json!({ "type": "function", "function": { "name": "f", "parameters": { "type": "array" } } })
            ))
            .as_deref(),
            Some("tools[0].function.parameters")
        );
        let body = translate(with_tool(
            json!({ "type": "function", "function": { "name": "f", "parameters": { "properties": { "a": { "type": "string" } } }, "strict": true } }),
        ))
        .expect("translates");
        assert_eq!(
            body["tools"],
            json!([{ "name": "f", "input_schema": { "type": "object", "properties": { "a": { "type": "string" } } } }])
        );
    }

    #[test]
    fn same_role_turns_merge_and_tool_results_come_first() {
        let body = translate(json!({ "model": "m", "messages": [
            user("one"),
            { "role": "user", "content": [{ "type": "text", "text": "two" }] },
            { "role": "assistant", "content": "a" },
            { "role": "assistant", "content": [{ "type": "text", "text": "b" }], "tool_calls": [{ "id": "functions.lookup:0", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":1}" } }] },
            user("a note before the result"),
            { "role": "tool", "tool_call_id": "functions.lookup:0", "content": "" },
            { "role": "system", "content": "late system" },
        ] }))
        .expect("translates");
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": [{ "type": "text", "text": "one" }, { "type": "text", "text": "two" }] },
                { "role": "assistant", "content": [
                    { "type": "text", "text": "a" },
                    { "type": "text", "text": "b" },
                    { "type": "tool_use", "id": "functions_lookup_0", "name": "lookup", "input": { "q": 1 } },
                ] },
                { "role": "user", "content": [
                    { "type": "tool_result", "tool_use_id": "functions_lookup_0" },
                    { "type": "text", "text": "a note before the result" },
                ] },
            ])
        );
        assert_eq!(body["system"], json!([{ "type": "text", "text": "late system" }]));
    }

    #[test]
    fn images_and_files() {
        let with_part = |part: Value| json!({ "model": "m", "messages": [{ "role": "user", "content": [part] }] });
        let image = |url: &str| with_part(json!({ "type": "image_url", "image_url": { "url": url } }));
        let body = translate(image("data:image/jpg;base64,/9j/4AAQ")).expect("jpg");
        assert_eq!(
            body["messages"][0]["content"][0]["source"],
            json!({ "type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ" })
        );
        let body = translate(image("HTTPS://example.com/a.png")).expect("url");
        assert_eq!(
            body["messages"][0]["content"][0]["source"],
            json!({ "type": "url", "url": "HTTPS://example.com/a.png" })
        );
        for bad_url in [
            "data:image/bmp;base64,Qk0=",
            "data:image/png,rawbytes",
            "ftp://example.com/a.png",
            "data:image/png;base64,",
        ] {
            assert_eq!(param_of(image(bad_url)).as_deref(), Some("messages[0].content[0].image_url"), "{bad_url}");
        }
        let pdf = with_part(
            json!({ "type": "file", "file": { "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0=" } }),
        );
        assert_eq!(
            translate(pdf).expect("pdf")["messages"][0]["content"][0],
            json!({ "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0=" } })
        );
        assert_eq!(
            param_of(with_part(json!({ "type": "file", "file": { "file_id": "file-abc" } }))).as_deref(),
            Some("messages[0].content[0].file")
        );
        assert_eq!(
            param_of(with_part(json!({ "type": "input_audio", "input_audio": {} }))).as_deref(),
            Some("messages[0].content[0]")
        );
    }

    #[test]
    fn stop_numbers_and_user() {
        let body = translate(json!({ "model": "m", "messages": [user("hi")], "stop": "###", "temperature": 1, "top_k": 5, "safety_identifier": "u-1" }))
            .expect("translates");
        assert_eq!(body["stop_sequences"], json!(["###"]));
        assert_eq!(body["temperature"], json!(1));
        assert_eq!(body["top_k"], json!(5));
        assert_eq!(body["metadata"], json!({ "user_id": "u-1" }));
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        let body = translate(json!({ "model": "m", "messages": [user("hi")], "stop": [], "max_tokens": 10, "max_completion_tokens": 20 }))
            .expect("translates");
        assert!(body.get("stop_sequences").is_none());
        assert_eq!(body["max_tokens"], json!(20));
    }

    #[test]
    fn response_format_with_tools() {
        let schema = json!({ "type": "object", "properties": { "x": { "type": "integer" } } });
        let rf = json!({ "type": "json_schema", "json_schema": { "name": "out", "schema": schema } });
        let mut req =
            json!({ "model": "m", "messages": [user("hi")], "tools": [weather_tool()], "response_format": rf });
        let body = translate(req.clone()).expect("auto");
        assert_eq!(body["tools"][1]["name"], RESPONSE_TOOL);
        assert_eq!(body["tools"][1]["input_schema"], schema);
        assert_eq!(body["tool_choice"], json!({ "type": "any" }));
        req["tool_choice"] = json!("none");
        let body = translate(req.clone()).expect("none");
        assert_eq!(
            body["tool_choice"],
            json!({ "type": "tool", "name": RESPONSE_TOOL, "disable_parallel_tool_use": true })
        );
        req["tool_choice"] = json!("required");
        let body = translate(req.clone()).expect("required");
        assert_eq!(body["tools"].as_array().map(Vec::len), Some(1), "the client's forced call is the answer");
        assert_eq!(body["tool_choice"], json!({ "type": "any" }));

        let non_object = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "json_schema", "json_schema": { "name": "n", "schema": { "type": "array" } } } });
        assert_eq!(param_of(non_object).as_deref(), Some("response_format.json_schema.schema"));
        let no_schema = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "json_schema", "json_schema": { "name": "n" } } });
        assert_eq!(translate(no_schema).expect("like json_object")["system"][0]["text"], JSON_OBJECT_INSTRUCTION);
        let text = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "text" } });
        assert!(translate(text).expect("text").get("system").is_none());
        let odd = json!({ "model": "m", "messages": [user("hi")], "response_format": { "type": "yaml" } });
        assert_eq!(param_of(odd).as_deref(), Some("response_format.type"));
    }

    #[test]
    fn reasoning_effort_becomes_thinking_where_anthropic_allows_it() {
        let req = |extra: Value| {
            let mut r = json!({ "model": "m", "messages": [user("think")], "reasoning_effort": "high" });
            for (k, v) in extra.as_object().into_iter().flatten() {
                r[k] = v.clone();
            }
            r
        };
        let body = translate(req(json!({}))).expect("no max");
        assert_eq!(body["thinking"], json!({ "type": "enabled", "budget_tokens": 16384 }));
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS + 16384));
        let body = translate(req(json!({ "max_tokens": 3000 }))).expect("small max");
        assert_eq!(body["thinking"]["budget_tokens"], json!(1500));
        assert_eq!(body["max_tokens"], json!(3000));
        let body = translate(req(json!({ "max_completion_tokens": 1500 }))).expect("smaller max");
        assert_eq!(body["thinking"]["budget_tokens"], json!(1024));
        assert_eq!(param_of(req(json!({ "max_completion_tokens": 1024 }))).as_deref(), Some("max_completion_tokens"));
        assert_eq!(param_of(req(json!({ "temperature": 0.5 }))).as_deref(), Some("temperature"));
        assert!(translate(req(json!({ "temperature": 1 }))).expect("temperature 1").get("temperature").is_none());
        assert_eq!(param_of(req(json!({ "top_p": 0.5 }))).as_deref(), Some("top_p"));
        assert_eq!(param_of(req(json!({ "top_k": 5 }))).as_deref(), Some("top_k"));
        assert_eq!(param_of(req(json!({ "reasoning_effort": "extreme" }))).as_deref(), Some("reasoning_effort"));
        assert!(translate(req(json!({ "reasoning_effort": "none" }))).expect("none").get("thinking").is_none());

        // A forced tool call: no thinking (Anthropic refuses the pair).
        let forced = req(json!({ "tools": [weather_tool()], "tool_choice": "required", "temperature": 0.2 }));
        let body = translate(forced).expect("forced");
        assert!(body.get("thinking").is_none());
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));

        // Continuing a tool loop: the signed thinking blocks of that turn are gone, so no thinking.
        let looped = req(json!({ "tools": [weather_tool()], "messages": [
            user("weather?"),
            { "role": "assistant", "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "get_weather", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "c1", "content": "sunny" },
        ] }));
        assert!(translate(looped).expect("loop").get("thinking").is_none());
    }

    // --- responses ---------------------------------------------------------------------------

    fn respond(body: Value) -> Value {
        chat_response(&body, &ctx("claude-sonnet-4-5", false)).expect("translates")
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("refusal", "content_filter"),
            ("tool_use", "stop"),
            ("model_context_window_exceeded", "length"),
        ] {
            let got = respond(
                json!({ "type": "message", "content": [{ "type": "text", "text": "x" }], "stop_reason": stop, "usage": {} }),
            );
            assert_eq!(got["choices"][0]["finish_reason"], want, "{stop}");
        }
        // A tool call always means tool_calls, whatever Anthropic says.
        let got = respond(
            json!({ "content": [{ "type": "tool_use", "id": "t", "name": "f", "input": {} }], "stop_reason": "max_tokens" }),
        );
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");
    }

    #[test]
    fn response_content_shapes() {
        let got = respond(json!({ "content": [
            { "type": "thinking", "thinking": "hmm", "signature": "sig" },
            { "type": "redacted_thinking", "data": "opaque" },
            { "type": "text", "text": "Hel" },
            { "type": "text", "text": "lo" },
        ], "stop_reason": "end_turn", "usage": { "input_tokens": 3, "output_tokens": 4 } }));
        let m = &got["choices"][0]["message"];
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["reasoning_content"], "hmm");
        assert!(m.get("tool_calls").is_none());
        assert_eq!(got["usage"]["total_tokens"], 7);

        let got = respond(json!({ "content": [], "stop_reason": "end_turn" }));
        assert_eq!(got["choices"][0]["message"]["content"], Value::Null);
        assert!(got["choices"][0]["message"].get("reasoning_content").is_none());

        // Only the first response-format call is the answer.
        let got = respond(json!({ "content": [
            { "type": "tool_use", "id": "a", "name": RESPONSE_TOOL, "input": { "x": 1 } },
            { "type": "tool_use", "id": "b", "name": RESPONSE_TOOL, "input": { "x": 2 } },
        ], "stop_reason": "tool_use" }));
        assert_eq!(got["choices"][0]["message"]["content"], "{\"x\":1}");
        assert_eq!(got["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn malformed_responses_are_errors() {
        let c = ctx("m", false);
        assert!(
            chat_response(&json!({ "type": "error", "error": { "type": "api_error", "message": "x" } }), &c).is_err()
        );
        assert!(chat_response(&json!({ "id": "msg" }), &c).is_err());
        assert!(chat_response(&json!([1, 2]), &c).is_err());
        assert!(chat_response(&json!({ "content": [{ "type": "text" }] }), &c).is_err());
    }

    // --- streams -----------------------------------------------------------------------------

    fn ev(data: Value) -> SseEvent {
        SseEvent { event: data["type"].as_str().map(str::to_owned), data: data.to_string() }
    }

    fn start(input: u64) -> SseEvent {
        ev(
            json!({ "type": "message_start", "message": { "id": "msg_1", "content": [], "usage": { "input_tokens": input, "output_tokens": 1 } } }),
        )
    }

    fn chunks(items: Vec<StreamItem>) -> Vec<Value> {
        items.into_iter().map(item_json).collect()
    }

    fn deltas(items: &[Value]) -> Vec<Value> {
        items.iter().map(|c| c["choices"][0]["delta"].clone()).collect()
    }

    #[test]
    fn truncated_stream_finishes_without_inventing_a_reason() {
        let mut s = chat_stream(ctx("m", true));
        let mut out = chunks(s.on_event(&start(5)));
        out.extend(chunks(s.on_event(&ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "tool_use", "id": "t1", "name": "f", "input": {} } })))));
        out.extend(chunks(s.finish()));
        assert_eq!(
            deltas(&out),
            vec![
                json!({ "role": "assistant", "content": "" }),
                json!({ "tool_calls": [{ "index": 0, "id": "t1", "type": "function", "function": { "name": "f", "arguments": "" } }] }),
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{}" } }] }),
                json!({}),
                Value::Null,
            ]
        );
        assert_eq!(out[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[4]["usage"]["prompt_tokens"], 5);
        assert!(s.finish().is_empty(), "finish twice adds nothing");

        // A message_delta was seen: its reason stands.
        let mut s = chat_stream(ctx("m", false));
        s.on_event(&start(5));
        s.on_event(&ev(json!({ "type": "message_delta", "delta": { "stop_reason": "max_tokens" }, "usage": { "output_tokens": 9 } })));
        let out = chunks(s.finish());
        assert_eq!(out.len(), 1, "no usage chunk unless asked for");
        assert_eq!(out[0]["choices"][0]["finish_reason"], "length");
        assert_eq!(s.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((5, 9)));

        // Nothing at all: an error, not an empty answer.
        let mut s = chat_stream(ctx("m", false));
        let out = s.finish();
        assert!(matches!(out.as_slice(), [StreamItem::Error(_)]));
        assert_eq!(s.usage(), None);
    }

    #[test]
    fn stream_errors_end_the_stream() {
        let mut s = chat_stream(ctx("m", false));
        s.on_event(&start(1));
        let out =
            chunks(
                s.on_event(&SseEvent {
                    event: Some("error".into()),
                    data:
                        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}"
                            .into(),
                }),
            );
        assert_eq!(
            out,
            vec![
                json!({ "error": { "message": "Internal server error", "type": "api_error", "param": null, "code": null } })
            ]
        );
        assert!(s.on_event(&ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "late" } }))).is_empty());

        let mut s = chat_stream(ctx("m", false));
        let out = s.on_event(&SseEvent { event: Some("message_start".into()), data: "{not json".into() });
        assert!(matches!(out.as_slice(), [StreamItem::Error(_)]));

        // After message_stop nothing more goes out.
        let mut s = chat_stream(ctx("m", false));
        s.on_event(&start(1));
        assert_eq!(s.on_event(&ev(json!({ "type": "message_stop" }))).len(), 1);
        assert!(s.on_event(&ev(json!({ "type": "message_stop" }))).is_empty());
        assert!(s.finish().is_empty());
    }

    #[test]
    fn stream_edge_deltas() {
        let mut s = chat_stream(ctx("m", false));
        let mut out = Vec::new();
        for e in [
            start(1),
            ev(json!({ "type": "ping" })),
            ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })),
            ev(json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "" } })),
            ev(
                json!({ "type": "content_block_delta", "index": 7, "delta": { "type": "text_delta", "text": "orphan" } }),
            ),
            ev(json!({ "type": "content_block_stop", "index": 0 })),
            ev(
                json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "t", "name": "f", "input": { "a": 1 } } }),
            ),
            ev(json!({ "type": "content_block_stop", "index": 1 })),
            ev(
                json!({ "type": "content_block_start", "index": 2, "content_block": { "type": "tool_use", "id": "r1", "name": RESPONSE_TOOL, "input": {} } }),
            ),
            ev(json!({ "type": "content_block_stop", "index": 2 })),
            ev(
                json!({ "type": "content_block_start", "index": 3, "content_block": { "type": "tool_use", "id": "r2", "name": RESPONSE_TOOL, "input": {} } }),
            ),
            ev(
                json!({ "type": "content_block_delta", "index": 3, "delta": { "type": "input_json_delta", "partial_json": "{\"x\":2}" } }),
            ),
            ev(json!({ "type": "content_block_stop", "index": 3 })),
            ev(json!({ "type": "some_future_event" })),
            ev(
                json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": 3 } }),
            ),
            ev(json!({ "type": "message_stop" })),
        ] {
            out.extend(chunks(s.on_event(&e)));
        }
        assert_eq!(
            deltas(&out),
            vec![
                json!({ "role": "assistant", "content": "" }),
                json!({ "tool_calls": [{ "index": 0, "id": "t", "type": "function", "function": { "name": "f", "arguments": "" } }] }),
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"a\":1}" } }] }),
                json!({ "content": "{}" }),
                json!({}),
            ]
        );
        assert_eq!(out[4]["choices"][0]["finish_reason"], "tool_calls");
    }

    // --- errors ------------------------------------------------------------------------------

    #[test]
    fn upstream_errors_map_to_openai_types() {
        let body = |t: &str| {
            format!("{{\"type\":\"error\",\"error\":{{\"type\":\"{t}\",\"message\":\"m\"}},\"request_id\":\"req_1\"}}")
        };
        for (status, t, kind, code) in [
            (400, "invalid_request_error", "invalid_request_error", None),
            (401, "authentication_error", "authentication_error", None),
            (402, "billing_error", "insufficient_quota", Some("insufficient_quota")),
            (403, "permission_error", "permission_error", None),
            (404, "not_found_error", "not_found_error", None),
            (413, "request_too_large", "invalid_request_error", Some("request_too_large")),
            (429, "rate_limit_error", "rate_limit_error", Some("rate_limit_exceeded")),
            (500, "api_error", "api_error", None),
            (504, "timeout_error", "api_error", Some("timeout")),
            (529, "overloaded_error", "overloaded_error", Some("overloaded")),
            (418, "teapot_error", "teapot_error", None),
        ] {
            let e = upstream_error(status, body(t).as_bytes());
            assert_eq!(
                (e.kind.as_str(), e.code.as_deref(), e.message.as_str(), e.param),
                (kind, code, "m", None),
                "{t}"
            );
        }
    }

    #[test]
    fn unreadable_error_bodies_fall_back_to_the_status() {
        let e = upstream_error(529, b"<html>Service Unavailable</html>");
        assert_eq!(e.kind, "overloaded_error");
        assert_eq!(e.code.as_deref(), Some("overloaded"));
        assert_eq!(e.message, "Anthropic answered HTTP 529 without an error message.");
        let e = upstream_error(502, b"");
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("api_error", "Anthropic answered HTTP 502 without an error message.")
        );
        let e = upstream_error(401, br#"{"error":"bad key"}"#);
        assert_eq!((e.kind.as_str(), e.message.as_str()), ("authentication_error", "bad key"));
        let e = upstream_error(429, br#"{"error":{"type":"rate_limit_error","message":"  "}}"#);
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("rate_limit_error", "Anthropic answered HTTP 429 without an error message.")
        );
    }
}
