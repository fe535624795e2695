//! The SQLite store: the embedded default for one node. Ids are stored as UUID text and times as
//! Unix milliseconds; WAL mode and a busy timeout let concurrent requests queue for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::vault::SealedKey;

const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[
    (1, "initial", include_str!("../../../migrations/sqlite/0001_initial.sql")),
    (2, "sessions", include_str!("../../../migrations/sqlite/0002_sessions.sql")),
    (3, "base_url", include_str!("../../../migrations/sqlite/0003_base_url.sql")),
    (4, "limits", include_str!("../../../migrations/sqlite/0004_limits.sql")),
]);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Compare-and-set of a re-wrapped data key in `table`: applies only if the row still
    /// holds `old`.
    async fn rewrap(&self, table: &'static str, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE {table} SET kek_version = ?2, wrapped_dek = ?3 \
             WHERE id = ?1 AND kek_version = ?4 AND wrapped_dek = ?5 AND ciphertext = ?6"
        ))
        .bind(id.to_string())
        .bind(i64::from(new.kek_version))
        .bind(&new.wrapped_dek)
        .bind(i64::from(old.kek_version))
        .bind(&old.wrapped_dek)
        .bind(&old.ciphertext)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // No liveness ping before each lend: a broken connection fails its query, and the next
        // acquire replaces it. The ping was a round trip on every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        restrict_permissions(path);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The database holds sealed keys and hashes: keep it readable by its owner only.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v).single().ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {v}")))
}

fn opt_ms(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(col)?.map(from_ms).transpose()
}

fn time(row: &SqliteRow, col: &str) -> Result<DateTime<Utc>> {
    from_ms(row.try_get(col)?)
}

fn uid(row: &SqliteRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::from_str(&s).map_err(|_| StoreError::Corrupt(format!("bad uuid in {col}")))
}

fn opt_uid(row: &SqliteRow, col: &str) -> Result<Option<Uuid>> {
    row.try_get::<Option<String>, _>(col)?
        .map(|s| Uuid::from_str(&s).map_err(|_| StoreError::Corrupt(format!("bad uuid in {col}"))))
        .transpose()
}

fn provider_key(row: &SqliteRow) -> Result<StoredProviderKey> {
    let v: i64 = row.try_get("kek_version")?;
    Ok(StoredProviderKey {
        id: uid(row, "id")?,
        tenant_id: uid(row, "tenant_id")?,
        end_user_id: uid(row, "end_user_id")?,
        provider: row.try_get("provider")?,
        fingerprint: row.try_get("fingerprint")?,
        sealed: SealedKey {
            kek_version: KekVersion::try_from(v).map_err(|_| StoreError::Corrupt(format!("bad kek_version {v}")))?,
            wrapped_dek: row.try_get("wrapped_dek")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        created_at: time(row, "created_at")?,
        last_used_at: opt_ms(row, "last_used_at")?,
        base_url: row.try_get("base_url")?,
    })
}

fn api_key(row: &SqliteRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: uid(row, "id")?,
        tenant_id: uid(row, "tenant_id")?,
        public_id: row.try_get("public_id")?,
        secret_hash: row.try_get("secret_hash")?,
        last4: row.try_get("last4")?,
        name: row.try_get("name")?,
        created_at: time(row, "created_at")?,
        revoked_at: opt_ms(row, "revoked_at")?,
    })
}

fn end_user(row: &SqliteRow) -> Result<EndUser> {
    Ok(EndUser {
        id: uid(row, "id")?,
        tenant_id: uid(row, "tenant_id")?,
        label: row.try_get("label")?,
        paid: row.try_get("paid")?,
        created_at: time(row, "created_at")?,
        token_generation: row.try_get("token_generation")?,
    })
}

fn tenant(row: &SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        id: uid(row, "id")?,
        name: row.try_get("name")?,
        app_id: row.try_get("app_id")?,
        created_at: time(row, "created_at")?,
    })
}

fn signing_key(row: &SqliteRow) -> Result<SessionSigningKey> {
    let v: i64 = row.try_get("kek_version")?;
    Ok(SessionSigningKey {
        id: uid(row, "id")?,
        name: row.try_get("name")?,
        sealed: SealedKey {
            kek_version: KekVersion::try_from(v).map_err(|_| StoreError::Corrupt(format!("bad kek_version {v}")))?,
            wrapped_dek: row.try_get("wrapped_dek")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        created_at: time(row, "created_at")?,
    })
}

const END_USER_COLUMNS: &str = "id, tenant_id, label, paid, created_at, token_generation";
const SIGNING_KEY_COLUMNS: &str = "id, name, kek_version, wrapped_dek, ciphertext, created_at";

/// Stores a provider key, replacing the end user's key for that provider: used by redeeming a
/// registration token (inside its transaction) and by the byok flow.
async fn upsert_key<'e>(executor: impl sqlx::SqliteExecutor<'e>, key: &StoredProviderKey) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO provider_keys ({PROVIDER_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (end_user_id, provider) DO UPDATE SET id = excluded.id, fingerprint = excluded.fingerprint, \
         kek_version = excluded.kek_version, wrapped_dek = excluded.wrapped_dek, ciphertext = excluded.ciphertext, \
         created_at = excluded.created_at, last_used_at = NULL, base_url = excluded.base_url"
    ))
    .bind(key.id.to_string())
    .bind(key.tenant_id.to_string())
    .bind(key.end_user_id.to_string())
    .bind(&key.provider)
    .bind(&key.fingerprint)
    .bind(i64::from(key.sealed.kek_version))
    .bind(&key.sealed.wrapped_dek)
    .bind(&key.sealed.ciphertext)
    .bind(ms(key.created_at))
    .bind(key.last_used_at.map(ms))
    .bind(&key.base_url)
    .execute(executor)
    .await?;
    Ok(())
}

const PROVIDER_KEY_COLUMNS: &str =
    "id, tenant_id, end_user_id, provider, fingerprint, kek_version, wrapped_dek, ciphertext, created_at, last_used_at, base_url";

/// Rows per multi-row usage INSERT.
const USAGE_ROWS_PER_INSERT: usize = 500;

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate::Migrator::new(MIGRATIONS).await?.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, app_id, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(t.id.to_string())
            .bind(&t.name)
            .bind(&t.app_id)
            .bind(ms(t.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        sqlx::query("SELECT id, name, app_id, created_at FROM tenants WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant)
            .transpose()
    }

    async fn find_tenant_by_app_id(&self, app_id: &str) -> Result<Option<Tenant>> {
        sqlx::query("SELECT id, name, app_id, created_at FROM tenants WHERE app_id = ?1")
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant)
            .transpose()
    }

    async fn get_tenant_settings(&self, id: Uuid) -> Result<Option<TenantSettings>> {
        let sql = format!("SELECT {SETTINGS_COLUMNS} FROM tenants WHERE id = ?1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.map(|r| {
            SettingsColumns {
                byok_flow_enabled: r.try_get("byok_flow_enabled")?,
                allowed_origins: r.try_get("allowed_origins")?,
                rate_limit_api_key: r.try_get("rate_limit_api_key")?,
                rate_limit_end_user: r.try_get("rate_limit_end_user")?,
                rate_limit_free_end_user: r.try_get("rate_limit_free_end_user")?,
                free_models: r.try_get("free_models")?,
            }
            .parse()
        })
        .transpose()
    }

    async fn update_tenant_settings(&self, id: Uuid, settings: &TenantSettings) -> Result<bool> {
        let c = SettingsColumns::of(settings);
        let done = sqlx::query(
            "UPDATE tenants SET byok_flow_enabled = ?2, allowed_origins = ?3, rate_limit_api_key = ?4, \
             rate_limit_end_user = ?5, rate_limit_free_end_user = ?6, free_models = ?7 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(c.byok_flow_enabled)
        .bind(c.allowed_origins)
        .bind(c.rate_limit_api_key)
        .bind(c.rate_limit_end_user)
        .bind(c.rate_limit_free_end_user)
        .bind(c.free_models)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_allowed_origins(&self) -> Result<Vec<String>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT allowed_origins FROM tenants WHERE allowed_origins <> '[]'")
                .fetch_all(&self.pool)
                .await?;
        merge_origins(rows)
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, public_id, secret_hash, last4, name, created_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(k.id.to_string())
        .bind(k.tenant_id.to_string())
        .bind(&k.public_id)
        .bind(&k.secret_hash)
        .bind(&k.last4)
        .bind(&k.name)
        .bind(ms(k.created_at))
        .bind(k.revoked_at.map(ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE public_id = ?1")
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key)
            .transpose()
    }

    async fn list_api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key)
            .collect()
    }

    async fn revoke_api_key(&self, tenant_id: Uuid, public_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND public_id = ?2 AND revoked_at IS NULL",
        )
        .bind(tenant_id.to_string())
        .bind(public_id)
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn upsert_end_user(&self, tenant_id: Uuid, label: &str, now: DateTime<Utc>) -> Result<EndUser> {
        let row = sqlx::query(
            "INSERT INTO end_users (id, tenant_id, label, paid, created_at) VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (tenant_id, label) DO UPDATE SET label = excluded.label \
             RETURNING id, tenant_id, label, paid, created_at, token_generation",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(tenant_id.to_string())
        .bind(label)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        end_user(&row)
    }

    async fn get_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        sqlx::query(&format!("SELECT {END_USER_COLUMNS} FROM end_users WHERE tenant_id = ?1 AND label = ?2"))
            .bind(tenant_id.to_string())
            .bind(label)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(end_user)
            .transpose()
    }

    async fn get_end_user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<EndUser>> {
        sqlx::query(&format!("SELECT {END_USER_COLUMNS} FROM end_users WHERE tenant_id = ?1 AND id = ?2"))
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(end_user)
            .transpose()
    }

    async fn revoke_end_user_sessions(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        sqlx::query(&format!(
            "UPDATE end_users SET token_generation = token_generation + 1 WHERE tenant_id = ?1 AND label = ?2 \
             RETURNING {END_USER_COLUMNS}"
        ))
        .bind(tenant_id.to_string())
        .bind(label)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(end_user)
        .transpose()
    }

    async fn set_end_user_paid(&self, tenant_id: Uuid, id: Uuid, paid: bool) -> Result<()> {
        sqlx::query("UPDATE end_users SET paid = ?3 WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .bind(paid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<Uuid>> {
        let row = sqlx::query("DELETE FROM end_users WHERE tenant_id = ?1 AND label = ?2 RETURNING id")
            .bind(tenant_id.to_string())
            .bind(label)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| uid(&r, "id")).transpose()
    }

    async fn insert_registration_token(&self, t: &NewRegistrationToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO registration_tokens (id, tenant_id, end_user_id, token_hash, provider, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(t.id.to_string())
        .bind(t.tenant_id.to_string())
        .bind(t.end_user_id.to_string())
        .bind(&t.token_hash[..])
        .bind(&t.provider)
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_registration_token(&self, token_hash: &[u8; 32]) -> Result<Option<RegistrationTokenInfo>> {
        let row = sqlx::query(
            "SELECT r.id, r.tenant_id, t.name AS tenant_name, r.end_user_id, u.label, r.provider, r.expires_at, r.used_at \
             FROM registration_tokens r JOIN tenants t ON t.id = r.tenant_id JOIN end_users u ON u.id = r.end_user_id \
             WHERE r.token_hash = ?1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RegistrationTokenInfo {
                id: uid(&r, "id")?,
                tenant_id: uid(&r, "tenant_id")?,
                tenant_name: r.try_get("tenant_name")?,
                end_user_id: uid(&r, "end_user_id")?,
                end_user_label: r.try_get("label")?,
                provider: r.try_get("provider")?,
                expires_at: time(&r, "expires_at")?,
                used_at: opt_ms(&r, "used_at")?,
            })
        })
        .transpose()
    }

    async fn redeem_registration_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        key: &StoredProviderKey,
    ) -> Result<std::result::Result<(), RedeemError>> {
        let mut tx = self.pool.begin().await?;
        // The claim is the transaction's first statement, so it takes the write lock straight
        // away and concurrent redemptions queue behind it instead of failing to upgrade a lock.
        let claimed = sqlx::query(
            "UPDATE registration_tokens SET used_at = ?2 \
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 AND tenant_id = ?3 AND end_user_id = ?4 \
             RETURNING id",
        )
        .bind(&token_hash[..])
        .bind(ms(now))
        .bind(key.tenant_id.to_string())
        .bind(key.end_user_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let row = sqlx::query(
                "SELECT used_at FROM registration_tokens WHERE token_hash = ?1 AND end_user_id = ?2 AND tenant_id = ?3",
            )
            .bind(&token_hash[..])
            .bind(key.end_user_id.to_string())
            .bind(key.tenant_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(Err(match row {
                None => RedeemError::NotFound,
                Some(r) if r.try_get::<Option<i64>, _>("used_at")?.is_some() => RedeemError::Used,
                Some(_) => RedeemError::Expired,
            }));
        }
        upsert_key(&mut *tx, key).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn upsert_provider_key(&self, key: &StoredProviderKey) -> Result<()> {
        upsert_key(&self.pool, key).await
    }

    async fn get_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<Option<StoredProviderKey>> {
        sqlx::query(&format!(
            "SELECT {PROVIDER_KEY_COLUMNS} FROM provider_keys WHERE end_user_id = ?1 AND provider = ?2"
        ))
        .bind(end_user_id.to_string())
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(provider_key)
        .transpose()
    }

    async fn list_provider_keys(&self, end_user_id: Uuid) -> Result<Vec<ProviderKeySummary>> {
        sqlx::query("SELECT provider, fingerprint, created_at, last_used_at FROM provider_keys WHERE end_user_id = ?1 ORDER BY provider")
            .bind(end_user_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ProviderKeySummary {
                    provider: r.try_get("provider")?,
                    fingerprint: r.try_get("fingerprint")?,
                    created_at: time(r, "created_at")?,
                    last_used_at: opt_ms(r, "last_used_at")?,
                })
            })
            .collect()
    }

    async fn delete_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM provider_keys WHERE end_user_id = ?1 AND provider = ?2")
            .bind(end_user_id.to_string())
            .bind(provider)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_provider_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE provider_keys SET last_used_at = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(ms(at))
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
        sqlx::query(&format!(
            "SELECT {PROVIDER_KEY_COLUMNS} FROM provider_keys WHERE kek_version <> ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
        ))
        .bind(i64::from(version))
        .bind(after.map(|u| u.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(provider_key)
        .collect()
    }

    async fn rewrap_provider_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.rewrap("provider_keys", id, old, new).await
    }

    async fn insert_session_signing_key(&self, key: &SessionSigningKey) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO session_signing_keys ({SIGNING_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (name) DO NOTHING"
        ))
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(i64::from(key.sealed.kek_version))
        .bind(&key.sealed.wrapped_dek)
        .bind(&key.sealed.ciphertext)
        .bind(ms(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_session_signing_key(&self, name: &str) -> Result<Option<SessionSigningKey>> {
        sqlx::query(&format!("SELECT {SIGNING_KEY_COLUMNS} FROM session_signing_keys WHERE name = ?1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(signing_key)
            .transpose()
    }

    async fn session_signing_keys_not_on_version(&self, version: KekVersion) -> Result<Vec<SessionSigningKey>> {
        sqlx::query(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM session_signing_keys WHERE kek_version <> ?1 ORDER BY id"
        ))
        .bind(i64::from(version))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(signing_key)
        .collect()
    }

    async fn rewrap_session_signing_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.rewrap("session_signing_keys", id, old, new).await
    }

    async fn insert_usage_event(&self, e: &UsageEvent) -> Result<()> {
        self.insert_usage_batch(std::slice::from_ref(e)).await
    }

    async fn insert_usage_batch(&self, events: &[UsageEvent]) -> Result<()> {
        // Multi-row INSERTs (14 binds a row, well under either database's bind limit per
        // statement), all in one transaction.
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(USAGE_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO usage_events (id, tenant_id, end_user_id, api_key_id, provider, model, endpoint, status, paid, prompt_tokens, completion_tokens, latency_ms, ttft_ms, created_at) ");
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(e.id.to_string())
                    .push_bind(e.tenant_id.to_string())
                    .push_bind(e.end_user_id.map(|u| u.to_string()))
                    .push_bind(e.api_key_id.map(|u| u.to_string()))
                    .push_bind(&e.provider)
                    .push_bind(&e.model)
                    .push_bind(&e.endpoint)
                    .push_bind(i32::from(e.status))
                    .push_bind(e.paid)
                    .push_bind(e.prompt_tokens.map(to_i64))
                    .push_bind(e.completion_tokens.map(to_i64))
                    .push_bind(to_i64(e.latency_ms))
                    .push_bind(e.ttft_ms.map(to_i64))
                    .push_bind(ms(e.created_at));
            });
            insert.build().execute(&mut *tx).await?;
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
        sqlx::query(
            "SELECT id, tenant_id, end_user_id, api_key_id, provider, model, endpoint, status, paid, prompt_tokens, \
             completion_tokens, latency_ms, ttft_ms, created_at FROM usage_events \
             WHERE tenant_id = ?1 AND (?2 IS NULL OR end_user_id = ?2) AND created_at >= ?3 AND created_at < ?4 \
             ORDER BY created_at, id LIMIT ?5",
        )
        .bind(tenant_id.to_string())
        .bind(end_user_id.map(|u| u.to_string()))
        .bind(ms(from))
        .bind(ms(to))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let status: i32 = r.try_get("status")?;
            Ok(UsageEvent {
                id: uid(r, "id")?,
                tenant_id: uid(r, "tenant_id")?,
                end_user_id: opt_uid(r, "end_user_id")?,
                api_key_id: opt_uid(r, "api_key_id")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                endpoint: r.try_get("endpoint")?,
                status: u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("bad status {status}")))?,
                paid: r.try_get("paid")?,
                prompt_tokens: r.try_get::<Option<i64>, _>("prompt_tokens")?.map(to_u64),
                completion_tokens: r.try_get::<Option<i64>, _>("completion_tokens")?.map(to_u64),
                latency_ms: to_u64(r.try_get("latency_ms")?),
                ttft_ms: r.try_get::<Option<i64>, _>("ttft_ms")?.map(to_u64),
                created_at: time(r, "created_at")?,
            })
        })
        .collect()
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (tenant_id, actor, action, target, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(e.tenant_id.map(|u| u.to_string()))
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(ms(e.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_audit(&self, tenant_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT tenant_id, actor, action, target, created_at FROM audit_log \
             WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(tenant_id.map(|u| u.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEvent {
                tenant_id: opt_uid(r, "tenant_id")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                created_at: time(r, "created_at")?,
            })
        })
        .collect()
    }
}
