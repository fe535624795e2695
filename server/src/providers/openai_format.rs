//! The dialect of providers that speak OpenAI's API (OpenAI, Groq, Mistral, OpenRouter,
//! `openai-compatible` servers): bodies pass with only the model renamed, streams event by event.

use bytes::Bytes;
use serde_json::Value;

use super::dialect::{refuses_key, Dialect, Listed, ResponseError};
use super::unified::{
    ChatContext, Prepared, SseEvent, StreamItem, StreamTranslator, TranslateError, UpstreamError, Usage,
};
use crate::domain::key_health::KeyStatus;

/// OpenAI's format. `asks_stream_usage`: the provider reports stream usage only when asked
/// (`stream_options.include_usage`), so Relay asks, to record it, and drops that extra chunk
/// unless the client asked too. (Groq and Mistral report usage without being asked.)
pub struct OpenAiFormat {
    pub asks_stream_usage: bool,
}

impl Dialect for OpenAiFormat {
    fn chat_request(
        &self,
        mut body: Value,
        upstream_model: &str,
        ctx: &ChatContext,
        stream: bool,
    ) -> Result<Prepared, TranslateError> {
        body["model"] = Value::String(upstream_model.to_owned());
        if stream && self.asks_stream_usage && !ctx.include_usage {
            body["stream_options"] = serde_json::json!({ "include_usage": true });
        }
        Ok(Prepared { path: "/v1/chat/completions".into(), body })
    }

    fn chat_response(&self, body: Bytes, _: &ChatContext) -> Result<(Bytes, Option<Usage>), ResponseError> {
        let usage = usage_of(&body);
        Ok((body, usage))
    }

    fn chat_stream(&self, ctx: ChatContext) -> Box<dyn StreamTranslator> {
        Box::new(Pipe { drop_usage_chunk: self.asks_stream_usage && !ctx.include_usage, usage: None })
    }

    fn has_embeddings(&self) -> bool {
        true
    }

    fn embeddings_request(&self, body: &Value, upstream_model: &str) -> Result<Prepared, TranslateError> {
        let mut body = body.clone();
        body["model"] = Value::String(upstream_model.to_owned());
        Ok(Prepared { path: "/v1/embeddings".into(), body })
    }

    fn embeddings_response(&self, body: Bytes, _: &Value) -> Result<(Bytes, Option<Usage>), ResponseError> {
        let usage = usage_of(&body);
        Ok((body, usage))
    }

    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError {
        openai_error(status, body)
    }

    fn key_verdict(&self, status: u16, body: &[u8]) -> Option<KeyStatus> {
        openai_key_verdict(status, body)
    }

    fn models_path(&self) -> &'static str {
        "/v1/models"
    }

    fn parse_models(&self, body: &Value) -> Vec<Listed> {
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(|id| (id.to_owned(), m["created"].as_i64().unwrap_or(0))))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn usage_of(body: &[u8]) -> Option<Usage> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    parsed.get("usage").and_then(Usage::from_json)
}

/// OpenAI-format providers already answer `{"error": {...}}`; anything else is wrapped.
pub fn openai_error(status: u16, body: &[u8]) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let e = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_owned);
    let message = match e {
        Some(Value::String(s)) => Some(s.clone()),
        _ => text("message"),
    };
    UpstreamError {
        message: message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("The provider answered HTTP {status}.")),
        kind: text("type").unwrap_or_else(|| default_kind(status).to_owned()),
        code: text("code").or_else(|| e.and_then(|e| e.get("code")).and_then(Value::as_i64).map(|c| c.to_string())),
        param: text("param"),
    }
}

/// OpenAI answers an account out of credit with 429 and `insufficient_quota` as the error's
/// `type` (its `code` says which limit: `insufficient_quota`, `credit_balance_exhausted`, …),
/// unlike a rate limit (429 `rate_limit_exceeded`), which says nothing about the key. OpenRouter
/// and Mistral answer 402 Payment Required when the account's credits are spent.
pub fn openai_key_verdict(status: u16, body: &[u8]) -> Option<KeyStatus> {
    if refuses_key(status) {
        return Some(KeyStatus::Invalid);
    }
    if status == 402 {
        return Some(KeyStatus::QuotaExhausted);
    }
    let e = openai_error(status, body);
    let quota = |s: &str| s == "insufficient_quota";
    (status == 429 && (quota(&e.kind) || e.code.as_deref().is_some_and(quota))).then_some(KeyStatus::QuotaExhausted)
}

/// OpenAI's error `type` for a status, when the provider named none.
pub fn default_kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An OpenAI-format stream passed on event by event as it came, noting usage on the way.
struct Pipe {
    drop_usage_chunk: bool,
    usage: Option<Usage>,
}

impl StreamTranslator for Pipe {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if event.data == "[DONE]" {
            return vec![StreamItem::Done];
        }
        let parsed: Option<Value> = serde_json::from_str(&event.data).ok();
        if let Some(v) = parsed {
            // An error event, in OpenAI's shape whatever the provider put in it (a stream has
            // no status: the default type is `api_error`).
            if v.get("error").is_some_and(|e| !e.is_null()) {
                return vec![StreamItem::Error(openai_error(500, event.data.as_bytes()).to_json())];
            }
            let usage = v.get("usage").filter(|u| u.is_object()).or_else(|| v.pointer("/x_groq/usage"));
            if let Some(u) = usage.and_then(Usage::from_json) {
                self.usage = Some(u);
            }
            let usage_only =
                v.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty) && v.get("usage").is_some();
            if usage_only && self.drop_usage_chunk {
                return Vec::new();
            }
        }
        let mut frame = String::with_capacity(event.data.len() + 16);
        if let Some(name) = &event.event {
            frame.push_str("event: ");
            frame.push_str(name);
            frame.push('\n');
        }
        for line in event.data.split('\n') {
            frame.push_str("data: ");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push('\n');
        vec![StreamItem::Raw(Bytes::from(frame))]
    }

    /// The upstream closed: whatever it sent is all there is (its `[DONE]` came as an event).
    fn finish(&mut self) -> Vec<StreamItem> {
        Vec::new()
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(include_usage: bool) -> ChatContext {
        ChatContext { id: "chatcmpl-x".into(), model: "gpt-4o".into(), created: 1, include_usage }
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent { event: None, data: data.into() }
    }

    #[test]
    fn asks_for_usage_only_where_needed() {
        let dialect = OpenAiFormat { asks_stream_usage: true };
        let body = serde_json::json!({"model": "openai/gpt-4o", "messages": [], "stream": true});
        let p = dialect.chat_request(body.clone(), "gpt-4o", &ctx(false), true).expect("prepared");
        assert_eq!(p.body["model"], "gpt-4o");
        assert_eq!(p.body["stream_options"]["include_usage"], true);
        let p = OpenAiFormat { asks_stream_usage: false }.chat_request(body, "m", &ctx(false), true).expect("ok");
        assert!(p.body.get("stream_options").is_none());
    }

    #[test]
    fn the_pipe_drops_only_the_usage_chunk_it_asked_for() {
        let usage_chunk = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let mut pipe = OpenAiFormat { asks_stream_usage: true }.chat_stream(ctx(false));
        assert!(pipe.on_event(&ev(usage_chunk)).is_empty());
        assert_eq!(pipe.usage().map(|u| u.prompt_tokens), Some(3));
        let mut pipe = OpenAiFormat { asks_stream_usage: true }.chat_stream(ctx(true));
        assert_eq!(pipe.on_event(&ev(usage_chunk)).len(), 1);
        assert_eq!(pipe.on_event(&ev("[DONE]")), vec![StreamItem::Done]);
        let err = pipe.on_event(&ev(r#"{"error":{"message":"m"}}"#));
        assert!(matches!(&err[..], [StreamItem::Error(_)]));
    }

    #[test]
    fn usage_with_openrouter_cost_and_cache_writes() {
        let chunk = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":194,"completion_tokens":2,"cost":0.95,
            "prompt_tokens_details":{"cached_tokens":10,"cache_write_tokens":100},
            "completion_tokens_details":{"reasoning_tokens":1}}}"#;
        let mut pipe = OpenAiFormat { asks_stream_usage: true }.chat_stream(ctx(true));
        pipe.on_event(&ev(chunk));
        let u = pipe.usage().expect("usage");
        assert_eq!((u.prompt_tokens, u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens), (194, 10, 100, 1));
        assert_eq!(u.cost_nanos, Some(950_000_000));
        // No cost, or one that is not a sane amount: none.
        for cost in ["", r#","cost":-1"#, r#","cost":"0.1""#] {
            let body = format!(r#"{{"usage":{{"prompt_tokens":1{cost}}}}}"#);
            assert_eq!(usage_of(body.as_bytes()).map(|u| u.cost_nanos), Some(None), "{body}");
        }
    }

    #[test]
    fn key_verdicts_from_documented_error_bodies() {
        let bad_key = br#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(openai_key_verdict(401, bad_key), Some(KeyStatus::Invalid));
        let region = br#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;
        assert_eq!(openai_key_verdict(403, region), Some(KeyStatus::Invalid));
        let quota = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(openai_key_verdict(429, quota), Some(KeyStatus::QuotaExhausted));
        let credits = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"credit_balance_exhausted"}}"#;
        assert_eq!(openai_key_verdict(429, credits), Some(KeyStatus::QuotaExhausted));
        let rate = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(openai_key_verdict(429, rate), None);
        let openrouter = br#"{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}}"#;
        assert_eq!(openai_key_verdict(402, openrouter), Some(KeyStatus::QuotaExhausted));
        assert_eq!(openai_key_verdict(400, br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#), None);
        assert_eq!(openai_key_verdict(500, b"oops"), None);
        assert_eq!(openai_key_verdict(401, b"not json"), Some(KeyStatus::Invalid));
    }

    #[test]
    fn error_bodies_of_any_shape() {
        let e = openai_error(429, br#"{"error":{"message":"slow down","type":"rate_limit_error","code":42}}"#);
        assert_eq!(
            (e.message.as_str(), e.kind.as_str(), e.code.as_deref()),
            ("slow down", "rate_limit_error", Some("42"))
        );
        let e = openai_error(502, b"Bad Gateway");
        assert_eq!((e.kind.as_str(), e.code), ("api_error", None));
        let e = openai_error(401, br#"{"error":"no key"}"#);
        assert_eq!((e.message.as_str(), e.kind.as_str()), ("no key", "authentication_error"));
    }
}
