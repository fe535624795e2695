//! Anthropic's Messages API (`POST /v1/messages`) for every provider: passed through to Anthropic,
//! and for the others composed with the Chat Completions translators Relay already has.
//!
//! A Messages request becomes the Chat Completions request the gateway already sends each provider
//! through its dialect ([`chat_request`]); the dialect's answer, already a `chat.completion`, becomes
//! a Messages answer ([`message_from_chat`]); the dialect's stream of `chat.completion.chunk`s
//! becomes Anthropic's event sequence ([`MessagesStream`]). So each provider keeps one translator.
//! Anthropic itself gets the body as sent; its stream is relayed event by event ([`Passthrough`]),
//! read on the way only for usage.
//!
//! Choices worth knowing (each one is also tested):
//! - `max_tokens` goes out as `max_completion_tokens` to OpenAI and Groq (their reasoning models
//!   refuse `max_tokens`), as `max_tokens` elsewhere.
//! - `thinking: {"type": "enabled", "budget_tokens": N}` becomes `reasoning_effort` (low up to 4095,
//!   medium up to 16383, high above); the target refuses it where it cannot think. Thinking comes
//!   back as `thinking` blocks with an empty signature (only Anthropic signs them): Gemini's thought
//!   parts do; OpenAI's Chat Completions returns no reasoning text, only its token count.
//! - `output_config.format` (`{"type": "json_schema", "schema"}`, structured outputs) becomes a
//!   strict `json_schema` `response_format`; `output_config.effort` is refused by name.
//! - `cache_control` on blocks is dropped: a caching hint, not a different answer. `top_k`, server
//!   tools, documents other than base64 PDFs and images inside tool results are refused by name.
//! - Stop reasons: `stop` -> `end_turn`, `length` -> `max_tokens`, `tool_calls` -> `tool_use`,
//!   `content_filter` -> `refusal`. Chat Completions does not say which stop sequence matched, so
//!   `stop_sequence` stays null.

mod error;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use error::{anthropic_error, anthropic_error_type};
pub use request::{chat_request, rename_param};
pub use response::{message_from_chat, MessagesContext};
pub use stream::{MessagesStream, Passthrough};

use super::ProviderId;

/// Whether the provider speaks the Messages API itself (its requests pass as they are).
pub fn native(provider: ProviderId) -> bool {
    provider == ProviderId::Anthropic
}
