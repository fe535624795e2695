//! Anthropic errors -> OpenAI error fields: a non-2xx answer, and an `error` event in the middle of
//! a stream (the stream calls `error_from`).

use serde_json::Value;

use crate::domain::key_health::KeyStatus;
use crate::providers::dialect::refuses_key;
use crate::providers::unified::UpstreamError;

/// A non-2xx Anthropic answer (`{"type":"error","error":{"type","message"}}`, or anything else)
/// -> OpenAI error fields. Also used for a mid-stream `event: error`.
pub fn upstream_error(status: u16, body: &[u8]) -> UpstreamError {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    error_from(Some(status), parsed.as_ref())
}

/// What an error answer says about the key: 401/403 `invalid`; Anthropic's documented
/// `billing_error` (HTTP 402) `quota_exhausted`, and so is the 400 `invalid_request_error` its
/// API answers in practice when the credit balance is spent ("Your credit balance is too low to
/// access the Anthropic API…"). A `rate_limit_error` (429) says nothing about the key.
pub fn key_verdict(status: u16, body: &[u8]) -> Option<KeyStatus> {
    if refuses_key(status) {
        return Some(KeyStatus::Invalid);
    }
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().map(|b| &b["error"]);
    let kind = error.and_then(|e| e["type"].as_str()).unwrap_or_default();
    let message = error.and_then(|e| e["message"].as_str()).unwrap_or_default();
    let credit_spent = kind == "invalid_request_error" && message.to_ascii_lowercase().contains("credit balance");
    (status == 402 || kind == "billing_error" || credit_spent).then_some(KeyStatus::QuotaExhausted)
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

pub(super) fn error_from(status: Option<u16>, body: Option<&Value>) -> UpstreamError {
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
    use super::*;

    #[test]
    fn key_verdicts_from_documented_error_bodies() {
        let auth = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#;
        assert_eq!(key_verdict(401, auth), Some(KeyStatus::Invalid));
        let permission = br#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#;
        assert_eq!(key_verdict(403, permission), Some(KeyStatus::Invalid));
        let billing = br#"{"type":"error","error":{"type":"billing_error","message":"Billing error"}}"#;
        assert_eq!(key_verdict(402, billing), Some(KeyStatus::QuotaExhausted));
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        assert_eq!(key_verdict(400, credit), Some(KeyStatus::QuotaExhausted));
        let rate = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        assert_eq!(key_verdict(429, rate), None);
        let bad_request = br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: at least one message is required"}}"#;
        assert_eq!(key_verdict(400, bad_request), None);
        let overloaded = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(key_verdict(529, overloaded), None);
        assert_eq!(key_verdict(401, b""), Some(KeyStatus::Invalid));
    }
}
