//! Errors in Anthropic's shape (`{"type":"error","error":{"type","message"}}`) from Relay's and
//! the dialects' OpenAI-shaped ones, for answers before output and `error` events in streams.

use serde_json::{json, Value};

/// Anthropic's error type for an OpenAI-shaped error's `type` and `code`, and the HTTP status
/// (`None` inside a stream).
pub fn anthropic_error_type(kind: &str, code: Option<&str>, status: Option<u16>) -> &'static str {
    match (kind, code) {
        (_, Some("request_too_large")) => return "request_too_large",
        (_, Some("upstream_timeout" | "timeout")) => return "timeout_error",
        ("invalid_request_error", _) if status != Some(413) => return "invalid_request_error",
        ("authentication_error", _) => return "authentication_error",
        ("permission_error", _) => return "permission_error",
        ("not_found_error", _) => return "not_found_error",
        ("rate_limit_error" | "requests" | "tokens", _) => return "rate_limit_error",
        ("insufficient_quota" | "billing_error", _) => return "billing_error",
        ("overloaded_error", _) => return "overloaded_error",
        _ => {}
    }
    match status {
        Some(400 | 422) => "invalid_request_error",
        Some(401) => "authentication_error",
        Some(402) => "billing_error",
        Some(403) => "permission_error",
        Some(404) => "not_found_error",
        Some(413) => "request_too_large",
        Some(429) => "rate_limit_error",
        Some(504) => "timeout_error",
        Some(503 | 529) => "overloaded_error",
        _ => "api_error",
    }
}

/// An OpenAI-shaped error body (`{"error": {message, type, param, code}}`) -> Anthropic's shape;
/// Relay's `code` and `param` stay beside the message. `None` when `v` is not such an error.
pub fn anthropic_error(v: &Value, status: Option<u16>) -> Option<Value> {
    if v["type"] == "error" {
        return Some(v.clone());
    }
    let e = v.get("error")?;
    let text = |k: &str| e.get(k).and_then(Value::as_str);
    let message = text("message").or_else(|| e.as_str()).unwrap_or("The request failed.");
    let kind = anthropic_error_type(text("type").unwrap_or_default(), text("code"), status);
    let mut error = json!({ "type": kind, "message": message });
    for key in ["code", "param"] {
        if let Some(x) = e.get(key).filter(|x| !x.is_null()) {
            error[key] = x.clone();
        }
    }
    Some(json!({ "type": "error", "error": error }))
}
