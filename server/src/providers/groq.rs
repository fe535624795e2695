//! Groq: keys `gsk_…`, Bearer auth, OpenAI's format below `/openai` (stream usage comes
//! unasked, in `x_groq.usage`). Its models are reached as `groq/<model>`.

use super::openai_format::OpenAiFormat;
use super::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::Groq,
    name: "groq",
    base_url: Some("https://api.groq.com/openai"),
    auth: Auth::Bearer,
    key: KeyFormat {
        check: |k| k.starts_with("gsk_") && k.len() >= 20,
        shape: "Groq keys start with \"gsk_\"",
        prefixes: &["gsk_"],
        any_visible_ascii: false,
    },
    key_check_path: "/v1/models",
    models: &[],
    passthrough_paths: &[
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/models/*",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
    ],
    dialect: &OpenAiFormat { asks_stream_usage: false },
};
