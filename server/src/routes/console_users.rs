//! The console's end users page: search a tenant's end users by label prefix (paged), see one
//! with the providers they connected (fingerprint and status, never the key), erase one.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::console::ConsoleAuth;
use crate::browser::BrowserAccess;
use crate::domain::key_health::KeyStatus;
use crate::error::{ApiError, ErrorBody};
use crate::store::console::Role;
use crate::store::Store;
use crate::webhooks::Webhooks;

use super::console_session::address;

const PAGE: u32 = 50;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Labels that start with this (exactly; empty: every end user).
    prefix: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// At most this many (1–100, default 50).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleEndUserSummary)]
pub struct UserSummary {
    label: String,
    paid: bool,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ConsoleEndUserPage)]
pub struct UserPage {
    data: Vec<UserSummary>,
    /// Pass as `after` for the next page; null on the last one.
    #[schema(required = true)]
    next: Option<String>,
}

fn label(raw: &str) -> Result<crate::domain::EndUserLabel, ApiError> {
    super::users::label(raw)
}

/// Search end users
#[utoipa::path(
    get,
    path = "/console/api/end-users",
    tag = "console",
    operation_id = "consoleSearchEndUsers",
    security(("console_session" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "One page of end users, by label.", body = UserPage),
        (status = 400, description = "The query is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "No tenant (`console_no_tenant`).", body = ErrorBody),
    )
)]
pub async fn search(
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Viewer)?;
    let q = query.into_inner();
    let prefix = q.prefix.unwrap_or_default();
    let bad = |param: &'static str| {
        ApiError::invalid_request("invalid_query", "Labels are 1–128 printable characters.").param(param)
    };
    if prefix.chars().count() > 128 || prefix.chars().any(char::is_control) {
        return Err(bad("prefix"));
    }
    if let Some(a) = &q.after {
        label(a).map_err(|_| bad("after"))?;
    }
    let limit = q.limit.unwrap_or(PAGE).clamp(1, 100);
    let mut users = store.console().search_end_users(tenant_id, &prefix, q.after.as_deref(), limit + 1).await?;
    let more = users.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    users.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = if more { users.last().map(|u| u.label.clone()) } else { None };
    let data =
        users.into_iter().map(|u| UserSummary { label: u.label, paid: u.paid, created_at: u.created_at }).collect();
    Ok(HttpResponse::Ok().json(UserPage { data, next }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleConnectedKey)]
pub struct ConnectedKey {
    provider: String,
    /// `sk-proj-…WXYZ`: enough to recognise the key, never the key.
    fingerprint: String,
    status: KeyStatus,
    #[schema(required = true)]
    status_reason: Option<String>,
    #[schema(required = true)]
    status_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleEndUser)]
pub struct UserDetails {
    label: String,
    paid: bool,
    created_at: DateTime<Utc>,
    providers: Vec<ConnectedKey>,
}

fn not_found() -> ApiError {
    ApiError::not_found("enduser_not_found", "No end user with this label exists in your tenant.")
}

/// Get an end user
#[utoipa::path(
    get,
    path = "/console/api/end-users/{label}",
    tag = "console",
    operation_id = "consoleGetEndUser",
    security(("console_session" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).")),
    responses(
        (status = 200, description = "The end user and their connected providers.", body = UserDetails),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "No tenant (`console_no_tenant`).", body = ErrorBody),
        (status = 404, description = "No such end user in this tenant (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn get(
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Viewer)?;
    let label = label(&path)?;
    let user = store.get_end_user(tenant_id, label.as_str()).await?.ok_or_else(not_found)?;
    let providers = store
        .list_provider_keys(user.id)
        .await?
        .into_iter()
        .map(|k| ConnectedKey {
            provider: k.provider,
            fingerprint: k.fingerprint,
            status: k.health.status,
            status_reason: k.health.reason,
            status_at: k.health.at,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserDetails {
        label: user.label,
        paid: user.paid,
        created_at: user.created_at,
        providers,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleErasedEndUser)]
pub struct Erased {
    label: String,
    /// Always true.
    deleted: bool,
}

/// Erase an end user
///
/// Deletes the end user and everything stored for them (keys, tokens, usage).
#[utoipa::path(
    delete,
    path = "/console/api/end-users/{label}",
    tag = "console",
    operation_id = "consoleEraseEndUser",
    security(("console_session" = [])),
    params(
        ("label" = String, Path, description = "The end user's label (percent-encoded)."),
        ("x-relay-csrf" = String, Header, description = "The CSRF token from `me` or sign-in."),
    ),
    responses(
        (status = 200, description = "Erased.", body = Erased),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "No live session (`console_session_missing`).", body = ErrorBody),
        (status = 403, description = "A viewer (`console_role_forbidden`), no valid CSRF token, or sent from another site.", body = ErrorBody),
        (status = 404, description = "No such end user in this tenant (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn erase(
    req: HttpRequest,
    auth: ConsoleAuth,
    store: web::Data<dyn Store>,
    webhooks: web::Data<Webhooks>,
    browser: web::Data<BrowserAccess>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = auth.user.tenant_with(Role::Admin)?;
    let label = label(&path)?;
    let id = store.delete_end_user(tenant_id, label.as_str()).await?.ok_or_else(not_found)?;
    let target = Some(format!("end_user:{id}"));
    let addr = address(&req, &browser);
    crate::audit::record_from(&**store, Some(tenant_id), &auth.user.actor(), "end_user.delete", target, addr).await;
    webhooks.user_erased(tenant_id, label.as_str()).await;
    Ok(HttpResponse::Ok().json(Erased { label: label.as_str().to_owned(), deleted: true }))
}
