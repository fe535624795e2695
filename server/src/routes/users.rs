//! End users as their developer sees them: which providers they connected (never the keys), and
//! erasure of one key or of everything stored for the user.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TenantAuth;
use crate::domain::key_health::KeyStatus;
use crate::domain::money::Period;
use crate::domain::EndUserLabel;
use crate::error::{ApiError, ErrorBody};
use crate::providers::{accepted_providers, ProviderId};
use crate::store::{EndUser, SpendKey, SpendSubject, Store};
use crate::usage_log::UsageLog;
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
    /// The end user's own cap on what your app may spend on this key per calendar month (UTC),
    /// in US dollars; null when they set none. Only they can change it, by connecting the key
    /// again.
    #[schema(required = true)]
    monthly_cap_usd: Option<f64>,
    /// Spent on this key in the current calendar month (UTC), in US dollars.
    spent_this_month_usd: f64,
    /// `invalid`: the provider refused the key and calls get 403 `enduser_key_invalid` until
    /// the end user connects a new one; `quota_exhausted`: its account is out of credit (calls
    /// still go through; the next success sets `ok`).
    status: KeyStatus,
    /// Why the status last changed, from the provider's answer (masked; never the key).
    #[schema(required = true, example = "anthropic answered 401 authentication_error: invalid x-api-key")]
    status_reason: Option<String>,
    /// When the status last changed; null if it has not since the key was connected.
    #[schema(required = true)]
    status_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EndUser, example = json!({"endUserLabel": "user_123", "providers": [{"provider": "openai", "fingerprint": "sk-proj-…WXYZ", "createdAt": "2026-01-01T12:00:00Z", "lastUsedAt": null, "monthlyCapUsd": 5.0, "spentThisMonthUsd": 1.25, "status": "ok", "statusReason": null, "statusAt": null}], "paid": true}))]
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

pub(crate) fn label(raw: &str) -> Result<EndUserLabel, ApiError> {
    EndUserLabel::parse(raw).map_err(|e| e.into_api("label"))
}

fn user_not_found() -> ApiError {
    ApiError::not_found("enduser_not_found", "No end user with this label exists for your app.")
}

pub(crate) async fn find_user(store: &dyn Store, auth: TenantAuth, raw: &str) -> Result<EndUser, ApiError> {
    let label = label(raw)?;
    store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(user_not_found)
}

/// Get an end user
///
/// Which providers the end user connected, with fingerprints, times and each key's health
/// (`status`, `statusReason`, `statusAt`). Never the keys.
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
    usage: web::Data<UsageLog>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&**store, auth, &path).await?;
    usage.flush().await?;
    let keys = store.list_provider_keys(user.id).await?;
    let month = Period::Month.start(Utc::now());
    let counters: Vec<SpendKey> = keys
        .iter()
        .map(|k| SpendKey {
            subject: SpendSubject::Key { end_user_id: user.id, provider: k.provider.clone() },
            period: Period::Month,
            start: month,
        })
        .collect();
    let spent = store.spend(auth.tenant_id, &counters).await?;
    let providers = keys
        .into_iter()
        .zip(spent)
        .map(|(k, spent)| ProviderView {
            provider: k.provider,
            fingerprint: k.fingerprint,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            monthly_cap_usd: k.monthly_cap.map(|c| c.dollars()),
            spent_this_month_usd: spent.dollars(),
            status: k.health.status,
            status_reason: k.health.reason,
            status_at: k.health.at,
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
