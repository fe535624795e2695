//! Google (Gemini) as a provider: keys `AIza…` in `x-goog-api-key`, the Generative Language
//! API, and the dialect that puts the translator (the sibling modules) behind the unified API.

use bytes::Bytes;
use serde_json::Value;

use crate::providers::dialect::{translate_json, Dialect, Listed, ResponseError};
use crate::providers::unified::{
    ChatContext, EndsWithDone, Prepared, StreamTranslator, TranslateError, UpstreamError, Usage,
};
use crate::providers::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::Google,
    name: "google",
    base_url: Some("https://generativelanguage.googleapis.com"),
    auth: Auth::Header { name: "x-goog-api-key", fixed: &[] },
    key: KeyFormat {
        check: |k| k.starts_with("AIza") && k.len() == 39,
        shape: "Google AI Studio keys start with \"AIza\" and are 39 characters long",
        prefixes: &["AIza"],
        any_visible_ascii: false,
    },
    key_check_path: "/v1beta/models?pageSize=1",
    models: &["gemini-*", "text-embedding-004"],
    passthrough_paths: &["/v1beta/models", "/v1beta/models/*", "/v1/models", "/v1/models/*"],
    embeddings: true,
    dialect: &GeminiDialect,
};

struct GeminiDialect;

impl Dialect for GeminiDialect {
    fn chat_request(&self, body: Value, model: &str, _: &ChatContext, _: bool) -> Result<Prepared, TranslateError> {
        super::chat_request(&body, model)
    }

    fn chat_response(&self, body: Bytes, ctx: &ChatContext) -> Result<(Bytes, Option<Usage>), ResponseError> {
        translate_json(&body, |v| super::chat_response(v, ctx))
    }

    fn chat_stream(&self, ctx: ChatContext) -> Box<dyn StreamTranslator> {
        Box::new(EndsWithDone::new(super::chat_stream(ctx)))
    }

    fn embeddings_request(&self, body: &Value, model: &str) -> Result<Prepared, TranslateError> {
        super::embeddings_request(body, model)
    }

    fn embeddings_response(&self, body: Bytes, request: &Value) -> Result<(Bytes, Option<Usage>), ResponseError> {
        translate_json(&body, |v| super::embeddings_response(v, request))
    }

    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError {
        super::upstream_error(status, body)
    }

    fn retry_after_in_body(&self, body: &[u8]) -> Option<u64> {
        super::retry_after_seconds(body)
    }

    fn models_path(&self) -> &'static str {
        "/v1beta/models?pageSize=1000"
    }

    fn parse_models(&self, body: &Value) -> Vec<Listed> {
        body["models"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|n| (n.trim_start_matches("models/").to_owned(), 0))
                    .collect()
            })
            .unwrap_or_default()
    }
}
