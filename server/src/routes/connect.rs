//! The widget's routes, authorised by a registration token: describe the token (without using
//! it) and connect a key (using it).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::providers::ProviderId;
use crate::startup::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    /// Set when the token only accepts one provider.
    provider: Option<String>,
    /// The providers the widget may offer.
    providers: Vec<&'static str>,
    app_name: String,
    expires_at: DateTime<Utc>,
}

pub async fn describe(state: web::Data<AppState>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let info = state.keys.registration_token(&token).await?;
    let providers = match &info.provider {
        Some(p) => ProviderId::ALL.into_iter().filter(|x| x.as_str() == p).map(ProviderId::as_str).collect(),
        None => ProviderId::ALL.map(ProviderId::as_str).to_vec(),
    };
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(Description {
        provider: info.provider,
        providers,
        app_name: info.tenant_name,
        expires_at: info.expires_at,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectBody {
    registration_token: String,
    provider: String,
    api_key: SecretString,
}

#[derive(Serialize)]
struct Connected {
    provider: ProviderId,
    fingerprint: String,
}

pub async fn connect(state: web::Data<AppState>, body: web::Json<ConnectBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let done = state.keys.connect(&body.registration_token, &body.provider, &body.api_key).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(Connected { provider: done.provider, fingerprint: done.fingerprint }))
}
