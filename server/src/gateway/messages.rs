//! `POST /v1/messages` (Anthropic's Messages API): the body checked and the model routed; sent to
//! Anthropic as it is, or to any other provider through its chat dialect, and answered in kind.

use actix_web::HttpResponse;
use chrono::Utc;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::Value;
use uuid::Uuid;

use super::composed::{through_chat, ClientApi};
use super::stream::{observe, streamed, Framing};
use super::{parse_body, route, translate_error, unreadable};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::messages::{self, MessagesContext, MessagesStream, Passthrough};
use crate::providers::unified::{ChatContext, StreamTranslator};
use crate::providers::ResponseError;
use crate::upstream::Upstream;

const ENDPOINT: &str = "/v1/messages";

/// `beta` is the client's `anthropic-beta` header, passed on to Anthropic.
pub async fn messages(
    upstream: &Upstream,
    caller: Caller,
    raw: &[u8],
    beta: Option<HeaderValue>,
) -> Result<HttpResponse, ApiError> {
    let (mut body, model) = parse_body(raw)?;
    if !matches!(body.get("messages"), Some(Value::Array(m)) if !m.is_empty()) {
        return Err(
            ApiError::invalid_request("invalid_messages", "`messages` must be a non-empty array.").param("messages")
        );
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
    let usage = Some((model.as_str(), ENDPOINT.to_owned()));

    if messages::native(provider) {
        if route.upstream_model != model {
            body["model"] = Value::String(route.upstream_model.clone());
        }
        let upload = if route.upstream_model == model {
            raw.to_vec()
        } else {
            serde_json::to_vec(&body).map_err(ApiError::internal)?
        };
        let mut call = upstream.open(&caller, provider, ENDPOINT, None, usage).await?;
        call.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(beta) = beta {
            call.header(HeaderName::from_static("anthropic-beta"), beta);
        }
        let sent = call.send(reqwest::Method::POST, Some(upload.into()), "messages").await?;
        if !sent.is_success() {
            return Ok(sent.raw_error_answer().await);
        }
        if !stream {
            let mut out = sent.answer();
            let (bytes, mut recorder, waited) = sent.body().await?;
            let parsed: Value = serde_json::from_slice(&bytes).map_err(|_| {
                recorder.status(502);
                unreadable(provider, ResponseError::NotJson)
            })?;
            recorder.usage(crate::providers::anthropic::chat_usage(&parsed));
            observe(upstream, "messages", recorder.started().elapsed().saturating_sub(waited));
            recorder.store_before_answer().await;
            return Ok(out.body(bytes));
        }
        return Ok(streamed(upstream, sent, Box::new(Passthrough::new(&model)), Framing::Anthropic, "messages_stream"));
    }

    let chat = messages::chat_request(&body, provider).map_err(translate_error)?;
    let ctx = ChatContext {
        id: format!("chatcmpl-{}", Uuid::new_v4().simple()),
        model: model.clone(),
        created: Utc::now().timestamp(),
        include_usage: false,
    };
    let mctx = MessagesContext { id: format!("msg_{}", Uuid::new_v4().simple()), model: model.clone() };
    let api = ClientApi {
        label: "messages",
        stream_label: "messages_stream",
        framing: Framing::Anthropic,
        rename: messages::rename_param,
        answer: |chat: &Value, usage| messages::message_from_chat(chat, usage, &mctx),
        events: |chat| Box::new(MessagesStream::new(chat, mctx.clone())) as Box<dyn StreamTranslator>,
    };
    through_chat(upstream, &caller, &route, chat, ctx, stream, usage, api).await
}
