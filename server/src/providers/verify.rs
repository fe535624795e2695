//! The live check at connect time: one cheap authenticated call (a model or key listing) tells
//! whether the provider accepts a key before Relay stores it.

use secrecy::SecretString;

use super::{ProviderId, Upstreams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    Accepted,
    /// The provider answered 401 or 403 for this key.
    Rejected,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("could not reach the provider: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the provider answered HTTP {0} to the key check")]
    Unexpected(u16),
    #[error("the key cannot be put in an HTTP header")]
    BadKey,
}

impl ProviderId {
    /// The cheapest authenticated GET that fails for a bad key.
    fn key_check_path(self) -> &'static str {
        match self {
            ProviderId::OpenAi | ProviderId::Anthropic | ProviderId::Mistral => "/v1/models",
            ProviderId::Google => "/v1beta/models?pageSize=1",
            ProviderId::Groq => "/v1/models",
            // OpenRouter lists models without a key; this endpoint needs a valid one.
            ProviderId::OpenRouter => "/v1/key",
            // Below the server's own base URL (which names the API version).
            ProviderId::OpenAiCompatible => "/models",
        }
    }
}

impl Upstreams {
    /// The key check for an `openai-compatible` server, through the guarded client.
    pub async fn check_key_at(
        &self,
        base: &crate::ssrf::CheckedUrl,
        key: &SecretString,
        timeout: std::time::Duration,
    ) -> Result<KeyCheck, KeyCheckError> {
        let url = base.join("/models", None).map_err(|_| KeyCheckError::BadKey)?;
        let headers = ProviderId::OpenAiCompatible.auth_headers(key).map_err(|_| KeyCheckError::BadKey)?;
        let res = self
            .guarded_client()
            .get(url)
            .headers(headers)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| KeyCheckError::Unreachable(e.without_url()))?;
        match res.status().as_u16() {
            200..=299 => Ok(KeyCheck::Accepted),
            401 | 403 => Ok(KeyCheck::Rejected),
            other => Err(KeyCheckError::Unexpected(other)),
        }
    }

    pub async fn check_key(
        &self,
        provider: ProviderId,
        key: &SecretString,
        timeout: std::time::Duration,
    ) -> Result<KeyCheck, KeyCheckError> {
        let url = format!("{}{}", self.base_url(provider), provider.key_check_path());
        let headers = provider.auth_headers(key).map_err(|_| KeyCheckError::BadKey)?;
        let res = self
            .client()
            .get(url)
            .headers(headers)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| KeyCheckError::Unreachable(e.without_url()))?;
        match res.status().as_u16() {
            200..=299 => Ok(KeyCheck::Accepted),
            401 | 403 => Ok(KeyCheck::Rejected),
            other => Err(KeyCheckError::Unexpected(other)),
        }
    }
}
