//! The unified API (OpenAI's Chat Completions, Embeddings, Models) for every provider: each
//! request resolved to a provider by its model, spoken in that provider's dialect.
//!
//! `chat` and `embeddings` go to one provider through `upstream`; `models` asks every provider
//! the end user connected; `stream` relays a chat stream event by event. `messages` serves
//! Anthropic's Messages API the same way, composed with the chat dialects, and `responses`
//! OpenAI's Responses API.

mod chat;
mod composed;
mod embeddings;
mod messages;
mod models;
mod responses;
mod stream;

use serde_json::Value;

pub use chat::chat;
pub use embeddings::embeddings;
pub use messages::messages;
pub use models::models;
pub use responses::responses;

use crate::error::ApiError;
use crate::providers::routing::{self, Route};
use crate::providers::unified::TranslateError;

/// Parses a unified-API body: a JSON object with a string `model`.
fn parse_body(raw: &[u8]) -> Result<(Value, String), ApiError> {
    let body: Value = serde_json::from_slice(raw)
        .map_err(|_| ApiError::invalid_request("invalid_json", "The request body is not valid JSON."))?;
    if !body.is_object() {
        return Err(ApiError::invalid_request("invalid_request_body", "The request body must be a JSON object."));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::invalid_request("invalid_model", "`model` must be a non-empty string.").param("model"))
        }
        None => {
            return Err(ApiError::invalid_request("missing_model", "You must provide a model parameter.").param("model"))
        }
    };
    Ok((body, model))
}

/// The provider a model routes to: 400 `model_unknown` naming the accepted forms otherwise.
fn route(model: &str) -> Result<Route, ApiError> {
    routing::resolve(model).ok_or_else(|| {
        ApiError::invalid_request(
            "model_unknown",
            format!(
                "Relay does not know which provider serves the model {model:?}. Use {}.",
                routing::accepted_forms()
            ),
        )
        .param("model")
    })
}

/// A request the provider's dialect cannot express: 400 naming the parameter.
fn translate_error(e: TranslateError) -> ApiError {
    let mut err = ApiError::invalid_request("unsupported_parameter", e.message);
    if let Some(p) = e.param {
        err = err.param(p);
    }
    err
}

/// The provider's whole answer could not be read as its dialect says it should be.
fn unreadable(provider: crate::providers::ProviderId, e: crate::providers::ResponseError) -> ApiError {
    use crate::providers::ResponseError;
    match e {
        ResponseError::NotJson => {
            ApiError::bad_gateway("upstream_invalid_response", format!("{provider} sent an answer that is not JSON."))
        }
        ResponseError::Unreadable(why) => ApiError::bad_gateway(
            "upstream_invalid_response",
            format!("{provider} sent an answer Relay could not read: {why}"),
        ),
    }
}
