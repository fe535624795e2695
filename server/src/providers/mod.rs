//! The providers Relay can hold keys for: their ids, key formats, where their APIs live and how a
//! key is presented to them. Translation of the unified API lives in one file per provider.

pub mod anthropic;
pub mod google;
pub mod routing;
pub mod unified;
mod verify;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use verify::{KeyCheck, KeyCheckError};

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

impl ProviderId {
    pub const ALL: [ProviderId; 6] = [
        ProviderId::OpenAi,
        ProviderId::Anthropic,
        ProviderId::Google,
        ProviderId::Groq,
        ProviderId::Mistral,
        ProviderId::OpenRouter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::OpenAi => "openai",
            ProviderId::Anthropic => "anthropic",
            ProviderId::Google => "google",
            ProviderId::Groq => "groq",
            ProviderId::Mistral => "mistral",
            ProviderId::OpenRouter => "openrouter",
            ProviderId::OpenAiCompatible => "openai-compatible",
        }
    }

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

    /// The public API root; `RELAY_UPSTREAM_<PROVIDER>` replaces it.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderId::OpenAi => "https://api.openai.com",
            ProviderId::Anthropic => "https://api.anthropic.com",
            ProviderId::Google => "https://generativelanguage.googleapis.com",
            ProviderId::Groq => "https://api.groq.com/openai",
            ProviderId::Mistral => "https://api.mistral.ai",
            ProviderId::OpenRouter => "https://openrouter.ai/api",
            // Never used: each key carries its own base URL.
            ProviderId::OpenAiCompatible => "",
        }
    }

    pub fn env_var(self) -> String {
        format!("RELAY_UPSTREAM_{}", self.as_str().to_ascii_uppercase())
    }

    /// Headers that carry the key the way this provider wants it. Never a URL parameter.
    pub fn auth_headers(self, key: &SecretString) -> Result<HeaderMap, KeyFormatError> {
        let mut headers = HeaderMap::new();
        let sensitive = |v: String| {
            let mut v = HeaderValue::from_str(&v).map_err(|_| KeyFormatError::Charset)?;
            v.set_sensitive(true);
            Ok::<_, KeyFormatError>(v)
        };
        match self {
            ProviderId::Anthropic => {
                headers.insert(HeaderName::from_static("x-api-key"), sensitive(key.expose_secret().to_owned())?);
                headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static("2023-06-01"));
            }
            ProviderId::Google => {
                headers.insert(HeaderName::from_static("x-goog-api-key"), sensitive(key.expose_secret().to_owned())?);
            }
            _ => {
                headers.insert(reqwest::header::AUTHORIZATION, sensitive(format!("Bearer {}", key.expose_secret()))?);
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
        let token_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // Self-hosted servers choose their own key formats: any visible ASCII will do.
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        let charset_ok = if self == ProviderId::OpenAiCompatible { visible(key) } else { token_chars(key) };
        if !charset_ok {
            return Err(KeyFormatError::Charset);
        }
        let ok = match self {
            ProviderId::OpenAi => {
                key.starts_with("sk-") && !key.starts_with("sk-ant-") && !key.starts_with("sk-or-") && key.len() >= 20
            }
            ProviderId::Anthropic => key.starts_with("sk-ant-") && key.len() >= 20,
            ProviderId::Google => key.starts_with("AIza") && key.len() == 39,
            ProviderId::Groq => key.starts_with("gsk_") && key.len() >= 20,
            ProviderId::Mistral => key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()),
            ProviderId::OpenRouter => key.starts_with("sk-or-") && key.len() >= 20,
            ProviderId::OpenAiCompatible => true,
        };
        if ok {
            Ok(())
        } else {
            Err(KeyFormatError::Shape(self.key_shape()))
        }
    }

    /// What a key of this provider looks like, for error messages and the widget's hint.
    pub fn key_shape(self) -> &'static str {
        match self {
            ProviderId::OpenAi => "OpenAI keys start with \"sk-\" (for example sk-proj-…)",
            ProviderId::Anthropic => "Anthropic keys start with \"sk-ant-\"",
            ProviderId::Google => "Google AI Studio keys start with \"AIza\" and are 39 characters long",
            ProviderId::Groq => "Groq keys start with \"gsk_\"",
            ProviderId::Mistral => "Mistral keys are 32 letters and digits",
            ProviderId::OpenRouter => "OpenRouter keys start with \"sk-or-\"",
            ProviderId::OpenAiCompatible => "use the API key your server expects",
        }
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
    let prefixes: &[&str] = match provider {
        ProviderId::OpenAi => &["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"],
        ProviderId::Anthropic => &["sk-ant-"],
        ProviderId::Google => &["AIza"],
        ProviderId::Groq => &["gsk_"],
        ProviderId::Mistral => &[],
        ProviderId::OpenRouter => &["sk-or-v1-", "sk-or-"],
        ProviderId::OpenAiCompatible => &[],
    };
    let prefix = prefixes.iter().find(|p| key.starts_with(**p)).copied().unwrap_or("");
    let tail_start = key.len().saturating_sub(4).max(prefix.len());
    format!("{prefix}…{}", key.get(tail_start..).unwrap_or(""))
}

/// Masks anything shaped like a provider key in text that came from a provider (error
/// messages), keeping only its public prefix: `sk-proj-…`. Defence in depth: keys travel in
/// headers, which providers do not echo, but a message must never carry one to a client.
pub fn redact_key_like(text: &str) -> String {
    const PREFIXES: [&str; 7] = ["sk-ant-", "sk-or-", "sk-proj-", "sk-", "AIza", "gsk_", "rly-"];
    let is_token = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_token(c)) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_token(c)).unwrap_or(tail.len());
        let token = &tail[..end];
        match PREFIXES.iter().find(|p| token.starts_with(**p)) {
            Some(prefix) if token.len() >= 20 => {
                out.push_str(prefix);
                out.push('…');
            }
            _ => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Where each provider's API is, and the one HTTP client Relay uses to call them.
#[derive(Clone)]
pub struct Upstreams {
    base_urls: HashMap<ProviderId, String>,
    client: reqwest::Client,
    timeouts: UpstreamTimeouts,
    /// For `openai-compatible` base URLs: checked by the policy at store time and at every
    /// connection (the client's resolver), no redirects, no proxy.
    policy: std::sync::Arc<crate::ssrf::UpstreamPolicy>,
    guarded: reqwest::Client,
}

/// How long Relay waits on a provider. None of them caps a healthy long stream: `idle` is the
/// longest gap between two chunks, not a total.
#[derive(Debug, Clone)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub key_check: Duration,
    /// Until the response headers (for non-streaming calls, the whole answer).
    pub first_byte: Duration,
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            key_check: Duration::from_secs(15),
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(120),
        }
    }
}

impl Upstreams {
    pub fn new(overrides: &HashMap<ProviderId, String>, timeouts: &UpstreamTimeouts) -> Result<Self, reqwest::Error> {
        let base_urls = ProviderId::ALL
            .into_iter()
            .map(|p| {
                let url = overrides.get(&p).map(String::as_str).unwrap_or(p.default_base_url());
                (p, url.trim_end_matches('/').to_owned())
            })
            .collect();
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let policy = std::sync::Arc::new(crate::ssrf::UpstreamPolicy::new(Vec::new(), false));
        let guarded =
            crate::ssrf::client(policy.clone(), std::sync::Arc::new(crate::ssrf::SystemLookup), timeouts.connect)?;
        Ok(Self { base_urls, client, timeouts: timeouts.clone(), policy, guarded })
    }

    /// Replaces the SSRF policy (from `RELAY_ALLOW_UPSTREAM_HOSTS` / `RELAY_ALLOW_PRIVATE_UPSTREAMS`).
    pub fn with_policy(mut self, policy: crate::ssrf::UpstreamPolicy) -> Result<Self, reqwest::Error> {
        let policy = std::sync::Arc::new(policy);
        self.guarded =
            crate::ssrf::client(policy.clone(), std::sync::Arc::new(crate::ssrf::SystemLookup), self.timeouts.connect)?;
        self.policy = policy;
        Ok(self)
    }

    /// Checks an `openai-compatible` base URL against the SSRF policy (no DNS; the guarded
    /// client checks every resolved address when it connects).
    pub fn check_base_url(&self, raw: &str) -> Result<crate::ssrf::CheckedUrl, crate::ssrf::SsrfError> {
        crate::ssrf::check_base_url(&self.policy, raw)
    }

    /// The client for `openai-compatible` upstreams.
    pub fn guarded_client(&self) -> &reqwest::Client {
        &self.guarded
    }

    pub fn base_url(&self, provider: ProviderId) -> &str {
        self.base_urls.get(&provider).map(String::as_str).unwrap_or(provider.default_base_url())
    }

    pub fn timeouts(&self) -> &UpstreamTimeouts {
        &self.timeouts
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for p in ProviderId::ALL {
            assert_eq!(p.as_str().parse::<ProviderId>(), Ok(p));
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
    }

    #[test]
    fn key_like_tokens_are_masked() {
        let key = format!("sk-proj-{}", "A1b2".repeat(10));
        let msg = format!("Incorrect API key provided: {key}. You can find your key at https://example.com/keys.");
        let masked = redact_key_like(&msg);
        assert!(!masked.contains(&key));
        assert_eq!(masked, "Incorrect API key provided: sk-proj-…. You can find your key at https://example.com/keys.");
        let g = format!("key=AIza{}&x", "x".repeat(35));
        assert_eq!(redact_key_like(&g), "key=AIza…&x");
        assert_eq!(redact_key_like("task-runner sk-short 한글 ok"), "task-runner sk-short 한글 ok");
    }

    #[test]
    fn auth_headers_are_sensitive_and_never_in_the_url() {
        let key = SecretString::from("AIza-test".to_owned());
        let h = ProviderId::Google.auth_headers(&key).expect("headers");
        let v = h.get("x-goog-api-key").expect("google header");
        assert!(v.is_sensitive());
        let h = ProviderId::OpenAi.auth_headers(&key).expect("headers");
        assert!(h.get("authorization").is_some_and(HeaderValue::is_sensitive));
        let h = ProviderId::Anthropic.auth_headers(&key).expect("headers");
        assert!(h.get("x-api-key").is_some_and(HeaderValue::is_sensitive));
        assert!(h.get("anthropic-version").is_some());
    }
}
