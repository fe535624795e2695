//! Persistence: one `Store` trait with a PostgreSQL (production, several nodes) and a SQLite
//! (embedded default) implementation. Both pass the same conformance suite (tests/).

pub mod cached;
pub mod console;
mod dialect;
mod postgres;
mod rows;
mod sql;
mod sql_console;
mod sql_money;
mod sql_usage;
mod sql_webhooks;
mod sqlite;
pub mod usage;
mod webhooks;

use std::fmt;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::key_health::{KeyHealth, KeyStatus};
use crate::domain::limits::Limit;
use crate::domain::money::{Period, Usd};
use crate::error::ApiError;
use crate::vault::{KekVersion, SealedKey};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use usage::{LatencyPercentiles, Pruned, UsageKey, UsageRollup};
pub use webhooks::{AttemptResult, ClaimedDelivery, DeliveryStatus, NewWebhookEvent, WebhookDelivery, WebhookEndpoint};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `allowed_origins` is stored as a JSON array of strings.
fn origins_to_json(origins: &[String]) -> String {
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".to_owned())
}

fn origins_from_json(raw: &str) -> Result<Vec<String>> {
    serde_json::from_str(raw).map_err(|_| StoreError::Corrupt("allowed_origins is not a JSON array of strings".into()))
}

/// Every tenant's origins, flattened, each once, sorted.
fn merge_origins(rows: Vec<String>) -> Result<Vec<String>> {
    let mut all = std::collections::BTreeSet::new();
    for raw in rows {
        all.extend(origins_from_json(&raw)?);
    }
    Ok(all.into_iter().collect())
}

impl From<StoreError> for ApiError {
    /// A database that does not answer is 503; anything else is the server's fault (500).
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::unavailable(e)
        } else {
            Self::internal(e)
        }
    }
}

impl StoreError {
    /// Connection-level failures, as opposed to a bad query or bad data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // The server is shutting down or restarting (SQLSTATE class 57P: 57P01 admin
            // shutdown, 57P02 crash shutdown, 57P03 cannot connect now), or the connection
            // failed (class 08).
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    /// Publishable id (`app_…`) that browser-only apps name themselves by; unique.
    pub app_id: String,
    pub created_at: DateTime<Utc>,
}

/// What a tenant allows browsers to do: the byok-relay flow (off by default) and the exact
/// origins (`scheme://host[:port]`) that may call the browser-facing routes; and its own rate
/// limits and free tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    pub byok_flow_enabled: bool,
    pub allowed_origins: Vec<String>,
    /// Overrides of the server's default limits; `None`: the server's default.
    pub rate_limit_api_key: Option<Limit>,
    pub rate_limit_end_user: Option<Limit>,
    pub rate_limit_free_end_user: Option<Limit>,
    /// Model globs (`gpt-4o-mini`, `claude-haiku-*`) free-tier end users may call; empty: any.
    pub free_models: Vec<String>,
}

/// The stored columns of a tenant's settings, as read from either database.
pub(crate) struct SettingsColumns {
    pub byok_flow_enabled: bool,
    pub allowed_origins: String,
    pub rate_limit_api_key: Option<String>,
    pub rate_limit_end_user: Option<String>,
    pub rate_limit_free_end_user: Option<String>,
    pub free_models: String,
}

fn limit_from_column(name: &str, raw: Option<String>) -> Result<Option<Limit>> {
    raw.map(|r| r.parse::<Limit>().map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))).transpose()
}

impl SettingsColumns {
    pub(crate) fn parse(self) -> Result<TenantSettings> {
        Ok(TenantSettings {
            byok_flow_enabled: self.byok_flow_enabled,
            allowed_origins: origins_from_json(&self.allowed_origins)?,
            rate_limit_api_key: limit_from_column("rate_limit_api_key", self.rate_limit_api_key)?,
            rate_limit_end_user: limit_from_column("rate_limit_end_user", self.rate_limit_end_user)?,
            rate_limit_free_end_user: limit_from_column("rate_limit_free_end_user", self.rate_limit_free_end_user)?,
            free_models: serde_json::from_str(&self.free_models)
                .map_err(|_| StoreError::Corrupt("free_models is not a JSON array of strings".into()))?,
        })
    }

    pub(crate) fn of(s: &TenantSettings) -> Self {
        Self {
            byok_flow_enabled: s.byok_flow_enabled,
            allowed_origins: origins_to_json(&s.allowed_origins),
            rate_limit_api_key: s.rate_limit_api_key.map(|l| l.to_string()),
            rate_limit_end_user: s.rate_limit_end_user.map(|l| l.to_string()),
            rate_limit_free_end_user: s.rate_limit_free_end_user.map(|l| l.to_string()),
            free_models: serde_json::to_string(&s.free_models).unwrap_or_else(|_| "[]".to_owned()),
        }
    }
}

/// Relay's session-token signing key, sealed by the vault like a provider key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSigningKey {
    pub id: Uuid,
    /// Unique: nodes that start at once race to insert the same name and all keep the winner.
    pub name: String,
    pub sealed: SealedKey,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub public_id: String,
    pub secret_hash: Vec<u8>,
    pub last4: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("public_id", &self.public_id)
            .field("last4", &self.last4)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub label: String,
    pub paid: bool,
    pub created_at: DateTime<Utc>,
    /// Session tokens carry the generation they were issued at; bumping it revokes them all.
    pub token_generation: i64,
}

#[derive(Debug, Clone)]
pub struct NewRegistrationToken {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub end_user_id: Uuid,
    pub token_hash: [u8; 32],
    pub provider: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A registration token with what the widget needs to render, looked up by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationTokenInfo {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub end_user_id: Uuid,
    pub end_user_label: String,
    pub provider: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProviderKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub end_user_id: Uuid,
    pub provider: String,
    pub fingerprint: String,
    pub sealed: SealedKey,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `openai-compatible` only: the normalised base URL the key was stored for.
    pub base_url: Option<String>,
    /// The end user's own cap on what the app may spend on this key per calendar month.
    pub monthly_cap: Option<Usd>,
    /// What the providers' answers said about the key (`ok` when it is stored).
    pub health: KeyHealth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKeySummary {
    pub provider: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub monthly_cap: Option<Usd>,
    pub health: KeyHealth,
}

/// Why a registration token could not be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemError {
    NotFound,
    Used,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub tenant_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// Where the action came from (the client address), when it came over HTTP.
    pub address: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One request through the unified API or the passthrough: counts and timings, never bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub end_user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub provider: String,
    pub model: String,
    pub endpoint: String,
    pub status: u16,
    pub paid: bool,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Of the prompt: read from and written to the provider's cache. Of the completion:
    /// reasoning. `None` (like the counts above) when the provider reported no usage.
    pub cached_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// What the call cost, in nano-USD (1e-9 USD); `None` without usage or without a price.
    pub cost_nanos: Option<i64>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
}

// ---- Budgets and spend ----

/// Whom a budget limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    /// Every call of the tenant together.
    Tenant,
    /// Each end user that has no budget of their own.
    EndUserDefault,
    /// One end user.
    EndUser(Uuid),
}

impl BudgetScope {
    /// The name the API uses: `tenant`, `end_user_default` or `end_user`.
    pub fn name(self) -> &'static str {
        match self {
            BudgetScope::Tenant => "tenant",
            BudgetScope::EndUserDefault => "end_user_default",
            BudgetScope::EndUser(_) => "end_user",
        }
    }

    /// The stored `subject`.
    pub fn subject(self) -> String {
        match self {
            BudgetScope::Tenant => "tenant".to_owned(),
            BudgetScope::EndUserDefault => "end_user_default".to_owned(),
            BudgetScope::EndUser(id) => format!("end_user:{id}"),
        }
    }

    fn end_user_id(self) -> Option<Uuid> {
        match self {
            BudgetScope::EndUser(id) => Some(id),
            _ => None,
        }
    }

    fn parse(subject: &str) -> Result<Self> {
        match subject {
            "tenant" => Ok(BudgetScope::Tenant),
            "end_user_default" => Ok(BudgetScope::EndUserDefault),
            other => other
                .strip_prefix("end_user:")
                .and_then(|id| id.parse().ok())
                .map(BudgetScope::EndUser)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown budget subject {other:?}"))),
        }
    }
}

/// A spending limit over a calendar period (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub tenant_id: Uuid,
    pub scope: BudgetScope,
    pub limit: Usd,
    pub period: Period,
    /// The share of the limit at which `budget.threshold` fires, in basis points (8000 = 80 %).
    pub alert_at_bps: u16,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What spend is counted against: the tenant, one end user, or one end user's key for a
/// provider (the end user's own cap).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpendSubject {
    Tenant,
    EndUser(Uuid),
    Key { end_user_id: Uuid, provider: String },
}

impl SpendSubject {
    pub fn stored(&self) -> String {
        match self {
            SpendSubject::Tenant => "tenant".to_owned(),
            SpendSubject::EndUser(id) => format!("end_user:{id}"),
            SpendSubject::Key { end_user_id, provider } => format!("key:{end_user_id}:{provider}"),
        }
    }

    fn end_user_id(&self) -> Option<Uuid> {
        match self {
            SpendSubject::Tenant => None,
            SpendSubject::EndUser(id) | SpendSubject::Key { end_user_id: id, .. } => Some(*id),
        }
    }
}

/// One counter: a subject's spend in the period that began at `start`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpendKey {
    pub subject: SpendSubject,
    pub period: Period,
    pub start: DateTime<Utc>,
}

/// The alerts that fire once per counter and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendAlert {
    Threshold,
    Exceeded,
}

/// What a batch of usage events adds to which counters: each priced event counts for its
/// tenant and end user (day and month) and for the end user's key (month), summed per counter,
/// in a stable order so that concurrent writers take row locks alike.
pub fn spend_charges(events: &[UsageEvent]) -> Vec<(Uuid, SpendKey, Usd)> {
    let mut sums = std::collections::BTreeMap::<(Uuid, SpendKey), i64>::new();
    for e in events {
        let Some(cost) = e.cost_nanos.filter(|c| *c > 0) else { continue };
        let mut keys = Vec::with_capacity(5);
        for period in [Period::Day, Period::Month] {
            keys.push(SpendKey { subject: SpendSubject::Tenant, period, start: period.start(e.created_at) });
        }
        if let Some(user) = e.end_user_id {
            for period in [Period::Day, Period::Month] {
                keys.push(SpendKey { subject: SpendSubject::EndUser(user), period, start: period.start(e.created_at) });
            }
            let subject = SpendSubject::Key { end_user_id: user, provider: e.provider.clone() };
            keys.push(SpendKey { subject, period: Period::Month, start: Period::Month.start(e.created_at) });
        }
        for key in keys {
            let sum = sums.entry((e.tenant_id, key)).or_default();
            *sum = sum.saturating_add(cost);
        }
    }
    sums.into_iter().map(|((tenant, key), nanos)| (tenant, key, Usd::from_nanos(nanos))).collect()
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>>;
    async fn find_tenant_by_app_id(&self, app_id: &str) -> Result<Option<Tenant>>;
    async fn get_tenant_settings(&self, id: Uuid) -> Result<Option<TenantSettings>>;
    /// Replaces the tenant's settings; false when no such tenant exists.
    async fn update_tenant_settings(&self, id: Uuid, settings: &TenantSettings) -> Result<bool>;
    /// Every origin any tenant allows, each once (for CORS preflights, which carry no credentials).
    async fn list_allowed_origins(&self) -> Result<Vec<String>>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>>;
    /// Sets `revoked_at` once; false when no such live key of this tenant exists.
    async fn revoke_api_key(&self, tenant_id: Uuid, public_id: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Returns the end user with this label, creating it first if needed.
    async fn upsert_end_user(&self, tenant_id: Uuid, label: &str, now: DateTime<Utc>) -> Result<EndUser>;
    async fn get_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>>;
    async fn get_end_user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<EndUser>>;
    /// Bumps `token_generation` in one statement, revoking every session token issued so far.
    async fn revoke_end_user_sessions(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>>;
    /// Records the end user's tier, as the developer's backend last sent it (`X-Relay-Paid`).
    async fn set_end_user_paid(&self, tenant_id: Uuid, id: Uuid, paid: bool) -> Result<()>;
    /// Erases the end user and, by cascade, their keys, tokens and usage events.
    async fn delete_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<Uuid>>;

    async fn insert_registration_token(&self, token: &NewRegistrationToken) -> Result<()>;
    async fn find_registration_token(&self, token_hash: &[u8; 32]) -> Result<Option<RegistrationTokenInfo>>;
    /// In one transaction: claims the token (one statement; unused, unexpired, and for this end
    /// user) and stores `key`, replacing the user's key for that provider. Exactly one of any
    /// number of concurrent calls for a token succeeds.
    async fn redeem_registration_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        key: &StoredProviderKey,
    ) -> Result<std::result::Result<(), RedeemError>>;

    /// Stores `key`, replacing the end user's key for that provider (the same statement that
    /// redeeming a registration token runs, without a token).
    async fn upsert_provider_key(&self, key: &StoredProviderKey) -> Result<()>;
    async fn get_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<Option<StoredProviderKey>>;
    async fn list_provider_keys(&self, end_user_id: Uuid) -> Result<Vec<ProviderKeySummary>>;
    async fn delete_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<bool>;
    async fn touch_provider_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;

    /// Keys not wrapped under `version`, in id order after `after`, for rotation.
    async fn provider_keys_not_on_version(
        &self,
        version: KekVersion,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<StoredProviderKey>>;
    /// Compare-and-set of a re-wrapped data key: applies only if the row still holds `old`.
    async fn rewrap_provider_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool>;

    /// Inserts the key unless one with its name exists; true when this call inserted it.
    async fn insert_session_signing_key(&self, key: &SessionSigningKey) -> Result<bool>;
    async fn get_session_signing_key(&self, name: &str) -> Result<Option<SessionSigningKey>>;
    /// Signing keys not wrapped under `version`, for rotation (a handful of rows: no paging).
    async fn session_signing_keys_not_on_version(&self, version: KekVersion) -> Result<Vec<SessionSigningKey>>;
    /// Compare-and-set, like `rewrap_provider_key`.
    async fn rewrap_session_signing_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool>;

    /// One event, and its cost added to the spend counters (`spend_charges`), in one transaction.
    async fn insert_usage_event(&self, event: &UsageEvent) -> Result<()>;
    /// Several events and their cost in one transaction, all or none.
    async fn insert_usage_batch(&self, events: &[UsageEvent]) -> Result<()>;
    /// Several events in one transaction. If the batch fails (an end user erased meanwhile),
    /// each event is tried on its own so only the ones that cannot be stored are lost; the
    /// first error is returned.
    async fn insert_usage_events(&self, events: &[UsageEvent]) -> Result<()> {
        if self.insert_usage_batch(events).await.is_ok() {
            return Ok(());
        }
        let mut first_error = None;
        for e in events {
            if let Err(err) = self.insert_usage_event(e).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    /// A tenant's usage events with `from <= created_at < to`, optionally for one end user, oldest
    /// first, at most `limit`.
    async fn usage_events_between(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageEvent>>;

    /// A tenant's usage events, oldest first.
    async fn list_usage_events(&self, tenant_id: Uuid, limit: u32) -> Result<Vec<UsageEvent>> {
        // Bounds both backends can store (PostgreSQL's timestamptz stops long before chrono's).
        let from = DateTime::<Utc>::UNIX_EPOCH;
        let to = DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH); // 9999-12-31
        self.usage_events_between(tenant_id, None, from, to, limit).await
    }

    // ---- Budgets and spend ----
    /// Creates or replaces the budget for its scope (keeping `created_at` of one it replaces)
    /// and returns it as stored.
    async fn put_budget(&self, budget: &Budget) -> Result<Budget>;
    /// The budgets that can apply to a call of `end_user_id`: the tenant's, the end-user default
    /// and that user's own (any of them may be absent).
    async fn budgets_for(&self, tenant_id: Uuid, end_user_id: Option<Uuid>) -> Result<Vec<Budget>>;
    async fn delete_budget(&self, tenant_id: Uuid, scope: BudgetScope) -> Result<bool>;
    /// What each counter holds (zero for one never charged), in the order asked.
    async fn spend(&self, tenant_id: Uuid, keys: &[SpendKey]) -> Result<Vec<Usd>>;
    /// Records that `alert` fired for this counter; true only for the call that recorded it
    /// first (so an alert fires once per period across nodes).
    async fn mark_spend_alert(&self, tenant_id: Uuid, key: &SpendKey, alert: SpendAlert) -> Result<bool>;

    // --- Cost (issue #12): what usage records cost, grouped by end user ---
    /// The labels of the end users with usage in the range (whole days read from the daily
    /// roll-ups, so days whose events were pruned count too), as (id, label): erased users are
    /// gone, with their usage.
    async fn usage_end_user_labels(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>>;

    // --- Usage roll-ups and retention (issue #18; queries in sql_usage.rs) ---
    /// The daily roll-ups (`usage_daily`, kept with the events they sum) of the whole UTC days
    /// `from_day <= day < to_day`, optionally for one end user, in no particular order.
    async fn usage_rollups(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from_day: DateTime<Utc>,
        to_day: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>>;
    /// The same sums, from the raw events with `from <= created_at < to`: a range within one
    /// UTC day (the rows' `day` is the day `from` is in).
    async fn usage_rollups_from_events(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>>;
    /// Nearest-rank p50 and p95 of `latency_ms` of the raw events in the range (as
    /// `usage_events_between` reads it), per `key`, ranked by the database; groups without events
    /// are absent.
    async fn usage_latency(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: UsageKey,
    ) -> Result<Vec<LatencyPercentiles>>;
    /// Deletes up to `limit` usage events created before `before` (one statement); returns how
    /// many. Several nodes may run it at once.
    async fn prune_usage_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64>;
    /// Deletes up to `limit` roll-up rows of days before `before`.
    async fn prune_usage_rollups(&self, before: DateTime<Utc>, limit: u32) -> Result<u64>;
    /// Deletes up to `limit` spend counters of days that began before `days_before` and of
    /// months that began before `months_before`.
    async fn prune_spend(&self, days_before: DateTime<Utc>, months_before: DateTime<Utc>, limit: u32) -> Result<u64>;

    /// Hands every change any node (or the CLI) announces to `seen`, until the channel fails
    /// (an error: the caller retries). Returns `Ok` at once where there is no channel (SQLite:
    /// one node).
    async fn follow_changes(&self, seen: ChangeSink) -> Result<()> {
        let _ = seen;
        Ok(())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// The console's accounts, memberships, invites and sessions (console.rs).
    fn console(&self) -> &dyn console::ConsoleStore;
    async fn list_audit(&self, tenant_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>>;

    // --- Key health (issue #12): a stored key's status as the providers' answers showed it. ---

    /// Sets the health of the key row `id` (the row a call used: a key connected again since
    /// has a new id and is left alone), unless it already has that status or is `invalid`
    /// (which only connecting a key again ends). True when this call changed the status, so
    /// one transition is reported once however many calls see it.
    async fn set_provider_key_health(&self, id: Uuid, health: &KeyHealth) -> Result<bool>;

    // --- Webhooks: endpoints and the delivery outbox (`webhooks/`; queries in sql_webhooks.rs) ---
    async fn insert_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// A tenant's endpoints, oldest first.
    async fn list_webhook_endpoints(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>>;
    async fn get_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>>;
    /// Deletes the endpoint and, by cascade, its deliveries; false when the tenant has no such one.
    async fn delete_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<bool>;
    /// In one transaction: stores the event and one pending delivery, due at once, for every
    /// endpoint of its tenant subscribed to its type. Returns the deliveries created; with none,
    /// nothing is stored.
    async fn enqueue_webhook_event(&self, event: &NewWebhookEvent) -> Result<u64>;
    /// Leases up to `limit` due deliveries until `lease_until` (one UPDATE … RETURNING), counting
    /// the attempt: per endpoint its oldest due delivery, and none for an endpoint that has a
    /// leased one. Concurrent claimers (on several nodes) never get the same delivery.
    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Records an attempt's outcome and releases the lease.
    async fn finish_webhook_attempt(&self, id: i64, result: &AttemptResult) -> Result<()>;
    /// An endpoint's deliveries, newest first (the tenant's own endpoint only).
    async fn list_webhook_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Deletes events created before `before` that wait for no delivery (and, by cascade, their
    /// delivered and failed deliveries); returns the events deleted.
    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Deliveries still pending, on every tenant (for the outbox gauge).
    async fn count_pending_webhook_deliveries(&self) -> Result<u64>;
    /// Endpoints whose secret is not wrapped under `version`, for rotation.
    async fn webhook_endpoints_not_on_version(&self, version: KekVersion) -> Result<Vec<WebhookEndpoint>>;
    /// Compare-and-set of a re-wrapped secret, like `rewrap_provider_key`.
    async fn rewrap_webhook_secret(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool>;
}

/// A `status` column as stored.
fn key_status_from_column(raw: &str) -> Result<KeyStatus> {
    raw.parse().map_err(|e| StoreError::Corrupt(format!("provider_keys.status: {e}")))
}

pub type DynStore = Arc<dyn Store>;

/// What a write changed, announced to every node's cache (`cached.rs`): PostgreSQL `NOTIFY` on
/// the channel `relay_cache`, sent by the store itself after the write, so the CLI announces too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A `rly-` key (by public id) was revoked.
    ApiKey(String),
    /// Something of the tenant's: settings, budgets, an end user, a stored key.
    Tenant(Uuid),
    /// An end user's keys or tokens.
    EndUser(Uuid),
    /// One stored key row (its health).
    ProviderKey(Uuid),
}

impl Change {
    pub fn parse(raw: &str) -> Option<Self> {
        let (kind, id) = raw.split_once(':')?;
        match kind {
            "api_key" => Some(Change::ApiKey(id.to_owned())),
            "tenant" => id.parse().ok().map(Change::Tenant),
            "end_user" => id.parse().ok().map(Change::EndUser),
            "provider_key" => id.parse().ok().map(Change::ProviderKey),
            _ => None,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ApiKey(id) => write!(f, "api_key:{id}"),
            Change::Tenant(id) => write!(f, "tenant:{id}"),
            Change::EndUser(id) => write!(f, "end_user:{id}"),
            Change::ProviderKey(id) => write!(f, "provider_key:{id}"),
        }
    }
}

/// What `Store::follow_changes` hands on: a change, or `None` when changes may have been missed
/// (the channel was opened or opened again) and everything cached should go.
pub type ChangeSink = Arc<dyn Fn(Option<Change>) + Send + Sync>;

/// Where the data lives, chosen by `DATABASE_URL` (or the embedded default).
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(std::path::PathBuf),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("a sqlite: URL needs a file path, e.g. sqlite://relay-data/relay.db".into());
            }
            Ok(Self::Sqlite(path.into()))
        } else {
            Err("DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into())
        }
    }
}

pub async fn connect(url: &DatabaseUrl) -> Result<DynStore> {
    Ok(match url {
        DatabaseUrl::Postgres(u) => Arc::new(PgStore::connect(u).await?),
        DatabaseUrl::Sqlite(p) => Arc::new(SqliteStore::open(p).await?),
    })
}

/// Migrations compiled into the binary, so `relay` needs no files beside it.
#[derive(Debug)]
struct EmbeddedMigrations(&'static [(i64, &'static str, &'static str)]);

impl<'s> sqlx::migrate::MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> futures::future::BoxFuture<'s, std::result::Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>>
    {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    sqlx::migrate::Migration::new(
                        *version,
                        std::borrow::Cow::Borrowed(*description),
                        sqlx::migrate::MigrationType::Simple,
                        std::borrow::Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
