//! Every store query, written once for PostgreSQL and SQLite: `SqlStore<DB>` implements `Store`
//! for a database with a `Dialect` (dialect.rs); money and webhook queries live in
//! `sql_money.rs` and `sql_webhooks.rs`, row readers in `rows.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::dialect::{kek, Dialect, Fields};
use super::rows::*;
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
    pub(super) async fn announce(&self, change: Change) {
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
        self.money_insert_usage_batch(events).await
    }

    async fn usage_events_between(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageEvent>> {
        self.money_usage_events_between(tenant_id, end_user_id, from, to, limit).await
    }

    async fn put_budget(&self, b: &Budget) -> Result<Budget> {
        self.money_put_budget(b).await
    }

    async fn budgets_for(&self, tenant_id: Uuid, end_user_id: Option<Uuid>) -> Result<Vec<Budget>> {
        self.money_budgets_for(tenant_id, end_user_id).await
    }

    async fn delete_budget(&self, tenant_id: Uuid, scope: BudgetScope) -> Result<bool> {
        self.money_delete_budget(tenant_id, scope).await
    }

    async fn spend(&self, tenant_id: Uuid, keys: &[SpendKey]) -> Result<Vec<Usd>> {
        self.money_spend(tenant_id, keys).await
    }

    async fn mark_spend_alert(&self, tenant_id: Uuid, key: &SpendKey, alert: SpendAlert) -> Result<bool> {
        self.money_mark_spend_alert(tenant_id, key, alert).await
    }

    async fn usage_end_user_labels(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>> {
        self.money_usage_end_user_labels(tenant_id, end_user_id, from, to).await
    }

    async fn usage_rollups(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from_day: DateTime<Utc>,
        to_day: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        self.usage_rollups_query(tenant_id, end_user_id, from_day, to_day).await
    }

    async fn usage_rollups_from_events(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        self.usage_rollups_from_events_query(tenant_id, end_user_id, from, to).await
    }

    async fn usage_latency(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: UsageKey,
    ) -> Result<Vec<LatencyPercentiles>> {
        self.usage_latency_query(tenant_id, end_user_id, from, to, key).await
    }

    async fn prune_usage_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.prune_usage_events_query(before, limit).await
    }

    async fn prune_usage_rollups(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.prune_usage_rollups_query(before, limit).await
    }

    async fn prune_spend(&self, days_before: DateTime<Utc>, months_before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.prune_spend_query(days_before, months_before, limit).await
    }

    async fn follow_changes(&self, seen: ChangeSink) -> Result<()> {
        DB::follow_changes(&self.pool, seen).await
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, actor, action, target, address, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
            .bind(e.tenant_id.map(DB::id))
            .bind(e.actor.as_str())
            .bind(e.action.as_str())
            .bind(e.target.as_deref())
            .bind(e.address.as_deref())
            .bind(DB::time(e.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn console(&self) -> &dyn super::console::ConsoleStore {
        self
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
            "SELECT tenant_id, actor, action, target, address, created_at FROM audit_log \
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
