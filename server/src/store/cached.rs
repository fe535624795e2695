//! A store that remembers, for a short time, what every request reads: a `rly-` key's record,
//! an end user by label, an end user's sealed provider key, a tenant's settings. Writes through
//! this store drop or update what they change at once; writes on another node (or by the CLI)
//! are seen here within the time to live (`RELAY_CACHE_TTL`).
//!
//! Only what the database holds is cached: a provider key stays sealed (XChaCha20-Poly1305
//! under a wrapped data key) and is opened per request as before. Misses are not cached.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::vault::{KekVersion, SealedKey};

/// The default bound of a `TtlMap`: past it, expired entries are dropped, then the oldest.
pub const MAX_ENTRIES: usize = 100_000;

/// A map whose entries expire `ttl` after they were read from the database, and which never
/// holds more than its bound (`len` is reported to `gauge`, when it has one).
pub struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    gauge: Option<prometheus::IntGauge>,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, MAX_ENTRIES)
    }

    /// A map of at most `max` entries (at least 1).
    pub fn bounded(ttl: Duration, max: usize) -> Self {
        Self { ttl, max: max.max(1), gauge: None, entries: Mutex::new(HashMap::new()) }
    }

    /// Reports the map's size to `gauge` (`relay_memory_map_entries{map=…}`) from now on.
    pub fn set_gauge(&mut self, gauge: prometheus::IntGauge) {
        gauge.set(i64::try_from(self.len()).unwrap_or(i64::MAX));
        self.gauge = Some(gauge);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn report(&self, len: usize) {
        if let Some(gauge) = &self.gauge {
            gauge.set(i64::try_from(len).unwrap_or(i64::MAX));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.lock();
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.max && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            // All fresh: the oldest quarter goes (at once, so this scan is rare).
            if entries.len() >= self.max {
                let keep = self.max - self.max.div_ceil(4);
                let mut times: Vec<Instant> = entries.values().map(|(at, _)| *at).collect();
                let cut = times.len() - keep - 1;
                let (_, newest_gone, _) = times.select_nth_unstable(cut);
                // Ties with the cut go too: fewer kept, never more than the bound.
                let newest_gone = *newest_gone;
                entries.retain(|_, (at, _)| *at > newest_gone);
            }
        }
        entries.insert(key, (Instant::now(), value));
        self.report(entries.len());
    }

    pub fn remove(&self, key: &K) {
        let mut entries = self.lock();
        entries.remove(key);
        self.report(entries.len());
    }

    /// Drops every entry `drop` says so of.
    pub fn remove_where(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        let mut entries = self.lock();
        entries.retain(|k, (_, v)| !drop(k, v));
        self.report(entries.len());
    }

    /// Changes the entry under `key`, if there is one.
    pub fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some((_, v)) = self.lock().get_mut(key) {
            change(v);
        }
    }

    /// Changes every entry `pick` says so of.
    pub fn update_where(&self, mut pick: impl FnMut(&V) -> bool, mut change: impl FnMut(&mut V)) {
        for (_, v) in self.lock().values_mut() {
            if pick(v) {
                change(v);
            }
        }
    }
}

pub struct CachedStore {
    inner: DynStore,
    api_keys: TtlMap<String, ApiKeyRecord>,
    end_users: TtlMap<(Uuid, String), EndUser>,
    provider_keys: TtlMap<(Uuid, String), StoredProviderKey>,
    /// Where a provider key row is cached, by its id (for writes that name only the id).
    provider_key_slots: TtlMap<Uuid, (Uuid, String)>,
    settings: TtlMap<Uuid, TenantSettings>,
    /// The budgets that can apply to an end user's calls, by (tenant, end user).
    budgets: TtlMap<(Uuid, Option<Uuid>), Vec<Budget>>,
}

impl CachedStore {
    pub fn new(inner: DynStore, ttl: Duration) -> Self {
        Self {
            inner,
            api_keys: TtlMap::new(ttl),
            end_users: TtlMap::new(ttl),
            provider_keys: TtlMap::new(ttl),
            provider_key_slots: TtlMap::new(ttl),
            settings: TtlMap::new(ttl),
            budgets: TtlMap::new(ttl),
        }
    }
}

impl CachedStore {
    /// Reports the size of each map to `relay_memory_map_entries{map="cache_…"}`.
    pub fn with_metrics(mut self, metrics: &crate::metrics::Metrics) -> Self {
        let gauge = |name: &str| metrics.map_entries.with_label_values(&[name]);
        self.api_keys.set_gauge(gauge("cache_api_keys"));
        self.end_users.set_gauge(gauge("cache_end_users"));
        self.provider_keys.set_gauge(gauge("cache_provider_keys"));
        self.provider_key_slots.set_gauge(gauge("cache_provider_key_slots"));
        self.settings.set_gauge(gauge("cache_tenant_settings"));
        self.budgets.set_gauge(gauge("cache_budgets"));
        self
    }

    /// Drops what `change` (announced by any node, or the CLI) made stale; `None`: everything.
    pub fn forget(&self, change: Option<&Change>) {
        match change {
            None => {
                self.api_keys.remove_where(|_, _| true);
                self.end_users.remove_where(|_, _| true);
                self.provider_keys.remove_where(|_, _| true);
                self.settings.remove_where(|_, _| true);
                self.budgets.remove_where(|_, _| true);
            }
            Some(Change::ApiKey(public_id)) => self.api_keys.remove(public_id),
            Some(Change::Tenant(tenant)) => {
                self.settings.remove(tenant);
                self.end_users.remove_where(|(t, _), _| t == tenant);
                self.provider_keys.remove_where(|_, row| row.tenant_id == *tenant);
                self.budgets.remove_where(|(t, _), _| t == tenant);
            }
            Some(Change::EndUser(user)) => {
                self.end_users.remove_where(|_, u| u.id == *user);
                self.provider_keys.remove_where(|(u, _), _| u == user);
                self.budgets.remove_where(|(_, u), _| *u == Some(*user));
            }
            Some(Change::ProviderKey(id)) => {
                if let Some(slot) = self.provider_key_slots.get(id) {
                    self.provider_keys.remove(&slot);
                }
            }
        }
    }

    /// Follows the changes other nodes announce for as long as the process runs: on PostgreSQL,
    /// a revoked key or an erased user is forgotten here within milliseconds. While the channel
    /// is down (logged, `relay_cache_channel_up` 0) entries are trusted for their time to live,
    /// as without the channel; when it is back, everything cached is dropped, since changes may
    /// have been missed meanwhile.
    pub fn follow(self: Arc<Self>, metrics: Arc<crate::metrics::Metrics>) -> tokio::task::JoinHandle<()> {
        // Weak: following ends once the server no longer uses this cache.
        let cache = Arc::downgrade(&self);
        let inner = self.inner.clone();
        drop(self);
        tokio::spawn(async move {
            while cache.strong_count() > 0 {
                let (weak, gauge, count) =
                    (cache.clone(), metrics.cache_channel_up.clone(), metrics.cache_invalidations.clone());
                let sink: ChangeSink = Arc::new(move |change| {
                    match &change {
                        None => gauge.set(1),
                        Some(_) => count.inc(),
                    }
                    if let Some(cache) = weak.upgrade() {
                        cache.forget(change.as_ref());
                    }
                });
                match inner.follow_changes(sink).await {
                    Ok(()) => return, // no channel: one node
                    Err(e) => {
                        // Entries keep their time to live; when the channel is back, `None`
                        // drops them all (changes may have been missed meanwhile).
                        metrics.cache_channel_up.set(0);
                        tracing::warn!(error = ?e, "cache invalidation channel lost: cached entries now expire after the TTL only");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }
}

#[async_trait]
impl Store for CachedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.inner.create_tenant(tenant).await
    }
    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        self.inner.get_tenant(id).await
    }
    async fn find_tenant_by_app_id(&self, app_id: &str) -> Result<Option<Tenant>> {
        self.inner.find_tenant_by_app_id(app_id).await
    }
    async fn get_tenant_settings(&self, id: Uuid) -> Result<Option<TenantSettings>> {
        if let Some(hit) = self.settings.get(&id) {
            return Ok(Some(hit));
        }
        let found = self.inner.get_tenant_settings(id).await?;
        if let Some(s) = &found {
            self.settings.insert(id, s.clone());
        }
        Ok(found)
    }
    async fn update_tenant_settings(&self, id: Uuid, settings: &TenantSettings) -> Result<bool> {
        let done = self.inner.update_tenant_settings(id, settings).await;
        self.settings.remove(&id);
        done
    }
    async fn list_allowed_origins(&self) -> Result<Vec<String>> {
        self.inner.list_allowed_origins().await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.inner.insert_api_key(key).await
    }
    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>> {
        let key = public_id.to_owned();
        if let Some(hit) = self.api_keys.get(&key) {
            return Ok(Some(hit));
        }
        let found = self.inner.find_api_key(public_id).await?;
        if let Some(record) = &found {
            self.api_keys.insert(key, record.clone());
        }
        Ok(found)
    }
    async fn list_api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRecord>> {
        self.inner.list_api_keys(tenant_id).await
    }
    async fn revoke_api_key(&self, tenant_id: Uuid, public_id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = self.inner.revoke_api_key(tenant_id, public_id, at).await;
        self.api_keys.remove(&public_id.to_owned());
        done
    }

    async fn upsert_end_user(&self, tenant_id: Uuid, label: &str, now: DateTime<Utc>) -> Result<EndUser> {
        self.inner.upsert_end_user(tenant_id, label, now).await
    }
    async fn get_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        let key = (tenant_id, label.to_owned());
        if let Some(hit) = self.end_users.get(&key) {
            return Ok(Some(hit));
        }
        let found = self.inner.get_end_user(tenant_id, label).await?;
        if let Some(user) = &found {
            self.end_users.insert(key, user.clone());
        }
        Ok(found)
    }
    async fn get_end_user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<EndUser>> {
        // Session tokens check the user's token generation here: always read fresh.
        self.inner.get_end_user_by_id(tenant_id, id).await
    }
    async fn revoke_end_user_sessions(&self, tenant_id: Uuid, label: &str) -> Result<Option<EndUser>> {
        let done = self.inner.revoke_end_user_sessions(tenant_id, label).await;
        self.end_users.remove(&(tenant_id, label.to_owned()));
        done
    }
    async fn set_end_user_paid(&self, tenant_id: Uuid, id: Uuid, paid: bool) -> Result<()> {
        self.inner.set_end_user_paid(tenant_id, id, paid).await?;
        self.end_users.update_where(|u| u.id == id && u.tenant_id == tenant_id, |u| u.paid = paid);
        Ok(())
    }
    async fn delete_end_user(&self, tenant_id: Uuid, label: &str) -> Result<Option<Uuid>> {
        let done = self.inner.delete_end_user(tenant_id, label).await;
        let cached = self.end_users.get(&(tenant_id, label.to_owned())).map(|u| u.id);
        self.end_users.remove(&(tenant_id, label.to_owned()));
        let gone: Vec<Uuid> = cached.into_iter().chain(done.as_ref().ok().copied().flatten()).collect();
        self.provider_keys.remove_where(|(user, _), _| gone.contains(user));
        done
    }

    async fn insert_registration_token(&self, token: &NewRegistrationToken) -> Result<()> {
        self.inner.insert_registration_token(token).await
    }
    async fn find_registration_token(&self, token_hash: &[u8; 32]) -> Result<Option<RegistrationTokenInfo>> {
        self.inner.find_registration_token(token_hash).await
    }
    async fn redeem_registration_token(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
        key: &StoredProviderKey,
    ) -> Result<std::result::Result<(), RedeemError>> {
        let done = self.inner.redeem_registration_token(token_hash, now, key).await;
        self.provider_keys.remove(&(key.end_user_id, key.provider.clone()));
        done
    }
    async fn upsert_provider_key(&self, key: &StoredProviderKey) -> Result<()> {
        let done = self.inner.upsert_provider_key(key).await;
        self.provider_keys.remove(&(key.end_user_id, key.provider.clone()));
        done
    }
    async fn get_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<Option<StoredProviderKey>> {
        let key = (end_user_id, provider.to_owned());
        if let Some(hit) = self.provider_keys.get(&key) {
            return Ok(Some(hit));
        }
        let found = self.inner.get_provider_key(end_user_id, provider).await?;
        if let Some(row) = &found {
            self.provider_key_slots.insert(row.id, key.clone());
            self.provider_keys.insert(key, row.clone());
        }
        Ok(found)
    }
    async fn list_provider_keys(&self, end_user_id: Uuid) -> Result<Vec<ProviderKeySummary>> {
        self.inner.list_provider_keys(end_user_id).await
    }
    async fn delete_provider_key(&self, end_user_id: Uuid, provider: &str) -> Result<bool> {
        let done = self.inner.delete_provider_key(end_user_id, provider).await;
        self.provider_keys.remove(&(end_user_id, provider.to_owned()));
        done
    }
    async fn touch_provider_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.inner.touch_provider_key(id, at).await?;
        if let Some(slot) = self.provider_key_slots.get(&id) {
            self.provider_keys.update(&slot, |row| {
                if row.id == id {
                    row.last_used_at = Some(at);
                }
            });
        }
        Ok(())
    }
    async fn provider_keys_not_on_version(
        &self,
        version: KekVersion,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<StoredProviderKey>> {
        self.inner.provider_keys_not_on_version(version, after, limit).await
    }
    async fn rewrap_provider_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        let done = self.inner.rewrap_provider_key(id, old, new).await;
        if let Some(slot) = self.provider_key_slots.get(&id) {
            self.provider_keys.remove(&slot);
        }
        done
    }

    async fn insert_session_signing_key(&self, key: &SessionSigningKey) -> Result<bool> {
        self.inner.insert_session_signing_key(key).await
    }
    async fn get_session_signing_key(&self, name: &str) -> Result<Option<SessionSigningKey>> {
        self.inner.get_session_signing_key(name).await
    }
    async fn session_signing_keys_not_on_version(&self, version: KekVersion) -> Result<Vec<SessionSigningKey>> {
        self.inner.session_signing_keys_not_on_version(version).await
    }
    async fn rewrap_session_signing_key(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.inner.rewrap_session_signing_key(id, old, new).await
    }

    async fn insert_usage_event(&self, event: &UsageEvent) -> Result<()> {
        self.inner.insert_usage_event(event).await
    }
    async fn insert_usage_batch(&self, events: &[UsageEvent]) -> Result<()> {
        self.inner.insert_usage_batch(events).await
    }
    async fn usage_events_between(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageEvent>> {
        self.inner.usage_events_between(tenant_id, end_user_id, from, to, limit).await
    }
    async fn usage_end_user_labels(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>> {
        self.inner.usage_end_user_labels(tenant_id, end_user_id, from, to).await
    }

    async fn usage_rollups(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from_day: DateTime<Utc>,
        to_day: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        self.inner.usage_rollups(tenant_id, end_user_id, from_day, to_day).await
    }

    async fn usage_rollups_from_events(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRollup>> {
        self.inner.usage_rollups_from_events(tenant_id, end_user_id, from, to).await
    }

    async fn usage_latency(
        &self,
        tenant_id: Uuid,
        end_user_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: UsageKey,
    ) -> Result<Vec<LatencyPercentiles>> {
        self.inner.usage_latency(tenant_id, end_user_id, from, to, key).await
    }

    async fn prune_usage_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.inner.prune_usage_events(before, limit).await
    }

    async fn prune_usage_rollups(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.inner.prune_usage_rollups(before, limit).await
    }

    async fn prune_spend(&self, days_before: DateTime<Utc>, months_before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.inner.prune_spend(days_before, months_before, limit).await
    }

    // Budgets are read on every call that can be charged, so they are cached like settings; a
    // change drops this node's entries for the tenant. Spend is never cached: it must hold
    // across nodes.
    async fn put_budget(&self, budget: &Budget) -> Result<Budget> {
        let done = self.inner.put_budget(budget).await;
        self.budgets.remove_where(|(tenant, _), _| *tenant == budget.tenant_id);
        done
    }
    async fn budgets_for(&self, tenant_id: Uuid, end_user_id: Option<Uuid>) -> Result<Vec<Budget>> {
        if let Some(hit) = self.budgets.get(&(tenant_id, end_user_id)) {
            return Ok(hit);
        }
        let found = self.inner.budgets_for(tenant_id, end_user_id).await?;
        self.budgets.insert((tenant_id, end_user_id), found.clone());
        Ok(found)
    }
    async fn delete_budget(&self, tenant_id: Uuid, scope: BudgetScope) -> Result<bool> {
        let done = self.inner.delete_budget(tenant_id, scope).await;
        self.budgets.remove_where(|(tenant, _), _| *tenant == tenant_id);
        done
    }
    async fn spend(&self, tenant_id: Uuid, keys: &[SpendKey]) -> Result<Vec<Usd>> {
        self.inner.spend(tenant_id, keys).await
    }
    async fn mark_spend_alert(&self, tenant_id: Uuid, key: &SpendKey, alert: SpendAlert) -> Result<bool> {
        self.inner.mark_spend_alert(tenant_id, key, alert).await
    }

    async fn follow_changes(&self, seen: ChangeSink) -> Result<()> {
        self.inner.follow_changes(seen).await
    }

    fn console(&self) -> &dyn super::console::ConsoleStore {
        self.inner.console()
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<()> {
        self.inner.append_audit(event).await
    }
    async fn list_audit(&self, tenant_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>> {
        self.inner.list_audit(tenant_id, limit).await
    }

    // Key health: the row is dropped, not patched, so the next read sees what the database
    // decided (the change is conditional there).
    async fn set_provider_key_health(&self, id: Uuid, health: &crate::domain::key_health::KeyHealth) -> Result<bool> {
        let done = self.inner.set_provider_key_health(id, health).await;
        if let Some(slot) = self.provider_key_slots.get(&id) {
            self.provider_keys.remove(&slot);
        }
        done
    }

    // Webhooks: nothing cached (the worker and the API read the outbox as it is).
    async fn insert_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.inner.insert_webhook_endpoint(endpoint).await
    }
    async fn list_webhook_endpoints(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>> {
        self.inner.list_webhook_endpoints(tenant_id).await
    }
    async fn get_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        self.inner.get_webhook_endpoint(tenant_id, id).await
    }
    async fn delete_webhook_endpoint(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        self.inner.delete_webhook_endpoint(tenant_id, id).await
    }
    async fn enqueue_webhook_event(&self, event: &NewWebhookEvent) -> Result<u64> {
        self.inner.enqueue_webhook_event(event).await
    }
    async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.inner.claim_webhook_deliveries(now, lease_until, limit).await
    }
    async fn finish_webhook_attempt(&self, id: i64, result: &AttemptResult) -> Result<()> {
        self.inner.finish_webhook_attempt(id, result).await
    }
    async fn list_webhook_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        self.inner.list_webhook_deliveries(tenant_id, endpoint_id, limit).await
    }
    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> Result<u64> {
        self.inner.prune_webhook_events(before).await
    }
    async fn count_pending_webhook_deliveries(&self) -> Result<u64> {
        self.inner.count_pending_webhook_deliveries().await
    }
    async fn webhook_endpoints_not_on_version(&self, version: KekVersion) -> Result<Vec<WebhookEndpoint>> {
        self.inner.webhook_endpoints_not_on_version(version).await
    }
    async fn rewrap_webhook_secret(&self, id: Uuid, old: &SealedKey, new: &SealedKey) -> Result<bool> {
        self.inner.rewrap_webhook_secret(id, old, new).await
    }
}

#[cfg(test)]
mod tests {
    use super::TtlMap;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let m = TtlMap::new(Duration::from_millis(50));
        m.insert("a", 1);
        m.insert("b", 2);
        assert_eq!(m.get(&"a"), Some(1));
        m.remove(&"a");
        assert_eq!(m.get(&"a"), None);
        m.update_where(|v| *v == 2, |v| *v = 3);
        assert_eq!(m.get(&"b"), Some(3));
        m.remove_where(|k, _| *k == "b");
        assert_eq!(m.get(&"b"), None);
        m.insert("c", 4);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.get(&"c"), None, "expired");
    }
}
