//! A Messages request -> the Chat Completions request a provider's dialect translates further:
//! parameters, system, content blocks (text, images, PDFs), tools, tool use and tool results.

use serde_json::{json, Map, Value};

use crate::providers::unified::TranslateError;
use crate::providers::ProviderId;

/// Messages parameters read by the translation below.
const HANDLED: [&str; 14] = [
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
];

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A Chat Completions parameter a dialect refused -> the Messages parameter the client sent.
pub fn rename_param(e: TranslateError) -> TranslateError {
    let param = e.param.map(|p| {
        let (head, tail) = p.split_once(['.', '[']).map_or((p.as_str(), ""), |(h, _)| (h, &p[h.len()..]));
        let renamed = match head {
            "max_completion_tokens" | "max_tokens" => "max_tokens",
            "stop" => "stop_sequences",
            "reasoning_effort" => "thinking",
            "user" => "metadata.user_id",
            "parallel_tool_calls" => "tool_choice.disable_parallel_tool_use",
            "response_format" => "output_config.format",
            other => return format!("{other}{tail}"),
        };
        renamed.to_owned()
    });
    TranslateError { message: e.message, param }
}

/// A Messages request (already checked to be an object) -> a Chat Completions request for
/// `provider`'s dialect.
pub fn chat_request(req: &Value, provider: ProviderId) -> Result<Value, TranslateError> {
    let req = req.as_object().ok_or_else(|| TranslateError::new("The request body must be a JSON object.", None))?;
    for (key, value) in req {
        if !value.is_null() && !HANDLED.contains(&key.as_str()) {
            return Err(bad(format!("{key} is not supported for {provider} models on /v1/messages."), key));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), req.get("model").cloned().unwrap_or(Value::Null));
    let mut messages = system(field(req, "system"))?;
    let list = field(req, "messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("messages must be a non-empty array.", "messages"))?;
    for (i, m) in list.iter().enumerate() {
        messages.extend(message(m, &format!("messages[{i}]"))?);
    }
    out.insert("messages".into(), Value::Array(messages));

    let max_tokens = field(req, "max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| bad("max_tokens is required: a positive integer.", "max_tokens"))?;
    let max_key = match provider {
        ProviderId::OpenAi | ProviderId::Groq => "max_completion_tokens",
        _ => "max_tokens",
    };
    out.insert(max_key.into(), json!(max_tokens));
    if let Some(stream) = field(req, "stream") {
        if stream.as_bool().ok_or_else(|| bad("stream must be true or false.", "stream"))? {
            out.insert("stream".into(), json!(true));
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = field(req, key) {
            v.as_f64().ok_or_else(|| bad(format!("{key} must be a number."), key))?;
            out.insert(key.into(), v.clone());
        }
    }
    if field(req, "top_k").is_some() {
        return Err(bad(format!("{provider} models have no top_k on /v1/messages."), "top_k"));
    }
    if let Some(stop) = field(req, "stop_sequences") {
        let list = stop
            .as_array()
            .filter(|l| l.iter().all(Value::is_string))
            .ok_or_else(|| bad("stop_sequences must be an array of strings.", "stop_sequences"))?;
        if !list.is_empty() {
            out.insert("stop".into(), stop.clone());
        }
    }
    if let Some(user) = field(req, "metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(user));
    }
    if let Some(effort) = thinking(field(req, "thinking"))? {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(format) = output_config(field(req, "output_config"))? {
        out.insert("response_format".into(), format);
    }
    if let Some(tools) = field(req, "tools") {
        let tools = tools.as_array().ok_or_else(|| bad("tools must be an array.", "tools"))?;
        let converted =
            tools.iter().enumerate().map(|(i, t)| tool(t, &format!("tools[{i}]"))).collect::<Result<Vec<_>, _>>()?;
        if !converted.is_empty() {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(choice) = field(req, "tool_choice") {
        let (choice, parallel_off) = tool_choice(choice)?;
        out.insert("tool_choice".into(), choice);
        if parallel_off {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(Value::Object(out))
}

/// `system`: a string or text blocks -> one system message.
fn system(system: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let text = match system {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                let t = b["text"]
                    .as_str()
                    .filter(|_| b["type"] == "text")
                    .ok_or_else(|| bad("system blocks must be text blocks.", &format!("system[{i}]")))?;
                texts.push(t);
            }
            texts.join("\n\n")
        }
        Some(_) => return Err(bad("system must be a string or an array of text blocks.", "system")),
    };
    Ok(if text.is_empty() { Vec::new() } else { vec![json!({ "role": "system", "content": text })] })
}

/// One Messages turn -> Chat messages: a user turn's tool results become `tool` messages (first,
/// in order), its other blocks one user message; an assistant turn one message with tool calls.
fn message(m: &Value, p: &str) -> Result<Vec<Value>, TranslateError> {
    let role = m["role"].as_str().ok_or_else(|| bad("Each message needs a role.", &format!("{p}.role")))?;
    let blocks = match &m["content"] {
        Value::String(s) => vec![json!({ "type": "text", "text": s })],
        Value::Array(b) => b.clone(),
        _ => return Err(bad("content must be a string or an array of content blocks.", &format!("{p}.content"))),
    };
    match role {
        "user" => {
            let mut tool_results = Vec::new();
            let mut parts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let bp = format!("{p}.content[{j}]");
                match b["type"].as_str() {
                    Some("tool_result") => tool_results.push(tool_result(b, &bp)?),
                    _ => {
                        if let Some(part) = user_part(b, &bp)? {
                            parts.push(part);
                        }
                    }
                }
            }
            if !parts.is_empty() {
                tool_results.push(json!({ "role": "user", "content": parts }));
            }
            Ok(tool_results)
        }
        "assistant" => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let bp = format!("{p}.content[{j}]");
                match b["type"].as_str() {
                    Some("text") => {
                        text.push_str(b["text"].as_str().ok_or_else(|| bad("A text block needs text.", &bp))?)
                    }
                    Some("tool_use") => {
                        let id = b["id"]
                            .as_str()
                            .ok_or_else(|| bad("A tool_use block needs an id.", &format!("{bp}.id")))?;
                        let name = b["name"]
                            .as_str()
                            .ok_or_else(|| bad("A tool_use block needs a name.", &format!("{bp}.name")))?;
                        let input = b.get("input").filter(|i| !i.is_null()).cloned().unwrap_or_else(|| json!({}));
                        calls.push(json!({ "id": id, "type": "function", "function": { "name": name, "arguments": input.to_string() } }));
                    }
                    // Only Anthropic can read its signed thinking back.
                    Some("thinking" | "redacted_thinking") => {}
                    _ => {
                        return Err(bad(
                            "Assistant messages may hold text, tool_use and thinking blocks.",
                            &format!("{bp}.type"),
                        ))
                    }
                }
            }
            let mut out =
                json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
            if !calls.is_empty() {
                out["tool_calls"] = Value::Array(calls);
            }
            Ok(vec![out])
        }
        _ => Err(bad("A message role must be user or assistant.", &format!("{p}.role"))),
    }
}

/// A user block -> a Chat content part (`None`: nothing to send).
fn user_part(b: &Value, p: &str) -> Result<Option<Value>, TranslateError> {
    match b["type"].as_str() {
        Some("text") => {
            let t = b["text"].as_str().ok_or_else(|| bad("A text block needs text.", p))?;
            Ok((!t.is_empty()).then(|| json!({ "type": "text", "text": t })))
        }
        Some("image") => {
            let s = &b["source"];
            let url = match s["type"].as_str() {
                Some("base64") => {
                    let (Some(media), Some(data)) = (s["media_type"].as_str(), s["data"].as_str()) else {
                        return Err(bad("A base64 image needs media_type and data.", &format!("{p}.source")));
                    };
                    format!("data:{media};base64,{data}")
                }
                Some("url") => {
                    s["url"].as_str().ok_or_else(|| bad("A url image needs a url.", &format!("{p}.source")))?.to_owned()
                }
                _ => return Err(bad("Images must have a base64 or url source.", &format!("{p}.source.type"))),
            };
            Ok(Some(json!({ "type": "image_url", "image_url": { "url": url } })))
        }
        Some("document") => {
            let s = &b["source"];
            match (s["type"].as_str(), s["media_type"].as_str(), s["data"].as_str()) {
                (Some("base64"), Some("application/pdf"), Some(data)) => Ok(Some(json!({
                    "type": "file",
                    "file": { "filename": "document.pdf", "file_data": format!("data:application/pdf;base64,{data}") },
                }))),
                _ => Err(bad("Only base64 PDF documents can be sent to this provider.", &format!("{p}.source"))),
            }
        }
        _ => Err(bad("User messages may hold text, image, document and tool_result blocks.", &format!("{p}.type"))),
    }
}

/// A `tool_result` block -> a `tool` message (text only; an error result says so in its text).
fn tool_result(b: &Value, p: &str) -> Result<Value, TranslateError> {
    let id = b["tool_use_id"]
        .as_str()
        .ok_or_else(|| bad("A tool_result block needs a tool_use_id.", &format!("{p}.tool_use_id")))?;
    let mut text = match &b["content"] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                let t = part["text"].as_str().filter(|_| part["type"] == "text").ok_or_else(|| {
                    bad("Tool results sent to this provider may only hold text.", &format!("{p}.content[{k}]"))
                })?;
                texts.push(t);
            }
            texts.join("\n")
        }
        _ => return Err(bad("A tool result's content must be a string or text blocks.", &format!("{p}.content"))),
    };
    if b["is_error"] == true {
        text = format!("Error: {text}");
    }
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

/// A client tool -> a function tool. Anthropic's server tools (`web_search_…`, `bash_…`) run on
/// Anthropic's side only.
fn tool(t: &Value, p: &str) -> Result<Value, TranslateError> {
    if t.get("type").is_some_and(|ty| ty != "custom") {
        return Err(bad("Only client tools (name, description, input_schema) can be sent to this provider.", p));
    }
    let name = t["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("A tool needs a name.", &format!("{p}.name")))?;
    let schema = t
        .get("input_schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| bad("A tool needs an input_schema object.", &format!("{p}.input_schema")))?;
    let mut function = json!({ "name": name, "parameters": schema });
    if let Some(d) = t["description"].as_str().filter(|d| !d.is_empty()) {
        function["description"] = json!(d);
    }
    Ok(json!({ "type": "function", "function": function }))
}

/// `tool_choice` -> Chat's, and whether parallel tool use is off.
fn tool_choice(c: &Value) -> Result<(Value, bool), TranslateError> {
    let parallel_off = c["disable_parallel_tool_use"] == true;
    let choice = match c["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name =
                c["name"].as_str().ok_or_else(|| bad("tool_choice of type tool needs a name.", "tool_choice.name"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => return Err(bad("tool_choice type must be auto, any, tool or none.", "tool_choice.type")),
    };
    Ok((choice, parallel_off))
}

/// `thinking` -> a `reasoning_effort` (none when disabled).
fn thinking(t: Option<&Value>) -> Result<Option<&'static str>, TranslateError> {
    let Some(t) = t else { return Ok(None) };
    match t["type"].as_str() {
        Some("disabled") => Ok(None),
        Some("enabled") => {
            let budget = t["budget_tokens"]
                .as_u64()
                .ok_or_else(|| bad("thinking needs budget_tokens.", "thinking.budget_tokens"))?;
            Ok(Some(match budget {
                0..=4095 => "low",
                4096..=16383 => "medium",
                _ => "high",
            }))
        }
        _ => Err(bad("thinking type must be enabled or disabled.", "thinking.type")),
    }
}

/// `output_config` -> Chat's `response_format`: `format: {"type": "json_schema", "schema"}` becomes a
/// strict `json_schema` format (Anthropic's structured outputs also hold the answer to the schema).
/// `effort` has no Chat equivalent here (`thinking` is the way to ask for reasoning) and is refused.
fn output_config(c: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let Some(c) = c else { return Ok(None) };
    let c = c.as_object().ok_or_else(|| bad("output_config must be an object.", "output_config"))?;
    for (key, value) in c {
        if !value.is_null() && key != "format" {
            return Err(bad(
                format!("output_config.{key} is not supported on /v1/messages for this model."),
                &format!("output_config.{key}"),
            ));
        }
    }
    let Some(format) = field(c, "format") else { return Ok(None) };
    if format["type"] != "json_schema" {
        return Err(bad("output_config.format type must be json_schema.", "output_config.format.type"));
    }
    let schema = format
        .get("schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| bad("output_config.format needs a schema: a JSON object.", "output_config.format.schema"))?;
    Ok(Some(json!({
        "type": "json_schema",
        "json_schema": { "name": "output", "schema": schema, "strict": true },
    })))
}
