//! Key health on the upstream path: what a provider's answer says about the key a call used
//! (the provider's `Dialect::key_verdict`), stored with the key once per change.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::key_health::{KeyHealth, KeyStatus};
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::providers::ProviderId;
use crate::store::StoredProviderKey;
use crate::webhooks::Webhooks;

/// The key row one call opened, and its status then. Writes only when an answer changes that
/// status: a call on a healthy key that succeeds writes nothing.
pub struct KeyWatch {
    keys: KeyService,
    webhooks: Webhooks,
    metrics: Arc<Metrics>,
    provider: ProviderId,
    key_id: Uuid,
    tenant_id: Uuid,
    end_user_id: Uuid,
    fingerprint: String,
    seen: KeyStatus,
}

impl KeyWatch {
    pub fn new(
        keys: KeyService,
        webhooks: Webhooks,
        metrics: Arc<Metrics>,
        provider: ProviderId,
        row: &StoredProviderKey,
    ) -> Self {
        Self {
            keys,
            webhooks,
            metrics,
            provider,
            key_id: row.id,
            tenant_id: row.tenant_id,
            end_user_id: row.end_user_id,
            fingerprint: row.fingerprint.clone(),
            seen: row.health.status,
        }
    }

    /// The provider accepted the call: a key marked `quota_exhausted` works again.
    pub async fn succeeded(&self) {
        if self.seen == KeyStatus::QuotaExhausted {
            self.record(KeyHealth::changed(KeyStatus::Ok, None, Utc::now())).await;
        }
    }

    /// The provider answered an error its dialect judged `verdict`; `reason` (masked text, built
    /// only when there is a change to record) says why.
    pub async fn failed(&self, verdict: Option<KeyStatus>, reason: impl FnOnce() -> String) {
        if let Some(status) = verdict.filter(|s| *s != self.seen) {
            self.record(KeyHealth::changed(status, Some(&reason()), Utc::now())).await;
        }
    }

    async fn record(&self, health: KeyHealth) {
        if self.keys.set_health(self.key_id, &health).await {
            self.transitioned(&health).await;
        }
    }

    /// The one place where a key's status is known to have changed, once per change across
    /// every call and node (the store's update is conditional): metered, logged, and for a key
    /// now `invalid`, the tenant's `key.invalid` webhook.
    async fn transitioned(&self, health: &KeyHealth) {
        let status = health.status.as_str();
        self.metrics.key_status_changes.with_label_values(&[self.provider.as_str(), status]).inc();
        tracing::info!(
            tenant_id = %self.tenant_id,
            end_user_id = %self.end_user_id,
            provider = %self.provider,
            status,
            reason = health.reason.as_deref().unwrap_or(""),
            "provider key status changed"
        );
        if health.status == KeyStatus::Invalid {
            let reason = health.reason.as_deref().unwrap_or("");
            let provider = self.provider.as_str();
            self.webhooks.key_invalid(self.tenant_id, self.end_user_id, provider, &self.fingerprint, reason).await;
        }
    }
}

/// A stored reason: `anthropic answered 401 authentication_error: invalid x-api-key`, from an
/// error already masked, on one line.
pub fn reason(provider: ProviderId, status: u16, kind: &str, message: &str) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{provider} answered {status} {kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_line_naming_the_answer() {
        let r = reason(ProviderId::Anthropic, 401, "authentication_error", "invalid\n  x-api-key ");
        assert_eq!(r, "anthropic answered 401 authentication_error: invalid x-api-key");
    }
}
