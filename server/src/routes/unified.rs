//! The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, for
//! the end user named by `X-Relay-User`.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::ApiError;
use crate::gateway::{self, Caller};
use crate::startup::AppState;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, ApiError> {
    req.headers()
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid_request("invalid_header", format!("The {name} header must be printable text."))
                    .param(leak(name))
            })
        })
        .transpose()
}

fn leak(name: &str) -> &'static str {
    match name {
        "x-relay-user" => "X-Relay-User",
        _ => "X-Relay-Paid",
    }
}

/// The end user this request acts for, who must have connected a key.
pub(crate) async fn caller(req: &HttpRequest, auth: TenantAuth, state: &AppState) -> Result<Caller, ApiError> {
    let started = std::time::Instant::now();
    let raw = header(req, "x-relay-user")?.ok_or_else(|| {
        ApiError::invalid_request(
            "missing_end_user",
            "Name the end user this request is for in the X-Relay-User header.",
        )
        .param("X-Relay-User")
    })?;
    let label = EndUserLabel::parse(raw).map_err(|e| e.into_api("X-Relay-User"))?;
    let paid = match header(req, "x-relay-paid")?.map(str::trim) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(ApiError::invalid_request("invalid_header", "X-Relay-Paid must be true or false.")
                .param("X-Relay-Paid"))
        }
    };
    let end_user = state.store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
        ApiError::not_found(
            "enduser_key_missing",
            "This end user has not connected any provider key. Send them a registration token to connect one.",
        )
    })?;
    Ok(Caller { tenant_id: auth.tenant_id, api_key_id: Some(auth.api_key_id), end_user, paid, started })
}

pub async fn chat_completions(
    req: HttpRequest,
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, auth, &state).await?;
    gateway::chat(state, caller, &body).await
}

pub async fn embeddings(
    req: HttpRequest,
    auth: TenantAuth,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, auth, &state).await?;
    gateway::embeddings(state, caller, &body).await
}

pub async fn models(req: HttpRequest, auth: TenantAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, auth, &state).await?;
    gateway::models(state, caller).await
}
