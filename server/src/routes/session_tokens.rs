//! Session tokens from the developer's backend: `POST /v1/session-tokens` issues a short-lived
//! token that lets one end user's browser call Relay directly (`x-relay-token`), and
//! `POST /v1/users/{label}/sessions/revoke` revokes every token issued to that user so far.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::session::SessionService;
use crate::auth::tokens::reveal;
use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::{ApiError, ErrorBody};
use crate::providers::{accepted_providers, ProviderId};
use crate::store::Store;

pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 24 * 60 * 60;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SessionTokenRequest, example = json!({"endUserLabel": "user_123", "expiresIn": 900, "providers": ["openai"]}))]
pub struct CreateBody {
    /// An end user of your app who has been given a registration token before.
    end_user_label: String,
    /// Seconds until the token expires: 60 to 86400, default 900.
    #[schema(minimum = 60, maximum = 86400)]
    expires_in: Option<i64>,
    /// Providers the token may act for; omitted: all.
    #[schema(value_type = Option<Vec<ProviderId>>, min_items = 1)]
    providers: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionToken, example = json!({"sessionToken": "eyJhbGciOiJIUzI1NiJ9…", "expiresAt": "2026-01-01T12:15:00Z", "endUserLabel": "user_123", "providers": ["openai"]}))]
struct Created<'a> {
    /// Send it as `x-relay-token` from the browser. Shown only here.
    session_token: &'a str,
    expires_at: DateTime<Utc>,
    end_user_label: &'a str,
    /// The providers the token is limited to; null: all.
    #[schema(required = true)]
    providers: Option<Vec<ProviderId>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"endUserLabel": "user_123", "revoked": true}))]
pub struct RevokedSessions<'a> {
    end_user_label: &'a str,
    /// Always true.
    revoked: bool,
}

fn parse_providers(raw: Option<Vec<String>>) -> Result<Option<Vec<ProviderId>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() {
        return Err(ApiError::invalid_request(
            "invalid_providers",
            "providers must name at least one provider; omit it to allow all.",
        )
        .param("providers"));
    }
    let mut out: Vec<ProviderId> = Vec::with_capacity(raw.len());
    for name in &raw {
        let p: ProviderId = name.parse().map_err(|_| {
            ApiError::invalid_request(
                "provider_unknown",
                format!("Unknown provider in providers. Accepted providers: {}.", accepted_providers()),
            )
            .param("providers")
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

/// Create a session token
///
/// A short-lived token that lets one end user's browser call `/relay/…` directly, in the
/// `x-relay-token` header.
#[utoipa::path(
    post,
    path = "/v1/session-tokens",
    tag = "developer",
    operation_id = "createSessionToken",
    security(("relay_key" = [])),
    params(("X-Relay-Paid" = Option<bool>, Header, description = "`false`: the end user's browser calls are limited as free tier (the tenant's free-tier rate and models) until the backend says otherwise. Absent: unchanged.")),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The token was created.", body = Created),
        (status = 400, description = "Invalid body, label, providers (`invalid_providers`, `provider_unknown`) or expiresIn (`invalid_expires_in`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user in your app (`enduser_not_found`).", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json.", body = ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    sessions: web::Data<SessionService>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let paid = crate::auth::paid_header(&req)?;
    let label = EndUserLabel::parse(&body.end_user_label).map_err(|e| e.into_api("endUserLabel"))?;
    let providers = parse_providers(body.providers)?;
    let ttl = body.expires_in.unwrap_or(DEFAULT_TTL_SECS);
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid_request(
            "invalid_expires_in",
            format!(
                "expiresIn must be between {MIN_TTL_SECS} and {MAX_TTL_SECS} seconds (default {DEFAULT_TTL_SECS})."
            ),
        )
        .param("expiresIn"));
    }
    let user = store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
        ApiError::not_found(
            "enduser_not_found",
            "No end user with this label exists for your app. Create one with a registration token first.",
        )
        .param("endUserLabel")
    })?;
    // The browser's calls are limited by the tier stored here (it cannot vouch for its own).
    if let Some(paid) = paid.filter(|p| *p != user.paid) {
        store.set_end_user_paid(auth.tenant_id, user.id, paid).await?;
    }
    let issued = sessions.issue(&user, providers.as_deref(), Duration::seconds(ttl))?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(Created {
        session_token: reveal(&issued.token),
        expires_at: issued.claims.expires_at(),
        end_user_label: label.as_str(),
        providers,
    }))
}

/// Revoke an end user's session tokens
///
/// Every session token issued to this end user so far stops working.
#[utoipa::path(
    post,
    path = "/v1/users/{label}/sessions/revoke",
    tag = "developer",
    operation_id = "revokeEndUserSessions",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123")),
    responses(
        (status = 200, description = "The sessions were revoked.", body = RevokedSessions),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn revoke(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let label = EndUserLabel::parse(&path).map_err(|e| e.into_api("label"))?;
    let user = store
        .revoke_end_user_sessions(auth.tenant_id, label.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("enduser_not_found", "No end user with this label exists for your app."))?;
    let actor = format!("api_key:{}", auth.api_key_id);
    crate::audit::record(
        &**store,
        Some(auth.tenant_id),
        &actor,
        "session.revoke",
        Some(format!("end_user:{}", user.id)),
    )
    .await;
    Ok(HttpResponse::Ok().json(RevokedSessions { end_user_label: label.as_str(), revoked: true }))
}
