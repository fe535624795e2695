//! The widget's routes, authorised by a registration token: describe the token (without using
//! it) and connect a key (using it).

use actix_web::http::header::ORIGIN;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::browser::check_origin;
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
    /// The tenant's public app id: the widget's frame checks that the token belongs to the app
    /// it was opened for, so the name it shows is the one the key goes to.
    app_id: String,
    expires_at: DateTime<Utc>,
}

pub async fn describe(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let info = state.keys.registration_token(&token).await?;
    check_origin(&state, info.tenant_id, &req).await?;
    let providers = match &info.provider {
        Some(p) => ProviderId::ALL.into_iter().filter(|x| x.as_str() == p).map(ProviderId::as_str).collect(),
        None => ProviderId::ALL.map(ProviderId::as_str).to_vec(),
    };
    let app_id = state.store.get_tenant(info.tenant_id).await?.map(|t| t.app_id).unwrap_or_default();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(Description {
        provider: info.provider,
        providers,
        app_name: info.tenant_name,
        app_id,
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

pub async fn connect(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ConnectBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // From a browser: the token's tenant must allow the page's origin.
    if req.headers().contains_key(ORIGIN) {
        let info = state.keys.registration_token(&body.registration_token).await?;
        check_origin(&state, info.tenant_id, &req).await?;
    }
    let done = state.keys.connect(&body.registration_token, &body.provider, &body.api_key).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(Connected { provider: done.provider, fingerprint: done.fingerprint }))
}
