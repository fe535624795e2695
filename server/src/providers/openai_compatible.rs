//! `openai-compatible`: any server that speaks OpenAI's API (a LAN Ollama, vLLM, a hosted one).
//! Each key carries its server's base URL (which names the API version); paths are below it.

use super::openai_format::OpenAiFormat;
use super::{Auth, KeyFormat, Provider, ProviderId};

pub static PROVIDER: Provider = Provider {
    id: ProviderId::OpenAiCompatible,
    name: "openai-compatible",
    base_url: None,
    auth: Auth::Bearer,
    key: KeyFormat {
        check: |_| true,
        shape: "use the API key your server expects",
        prefixes: &[],
        any_visible_ascii: true,
    },
    key_check_path: "/models",
    models: &[],
    passthrough_paths: &["/chat/completions", "/completions", "/embeddings", "/models", "/responses"],
    dialect: &OpenAiFormat { asks_stream_usage: false },
};
