//! Anthropic Messages API <-> OpenAI Chat Completions translation, streaming included.
//! Pure JSON in, JSON out; `provider` puts it behind the unified API as Anthropic's dialect.
//!
//! Request choices worth knowing (each one is also tested):
//! - Every `system` and `developer` message is hoisted, in order, into `system`. Consecutive
//!   same-role turns are merged (tool results become `tool_result` blocks in one user turn, and
//!   always come first in it, as Anthropic requires).
//! - `seed`, `store`, `metadata`, `service_tier`, `prediction`, `prompt_cache_key`,
//!   `prompt_cache_retention` and `stream_options` are dropped: they do not change what the model
//!   writes, and Anthropic has no equivalent. Tool `strict` is dropped too (a weaker guarantee, not
//!   a different answer). Anything else Anthropic cannot honour (`n > 1`, `logprobs`, penalties,
//!   `logit_bias`, audio, legacy `functions`, unknown parameters) is a 400 naming the parameter.
//! - `response_format: json_object` adds a system instruction; `json_schema` becomes a tool whose
//!   input schema is the client's schema, forced so the answer is schema-shaped. That tool's call is
//!   turned back into message content, in responses and in streams. When the client's own
//!   `tool_choice` already forces a tool call (`required` or a named function) the answer is a tool
//!   call, so the format tool is left out.
//! - `reasoning_effort` enables extended thinking with a budget (see `thinking_budget`), except
//!   when a tool is forced (Anthropic refuses thinking then) or the request continues a tool-use
//!   loop (Anthropic needs the signed thinking blocks of that turn back, which OpenAI clients do not
//!   keep). `max_tokens` always stays above the budget.
//!
//! One file per capability: [`chat_request`] (`request`, with `messages` and `tools`),
//! [`chat_response`] (`response`), [`chat_stream`] (`stream`), [`upstream_error`] (`error`).

mod error;
mod messages;
mod provider;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
mod tools;

pub use error::{key_verdict, upstream_error};
pub use provider::PROVIDER;
pub use request::{chat_request, DEFAULT_MAX_TOKENS};
pub use response::{chat_response, chat_usage};
pub use stream::{chat_stream, AnthropicStream};
