//! The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, for
//! the end user named by `X-Relay-User`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::gateway;
use crate::store::Store;
use crate::upstream::Upstream;

/// Chat completions
///
/// OpenAI's Chat Completions API for every provider, with the end user's stored key. `model`
/// picks the provider (`gpt-*` → openai, `claude-*` → anthropic, `gemini-*` → google, …, or an
/// explicit `provider/model`). Anthropic and Gemini are translated both ways, streaming included.
/// With `"stream": true` the answer is a stream of `chat.completion.chunk` events ending with
/// `data: [DONE]`; an error in the middle of a stream arrives as an event in OpenAI's error shape.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "unified",
    operation_id = "createChatCompletion",
    security(("relay_key" = [])),
    params(EndUserHeaders),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion: JSON, or an SSE stream when `stream` is true.", content(
            (ChatCompletion = "application/json"),
            (String = "text/event-stream", example = json!("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n")),
        )),
        (status = 400, description = "Invalid JSON or body, unknown model (`invalid_model`), missing `X-Relay-User`, or the provider's own 400.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key; or the provider rejected the stored key.", body = ErrorBody),
        (status = 403, description = "The provider refused the end user's stored key before (`enduser_key_invalid`); the provider is not called until the end user connects a new key.", body = ErrorBody),
        (status = 404, description = "The end user has no key for this model's provider (`enduser_key_missing`).", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 429, description = "The provider's rate limit (with its `retry-after`).", body = ErrorBody),
        (status = 502, description = "The provider could not be reached (`upstream_unavailable`), answered with a redirect (`upstream_redirect`) or answered nonsense.", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time.", body = ErrorBody),
        (status = "default", description = "Any other error the provider answered, in OpenAI's error shape with the provider's status.", body = ErrorBody),
    )
)]
pub async fn chat_completions(
    caller: Caller,
    upstream: web::Data<Upstream>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    gateway::chat(&upstream, caller, &body).await
}

/// Embeddings
///
/// OpenAI's Embeddings API: OpenAI (`text-embedding-*`) and Google (`gemini-embedding-001`,
/// `text-embedding-004`) models.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "unified",
    operation_id = "createEmbedding",
    security(("relay_key" = [])),
    params(EndUserHeaders),
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The embeddings.", body = EmbeddingList),
        (status = 400, description = "Invalid JSON or body, missing `input` or `model`, a model without embeddings, missing `X-Relay-User`, or the provider's own 400.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key; or the provider rejected the stored key.", body = ErrorBody),
        (status = 403, description = "The provider refused the end user's stored key before (`enduser_key_invalid`); the provider is not called until the end user connects a new key.", body = ErrorBody),
        (status = 404, description = "The end user has no key for this model's provider (`enduser_key_missing`).", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 429, description = "The provider's rate limit.", body = ErrorBody),
        (status = 502, description = "The provider could not be reached (`upstream_unavailable`), answered with a redirect (`upstream_redirect`) or answered nonsense.", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time.", body = ErrorBody),
        (status = "default", description = "Any other error the provider answered, in OpenAI's error shape with the provider's status.", body = ErrorBody),
    )
)]
pub async fn embeddings(
    caller: Caller,
    upstream: web::Data<Upstream>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    gateway::embeddings(&upstream, caller, &body).await
}

/// List models
///
/// The models of every provider this end user connected, in OpenAI's list shape. A provider
/// that does not answer is left out; when none answers, the first one's error is the answer.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "unified",
    operation_id = "listModels",
    security(("relay_key" = [])),
    params(EndUserHeaders),
    responses(
        (status = 200, description = "The models.", body = ModelList),
        (status = 400, description = "Missing or invalid `X-Relay-User` or `X-Relay-Paid`.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key; or the only provider asked rejected the stored key.", body = ErrorBody),
        (status = 403, description = "Every key the end user connected was refused by its provider before (`enduser_key_invalid`); a provider with such a key is left out of the list otherwise.", body = ErrorBody),
        (status = 404, description = "The end user has not connected any key (`enduser_key_missing`).", body = ErrorBody),
        (status = 502, description = "No connected provider could be reached or answered (`upstream_unavailable`, `upstream_redirect`).", body = ErrorBody),
        (status = 504, description = "No connected provider answered in time (`upstream_timeout`).", body = ErrorBody),
        (status = "default", description = "When every connected provider fails, the first one's error, in OpenAI's error shape with that provider's status.", body = ErrorBody),
    )
)]
pub async fn models(
    caller: Caller,
    upstream: web::Data<Upstream>,
    store: web::Data<dyn Store>,
) -> Result<HttpResponse, ApiError> {
    gateway::models(&upstream, &**store, caller).await
}

// The OpenAPI description of this surface. The handlers read the body as bytes and hand it to
// the gateway, so these types only document it: OpenAI's objects, open to every field OpenAI
// defines, with the fields Relay reads or guarantees spelled out.

/// The end user a request acts for.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: the `Caller` extractor reads the headers
pub struct EndUserHeaders {
    /// The end user, as your app names them (1–128 printable characters).
    #[param(rename = "X-Relay-User", example = "user_123")]
    x_relay_user: String,
    /// `false` marks the end user as free tier for this request (the tenant's free-tier limits
    /// apply, usage records carry the tier). Absent: paid.
    #[param(rename = "X-Relay-Paid", inline, value_type = Option<PaidFlag>)]
    x_relay_paid: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only
enum PaidFlag {
    True,
    False,
}

/// An OpenAI Chat Completions request. Any other OpenAI field (`tools`, `tool_choice`, `stop`,
/// `response_format`, `top_p`, `n`, `seed`, `user`, …) is accepted and translated for
/// Anthropic and Gemini.
#[derive(ToSchema)]
#[schema(example = json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}], "stream": false}))]
#[allow(dead_code)] // documentation only
pub struct ChatCompletionRequest {
    /// `gpt-*`, `o1*`/`o3*`/`o4*`, `chatgpt-*` → openai; `claude-*` → anthropic; `gemini-*` →
    /// google; `mistral-*`, `codestral-*`, `magistral-*` → mistral; `provider/model`
    /// (`groq/llama-3.3-70b-versatile`, `openrouter/anthropic/claude-sonnet-4`) always wins.
    model: String,
    messages: Vec<ChatMessage>,
    /// Stream the answer as server-sent events.
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// Tool (function) definitions, OpenAI's shape.
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    /// A string or up to 4 strings.
    stop: Option<Value>,
    response_format: Option<Value>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// One message: `role` is `system`, `developer`, `user`, `assistant` or `tool`.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ChatMessage {
    role: String,
    /// A string, or an array of content parts (`text`, `image_url`, …); null for an assistant
    /// message with tool calls.
    content: Option<Value>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    include_usage: Option<bool>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// An OpenAI `chat.completion` object, whichever provider answered.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ChatCompletion {
    id: String,
    /// `chat.completion`.
    object: String,
    created: i64,
    model: String,
    choices: Vec<ChatChoice>,
    usage: Option<TokenUsage>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ChatChoice {
    index: u32,
    message: ChatMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    finish_reason: Option<String>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct TokenUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// An OpenAI Embeddings request.
#[derive(ToSchema)]
#[schema(example = json!({"model": "text-embedding-3-small", "input": "The food was delicious."}))]
#[allow(dead_code)] // documentation only
pub struct EmbeddingRequest {
    /// `text-embedding-*` (openai), `gemini-embedding-001` or `text-embedding-004` (google), or
    /// `provider/model`.
    model: String,
    /// A string or an array of strings (or of token arrays, for OpenAI).
    input: Value,
    /// `float` or `base64`.
    encoding_format: Option<String>,
    dimensions: Option<u32>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// OpenAI's embedding list.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct EmbeddingList {
    /// `list`.
    object: String,
    data: Vec<Embedding>,
    model: String,
    usage: Option<Value>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct Embedding {
    /// `embedding`.
    object: String,
    index: u32,
    /// An array of numbers, or a base64 string with `encoding_format: base64`.
    embedding: Value,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// OpenAI's model list.
#[derive(ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "openai"}]}))]
#[allow(dead_code)] // documentation only
pub struct ModelList {
    /// `list`.
    object: String,
    data: Vec<Model>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct Model {
    /// The id to send as `model` (prefixed with `provider/` where the name alone would not
    /// route to the provider).
    id: String,
    /// `model`.
    object: String,
    created: i64,
    /// The provider.
    owned_by: String,
}
