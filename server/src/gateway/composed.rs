//! The way to a provider for the APIs served on top of its chat dialect (Messages, Responses):
//! the request, already a chat request, sent through the dialect, and the answer or stream handed
//! back in the client's API by that API's own mapping.

use actix_web::HttpResponse;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use super::stream::{observe, streamed, Framing};
use super::{translate_error, unreadable};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::routing::Route;
use crate::providers::unified::{ChatContext, StreamTranslator, TranslateError, Usage};
use crate::providers::ResponseError;
use crate::upstream::Upstream;

/// What one client API adds to the chat path.
pub(super) struct ClientApi<A, S> {
    /// The send label and the overhead metric's (`messages`, `responses`).
    pub label: &'static str,
    /// The overhead metric's label for streams.
    pub stream_label: &'static str,
    pub framing: Framing,
    /// Names a dialect's refusal the way the client's API names the parameter.
    pub rename: fn(TranslateError) -> TranslateError,
    /// The whole chat answer in the client's API.
    pub answer: A,
    /// The chat stream as the client's API's events.
    pub events: S,
}

/// Sends `chat` for `route` through the provider's chat dialect and answers in the client's API.
#[allow(clippy::too_many_arguments)]
pub(super) async fn through_chat<A, S>(
    upstream: &Upstream,
    caller: &Caller,
    route: &Route,
    chat: Value,
    ctx: ChatContext,
    stream: bool,
    usage: Option<(&str, String)>,
    api: ClientApi<A, S>,
) -> Result<HttpResponse, ApiError>
where
    A: FnOnce(&Value, Option<Usage>) -> Result<Value, TranslateError>,
    S: FnOnce(Box<dyn StreamTranslator>) -> Box<dyn StreamTranslator>,
{
    let provider = route.provider;
    let dialect = provider.def().dialect;
    let prepared = dialect
        .chat_request(chat, &route.upstream_model, &ctx, stream)
        .map_err(|e| translate_error((api.rename)(e)))?;
    let upload = serde_json::to_vec(&prepared.body).map_err(ApiError::internal)?;
    let mut call = upstream.open(caller, provider, &prepared.path, None, usage).await?;
    call.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let sent = call.send(reqwest::Method::POST, Some(upload.into()), api.label).await?;
    if !sent.is_success() {
        // In OpenAI's shape here; a route that answers errors in another shape reshapes it.
        return Ok(sent.error_answer(dialect).await);
    }
    if !stream {
        let mut out = sent.answer();
        let (bytes, mut recorder, waited) = sent.body().await?;
        let mut fail = |e| {
            recorder.status(502);
            unreadable(provider, e)
        };
        let (chat, usage) = dialect.chat_response(bytes, &ctx).map_err(&mut fail)?;
        let chat: Value = serde_json::from_slice(&chat).map_err(|_| fail(ResponseError::NotJson))?;
        let answer = (api.answer)(&chat, usage).map_err(|e| fail(ResponseError::Unreadable(e.message)))?;
        recorder.usage(usage);
        observe(upstream, api.label, recorder.started().elapsed().saturating_sub(waited));
        recorder.store_before_answer().await;
        return Ok(out.content_type("application/json").body(answer.to_string()));
    }
    let translator = (api.events)(dialect.chat_stream(ctx));
    Ok(streamed(upstream, sent, translator, api.framing, api.stream_label))
}
