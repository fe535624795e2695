//! Budgets as their developer sets them: the tenant's, the default per end user, and one end
//! user's (`PUT`, `GET`, `DELETE` each), with what has been spent in the current period.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::TenantAuth;
use crate::budgets::DEFAULT_ALERT_BPS;
use crate::domain::money::{dollars_param, Period, Usd};
use crate::error::{ApiError, ErrorBody};
use crate::store::{Budget, BudgetScope, SpendKey, SpendSubject, Store};
use crate::usage_log::UsageLog;

use super::users::{find_user, label};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = BudgetRequest, example = json!({"limitUsd": 25.0, "period": "month", "alertAt": 0.8}))]
pub struct BudgetBody {
    /// The most that may be spent per period, in US dollars (0 stops every call).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    limit_usd: f64,
    /// `day` or `month`: calendar periods in UTC.
    #[schema(example = "month")]
    period: String,
    /// The share of the limit at which `budget.threshold` fires (0 < alertAt ≤ 1, default 0.8).
    #[schema(minimum = 0, maximum = 1)]
    alert_at: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Budget, example = json!({"scope": "end_user", "endUserLabel": "user_123", "limitUsd": 5.0, "period": "month", "alertAt": 0.8, "spentUsd": 1.25, "periodStart": "2026-12-01T00:00:00Z", "resetsAt": "2027-01-01T00:00:00Z", "createdAt": "2026-12-03T10:00:00Z", "updatedAt": "2026-12-03T10:00:00Z"}))]
struct BudgetView {
    /// `tenant`, `end_user_default` or `end_user`.
    scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_user_label: Option<String>,
    limit_usd: f64,
    period: &'static str,
    alert_at: f64,
    /// Spent in the current period (absent for the default per end user, which each end user
    /// spends on their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    spent_usd: Option<f64>,
    period_start: DateTime<Utc>,
    resets_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"scope": "tenant", "deleted": true}))]
struct DeletedBudget {
    scope: &'static str,
    /// Always true.
    deleted: bool,
}

fn parse(body: BudgetBody) -> Result<(Usd, Period, u16), ApiError> {
    let limit = dollars_param(body.limit_usd, "limitUsd")?;
    let period = Period::parse(&body.period).ok_or_else(|| {
        ApiError::invalid_request("invalid_period", "period must be \"day\" or \"month\".").param("period")
    })?;
    let alert_at_bps = match body.alert_at {
        None => DEFAULT_ALERT_BPS,
        Some(a) if a.is_finite() && a > 0.0 && a <= 1.0 => (a * 10_000.0).round().max(1.0) as u16,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "invalid_alert_at",
                "alertAt must be a number above 0 and at most 1.",
            )
            .param("alertAt"))
        }
    };
    Ok((limit, period, alert_at_bps))
}

/// The budget as the API shows it, with this period's spend (this node's latest calls written
/// first, as the usage API does).
async fn view(
    store: &dyn Store,
    usage: &UsageLog,
    budget: Budget,
    label: Option<String>,
) -> Result<BudgetView, ApiError> {
    usage.flush().await?;
    let now = Utc::now();
    let start = budget.period.start(now);
    let subject = match budget.scope {
        BudgetScope::Tenant => Some(SpendSubject::Tenant),
        BudgetScope::EndUser(id) => Some(SpendSubject::EndUser(id)),
        BudgetScope::EndUserDefault => None,
    };
    let spent = match subject {
        Some(subject) => {
            let key = SpendKey { subject, period: budget.period, start };
            store.spend(budget.tenant_id, &[key]).await?.first().map(|s| s.dollars())
        }
        None => None,
    };
    Ok(BudgetView {
        scope: budget.scope.name(),
        end_user_label: label,
        limit_usd: budget.limit.dollars(),
        period: budget.period.as_str(),
        alert_at: f64::from(budget.alert_at_bps) / 10_000.0,
        spent_usd: spent,
        period_start: start,
        resets_at: budget.period.next_start(now),
        created_at: budget.created_at,
        updated_at: budget.updated_at,
    })
}

fn no_budget(scope: BudgetScope) -> ApiError {
    let what = match scope {
        BudgetScope::Tenant => "Your app has no tenant-wide budget.",
        BudgetScope::EndUserDefault => "Your app has no default budget per end user.",
        BudgetScope::EndUser(_) => "This end user has no budget of their own.",
    };
    ApiError::not_found("budget_not_found", what)
}

async fn put(
    store: &dyn Store,
    usage: &UsageLog,
    auth: TenantAuth,
    scope: BudgetScope,
    body: BudgetBody,
    label: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let (limit, period, alert_at_bps) = parse(body)?;
    let now = Utc::now();
    let budget =
        Budget { tenant_id: auth.tenant_id, scope, limit, period, alert_at_bps, created_at: now, updated_at: now };
    let stored = store.put_budget(&budget).await?;
    audit(store, auth, "budget.put", scope).await;
    Ok(HttpResponse::Ok().json(view(store, usage, stored, label).await?))
}

async fn get(
    store: &dyn Store,
    usage: &UsageLog,
    auth: TenantAuth,
    scope: BudgetScope,
    label: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let end_user = match scope {
        BudgetScope::EndUser(id) => Some(id),
        _ => None,
    };
    let found = store.budgets_for(auth.tenant_id, end_user).await?.into_iter().find(|b| b.scope == scope);
    let budget = found.ok_or_else(|| no_budget(scope))?;
    Ok(HttpResponse::Ok().json(view(store, usage, budget, label).await?))
}

async fn delete(store: &dyn Store, auth: TenantAuth, scope: BudgetScope) -> Result<HttpResponse, ApiError> {
    if !store.delete_budget(auth.tenant_id, scope).await? {
        return Err(no_budget(scope));
    }
    audit(store, auth, "budget.delete", scope).await;
    Ok(HttpResponse::Ok().json(DeletedBudget { scope: scope.name(), deleted: true }))
}

async fn audit(store: &dyn Store, auth: TenantAuth, action: &str, scope: BudgetScope) {
    let actor = format!("api_key:{}", auth.api_key_id);
    crate::audit::record(store, Some(auth.tenant_id), &actor, action, Some(scope.subject())).await;
}

/// `tenant` or `end-user-default`, as the path names them.
fn tenant_scope(raw: &str) -> Result<BudgetScope, ApiError> {
    match raw {
        "tenant" => Ok(BudgetScope::Tenant),
        "end-user-default" => Ok(BudgetScope::EndUserDefault),
        _ => Err(ApiError::not_found(
            "budget_scope_unknown",
            "No such budget: use /v1/budgets/tenant, /v1/budgets/end-user-default or /v1/users/{label}/budget.",
        )),
    }
}

/// Set a budget
///
/// Creates or replaces the tenant-wide budget (`tenant`) or the default budget per end user
/// (`end-user-default`, for end users without a budget of their own). A call is refused with 402
/// `budget_exceeded` once the current period's spend reaches the limit.
#[utoipa::path(
    put,
    path = "/v1/budgets/{scope}",
    tag = "developer",
    operation_id = "putBudget",
    security(("relay_key" = [])),
    params(("scope" = String, Path, description = "`tenant` or `end-user-default`.", example = "tenant")),
    request_body = BudgetBody,
    responses(
        (status = 200, description = "The budget as stored, with this period's spend.", body = BudgetView),
        (status = 400, description = "Invalid body (`invalid_amount`, `invalid_period`, `invalid_alert_at`, `invalid_request_body`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such budget scope (`budget_scope_unknown`).", body = ErrorBody),
    )
)]
pub async fn put_tenant(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    usage: web::Data<UsageLog>,
    path: web::Path<String>,
    body: web::Json<BudgetBody>,
) -> Result<HttpResponse, ApiError> {
    put(&**store, &usage, auth, tenant_scope(&path)?, body.into_inner(), None).await
}

/// Get a budget
#[utoipa::path(
    get,
    path = "/v1/budgets/{scope}",
    tag = "developer",
    operation_id = "getBudget",
    security(("relay_key" = [])),
    params(("scope" = String, Path, description = "`tenant` or `end-user-default`.", example = "tenant")),
    responses(
        (status = 200, description = "The budget, with this period's spend.", body = BudgetView),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such budget (`budget_not_found`) or scope (`budget_scope_unknown`).", body = ErrorBody),
    )
)]
pub async fn get_tenant(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    usage: web::Data<UsageLog>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    get(&**store, &usage, auth, tenant_scope(&path)?, None).await
}

/// Delete a budget
#[utoipa::path(
    delete,
    path = "/v1/budgets/{scope}",
    tag = "developer",
    operation_id = "deleteBudget",
    security(("relay_key" = [])),
    params(("scope" = String, Path, description = "`tenant` or `end-user-default`.", example = "tenant")),
    responses(
        (status = 200, description = "The budget was deleted.", body = DeletedBudget),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such budget (`budget_not_found`) or scope (`budget_scope_unknown`).", body = ErrorBody),
    )
)]
pub async fn delete_tenant(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    delete(&**store, auth, tenant_scope(&path)?).await
}

/// Set an end user's budget
///
/// Creates or replaces the end user's own budget (it replaces the default per end user for
/// them). Creates the end user if needed, so a budget can be set before they connect a key.
#[utoipa::path(
    put,
    path = "/v1/users/{label}/budget",
    tag = "developer",
    operation_id = "putEndUserBudget",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123")),
    request_body = BudgetBody,
    responses(
        (status = 200, description = "The budget as stored, with this period's spend.", body = BudgetView),
        (status = 400, description = "Invalid label or body (`invalid_amount`, `invalid_period`, `invalid_alert_at`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
    )
)]
pub async fn put_user(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    usage: web::Data<UsageLog>,
    path: web::Path<String>,
    body: web::Json<BudgetBody>,
) -> Result<HttpResponse, ApiError> {
    let label = label(&path)?;
    let user = store.upsert_end_user(auth.tenant_id, label.as_str(), Utc::now()).await?;
    put(&**store, &usage, auth, BudgetScope::EndUser(user.id), body.into_inner(), Some(user.label)).await
}

/// Get an end user's budget
#[utoipa::path(
    get,
    path = "/v1/users/{label}/budget",
    tag = "developer",
    operation_id = "getEndUserBudget",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123")),
    responses(
        (status = 200, description = "The budget, with this period's spend.", body = BudgetView),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`) or no budget of their own (`budget_not_found`).", body = ErrorBody),
    )
)]
pub async fn get_user(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    usage: web::Data<UsageLog>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&**store, auth, &path).await?;
    get(&**store, &usage, auth, BudgetScope::EndUser(user.id), Some(user.label)).await
}

/// Delete an end user's budget
///
/// The default budget per end user applies to them again, if there is one.
#[utoipa::path(
    delete,
    path = "/v1/users/{label}/budget",
    tag = "developer",
    operation_id = "deleteEndUserBudget",
    security(("relay_key" = [])),
    params(("label" = String, Path, description = "The end user's label (percent-encoded).", example = "user_123")),
    responses(
        (status = 200, description = "The budget was deleted.", body = DeletedBudget),
        (status = 400, description = "The label is not valid.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`) or no budget of their own (`budget_not_found`).", body = ErrorBody),
    )
)]
pub async fn delete_user(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&**store, auth, &path).await?;
    delete(&**store, auth, BudgetScope::EndUser(user.id)).await
}
