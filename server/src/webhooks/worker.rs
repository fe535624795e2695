//! The delivery worker: claims due deliveries (a lease, so nodes never deliver one at once),
//! sends each signed attempt through the SSRF-guarded client, and records the outcome: 2xx is
//! delivered, anything else is retried on the schedule and then failed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;

use super::{secret_context, signing, Webhooks};
use crate::ssrf::{self, SsrfError};
use crate::store::{AttemptResult, ClaimedDelivery, DeliveryStatus};

/// One attempt's limit, connection included.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery is this node's for this long (well past one attempt); a node that dies
/// mid-attempt leaves it to be claimed again after it.
const LEASE: Duration = Duration::from_secs(60);
/// How often the outbox is read when nothing woke the worker (other nodes' events, retries).
const POLL: Duration = Duration::from_secs(1);
/// Attempts in flight on one node.
const MAX_IN_FLIGHT: usize = 32;
/// Delivered and failed events (their bodies name end users) are kept this long for the
/// deliveries API, then deleted.
const KEEP_DONE: chrono::Duration = chrono::Duration::days(30);
/// How often a node prunes them.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

const USER_AGENT: &str = concat!("Relay-Webhooks/", env!("CARGO_PKG_VERSION"));

pub(super) async fn run(hooks: Webhooks) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::seconds(60));
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            match hooks.inner.store.prune_webhook_events(Utc::now() - KEEP_DONE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old webhook events"),
                Err(e) => tracing::warn!(error = ?e, "could not prune old webhook events"),
            }
        }
        let free = u32::try_from(permits.available_permits()).unwrap_or(0);
        let mut claimed = 0;
        if free > 0 {
            let now = Utc::now();
            match hooks.inner.store.claim_webhook_deliveries(now, now + lease, free).await {
                Ok(batch) => {
                    claimed = batch.len();
                    for delivery in batch {
                        let Ok(permit) = permits.clone().acquire_owned().await else { return };
                        let hooks = hooks.clone();
                        tokio::spawn(async move {
                            hooks.attempt(delivery).await;
                            drop(permit);
                            // The endpoint's next delivery may be claimed now.
                            hooks.inner.wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = ?e, "could not claim webhook deliveries"),
            }
        }
        if claimed == 0 {
            match hooks.inner.store.count_pending_webhook_deliveries().await {
                Ok(n) => hooks.inner.metrics.webhook_outbox_pending.set(i64::try_from(n).unwrap_or(i64::MAX)),
                Err(e) => tracing::warn!(error = ?e, "could not count pending webhook deliveries"),
            }
            tokio::select! {
                () = hooks.inner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

impl Webhooks {
    /// One attempt and its bookkeeping.
    async fn attempt(&self, d: ClaimedDelivery) {
        let sent = self.send(&d).await;
        let at = Utc::now();
        let (http_status, error) = match sent {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) if (300..400).contains(&status) => {
                (Some(status), Some(format!("HTTP {status} (redirects are not followed)")))
            }
            Ok(status) => (Some(status), Some(format!("HTTP {status}"))),
            Err(why) => (None, Some(why)),
        };
        let (status, next_attempt_at, outcome) = if error.is_none() {
            (DeliveryStatus::Delivered, None, "delivered")
        } else {
            let retry_index = usize::try_from(d.attempts).unwrap_or(usize::MAX).saturating_sub(1);
            match self.inner.schedule.get(retry_index).and_then(|delay| chrono::Duration::from_std(*delay).ok()) {
                Some(delay) => (DeliveryStatus::Pending, Some(at + delay), "retry"),
                None => (DeliveryStatus::Failed, None, "failed"),
            }
        };
        self.inner.metrics.webhook_deliveries.with_label_values(&[outcome]).inc();
        tracing::info!(
            event_id = %d.event_id,
            event = %d.event_type,
            endpoint_id = %d.endpoint_id,
            attempt = d.attempts,
            http_status,
            outcome,
            error = error.as_deref().unwrap_or(""),
            "webhook attempt"
        );
        let result = AttemptResult { status, at, http_status, error, next_attempt_at };
        if let Err(e) = self.inner.store.finish_webhook_attempt(d.id, &result).await {
            // The lease runs out and the delivery is attempted again: at least once.
            tracing::error!(error = ?e, event_id = %d.event_id, "could not record a webhook attempt");
        }
    }

    /// Sends one signed attempt; the HTTP status, or why there is none (safe to show the tenant).
    async fn send(&self, d: &ClaimedDelivery) -> Result<u16, String> {
        // The policy may have changed since the endpoint was created: check the URL again (the
        // client's resolver checks every address it connects to).
        ssrf::check_base_url(&self.inner.policy, &d.url).map_err(|e| format!("the URL is not allowed: {e}"))?;
        let url = reqwest::Url::parse(&d.url).map_err(|_| "the URL is not valid".to_owned())?;
        let secret =
            self.inner.vault.open(&secret_context(d.tenant_id, d.endpoint_id), &d.sealed_secret).await.map_err(
                |e| {
                    tracing::error!(error = %e, endpoint_id = %d.endpoint_id, "could not open a webhook secret");
                    "the endpoint's secret could not be opened (the operator's log has more)".to_owned()
                },
            )?;
        let timestamp = Utc::now().timestamp();
        let signature = signing::sign(&secret, &d.event_id, timestamp, &d.payload).map_err(|e| e.to_string())?;
        drop(secret);
        let response = self
            .inner
            .client
            .post(url)
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .header("user-agent", USER_AGENT)
            .body(d.payload.clone())
            .timeout(ATTEMPT_TIMEOUT)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status().as_u16())
    }
}

/// Why a request got no answer, in words that carry no URL internals or secrets.
fn describe(e: &reqwest::Error) -> String {
    if let Some(refused) = SsrfError::find(e) {
        return format!("refused by the SSRF policy: {refused}");
    }
    if e.is_timeout() {
        return format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs());
    }
    if e.is_connect() {
        return "could not connect".to_owned();
    }
    "the request failed".to_owned()
}
