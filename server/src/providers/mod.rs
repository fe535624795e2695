//! The providers Relay can hold keys for. Each has one definition (`Provider`) in its own file:
//! where its API is, how its keys look and are sent, which paths pass, and which dialect it speaks.
//!
//! Adding a provider: a file (or folder) with its `Provider` value, a `ProviderId` variant, and
//! its line in `ProviderId::def`. Nothing outside this module matches on a provider.

pub mod anthropic;
mod dialect;
pub mod google;
mod groq;
pub mod messages;
mod mistral;
mod openai;
mod openai_compatible;
pub mod openai_format;
mod openrouter;
pub mod responses;
pub mod routing;
pub mod unified;

use std::fmt;
use std::str::FromStr;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use dialect::{Dialect, Embeddings, Listed, ResponseError, Translated};

/// A provider Relay holds keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    OpenAi,
    Anthropic,
    Google,
    Groq,
    Mistral,
    OpenRouter,
    /// Any server that speaks OpenAI's API (a LAN Ollama, vLLM, Together, …). Its base URL is
    /// chosen when the key is stored, sealed with it, and checked by the SSRF policy.
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
}

/// Everything Relay knows about one provider.
pub struct Provider {
    pub id: ProviderId,
    /// The name in URLs, JSON and messages: `openai`, `openai-compatible`.
    pub name: &'static str,
    /// The public API root; `RELAY_UPSTREAM_<PROVIDER>` replaces it. `None`: every key carries
    /// its own (`openai-compatible`).
    pub base_url: Option<&'static str>,
    pub auth: Auth,
    pub key: KeyFormat,
    /// The cheapest authenticated GET that fails for a bad key, below the base URL.
    pub key_check_path: &'static str,
    /// Model names this provider serves without a `provider/` prefix: `gpt-*` (a prefix) or an
    /// exact name. Exact names win over prefixes, longer prefixes over shorter.
    pub models: &'static [&'static str],
    /// Paths the raw passthrough may reach below the base URL; `/*` at the end stands for one
    /// or more further segments.
    pub passthrough_paths: &'static [&'static str],
    /// How its API is spoken: OpenAI's format, or a translator.
    pub dialect: &'static dyn Dialect,
}

/// How a key travels to the provider: always a header, never a URL.
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of `name`, plus fixed headers the API requires.
    Header { name: &'static str, fixed: &'static [(&'static str, &'static str)] },
}

/// What a provider's keys look like.
pub struct KeyFormat {
    /// Checks the shape (the length and character set are checked before).
    pub check: fn(&str) -> bool,
    /// Said when the shape is wrong, and shown as the widget's hint.
    pub shape: &'static str,
    /// Public prefixes, longest first: the fingerprint keeps one, and text shaped like a key
    /// with one of them is masked in provider messages.
    pub prefixes: &'static [&'static str],
    /// Self-hosted servers choose their own formats: any visible ASCII instead of `[A-Za-z0-9_-]`.
    pub any_visible_ascii: bool,
}

impl ProviderId {
    pub const ALL: [ProviderId; 6] = [
        ProviderId::OpenAi,
        ProviderId::Anthropic,
        ProviderId::Google,
        ProviderId::Groq,
        ProviderId::Mistral,
        ProviderId::OpenRouter,
    ];

    /// Every provider a key can be stored for: the built-in ones and `openai-compatible`.
    pub const STORABLE: [ProviderId; 7] = [
        ProviderId::OpenAi,
        ProviderId::Anthropic,
        ProviderId::Google,
        ProviderId::Groq,
        ProviderId::Mistral,
        ProviderId::OpenRouter,
        ProviderId::OpenAiCompatible,
    ];

    /// The registry: each provider's one definition.
    pub fn def(self) -> &'static Provider {
        match self {
            ProviderId::OpenAi => &openai::PROVIDER,
            ProviderId::Anthropic => &anthropic::PROVIDER,
            ProviderId::Google => &google::PROVIDER,
            ProviderId::Groq => &groq::PROVIDER,
            ProviderId::Mistral => &mistral::PROVIDER,
            ProviderId::OpenRouter => &openrouter::PROVIDER,
            ProviderId::OpenAiCompatible => &openai_compatible::PROVIDER,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.def().name
    }

    /// The public API root (empty for `openai-compatible`, whose keys carry their own).
    pub fn default_base_url(self) -> &'static str {
        self.def().base_url.unwrap_or("")
    }

    pub fn env_var(self) -> String {
        format!("RELAY_UPSTREAM_{}", self.as_str().to_ascii_uppercase())
    }

    /// Headers that carry the key the way this provider wants it, marked sensitive. Never a URL
    /// parameter.
    pub fn auth_headers(self, key: &SecretString) -> Result<HeaderMap, KeyFormatError> {
        let mut headers = HeaderMap::new();
        let sensitive = |v: &str| {
            let mut v = HeaderValue::from_str(v).map_err(|_| KeyFormatError::Charset)?;
            v.set_sensitive(true);
            Ok::<_, KeyFormatError>(v)
        };
        match &self.def().auth {
            Auth::Bearer => {
                // Built in a buffer that is wiped when dropped, not in a `format!` left behind.
                let mut value = Zeroizing::new(String::with_capacity(7 + key.expose_secret().len()));
                value.push_str("Bearer ");
                value.push_str(key.expose_secret());
                headers.insert(reqwest::header::AUTHORIZATION, sensitive(&value)?);
            }
            Auth::Header { name, fixed } => {
                headers.insert(HeaderName::from_static(name), sensitive(key.expose_secret())?);
                for (name, value) in *fixed {
                    headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
                }
            }
        }
        Ok(headers)
    }

    /// Checks that `key` looks like one of this provider's keys. The error never quotes the key.
    pub fn check_key_format(self, key: &str) -> Result<(), KeyFormatError> {
        if key.is_empty() {
            return Err(KeyFormatError::Empty);
        }
        if key.len() > 512 {
            return Err(KeyFormatError::Length);
        }
        let format = &self.def().key;
        let charset_ok = if format.any_visible_ascii {
            key.bytes().all(|b| b.is_ascii_graphic())
        } else {
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !charset_ok {
            return Err(KeyFormatError::Charset);
        }
        if (format.check)(key) {
            Ok(())
        } else {
            Err(KeyFormatError::Shape(format.shape))
        }
    }

    /// What a key of this provider looks like, for error messages and the widget's hint.
    pub fn key_shape(self) -> &'static str {
        self.def().key.shape
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown provider")]
pub struct UnknownProvider;

impl FromStr for ProviderId {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::STORABLE.into_iter().find(|p| p.as_str() == s).ok_or(UnknownProvider)
    }
}

pub fn accepted_providers() -> String {
    ProviderId::STORABLE.map(ProviderId::as_str).join(", ")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFormatError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than 512 characters")]
    Length,
    #[error("the key contains characters that API keys do not have (spaces, quotes or line breaks inside it?)")]
    Charset,
    #[error("the key does not look like this provider's keys: {0}")]
    Shape(&'static str),
}

/// A short, non-secret hint that lets a person recognise a stored key: `sk-ant-…Wx9Z`.
/// Only a known public prefix and the last four characters, never enough to use the key.
pub fn fingerprint(provider: ProviderId, key: &str) -> String {
    let prefix = provider.def().key.prefixes.iter().find(|p| key.starts_with(**p)).copied().unwrap_or("");
    let tail_start = key.len().saturating_sub(4).max(prefix.len());
    format!("{prefix}…{}", key.get(tail_start..).unwrap_or(""))
}

/// Every public key prefix of every provider, longest first (for masking key-shaped text).
pub fn key_prefixes() -> Vec<&'static str> {
    let mut all: Vec<&'static str> =
        ProviderId::STORABLE.iter().flat_map(|p| p.def().key.prefixes.iter().copied()).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    all.dedup();
    all
}

/// Whether `path` (decoded and normalised) may be reached through the raw passthrough.
pub fn passthrough_allowed(provider: ProviderId, path: &str) -> bool {
    provider.def().passthrough_paths.iter().any(|pattern| match pattern.strip_suffix("/*") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
        None => path == *pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for p in ProviderId::STORABLE {
            assert_eq!(p.as_str().parse::<ProviderId>(), Ok(p));
            assert_eq!(p.def().id, p, "{p}: the registry points at the right definition");
        }
        assert!("OpenAI".parse::<ProviderId>().is_err());
        assert!("".parse::<ProviderId>().is_err());
    }

    #[test]
    fn key_formats() {
        let fake = |prefix: &str, n: usize| format!("{prefix}{}", "x".repeat(n));
        assert!(ProviderId::OpenAi.check_key_format(&fake("sk-proj-", 40)).is_ok());
        assert!(ProviderId::OpenAi.check_key_format(&fake("sk-ant-", 40)).is_err());
        assert!(ProviderId::Anthropic.check_key_format(&fake("sk-ant-api03-", 40)).is_ok());
        assert!(ProviderId::Google.check_key_format(&fake("AIza", 35)).is_ok());
        assert!(ProviderId::Google.check_key_format(&fake("AIza", 34)).is_err());
        assert!(ProviderId::Groq.check_key_format(&fake("gsk_", 52)).is_ok());
        assert!(ProviderId::Mistral.check_key_format(&"a1".repeat(16)).is_ok());
        assert!(ProviderId::Mistral.check_key_format(&"a1".repeat(15)).is_err());
        assert!(ProviderId::OpenRouter.check_key_format(&fake("sk-or-v1-", 64)).is_ok());
        assert!(ProviderId::OpenAiCompatible.check_key_format("any~visible!ascii").is_ok());
        assert_eq!(ProviderId::OpenAiCompatible.check_key_format("has space"), Err(KeyFormatError::Charset));
        assert_eq!(ProviderId::OpenAi.check_key_format(""), Err(KeyFormatError::Empty));
        assert_eq!(ProviderId::OpenAi.check_key_format("sk-abc def ghi jkl mno"), Err(KeyFormatError::Charset));
        assert_eq!(ProviderId::OpenAi.check_key_format(&fake("sk-", 600)), Err(KeyFormatError::Length));
    }

    #[test]
    fn fingerprints_show_only_prefix_and_last_four() {
        let key = format!("sk-ant-api03-{}WXYZ", "q".repeat(40));
        assert_eq!(fingerprint(ProviderId::Anthropic, &key), "sk-ant-…WXYZ");
        assert_eq!(fingerprint(ProviderId::Mistral, &"a".repeat(32)), "…aaaa");
        assert_eq!(fingerprint(ProviderId::OpenAi, "sk-ab"), "sk-…ab");
        assert_eq!(fingerprint(ProviderId::OpenAi, &format!("sk-proj-{}1234", "z".repeat(40))), "sk-proj-…1234");
    }

    #[test]
    fn auth_headers_are_sensitive_and_never_in_the_url() {
        let key = SecretString::from("AIza-test".to_owned());
        let h = ProviderId::Google.auth_headers(&key).expect("headers");
        let v = h.get("x-goog-api-key").expect("google header");
        assert!(v.is_sensitive());
        let h = ProviderId::OpenAi.auth_headers(&key).expect("headers");
        assert!(h.get("authorization").is_some_and(HeaderValue::is_sensitive));
        assert_eq!(h.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer AIza-test"));
        let h = ProviderId::Anthropic.auth_headers(&key).expect("headers");
        assert!(h.get("x-api-key").is_some_and(HeaderValue::is_sensitive));
        assert!(h.get("anthropic-version").is_some());
    }

    #[test]
    fn passthrough_allowlists() {
        assert!(passthrough_allowed(ProviderId::OpenAi, "/v1/chat/completions"));
        assert!(passthrough_allowed(ProviderId::OpenAi, "/v1/responses/resp_123"));
        assert!(!passthrough_allowed(ProviderId::OpenAi, "/v1/responses/"));
        assert!(!passthrough_allowed(ProviderId::OpenAi, "/v1/organization/users"));
        assert!(!passthrough_allowed(ProviderId::OpenAi, "/v1/chat/completionsX"));
        assert!(passthrough_allowed(ProviderId::Anthropic, "/v1/messages"));
        assert!(!passthrough_allowed(ProviderId::Anthropic, "/v1/chat/completions"));
        assert!(passthrough_allowed(ProviderId::Google, "/v1beta/models/gemini-2.5-flash:generateContent"));
        assert!(!passthrough_allowed(ProviderId::Google, "/v1beta/files"));
        assert!(passthrough_allowed(ProviderId::OpenAiCompatible, "/chat/completions"));
    }

    #[test]
    fn prefixes_are_longest_first() {
        let all = key_prefixes();
        assert!(all.windows(2).all(|w| w[0].len() >= w[1].len()));
        assert!(all.contains(&"sk-ant-") && all.contains(&"AIza") && all.contains(&"gsk_"));
    }
}
