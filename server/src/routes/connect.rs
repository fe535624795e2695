//! The widget's routes, authorised by a registration token: describe the token (without using
//! it) and connect a key (using it).

use actix_web::http::header::ORIGIN;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::browser::BrowserAccess;
use crate::domain::money::dollars_param;
use crate::error::{ApiError, ErrorBody};
use crate::keys::KeyService;
use crate::providers::ProviderId;
use crate::ratelimit::{self, RateLimiter, Scope};
use crate::store::Store;
use crate::webhooks::Webhooks;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegistrationTokenDescription)]
struct Description {
    /// Set when the token only accepts one provider.
    #[schema(required = true, value_type = Option<ProviderId>)]
    provider: Option<String>,
    /// The providers the widget may offer.
    #[schema(value_type = Vec<ProviderId>)]
    providers: Vec<&'static str>,
    app_name: String,
    /// The tenant's public app id: the widget's frame checks that the token belongs to the app
    /// it was opened for, so the name it shows is the one the key goes to.
    app_id: String,
    expires_at: DateTime<Utc>,
}

/// Describe a registration token
///
/// What the widget needs to render: provider lock, app display name and id, expiry. Does not
/// consume the token. From a browser, the page's origin must be one of the app's allowed origins.
#[utoipa::path(
    get,
    path = "/v1/connect/{token}",
    tag = "widget",
    operation_id = "describeRegistrationToken",
    params(("token" = String, Path, description = "The registration token (`rrt-…`).", example = "rrt-3kTq9…")),
    responses(
        (status = 200, description = "The token is valid and unused.", body = Description,
         example = json!({"provider": null, "providers": ["openai", "anthropic"], "appName": "Acme Chat", "appId": "app_8Jk2…", "expiresAt": "2026-01-01T12:15:00Z"})),
        (status = 403, description = "The calling page's origin is not allowed for this app (`origin_not_allowed`).", body = ErrorBody),
        (status = 404, description = "No such token (`registration_token_invalid`).", body = ErrorBody),
        (status = 410, description = "The token was used or has expired (`registration_token_used`, `registration_token_expired`).", body = ErrorBody),
        (status = 429, description = "Too many key-connect calls from this address (`rate_limit_exceeded`, with `Retry-After`).", body = ErrorBody),
    )
)]
pub async fn describe(
    req: HttpRequest,
    keys: web::Data<KeyService>,
    store: web::Data<dyn Store>,
    browser: web::Data<BrowserAccess>,
    limiter: web::Data<RateLimiter>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ratelimit::admit_ip(&req, &limiter, &browser, Scope::Connect).await?;
    let info = keys.registration_token(&token).await?;
    browser.check_origin(info.tenant_id, &req).await?;
    let providers = match &info.provider {
        Some(p) => ProviderId::STORABLE.into_iter().filter(|x| x.as_str() == p).map(ProviderId::as_str).collect(),
        None => ProviderId::STORABLE.map(ProviderId::as_str).to_vec(),
    };
    let app_id = store.get_tenant(info.tenant_id).await?.map(|t| t.app_id).unwrap_or_default();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(Description {
        provider: info.provider,
        providers,
        app_name: info.tenant_name,
        app_id,
        expires_at: info.expires_at,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ConnectRequest, example = json!({"registrationToken": "rrt-3kTq9…", "provider": "openai", "apiKey": "sk-proj-…"}))]
pub struct ConnectBody {
    /// The registration token (`rrt-…`) the app handed to the widget.
    registration_token: String,
    #[schema(value_type = ProviderId)]
    provider: String,
    /// The end user's provider API key. Stored encrypted; never returned.
    #[schema(value_type = String, format = Password)]
    api_key: SecretString,
    /// `openai-compatible` only: the server's base URL (https, public unless the operator
    /// allow-listed it).
    base_url: Option<String>,
    /// The end user's own cap on what the app may spend on this key per calendar month (UTC),
    /// in US dollars; omitted, none. Only connecting the key again changes it.
    #[schema(minimum = 0, example = 5.0)]
    monthly_cap_usd: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ConnectedKey, example = json!({"provider": "openai", "fingerprint": "sk-proj-…WXYZ"}))]
struct Connected {
    provider: ProviderId,
    fingerprint: String,
}

/// Connect a provider key
///
/// Checks the key's format and (unless the operator turned it off) that the provider accepts
/// it, then stores it and consumes the registration token atomically: of two concurrent
/// redemptions exactly one succeeds.
#[utoipa::path(
    post,
    path = "/v1/connect",
    tag = "widget",
    operation_id = "connectKey",
    request_body = ConnectBody,
    responses(
        (status = 200, description = "The key is stored.", body = Connected),
        (status = 400, description = "Invalid body, unknown provider, a provider the token is not for, or a key the provider rejects (`provider_key_malformed`, `provider_key_rejected`, `provider_mismatch`, `base_url_required`, …).", body = ErrorBody),
        (status = 403, description = "The calling page's origin is not allowed for this app.", body = ErrorBody),
        (status = 404, description = "No such token (`registration_token_invalid`).", body = ErrorBody),
        (status = 410, description = "The token was used or has expired.", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json.", body = ErrorBody),
        (status = 429, description = "Too many key-connect calls from this address (`rate_limit_exceeded`, with `Retry-After`).", body = ErrorBody),
        (status = 502, description = "The provider could not be reached to check the key; nothing was stored (`provider_unavailable`).", body = ErrorBody),
    )
)]
pub async fn connect(
    req: HttpRequest,
    keys: web::Data<KeyService>,
    browser: web::Data<BrowserAccess>,
    limiter: web::Data<RateLimiter>,
    webhooks: web::Data<Webhooks>,
    body: web::Json<ConnectBody>,
) -> Result<HttpResponse, ApiError> {
    ratelimit::admit_ip(&req, &limiter, &browser, Scope::Connect).await?;
    let body = body.into_inner();
    // From a browser: the token's tenant must allow the page's origin.
    if req.headers().contains_key(ORIGIN) {
        let info = keys.registration_token(&body.registration_token).await?;
        browser.check_origin(info.tenant_id, &req).await?;
    }
    let cap = body.monthly_cap_usd.map(|d| dollars_param(d, "monthlyCapUsd")).transpose()?;
    let done =
        keys.connect(&body.registration_token, &body.provider, &body.api_key, body.base_url.as_deref(), cap).await?;
    webhooks.key_connected(done.tenant_id, &done.end_user_label, done.provider.as_str(), &done.fingerprint).await;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(Connected { provider: done.provider, fingerprint: done.fingerprint }))
}
