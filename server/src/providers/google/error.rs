//! Gemini errors -> OpenAI error fields (Google API keys masked in messages), and the retry delay
//! Google puts in the body.

use serde_json::Value;

use crate::domain::key_health::KeyStatus;
use crate::providers::dialect::refuses_key;
use crate::providers::unified::UpstreamError;

/// Masks anything shaped like a Google API key (`AIza` + 35 key characters) in `text`, the way
/// `upstream::redact_key_like` (which `upstream` applies to every error) prints it: `AIza…`.
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

/// What an error answer says about the key. `invalid`: 401/403 (`PERMISSION_DENIED`), or the
/// 400 with an `API_KEY_INVALID` detail Google answers a bad key with. `quota_exhausted`: 402
/// `RESOURCE_EXHAUSTED`, the prepaid credit balance is spent (Gemini's API error reference). A
/// 429 `RESOURCE_EXHAUSTED` is a rate limit (per minute, per day, spend per window) that passes:
/// nothing about the key.
pub fn key_verdict(status: u16, body: &[u8]) -> Option<KeyStatus> {
    let bad_key = || {
        google_error(body)
            .and_then(|e| e.get("details").and_then(Value::as_array).cloned())
            .is_some_and(|d| d.iter().any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")))
    };
    if refuses_key(status) || (status == 400 && bad_key()) {
        return Some(KeyStatus::Invalid);
    }
    (status == 402).then_some(KeyStatus::QuotaExhausted)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_verdicts_from_documented_error_bodies() {
        let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
        assert_eq!(key_verdict(400, bad_key), Some(KeyStatus::Invalid));
        let denied = br#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(key_verdict(403, denied), Some(KeyStatus::Invalid));
        let prepay = br#"{"error":{"code":402,"message":"Your prepayment credit balance is depleted.","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(key_verdict(402, prepay), Some(KeyStatus::QuotaExhausted));
        let rate = br#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"38s"}]}}"#;
        assert_eq!(key_verdict(429, rate), None);
        let bad_request =
            br#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(key_verdict(400, bad_request), None);
        assert_eq!(key_verdict(503, b"{}"), None);
    }
}
