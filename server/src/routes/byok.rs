//! The byok-relay flow for browser-only apps, per tenant and off by default: a page registers
//! an anonymous end user with its tenant's publishable app id (`POST /users`, rate-limited per
//! client IP) and keeps the session token it gets; with that token (`x-relay-token`) the user
//! stores, lists and deletes their own provider keys. Every call is checked against the
//! tenant's allowed origins.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use rand::distributions::{Alphanumeric, DistString};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::session::{BrowserSession, SessionService};
use crate::auth::tokens::reveal;
use crate::browser::BrowserAccess;
use crate::domain::key_health::KeyStatus;
use crate::domain::money::dollars_param;
use crate::error::{ApiError, ErrorBody};
use crate::keys::{parse_provider, KeyService};
use crate::providers::ProviderId;
use crate::ratelimit::{self, RateLimiter, Scope};
use crate::store::{Store, TenantSettings};
use crate::webhooks::Webhooks;

/// Lifetime of an anonymous user's session token. The token is the user's only credential, so
/// it outlives a developer-issued one (15 min default); when it expires the page registers
/// again, as a new user whose keys must be entered again.
pub const ANON_TOKEN_TTL_SECS: i64 = 24 * 60 * 60;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RegisterRequest, example = json!({"app_id": "app_8Jk2…"}))]
pub struct RegisterBody {
    /// The app's public (publishable) app id.
    app_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AnonymousSession, example = json!({"token": "eyJhbGciOiJIUzI1NiJ9…", "expiresAt": "2026-01-02T12:00:00Z"}))]
struct Registered<'a> {
    /// The new anonymous user's session token, for `x-relay-token`. Shown only here.
    token: &'a str,
    expires_at: DateTime<Utc>,
}

fn flow_disabled() -> ApiError {
    ApiError::forbidden("byok_flow_disabled", "The byok-relay browser flow is not enabled for this app.")
}

/// Register an anonymous user (byok-relay flow)
///
/// For browser-only apps whose tenant turned the byok-relay flow on: creates an anonymous end
/// user and returns its session token (24 h). Rate-limited per client IP; the page's origin must
/// be one of the app's allowed origins.
#[utoipa::path(
    post,
    path = "/users",
    tag = "byok-flow",
    operation_id = "registerAnonymousUser",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The user was registered.", body = Registered),
        (status = 400, description = "Invalid body.", body = ErrorBody),
        (status = 403, description = "The flow is off for this app (`byok_flow_disabled`), or the origin is not allowed.", body = ErrorBody),
        (status = 404, description = "No app with this app_id (`app_not_found`).", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json.", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address (`rate_limit_exceeded`, with `Retry-After`).", body = ErrorBody,
         headers(("retry-after" = u64, description = "Seconds to wait."))),
    )
)]
pub async fn register(
    req: HttpRequest,
    store: web::Data<dyn Store>,
    sessions: web::Data<SessionService>,
    browser: web::Data<BrowserAccess>,
    limiter: web::Data<RateLimiter>,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    // Counted before anything is looked up, so unknown app ids cost attempts too.
    ratelimit::admit_ip(&req, &limiter, &browser, Scope::Registration).await?;
    let app_not_found = || ApiError::not_found("app_not_found", "No app with this app_id exists.").param("app_id");
    let app_id = body.app_id.trim();
    // A malformed id (control characters, wrong alphabet, too long) cannot name an app; it is
    // answered like an unknown one without reaching the database.
    if !crate::tenants::is_well_formed_app_id(app_id) {
        return Err(app_not_found());
    }
    let tenant = store.find_tenant_by_app_id(app_id).await?.ok_or_else(app_not_found)?;
    let settings = store.get_tenant_settings(tenant.id).await?.unwrap_or_default();
    browser.check_origin_with(&settings, &req)?;
    if !settings.byok_flow_enabled {
        return Err(flow_disabled());
    }
    let label = format!("anon_{}", Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24));
    let user = store.upsert_end_user(tenant.id, &label, Utc::now()).await?;
    let issued = sessions.issue(&user, None, Duration::seconds(ANON_TOKEN_TTL_SECS))?;
    let target = Some(format!("end_user:{}", user.id));
    crate::audit::record(&**store, Some(tenant.id), "end_user", "end_user.register", target).await;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(Registered { token: reveal(&issued.token), expires_at: issued.claims.expires_at() }))
}

/// The session's tenant must have the flow on, and the token must cover `provider` (if any).
async fn allowed(store: &dyn Store, session: &BrowserSession, provider: Option<ProviderId>) -> Result<(), ApiError> {
    let settings: TenantSettings = store.get_tenant_settings(session.claims.tid).await?.unwrap_or_default();
    if !settings.byok_flow_enabled {
        return Err(flow_disabled());
    }
    if let Some(p) = provider.filter(|p| !session.claims.allows(*p)) {
        return Err(ApiError::forbidden("provider_not_allowed", format!("This session token does not cover {p}."))
            .param("provider"));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StoreKeyRequest, example = json!({"key": "sk-proj-…"}))]
pub struct StoreBody {
    /// The provider API key. Stored encrypted; never returned.
    #[schema(value_type = String, format = Password)]
    key: SecretString,
    /// `openai-compatible` only: the server's base URL.
    #[serde(rename = "baseUrl", alias = "base_url")]
    base_url: Option<String>,
    /// The end user's own cap on what the app may spend on this key per calendar month (UTC),
    /// in US dollars; omitted, none.
    #[serde(rename = "monthlyCapUsd")]
    #[schema(minimum = 0, example = 5.0)]
    monthly_cap_usd: Option<f64>,
}

/// Store a key (byok-relay flow)
///
/// Checks the key like `POST /v1/connect` does, then stores it for the session's user,
/// replacing any key they had for this provider.
#[utoipa::path(
    post,
    path = "/keys/{provider}",
    tag = "byok-flow",
    operation_id = "storeKey",
    security(("session_token" = [])),
    params(("provider" = ProviderId, Path, description = "The provider the key is for.")),
    request_body = StoreBody,
    responses(
        (status = 200, description = "The key is stored.", body = KeyStored),
        (status = 400, description = "Invalid body, unknown provider, or a key the provider rejects (`provider_key_malformed`, `provider_key_rejected`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked session token.", body = ErrorBody),
        (status = 403, description = "The flow is off for this app, the origin is not allowed, or the token does not cover this provider.", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json.", body = ErrorBody),
        (status = 502, description = "The provider could not be reached to check the key; nothing was stored.", body = ErrorBody),
    )
)]
pub async fn store_key(
    session: BrowserSession,
    store: web::Data<dyn Store>,
    keys: web::Data<KeyService>,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
    body: web::Json<StoreBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = parse_provider(&path)?;
    allowed(&**store, &session, Some(provider)).await?;
    let cap = body.monthly_cap_usd.map(|d| dollars_param(d, "monthlyCapUsd")).transpose()?;
    let done =
        keys.store_for_end_user(&session.end_user, provider, &body.key, "key", body.base_url.as_deref(), cap).await?;
    webhooks.key_connected(done.tenant_id, &done.end_user_label, done.provider.as_str(), &done.fingerprint).await;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({ "provider": done.provider, "fingerprint": done.fingerprint })))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BrowserKey)]
struct KeyView {
    provider: String,
    fingerprint: String,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
    /// `invalid`: the provider refused the key; store a new one. `quota_exhausted`: its account
    /// is out of credit.
    status: KeyStatus,
    /// Why the status last changed (masked; never the key).
    #[schema(required = true)]
    status_reason: Option<String>,
    #[schema(required = true)]
    status_at: Option<DateTime<Utc>>,
}

/// List the session user's keys (byok-relay flow)
///
/// Providers and fingerprints, never the keys.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "byok-flow",
    operation_id = "listKeys",
    security(("session_token" = [])),
    responses(
        (status = 200, description = "The user's stored keys.", body = KeyList),
        (status = 401, description = "Missing, invalid, expired or revoked session token.", body = ErrorBody),
        (status = 403, description = "The flow is off for this app, or the origin is not allowed.", body = ErrorBody),
    )
)]
pub async fn list_keys(session: BrowserSession, store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    allowed(&**store, &session, None).await?;
    let keys: Vec<KeyView> = store
        .list_provider_keys(session.end_user.id)
        .await?
        .into_iter()
        .map(|k| KeyView {
            provider: k.provider,
            fingerprint: k.fingerprint,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            status: k.health.status,
            status_reason: k.health.reason,
            status_at: k.health.at,
        })
        .collect();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({ "keys": keys })))
}

/// Delete a key (byok-relay flow)
#[utoipa::path(
    delete,
    path = "/keys/{provider}",
    tag = "byok-flow",
    operation_id = "deleteKey",
    security(("session_token" = [])),
    params(("provider" = ProviderId, Path, description = "The provider whose key to delete.")),
    responses(
        (status = 200, description = "The key was deleted.", body = KeyDeleted),
        (status = 400, description = "Unknown provider (`provider_unknown`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked session token.", body = ErrorBody),
        (status = 403, description = "The flow is off for this app, the origin is not allowed, or the token does not cover this provider.", body = ErrorBody),
        (status = 404, description = "No key for this provider (`enduser_key_missing`).", body = ErrorBody),
    )
)]
pub async fn delete_key(
    session: BrowserSession,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let provider = parse_provider(&path)?;
    allowed(&**store, &session, Some(provider)).await?;
    let existing = store.get_provider_key(session.end_user.id, provider.as_str()).await?;
    if !store.delete_provider_key(session.end_user.id, provider.as_str()).await? {
        return Err(ApiError::not_found("enduser_key_missing", format!("No {provider} key is stored for this user.")));
    }
    let target = format!("end_user:{} provider:{provider}", session.end_user.id);
    crate::audit::record(&**store, Some(session.claims.tid), "end_user", "provider_key.delete", Some(target)).await;
    let fingerprint = existing.map(|k| k.fingerprint);
    webhooks
        .key_removed(session.end_user.tenant_id, &session.end_user.label, provider.as_str(), fingerprint.as_deref())
        .await;
    Ok(HttpResponse::Ok().json(json!({ "provider": provider, "deleted": true })))
}

// Schemas of the answers built with `json!` above, for the OpenAPI document only.

#[derive(utoipa::ToSchema)]
#[schema(example = json!({"provider": "openai", "fingerprint": "sk-proj-…WXYZ"}))]
#[allow(dead_code)] // documentation only
struct KeyStored {
    provider: ProviderId,
    /// Enough of the key to recognise it, never the key.
    fingerprint: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(utoipa::ToSchema)]
#[schema(example = json!({"provider": "openai", "deleted": true}))]
#[allow(dead_code)] // documentation only
struct KeyDeleted {
    provider: ProviderId,
    /// Always true.
    deleted: bool,
}
