//! End users as their developer sees them: which providers they connected (never the keys), and
//! erasure of one key or of everything stored for the user.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::ApiError;
use crate::providers::{accepted_providers, ProviderId};
use crate::startup::AppState;
use crate::store::{AuditEvent, EndUser};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderView {
    provider: String,
    fingerprint: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    end_user_label: String,
    providers: Vec<ProviderView>,
    paid: bool,
}

fn label(raw: &str) -> Result<EndUserLabel, ApiError> {
    EndUserLabel::parse(raw).map_err(|e| e.into_api("label"))
}

fn user_not_found() -> ApiError {
    ApiError::not_found("enduser_not_found", "No end user with this label exists for your app.")
}

async fn find_user(state: &AppState, auth: TenantAuth, raw: &str) -> Result<EndUser, ApiError> {
    let label = label(raw)?;
    state.store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(user_not_found)
}

pub async fn get(
    auth: TenantAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&state, auth, &path).await?;
    let providers = state
        .store
        .list_provider_keys(user.id)
        .await?
        .into_iter()
        .map(|k| ProviderView {
            provider: k.provider,
            fingerprint: k.fingerprint,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserView { end_user_label: user.label, providers, paid: user.paid }))
}

pub async fn delete_key(
    auth: TenantAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_label, raw_provider) = path.into_inner();
    let provider: ProviderId = raw_provider.parse().map_err(|_| {
        ApiError::invalid_request(
            "provider_unknown",
            format!("Unknown provider. Accepted providers: {}.", accepted_providers()),
        )
        .param("provider")
    })?;
    let user = find_user(&state, auth, &raw_label).await?;
    if !state.store.delete_provider_key(user.id, provider.as_str()).await? {
        return Err(ApiError::not_found("enduser_key_missing", format!("This end user has no stored {provider} key.")));
    }
    audit(&state, auth, "provider_key.delete", format!("end_user:{} provider:{provider}", user.id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "endUserLabel": user.label, "provider": provider, "deleted": true })))
}

pub async fn delete(
    auth: TenantAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let label = label(&path)?;
    let id = state.store.delete_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(user_not_found)?;
    audit(&state, auth, "end_user.delete", format!("end_user:{id}")).await?;
    Ok(HttpResponse::Ok().json(json!({ "endUserLabel": label.as_str(), "deleted": true })))
}

async fn audit(state: &AppState, auth: TenantAuth, action: &str, target: String) -> Result<(), ApiError> {
    state
        .store
        .append_audit(&AuditEvent {
            tenant_id: Some(auth.tenant_id),
            actor: format!("api_key:{}", auth.api_key_id),
            action: action.into(),
            target: Some(target),
            created_at: Utc::now(),
        })
        .await?;
    Ok(())
}
