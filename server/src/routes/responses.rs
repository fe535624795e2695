//! OpenAI's Responses API, `POST /v1/responses`, for every provider and the end user named by
//! `X-Relay-User`; the Relay key as a Bearer token, as the openai SDKs send it.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde_json::Value;
use utoipa::ToSchema;

use super::unified::EndUserHeaders;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::gateway;
use crate::upstream::Upstream;

/// Create a response
///
/// OpenAI's Responses API for every provider, with the end user's stored key. `model` picks the
/// provider as on Chat Completions. OpenAI gets the body as sent and its answer (or stream) comes
/// back as it is; every other provider is translated both ways through its Chat Completions
/// translator: `input` items (messages with text, images and files; `function_call` and
/// `function_call_output`), `instructions`, function tools, `tool_choice`, `parallel_tool_calls`,
/// `max_output_tokens`, `temperature`, `top_p`, `reasoning` (effort; the reasoning text as a
/// summary when `reasoning.summary` is set), `text.format` (`json_schema`, `json_object`) and
/// usage. Relay keeps no state: `previous_response_id`, `conversation` and `store: true` are a 400
/// except for OpenAI models. A parameter the target cannot honour is a 400 naming it. With
/// `"stream": true` the answer is the Responses event stream (`response.created`,
/// `response.in_progress`, `response.output_item.added`, `response.content_part.added`,
/// `response.output_text.delta`, `response.function_call_arguments.delta`,
/// `response.reasoning_summary_text.delta`, their `.done` events, `response.completed`); an
/// error in the middle of a stream is a `response.failed` event (or OpenAI's own `error`).
#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "unified",
    operation_id = "createResponse",
    security(("relay_key" = [])),
    params(EndUserHeaders),
    request_body = ResponsesRequest,
    responses(
        (status = 200, description = "The response: JSON, or an SSE stream when `stream` is true.", content(
            (ResponseObject = "application/json"),
            (String = "text/event-stream", example = json!("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"claude-sonnet-4-5\",\"output\":[]}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"claude-sonnet-4-5\",\"output\":[]}}\n\n")),
        )),
        (status = 400, description = "Invalid JSON or body, unknown model, a parameter the provider cannot honour (`unsupported_parameter`, e.g. `previous_response_id` for a non-OpenAI model), missing `X-Relay-User`, or the provider's own 400.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key; or the provider rejected the stored key.", body = ErrorBody),
        (status = 403, description = "The provider refused the end user's stored key before (`enduser_key_invalid`).", body = ErrorBody),
        (status = 404, description = "The end user has no key for this model's provider (`enduser_key_missing`).", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 429, description = "A rate limit: Relay's or the provider's.", body = ErrorBody),
        (status = 502, description = "The provider could not be reached or answered nonsense.", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time.", body = ErrorBody),
        (status = "default", description = "Any other error the provider answered, in OpenAI's error shape with the provider's status.", body = ErrorBody),
    )
)]
pub async fn responses(
    caller: Caller,
    upstream: web::Data<Upstream>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    gateway::responses(&upstream, caller, &body).await
}

// Documentation only: the handler reads the body as bytes and hands it to the gateway.

/// A Responses request. Any other field is passed to OpenAI as sent; for other providers an
/// unknown field is a 400 naming it.
#[derive(ToSchema)]
#[schema(example = json!({"model": "claude-sonnet-4-5", "instructions": "Be brief.", "input": "Hello!", "max_output_tokens": 1024}))]
#[allow(dead_code)] // documentation only
pub struct ResponsesRequest {
    /// Routed as on Chat Completions: `gpt-*` → openai, `claude-*` → anthropic, `gemini-*` →
    /// google, …, or `provider/model`.
    model: String,
    /// A string, or input items: messages, `function_call`, `function_call_output`.
    input: Value,
    /// The system message.
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    /// Stream the Responses events.
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// Function tools: `type: function`, `name`, `description`, `parameters`, `strict`.
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    /// `{"effort": "low" | "medium" | "high", "summary": "auto" | "concise" | "detailed"}`.
    reasoning: Option<Value>,
    /// `{"format": {"type": "json_schema", "name", "schema", "strict"}}`.
    text: Option<Value>,
    /// Only `false` (or absent) except for OpenAI models.
    store: Option<bool>,
    /// OpenAI models only.
    previous_response_id: Option<String>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// An OpenAI `response`, whichever provider answered.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ResponseObject {
    /// `resp_…`.
    id: String,
    /// `response`.
    object: String,
    created_at: i64,
    /// `completed`, `incomplete`, `failed`, …
    status: String,
    model: String,
    /// `message`, `function_call` and `reasoning` items.
    output: Vec<Value>,
    /// `input_tokens`, `output_tokens`, `total_tokens` and their details.
    usage: Option<Value>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}
