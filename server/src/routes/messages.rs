//! Anthropic's Messages API, `POST /v1/messages`, for every provider and the end user named by
//! `X-Relay-User`; the Relay key as the Anthropic SDKs send it (`x-api-key` or Bearer).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use utoipa::ToSchema;

use super::unified::EndUserHeaders;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::gateway;
use crate::upstream::Upstream;

/// Create a message
///
/// Anthropic's Messages API for every provider, with the end user's stored key. `model` picks
/// the provider as on Chat Completions. Anthropic gets the body as sent and its answer (or
/// stream) comes back as it is; OpenAI-format providers and Gemini are translated both ways:
/// system, text and image blocks, base64 PDFs, tools, `tool_use` / `tool_result`,
/// `stop_sequences`, `max_tokens`, `temperature`, `top_p`, `thinking` (as a reasoning effort).
/// A parameter the target cannot honour is a 400 naming it. With `"stream": true` the answer is
/// Anthropic's event stream (`message_start`, `content_block_start`, `content_block_delta`,
/// `content_block_stop`, `message_delta`, `message_stop`); an error in the middle of a stream is
/// an `error` event. Errors on this route are in Anthropic's shape,
/// `{"type": "error", "error": {"type", "message"}}`, with Relay's `code` and `param` beside the
/// message. Send the Relay key as `x-api-key` (what the Anthropic SDKs send) or as a Bearer token.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "unified",
    operation_id = "createMessage",
    security(("relay_key" = []), ("relay_key_header" = [])),
    params(EndUserHeaders, AnthropicVersion),
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The message: JSON, or an SSE stream when `stream` is true.", content(
            (AnthropicMessage = "application/json"),
            (String = "text/event-stream", example = json!("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-4o\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")),
        )),
        (status = 400, description = "Invalid JSON or body, unknown model, a parameter the provider cannot honour, missing `X-Relay-User`, or the provider's own 400.", body = AnthropicError),
        (status = 401, description = "Missing, invalid or revoked Relay key; or the provider rejected the stored key.", body = AnthropicError),
        (status = 403, description = "The provider refused the end user's stored key before (`enduser_key_invalid`).", body = AnthropicError),
        (status = 404, description = "The end user has no key for this model's provider (`enduser_key_missing`).", body = AnthropicError),
        (status = 413, description = "The body is larger than the limit.", body = AnthropicError),
        (status = 429, description = "A rate limit: Relay's or the provider's.", body = AnthropicError),
        (status = 502, description = "The provider could not be reached or answered nonsense.", body = AnthropicError),
        (status = 504, description = "The provider did not answer in time.", body = AnthropicError),
        (status = "default", description = "Any other error the provider answered, in Anthropic's error shape with the provider's status.", body = AnthropicError),
    )
)]
pub async fn messages(
    req: HttpRequest,
    caller: Caller,
    upstream: web::Data<Upstream>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let beta =
        req.headers().get("anthropic-beta").and_then(|v| reqwest::header::HeaderValue::from_bytes(v.as_bytes()).ok());
    gateway::messages(&upstream, caller, &body, beta).await
}

// Documentation only: the handler reads the body as bytes and hands it to the gateway.

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only
pub struct AnthropicVersion {
    /// Accepted and ignored: Relay speaks `2023-06-01` to Anthropic.
    #[param(rename = "anthropic-version", example = "2023-06-01")]
    anthropic_version: Option<String>,
}

/// An Anthropic Messages request. Any other Anthropic field is passed to Anthropic as sent; for
/// other providers an unknown field is a 400 naming it.
#[derive(ToSchema)]
#[schema(example = json!({"model": "gpt-4o-mini", "max_tokens": 1024, "system": "Be brief.", "messages": [{"role": "user", "content": "Hello!"}]}))]
#[allow(dead_code)] // documentation only
pub struct MessagesRequest {
    /// Routed as on Chat Completions: `claude-*` → anthropic, `gpt-*` → openai, `gemini-*` →
    /// google, …, or `provider/model`.
    model: String,
    /// `user` and `assistant` turns; content is a string or content blocks.
    messages: Vec<Value>,
    max_tokens: u64,
    /// A string or text blocks.
    system: Option<Value>,
    /// Stream Anthropic's events.
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop_sequences: Option<Vec<String>>,
    /// Client tools: `name`, `description`, `input_schema`.
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    /// `{"type": "enabled", "budget_tokens": N}`.
    thinking: Option<Value>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// An Anthropic `message`, whichever provider answered.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct AnthropicMessage {
    /// `msg_…`.
    id: String,
    /// `message`.
    #[serde(rename = "type")]
    kind: String,
    /// `assistant`.
    role: String,
    model: String,
    /// `text`, `thinking` and `tool_use` blocks.
    content: Vec<Value>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `refusal`, …
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    /// `input_tokens`, `output_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens`.
    usage: Value,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// Anthropic's error shape.
#[derive(ToSchema)]
#[schema(example = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "top_k is not supported for openai models on /v1/messages.", "code": "unsupported_parameter", "param": "top_k"}}))]
#[allow(dead_code)] // documentation only
pub struct AnthropicError {
    /// `error`.
    #[serde(rename = "type")]
    kind: String,
    error: AnthropicErrorObject,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct AnthropicErrorObject {
    /// `invalid_request_error`, `authentication_error`, `billing_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`, `api_error`, `timeout_error`,
    /// `overloaded_error`.
    #[serde(rename = "type")]
    kind: String,
    message: String,
    /// Relay's stable code, when Relay or the translation refused the request.
    code: Option<String>,
    /// The request field the error is about.
    param: Option<String>,
}
