//! `POST /v1/chat/completions`: the body checked, the model routed, the request spoken in the
//! provider's dialect, the answer returned whole or streamed.

use actix_web::HttpResponse;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::{parse_body, route, translate_error, unreadable};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::unified::ChatContext;
use crate::upstream::Upstream;

pub async fn chat(upstream: &Upstream, caller: Caller, raw: &[u8]) -> Result<HttpResponse, ApiError> {
    let (body, model) = parse_body(raw)?;
    if !matches!(body.get("messages"), Some(Value::Array(m)) if !m.is_empty()) {
        return Err(
            ApiError::invalid_request("invalid_messages", "`messages` must be a non-empty array.").param("messages")
        );
    }
    let route = route(&model)?;
    caller.check_model(&[&model, &route.upstream_model])?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let ctx = ChatContext {
        id: format!("chatcmpl-{}", Uuid::new_v4().simple()),
        model: model.clone(),
        created: Utc::now().timestamp(),
        include_usage: body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
    };
    let dialect = route.provider.def().dialect;
    let prepared = dialect.chat_request(body, &route.upstream_model, &ctx, stream).map_err(translate_error)?;
    let upload = serde_json::to_vec(&prepared.body).map_err(ApiError::internal)?;

    let usage = Some((model.as_str(), "/v1/chat/completions".to_owned()));
    let mut call = upstream.open(&caller, route.provider, &prepared.path, None, usage).await?;
    call.header(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/json"));
    let sent = call.send(reqwest::Method::POST, Some(upload.into()), "chat").await?;
    if !sent.is_success() {
        return Ok(sent.error_answer(dialect).await);
    }
    let mut out = sent.answer();
    let provider = sent.provider;
    let overhead = &upstream.metrics().relay_overhead;
    if !stream {
        let (bytes, mut recorder, waited) = sent.body().await?;
        let (answer, usage) = dialect.chat_response(bytes, &ctx).map_err(|e| {
            recorder.status(502);
            unreadable(provider, e)
        })?;
        recorder.usage(usage);
        overhead
            .with_label_values(&["chat"])
            .observe(recorder.started().elapsed().saturating_sub(waited).as_secs_f64());
        recorder.store_before_answer().await;
        return Ok(out.content_type("application/json").body(answer));
    }
    let ttfb = sent.ttfb;
    let (watched, recorder, mask) = sent.watch();
    overhead
        .with_label_values(&["chat_stream"])
        .observe(recorder.started().elapsed().saturating_sub(ttfb).as_secs_f64());
    let idle = upstream.timeouts().idle;
    let flow =
        super::stream::Flow::new(watched, dialect.chat_stream(ctx), provider, recorder, mask, upstream.metrics(), idle);
    Ok(out
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(flow.into_stream()))
}
