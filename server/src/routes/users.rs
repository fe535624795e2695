//! End users as their developer sees them: which providers they connected (never the keys), and
//! erasure of one key or of everything stored for the user.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::{ApiError, ErrorBody};
use crate::providers::{accepted_providers, ProviderId};
use crate::store::{EndUser, Store};
use crate::webhooks::Webhooks;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StoredKey)]
struct ProviderView {
    #[schema(value_type = ProviderId)]
    provider: String,
    /// Enough of the key to recognise it (`sk-proj-…WXYZ`), never the key.
    fingerprint: String,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EndUser, example = json!({"endUserLabel": "user_123", "providers": [{"provider": "openai", "fingerprint": "sk-proj-…WXYZ", "createdAt": "2026-01-01T12:00:00Z", "lastUsedAt": null}], "paid": true}))]
struct UserView {
    end_user_label: String,
    /// The providers this user connected a key for.
    providers: Vec<ProviderView>,
    /// The end user's stored tier flag (requests mark their own tier with `X-Relay-Paid`).
    paid: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"endUserLabel": "user_123", "provider": "openai", "deleted": true}))]
pub struct DeletedKey<'a> {
    end_user_label: &'a str,
    provider: ProviderId,
    /// Always true.
    deleted: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"endUserLabel": "user_123", "deleted": true}))]
pub struct DeletedUser<'a> {
    end_user_label: &'a str,
    /// Always true.
    deleted: bool,
}

fn label(raw: &str) -> Result<EndUserLabel, ApiError> {
    EndUserLabel::parse(raw).map_err(|e| e.into_api("label"))
}

fn user_not_found() -> ApiError {
    ApiError::not_found("enduser_not_found", "No end user with this label exists for your app.")
}

async fn find_user(store: &dyn Store, auth: TenantAuth, raw: &str) -> Result<EndUser, ApiError> {
    let label = label(raw)?;
    store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(user_not_found)
}

/// Get an end user
///
/// Which providers the end user connected, with fingerprints and times. Never the keys.
#[utoipa::path(
    get,
    path = "/v1/users/{label}",
    tag = "developer",
    operation_id = "getEndUser",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (1–128 printable characters, percent-encoded).", example = "user_123")),
    responses(
        (status = 200, description = "The end user.", body = UserView),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user in your app (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn get(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&**store, auth, &path).await?;
    let providers = store
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

/// Delete one stored key
#[utoipa::path(
    delete,
    path = "/v1/users/{label}/keys/{provider}",
    tag = "developer",
    operation_id = "deleteEndUserKey",
    security(("relay_key" = [])),
    params(
        ("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123"),
        ("provider" = ProviderId, Path, description = "The provider whose key to delete."),
    ),
    responses(
        (status = 200, description = "The key was deleted.", body = DeletedKey),
        (status = 400, description = "The label or provider is not valid (`provider_unknown`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`), or no key for this provider (`enduser_key_missing`).", body = ErrorBody),
    )
)]
pub async fn delete_key(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
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
    let user = find_user(&**store, auth, &raw_label).await?;
    let existing = store.get_provider_key(user.id, provider.as_str()).await?;
    if !store.delete_provider_key(user.id, provider.as_str()).await? {
        return Err(ApiError::not_found("enduser_key_missing", format!("This end user has no stored {provider} key.")));
    }
    audit(&**store, auth, "provider_key.delete", format!("end_user:{} provider:{provider}", user.id)).await;
    let fingerprint = existing.map(|k| k.fingerprint);
    webhooks.key_removed(auth.tenant_id, &user.label, provider.as_str(), fingerprint.as_deref()).await;
    Ok(HttpResponse::Ok().json(DeletedKey { end_user_label: &user.label, provider, deleted: true }))
}

/// Erase an end user
///
/// Deletes the end user and everything stored for them.
#[utoipa::path(
    delete,
    path = "/v1/users/{label}",
    tag = "developer",
    operation_id = "deleteEndUser",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123")),
    responses(
        (status = 200, description = "The end user was erased.", body = DeletedUser),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn delete(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let label = label(&path)?;
    let id = store.delete_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(user_not_found)?;
    audit(&**store, auth, "end_user.delete", format!("end_user:{id}")).await;
    webhooks.user_erased(auth.tenant_id, label.as_str()).await;
    Ok(HttpResponse::Ok().json(DeletedUser { end_user_label: label.as_str(), deleted: true }))
}

/// The audit entry for a developer key's action (see `audit` for the failure policy).
async fn audit(store: &dyn Store, auth: TenantAuth, action: &str, target: String) {
    let actor = format!("api_key:{}", auth.api_key_id);
    crate::audit::record(store, Some(auth.tenant_id), &actor, action, Some(target)).await;
}
