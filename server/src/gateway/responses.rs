//! `POST /v1/responses` (OpenAI's Responses API): the body checked and the model routed; sent to
//! OpenAI as it is, or to any other provider through its chat dialect, and answered in kind.

use actix_web::HttpResponse;
use chrono::Utc;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde_json::Value;
use uuid::Uuid;

use super::composed::{through_chat, ClientApi};
use super::stream::{observe, streamed, Framing};
use super::{parse_body, route, translate_error, unreadable};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::responses::{self, Passthrough, ResponsesContext, ResponsesStream};
use crate::providers::unified::{ChatContext, StreamTranslator};
use crate::providers::ResponseError;
use crate::upstream::Upstream;

const ENDPOINT: &str = "/v1/responses";

pub async fn responses(upstream: &Upstream, caller: Caller, raw: &[u8]) -> Result<HttpResponse, ApiError> {
    let (mut body, model) = parse_body(raw)?;
    if !matches!(body.get("input"), Some(Value::String(_)) | Some(Value::Array(_))) {
        return Err(ApiError::invalid_request("invalid_input", "`input` must be a string or an array of input items.")
            .param("input"));
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid_request("invalid_stream", "`stream` must be a boolean.").param("stream"))
        }
    };
    let route = route(&model)?;
    caller.check_model(&[&model, &route.upstream_model])?;
    let provider = route.provider;
    let dialect = provider.def().dialect;
    let usage = Some((model.as_str(), ENDPOINT.to_owned()));

    if responses::native(provider) {
        let upload = if route.upstream_model == model {
            raw.to_vec()
        } else {
            body["model"] = Value::String(route.upstream_model.clone());
            serde_json::to_vec(&body).map_err(ApiError::internal)?
        };
        let mut call = upstream.open(&caller, provider, ENDPOINT, None, usage).await?;
        call.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sent = call.send(reqwest::Method::POST, Some(upload.into()), "responses").await?;
        if !sent.is_success() {
            return Ok(sent.error_answer(dialect).await);
        }
        if !stream {
            let mut out = sent.answer();
            let (bytes, mut recorder, waited) = sent.body().await?;
            let parsed: Value = serde_json::from_slice(&bytes).map_err(|_| {
                recorder.status(502);
                unreadable(provider, ResponseError::NotJson)
            })?;
            recorder.usage(responses::usage_from_response(&parsed["usage"]));
            observe(upstream, "responses", recorder.started().elapsed().saturating_sub(waited));
            recorder.store_before_answer().await;
            return Ok(out.body(bytes));
        }
        return Ok(streamed(upstream, sent, Box::new(Passthrough::new()), Framing::Responses, "responses_stream"));
    }

    let chat = responses::chat_request(&body, provider).map_err(translate_error)?;
    let ctx = ChatContext {
        id: format!("chatcmpl-{}", Uuid::new_v4().simple()),
        model: model.clone(),
        created: Utc::now().timestamp(),
        include_usage: false,
    };
    let rctx = ResponsesContext::new(format!("resp_{}", Uuid::new_v4().simple()), model.clone(), ctx.created, &body);
    let api = ClientApi {
        label: "responses",
        stream_label: "responses_stream",
        framing: Framing::Responses,
        rename: responses::rename_param,
        answer: |chat: &Value, usage| responses::response_from_chat(chat, usage, &rctx),
        events: |chat| Box::new(ResponsesStream::new(chat, rctx.clone())) as Box<dyn StreamTranslator>,
    };
    through_chat(upstream, &caller, &route, chat, ctx, stream, usage, api).await
}
