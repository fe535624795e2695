//! Session tokens from the developer's backend: `POST /v1/session-tokens` issues a short-lived
//! token that lets one end user's browser call Relay directly (`x-relay-token`), and
//! `POST /v1/users/{label}/sessions/revoke` revokes every token issued to that user so far.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::tokens::reveal;
use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::ApiError;
use crate::providers::{accepted_providers, ProviderId};
use crate::startup::AppState;
use crate::store::AuditEvent;

pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 24 * 60 * 60;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    end_user_label: String,
    /// Seconds until the token expires.
    expires_in: Option<i64>,
    /// Providers the token may act for; omitted: all.
    providers: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    session_token: &'a str,
    expires_at: DateTime<Utc>,
    end_user_label: &'a str,
    providers: Option<Vec<ProviderId>>,
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

pub async fn create(
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
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
    let user = state.store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
        ApiError::not_found(
            "enduser_not_found",
            "No end user with this label exists for your app. Create one with a registration token first.",
        )
        .param("endUserLabel")
    })?;
    let issued = state.sessions.issue(&user, providers.as_deref(), Duration::seconds(ttl))?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(Created {
        session_token: reveal(&issued.token),
        expires_at: issued.claims.expires_at(),
        end_user_label: label.as_str(),
        providers,
    }))
}

pub async fn revoke(
    auth: TenantAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let label = EndUserLabel::parse(&path).map_err(|e| e.into_api("label"))?;
    let user =
        state.store.revoke_end_user_sessions(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
            ApiError::not_found("enduser_not_found", "No end user with this label exists for your app.")
        })?;
    state
        .store
        .append_audit(&AuditEvent {
            tenant_id: Some(auth.tenant_id),
            actor: format!("api_key:{}", auth.api_key_id),
            action: "session.revoke".into(),
            target: Some(format!("end_user:{}", user.id)),
            created_at: Utc::now(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "endUserLabel": label.as_str(), "revoked": true })))
}
