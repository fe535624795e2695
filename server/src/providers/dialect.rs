//! `Dialect`: how one provider's API is spoken, seen from the unified API. OpenAI-format
//! providers pass bodies through; Anthropic and Google translate. Pure: JSON in, JSON out.

use bytes::Bytes;
use serde_json::Value;

use super::unified::{ChatContext, Prepared, StreamTranslator, TranslateError, UpstreamError, Usage};
use crate::domain::key_health::KeyStatus;

/// A whole upstream answer that could not be turned into the unified API's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is not JSON")]
    NotJson,
    #[error("{0}")]
    Unreadable(String),
}

/// One model as a provider lists it: its id and creation time (Unix seconds, 0 if unknown).
pub type Listed = (String, i64);

pub trait Dialect: Sync {
    /// The upstream request for a Chat Completions body whose model resolved to
    /// `upstream_model`. `ctx.include_usage` is what the client asked for in a stream.
    fn chat_request(
        &self,
        body: Value,
        upstream_model: &str,
        ctx: &ChatContext,
        stream: bool,
    ) -> Result<Prepared, TranslateError>;

    /// A whole (non-streaming) answer in OpenAI's shape, and the usage it reports.
    fn chat_response(&self, body: Bytes, ctx: &ChatContext) -> Result<(Bytes, Option<Usage>), ResponseError>;

    /// Turns the upstream's stream into the client's, event by event.
    fn chat_stream(&self, ctx: ChatContext) -> Box<dyn StreamTranslator>;

    /// Whether the provider has an embeddings API.
    fn has_embeddings(&self) -> bool;

    /// The upstream request for an Embeddings body (only where `has_embeddings`).
    fn embeddings_request(&self, body: &Value, upstream_model: &str) -> Result<Prepared, TranslateError>;

    /// An Embeddings answer in OpenAI's shape (`request` is the client's body), and its usage.
    fn embeddings_response(&self, body: Bytes, request: &Value) -> Result<(Bytes, Option<Usage>), ResponseError>;

    /// An error answer in OpenAI's terms, from the provider's status and body.
    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError;

    /// What an error answer (status and body) says about the key that made the call:
    /// `Invalid` (any 401/403, or the provider's own "bad key" error), `QuotaExhausted` (its
    /// account is out of credit or quota), or `None`: nothing about the key (a plain rate limit,
    /// a bad request, an outage).
    fn key_verdict(&self, status: u16, body: &[u8]) -> Option<KeyStatus>;

    /// Seconds to wait before retrying, when the provider says so only inside its error body.
    fn retry_after_in_body(&self, _body: &[u8]) -> Option<u64> {
        None
    }

    /// The model listing below the base URL.
    fn models_path(&self) -> &'static str;

    /// The models of a listing answer.
    fn parse_models(&self, body: &Value) -> Vec<Listed>;
}

/// Every provider refuses a key with 401 or 403: the key is `invalid` whatever the body says.
pub fn refuses_key(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// A whole translated answer: parsed, translated by `f`, serialised, with its usage: as `usage`
/// reads it from the provider's own answer, else from the translated one.
fn translate_json(
    body: &[u8],
    f: impl FnOnce(&Value) -> Result<Value, TranslateError>,
    usage: Option<fn(&Value) -> Option<Usage>>,
) -> Result<(Bytes, Option<Usage>), ResponseError> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| ResponseError::NotJson)?;
    let translated = f(&parsed).map_err(|e| ResponseError::Unreadable(e.to_string()))?;
    let usage = match usage {
        Some(read) => read(&parsed),
        None => translated.get("usage").and_then(Usage::from_json),
    };
    Ok((Bytes::from(translated.to_string()), usage))
}

/// A provider whose API differs from OpenAI's, spoken through its translator's functions.
pub struct Translated {
    pub chat_request: fn(&Value, &str) -> Result<Prepared, TranslateError>,
    pub chat_response: fn(&Value, &ChatContext) -> Result<Value, TranslateError>,
    /// The usage of a whole answer, from the provider's own body: the translated one carries
    /// only what OpenAI clients know (no cache writes).
    pub chat_usage: fn(&Value) -> Option<Usage>,
    pub chat_stream: fn(ChatContext) -> Box<dyn StreamTranslator>,
    /// Request and response translation, for a provider with an embeddings API.
    pub embeddings: Option<Embeddings>,
    pub upstream_error: fn(u16, &[u8]) -> UpstreamError,
    pub key_verdict: fn(u16, &[u8]) -> Option<KeyStatus>,
    pub retry_after_in_body: fn(&[u8]) -> Option<u64>,
    pub models_path: &'static str,
    pub parse_models: fn(&Value) -> Vec<Listed>,
}

/// An embeddings translation: the request, and the answer (given the client's request).
pub struct Embeddings {
    pub request: fn(&Value, &str) -> Result<Prepared, TranslateError>,
    pub response: fn(&Value, &Value) -> Result<Value, TranslateError>,
}

impl Dialect for Translated {
    fn has_embeddings(&self) -> bool {
        self.embeddings.is_some()
    }

    fn chat_request(&self, body: Value, model: &str, _: &ChatContext, _: bool) -> Result<Prepared, TranslateError> {
        (self.chat_request)(&body, model)
    }

    fn chat_response(&self, body: Bytes, ctx: &ChatContext) -> Result<(Bytes, Option<Usage>), ResponseError> {
        translate_json(&body, |v| (self.chat_response)(v, ctx), Some(self.chat_usage))
    }

    fn chat_stream(&self, ctx: ChatContext) -> Box<dyn StreamTranslator> {
        (self.chat_stream)(ctx)
    }

    fn embeddings_request(&self, body: &Value, model: &str) -> Result<Prepared, TranslateError> {
        match &self.embeddings {
            Some(e) => (e.request)(body, model),
            None => Err(TranslateError::new("This provider has no embeddings API.", Some("model"))),
        }
    }

    fn embeddings_response(&self, body: Bytes, request: &Value) -> Result<(Bytes, Option<Usage>), ResponseError> {
        match &self.embeddings {
            Some(e) => translate_json(&body, |v| (e.response)(v, request), None),
            None => Err(ResponseError::Unreadable("this provider has no embeddings API".into())),
        }
    }

    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError {
        (self.upstream_error)(status, body)
    }

    fn key_verdict(&self, status: u16, body: &[u8]) -> Option<KeyStatus> {
        (self.key_verdict)(status, body)
    }

    fn retry_after_in_body(&self, body: &[u8]) -> Option<u64> {
        (self.retry_after_in_body)(body)
    }

    fn models_path(&self) -> &'static str {
        self.models_path
    }

    fn parse_models(&self, body: &Value) -> Vec<Listed> {
        (self.parse_models)(body)
    }
}
