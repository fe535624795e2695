//! Anthropic as a provider: keys `sk-ant-…` in `x-api-key`, the Messages API, and the dialect
//! that puts the translator (the sibling modules) behind the unified API.

use bytes::Bytes;
use serde_json::Value;

use crate::providers::dialect::{translate_json, Dialect, Listed, ResponseError};
use crate::providers::unified::{
    ChatContext, EndsWithDone, Prepared, StreamTranslator, TranslateError, UpstreamError, Usage,
};
use crate::providers::{Auth, KeyFormat, Provider, ProviderId};

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
    embeddings: false,
    dialect: &AnthropicDialect,
};

struct AnthropicDialect;

impl Dialect for AnthropicDialect {
    fn chat_request(&self, body: Value, model: &str, _: &ChatContext, _: bool) -> Result<Prepared, TranslateError> {
        super::chat_request(&body, model)
    }

    fn chat_response(&self, body: Bytes, ctx: &ChatContext) -> Result<(Bytes, Option<Usage>), ResponseError> {
        translate_json(&body, |v| super::chat_response(v, ctx))
    }

    fn chat_stream(&self, ctx: ChatContext) -> Box<dyn StreamTranslator> {
        Box::new(EndsWithDone::new(super::chat_stream(ctx)))
    }

    fn embeddings_request(&self, _: &Value, _: &str) -> Result<Prepared, TranslateError> {
        Err(TranslateError::new("Anthropic has no embeddings API.", Some("model")))
    }

    fn embeddings_response(&self, _: Bytes, _: &Value) -> Result<(Bytes, Option<Usage>), ResponseError> {
        Err(ResponseError::Unreadable("Anthropic has no embeddings API".into()))
    }

    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError {
        super::upstream_error(status, body)
    }

    fn models_path(&self) -> &'static str {
        "/v1/models?limit=1000"
    }

    fn parse_models(&self, body: &Value) -> Vec<Listed> {
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let created = m["created_at"]
                            .as_str()
                            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                            .map(|c| c.timestamp())
                            .unwrap_or(0);
                        m["id"].as_str().map(|id| (id.to_owned(), created))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
