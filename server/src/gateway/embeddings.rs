//! `POST /v1/embeddings`: OpenAI-format providers passed through, Google translated; a provider
//! without an embeddings API is refused before anything is sent.

use actix_web::HttpResponse;

use super::{parse_body, route, translate_error, unreadable};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::upstream::Upstream;

pub async fn embeddings(upstream: &Upstream, caller: Caller, raw: &[u8]) -> Result<HttpResponse, ApiError> {
    let (body, model) = parse_body(raw)?;
    if body.get("input").is_none() {
        return Err(ApiError::invalid_request("missing_input", "You must provide an input parameter.").param("input"));
    }
    let route = route(&model)?;
    let def = route.provider.def();
    if !def.dialect.has_embeddings() {
        return Err(ApiError::invalid_request(
            "model_not_supported",
            format!(
                "{} has no embeddings API. Use an OpenAI (text-embedding-*) or Google (gemini-embedding-001, text-embedding-004) model.",
                route.provider
            ),
        )
        .param("model"));
    }
    caller.check_model(&[&model, &route.upstream_model])?;
    let prepared = def.dialect.embeddings_request(&body, &route.upstream_model).map_err(translate_error)?;
    let upload = serde_json::to_vec(&prepared.body).map_err(ApiError::internal)?;

    let usage = Some((model.as_str(), "/v1/embeddings".to_owned()));
    let mut call = upstream.open(&caller, route.provider, &prepared.path, None, usage).await?;
    call.header(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/json"));
    let sent = call.send(reqwest::Method::POST, Some(upload.into()), "embeddings").await?;
    if !sent.is_success() {
        return Ok(sent.error_answer(def.dialect).await);
    }
    let mut out = sent.answer();
    let provider = sent.provider;
    let (bytes, mut recorder, waited) = sent.body().await?;
    let (answer, usage) = def.dialect.embeddings_response(bytes, &body).map_err(|e| {
        recorder.status(502);
        unreadable(provider, e)
    })?;
    recorder.usage(usage);
    let overhead = recorder.started().elapsed().saturating_sub(waited);
    upstream.metrics().relay_overhead.with_label_values(&["embeddings"]).observe(overhead.as_secs_f64());
    recorder.store_before_answer().await;
    Ok(out.content_type("application/json").body(answer))
}
