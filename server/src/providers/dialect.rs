//! `Dialect`: how one provider's API is spoken, seen from the unified API. OpenAI-format
//! providers pass bodies through; Anthropic and Google translate. Pure: JSON in, JSON out.

use bytes::Bytes;
use serde_json::Value;

use super::unified::{ChatContext, Prepared, StreamTranslator, TranslateError, UpstreamError, Usage};

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

    /// The upstream request for an Embeddings body (only for providers with `embeddings`).
    fn embeddings_request(&self, body: &Value, upstream_model: &str) -> Result<Prepared, TranslateError>;

    /// An Embeddings answer in OpenAI's shape (`request` is the client's body), and its usage.
    fn embeddings_response(&self, body: Bytes, request: &Value) -> Result<(Bytes, Option<Usage>), ResponseError>;

    /// An error answer in OpenAI's terms, from the provider's status and body.
    fn upstream_error(&self, status: u16, body: &[u8]) -> UpstreamError;

    /// Seconds to wait before retrying, when the provider says so only inside its error body.
    fn retry_after_in_body(&self, _body: &[u8]) -> Option<u64> {
        None
    }

    /// The model listing below the base URL.
    fn models_path(&self) -> &'static str;

    /// The models of a listing answer.
    fn parse_models(&self, body: &Value) -> Vec<Listed>;
}

/// A whole translated answer: parsed, translated by `f`, serialised, with its usage.
pub(crate) fn translate_json(
    body: &[u8],
    f: impl FnOnce(&Value) -> Result<Value, TranslateError>,
) -> Result<(Bytes, Option<Usage>), ResponseError> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| ResponseError::NotJson)?;
    let translated = f(&parsed).map_err(|e| ResponseError::Unreadable(e.to_string()))?;
    let usage = translated.get("usage").and_then(Usage::from_json);
    Ok((Bytes::from(translated.to_string()), usage))
}
