//! `/relay/{provider}/{path…}`, any method: the raw passthrough (byok-relay compatible).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::TenantAuth;
use crate::error::ApiError;
use crate::providers::{accepted_providers, ProviderId};
use crate::startup::AppState;

pub async fn relay(
    req: HttpRequest,
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let provider: ProviderId = req.match_info().get("provider").unwrap_or("").parse().map_err(|_| {
        ApiError::not_found(
            "provider_unknown",
            format!("Unknown provider. Accepted providers: {}.", accepted_providers()),
        )
    })?;
    let caller = super::unified::caller(&req, auth, &state).await?;
    // The raw, still-encoded path after /relay/{provider}: checked and normalised by the passthrough.
    let prefix_len = "/relay/".len() + provider.as_str().len();
    let tail = req.uri().path().get(prefix_len..).unwrap_or("").to_owned();
    let limit = state.max_relay_body_bytes;
    crate::passthrough::forward(state, req, caller, provider, &tail, body, limit).await
}
