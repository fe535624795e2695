//! Google (Gemini) as a provider: keys `AIza…` in `x-goog-api-key`, the Generative Language
//! API, and its dialect: the translator (the sibling modules) behind the unified API.

use serde_json::Value;

use crate::providers::unified::EndsWithDone;
use crate::providers::{Auth, Embeddings, KeyFormat, Listed, Provider, ProviderId, Translated};

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
    dialect: &Translated {
        chat_request: super::chat_request,
        chat_response: super::chat_response,
        chat_usage: super::chat_usage,
        chat_stream: |ctx| Box::new(EndsWithDone::new(super::chat_stream(ctx))),
        embeddings: Some(Embeddings { request: super::embeddings_request, response: super::embeddings_response }),
        upstream_error: super::upstream_error,
        key_verdict: super::key_verdict,
        // Google says when to retry only inside its error body.
        retry_after_in_body: super::retry_after_seconds,
        models_path: "/v1beta/models?pageSize=1000",
        parse_models,
    },
};

/// `{"models": [{"name": "models/<id>"}]}` (no creation time).
fn parse_models(body: &Value) -> Vec<Listed> {
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
