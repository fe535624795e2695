//! `/relay/{provider}/{path…}`, any method: the raw passthrough (byok-relay compatible).

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::auth::session::{authenticate_session, SESSION_HEADER};
use crate::auth::TenantAuth;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::providers::{accepted_providers, ProviderId};
use crate::startup::AppState;

/// Backend calls carry `Bearer rly-…` + `X-Relay-User` (checked by the auth middleware);
/// browser calls carry a session token in `x-relay-token`, which names the end user itself.
pub async fn relay(req: HttpRequest, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let provider: ProviderId = req.match_info().get("provider").unwrap_or("").parse().map_err(|_| {
        ApiError::not_found(
            "provider_unknown",
            format!("Unknown provider. Accepted providers: {}.", accepted_providers()),
        )
    })?;
    let caller = if req.headers().contains_key(SESSION_HEADER) {
        let started = std::time::Instant::now();
        let (claims, end_user) = authenticate_session(&state, &req).await?;
        if !claims.allows(provider) {
            return Err(ApiError::forbidden(
                "provider_not_allowed",
                format!("This session token is not valid for {provider}."),
            ));
        }
        Caller { tenant_id: claims.tid, api_key_id: None, end_user, paid: true, started }
    } else {
        let auth = TenantAuth::extract(&req).await?;
        super::unified::caller(&req, auth, &state).await?
    };
    // The raw, still-encoded path after /relay/{provider}: checked and normalised by the passthrough.
    let prefix_len = "/relay/".len() + provider.as_str().len();
    let tail = req.uri().path().get(prefix_len..).unwrap_or("").to_owned();
    let limit = state.max_relay_body_bytes;
    crate::passthrough::forward(state, req, caller, provider, &tail, body, limit).await
}
