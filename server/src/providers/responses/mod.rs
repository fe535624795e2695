//! OpenAI's Responses API (`POST /v1/responses`) for every provider: passed through to OpenAI,
//! and for the others composed with the Chat Completions translators Relay already has.
//!
//! A Responses request becomes the Chat Completions request the gateway already sends each
//! provider through its dialect ([`chat_request`]); the dialect's answer, already a
//! `chat.completion`, becomes a `response` ([`response_from_chat`]); the dialect's stream of
//! `chat.completion.chunk`s becomes the Responses event sequence ([`ResponsesStream`]). So each
//! provider keeps one translator. OpenAI itself gets the body as sent; its stream is relayed
//! event by event ([`Passthrough`]), read on the way only for usage.
//!
//! Choices worth knowing (each one is also tested):
//! - Relay keeps no state: `previous_response_id`, `conversation` and `store: true` are a 400
//!   except for OpenAI models; the answer says `store: false`.
//! - `max_output_tokens` goes out as `max_completion_tokens` to OpenAI-format providers that need
//!   it (Groq), as `max_tokens` elsewhere. `reasoning.effort` becomes `reasoning_effort`; the
//!   provider's reasoning text comes back as a `reasoning` item's summary when `reasoning.summary`
//!   was asked for (a summary in name: Chat Completions gives what the provider shows).
//! - `text.format` becomes `response_format`; hosted tools, `file_id` inputs and item references
//!   are refused by name. Reasoning input items are dropped: only OpenAI can read them back.
//! - Finish reasons: `length` -> `incomplete` (`max_output_tokens`), `content_filter` ->
//!   `incomplete` (`content_filter`), else `completed`. An error mid-stream is `response.failed`.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use request::{chat_request, rename_param, stateful_param};
pub use response::{response_from_chat, ResponsesContext};
pub use stream::{usage_from_response, Passthrough, ResponsesStream};

use super::ProviderId;

/// Whether the provider speaks the Responses API itself (its requests pass as they are).
pub fn native(provider: ProviderId) -> bool {
    provider == ProviderId::OpenAi
}
