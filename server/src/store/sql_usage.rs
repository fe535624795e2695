//! The usage-report and retention queries of `SqlStore`: daily roll-ups (kept in the transaction
//! that stores their events), raw sums and latency percentiles for the report, and batched pruning.

use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::dialect::{Dialect, Fields};
use super::sql::SqlStore;
use super::usage::{percentile_ranks, rollups_of, LatencyPercentiles, UsageKey, UsageRollup};
use super::*;

macro_rules! sums {
    () => {
        "requests, errors, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
         cost_nanos, unpriced_calls"
    };
}

/// Roll-up rows per multi-row upsert (15 binds a row, well under either database's limit).
const ROLLUPS_PER_UPSERT: usize = 500;

/// The raw events' sums under the names of the roll-up columns.
const RAW_SUMS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status = 0 OR status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
    CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS cost_nanos, \
    CAST(COALESCE(SUM(CASE WHEN cost_nanos IS NULL AND prompt_tokens IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
    AS unpriced_calls";

fn rollup(row: &impl Fields, day: Option<DateTime<Utc>>) -> Result<UsageRollup> {
    let count = |c: &str| row.i64(c).map(to_u64);
    Ok(UsageRollup {
        day: match day {
            Some(d) => d,
            None => row.time("day")?,
        },
        end_user_id: row.opt_uuid("end_user_id")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        requests: count("requests")?,
        errors: count("errors")?,
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens")?,
        cached_tokens: count("cached_tokens")?,
        cache_write_tokens: count("cache_write_tokens")?,
        reasoning_tokens: count("reasoning_tokens")?,
        cost_nanos: row.i64("cost_nanos")?,
        unpriced_calls: count("unpriced_calls")?,
    })
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Row: Fields,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Id>: Encode<'q, DB>,
{
    /// Adds `events` to their roll-up rows, on the connection of the transaction that stores
    /// them: multi-row upserts (the batch is summed first, so no row comes twice in one).
    pub(super) async fn add_rollups(conn: &mut DB::Connection, events: &[UsageEvent]) -> Result<()> {
        let rollups: Vec<(Uuid, String, UsageRollup)> =
            rollups_of(events).into_iter().map(|(tenant, r)| (tenant, r.user_key(), r)).collect();
        for chunk in rollups.chunks(ROLLUPS_PER_UPSERT) {
            let mut upsert = sqlx::QueryBuilder::<DB>::new(concat!(
                "INSERT INTO usage_daily (tenant_id, day, user_key, end_user_id, provider, model, ",
                sums!(),
                ") "
            ));
            upsert.push_values(chunk, |mut row, (tenant_id, user_key, r)| {
                row.push_bind(DB::id(*tenant_id))
                    .push_bind(DB::time(r.day))
                    .push_bind(user_key.as_str())
                    .push_bind(r.end_user_id.map(DB::id))
                    .push_bind(r.provider.as_str())
                    .push_bind(r.model.as_str())
                    .push_bind(to_i64(r.requests))
                    .push_bind(to_i64(r.errors))
                    .push_bind(to_i64(r.prompt_tokens))
                    .push_bind(to_i64(r.completion_tokens))
                    .push_bind(to_i64(r.cached_tokens))
                    .push_bind(to_i64(r.cache_write_tokens))
                    .push_bind(to_i64(r.reasoning_tokens))
                    .push_bind(r.cost_nanos)
                    .push_bind(to_i64(r.unpriced_calls));
            });
            upsert.push(
                " ON CONFLICT (tenant_id, day, user_key, provider, model) DO UPDATE SET \
                 requests = usage_daily.requests + EXCLUDED.requests, \
                 errors = usage_daily.errors + EXCLUDED.errors, \
                 prompt_tokens = usage_daily.prompt_tokens + EXCLUDED.prompt_tokens, \
                 completion_tokens = usage_daily.completion_tokens + EXCLUDED.completion_tokens, \
                 cached_tokens = usage_daily.cached_tokens + EXCLUDED.cached_tokens, \
                 cache_write_tokens = usage_daily.cache_write_tokens + EXCLUDED.cache_write_tokens, \
                 reasoning_tokens = usage_daily.reasoning_tokens + EXCLUDED.reasoning_tokens, \
                 cost_nanos = usage_daily.cost_nanos + EXCLUDED.cost_nanos, \
                 unpriced_calls = usage_daily.unpriced_calls + EXCLUDED.unpriced_calls",
            );
            DB::execute_built(&mut *conn, upsert).await?;
        }
        Ok(())
    }

    pub(super) async fn usage_rollups_query(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from_day: DateTime<Utc>,
        to_day: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        sqlx::query(concat!(
            "SELECT day, end_user_id, provider, model, ",
            sums!(),
            " FROM usage_daily WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND day >= $3 AND day < $4"
        ))
        .bind(DB::id(tenant_id))
        .bind(end_user_id.map(DB::id))
        .bind(DB::time(from_day))
        .bind(DB::time(to_day))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| rollup(row, None))
        .collect()
    }

    pub(super) async fn usage_rollups_from_events_query(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        // One day at most: the day is the caller's, not an expression each database spells
        // its own way.
        let day = crate::domain::money::Period::Day.start(from);
        let statement = format!(
            "SELECT end_user_id, provider, model, {RAW_SUMS} FROM usage_events \
             WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND created_at >= $3 AND created_at < $4 \
             GROUP BY end_user_id, provider, model"
        );
        sqlx::query(&statement)
            .bind(DB::id(tenant_id))
            .bind(end_user_id.map(DB::id))
            .bind(DB::time(from))
            .bind(DB::time(to))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| rollup(row, Some(day)))
            .collect()
    }

    pub(super) async fn usage_latency_query(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: UsageKey,
    ) -> Result<Vec<LatencyPercentiles>> {
        // Ranked in the database, which hands back two rows a group instead of every event.
        let (expr, partition, only_users) = match key {
            UsageKey::Total { end_users_only } => ("''", String::new(), end_users_only),
            UsageKey::Day => (DB::DAY_TEXT, format!("PARTITION BY {}", DB::DAY_TEXT), false),
            UsageKey::Model => ("model", "PARTITION BY model".to_owned(), false),
            UsageKey::Provider => ("provider", "PARTITION BY provider".to_owned(), false),
            UsageKey::EndUser => ("CAST(end_user_id AS TEXT)", "PARTITION BY end_user_id".to_owned(), true),
        };
        let users = if only_users { " AND end_user_id IS NOT NULL" } else { "" };
        let statement = format!(
            "SELECT k, n, rn, latency_ms FROM (\
               SELECT {expr} AS k, latency_ms, \
                 ROW_NUMBER() OVER ({partition} ORDER BY latency_ms) AS rn, COUNT(*) OVER ({partition}) AS n \
               FROM usage_events \
               WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND created_at >= $3 AND created_at < $4{users}\
             ) ranked WHERE rn = (n + 1) / 2 OR rn = (95 * n + 99) / 100"
        );
        let rows = sqlx::query(&statement)
            .bind(DB::id(tenant_id))
            .bind(end_user_id.map(DB::id))
            .bind(DB::time(from))
            .bind(DB::time(to))
            .fetch_all(self.pool())
            .await?;
        let mut found = std::collections::BTreeMap::<String, LatencyPercentiles>::new();
        for row in &rows {
            let k = row.text("k")?;
            let (n, rn, latency) = (to_u64(row.i64("n")?), to_u64(row.i64("rn")?), to_u64(row.i64("latency_ms")?));
            let (p50, p95) = percentile_ranks(n);
            let entry = found.entry(k.clone()).or_insert(LatencyPercentiles { key: k, p50: 0, p95: 0 });
            if rn == p50 {
                entry.p50 = latency;
            }
            if rn == p95 {
                entry.p95 = latency;
            }
        }
        Ok(found.into_values().collect())
    }

    pub(super) async fn prune_usage_events_query(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE created_at < $1 LIMIT $2)",
        )
        .bind(DB::time(before))
        .bind(i64::from(limit))
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done))
    }

    pub(super) async fn prune_usage_rollups_query(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM usage_daily WHERE (tenant_id, day, user_key, provider, model) IN (\
             SELECT tenant_id, day, user_key, provider, model FROM usage_daily WHERE day < $1 LIMIT $2)",
        )
        .bind(DB::time(before))
        .bind(i64::from(limit))
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done))
    }

    pub(super) async fn prune_spend_query(
        &self,
        days_before: DateTime<Utc>,
        months_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM spend WHERE (tenant_id, subject, period, period_start) IN (\
             SELECT tenant_id, subject, period, period_start FROM spend \
             WHERE period_start < $1 AND (period = 'day' OR period_start < $2) LIMIT $3)",
        )
        .bind(DB::time(days_before.max(months_before)))
        .bind(DB::time(months_before))
        .bind(i64::from(limit))
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done))
    }
}
