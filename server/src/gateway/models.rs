//! `GET /v1/models`: the models of every provider the end user connected, asked of each provider
//! with the user's key, named so that they route back. A provider that fails is left out.

use actix_web::{HttpResponse, ResponseError};
use serde_json::Value;

use crate::auth::Caller;
use crate::providers::{routing, ProviderId};
use crate::store::Store;
use crate::upstream::Upstream;

/// When no connected provider answers, the first one's error is the answer (masked, its
/// status kept): an empty list would hide a rejected key.
pub async fn models(
    upstream: &Upstream,
    store: &dyn Store,
    caller: Caller,
) -> Result<HttpResponse, crate::error::ApiError> {
    let connected = store.list_provider_keys(caller.end_user.id).await?;
    let providers = connected.iter().filter_map(|k| k.provider.parse::<ProviderId>().ok());
    let lists = futures::future::join_all(providers.map(|p| list(upstream, &caller, p))).await;
    let mut data = Vec::new();
    let mut answered = lists.is_empty();
    let mut first_error = None;
    for result in lists {
        match result {
            Ok(models) => {
                answered = true;
                // A free-tier user sees the models they may call.
                data.extend(models.into_iter().filter(|m| {
                    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
                    let bare = id.split_once('/').map_or(id, |(_, rest)| rest);
                    caller.check_model(&[id, bare]).is_ok()
                }));
            }
            Err(answer) => {
                first_error.get_or_insert(answer);
            }
        }
    }
    match first_error {
        Some(answer) if !answered => Ok(answer),
        _ => Ok(HttpResponse::Ok().json(serde_json::json!({ "object": "list", "data": data }))),
    }
}

/// One provider's models in OpenAI's shape; or the answer to give if none answers.
async fn list(upstream: &Upstream, caller: &Caller, provider: ProviderId) -> Result<Vec<Value>, HttpResponse> {
    let dialect = provider.def().dialect;
    let failed = |e: crate::error::ApiError| {
        tracing::warn!(%provider, error = ?e, "could not list models");
        e.error_response()
    };
    let mut call = upstream.open(caller, provider, dialect.models_path(), None, None).await.map_err(failed)?;
    call.first_byte_timeout(upstream.timeouts().key_check);
    let sent = call.send(reqwest::Method::GET, None, "models").await.map_err(failed)?;
    if !sent.is_success() {
        tracing::warn!(%provider, status = sent.status(), "the provider refused the model listing");
        return Err(sent.error_answer(dialect).await);
    }
    let (bytes, _, _) = sent.body().await.map_err(failed)?;
    let listing: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(dialect
        .parse_models(&listing)
        .into_iter()
        .map(|(id, created)| {
            serde_json::json!({ "id": routing::public_model_id(provider, &id), "object": "model", "created": created, "owned_by": provider.as_str() })
        })
        .collect())
}
