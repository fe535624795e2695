//! OpenAI messages -> Gemini `systemInstruction` and alternating user/model `contents`: text,
//! images, audio, files, function calls (signatures restored) and function responses.

use serde_json::{json, Map, Value};

use super::call_id::decode_call_id;
use super::request::bad;
use crate::providers::unified::TranslateError;

struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// System and developer messages -> `systemInstruction.parts` (in order); the rest -> `contents`
/// with Gemini's roles, consecutive same-role turns merged (Gemini wants user/model alternation,
/// and all results of one parallel call in one turn).
pub(super) fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
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
