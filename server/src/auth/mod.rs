//! Who is calling. Deny by default: `authenticate` runs on every route and lets a request through
//! without a developer key only if its route is in `PUBLIC_ROUTES` or is the console's, which
//! authenticates with its own session cookie (`console::ConsoleAuth`).

mod caller;
pub mod console;
pub mod session;
pub mod tokens;

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use uuid::Uuid;

pub(crate) use caller::data;
pub use caller::{paid_header, Caller};

use crate::error::ApiError;
use crate::ratelimit::{self, RateLimiter, Scope};
use crate::store::{Store, TenantSettings};
use tokens::{hashes_equal, ParsedApiKey};

/// Routes that answer without a developer key: `{}` stands for one path segment.
/// Registration-token routes authenticate with the token in the body or path instead; the
/// byok-flow routes with an app id (`POST /users`) or a session token (`x-relay-token`).
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/connect/{}"),
    ("POST", "/v1/connect"),
    ("POST", "/users"),
    ("GET", "/keys"),
    ("POST", "/keys/{}"),
    ("DELETE", "/keys/{}"),
    ("GET", "/widget.js"),
    ("GET", "/widget/{}"),
    ("GET", "/connect"),
];

pub(crate) fn is_public(method: &str, path: &str) -> bool {
    PUBLIC_ROUTES.iter().any(|(m, pattern)| {
        if *m != method {
            return false;
        }
        let mut want = pattern.split('/');
        let mut got = path.split('/');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some("{}"), Some(seg)) if !seg.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    })
}

/// The raw passthrough also serves browsers: a `/relay/…` request that carries a session token
/// (`x-relay-token`) skips the developer-key check here, and its handler must authenticate it
/// with `session::authenticate_session` (`TenantAuth` stays absent, so a handler that only
/// accepts developer keys still answers 401).
fn is_browser_session_call(req: &ServiceRequest) -> bool {
    req.path().starts_with("/relay/") && req.headers().contains_key(session::SESSION_HEADER)
}

/// A request authenticated with a tenant's `rly-` key.
#[derive(Debug, Clone, Copy)]
pub struct TenantAuth {
    pub tenant_id: Uuid,
    pub api_key_id: Uuid,
}

impl FromRequest for TenantAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        // Present whenever the middleware let a non-public route through.
        ready(req.extensions().get::<TenantAuth>().copied().ok_or_else(missing_key))
    }
}

pub(crate) fn missing_key() -> ApiError {
    ApiError::unauthenticated(
        "relay_key_missing",
        "No API key provided. Send your Relay key as 'Authorization: Bearer rly-...'.",
    )
}

fn invalid_key() -> ApiError {
    ApiError::unauthenticated("relay_key_invalid", "The Relay API key is not valid.")
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if is_public(req.method().as_str(), req.path())
        || is_browser_session_call(&req)
        || console::is_console_path(req.path())
    {
        return next.call(req).await.map(|res| with_limit_headers(res.map_into_boxed_body()));
    }
    let (store, limiter) = match (data::<dyn Store>(req.request()), data::<RateLimiter>(req.request())) {
        (Ok(store), Ok(limiter)) => (store, limiter),
        (Err(e), _) | (_, Err(e)) => return Ok(req.into_response(actix_web::HttpResponse::from_error(e))),
    };
    let headers = req.headers();
    let checked = match (headers.get(AUTHORIZATION), headers.get(X_API_KEY)) {
        (None, Some(key)) if X_API_KEY_ROUTES.contains(&req.path()) => {
            let token = key.to_str().map_err(|_| invalid_key()).map(str::trim);
            match token {
                Ok(token) => check_token(&**store, token).await,
                Err(e) => Err(e),
            }
        }
        (header, _) => check_api_key(&**store, header).await,
    };
    let auth = match checked {
        Ok(auth) => auth,
        Err(e) => return Ok(req.into_response(actix_web::HttpResponse::from_error(e))),
    };
    tracing::Span::current().record("tenant_id", tracing::field::display(auth.tenant_id));
    req.extensions_mut().insert(auth);
    if let Err(e) = admit_api_key(req.request(), &**store, &limiter, auth).await {
        return Ok(req.into_response(actix_web::HttpResponse::from_error(e)));
    }
    next.call(req).await.map(|res| with_limit_headers(res.map_into_boxed_body()))
}

/// The settings of the tenant a request acts for, read once per request (from the store's
/// cache) and kept on the request for the next reader.
#[derive(Clone)]
struct RequestSettings(Uuid, Arc<TenantSettings>);

pub(crate) async fn tenant_settings(
    req: &HttpRequest,
    store: &dyn Store,
    tenant_id: Uuid,
) -> Result<Arc<TenantSettings>, ApiError> {
    if let Some(RequestSettings(id, settings)) = req.extensions().get::<RequestSettings>().cloned() {
        if id == tenant_id {
            return Ok(settings);
        }
    }
    let settings = Arc::new(store.get_tenant_settings(tenant_id).await?.unwrap_or_default());
    req.extensions_mut().insert(RequestSettings(tenant_id, settings.clone()));
    Ok(settings)
}

/// Counts a request against its `rly-` key's limit (the tenant's, else the server's).
async fn admit_api_key(
    req: &HttpRequest,
    store: &dyn Store,
    limiter: &RateLimiter,
    auth: TenantAuth,
) -> Result<(), ApiError> {
    let settings = tenant_settings(req, store, auth.tenant_id).await?;
    let Some(rate) = settings.rate_limit_api_key.unwrap_or(limiter.defaults.api_key).rate() else {
        return Ok(());
    };
    let decision = limiter.check(Scope::ApiKey, auth.api_key_id.as_bytes(), rate).await;
    ratelimit::apply(req, decision)
}

/// Writes the tightest rate limit the request was counted against as `x-ratelimit-*` headers
/// (a 429 already carries them).
fn with_limit_headers(mut res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let applied = res.request().extensions().get::<ratelimit::Applied>().copied();
    if let Some(ratelimit::Applied(decision)) = applied {
        if decision.allowed {
            decision.write_headers(res.headers_mut());
        }
    }
    res
}

/// The Anthropic SDKs send their key as `x-api-key`: the Messages API takes the Relay key there
/// too (a Bearer token wins when both are sent).
const X_API_KEY: &str = "x-api-key";
const X_API_KEY_ROUTES: &[&str] = &["/v1/messages"];

async fn check_api_key(
    store: &dyn Store,
    header: Option<&actix_web::http::header::HeaderValue>,
) -> Result<TenantAuth, ApiError> {
    let header = header.ok_or_else(missing_key)?;
    let value = header.to_str().map_err(|_| invalid_key())?.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("bearer") {
        return Err(missing_key());
    }
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("relay_key_invalid", "The Authorization header must be 'Bearer rly-...'.")
        })?
        .trim();
    check_token(store, token).await
}

async fn check_token(store: &dyn Store, token: &str) -> Result<TenantAuth, ApiError> {
    if token.is_empty() {
        return Err(missing_key());
    }
    let parsed = ParsedApiKey::parse(token).ok_or_else(invalid_key)?;
    let record = store.find_api_key(&parsed.public_id).await?.ok_or_else(invalid_key)?;
    if !hashes_equal(&parsed.hash, &record.secret_hash) {
        return Err(invalid_key());
    }
    if record.revoked_at.is_some() {
        return Err(ApiError::unauthenticated("relay_key_revoked", "This Relay API key has been revoked."));
    }
    Ok(TenantAuth { tenant_id: record.tenant_id, api_key_id: record.id })
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn public_list_is_exact() {
        assert!(is_public("GET", "/api/health"));
        assert!(is_public("GET", "/openapi.json"));
        assert!(!is_public("POST", "/openapi.json"));
        assert!(!is_public("GET", "/openapi.json/x"));
        assert!(is_public("GET", "/v1/connect/rrt-abc"));
        assert!(is_public("POST", "/v1/connect"));
        assert!(!is_public("GET", "/v1/connect/"));
        assert!(!is_public("GET", "/v1/connect/a/b"));
        assert!(!is_public("POST", "/v1/connect/x"));
        assert!(!is_public("DELETE", "/api/health"));
        assert!(!is_public("GET", "/api/health/"));
        assert!(!is_public("GET", "/v1/users/x"));
        assert!(!is_public("GET", "/"));
        assert!(is_public("POST", "/users"));
        assert!(is_public("GET", "/keys"));
        assert!(is_public("POST", "/keys/openai"));
        assert!(is_public("DELETE", "/keys/openai"));
        assert!(!is_public("GET", "/users"));
        assert!(!is_public("POST", "/users/x"));
        assert!(!is_public("POST", "/keys"));
        assert!(!is_public("DELETE", "/keys"));
        assert!(!is_public("GET", "/keys/openai"));
        assert!(!is_public("POST", "/keys/a/b"));
        assert!(!is_public("POST", "/v1/session-tokens"));
        assert!(is_public("GET", "/widget.js"));
        assert!(is_public("GET", "/widget/frame"));
        assert!(is_public("GET", "/connect"));
        assert!(!is_public("POST", "/connect"));
        assert!(!is_public("GET", "/widget/a/b"));
        assert!(!is_public("GET", "/widget"));
    }
}
