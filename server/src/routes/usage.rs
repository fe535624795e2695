//! `GET /v1/usage`: what a tenant's end users did, from the usage records, for billing and
//! dashboards: requests, errors, tokens, cost and latency percentiles, grouped by day, model,
//! provider or end user.

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::domain::EndUserLabel;
use crate::error::{ApiError, ErrorBody};
use crate::store::usage::whole_days;
use crate::store::{Store, UsageKey, UsageRollup};
use crate::usage_log::UsageLog;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this end user's requests.
    #[param(example = "user_123")]
    end_user_label: Option<String>,
    /// Start (inclusive): an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC). Default: 30
    /// days before `to`.
    #[param(example = "2026-01-01")]
    from: Option<String>,
    /// End (exclusive), same forms. Default: now.
    #[param(example = "2026-01-31T00:00:00Z")]
    to: Option<String>,
    /// `day` (default), `model`, `provider` or `endUser` (the end user's label).
    #[param(inline, value_type = Option<UsageGroupBy>)]
    group_by: Option<String>,
}

/// How usage is grouped.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the values of `groupBy`, which is parsed by hand.
enum UsageGroupBy {
    Day,
    Model,
    Provider,
    EndUser,
}

#[derive(Serialize, ToSchema)]
pub struct LatencyMs {
    /// Median request latency in milliseconds (nearest rank).
    p50: u64,
    /// 95th percentile, in milliseconds (nearest rank).
    p95: u64,
}

/// Totals for one group (or for the whole range).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    /// The group: a `YYYY-MM-DD` day, a model, a provider or an end user's label; `total` for
    /// the totals.
    key: String,
    requests: u64,
    /// Requests that failed (status 400 or above, or no answer).
    errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// What the priced calls cost, in USD: the price table's prices times the usage each
    /// provider reported (or the provider's own figure, for OpenRouter).
    cost_usd: f64,
    /// Calls that reported usage for a model without a price: not in `costUsd`.
    unpriced_calls: u64,
    latency_ms: LatencyMs,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"object": "usage", "groupBy": "day", "from": "2026-01-01T00:00:00Z", "to": "2026-01-31T00:00:00Z", "endUserLabel": null,
    "total": {"key": "total", "requests": 3, "errors": 1, "promptTokens": 30, "completionTokens": 12, "costUsd": 0.000195, "unpricedCalls": 0, "latencyMs": {"p50": 420, "p95": 900}},
    "data": [{"key": "2026-01-02", "requests": 3, "errors": 1, "promptTokens": 30, "completionTokens": 12, "costUsd": 0.000195, "unpricedCalls": 0, "latencyMs": {"p50": 420, "p95": 900}}]}))]
pub struct UsageReport {
    /// Always `usage`.
    object: &'static str,
    #[schema(inline, value_type = UsageGroupBy)]
    group_by: &'static str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(required = true)]
    end_user_label: Option<String>,
    total: UsageBucket,
    /// One entry per group, in key order.
    data: Vec<UsageBucket>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Day,
    Model,
    Provider,
    EndUser,
}

/// RFC 3339 time, or a date (midnight UTC).
fn parse_time(raw: &str, param: &'static str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ApiError::invalid_request("invalid_time", format!("{param} must be an RFC 3339 time or a YYYY-MM-DD date."))
                .param(param)
        })
}

#[derive(Default)]
struct Bucket {
    sums: UsageRollup,
    latency: Option<(u64, u64)>,
}

fn summarise(key: &str, b: &Bucket) -> UsageBucket {
    let (p50, p95) = b.latency.unwrap_or((0, 0));
    UsageBucket {
        key: key.to_owned(),
        requests: b.sums.requests,
        errors: b.sums.errors,
        prompt_tokens: b.sums.prompt_tokens,
        completion_tokens: b.sums.completion_tokens,
        // Summed as integers; one conversion, so totals equal the sum of their buckets.
        cost_usd: b.sums.cost_nanos as f64 / 1e9,
        unpriced_calls: b.sums.unpriced_calls,
        latency_ms: LatencyMs { p50, p95 },
    }
}

/// The sums of `[from, to)`: whole UTC days from the daily roll-ups, the part of a day at either
/// end from the raw events (the roll-ups are kept in the transaction that stores the events, so
/// both agree).
async fn sums(
    store: &dyn Store,
    tenant_id: Uuid,
    end_user_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRollup>, ApiError> {
    let (whole_from, whole_to) = whole_days(from, to);
    if whole_from > whole_to {
        // Within one day.
        return Ok(store.usage_rollups_from_events(tenant_id, end_user_id, from, to).await?);
    }
    let mut rows = Vec::new();
    if from < whole_from {
        rows.extend(store.usage_rollups_from_events(tenant_id, end_user_id, from, whole_from).await?);
    }
    if whole_from < whole_to {
        rows.extend(store.usage_rollups(tenant_id, end_user_id, whole_from, whole_to).await?);
    }
    if whole_to < to {
        rows.extend(store.usage_rollups_from_events(tenant_id, end_user_id, whole_to, to).await?);
    }
    Ok(rows)
}

/// Usage
///
/// What your end users did through Relay: requests, errors, tokens, cost (USD) and latency
/// percentiles, grouped by day, model, provider or end user.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "developer",
    operation_id = "getUsage",
    security(("relay_key" = [])),
    params(UsageQuery),
    responses(
        (status = 200, description = "The usage report.", body = UsageReport),
        (status = 400, description = "Invalid query: unknown parameter, time (`invalid_time`), groupBy (`invalid_group_by`) or label.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked Relay key.", body = ErrorBody),
        (status = 404, description = "No such end user (`enduser_not_found`).", body = ErrorBody),
    )
)]
pub async fn usage(
    auth: TenantAuth,
    store: web::Data<dyn Store>,
    usage_log: web::Data<UsageLog>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let to = q.to.as_deref().map(|t| parse_time(t, "to")).transpose()?.unwrap_or_else(Utc::now);
    let from = q.from.as_deref().map(|t| parse_time(t, "from")).transpose()?.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid_request("invalid_time", "from must be before to.").param("from"));
    }
    let group = match q.group_by.as_deref().unwrap_or("day") {
        "day" => GroupBy::Day,
        "model" => GroupBy::Model,
        "provider" => GroupBy::Provider,
        "endUser" => GroupBy::EndUser,
        _ => {
            return Err(ApiError::invalid_request(
                "invalid_group_by",
                "groupBy must be day, model, provider or endUser.",
            )
            .param("groupBy"))
        }
    };
    let end_user_id = match q.end_user_label.as_deref() {
        None => None,
        Some(raw) => {
            let label = EndUserLabel::parse(raw).map_err(|e| e.into_api("endUserLabel"))?;
            let user = store.get_end_user(auth.tenant_id, label.as_str()).await?.ok_or_else(|| {
                ApiError::not_found("enduser_not_found", "No end user with this label exists for your app.")
            })?;
            Some(user.id)
        }
    };
    // This node's calls so far are counted (other nodes' within a tenth of a second).
    usage_log.flush().await?;
    let tenant_id = auth.tenant_id;
    let rows = sums(store.get_ref(), tenant_id, end_user_id, from, to).await?;
    let labels: HashMap<Uuid, String> = match group {
        GroupBy::EndUser => store.usage_end_user_labels(tenant_id, end_user_id, from, to).await?.into_iter().collect(),
        _ => HashMap::new(),
    };
    let key_of = |r: &UsageRollup| -> Option<String> {
        Some(match group {
            GroupBy::Day => r.day.format("%Y-%m-%d").to_string(),
            GroupBy::Model => r.model.clone(),
            GroupBy::Provider => r.provider.clone(),
            // A user erased after the rows were read has no label left: skipped.
            GroupBy::EndUser => r.end_user_id.and_then(|id| labels.get(&id))?.clone(),
        })
    };
    let mut total = Bucket::default();
    let mut groups: BTreeMap<String, Bucket> = BTreeMap::new();
    for r in &rows {
        let Some(key) = key_of(r) else { continue };
        groups.entry(key).or_default().sums.add(r);
        total.sums.add(r);
    }
    // Percentiles cannot be summed: the database ranks the raw events (those still kept).
    let latency_key = match group {
        GroupBy::Day => UsageKey::Day,
        GroupBy::Model => UsageKey::Model,
        GroupBy::Provider => UsageKey::Provider,
        GroupBy::EndUser => UsageKey::EndUser,
    };
    for p in store.usage_latency(tenant_id, end_user_id, from, to, latency_key).await? {
        let key = match group {
            GroupBy::EndUser => p.key.parse::<Uuid>().ok().and_then(|id| labels.get(&id).cloned()),
            _ => Some(p.key),
        };
        if let Some(bucket) = key.and_then(|k| groups.get_mut(&k)) {
            bucket.latency = Some((p.p50, p.p95));
        }
    }
    let total_key = UsageKey::Total { end_users_only: group == GroupBy::EndUser };
    if let Some(p) = store.usage_latency(tenant_id, end_user_id, from, to, total_key).await?.into_iter().next() {
        total.latency = Some((p.p50, p.p95));
    }
    let data: Vec<_> = groups.iter().map(|(k, b)| summarise(k, b)).collect();
    let group_name = match group {
        GroupBy::Day => "day",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::EndUser => "endUser",
    };
    Ok(HttpResponse::Ok().json(UsageReport {
        object: "usage",
        group_by: group_name,
        from,
        to,
        end_user_label: q.end_user_label,
        total: summarise("total", &total),
        data,
    }))
}

#[cfg(test)]
mod tests {
    use crate::store::usage::percentile_ranks;

    /// The nearest-rank percentile as the report computed it in memory before the database
    /// ranked the events.
    fn percentile(sorted: &[u64], p: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let rank = (p * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.95), 95);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[10, 20, 30, 40], 0.5), 20);
    }

    #[test]
    fn the_databases_ranks_are_the_nearest_ranks() {
        // Over 1..=n a value is its own rank.
        let rank = |n: u64, p: f64| ((p * n as f64).ceil() as u64).clamp(1, n);
        for n in 1..=1_000_000u64 {
            assert_eq!(percentile_ranks(n), (rank(n, 0.5), rank(n, 0.95)), "n = {n}");
        }
        let v: Vec<u64> = (1..=977).collect();
        assert_eq!(percentile_ranks(977), (percentile(&v, 0.5), percentile(&v, 0.95)));
    }
}
