//! The money queries of `SqlStore`: usage records (with the spend they add, in the same
//! transaction), budgets and spend counters, written once for both databases; `sql.rs` forwards.

use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::dialect::{Dialect, Fields};
use super::rows::{budget, usage_event};
use super::sql::SqlStore;
use super::*;

macro_rules! usage_columns {
    () => {
        "id, tenant_id, end_user_id, api_key_id, provider, model, endpoint, status, paid, prompt_tokens, \
         completion_tokens, latency_ms, ttft_ms, created_at, cached_tokens, cache_write_tokens, reasoning_tokens, \
         cost_nanos"
    };
}
macro_rules! budget_columns {
    () => {
        "tenant_id, subject, limit_nanos, period, alert_at_bps, created_at, updated_at"
    };
}

/// Rows per multi-row usage INSERT.
const USAGE_ROWS_PER_INSERT: usize = 500;

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Row: Fields,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<DB::Id>: Encode<'q, DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB>,
{
    pub(super) async fn money_insert_usage_batch(&self, events: &[UsageEvent]) -> Result<()> {
        // Multi-row INSERTs (18 binds a row, well under either database's bind limit per
        // statement), all in one transaction.
        let mut tx = self.pool().begin().await?;
        for chunk in events.chunks(USAGE_ROWS_PER_INSERT) {
            let mut insert =
                sqlx::QueryBuilder::<DB>::new(concat!("INSERT INTO usage_events (", usage_columns!(), ") "));
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(DB::id(e.id))
                    .push_bind(DB::id(e.tenant_id))
                    .push_bind(e.end_user_id.map(DB::id))
                    .push_bind(e.api_key_id.map(DB::id))
                    .push_bind(e.provider.as_str())
                    .push_bind(e.model.as_str())
                    .push_bind(e.endpoint.as_str())
                    .push_bind(i32::from(e.status))
                    .push_bind(e.paid)
                    .push_bind(e.prompt_tokens.map(to_i64))
                    .push_bind(e.completion_tokens.map(to_i64))
                    .push_bind(to_i64(e.latency_ms))
                    .push_bind(e.ttft_ms.map(to_i64))
                    .push_bind(DB::time(e.created_at))
                    .push_bind(e.cached_tokens.map(to_i64))
                    .push_bind(e.cache_write_tokens.map(to_i64))
                    .push_bind(e.reasoning_tokens.map(to_i64))
                    .push_bind(e.cost_nanos);
            });
            DB::execute_built(&mut *tx, insert).await?;
        }
        // The day's roll-ups in the same transaction: they never disagree with the events.
        Self::add_rollups(&mut tx, events).await?;
        for (tenant_id, key, amount) in spend_charges(events) {
            let subject = key.subject.stored();
            sqlx::query(
                "INSERT INTO spend (tenant_id, subject, period, period_start, end_user_id, spent_nanos) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, subject, period, period_start) \
                 DO UPDATE SET spent_nanos = spend.spent_nanos + EXCLUDED.spent_nanos",
            )
            .bind(DB::id(tenant_id))
            .bind(subject.as_str())
            .bind(key.period.as_str())
            .bind(DB::time(key.start))
            .bind(key.subject.end_user_id().map(DB::id))
            .bind(amount.nanos())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn money_usage_events_between(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageEvent>> {
        sqlx::query(concat!(
            "SELECT ",
            usage_columns!(),
            " FROM usage_events \
             WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND created_at >= $3 AND created_at < $4 \
             ORDER BY created_at, id LIMIT $5"
        ))
        .bind(DB::id(tenant_id))
        .bind(end_user_id.map(DB::id))
        .bind(DB::time(from))
        .bind(DB::time(to))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(usage_event)
        .collect()
    }

    pub(super) async fn money_put_budget(&self, b: &Budget) -> Result<Budget> {
        let subject = b.scope.subject();
        let stored = sqlx::query(concat!(
            "INSERT INTO budgets (",
            budget_columns!(),
            ", end_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, subject) DO UPDATE SET \
             limit_nanos = EXCLUDED.limit_nanos, period = EXCLUDED.period, alert_at_bps = EXCLUDED.alert_at_bps, \
             updated_at = EXCLUDED.updated_at RETURNING ",
            budget_columns!()
        ))
        .bind(DB::id(b.tenant_id))
        .bind(subject.as_str())
        .bind(b.limit.nanos())
        .bind(b.period.as_str())
        .bind(i32::from(b.alert_at_bps))
        .bind(DB::time(b.created_at))
        .bind(DB::time(b.updated_at))
        .bind(b.scope.end_user_id().map(DB::id))
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from)
        .and_then(|row| budget(&row))?;
        self.announce(Change::Tenant(b.tenant_id)).await;
        Ok(stored)
    }

    pub(super) async fn money_budgets_for(&self, tenant_id: Uuid, end_user_id: Option<Uuid>) -> Result<Vec<Budget>> {
        let own = end_user_id.map(|id| BudgetScope::EndUser(id).subject());
        sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE tenant_id = $1 AND (subject IN ('tenant', 'end_user_default') OR subject = $2)"
        ))
        .bind(DB::id(tenant_id))
        .bind(own.as_deref())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(budget)
        .collect()
    }

    pub(super) async fn money_delete_budget(&self, tenant_id: Uuid, scope: BudgetScope) -> Result<bool> {
        let subject = scope.subject();
        let done = sqlx::query("DELETE FROM budgets WHERE tenant_id = $1 AND subject = $2")
            .bind(DB::id(tenant_id))
            .bind(subject.as_str())
            .execute(self.pool())
            .await?;
        self.announce(Change::Tenant(tenant_id)).await;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(super) async fn money_spend(&self, tenant_id: Uuid, keys: &[SpendKey]) -> Result<Vec<Usd>> {
        // Five counters a statement (what one call checks at most); a shorter list repeats its
        // last key.
        const SELECT: &str = "SELECT subject, period, period_start, spent_nanos FROM spend WHERE tenant_id = $1 AND ( \
            (subject = $2 AND period = $3 AND period_start = $4) OR (subject = $5 AND period = $6 AND period_start = $7) \
            OR (subject = $8 AND period = $9 AND period_start = $10) \
            OR (subject = $11 AND period = $12 AND period_start = $13) \
            OR (subject = $14 AND period = $15 AND period_start = $16))";
        let mut found = std::collections::HashMap::new();
        let subjects: Vec<String> = keys.iter().map(|k| k.subject.stored()).collect();
        for (chunk, names) in keys.chunks(5).zip(subjects.chunks(5)) {
            let mut query = sqlx::query(SELECT).bind(DB::id(tenant_id));
            for i in 0..5 {
                let last = i.min(chunk.len() - 1);
                let key = &chunk[last];
                query = query.bind(names[last].as_str()).bind(key.period.as_str()).bind(DB::time(key.start));
            }
            for row in query.fetch_all(self.pool()).await? {
                let at = (row.text("subject")?, row.text("period")?, row.time("period_start")?);
                found.insert(at, row.i64("spent_nanos")?);
            }
        }
        Ok(keys
            .iter()
            .map(|k| {
                let at = (k.subject.stored(), k.period.as_str().to_owned(), k.start);
                Usd::from_nanos(found.get(&at).copied().unwrap_or(0))
            })
            .collect())
    }

    pub(super) async fn money_mark_spend_alert(
        &self,
        tenant_id: Uuid,
        key: &SpendKey,
        alert: SpendAlert,
    ) -> Result<bool> {
        let statement = match alert {
            SpendAlert::Threshold => {
                "UPDATE spend SET threshold_sent = TRUE WHERE tenant_id = $1 AND subject = $2 AND period = $3 \
                 AND period_start = $4 AND threshold_sent = FALSE"
            }
            SpendAlert::Exceeded => {
                "UPDATE spend SET exceeded_sent = TRUE WHERE tenant_id = $1 AND subject = $2 AND period = $3 \
                 AND period_start = $4 AND exceeded_sent = FALSE"
            }
        };
        let subject = key.subject.stored();
        let done = sqlx::query(statement)
            .bind(DB::id(tenant_id))
            .bind(subject.as_str())
            .bind(key.period.as_str())
            .bind(DB::time(key.start))
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(super) async fn money_usage_end_user_labels(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>> {
        // Whole days from the roll-ups (their events may be pruned), the rest from the events.
        let (whole_from, whole_to) = super::usage::whole_days(from, to);
        let rows = sqlx::query(
            "SELECT id, label FROM end_users WHERE tenant_id = $1 AND (id IN (\
             SELECT end_user_id FROM usage_daily \
             WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND day >= $5 AND day < $6) \
             OR id IN (SELECT end_user_id FROM usage_events \
             WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND created_at >= $3 AND created_at < $4 \
             AND (created_at < $5 OR created_at >= $6)))",
        )
        .bind(DB::id(tenant_id))
        .bind(end_user_id.map(DB::id))
        .bind(DB::time(from))
        .bind(DB::time(to))
        .bind(DB::time(whole_from))
        .bind(DB::time(whole_to))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok((row.uuid("id")?, row.text("label")?))).collect()
    }
}
