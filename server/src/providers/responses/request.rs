//! A Responses request -> the Chat Completions request a provider's dialect translates further:
//! `instructions`, input items (messages, images, files, function calls and outputs), tools.

use serde_json::{json, Map, Value};

use crate::providers::unified::TranslateError;
use crate::providers::ProviderId;

/// Responses parameters read by the translation below (or by the gateway: `stream`).
const HANDLED: [&str; 19] = [
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "stream",
    "store",
    "previous_response_id",
    "metadata",
    "user",
    "safety_identifier",
    "truncation",
    "include",
];

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param))
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A Chat Completions parameter a dialect refused -> the Responses parameter the client sent.
pub fn rename_param(e: TranslateError) -> TranslateError {
    let param = e.param.map(|p| {
        let (head, tail) = p.split_once(['.', '[']).map_or((p.as_str(), ""), |(h, _)| (h, &p[h.len()..]));
        match head {
            "max_completion_tokens" | "max_tokens" => "max_output_tokens".to_owned(),
            "reasoning_effort" => "reasoning.effort".to_owned(),
            "response_format" => format!("text.format{}", tail.strip_prefix(".json_schema").unwrap_or(tail)),
            "messages" => "input".to_owned(),
            "tools" => format!("tools{}", tail.replacen(".function", "", 1)),
            other => format!("{other}{tail}"),
        }
    });
    TranslateError { message: e.message, param }
}

/// Parameters only OpenAI itself can honour: Relay keeps no conversation state.
pub fn stateful_param(req: &Value) -> Option<&'static str> {
    if req.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Some("previous_response_id");
    }
    if req.get("store") == Some(&Value::Bool(true)) {
        return Some("store");
    }
    if req.get("conversation").is_some_and(|v| !v.is_null()) {
        return Some("conversation");
    }
    None
}

/// A Responses request (already checked to be an object) -> a Chat Completions request for
/// `provider`'s dialect.
pub fn chat_request(req: &Value, provider: ProviderId) -> Result<Value, TranslateError> {
    let req = req.as_object().ok_or_else(|| TranslateError::new("The request body must be a JSON object.", None))?;
    if let Some(p) = stateful_param(&Value::Object(req.clone())) {
        return Err(bad(
            format!("{p} needs state kept by the provider: only OpenAI models have it on /v1/responses (Relay is stateless; send the whole conversation as input, and store: false)."),
            p,
        ));
    }
    for (key, value) in req {
        if !value.is_null() && !HANDLED.contains(&key.as_str()) {
            return Err(bad(format!("{key} is not supported for {provider} models on /v1/responses."), key));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), req.get("model").cloned().unwrap_or(Value::Null));
    let mut messages = Vec::new();
    if let Some(i) = field(req, "instructions") {
        let text = i.as_str().ok_or_else(|| bad("instructions must be a string.", "instructions"))?;
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    match field(req, "input") {
        Some(Value::String(s)) => messages.push(json!({ "role": "user", "content": s })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(&mut messages, item, &format!("input[{i}]"))?;
            }
        }
        _ => return Err(bad("input must be a string or an array of input items.", "input")),
    }
    if messages.is_empty() {
        return Err(bad("input must not be empty.", "input"));
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(n) = field(req, "max_output_tokens") {
        let n = n
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("max_output_tokens must be a positive integer.", "max_output_tokens"))?;
        let key = match provider {
            ProviderId::OpenAi | ProviderId::Groq => "max_completion_tokens",
            _ => "max_tokens",
        };
        out.insert(key.into(), json!(n));
    }
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
    if let Some(t) = field(req, "truncation") {
        if t != "disabled" {
            return Err(bad(
                format!("truncation {t} is not supported for {provider} models: only disabled."),
                "truncation",
            ));
        }
    }
    if let Some(include) = field(req, "include") {
        let list = include.as_array().ok_or_else(|| bad("include must be an array.", "include"))?;
        // Encrypted reasoning is OpenAI's own; without it the answer is the same.
        if let Some((i, _)) = list.iter().enumerate().find(|(_, v)| *v != "reasoning.encrypted_content") {
            return Err(bad(
                format!("{provider} models cannot include that on /v1/responses."),
                &format!("include[{i}]"),
            ));
        }
    }
    if let Some(user) = field(req, "safety_identifier").or_else(|| field(req, "user")).and_then(Value::as_str) {
        out.insert("user".into(), json!(user));
    }
    if let Some(r) = field(req, "reasoning") {
        if let Some(effort) = r.get("effort").filter(|e| !e.is_null()) {
            out.insert("reasoning_effort".into(), effort.clone());
        }
        if let Some(s) = r.get("summary").or_else(|| r.get("generate_summary")).filter(|s| !s.is_null()) {
            if !matches!(s.as_str(), Some("auto" | "concise" | "detailed")) {
                return Err(bad("reasoning.summary must be auto, concise or detailed.", "reasoning.summary"));
            }
        }
    }
    if let Some(text) = field(req, "text") {
        if text.get("verbosity").is_some_and(|v| !v.is_null() && v != "medium") {
            return Err(bad(format!("{provider} models have no text.verbosity on /v1/responses."), "text.verbosity"));
        }
        if let Some(format) = text.get("format").filter(|f| !f.is_null()) {
            out.insert("response_format".into(), response_format(format)?);
        }
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
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(p) = field(req, "parallel_tool_calls") {
        p.as_bool().ok_or_else(|| bad("parallel_tool_calls must be true or false.", "parallel_tool_calls"))?;
        out.insert("parallel_tool_calls".into(), p.clone());
    }
    Ok(Value::Object(out))
}

/// One input item -> Chat messages appended to `out`; consecutive function calls join one
/// assistant message.
fn input_item(out: &mut Vec<Value>, item: &Value, p: &str) -> Result<(), TranslateError> {
    let kind = item["type"].as_str().unwrap_or("message");
    match kind {
        "message" => {
            let role = item["role"].as_str().ok_or_else(|| bad("A message needs a role.", &format!("{p}.role")))?;
            let content = &item["content"];
            match role {
                "system" | "developer" => {
                    out.push(json!({ "role": "system", "content": text_only(content, &format!("{p}.content"))? }))
                }
                "user" => {
                    out.push(json!({ "role": "user", "content": user_content(content, &format!("{p}.content"))? }))
                }
                "assistant" => {
                    let text = text_only(content, &format!("{p}.content"))?;
                    out.push(json!({ "role": "assistant", "content": text }));
                }
                _ => {
                    return Err(bad(
                        "A message role must be user, assistant, system or developer.",
                        &format!("{p}.role"),
                    ))
                }
            }
        }
        "function_call" => {
            let call_id = item["call_id"]
                .as_str()
                .ok_or_else(|| bad("A function_call needs a call_id.", &format!("{p}.call_id")))?;
            let name =
                item["name"].as_str().ok_or_else(|| bad("A function_call needs a name.", &format!("{p}.name")))?;
            let arguments = item["arguments"].as_str().unwrap_or("{}");
            let call =
                json!({ "id": call_id, "type": "function", "function": { "name": name, "arguments": arguments } });
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" => match last["tool_calls"].as_array_mut() {
                    Some(calls) => calls.push(call),
                    None => last["tool_calls"] = json!([call]),
                },
                _ => out.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] })),
            }
        }
        "function_call_output" => {
            let call_id = item["call_id"]
                .as_str()
                .ok_or_else(|| bad("A function_call_output needs a call_id.", &format!("{p}.call_id")))?;
            let output = text_only(&item["output"], &format!("{p}.output"))?;
            out.push(json!({ "role": "tool", "tool_call_id": call_id, "content": output }));
        }
        // Only OpenAI can read its reasoning items back.
        "reasoning" => {}
        _ => {
            return Err(bad(
                format!("Input items of type {kind} cannot be sent to this provider."),
                &format!("{p}.type"),
            ))
        }
    }
    Ok(())
}

/// Content that may only be text: a string, or text parts joined.
fn text_only(content: &Value, p: &str) -> Result<String, TranslateError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                let t = part["text"]
                    .as_str()
                    .filter(|_| matches!(part["type"].as_str(), Some("input_text" | "output_text" | "text")))
                    .or_else(|| part["refusal"].as_str().filter(|_| part["type"] == "refusal"))
                    .ok_or_else(|| bad("Only text can be sent here to this provider.", &format!("{p}[{k}]")))?;
                texts.push(t);
            }
            Ok(texts.concat())
        }
        _ => Err(bad("content must be a string or an array of content parts.", p)),
    }
}

/// A user message's content -> Chat content (a string, or text, image and file parts).
fn user_content(content: &Value, p: &str) -> Result<Value, TranslateError> {
    let parts = match content {
        Value::String(s) => return Ok(json!(s)),
        Value::Array(parts) => parts,
        _ => return Err(bad("content must be a string or an array of content parts.", p)),
    };
    let mut out = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let pp = format!("{p}[{k}]");
        match part["type"].as_str() {
            Some("input_text") => {
                let t = part["text"].as_str().ok_or_else(|| bad("An input_text part needs text.", &pp))?;
                out.push(json!({ "type": "text", "text": t }));
            }
            Some("input_image") => {
                let url = part["image_url"]
                    .as_str()
                    .ok_or_else(|| bad("Images sent to this provider need an image_url (file_id is OpenAI's).", &pp))?;
                let mut image = json!({ "url": url });
                if let Some(d) = part["detail"].as_str() {
                    image["detail"] = json!(d);
                }
                out.push(json!({ "type": "image_url", "image_url": image }));
            }
            Some("input_file") => {
                let data = part["file_data"]
                    .as_str()
                    .ok_or_else(|| bad("Files sent to this provider need file_data (file_id is OpenAI's).", &pp))?;
                let name = part["filename"].as_str().unwrap_or("document.pdf");
                out.push(json!({ "type": "file", "file": { "filename": name, "file_data": data } }));
            }
            _ => {
                return Err(bad(
                    "User content may hold input_text, input_image and input_file parts.",
                    &format!("{pp}.type"),
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

/// `text.format` -> `response_format`.
fn response_format(f: &Value) -> Result<Value, TranslateError> {
    match f["type"].as_str() {
        Some("text") => Ok(json!({ "type": "text" })),
        Some("json_object") => Ok(json!({ "type": "json_object" })),
        Some("json_schema") => {
            let name =
                f["name"].as_str().ok_or_else(|| bad("A json_schema format needs a name.", "text.format.name"))?;
            let schema = f
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| bad("A json_schema format needs a schema object.", "text.format.schema"))?;
            let mut js = json!({ "name": name, "schema": schema });
            for key in ["strict", "description"] {
                if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                    js[key] = v.clone();
                }
            }
            Ok(json!({ "type": "json_schema", "json_schema": js }))
        }
        _ => Err(bad("text.format type must be text, json_object or json_schema.", "text.format.type")),
    }
}

/// A function tool -> Chat's. Hosted tools (web search, file search, …) run on OpenAI's side only.
fn tool(t: &Value, p: &str) -> Result<Value, TranslateError> {
    if t["type"] != "function" {
        return Err(bad("Only function tools can be sent to this provider.", &format!("{p}.type")));
    }
    let name = t["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("A tool needs a name.", &format!("{p}.name")))?;
    let mut function = json!({ "name": name });
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
            function[key] = v.clone();
        }
    }
    Ok(json!({ "type": "function", "function": function }))
}

/// `tool_choice` -> Chat's.
fn tool_choice(c: &Value) -> Result<Value, TranslateError> {
    match c {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(c.clone()),
        Value::Object(_) if c["type"] == "function" => {
            let name =
                c["name"].as_str().ok_or_else(|| bad("A function tool_choice needs a name.", "tool_choice.name"))?;
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        _ => Err(bad("tool_choice must be auto, none, required or a function by name.", "tool_choice")),
    }
}
