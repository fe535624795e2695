//! OpenAI `tools` and `tool_choice` -> Gemini `functionDeclarations` and `toolConfig`, and the
//! JSON Schema cleaning that tool parameters and response schemas share.

use serde_json::{json, Map, Value};

use super::request::bad;
use crate::providers::unified::TranslateError;

/// OpenAI tools and tool_choice -> Gemini `tools` and `toolConfig`.
pub(super) fn convert_tools(
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
