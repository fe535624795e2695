//! Mistral: keys of 32 letters and digits (no prefix), Bearer auth, OpenAI's format (stream
//! usage comes unasked).

use super::openai_format::OpenAiFormat;
use super::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::Mistral,
    name: "mistral",
    base_url: Some("https://api.mistral.ai"),
    auth: Auth::Bearer,
    key: KeyFormat {
        check: |k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_alphanumeric()),
        shape: "Mistral keys are 32 letters and digits",
        prefixes: &[],
        any_visible_ascii: false,
    },
    key_check_path: "/v1/models",
    models: &["mistral-*", "codestral-*", "magistral-*"],
    passthrough_paths: &[
        "/v1/chat/completions",
        "/v1/fim/completions",
        "/v1/embeddings",
        "/v1/moderations",
        "/v1/models",
        "/v1/models/*",
    ],
    dialect: &OpenAiFormat { asks_stream_usage: false },
};
