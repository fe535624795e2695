//! Gemini (generativelanguage v1beta: generateContent, streamGenerateContent?alt=sse,
//! batchEmbedContents) <-> OpenAI Chat Completions / Embeddings. Pure JSON in, JSON out.
//!
//! Choices worth knowing (the fixtures under `tests/fixtures/google/` show each one on the wire):
//! - Tool schemas go out as `parametersJsonSchema` (full JSON Schema), not the OpenAPI-subset
//!   `parameters`, whose closed field list rejects `additionalProperties`, `$ref`, type arrays,
//!   `exclusiveMinimum`… with a 400 for the whole request. Only what Gemini's JSON Schema support
//!   itself refuses is removed (see [`clean_schema`]). `response_format.json_schema` likewise goes
//!   out as `responseJsonSchema`.
//! - Thought signatures ride inside the OpenAI tool call id (see [`encode_call_id`]), so a client
//!   that echoes its history back gives Gemini the signature it needs, with no extra fields.
//! - `n` > 1 is refused: one candidate keeps streaming and tool-call indexes simple.
//! - `parallel_tool_calls` is accepted and ignored: Gemini has no switch for it.

mod provider;
pub use provider::PROVIDER;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Map, Value};

use super::unified::{
    chunk, finish, usage_chunk, ChatContext, Prepared, StreamItem, StreamTranslator, TranslateError, UpstreamError,
    Usage,
};
use crate::sse::SseEvent;

/// Between a tool call id and the base64url of the Gemini thought signature it carries.
pub const THOUGHT_SEPARATOR: &str = "__thought__";

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

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

/// The model goes into the URL path: only plain model names, never `../` or a query.
fn check_model(model: &str) -> Result<(), TranslateError> {
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

// ---------------------------------------------------------------------------------------------
// Tool call ids and thought signatures
// ---------------------------------------------------------------------------------------------

/// A fresh tool call id when Gemini gives none: `call_` + 24 random letters and digits.
pub fn new_call_id() -> String {
    format!("call_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

/// The OpenAI tool call id for a Gemini function call: the call's own id, and when the part
/// carried a `thoughtSignature`, [`THOUGHT_SEPARATOR`] + base64url (no padding) of the signature's
/// exact text. Every character is `[A-Za-z0-9_-]`, so the id is URL-safe and also valid where
/// other providers restrict ids (Anthropic's `tool_use` ids).
pub fn encode_call_id(base: &str, signature: Option<&str>) -> String {
    match signature {
        Some(sig) if !sig.is_empty() => format!("{base}{THOUGHT_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(sig)),
        _ => base.to_owned(),
    }
}

/// The inverse of [`encode_call_id`]: the base id and the signature, if the id carries one. Splits
/// at the first separator (ours are alphanumeric, and Gemini's ids have not been seen to hold it);
/// a suffix that does not decode leaves the whole id as the base.
pub fn decode_call_id(id: &str) -> (&str, Option<String>) {
    if let Some((base, encoded)) = id.split_once(THOUGHT_SEPARATOR) {
        if let Some(sig) = URL_SAFE_NO_PAD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()) {
            if !sig.is_empty() {
                return (base, Some(sig));
            }
        }
    }
    (id, None)
}

// ---------------------------------------------------------------------------------------------
// Chat request
// ---------------------------------------------------------------------------------------------

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

struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// System and developer messages -> `systemInstruction.parts` (in order); the rest -> `contents`
/// with Gemini's roles, consecutive same-role turns merged (Gemini wants user/model alternation,
/// and all results of one parallel call in one turn).
fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("every message needs a `role`", &format!("messages[{i}].role")))?;
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(text_parts(m.get("content"), &format!("messages[{i}].content"), &["text"])?);
                continue;
            }
            "user" => ("user", user_parts(m.get("content"), i)?),
            "assistant" => ("model", assistant_parts(m, i)?),
            "tool" => ("user", vec![tool_result_part(messages, i)?]),
            "function" => {
                return Err(bad(
                    "`function` messages are deprecated; use `tool` messages",
                    &format!("messages[{i}].role"),
                ))
            }
            _ => return Err(bad("unknown message role", &format!("messages[{i}].role"))),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => turns.push(Turn { role, parts }),
        }
    }
    let contents = turns.into_iter().map(|t| json!({ "role": t.role, "parts": t.parts })).collect();
    Ok((system, contents))
}

/// The text of a content that may hold only text (string, or an array of `text` parts, plus
/// `refusal` parts for assistants): one Gemini text part per non-empty piece.
fn text_parts(content: Option<&Value>, param: &str, allowed: &[&str]) -> Result<Vec<Value>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                if !allowed.contains(&kind) {
                    return Err(bad(
                        "this type of content part is not allowed in this message",
                        &format!("{param}[{j}].type"),
                    ));
                }
                let field = if kind == "refusal" { "refusal" } else { "text" };
                let text = p.get(field).and_then(Value::as_str).ok_or_else(|| {
                    bad(format!("a content part of this type needs `{field}`"), &format!("{param}[{j}].{field}"))
                })?;
                if !text.is_empty() {
                    out.push(json!({ "text": text }));
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad("`content` must be a string or an array of parts", param)),
    }
}

/// The concatenated text of a tool message's content.
fn joined_text(content: Option<&Value>, param: &str) -> Result<String, TranslateError> {
    Ok(text_parts(content, param, &["text"])?.iter().filter_map(|p| p["text"].as_str()).collect())
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, TranslateError> {
    let param = format!("messages[{i}].content");
    let Some(Value::Array(parts)) = content else {
        return text_parts(content, &param, &["text"]);
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let here = format!("{param}[{j}]");
        match p.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                let text = p
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a `text` part needs `text`", &format!("{here}.text")))?;
                if !text.is_empty() {
                    out.push(json!({ "text": text }));
                }
            }
            "image_url" => {
                let url_param = format!("{here}.image_url.url");
                let url = p
                    .pointer("/image_url/url")
                    .or_else(|| p.get("image_url").filter(|v| v.is_string()))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("an `image_url` part needs `image_url.url`", &url_param))?;
                out.push(url_part(url, &url_param)?);
            }
            "input_audio" => {
                let data = p.pointer("/input_audio/data").and_then(Value::as_str).ok_or_else(|| {
                    bad("an `input_audio` part needs base64 `data`", &format!("{here}.input_audio.data"))
                })?;
                let mime = match p.pointer("/input_audio/format").and_then(Value::as_str) {
                    Some("wav") => "audio/wav",
                    Some("mp3") => "audio/mp3",
                    _ => return Err(bad("`format` must be `wav` or `mp3`", &format!("{here}.input_audio.format"))),
                };
                out.push(json!({ "inlineData": { "mimeType": mime, "data": data } }));
            }
            "file" => out.push(file_part(p, &here)?),
            _ => return Err(bad("this type of content part is not supported", &format!("{here}.type"))),
        }
    }
    Ok(out)
}

/// `data:` URLs are sent inline; http(s) URLs as `fileData` for Gemini to fetch.
fn url_part(url: &str, param: &str) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = parse_data_url(rest).ok_or_else(|| bad("only base64 `data:` URLs are supported", param))?;
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        let mime = mime_from_extension(url).unwrap_or("image/jpeg");
        return Ok(json!({ "fileData": { "mimeType": mime, "fileUri": url } }));
    }
    Err(bad("image URLs must be http(s) or base64 `data:` URLs", param))
}

/// `image/png;base64,AAAA` -> (`image/png`, `AAAA`).
fn parse_data_url(rest: &str) -> Option<(&str, &str)> {
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let mime = mime.split(';').next().filter(|m| m.contains('/'))?;
    (!data.is_empty()).then_some((mime, data))
}

fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// `{"type":"file","file":{"file_data":"data:…;base64,…","filename":…}}` -> `inlineData`.
fn file_part(p: &Value, here: &str) -> Result<Value, TranslateError> {
    if p.pointer("/file/file_id").is_some_and(|v| !v.is_null()) {
        return Err(bad("OpenAI file ids cannot be read by Gemini; send `file_data`", &format!("{here}.file.file_id")));
    }
    let param = format!("{here}.file.file_data");
    let data = p
        .pointer("/file/file_data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a `file` part needs `file_data`", &param))?;
    if let Some(rest) = data.strip_prefix("data:") {
        let (mime, data) = parse_data_url(rest).ok_or_else(|| bad("`file_data` must be a base64 data URL", &param))?;
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    let mime = p
        .pointer("/file/filename")
        .and_then(Value::as_str)
        .and_then(mime_from_extension)
        .ok_or_else(|| bad("`file_data` must be a data URL (or come with a `filename` of a known type)", &param))?;
    Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }))
}

fn assistant_parts(m: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    if m.get("function_call").is_some_and(|v| !v.is_null()) {
        return Err(bad("`function_call` is deprecated; use `tool_calls`", &format!("messages[{i}].function_call")));
    }
    let mut parts = text_parts(m.get("content"), &format!("messages[{i}].content"), &["text", "refusal"])?;
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(parts),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(bad("`tool_calls` must be an array", &format!("messages[{i}].tool_calls"))),
    };
    for (j, call) in calls.iter().enumerate() {
        let here = format!("messages[{i}].tool_calls[{j}]");
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("a tool call needs `function.name`", &format!("{here}.function.name")))?;
        let args_param = format!("{here}.function.arguments");
        let args = match call.pointer("/function/arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => return Err(bad("tool call arguments must be a JSON object", &args_param)),
                Err(e) => return Err(bad(format!("tool call arguments are not valid JSON: {e}"), &args_param)),
            },
            Some(_) => return Err(bad("tool call arguments must be a string of JSON", &args_param)),
        };
        let (base, signature) = decode_call_id(id);
        let mut function_call = Map::new();
        if !base.is_empty() {
            function_call.insert("id".into(), base.into());
        }
        function_call.insert("name".into(), name.into());
        function_call.insert("args".into(), args);
        let mut part = Map::new();
        part.insert("functionCall".into(), Value::Object(function_call));
        if let Some(sig) = signature {
            part.insert("thoughtSignature".into(), sig.into());
        }
        parts.push(Value::Object(part));
    }
    Ok(parts)
}

/// A tool message -> `functionResponse`. Gemini needs the function's name, which OpenAI tool
/// messages do not carry: it is recovered from the assistant tool call with the same id.
fn tool_result_part(messages: &[Value], i: usize) -> Result<Value, TranslateError> {
    let m = &messages[i];
    let id_param = format!("messages[{i}].tool_call_id");
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("a tool message needs `tool_call_id`", &id_param))?;
    let name = messages[..i]
        .iter()
        .rev()
        .filter(|p| p.get("role").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|p| p.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|c| c.pointer("/function/name").and_then(Value::as_str))
        .ok_or_else(|| {
            bad(
                "no earlier assistant message has a tool call with this id, and Gemini needs that call's function name",
                &id_param,
            )
        })?;
    let text = joined_text(m.get("content"), &format!("messages[{i}].content"))?;
    let result = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::String(text),
    };
    let (base, _) = decode_call_id(id);
    Ok(json!({ "functionResponse": { "id": base, "name": name, "response": { "result": result } } }))
}

/// OpenAI tools and tool_choice -> Gemini `tools` and `toolConfig`.
fn convert_tools(
    tools: Option<&Value>,
    choice: Option<&Value>,
) -> Result<(Option<Value>, Option<Value>), TranslateError> {
    let tools = match tools {
        None => &[][..],
        Some(Value::Array(t)) => t.as_slice(),
        Some(_) => return Err(bad("`tools` must be an array", "tools")),
    };
    let mut declarations = Vec::new();
    for (j, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            return Err(bad("only tools of type `function` are supported for Gemini", &format!("tools[{j}].type")));
        }
        let f = tool.get("function").ok_or_else(|| bad("a tool needs `function`", &format!("tools[{j}].function")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("a function needs a `name`", &format!("tools[{j}].function.name")))?;
        let mut decl = Map::new();
        decl.insert("name".into(), name.into());
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            decl.insert("description".into(), d.into());
        }
        match f.get("parameters") {
            None | Some(Value::Null) => {}
            Some(p @ Value::Object(_)) => {
                let mut schema = clean_schema(p);
                if let Some(root) = schema.as_object_mut() {
                    // `strict` is OpenAI's switch on the function, not a schema keyword.
                    root.remove("strict");
                }
                decl.insert("parametersJsonSchema".into(), schema);
            }
            Some(_) => {
                return Err(bad(
                    "`parameters` must be a JSON Schema object",
                    &format!("tools[{j}].function.parameters"),
                ))
            }
        }
        declarations.push(decl);
    }

    let declared = |n: &str| declarations.iter().any(|d| d.get("name").and_then(Value::as_str) == Some(n));
    let names_of = |list: &Value, param: &str| -> Result<Vec<String>, TranslateError> {
        let list = list.as_array().ok_or_else(|| bad("expected an array of tools", param))?;
        list.iter()
            .enumerate()
            .map(|(k, t)| {
                let name = t
                    .pointer("/function/name")
                    .or_else(|| t.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("each allowed tool needs `function.name`", &format!("{param}[{k}]")))?;
                if declared(name) {
                    Ok(name.to_owned())
                } else {
                    Err(bad("not one of the declared tools", &format!("{param}[{k}]")))
                }
            })
            .collect()
    };
    let needs_tools =
        |what: &str| bad(format!("tool_choice `{what}` needs at least one tool in `tools`"), "tool_choice");

    let mut config = None;
    match choice {
        None => {}
        Some(Value::String(s)) => match s.as_str() {
            "auto" if !declarations.is_empty() => config = Some(json!({ "mode": "AUTO" })),
            "none" if !declarations.is_empty() => config = Some(json!({ "mode": "NONE" })),
            "auto" | "none" => {}
            "required" if !declarations.is_empty() => config = Some(json!({ "mode": "ANY" })),
            "required" => return Err(needs_tools("required")),
            _ => return Err(bad("`tool_choice` must be auto, none, required or a named function", "tool_choice")),
        },
        Some(obj @ Value::Object(_)) => match obj.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = obj
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a named tool_choice needs `function.name`", "tool_choice.function.name"))?;
                if !declared(name) {
                    return Err(bad("not one of the declared tools", "tool_choice.function.name"));
                }
                config = Some(json!({ "mode": "ANY", "allowedFunctionNames": [name] }));
            }
            Some("allowed_tools") => {
                let names = names_of(
                    obj.pointer("/allowed_tools/tools").unwrap_or(&Value::Null),
                    "tool_choice.allowed_tools.tools",
                )?;
                match obj.pointer("/allowed_tools/mode").and_then(Value::as_str) {
                    Some("required") => {
                        if names.is_empty() {
                            return Err(needs_tools("required"));
                        }
                        config = Some(json!({ "mode": "ANY", "allowedFunctionNames": names }));
                    }
                    Some("auto") => {
                        // Gemini restricts names only in ANY mode: offer just the allowed ones.
                        declarations.retain(|d| {
                            d.get("name").and_then(Value::as_str).is_some_and(|n| names.iter().any(|a| a == n))
                        });
                        if !declarations.is_empty() {
                            config = Some(json!({ "mode": "AUTO" }));
                        }
                    }
                    _ => return Err(bad("`mode` must be `auto` or `required`", "tool_choice.allowed_tools.mode")),
                }
            }
            _ => return Err(bad("unsupported tool_choice type", "tool_choice.type")),
        },
        Some(_) => return Err(bad("`tool_choice` must be a string or an object", "tool_choice")),
    }

    let tools = (!declarations.is_empty()).then(|| json!([{ "functionDeclarations": declarations }]));
    Ok((tools, config.map(|c| json!({ "functionCallingConfig": c }))))
}

/// Prepares a JSON Schema for `parametersJsonSchema` / `responseJsonSchema`: drops `$schema`
/// (a dialect marker Gemini does not take) and, on a sub-schema with `$ref`, every sibling keyword
/// not starting with `$` (Gemini refuses them there). Walks only schema positions, so a property
/// that happens to be named `$schema` survives; everything else passes untouched.
pub fn clean_schema(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let has_ref = obj.contains_key("$ref");
    let mut out = Map::new();
    for (k, v) in obj {
        if k == "$schema" || (has_ref && !k.starts_with('$')) {
            continue;
        }
        let cleaned = match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => match v {
                Value::Object(m) => Value::Object(m.iter().map(|(name, s)| (name.clone(), clean_schema(s))).collect()),
                other => other.clone(),
            },
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "if"
            | "then"
            | "else"
            | "unevaluatedProperties"
            | "unevaluatedItems"
            | "additionalItems" => match v {
                Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
                other => clean_schema(other),
            },
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => match v {
                Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), cleaned);
    }
    Value::Object(out)
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

// ---------------------------------------------------------------------------------------------
// Chat response
// ---------------------------------------------------------------------------------------------

/// Gemini's finish reason in OpenAI's terms. MALFORMED_FUNCTION_CALL, OTHER and anything new
/// become `stop`: OpenAI has no reason for "the model failed", and clients handle `stop` safely.
fn map_finish(reason: &str) -> &'static str {
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

/// `usageMetadata` in OpenAI's terms: thoughts count as completion (and reasoning) tokens; tool-use
/// prompt tokens (code execution, search) as prompt tokens, so the total matches Gemini's.
fn usage_from(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        prompt_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        completion_tokens: n("candidatesTokenCount") + thoughts,
        cached_tokens: n("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
    }
}

/// One complete Gemini function call as an OpenAI tool call: (id, name, arguments JSON).
fn tool_call_of(part: &Value) -> Option<(String, String, String)> {
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

// ---------------------------------------------------------------------------------------------
// Chat stream
// ---------------------------------------------------------------------------------------------

/// Turns `streamGenerateContent?alt=sse` events (each a whole `GenerateContentResponse`) into
/// `chat.completion.chunk`s.
pub struct GeminiStream {
    ctx: ChatContext,
    started: bool,
    next_tool_index: usize,
    finish_sent: bool,
    done: bool,
    usage: Option<Usage>,
}

pub fn chat_stream(ctx: ChatContext) -> GeminiStream {
    GeminiStream { ctx, started: false, next_tool_index: 0, finish_sent: false, done: false, usage: None }
}

impl GeminiStream {
    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ "role": "assistant", "content": "" }), None)));
        }
    }

    fn finish_chunk(&mut self, reason: &str, out: &mut Vec<StreamItem>) {
        if !self.finish_sent {
            self.finish_sent = true;
            let reason = if self.next_tool_index > 0 { finish::TOOL_CALLS } else { reason };
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({}), Some(reason))));
        }
    }

    fn error(&mut self, error: Value) -> Vec<StreamItem> {
        self.done = true;
        vec![StreamItem::Error(error)]
    }
}

impl StreamTranslator for GeminiStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Vec::new();
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return self.error(
                UpstreamError {
                    message: "Gemini sent a stream event that is not JSON".into(),
                    kind: "api_error".into(),
                    code: Some("bad_upstream_response".into()),
                    param: None,
                }
                .to_json(),
            );
        };
        if let Some(err) = v.get("error") {
            let status = err.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
            return self.error(upstream_error(status, data.as_bytes()).to_json());
        }

        let mut out = Vec::new();
        self.start(&mut out);
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage_from(u));
        }
        let Some(candidate) = v.pointer("/candidates/0") else {
            if v.pointer("/promptFeedback/blockReason").is_some() {
                self.finish_chunk(finish::CONTENT_FILTER, &mut out);
            }
            return out;
        };
        let parts = candidate.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for part in parts {
            if let Some((id, name, args)) = tool_call_of(part) {
                let index = self.next_tool_index;
                self.next_tool_index += 1;
                let head = json!({ "tool_calls": [{ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } }] });
                out.push(StreamItem::Chunk(chunk(&self.ctx, head, None)));
                let tail = json!({ "tool_calls": [{ "index": index, "function": { "arguments": args } }] });
                out.push(StreamItem::Chunk(chunk(&self.ctx, tail, None)));
            } else if let Some(text) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let field = if part.get("thought").and_then(Value::as_bool).unwrap_or(false) {
                    "reasoning_content"
                } else {
                    "content"
                };
                out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ field: text }), None)));
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            self.finish_chunk(map_finish(reason), &mut out);
        }
        out
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut out = Vec::new();
        self.start(&mut out);
        self.finish_chunk(finish::STOP, &mut out);
        if self.ctx.include_usage {
            out.push(StreamItem::Chunk(usage_chunk(&self.ctx, &self.usage.unwrap_or_default())));
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Masks anything shaped like a Google API key (`AIza` + 35 key characters) in `text`, the way
/// `providers::redact_key_like` (which the gateway applies to every error) prints it: `AIza…`.
pub fn redact_api_keys(text: &str) -> String {
    const KEY_TAIL: usize = 35;
    let is_key_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(rel) = text[i..].find("AIza") {
        let start = i + rel;
        let tail = start + 4;
        let is_key = bytes.len() >= tail + KEY_TAIL && bytes[tail..tail + KEY_TAIL].iter().all(|b| is_key_char(*b));
        if is_key {
            out.push_str(&text[copied..start]);
            out.push_str("AIza…");
            copied = tail + KEY_TAIL;
            i = copied;
        } else {
            i = start + 4;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Google's error object, from `{"error": …}` or the `[{"error": …}]` its non-SSE streams use.
fn google_error(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let v = match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    };
    v.get("error").filter(|e| e.is_object()).cloned()
}

fn kind_for_http(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// A non-2xx answer (or one whose body is not Google's error JSON) in OpenAI's error terms. The
/// OpenAI `type` comes from Google's canonical `status`; `code` is that status lowercased.
pub fn upstream_error(status: u16, body: &[u8]) -> UpstreamError {
    let Some(err) = google_error(body) else {
        return UpstreamError {
            message: format!("Gemini answered HTTP {status} with a body Relay could not read"),
            kind: kind_for_http(status).into(),
            code: None,
            param: None,
        };
    };
    let google_status = err.get("status").and_then(Value::as_str).filter(|s| !s.is_empty());
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(redact_api_keys)
        .unwrap_or_else(|| format!("Gemini answered HTTP {status}"));
    let key_invalid = err
        .get("details")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")));
    if key_invalid {
        // Google says 400 INVALID_ARGUMENT for a bad key; clients know this as an auth problem.
        return UpstreamError {
            message,
            kind: "authentication_error".into(),
            code: Some("invalid_api_key".into()),
            param: None,
        };
    }
    let kind = match google_status {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "ALREADY_EXISTS" | "UNIMPLEMENTED") => {
            "invalid_request_error"
        }
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("PERMISSION_DENIED") => "permission_error",
        Some("NOT_FOUND") => "not_found_error",
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("UNAVAILABLE") => "overloaded_error",
        Some("INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "DEADLINE_EXCEEDED" | "CANCELLED" | "ABORTED") => "api_error",
        _ => kind_for_http(status),
    };
    UpstreamError { message, kind: kind.into(), code: google_status.map(str::to_ascii_lowercase), param: None }
}

/// Seconds to wait before retrying, from the `google.rpc.RetryInfo` detail of an error body
/// (`"retryDelay": "38.5s"`, rounded up). For the route layer's `Retry-After` header: Google
/// sends the delay only in the body.
pub fn retry_after_seconds(body: &[u8]) -> Option<u64> {
    let err = google_error(body)?;
    let delay = err.get("details")?.as_array()?.iter().find_map(|d| d.get("retryDelay").and_then(Value::as_str))?;
    let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.ceil() as u64)
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

/// An OpenAI embeddings request -> `batchEmbedContents` (one request per input string).
pub fn embeddings_request(req: &Value, upstream_model: &str) -> Result<Prepared, TranslateError> {
    check_model(upstream_model)?;
    let obj = req.as_object().ok_or_else(|| TranslateError::new("the request body must be a JSON object", None))?;
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "input" | "dimensions" | "user" => {}
            "encoding_format" if matches!(value.as_str(), Some("float" | "base64")) => {}
            "encoding_format" => return Err(bad("`encoding_format` must be float or base64", "encoding_format")),
            _ => return Err(bad(format!("`{key}` is not supported for Gemini embeddings"), key)),
        }
    }
    let token_arrays =
        || bad("Gemini embeds text only: `input` must be a string or an array of strings, not tokens", "input");
    let inputs: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.is_empty() => return Err(bad("`input` must not be empty", "input")),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().ok_or_else(token_arrays)).collect::<Result<_, _>>()?,
        _ => return Err(bad("`input` must be a string or an array of strings", "input")),
    };
    let dimensions = match obj.get("dimensions").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| bad("`dimensions` must be a positive integer", "dimensions"))?,
        ),
    };
    let model = format!("models/{upstream_model}");
    let requests: Vec<Value> = inputs
        .into_iter()
        .map(|text| {
            let mut r = json!({ "model": model, "content": { "parts": [{ "text": text }] } });
            if let Some(d) = dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(Prepared {
        path: format!("/v1beta/models/{upstream_model}:batchEmbedContents"),
        body: json!({ "requests": requests }),
    })
}

/// A `batchEmbedContents` answer -> an OpenAI embeddings list (floats, or base64 of little-endian
/// f32s when the request asked for `encoding_format: base64`).
pub fn embeddings_response(body: &Value, req: &Value) -> Result<Value, TranslateError> {
    let embeddings = body
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::new("Gemini's embeddings answer has no `embeddings`", None))?;
    let expected = match req.get("input") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    if embeddings.len() != expected {
        return Err(TranslateError::new(
            format!("Gemini returned {} embeddings for {expected} inputs", embeddings.len()),
            None,
        ));
    }
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut data = Vec::with_capacity(embeddings.len());
    for (i, e) in embeddings.iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| TranslateError::new(format!("Gemini's embedding {i} has no `values`"), None))?;
        let floats: Vec<f64> = values
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| TranslateError::new(format!("Gemini's embedding {i} holds a non-number"), None))
            })
            .collect::<Result<_, _>>()?;
        let embedding = if base64 {
            let bytes: Vec<u8> = floats.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
            Value::String(STANDARD.encode(bytes))
        } else {
            Value::Array(values.clone())
        };
        data.push(json!({ "object": "embedding", "index": i, "embedding": embedding }));
    }
    let prompt = body.pointer("/usageMetadata/promptTokenCount").and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.get("model").cloned().unwrap_or(Value::Null),
        "usage": { "prompt_tokens": prompt, "total_tokens": prompt },
    }))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::sse::SseParser;

    fn fixtures_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/google")
    }

    fn read_json(path: &Path) -> Option<Value> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn ctx_for(req: &Value) -> ChatContext {
        ChatContext {
            id: "chatcmpl-test".into(),
            model: req["model"].as_str().expect("model").into(),
            created: 1_700_000_000,
            include_usage: req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    fn is_generated(base: &str) -> bool {
        base.strip_prefix("call_").is_some_and(|r| r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
    }

    /// Relay-generated tool call ids are random: each distinct one becomes `call_GENERATED_<n>` (in
    /// order of first appearance), keeping its thought-signature suffix.
    fn normalize_ids(v: &mut Value, seen: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(calls)) = map.get_mut("tool_calls") {
                    for call in calls {
                        let Some(id) = call.get("id").and_then(Value::as_str) else { continue };
                        let (base, suffix) = match id.split_once(THOUGHT_SEPARATOR) {
                            Some((b, s)) => (b.to_owned(), format!("{THOUGHT_SEPARATOR}{s}")),
                            None => (id.to_owned(), String::new()),
                        };
                        if is_generated(&base) {
                            let n = match seen.iter().position(|s| *s == base) {
                                Some(p) => p + 1,
                                None => {
                                    seen.push(base);
                                    seen.len()
                                }
                            };
                            call["id"] = format!("call_GENERATED_{n}{suffix}").into();
                        }
                    }
                }
                for (_, child) in map.iter_mut() {
                    normalize_ids(child, seen);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| normalize_ids(x, seen)),
            _ => {}
        }
    }

    fn normalized(mut v: Value) -> Value {
        normalize_ids(&mut v, &mut Vec::new());
        v
    }

    fn item_json(item: StreamItem) -> Value {
        match item {
            StreamItem::Chunk(v) | StreamItem::Error(v) => v,
            other => panic!("a translator only makes chunks and errors, not {other:?}"),
        }
    }

    /// Feeds `sse` to a parser in the given pieces and the events to a fresh translator.
    fn run_stream(sse: &[u8], ctx: &ChatContext, cuts: &[usize]) -> Vec<Value> {
        let mut parser = SseParser::new();
        let mut translator = chat_stream(ctx.clone());
        let mut items = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&sse.len())) {
            for event in parser.push(&sse[start..cut]) {
                items.extend(translator.on_event(&event));
            }
            start = cut;
        }
        if let Some(event) = parser.finish() {
            items.extend(translator.on_event(&event));
        }
        if !items.iter().any(|i| matches!(i, StreamItem::Error(_))) {
            items.extend(translator.finish());
        }
        match normalized(Value::Array(items.into_iter().map(item_json).collect())) {
            Value::Array(items) => items,
            _ => unreachable!("normalizing keeps the array"),
        }
    }

    /// What an SDK's stream accumulator makes of the chunks.
    fn accumulate(chunks: &[Value]) -> Value {
        let mut content: Option<String> = None;
        let mut reasoning: Option<String> = None;
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finish_reason = Value::Null;
        let mut usage = Value::Null;
        for c in chunks {
            if let Some(u) = c.get("usage") {
                usage = u.clone();
            }
            let Some(choice) = c.pointer("/choices/0") else { continue };
            let delta = &choice["delta"];
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = delta.get("reasoning_content").and_then(Value::as_str) {
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            for tc in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let index = tc["index"].as_u64().expect("index") as usize;
                if calls.len() <= index {
                    calls.resize(index + 1, Default::default());
                }
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    calls[index].0 = id.into();
                }
                if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                    calls[index].1.push_str(n);
                }
                if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                    calls[index].2.push_str(a);
                }
            }
            if !choice["finish_reason"].is_null() {
                finish_reason = choice["finish_reason"].clone();
            }
        }
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|(id, name, arguments)| json!({ "id": id, "name": name, "arguments": arguments }))
            .collect();
        json!({ "content": content, "reasoning_content": reasoning, "tool_calls": calls, "finish_reason": finish_reason, "usage": usage })
    }

    /// Only the role chunk and the finish chunk may have an empty delta.
    fn check_no_empty_deltas(chunks: &[Value]) -> Result<(), String> {
        for (i, c) in chunks.iter().enumerate() {
            let Some(choice) = c.pointer("/choices/0") else { continue };
            let delta = choice["delta"].as_object().ok_or(format!("chunk {i} has no delta object"))?;
            let is_role = delta.get("role").is_some();
            let is_finish = !choice["finish_reason"].is_null();
            let has_payload = delta.iter().any(|(k, v)| match k.as_str() {
                "content" | "reasoning_content" => v.as_str().is_some_and(|s| !s.is_empty()),
                "tool_calls" => v.as_array().is_some_and(|a| !a.is_empty()),
                _ => false,
            });
            if !(is_role || is_finish || has_payload) {
                return Err(format!("chunk {i} has an empty delta: {c}"));
            }
        }
        Ok(())
    }

    fn same(what: &str, got: &Value, want: &Value) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what} differs\n--- got\n{}\n--- want\n{}",
                serde_json::to_string_pretty(got).unwrap_or_default(),
                serde_json::to_string_pretty(want).unwrap_or_default()
            ))
        }
    }

    fn check_scenario(dir: &Path) -> Result<(), String> {
        let req = read_json(&dir.join("openai_request.json")).ok_or("no openai_request.json")?;
        let upstream_req = read_json(&dir.join("upstream_request.json")).ok_or("no upstream_request.json")?;
        let expected = read_json(&dir.join("expected.json")).ok_or("no expected.json")?;
        let model = req["model"].as_str().ok_or("no model")?;
        let embeddings = req.get("input").is_some();

        let prepared = if embeddings { embeddings_request(&req, model) } else { chat_request(&req, model) }
            .map_err(|e| format!("request translation failed: {e:?}"))?;
        same("upstream request", &json!({ "path": prepared.path, "body": prepared.body }), &upstream_req)?;

        let ctx = ctx_for(&req);
        if let Some(resp) = read_json(&dir.join("upstream_response.json")) {
            let status = resp["status"].as_u64().ok_or("no status")? as u16;
            same("status", &json!(status), &expected["status"])?;
            let body = &resp["body"];
            if (200..300).contains(&status) {
                if embeddings {
                    let got = embeddings_response(body, &req).map_err(|e| format!("{e:?}"))?;
                    same("embeddings response", &got, &expected["response"])?;
                } else {
                    let got = chat_response(body, &ctx).map_err(|e| format!("{e:?}"))?;
                    same("completion", &normalized(got), &expected["completion"])?;
                }
            } else {
                let bytes = match body {
                    Value::String(raw) => raw.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
                let got = upstream_error(status, &bytes).to_json();
                same("error", &got["error"], &expected["error"])?;
                if let Some(secs) = expected.get("retry_after") {
                    same("retry_after", &json!(retry_after_seconds(&bytes)), secs)?;
                }
            }
        }

        if let Ok(sse) = std::fs::read(dir.join("upstream_stream.sse")) {
            same("status", &json!(200), &expected["status"])?;
            let want_chunks = &expected["chunks"];
            let mut patterns: Vec<(String, Vec<usize>)> =
                vec![("whole".into(), vec![]), ("byte by byte".into(), (1..sse.len()).collect())];
            for seed in 0..16u64 {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut cuts: Vec<usize> = (0..rng.gen_range(1..12)).map(|_| rng.gen_range(0..=sse.len())).collect();
                cuts.sort_unstable();
                patterns.push((format!("random splits (seed {seed})"), cuts));
            }
            for (name, cuts) in patterns {
                let got = run_stream(&sse, &ctx, &cuts);
                same(&format!("chunks, {name}"), &Value::Array(got.clone()), want_chunks)?;
                check_no_empty_deltas(&got)?;
                if let Some(want) = expected.get("accumulated") {
                    same(&format!("accumulated, {name}"), &accumulate(&got), want)?;
                }
            }
        }
        Ok(())
    }

    #[test]
    fn fixtures_translate_exactly() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
            .expect("tests/fixtures/google")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        assert!(dirs.len() >= 15, "expected the Google fixture scenarios, found {}", dirs.len());
        let failures: Vec<String> = dirs
            .iter()
            .filter_map(|d| {
                check_scenario(d)
                    .err()
                    .map(|e| format!("[{}] {e}", d.file_name().unwrap_or_default().to_string_lossy()))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    fn ctx() -> ChatContext {
        ChatContext { id: "chatcmpl-x".into(), model: "gemini-2.5-flash".into(), created: 1, include_usage: false }
    }

    fn user(text: &str) -> Value {
        json!({ "role": "user", "content": text })
    }

    fn param_of(result: Result<Prepared, TranslateError>) -> Option<String> {
        result.expect_err("should be refused").param
    }

    #[test]
    fn call_ids_carry_signatures_reversibly() {
        for sig in ["CiQBVKhc7q+/==", "a", "skip_thought_signature_validator", "x__thought__y", "ü/+="] {
            for base in ["call_abc", "x7k2m9qp", "call_with_underscores_1"] {
                let id = encode_call_id(base, Some(sig));
                assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
                assert_eq!(decode_call_id(&id), (base, Some(sig.to_owned())));
            }
        }
        assert_eq!(encode_call_id("call_1", None), "call_1");
        assert_eq!(encode_call_id("call_1", Some("")), "call_1");
        assert_eq!(decode_call_id("call_plain"), ("call_plain", None));
        // A suffix that is not ours leaves the id alone.
        assert_eq!(decode_call_id("call_1__thought__%%%"), ("call_1__thought__%%%", None));
        let id = new_call_id();
        assert!(is_generated(&id), "{id}");
        assert_ne!(id, new_call_id());
    }

    #[test]
    fn signature_survives_a_round_trip_through_the_client() {
        let sig = "EvYDCvMDAdHtim/+rY0zPqkr8X3w==";
        let body = json!({ "candidates": [{ "content": { "role": "model", "parts": [
            { "functionCall": { "name": "get_weather", "args": { "city": "Paris" } }, "thoughtSignature": sig },
            { "functionCall": { "name": "get_weather", "args": { "city": "Tokyo" } } },
        ] }, "finishReason": "STOP" }] });
        let completion = chat_response(&body, &ctx()).expect("response");
        let msg = completion["choices"][0]["message"].clone();
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
        let calls = msg["tool_calls"].as_array().expect("calls").clone();
        let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().expect("id")).collect();
        assert!(ids[0].contains(THOUGHT_SEPARATOR) && !ids[1].contains(THOUGHT_SEPARATOR));

        let mut messages = vec![user("weather?"), msg];
        for id in &ids {
            messages.push(json!({ "role": "tool", "tool_call_id": id, "content": "sunny" }));
        }
        let prepared = chat_request(&json!({ "model": "gemini-2.5-flash", "messages": messages }), "gemini-2.5-flash")
            .expect("request");
        let contents = prepared.body["contents"].as_array().expect("contents");
        assert_eq!(contents.len(), 3);
        let model_parts = contents[1]["parts"].as_array().expect("parts");
        assert_eq!(model_parts[0]["thoughtSignature"], sig);
        assert!(model_parts[1].get("thoughtSignature").is_none());
        let base0 = decode_call_id(ids[0]).0;
        assert_eq!(model_parts[0]["functionCall"]["id"], base0);
        let results = contents[2]["parts"].as_array().expect("results");
        assert_eq!(results.len(), 2, "consecutive tool results make one turn");
        assert_eq!(results[0]["functionResponse"]["id"], base0);
        assert_eq!(results[0]["functionResponse"]["name"], "get_weather");
        assert_eq!(results[1]["functionResponse"]["response"], json!({ "result": "sunny" }));
    }

    #[test]
    fn tool_result_without_a_matching_call_names_the_message() {
        let req = json!({ "model": "m", "messages": [
            user("hi"),
            { "role": "assistant", "tool_calls": [{ "id": "call_a", "type": "function", "function": { "name": "f", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "call_a", "content": "ok" },
            { "role": "tool", "tool_call_id": "call_missing", "content": "??" },
        ] });
        let err = chat_request(&req, "gemini-2.5-flash").expect_err("unknown id");
        assert_eq!(err.param.as_deref(), Some("messages[3].tool_call_id"));
        assert!(!err.message.contains("call_missing"), "client values are not echoed");
        // The call must come earlier, not later.
        let req = json!({ "model": "m", "messages": [
            { "role": "tool", "tool_call_id": "call_a", "content": "ok" },
            { "role": "assistant", "tool_calls": [{ "id": "call_a", "type": "function", "function": { "name": "f", "arguments": "{}" } }] },
        ] });
        assert_eq!(param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(), Some("messages[0].tool_call_id"));
    }

    #[test]
    fn tool_arguments_are_parsed() {
        let with_args = |args: &str| {
            json!({ "model": "m", "messages": [user("x"), { "role": "assistant", "content": "Let me check.",
                "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "f", "arguments": args } }] }] })
        };
        let ok = chat_request(&with_args(""), "gemini-2.5-flash").expect("empty args");
        assert_eq!(ok.body["contents"][1]["parts"][0], json!({ "text": "Let me check." }));
        assert_eq!(ok.body["contents"][1]["parts"][1]["functionCall"]["args"], json!({}));
        assert_eq!(
            param_of(chat_request(&with_args("{\"a\":"), "gemini-2.5-flash")).as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        assert_eq!(
            param_of(chat_request(&with_args("[1,2]"), "gemini-2.5-flash")).as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }

    #[test]
    fn messages_alternate_and_system_is_hoisted() {
        let req = json!({ "model": "m", "messages": [
            user("a"), { "role": "system", "content": "s1" }, user("b"),
            { "role": "assistant", "content": "c" }, { "role": "assistant", "content": [{ "type": "text", "text": "d" }] },
            { "role": "developer", "content": "s2" }, { "role": "assistant", "content": "" }, user(""), user("e"),
        ] });
        let p = chat_request(&req, "gemini-2.5-flash").expect("request");
        assert_eq!(p.body["systemInstruction"], json!({ "parts": [{ "text": "s1" }, { "text": "s2" }] }));
        assert_eq!(
            p.body["contents"],
            json!([
                { "role": "user", "parts": [{ "text": "a" }, { "text": "b" }] },
                { "role": "model", "parts": [{ "text": "c" }, { "text": "d" }] },
                { "role": "user", "parts": [{ "text": "e" }] },
            ])
        );
        assert_eq!(p.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    }

    #[test]
    fn tool_results_wrap_json_objects_and_strings() {
        let call = |id: &str| json!({ "id": id, "type": "function", "function": { "name": "f", "arguments": "{}" } });
        let req = json!({ "model": "m", "messages": [
            user("x"), { "role": "assistant", "tool_calls": [call("a"), call("b"), call("c")] },
            { "role": "tool", "tool_call_id": "a", "content": "{\"ok\":true}" },
            { "role": "tool", "tool_call_id": "b", "content": "[1,2]" },
            { "role": "tool", "tool_call_id": "c", "content": [{ "type": "text", "text": "par" }, { "type": "text", "text": "ts" }] },
        ] });
        let p = chat_request(&req, "gemini-2.5-flash").expect("request");
        let parts = &p.body["contents"][2]["parts"];
        assert_eq!(parts[0]["functionResponse"]["response"], json!({ "result": { "ok": true } }));
        assert_eq!(parts[1]["functionResponse"]["response"], json!({ "result": "[1,2]" }));
        assert_eq!(parts[2]["functionResponse"]["response"], json!({ "result": "parts" }));
    }

    #[test]
    fn unsupported_parameters_are_named() {
        let base = |extra: Value| {
            let mut r = json!({ "model": "m", "messages": [user("x")] });
            for (k, v) in extra.as_object().expect("object") {
                r[k] = v.clone();
            }
            r
        };
        for (extra, param) in [
            (json!({ "n": 2 }), "n"),
            (json!({ "logprobs": true }), "logprobs"),
            (json!({ "logit_bias": { "50256": -100 } }), "logit_bias"),
            (json!({ "functions": [] }), "functions"),
            (json!({ "audio": { "voice": "alloy" } }), "audio"),
            (json!({ "top_k": 3 }), "top_k"),
            (json!({ "temperature": "hot" }), "temperature"),
            (json!({ "reasoning_effort": "extreme" }), "reasoning_effort"),
            (json!({ "tool_choice": "required" }), "tool_choice"),
            (json!({ "response_format": { "type": "xml" } }), "response_format.type"),
            (json!({ "tools": [{ "type": "web_search" }] }), "tools[0].type"),
        ] {
            assert_eq!(
                param_of(chat_request(&base(extra.clone()), "gemini-2.5-flash")).as_deref(),
                Some(param),
                "{extra}"
            );
        }
        // Accepted no-ops.
        for extra in [
            json!({ "n": 1 }),
            json!({ "logprobs": false, "parallel_tool_calls": true, "user": "u", "temperature": null }),
        ] {
            chat_request(&base(extra), "gemini-2.5-flash").expect("accepted");
        }
        // Zero penalties are not sent; others are.
        let p = chat_request(&base(json!({ "presence_penalty": 0, "frequency_penalty": 0.5 })), "gemini-2.5-flash")
            .expect("ok");
        assert_eq!(p.body["generationConfig"], json!({ "frequencyPenalty": 0.5 }));
        // The model goes into the path: nothing that could change it.
        for model in ["../files", "gemini?alt=x", "a/b", ""] {
            assert_eq!(param_of(chat_request(&base(json!({})), model)).as_deref(), Some("model"), "{model}");
        }
    }

    #[test]
    fn tool_choice_and_schema_cleaning() {
        let tools = json!([
            { "type": "function", "function": { "name": "a", "parameters": { "type": "object", "properties": {
                "$schema": { "type": "string" },
                "nested": { "$schema": "x", "type": "object", "additionalProperties": { "$schema": "y", "type": "string" } },
            } } } },
            { "type": "function", "function": { "name": "b" } },
        ]);
        let req =
            |choice: Value| json!({ "model": "m", "messages": [user("x")], "tools": tools, "tool_choice": choice });
        let cfg = |choice: Value| chat_request(&req(choice), "gemini-2.5-flash").expect("request").body;
        let body = cfg(json!("auto"));
        assert_eq!(body["toolConfig"], json!({ "functionCallingConfig": { "mode": "AUTO" } }));
        let schema = &body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"];
        // A property named `$schema` is data, not the dialect marker.
        assert_eq!(schema["properties"]["$schema"], json!({ "type": "string" }));
        assert_eq!(
            schema["properties"]["nested"],
            json!({ "type": "object", "additionalProperties": { "type": "string" } })
        );
        assert_eq!(cfg(json!("none"))["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
        assert_eq!(cfg(json!("required"))["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
        assert_eq!(
            cfg(json!({ "type": "function", "function": { "name": "b" } }))["toolConfig"],
            json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["b"] } })
        );
        let allowed = cfg(
            json!({ "type": "allowed_tools", "allowed_tools": { "mode": "auto", "tools": [{ "type": "function", "function": { "name": "b" } }] } }),
        );
        assert_eq!(allowed["tools"][0]["functionDeclarations"], json!([{ "name": "b" }]));
        assert_eq!(
            param_of(chat_request(
                &req(json!({ "type": "function", "function": { "name": "zzz" } })),
                "gemini-2.5-flash"
            ))
            .as_deref(),
            Some("tool_choice.function.name")
        );
    }

    #[test]
    fn images_and_files() {
        let req = json!({ "model": "m", "messages": [{ "role": "user", "content": [
            { "type": "image_url", "image_url": { "url": "HTTPS://x.test/a.PNG#frag" } },
            { "type": "image_url", "image_url": { "url": "data:image/webp;base64,UklGRg==" } },
            { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "mp3" } },
            { "type": "file", "file": { "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf" } },
        ] }] });
        let p = chat_request(&req, "gemini-2.5-flash").expect("request");
        assert_eq!(
            p.body["contents"][0]["parts"],
            json!([
                { "fileData": { "mimeType": "image/png", "fileUri": "HTTPS://x.test/a.PNG#frag" } },
                { "inlineData": { "mimeType": "image/webp", "data": "UklGRg==" } },
                { "inlineData": { "mimeType": "audio/mp3", "data": "AAAA" } },
                { "inlineData": { "mimeType": "application/pdf", "data": "JVBERi0=" } },
            ])
        );
        for url in ["ftp://x/a.png", "data:image/png,raw", "file:///etc/passwd"] {
            let req = json!({ "model": "m", "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": url } }] }] });
            assert_eq!(
                param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(),
                Some("messages[0].content[0].image_url.url")
            );
        }
        let req = json!({ "model": "m", "messages": [{ "role": "system", "content": [{ "type": "image_url", "image_url": { "url": "https://x/a.png" } }] }] });
        assert_eq!(param_of(chat_request(&req, "gemini-2.5-flash")).as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn finish_reasons_and_usage() {
        let resp = |reason: &str| {
            json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": "x" }] }, "finishReason": reason }],
                    "usageMetadata": { "promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4 } })
        };
        for (reason, want) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("LANGUAGE", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("OTHER", "stop"),
        ] {
            let c = chat_response(&resp(reason), &ctx()).expect("response");
            assert_eq!(c["choices"][0]["finish_reason"], want, "{reason}");
            assert_eq!(
                c["usage"],
                Usage { prompt_tokens: 5, completion_tokens: 5, cached_tokens: 4, reasoning_tokens: 3 }.to_json()
            );
        }
        let blocked = json!({ "promptFeedback": { "blockReason": "SAFETY" } });
        let c = chat_response(&blocked, &ctx()).expect("blocked");
        assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
        assert!(chat_response(&json!({}), &ctx()).is_err());
        assert!(chat_response(&json!("nope"), &ctx()).is_err());
    }

    fn event(data: &str) -> SseEvent {
        SseEvent { event: None, data: data.into() }
    }

    fn chunks(items: Vec<StreamItem>) -> Vec<Value> {
        items.into_iter().map(item_json).collect()
    }

    #[test]
    fn stream_edge_cases() {
        // Nothing at all: role, then stop.
        let mut s = chat_stream(ctx());
        let out = chunks(s.finish());
        assert_eq!(out.len(), 2);
        assert_eq!(out[1]["choices"][0]["finish_reason"], "stop");
        assert!(s.finish().is_empty(), "finish twice sends nothing more");

        // Calls in separate events keep counting; usage is the last seen; no usage chunk unasked.
        let mut s = chat_stream(ctx());
        let fc = |name: &str| {
            format!(
                r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"functionCall":{{"name":"{name}","args":{{"k":1}}}}}}]}}}}],"usageMetadata":{{"promptTokenCount":3}}}}"#
            )
        };
        let mut out = chunks(s.on_event(&event(&fc("a"))));
        out.extend(chunks(s.on_event(&event(&fc("b")))));
        out.extend(chunks(s.on_event(&event(r#"{"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}}"#))));
        out.extend(chunks(s.finish()));
        let indexes: Vec<u64> = out
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/index").and_then(Value::as_u64))
            .collect();
        assert_eq!(indexes, [0, 0, 1, 1]);
        assert_eq!(out.last().expect("last")["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(s.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 4, ..Usage::default() }));
        assert!(out.iter().all(|c| c.get("usage").is_none()));

        // MAX_TOKENS in the stream; then include_usage without any usageMetadata gives zeros.
        let mut s = chat_stream(ChatContext { include_usage: true, ..ctx() });
        let out = chunks(
            s.on_event(&event(r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"MAX_TOKENS"}]}"#)),
        );
        assert_eq!(out.last().expect("finish")["choices"][0]["finish_reason"], "length");
        let out = chunks(s.finish());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["usage"], Usage::default().to_json());

        // Garbage mid-stream is an error, and nothing follows it.
        let mut s = chat_stream(ctx());
        assert_eq!(s.on_event(&event(r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#)).len(), 2);
        let out = s.on_event(&event("<html>"));
        assert!(matches!(&out[..], [StreamItem::Error(e)] if e["error"]["type"] == "api_error"));
        assert!(s.on_event(&event(r#"{"candidates":[]}"#)).is_empty());
        assert!(s.finish().is_empty());
    }

    #[test]
    fn api_keys_are_redacted_from_error_messages() {
        // Built at run time: no key-shaped literal in the source.
        let key = format!("AIza{}", "Xq7-_".repeat(7));
        let key = key.as_str();
        assert_eq!(key.len(), 39);
        let body = json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT",
            "message": format!("Bad request to https://generativelanguage.googleapis.com/v1beta/models/x?key={key}&alt=sse ({key})") } });
        let err = upstream_error(400, body.to_string().as_bytes());
        assert!(!err.message.contains(key), "{}", err.message);
        assert!(!err.message.contains(&key[..8]), "{}", err.message);
        assert_eq!(err.message.matches("AIza…").count(), 2);
        assert!(err.message.contains("&alt=sse ("));
        // Not a key: too short, or not key characters.
        assert_eq!(redact_api_keys("AIza short"), "AIza short");
        assert_eq!(redact_api_keys("AIzaAIza"), "AIzaAIza");
        assert_eq!(redact_api_keys(&format!("ü{key}ü")), "üAIza…ü");
        assert_eq!(redact_api_keys(&format!("{key}{key}")), "AIza…AIza…");
        // Mid-stream errors go through the same path.
        let mut s = chat_stream(ctx());
        let out = chunks(s.on_event(&event(&body.to_string())));
        assert!(!out[0].to_string().contains(key));
    }

    #[test]
    fn upstream_errors_map_to_openai_types() {
        for (status, google, kind) in [
            (400, "INVALID_ARGUMENT", "invalid_request_error"),
            (400, "FAILED_PRECONDITION", "invalid_request_error"),
            (403, "PERMISSION_DENIED", "permission_error"),
            (401, "UNAUTHENTICATED", "authentication_error"),
            (404, "NOT_FOUND", "not_found_error"),
            (429, "RESOURCE_EXHAUSTED", "rate_limit_error"),
            (500, "INTERNAL", "api_error"),
            (503, "UNAVAILABLE", "overloaded_error"),
            (504, "DEADLINE_EXCEEDED", "api_error"),
        ] {
            let body = json!({ "error": { "code": status, "message": "m", "status": google } }).to_string();
            let e = upstream_error(status, body.as_bytes());
            assert_eq!((e.kind.as_str(), e.code.as_deref()), (kind, Some(google.to_ascii_lowercase().as_str())));
            assert_eq!(e.message, "m");
        }
        // Not Google's JSON: a message of our own, typed by HTTP status, never the raw body.
        let e = upstream_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(e.kind, "api_error");
        assert!(!e.message.contains("html"));
        assert_eq!(upstream_error(429, b"").kind, "rate_limit_error");
        // The array form of non-SSE streams.
        let e =
            upstream_error(404, br#"[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]"#);
        assert_eq!(e.kind, "not_found_error");
        assert_eq!(retry_after_seconds(br#"{"error":{"details":[{"retryDelay":"1.2s"}]}}"#), Some(2));
        assert_eq!(retry_after_seconds(b"{}"), None);
    }

    #[test]
    fn embedding_inputs_must_be_text() {
        for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["ok", 5]), json!([]), json!(7)] {
            let req = json!({ "model": "gemini-embedding-001", "input": input });
            assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("input"), "{input}");
        }
        let req = json!({ "model": "e", "input": "x", "encoding_format": "int8" });
        assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("encoding_format"));
        let req = json!({ "model": "e", "input": "x", "dimensions": 0 });
        assert_eq!(param_of(embeddings_request(&req, "gemini-embedding-001")).as_deref(), Some("dimensions"));
        let p =
            embeddings_request(&json!({ "model": "e", "input": "x", "user": "u" }), "text-embedding-004").expect("ok");
        assert!(p.body["requests"][0].get("outputDimensionality").is_none());
        // Fewer embeddings than inputs is Gemini's fault, not a silent shift.
        let body = json!({ "embeddings": [{ "values": [0.1] }] });
        assert!(embeddings_response(&body, &json!({ "model": "e", "input": ["a", "b"] })).is_err());
    }

    #[test]
    fn base64_embeddings_are_little_endian_f32() {
        let values = [0.1f64, -2.5, 3.4028234663852886e38, 1e-45, 0.0];
        let body = json!({ "embeddings": [{ "values": values }], "usageMetadata": { "promptTokenCount": 3 } });
        let out = embeddings_response(&body, &json!({ "model": "e", "input": "x", "encoding_format": "base64" }))
            .expect("ok");
        let b64 = out["data"][0]["embedding"].as_str().expect("a base64 string");
        let bytes = STANDARD.decode(b64).expect("base64");
        assert_eq!(bytes.len(), values.len() * 4);
        let back: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let want: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        assert_eq!(back, want);
        assert_eq!(&bytes[4..8], &(-2.5f32).to_le_bytes());
        assert_eq!(out["usage"], json!({ "prompt_tokens": 3, "total_tokens": 3 }));
    }
}
