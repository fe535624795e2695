//! Every store query, written once for PostgreSQL and SQLite: `SqlStore<DB>` implements `Store`
//! for a database with a `Dialect` (dialect.rs), and reads rows into Relay's types.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::dialect::{kek, Dialect, Fields};
use super::*;
use crate::vault::SealedKey;

/// A store on one SQL database: `PgStore` and `SqliteStore` name the two Relay runs on.
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

// Column lists as macros, so that `concat!` builds each statement once, at compile time.
macro_rules! end_user_columns {
    () => {
        "id, tenant_id, label, paid, created_at, token_generation"
    };
}
macro_rules! provider_key_columns {
    () => {
        "id, tenant_id, end_user_id, provider, fingerprint, kek_version, wrapped_dek, ciphertext, created_at, \
         last_used_at, base_url, monthly_cap_nanos, status, status_reason, status_at"
    };
}
macro_rules! budget_columns {
    () => {
        "tenant_id, subject, limit_nanos, period, alert_at_bps, created_at, updated_at"
    };
}
macro_rules! signing_key_columns {
    () => {
        "id, name, kek_version, wrapped_dek, ciphertext, created_at"
    };
}
macro_rules! settings_columns {
    () => {
        "byok_flow_enabled, allowed_origins, rate_limit_api_key, rate_limit_end_user, rate_limit_free_end_user, \
         free_models"
    };
}
macro_rules! usage_columns {
    () => {
        "id, tenant_id, end_user_id, api_key_id, provider, model, endpoint, status, paid, prompt_tokens, \
         completion_tokens, latency_ms, ttft_ms, created_at, cached_tokens, cache_write_tokens, reasoning_tokens, \
         cost_nanos"
    };
}
/// Compare-and-set of a re-wrapped data key in a table of sealed keys.
macro_rules! rewrap_statement {
    ($table:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET kek_version = $2, wrapped_dek = $3 \
             WHERE id = $1 AND kek_version = $4 AND wrapped_dek = $5 AND ciphertext = $6"
        )
    };
}

/// Rows per multi-row usage INSERT.
const USAGE_ROWS_PER_INSERT: usize = 500;

fn tenant(row: &impl Fields) -> Result<Tenant> {
    Ok(Tenant {
        id: row.uuid("id")?,
        name: row.text("name")?,
        app_id: row.text("app_id")?,
        created_at: row.time("created_at")?,
    })
}

fn api_key(row: &impl Fields) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        public_id: row.text("public_id")?,
        secret_hash: row.bytes("secret_hash")?,
        last4: row.text("last4")?,
        name: row.opt_text("name")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

fn end_user(row: &impl Fields) -> Result<EndUser> {
    Ok(EndUser {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        label: row.text("label")?,
        paid: row.flag("paid")?,
        created_at: row.time("created_at")?,
        token_generation: row.i64("token_generation")?,
    })
}

fn sealed(row: &impl Fields) -> Result<SealedKey> {
    Ok(SealedKey {
        kek_version: row.kek_version("kek_version")?,
        wrapped_dek: row.bytes("wrapped_dek")?,
        ciphertext: row.bytes("ciphertext")?,
    })
}

fn provider_key(row: &impl Fields) -> Result<StoredProviderKey> {
    Ok(StoredProviderKey {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        end_user_id: row.uuid("end_user_id")?,
        provider: row.text("provider")?,
        fingerprint: row.text("fingerprint")?,
        sealed: sealed(row)?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        base_url: row.opt_text("base_url")?,
        monthly_cap: row.opt_i64("monthly_cap_nanos")?.map(Usd::from_nanos),
        health: key_health(row)?,
    })
}

fn key_health(row: &impl Fields) -> Result<KeyHealth> {
    Ok(KeyHealth {
        status: key_status_from_column(&row.text("status")?)?,
        reason: row.opt_text("status_reason")?,
        at: row.opt_time("status_at")?,
    })
}

fn budget(row: &impl Fields) -> Result<Budget> {
    let period = row.text("period")?;
    let bps = row.i32("alert_at_bps")?;
    Ok(Budget {
        tenant_id: row.uuid("tenant_id")?,
        scope: BudgetScope::parse(&row.text("subject")?)?,
        limit: Usd::from_nanos(row.i64("limit_nanos")?),
        period: Period::parse(&period)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown budget period {period:?}")))?,
        alert_at_bps: u16::try_from(bps).map_err(|_| StoreError::Corrupt(format!("bad alert_at_bps {bps}")))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn signing_key(row: &impl Fields) -> Result<SessionSigningKey> {
    Ok(SessionSigningKey {
        id: row.uuid("id")?,
        name: row.text("name")?,
        sealed: sealed(row)?,
        created_at: row.time("created_at")?,
    })
}

fn settings(row: &impl Fields) -> Result<TenantSettings> {
    SettingsColumns {
        byok_flow_enabled: row.flag("byok_flow_enabled")?,
        allowed_origins: row.text("allowed_origins")?,
        rate_limit_api_key: row.opt_text("rate_limit_api_key")?,
        rate_limit_end_user: row.opt_text("rate_limit_end_user")?,
        rate_limit_free_end_user: row.opt_text("rate_limit_free_end_user")?,
        free_models: row.text("free_models")?,
    }
    .parse()
}

fn registration_token(row: &impl Fields) -> Result<RegistrationTokenInfo> {
    Ok(RegistrationTokenInfo {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        tenant_name: row.text("tenant_name")?,
        end_user_id: row.uuid("end_user_id")?,
        end_user_label: row.text("label")?,
        provider: row.opt_text("provider")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
    })
}

fn key_summary(row: &impl Fields) -> Result<ProviderKeySummary> {
    Ok(ProviderKeySummary {
        provider: row.text("provider")?,
        fingerprint: row.text("fingerprint")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        monthly_cap: row.opt_i64("monthly_cap_nanos")?.map(Usd::from_nanos),
        health: key_health(row)?,
    })
}

fn usage_event(row: &impl Fields) -> Result<UsageEvent> {
    let status = row.i32("status")?;
    Ok(UsageEvent {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        end_user_id: row.opt_uuid("end_user_id")?,
        api_key_id: row.opt_uuid("api_key_id")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        endpoint: row.text("endpoint")?,
        status: u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("bad status {status}")))?,
        paid: row.flag("paid")?,
        prompt_tokens: row.opt_i64("prompt_tokens")?.map(to_u64),
        completion_tokens: row.opt_i64("completion_tokens")?.map(to_u64),
        latency_ms: to_u64(row.i64("latency_ms")?),
        ttft_ms: row.opt_i64("ttft_ms")?.map(to_u64),
        created_at: row.time("created_at")?,
        cached_tokens: row.opt_i64("cached_tokens")?.map(to_u64),
        cache_write_tokens: row.opt_i64("cache_write_tokens")?.map(to_u64),
        reasoning_tokens: row.opt_i64("reasoning_tokens")?.map(to_u64),
        cost_nanos: row.opt_i64("cost_nanos")?,
    })
}

fn audit_event(row: &impl Fields) -> Result<AuditEvent> {
    Ok(AuditEvent {
        tenant_id: row.opt_uuid("tenant_id")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        target: row.opt_text("target")?,
        created_at: row.time("created_at")?,
    })
}

/// Statements bind ids, times and key versions as the dialect stores them, and plain values (text,
/// bytes, flags, integers) as both databases do. Rust does not carry a trait's where-clauses to
/// its users, so each generic impl spells out what it binds and runs.
impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> i64: Type<DB>,
{
    /// Compare-and-set of a re-wrapped data key (`rewrap_statement!`): applies only if the row
    /// still holds `old`.
    async fn rewrap(&self, statement: &'static str, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        let done = sqlx::query(statement)
            .bind(DB::id(id))
            .bind(kek::<DB>(new.kek_version)?)
            .bind(new.wrapped_dek.as_slice())
            .bind(kek::<DB>(old.kek_version)?)
            .bind(old.wrapped_dek.as_slice())
            .bind(old.ciphertext.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Tells every node's cache what a write changed (a failure is logged: the other nodes
    /// then see the change when their entries expire).
    async fn announce(&self, change: Change) {
        let Some(statement) = DB::NOTIFY else { return };
        let text = change.to_string();
        if let Err(e) = sqlx::query(statement).bind(text.as_str()).execute(&self.pool).await {
            tracing::warn!(error = ?e, change = %text, "could not announce a change to the other nodes");
        }
    }

    /// Stores a provider key, replacing the end user's key for that provider: used by redeeming a
    /// registration token (inside its transaction) and by the byok flow.
    async fn upsert_key<'e>(executor: impl Executor<'e, Database = DB>, key: &StoredProviderKey) -> Result<()> {
        const UPSERT: &str = concat!(
            "INSERT INTO provider_keys (",
            provider_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (end_user_id, provider) DO UPDATE SET id = EXCLUDED.id, fingerprint = EXCLUDED.fingerprint, \
             kek_version = EXCLUDED.kek_version, wrapped_dek = EXCLUDED.wrapped_dek, ciphertext = EXCLUDED.ciphertext, \
             created_at = EXCLUDED.created_at, last_used_at = NULL, base_url = EXCLUDED.base_url, \
             monthly_cap_nanos = EXCLUDED.monthly_cap_nanos, status = EXCLUDED.status, \
             status_reason = EXCLUDED.status_reason, status_at = EXCLUDED.status_at"
        );
        sqlx::query(UPSERT)
            .bind(DB::id(key.id))
            .bind(DB::id(key.tenant_id))
            .bind(DB::id(key.end_user_id))
            .bind(key.provider.as_str())
            .bind(key.fingerprint.as_str())
            .bind(kek::<DB>(key.sealed.kek_version)?)
            .bind(key.sealed.wrapped_dek.as_slice())
            .bind(key.sealed.ciphertext.as_slice())
            .bind(DB::time(key.created_at))
            .bind(key.last_used_at.map(DB::time))
            .bind(key.base_url.as_deref())
            .bind(key.monthly_cap.map(Usd::nanos))
            .bind(key.health.status.as_str())
            .bind(key.health.reason.as_deref())
            .bind(key.health.at.map(DB::time))
            .execute(executor)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    DB::Row: Fields,
    DB::Connection: Migrate,
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
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        Migrator::new(EmbeddedMigrations(DB::MIGRATIONS)).await?.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, app_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(DB::id(t.id))
            .bind(t.name.as_str())
            .bind(t.app_id.as_str())
            .bind(DB::time(t.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        sqlx::query("SELECT id, name, app_id, created_at FROM tenants WHERE id = $1")
            .bind(DB::id(id))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant)
            .transpose()
    }

    async fn find_tenant_by_app_id(&self, app_id: &str) -> Result<Option<Tenant>> {
        sqlx::query("SELECT id, name, app_id, created_at FROM tenants WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant)
            .transpose()
    }

    async fn get_tenant_settings(&self, id: Uuid) -> Result<Option<TenantSettings>> {
        sqlx::query(concat!("SELECT ", settings_columns!(), " FROM tenants WHERE id = $1"))
            .bind(DB::id(id))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(settings)
            .transpose()
    }

    async fn update_tenant_settings(&self, id: Uuid, settings: &TenantSettings) -> Result<bool> {
        let c = SettingsColumns::of(settings);
        let done = sqlx::query(
            "UPDATE tenants SET byok_flow_enabled = $2, allowed_origins = $3, rate_limit_api_key = $4, \
             rate_limit_end_user = $5, rate_limit_free_end_user = $6, free_models = $7 WHERE id = $1",
        )
        .bind(DB::id(id))
        .bind(c.byok_flow_enabled)
        .bind(c.allowed_origins.as_str())
        .bind(c.rate_limit_api_key.as_deref())
        .bind(c.rate_limit_end_user.as_deref())
        .bind(c.rate_limit_free_end_user.as_deref())
        .bind(c.free_models.as_str())
        .execute(&self.pool)
        .await?;
        self.announce(Change::Tenant(id)).await;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn list_allowed_origins(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT allowed_origins FROM tenants WHERE allowed_origins <> '[]'")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.text("allowed_origins"))
            .collect::<Result<Vec<String>>>()?;
        merge_origins(rows)
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, public_id, secret_hash, last4, name, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(DB::id(k.id))
        .bind(DB::id(k.tenant_id))
        .bind(k.public_id.as_str())
        .bind(k.secret_hash.as_slice())
        .bind(k.last4.as_str())
        .bind(k.name.as_deref())
        .bind(DB::time(k.created_at))
        .bind(k.revoked_at.map(DB::time))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE public_id = $1")
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key)
            .transpose()
    }

    async fn list_api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(DB::id(tenant_id))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key)
            .collect()
    }

    async fn revoke_api_key(&self, tenant_id: Uuid, public_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND public_id = $2 AND revoked_at IS NULL",
        )
        .bind(DB::id(tenant_id))
        .bind(public_id)
        .bind(DB::time(at))
        .execute(&self.pool)
        .await?;
        self.announce(Change::ApiKey(public_id.to_owned())).await;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn upsert_end_user(&self, tenant_id: Uuid, label: &str, now: DateTime<Utc>) -> Result<EndUser> {
        // The no-op update makes RETURNING yield the existing row too.
        let row = sqlx::query(concat!(
            "INSERT INTO end_users (id, tenant_id, label, paid, created_at) VALUES ($1, $2, $3, TRUE, $4) \
             ON CONFLICT (tenant_id, label) DO UPDATE SET label = EXCLUDED.label RETURNING ",
            end_user_columns!()
        ))
        .bind(DB::id(Uuid::new_v4()))
        .bind(DB::id(tenant_id))
        .bind(label)
        .bind(DB::time(now))
        .fetch_one(&self.pool)
        .await?;
        end_user(&row)
    }

    async fn get_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        sqlx::query(concat!("SELECT ", end_user_columns!(), " FROM end_users WHERE tenant_id = $1 AND label = $2"))
            .bind(DB::id(tenant_id))
            .bind(label)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(end_user)
            .transpose()
    }

    async fn get_end_user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<EndUser>> {
        sqlx::query(concat!("SELECT ", end_user_columns!(), " FROM end_users WHERE tenant_id = $1 AND id = $2"))
            .bind(DB::id(tenant_id))
            .bind(DB::id(id))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(end_user)
            .transpose()
    }

    async fn revoke_end_user_sessions(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        let found = sqlx::query(concat!(
            "UPDATE end_users SET token_generation = token_generation + 1 WHERE tenant_id = $1 AND label = $2 \
             RETURNING ",
            end_user_columns!()
        ))
        .bind(DB::id(tenant_id))
        .bind(label)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(end_user)
        .transpose()?;
        if let Some(user) = &found {
            self.announce(Change::EndUser(user.id)).await;
        }
        Ok(found)
    }

    async fn set_end_user_paid(&self, tenant_id: Uuid, id: Uuid, paid: bool) -> Result<()> {
        sqlx::query("UPDATE end_users SET paid = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(DB::id(tenant_id))
            .bind(DB::id(id))
            .bind(paid)
            .execute(&self.pool)
            .await?;
        self.announce(Change::EndUser(id)).await;
        Ok(())
    }

    async fn delete_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<Uuid>> {
        let gone = sqlx::query("DELETE FROM end_users WHERE tenant_id = $1 AND label = $2 RETURNING id")
            .bind(DB::id(tenant_id))
            .bind(label)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.uuid("id"))
            .transpose()?;
        if let Some(id) = gone {
            self.announce(Change::EndUser(id)).await;
        }
        Ok(gone)
    }

    async fn insert_registration_token(&self, t: &NewRegistrationToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO registration_tokens (id, tenant_id, end_user_id, token_hash, provider, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(DB::id(t.id))
        .bind(DB::id(t.tenant_id))
        .bind(DB::id(t.end_user_id))
        .bind(&t.token_hash[..])
        .bind(t.provider.as_deref())
        .bind(DB::time(t.created_at))
        .bind(DB::time(t.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_registration_token(&self, token_hash: &[u8; 32]) -> Result<Option<RegistrationTokenInfo>> {
        sqlx::query(
            "SELECT r.id, r.tenant_id, t.name AS tenant_name, r.end_user_id, u.label, r.provider, r.expires_at, r.used_at \
             FROM registration_tokens r JOIN tenants t ON t.id = r.tenant_id JOIN end_users u ON u.id = r.end_user_id \
             WHERE r.token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(registration_token)
        .transpose()
    }

    async fn redeem_registration_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        key: &StoredProviderKey,
    ) -> Result<std::result::Result<(), RedeemError>> {
        let mut tx = self.pool.begin().await?;
        // The claim is the transaction's first statement, so on SQLite it takes the write lock
        // straight away and concurrent redemptions queue behind it instead of failing to upgrade
        // a lock.
        let claimed = sqlx::query(
            "UPDATE registration_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND tenant_id = $3 AND end_user_id = $4 \
             RETURNING id",
        )
        .bind(&token_hash[..])
        .bind(DB::time(now))
        .bind(DB::id(key.tenant_id))
        .bind(DB::id(key.end_user_id))
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let row = sqlx::query(
                "SELECT used_at FROM registration_tokens WHERE token_hash = $1 AND end_user_id = $2 AND tenant_id = $3",
            )
            .bind(&token_hash[..])
            .bind(DB::id(key.end_user_id))
            .bind(DB::id(key.tenant_id))
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(Err(match row {
                None => RedeemError::NotFound,
                Some(r) if !r.is_null("used_at")? => RedeemError::Used,
                Some(_) => RedeemError::Expired,
            }));
        }
        Self::upsert_key(&mut *tx, key).await?;
        tx.commit().await?;
        self.announce(Change::EndUser(key.end_user_id)).await;
        Ok(Ok(()))
    }

    async fn upsert_provider_key(&self, key: &StoredProviderKey) -> Result<()> {
        Self::upsert_key(&self.pool, key).await?;
        self.announce(Change::EndUser(key.end_user_id)).await;
        Ok(())
    }

    async fn get_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<Option<StoredProviderKey>> {
        sqlx::query(concat!(
            "SELECT ",
            provider_key_columns!(),
            " FROM provider_keys WHERE end_user_id = $1 AND provider = $2"
        ))
        .bind(DB::id(end_user_id))
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(provider_key)
        .transpose()
    }

    async fn list_provider_keys(&self, end_user_id: Uuid) -> Result<Vec<ProviderKeySummary>> {
        sqlx::query(
            "SELECT provider, fingerprint, created_at, last_used_at, monthly_cap_nanos, status, status_reason, \
             status_at FROM provider_keys WHERE end_user_id = $1 ORDER BY provider",
        )
        .bind(DB::id(end_user_id))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_summary)
        .collect()
    }

    async fn delete_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM provider_keys WHERE end_user_id = $1 AND provider = $2")
            .bind(DB::id(end_user_id))
            .bind(provider)
            .execute(&self.pool)
            .await?;
        self.announce(Change::EndUser(end_user_id)).await;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn touch_provider_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE provider_keys SET last_used_at = $2 WHERE id = $1")
            .bind(DB::id(id))
            .bind(DB::time(at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn provider_keys_not_on_version(
        &self,
        version: KekVersion,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<StoredProviderKey>> {
        sqlx::query(concat!(
            "SELECT ",
            provider_key_columns!(),
            " FROM provider_keys WHERE kek_version <> $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(kek::<DB>(version)?)
        .bind(after.map(DB::id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(provider_key)
        .collect()
    }

    async fn rewrap_provider_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.rewrap(rewrap_statement!("provider_keys"), id, old, new).await
    }

    async fn insert_session_signing_key(&self, key: &SessionSigningKey) -> Result<bool> {
        let done = sqlx::query(concat!(
            "INSERT INTO session_signing_keys (",
            signing_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(DB::id(key.id))
        .bind(key.name.as_str())
        .bind(kek::<DB>(key.sealed.kek_version)?)
        .bind(key.sealed.wrapped_dek.as_slice())
        .bind(key.sealed.ciphertext.as_slice())
        .bind(DB::time(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn get_session_signing_key(&self, name: &str) -> Result<Option<SessionSigningKey>> {
        sqlx::query(concat!("SELECT ", signing_key_columns!(), " FROM session_signing_keys WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(signing_key)
            .transpose()
    }

    async fn session_signing_keys_not_on_version(&self, version: KekVersion) -> Result<Vec<SessionSigningKey>> {
        sqlx::query(concat!(
            "SELECT ",
            signing_key_columns!(),
            " FROM session_signing_keys WHERE kek_version <> $1 ORDER BY id"
        ))
        .bind(kek::<DB>(version)?)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(signing_key)
        .collect()
    }

    async fn rewrap_session_signing_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.rewrap(rewrap_statement!("session_signing_keys"), id, old, new).await
    }

    async fn insert_usage_event(&self, e: &UsageEvent) -> Result<()> {
        self.insert_usage_batch(std::slice::from_ref(e)).await
    }

    async fn insert_usage_batch(&self, events: &[UsageEvent]) -> Result<()> {
        // Multi-row INSERTs (18 binds a row, well under either database's bind limit per
        // statement), all in one transaction.
        let mut tx = self.pool.begin().await?;
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

    async fn usage_events_between(
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
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(usage_event)
        .collect()
    }

    async fn put_budget(&self, b: &Budget) -> Result<Budget> {
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
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from)
        .and_then(|row| budget(&row))?;
        self.announce(Change::Tenant(b.tenant_id)).await;
        Ok(stored)
    }

    async fn budgets_for(&self, tenant_id: Uuid, end_user_id: Option<Uuid>) -> Result<Vec<Budget>> {
        let own = end_user_id.map(|id| BudgetScope::EndUser(id).subject());
        sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE tenant_id = $1 AND (subject IN ('tenant', 'end_user_default') OR subject = $2)"
        ))
        .bind(DB::id(tenant_id))
        .bind(own.as_deref())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(budget)
        .collect()
    }

    async fn delete_budget(&self, tenant_id: Uuid, scope: BudgetScope) -> Result<bool> {
        let subject = scope.subject();
        let done = sqlx::query("DELETE FROM budgets WHERE tenant_id = $1 AND subject = $2")
            .bind(DB::id(tenant_id))
            .bind(subject.as_str())
            .execute(&self.pool)
            .await?;
        self.announce(Change::Tenant(tenant_id)).await;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn spend(&self, tenant_id: Uuid, keys: &[SpendKey]) -> Result<Vec<Usd>> {
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
            for row in query.fetch_all(&self.pool).await? {
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

    async fn mark_spend_alert(&self, tenant_id: Uuid, key: &SpendKey, alert: SpendAlert) -> Result<bool> {
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
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn usage_end_user_labels(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>> {
        let rows = sqlx::query(
            "SELECT id, label FROM end_users WHERE tenant_id = $1 AND id IN (\
             SELECT end_user_id FROM usage_events \
             WHERE tenant_id = $1 AND ($2 IS NULL OR end_user_id = $2) AND created_at >= $3 AND created_at < $4)",
        )
        .bind(DB::id(tenant_id))
        .bind(end_user_id.map(DB::id))
        .bind(DB::time(from))
        .bind(DB::time(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.uuid("id")?, row.text("label")?))).collect()
    }

    async fn follow_changes(&self, seen: ChangeSink) -> Result<()> {
        DB::follow_changes(&self.pool, seen).await
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (tenant_id, actor, action, target, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(e.tenant_id.map(DB::id))
            .bind(e.actor.as_str())
            .bind(e.action.as_str())
            .bind(e.target.as_deref())
            .bind(DB::time(e.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_provider_key_health(&self, id: Uuid, health: &KeyHealth) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE provider_keys SET status = $2, status_reason = $3, status_at = $4 \
             WHERE id = $1 AND status <> $2 AND status <> 'invalid'",
        )
        .bind(DB::id(id))
        .bind(health.status.as_str())
        .bind(health.reason.as_deref())
        .bind(health.at.map(DB::time))
        .execute(&self.pool)
        .await?;
        let changed = DB::rows_affected(&done) == 1;
        if changed {
            self.announce(Change::ProviderKey(id)).await;
        }
        Ok(changed)
    }

    async fn list_audit(&self, tenant_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT tenant_id, actor, action, target, created_at FROM audit_log \
             WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant_id.map(DB::id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_event)
        .collect()
    }

    async fn insert_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.webhook_insert_endpoint(endpoint).await
    }

    async fn list_webhook_endpoints(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>> {
        self.webhook_list_endpoints(tenant_id).await
    }

    async fn get_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        self.webhook_get_endpoint(tenant_id, id).await
    }

    async fn delete_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        self.webhook_delete_endpoint(tenant_id, id).await
    }

    async fn enqueue_webhook_event(&self, event: &NewWebhookEvent) -> Result<u64> {
        self.webhook_enqueue(event).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.webhook_claim(now, lease_until, limit).await
    }

    async fn finish_webhook_attempt(&self, id: i64, result: &AttemptResult) -> Result<()> {
        self.webhook_finish(id, result).await
    }

    async fn list_webhook_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        self.webhook_list_deliveries(tenant_id, endpoint_id, limit).await
    }

    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64> {
        self.webhook_prune(before).await
    }

    async fn count_pending_webhook_deliveries(&self) -> Result<u64> {
        self.webhook_count_pending().await
    }

    async fn webhook_endpoints_not_on_version(&self, version: KekVersion) -> Result<Vec<WebhookEndpoint>> {
        self.webhook_endpoints_not_on(version).await
    }

    async fn rewrap_webhook_secret(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.rewrap(rewrap_statement!("webhook_endpoints"), id, old, new).await
    }
}
