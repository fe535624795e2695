//! The webhook queries of `SqlStore` (endpoints, events, the delivery outbox and its claim),
//! written once for both databases; `sql.rs` forwards the `Store` methods here.

use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::dialect::{kek, Dialect, Fields};
use super::rows::sealed;
use super::sql::SqlStore;
use super::*;

macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, events, description, kek_version, wrapped_dek, ciphertext, created_at"
    };
}

/// Leased rows of one claim, with what an attempt needs; `{ids}` is replaced by placeholders.
const CLAIMED_DETAILS: &str = "SELECT d.id, d.event_id, d.attempts, e.event_type, e.payload, p.id AS endpoint_id, \
     p.tenant_id, p.url, p.kek_version, p.wrapped_dek, p.ciphertext \
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
     JOIN webhook_endpoints p ON p.id = d.endpoint_id WHERE d.id IN ({ids}) ORDER BY d.id";

/// Per endpoint its oldest due delivery, skipping endpoints with a leased one. The outer
/// conditions are checked again on the row as it is when updated.
const CLAIM: &str = "UPDATE webhook_deliveries SET locked_until = $2, attempts = attempts + 1 \
     WHERE status = 'pending' AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
     AND id IN (SELECT MIN(d.id) FROM webhook_deliveries d \
        WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
        AND (d.locked_until IS NULL OR d.locked_until <= $1) \
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries l WHERE l.endpoint_id = d.endpoint_id \
            AND l.status = 'pending' AND l.locked_until > $1) \
        GROUP BY d.endpoint_id ORDER BY MIN(d.id) LIMIT $3) \
     RETURNING id";

fn u32_of(v: i64, column: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("bad {column} {v}")))
}

fn events_of(raw: Option<String>) -> Result<Option<Vec<String>>> {
    raw.map(|r| serde_json::from_str(&r).map_err(|_| StoreError::Corrupt("webhook events is not a JSON array".into())))
        .transpose()
}

fn endpoint(row: &impl Fields) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        url: row.text("url")?,
        events: events_of(row.opt_text("events")?)?,
        description: row.opt_text("description")?,
        sealed_secret: sealed(row)?,
        created_at: row.time("created_at")?,
    })
}

fn claimed(row: &impl Fields) -> Result<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        id: row.i64("id")?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        payload: row.text("payload")?,
        endpoint_id: row.uuid("endpoint_id")?,
        tenant_id: row.uuid("tenant_id")?,
        url: row.text("url")?,
        sealed_secret: sealed(row)?,
        attempts: u32_of(row.i64("attempts")?, "attempts")?,
    })
}

fn delivery(row: &impl Fields) -> Result<WebhookDelivery> {
    let status = row.text("status")?;
    Ok(WebhookDelivery {
        id: row.i64("id")?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("bad delivery status {status}")))?,
        attempts: u32_of(row.i64("attempts")?, "attempts")?,
        last_status: row
            .opt_i64("last_status")?
            .map(|s| u16::try_from(s).map_err(|_| StoreError::Corrupt(format!("bad last_status {s}"))))
            .transpose()?,
        last_error: row.opt_text("last_error")?,
        last_attempt_at: row.opt_time("last_attempt_at")?,
        next_attempt_at: row.opt_time("next_attempt_at")?,
        created_at: row.time("created_at")?,
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
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB>,
{
    pub(super) async fn webhook_insert_endpoint(&self, e: &WebhookEndpoint) -> Result<()> {
        let events = e.events.as_ref().map(|ev| serde_json::to_string(ev).unwrap_or_else(|_| "[]".to_owned()));
        sqlx::query(concat!(
            "INSERT INTO webhook_endpoints (",
            endpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(DB::id(e.id))
        .bind(DB::id(e.tenant_id))
        .bind(e.url.as_str())
        .bind(events.as_deref())
        .bind(e.description.as_deref())
        .bind(kek::<DB>(e.sealed_secret.kek_version)?)
        .bind(e.sealed_secret.wrapped_dek.as_slice())
        .bind(e.sealed_secret.ciphertext.as_slice())
        .bind(DB::time(e.created_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_list_endpoints(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>> {
        sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(DB::id(tenant_id))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(endpoint)
        .collect()
    }

    pub(super) async fn webhook_get_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        sqlx::query(concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"))
            .bind(DB::id(tenant_id))
            .bind(DB::id(id))
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(endpoint)
            .transpose()
    }

    pub(super) async fn webhook_delete_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(DB::id(tenant_id))
            .bind(DB::id(id))
            .execute(self.pool())
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(super) async fn webhook_enqueue(&self, e: &NewWebhookEvent) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_events (id, tenant_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.id.as_str())
        .bind(DB::id(e.tenant_id))
        .bind(e.event_type.as_str())
        .bind(e.payload.as_str())
        .bind(DB::time(e.created_at))
        .execute(&mut *tx)
        .await?;
        // `events` is a JSON array of fixed words (letters and dots): a quoted match is exact.
        let subscribed = format!("%\"{}\"%", e.event_type);
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
             SELECT $1, id, 'pending', 0, $2, $2 FROM webhook_endpoints \
             WHERE tenant_id = $3 AND (events IS NULL OR events LIKE $4) ORDER BY created_at, id",
        )
        .bind(e.id.as_str())
        .bind(DB::time(e.created_at))
        .bind(DB::id(e.tenant_id))
        .bind(subscribed.as_str())
        .execute(&mut *tx)
        .await?;
        let created = DB::rows_affected(&done);
        if created == 0 {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(created)
    }

    pub(super) async fn webhook_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.pool().begin().await?;
        if let Some(lock) = DB::CLAIM_LOCK {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let ids = sqlx::query(CLAIM)
            .bind(DB::time(now))
            .bind(DB::time(lease_until))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.i64("id"))
            .collect::<Result<Vec<i64>>>()?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let placeholders = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let statement = CLAIMED_DETAILS.replace("{ids}", &placeholders);
        let mut details = sqlx::query(&statement);
        for id in &ids {
            details = details.bind(*id);
        }
        let rows = details.fetch_all(&mut *tx).await?.iter().map(claimed).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(rows)
    }

    pub(super) async fn webhook_finish(&self, id: i64, r: &AttemptResult) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, locked_until = NULL, last_attempt_at = $3, last_status = $4, \
             last_error = $5, next_attempt_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(r.status.as_str())
        .bind(Some(DB::time(r.at)))
        .bind(r.http_status.map(i64::from))
        .bind(r.error.as_deref())
        .bind(r.next_attempt_at.map(DB::time))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_list_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        sqlx::query(
            "SELECT d.id, d.event_id, e.event_type, d.status, d.attempts, d.last_status, d.last_error, \
             d.last_attempt_at, d.next_attempt_at, d.created_at \
             FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
             JOIN webhook_endpoints p ON p.id = d.endpoint_id \
             WHERE p.tenant_id = $1 AND d.endpoint_id = $2 ORDER BY d.id DESC LIMIT $3",
        )
        .bind(DB::id(tenant_id))
        .bind(DB::id(endpoint_id))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    pub(super) async fn webhook_prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_events WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id AND d.status = 'pending')",
        )
        .bind(DB::time(before))
        .execute(self.pool())
        .await?;
        Ok(DB::rows_affected(&done))
    }

    pub(super) async fn webhook_count_pending(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?;
        Ok(to_u64(row.i64("n")?))
    }

    pub(super) async fn webhook_endpoints_not_on(&self, version: KekVersion) -> Result<Vec<WebhookEndpoint>> {
        sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE kek_version <> $1 ORDER BY id"
        ))
        .bind(kek::<DB>(version)?)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(endpoint)
        .collect()
    }
}
