//! OpenAI messages -> Anthropic `system` blocks and alternating user/assistant turns: text,
//! images, PDF files, tool calls and tool results.

use serde_json::{json, Map, Value};

use super::request::{bad, field};
use crate::providers::unified::TranslateError;

/// The image types Anthropic accepts.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Returns the `system` blocks and the alternating `messages`.
pub(super) fn convert_messages(req: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
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
