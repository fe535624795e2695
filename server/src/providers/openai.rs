//! OpenAI: keys `sk-…` (`sk-proj-…`), Bearer auth, OpenAI's own format (the unified API's shape).
//! It reports stream usage only when asked.

use super::openai_format::OpenAiFormat;
use super::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::OpenAi,
    name: "openai",
    base_url: Some("https://api.openai.com"),
    auth: Auth::Bearer,
    key: KeyFormat {
        check: |k| k.starts_with("sk-") && !k.starts_with("sk-ant-") && !k.starts_with("sk-or-") && k.len() >= 20,
        shape: "OpenAI keys start with \"sk-\" (for example sk-proj-…)",
        prefixes: &["sk-svcacct-", "sk-admin-", "sk-proj-", "sk-"],
        any_visible_ascii: false,
    },
    key_check_path: "/v1/models",
    models: &["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*"],
    passthrough_paths: &[
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/responses/*",
        "/v1/models",
        "/v1/models/*",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/audio/speech",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
    ],
    dialect: &OpenAiFormat { asks_stream_usage: true },
};
