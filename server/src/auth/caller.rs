//! `Caller`: who a provider call is for, resolved once per request as an extractor: a `rly-` key
//! with `X-Relay-User` (and `X-Relay-Paid`), or a browser's session token; then admitted.
//!
//! Admission: the end user's rate limit for their tier, and a free-tier model allowlist.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures::future::LocalBoxFuture;
use uuid::Uuid;

use super::session::{SessionClaims, SessionService, SESSION_HEADER};
use super::TenantAuth;
use crate::browser::BrowserAccess;
use crate::domain::EndUserLabel;
use crate::error::ApiError;
use crate::providers::ProviderId;
use crate::ratelimit::{self, RateLimiter, Scope};
use crate::store::{EndUser, Store, TenantSettings};

/// Who a provider call is for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: Uuid,
    /// The developer key used; `None` for a browser's session token.
    pub api_key_id: Option<Uuid>,
    /// The end user, whose `paid` is the tier of this call: what the developer's backend sent
    /// (`X-Relay-Paid`) or, for a browser, what it last sent.
    pub end_user: EndUser,
    /// A free-tier caller of a tenant with a model allowlist: the allowed model globs.
    pub free_models: Option<Arc<[String]>>,
    /// A browser's session token, which may cover only some providers.
    pub session: Option<SessionClaims>,
    /// When the request arrived (after authentication), for latency and overhead.
    pub started: Instant,
}

impl Caller {
    /// A session token may be limited to some providers; a developer key may use any.
    pub fn may_use(&self, provider: ProviderId) -> Result<(), ApiError> {
        match &self.session {
            Some(claims) if !claims.allows(provider) => Err(ApiError::forbidden(
                "provider_not_allowed",
                format!("This session token is not valid for {provider}."),
            )),
            _ => Ok(()),
        }
    }

    /// A free-tier caller may only name models of the tenant's allowlist. `names` are the forms
    /// the model was asked for by (as sent, and without a `provider/` prefix).
    pub fn check_model(&self, names: &[&str]) -> Result<(), ApiError> {
        let Some(allowed) = &self.free_models else { return Ok(()) };
        if names.iter().any(|n| allowed.iter().any(|p| ratelimit::glob_matches(p, n))) {
            return Ok(());
        }
        let shown = names.first().copied().unwrap_or_default();
        Err(ApiError::forbidden(
            "model_not_allowed",
            format!(
                "The model {shown:?} is not available on this app's free tier. Free-tier models: {}.",
                allowed.join(", ")
            ),
        )
        .param("model"))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let started = Instant::now();
            let store = data::<dyn Store>(&req)?;
            let auth = req.extensions().get::<TenantAuth>().copied();
            let mut caller = match auth {
                Some(auth) => for_backend(&req, auth, &**store, started).await?,
                // The auth middleware lets a request without a developer key through only for the
                // passthrough with a session token.
                None if req.headers().contains_key(SESSION_HEADER) => {
                    let sessions = data::<SessionService>(&req)?;
                    let browser = data::<BrowserAccess>(&req)?;
                    let (claims, end_user) = super::session::authenticate_session(&sessions, &browser, &req).await?;
                    Caller {
                        tenant_id: claims.tid,
                        api_key_id: None,
                        // A browser cannot vouch for its own tier: the one the backend last sent.
                        end_user,
                        free_models: None,
                        session: Some(claims),
                        started,
                    }
                }
                None => return Err(super::missing_key()),
            };
            let limiter = data::<RateLimiter>(&req)?;
            let settings = super::tenant_settings(&req, &**store, caller.tenant_id).await?;
            admit(&req, &limiter, &settings, &mut caller).await?;
            Ok(caller)
        })
    }
}

/// A service the app registered (`web::Data<T>`).
pub(crate) fn data<T: ?Sized + 'static>(req: &HttpRequest) -> Result<web::Data<T>, ApiError> {
    req.app_data::<web::Data<T>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("service {} is not registered", std::any::type_name::<T>())))
}

fn header<'a>(req: &'a HttpRequest, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    req.headers()
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid_request("invalid_header", format!("The {name} header must be printable text."))
                    .param(name)
            })
        })
        .transpose()
}

/// `X-Relay-Paid: true|false`, when sent.
pub fn paid_header(req: &HttpRequest) -> Result<Option<bool>, ApiError> {
    match header(req, "X-Relay-Paid")?.map(str::trim) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => {
            Err(ApiError::invalid_request("invalid_header", "X-Relay-Paid must be true or false.")
                .param("X-Relay-Paid"))
        }
    }
}

/// The end user a developer's backend names in `X-Relay-User`, who must have connected a key.
async fn for_backend(
    req: &HttpRequest,
    auth: TenantAuth,
    store: &dyn Store,
    started: Instant,
) -> Result<Caller, ApiError> {
    let raw = header(req, "X-Relay-User")?.ok_or_else(|| {
        ApiError::invalid_request(
            "missing_end_user",
            "Name the end user this request is for in the X-Relay-User header.",
        )
        .param("X-Relay-User")
    })?;
    let label = EndUserLabel::parse(raw).map_err(|e| e.into_api("X-Relay-User"))?;
    let paid = paid_header(req)?.unwrap_or(true);
    let mut end_user = store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
        ApiError::not_found(
            "enduser_key_missing",
            "This end user has not connected any provider key. Send them a registration token to connect one.",
        )
    })?;
    // The stored tier follows the developer's backend: it is what GET /v1/users shows and what
    // the user's browser calls (session tokens) are limited by.
    if end_user.paid != paid {
        store.set_end_user_paid(auth.tenant_id, end_user.id, paid).await?;
        end_user.paid = paid;
    }
    Ok(Caller {
        tenant_id: auth.tenant_id,
        api_key_id: Some(auth.api_key_id),
        end_user,
        free_models: None,
        session: None,
        started,
    })
}

/// Counts the call against the end user's limit for their tier, and notes a free-tier model
/// allowlist on the caller.
async fn admit(
    req: &HttpRequest,
    limiter: &RateLimiter,
    settings: &TenantSettings,
    caller: &mut Caller,
) -> Result<(), ApiError> {
    let defaults = &limiter.defaults;
    let paid = caller.end_user.paid;
    let limit = if paid {
        settings.rate_limit_end_user.unwrap_or(defaults.end_user)
    } else {
        settings.rate_limit_free_end_user.unwrap_or(defaults.free_end_user)
    };
    if !paid && !settings.free_models.is_empty() {
        caller.free_models = Some(Arc::from(settings.free_models.as_slice()));
    }
    let Some(rate) = limit.rate() else { return Ok(()) };
    let mut identity = [0u8; 32];
    identity[..16].copy_from_slice(caller.tenant_id.as_bytes());
    identity[16..].copy_from_slice(caller.end_user.id.as_bytes());
    let decision = limiter.check(Scope::EndUser { paid }, &identity, rate).await;
    ratelimit::apply(req, decision)
}
