//! The contract between the unified API (OpenAI Chat Completions / Embeddings, served by
//! `gateway`) and a provider's dialect: contexts, prepared requests, stream items, usage, errors.
//! A translator is pure: JSON in, JSON out, no I/O. `upstream` does HTTP, keys, timeouts, piping.

use serde_json::Value;

pub use crate::sse::SseEvent;

/// What a translated response needs that the upstream does not say: one stable id, model and
/// creation time per request, and whether the client asked for usage in streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatContext {
    /// `chatcmpl-…`, the same on every chunk of a stream.
    pub id: String,
    /// The model as the client named it (e.g. `claude-sonnet-4-5`, without a `provider/` prefix).
    pub model: String,
    /// Unix seconds.
    pub created: i64,
    /// `stream_options.include_usage` was true.
    pub include_usage: bool,
}

/// An upstream request: path (and query) below the provider's base URL, and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub path: String,
    pub body: Value,
}

/// The client's request cannot be expressed for this provider: a 400 naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub message: String,
    pub param: Option<String>,
}

impl TranslateError {
    pub fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        Self { message: message.into(), param: param.map(str::to_owned) }
    }
}

/// What one upstream stream event turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A `chat.completion.chunk` object, sent as `data: {json}`.
    Chunk(Value),
    /// An upstream event passed on as it came, already framed (OpenAI-format providers).
    Raw(bytes::Bytes),
    /// An error after output started: sent as `data: {"error": {…}}` with anything shaped like
    /// a key masked, then the stream closes without `[DONE]`.
    Error(Value),
    /// `data: [DONE]`; the stream closes.
    Done,
}

/// Token counts in OpenAI's terms, and the call's cost when the provider reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Everything read, cached or not (Anthropic: input + cache creation + cache read).
    pub prompt_tokens: u64,
    /// Everything written, reasoning included.
    pub completion_tokens: u64,
    /// Of the prompt, read from the provider's cache.
    pub cached_tokens: u64,
    /// Of the prompt, written to the provider's cache (Anthropic's cache creation).
    pub cache_write_tokens: u64,
    /// Of the completion, reasoning (thinking) the client may not have seen.
    pub reasoning_tokens: u64,
    /// What the provider says the call cost, in nano-USD (OpenRouter's `usage.cost`).
    pub cost_nanos: Option<i64>,
}

impl Usage {
    /// The OpenAI `usage` object (cache writes and cost stay Relay's: clients do not know them).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": self.cached_tokens },
            "completion_tokens_details": { "reasoning_tokens": self.reasoning_tokens },
        })
    }

    /// Reads an OpenAI `usage` object (absent fields count as 0), with OpenRouter's additions:
    /// `prompt_tokens_details.cache_write_tokens` and `cost` (USD, a JSON number).
    pub fn from_json(v: &Value) -> Option<Self> {
        let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        v.is_object().then(|| Usage {
            prompt_tokens: n("/prompt_tokens"),
            completion_tokens: n("/completion_tokens"),
            cached_tokens: n("/prompt_tokens_details/cached_tokens"),
            cache_write_tokens: n("/prompt_tokens_details/cache_write_tokens"),
            reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
            cost_nanos: v.get("cost").and_then(Value::as_f64).and_then(usd_to_nanos),
        })
    }
}

/// A non-negative, finite USD amount in nano-USD (rounded); `None` for anything else.
pub fn usd_to_nanos(usd: f64) -> Option<i64> {
    let nanos = (usd * 1e9).round();
    (usd.is_finite() && usd >= 0.0 && nanos < i64::MAX as f64).then_some(nanos as i64)
}

/// Turns one upstream stream into OpenAI chunks, event by event.
pub trait StreamTranslator: Send {
    /// One complete upstream SSE event; returns what to send to the client now.
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem>;
    /// The upstream closed the stream: whatever is still owed (finish reason, usage chunk).
    /// Not called after an `Error` item.
    fn finish(&mut self) -> Vec<StreamItem>;
    /// Usage seen so far, for Relay's own usage records.
    fn usage(&self) -> Option<Usage>;
    /// An error that ends the stream (from an `Error` item, already masked, or Relay's own in
    /// OpenAI's shape) -> what the client's stream writes; as it is unless the API has its own
    /// error events (the Responses API's carry a sequence number).
    fn error_event(&mut self, error: Value) -> Value {
        error
    }
}

/// A translator's stream, closed with `[DONE]` when the upstream ended without an error
/// (translators produce chunks and errors; the end of stream marker is OpenAI's).
pub struct EndsWithDone<T> {
    inner: T,
}

impl<T: StreamTranslator> EndsWithDone<T> {
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

impl<T: StreamTranslator> StreamTranslator for EndsWithDone<T> {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        self.inner.on_event(event)
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        let mut items = self.inner.finish();
        if !items.iter().any(|i| matches!(i, StreamItem::Error(_))) {
            items.push(StreamItem::Done);
        }
        items
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

/// An upstream error in OpenAI's terms, from the provider's status and body. The route layer
/// keeps the status; the message is the provider's (it never contains our credentials: they
/// travel in headers, which providers do not echo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub message: String,
    /// OpenAI `type`, e.g. `invalid_request_error`, `rate_limit_error`, `overloaded_error`.
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl UpstreamError {
    /// `{"error": {message, type, param, code}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

/// The finish reasons OpenAI clients know.
pub mod finish {
    pub const STOP: &str = "stop";
    pub const LENGTH: &str = "length";
    pub const TOOL_CALLS: &str = "tool_calls";
    pub const CONTENT_FILTER: &str = "content_filter";
}

/// A `chat.completion.chunk` with one choice at index 0.
pub fn chunk(ctx: &ChatContext, delta: Value, finish_reason: Option<&str>) -> Value {
    serde_json::json!({
        "id": ctx.id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    })
}

/// The final usage chunk: `choices: []`, sent only when the client asked for usage.
pub fn usage_chunk(ctx: &ChatContext, usage: &Usage) -> Value {
    serde_json::json!({
        "id": ctx.id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [],
        "usage": usage.to_json(),
    })
}
