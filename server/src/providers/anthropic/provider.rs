//! Anthropic as a provider: keys `sk-ant-…` in `x-api-key`, the Messages API, and its dialect:
//! the translator (the sibling modules) behind the unified API. No embeddings API.

use serde_json::Value;

use crate::providers::unified::EndsWithDone;
use crate::providers::{Auth, KeyFormat, Listed, Provider, ProviderId, Translated};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::Anthropic,
    name: "anthropic",
    base_url: Some("https://api.anthropic.com"),
    auth: Auth::Header { name: "x-api-key", fixed: &[("anthropic-version", "2023-06-01")] },
    key: KeyFormat {
        check: |k| k.starts_with("sk-ant-") && k.len() >= 20,
        shape: "Anthropic keys start with \"sk-ant-\"",
        prefixes: &["sk-ant-"],
        any_visible_ascii: false,
    },
    key_check_path: "/v1/models",
    models: &["claude-*"],
    passthrough_paths: &["/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/v1/models/*"],
    dialect: &Translated {
        chat_request: super::chat_request,
        chat_response: super::chat_response,
        chat_usage: super::chat_usage,
        chat_stream: |ctx| Box::new(EndsWithDone::new(super::chat_stream(ctx))),
        embeddings: None,
        upstream_error: super::upstream_error,
        key_verdict: super::key_verdict,
        retry_after_in_body: |_| None,
        models_path: "/v1/models?limit=1000",
        parse_models,
    },
};

/// `{"data": [{"id", "created_at": RFC 3339}]}`.
fn parse_models(body: &Value) -> Vec<Listed> {
    let created = |m: &Value| {
        m["created_at"].as_str().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()).map_or(0, |c| c.timestamp())
    };
    body["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(|id| (id.to_owned(), created(m)))).collect())
        .unwrap_or_default()
}
