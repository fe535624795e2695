//! OpenRouter: keys `sk-or-…`, Bearer auth, OpenAI's format below `/api`. Its models are
//! reached as `openrouter/<vendor>/<model>`. Every answer's usage (a stream's last chunk) carries
//! the call's cost, `usage.cost` in USD, unasked (`usage: {include: true}` is deprecated and has no
//! effect); Relay records it as the call's cost. Relay still asks for stream usage the OpenAI way
//! (`stream_options.include_usage`, deprecated there and harmless), in case usage is ever
//! withheld again without it.

use super::openai_format::OpenAiFormat;
use super::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::OpenRouter,
    name: "openrouter",
    base_url: Some("https://openrouter.ai/api"),
    auth: Auth::Bearer,
    key: KeyFormat {
        check: |k| k.starts_with("sk-or-") && k.len() >= 20,
        shape: "OpenRouter keys start with \"sk-or-\"",
        prefixes: &["sk-or-v1-", "sk-or-"],
        any_visible_ascii: false,
    },
    // OpenRouter lists models without a key; this endpoint needs a valid one.
    key_check_path: "/v1/key",
    models: &[],
    passthrough_paths: &["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/key"],
    dialect: &OpenAiFormat { asks_stream_usage: true },
};
