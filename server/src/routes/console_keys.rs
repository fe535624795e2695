//! The console's API keys page: list a tenant's `rly-` keys with when each was last used,
//! create one (its secret shown once), revoke one. Admins and owners change; viewers read.

use std::collections::HashMap;

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::console::ConsoleAuth;
use crate::browser::BrowserAccess;
use crate::error::{ApiError, ErrorBody};
use crate::store::console::Role;
use crate::store::{ApiKeyRecord, DynStore, Store};
use crate::tenants;

use super::console_session::address;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleApiKey)]
pub struct KeyView {
    /// The key's public id (what revoking takes).
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    /// `rly-…WXYZ`: enough to recognise the key, never the key.
    display: String,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    revoked_at: Option<DateTime<Utc>>,
    /// The last call recorded for this key (from the usage events still kept); null if none.
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
}

fn view(k: ApiKeyRecord, last_used_at: Option<DateTime<Utc>>) -> KeyView {
    KeyView {
        display: format!("rly-…{}", k.last4),
        id: k.public_id,
        name: k.name,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
        last_used_at,
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = ConsoleApiKeyList)]
pub struct KeyList {
    data: Vec<KeyView>,
}

/// List API keys
#[utoipa::path(
    get,
    path = "/console/api/keys",
    tag = "console",
    operation_id = "consoleListApiKeys",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "The tenant's keys, newest first.", body = KeyList),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "No tenant (`console_no_tenant`).", body = ErrorBody),
    )
)]
pub async fn list(auth: ConsoleAuth, store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Viewer)?;
    let mut keys = store.list_api_keys(tenant_id).await?;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    let used: HashMap<_, _> = store.console().api_keys_last_used(tenant_id).await?.into_iter().collect();
    let data = keys
        .into_iter()
        .map(|k| {
            let last = used.get(&k.id).copied();
            view(k, last)
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeyList { data }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ConsoleCreateApiKey)]
pub struct CreateKey {
    /// What the key is for (up to 100 characters).
    #[schema(example = "production backend")]
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleCreatedApiKey)]
pub struct CreatedKey {
    #[serde(flatten)]
    key: KeyView,
    /// The secret key, shown this once: store it now.
    api_key: String,
}

/// Create an API key
///
/// The secret is in this answer only.
#[utoipa::path(
    post,
    path = "/console/api/keys",
    tag = "console",
    operation_id = "consoleCreateApiKey",
    security(("console_session" = [])),
    params(("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in.")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `apiKey` is shown once.", body = CreatedKey),
        (status = 400, description = "The name is too long or the body is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "A viewer (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    browser: web::Data<BrowserAccess>,
    body: web::Json<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Admin)?;
    let name = body.into_inner().name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(
            ApiError::invalid_request("name_invalid", "The name must be up to 100 printable characters.").param("name")
        );
    }
    let store: DynStore = store.into_inner();
    let actor = auth.user.actor();
    let key = tenants::create_api_key_from(&store, tenant_id, name.as_deref(), &actor, address(&req, &browser)).await?;
    let api_key = key.secret.expose_secret().to_owned();
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(CreatedKey { key: view(key.record, None), api_key }))
}

#[derive(Serialize, ToSchema)]
#[schema(as = ConsoleRevokedApiKey)]
pub struct RevokedKey {
    id: String,
    /// Always true.
    revoked: bool,
}

/// Revoke an API key
///
/// Calls with the key fail at once (on every node within the cache's lifetime).
#[utoipa::path(
    delete,
    path = "/console/api/keys/{id}",
    tag = "console",
    operation_id = "consoleRevokeApiKey",
    security(("console_session" = [])),
    params(
        ("id" = String, Path, description = "The key's public id."),
        ("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in."),
    ),
    responses(
        (status = 200, description = "Revoked.", body = RevokedKey),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "A viewer (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
        (status = 404, description = "No such live key in this tenant (`api_key_not_found`).", body = ErrorBody),
    )
)]
pub async fn revoke(
    req: HttpRequest,
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    browser: web::Data<BrowserAccess>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Admin)?;
    let id = path.into_inner();
    let not_found = || ApiError::not_found("api_key_not_found", "No live API key with this id in your tenant.");
    // Only a public id here (never a whole key in a URL).
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(not_found());
    }
    let store: DynStore = store.into_inner();
    if !store.revoke_api_key(tenant_id, &id, Utc::now()).await? {
        return Err(not_found());
    }
    audit(&*store, &auth, "api_key.revoke", &id, address(&req, &browser)).await;
    Ok(HttpResponse::Ok().json(RevokedKey { id, revoked: true }))
}

async fn audit(store: &dyn Store, auth: &ConsoleAuth, action: &str, target: &str, address: Option<String>) {
    let tenant = auth.user.tenant.map(|t| t.0);
    crate::audit::record_from(store, tenant, &auth.user.actor(), action, Some(target.to_owned()), address).await;
}
