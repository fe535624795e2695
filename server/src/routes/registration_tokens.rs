//! `POST /v1/registration-tokens`: a developer backend asks for a single-use token that lets one
//! of its end users connect a key in the widget.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens::{generate_registration_token, reveal};
use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::{ApiError, ErrorBody};
use crate::providers::{accepted_providers, ProviderId};
use crate::store::{NewRegistrationToken, Store};

pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 24 * 60 * 60;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = RegistrationTokenRequest, example = json!({"endUserLabel": "user_123", "provider": "openai", "expiresIn": 900}))]
pub struct CreateBody {
    /// The end user, as your app names them: 1–128 printable characters.
    end_user_label: String,
    /// Locks the widget to this provider; omitted, the user picks.
    #[schema(value_type = Option<ProviderId>)]
    provider: Option<String>,
    /// Seconds until the token expires: 60 to 86400, default 900.
    #[schema(minimum = 60, maximum = 86400)]
    expires_in: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RegistrationToken)]
struct Created<'a> {
    /// `rrt-…`, single-use. Hand it to the widget; it is shown only here.
    registration_token: &'a str,
    end_user_label: &'a str,
    /// The provider the token is locked to, or null.
    #[schema(required = true)]
    provider: Option<ProviderId>,
    expires_at: DateTime<Utc>,
}

/// Create a registration token
///
/// A single-use, short-lived token that lets one end user connect a provider key in the widget.
/// Creates the end user if needed.
#[utoipa::path(
    post,
    path = "/v1/registration-tokens",
    tag = "developer",
    operation_id = "createRegistrationToken",
    security(("relay_key" = [])),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The token was created.", body = Created,
         example = json!({"registrationToken": "rrt-3kTq9…", "endUserLabel": "user_123", "provider": "openai", "expiresAt": "2026-01-01T12:15:00Z"})),
        (status = 400, description = "Invalid body, label, provider (`provider_unknown`) or expiresIn (`invalid_expires_in`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit.", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json.", body = ErrorBody),
    )
)]
pub async fn create(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let label = EndUserLabel::parse(&body.end_user_label).map_err(|e| e.into_api("endUserLabel"))?;
    let provider = body
        .provider
        .as_deref()
        .map(|p| {
            p.parse::<ProviderId>().map_err(|_| {
                ApiError::invalid_request(
                    "provider_unknown",
                    format!("Unknown provider. Accepted providers: {}.", accepted_providers()),
                )
                .param("provider")
            })
        })
        .transpose()?;
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

    let now = Utc::now();
    let end_user = store.upsert_end_user(auth.tenant_id, label.as_str(), now).await?;
    let (token, hash) = generate_registration_token();
    let expires_at = now + Duration::seconds(ttl);
    store
        .insert_registration_token(&NewRegistrationToken {
            id: Uuid::new_v4(),
            tenant_id: auth.tenant_id,
            end_user_id: end_user.id,
            token_hash: hash.0,
            provider: provider.map(|p| p.as_str().to_owned()),
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(HttpResponse::Created().json(Created {
        registration_token: reveal(&token),
        end_user_label: label.as_str(),
        provider,
        expires_at,
    }))
}
