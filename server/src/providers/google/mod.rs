//! Gemini (generativelanguage v1beta: generateContent, streamGenerateContent?alt=sse,
//! batchEmbedContents) <-> OpenAI Chat Completions / Embeddings. Pure JSON in, JSON out.
//!
//! Choices worth knowing (the fixtures under `tests/fixtures/google/` show each one on the wire):
//! - Tool schemas go out as `parametersJsonSchema` (full JSON Schema), not the OpenAPI-subset
//!   `parameters`, whose closed field list rejects `additionalProperties`, `$ref`, type arrays,
//!   `exclusiveMinimum`… with a 400 for the whole request. Only what Gemini's JSON Schema support
//!   itself refuses is removed (see [`clean_schema`]). `response_format.json_schema` likewise goes
//!   out as `responseJsonSchema`.
//! - Thought signatures ride inside the OpenAI tool call id (see [`encode_call_id`]), so a client
//!   that echoes its history back gives Gemini the signature it needs, with no extra fields.
//! - `n` > 1 is refused: one candidate keeps streaming and tool-call indexes simple.
//! - `parallel_tool_calls` is accepted and ignored: Gemini has no switch for it.
//!
//! One file per capability: [`chat_request`] (`request`, with `messages` and `tools`),
//! [`chat_response`] (`response`), [`chat_stream`] (`stream`), [`upstream_error`] and
//! [`retry_after_seconds`] (`error`), [`embeddings_request`] and [`embeddings_response`]
//! (`embeddings`); tool call ids in `call_id`.

mod call_id;
mod embeddings;
mod error;
mod messages;
mod provider;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
mod tools;

pub use call_id::{decode_call_id, encode_call_id, new_call_id, THOUGHT_SEPARATOR};
pub use embeddings::{embeddings_request, embeddings_response};
pub use error::{key_verdict, redact_api_keys, retry_after_seconds, upstream_error};
pub use provider::PROVIDER;
pub use request::chat_request;
pub use response::{chat_response, chat_usage};
pub use stream::{chat_stream, GeminiStream};
pub use tools::clean_schema;
