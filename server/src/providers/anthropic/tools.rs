//! OpenAI `tools`, `tool_choice`, `parallel_tool_calls` and `response_format` -> Anthropic tools
//! and `tool_choice`, with the reserved tool that carries a `json_schema` answer.

use serde_json::{json, Map, Value};

use super::request::{bad, field};
use crate::providers::unified::TranslateError;

/// The tool that carries a `json_schema` response. Reserved: a client tool of this name is refused,
/// so a call to it in a response can only be the formatted answer.
pub(super) const RESPONSE_TOOL: &str = "relay_json_response";

pub(super) enum Format {
    Text,
    JsonObject,
    /// The response tool's definition.
    JsonSchema(Value),
}

pub(super) fn response_format(req: &Map<String, Value>) -> Result<Format, TranslateError> {
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

pub(super) struct ToolPlan {
    pub(super) tools: Vec<Value>,
    pub(super) choice: Option<Value>,
    /// The model must call a tool (Anthropic refuses thinking then).
    pub(super) forced: bool,
}

pub(super) fn plan_tools(req: &Map<String, Value>, format: &Format) -> Result<ToolPlan, TranslateError> {
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
