//! Signed webhooks (Standard Webhooks) from a durable outbox: a tenant's endpoints and their
//! sealed secrets, `emit` (the event and its deliveries in one transaction), signing, delivery.
//!
//! Others call [`Webhooks::emit`]; like `audit::record` it never fails the caller's request. The
//! worker ([`Webhooks::start`], run by `relay serve`) claims due deliveries with a lease, so
//! several nodes on one database never deliver one concurrently, and retries on a schedule
//! (`RELAY_WEBHOOK_RETRY_SCHEDULE`). Nothing is lost on a restart: the outbox is the database.

mod events;
pub mod signing;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use tokio::sync::Notify;
use uuid::Uuid;

pub use events::EventType;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ssrf::{self, PolicyResolver, SsrfError, SystemLookup, UpstreamPolicy};
use crate::store::{DynStore, NewWebhookEvent, WebhookDelivery, WebhookEndpoint};
use crate::vault::{SealContext, Vault};

/// Retries after a failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27.6 h in all),
/// then the delivery is `failed`.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Environment variable: the retry delays in seconds, comma-separated (`5,300,1800`).
pub const ENV_RETRY_SCHEDULE: &str = "RELAY_WEBHOOK_RETRY_SCHEDULE";

/// How many endpoints a tenant may have.
const MAX_ENDPOINTS: usize = 50;
const MAX_URL_LEN: usize = 2048;
const MAX_DESCRIPTION_LEN: usize = 256;

/// The vault context's provider field for webhook secrets (the end user is nil).
const SECRET_PURPOSE: &str = "relay-webhook-secret";

/// The vault context an endpoint's secret is sealed under: its tenant and its id.
pub fn secret_context(tenant_id: Uuid, endpoint_id: Uuid) -> SealContext<'static> {
    SealContext { tenant_id, end_user_id: Uuid::nil(), provider: SECRET_PURPOSE, record_id: endpoint_id }
}

/// Parses `RELAY_WEBHOOK_RETRY_SCHEDULE`: whole seconds, comma-separated, at least one.
pub fn parse_retry_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    let delays = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("{s:?} is not a number of seconds")))
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err("give at least one delay in seconds, e.g. 5,300,1800".into());
    }
    Ok(delays)
}

/// What creating an endpoint asks for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    /// `None`: every event type.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// Webhook endpoints, `emit`, and the delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    vault: Vault,
    metrics: Arc<Metrics>,
    policy: Arc<UpstreamPolicy>,
    resolver: PolicyResolver,
    /// The SSRF-guarded client: the policy's resolver on every connection, no redirects, no proxy.
    client: reqwest::Client,
    schedule: Vec<Duration>,
    /// `RELAY_PUBLIC_URL`, for the reconnect link of `key.invalid`.
    public_url: Option<String>,
    /// Wakes this node's worker when `emit` stored something or an attempt ended.
    wake: Notify,
}

impl Webhooks {
    pub fn new(
        store: DynStore,
        vault: Vault,
        metrics: Arc<Metrics>,
        policy: UpstreamPolicy,
        schedule: Vec<Duration>,
        public_url: Option<String>,
    ) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let lookup = Arc::new(SystemLookup);
        let client = ssrf::client(policy.clone(), lookup.clone(), worker::ATTEMPT_TIMEOUT)?;
        let resolver = PolicyResolver::new(policy.clone(), lookup);
        let schedule = if schedule.is_empty() { DEFAULT_RETRY_SCHEDULE.to_vec() } else { schedule };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                vault,
                metrics,
                policy,
                resolver,
                client,
                schedule,
                public_url,
                wake: Notify::new(),
            }),
        })
    }

    /// Writes the event and one pending delivery per subscribed endpoint of the tenant, in one
    /// transaction, and wakes the worker. A failure is logged and metered, never returned: the
    /// caller's action already took effect.
    pub async fn emit(&self, tenant_id: Uuid, event: EventType, data: serde_json::Value) {
        let now = Utc::now();
        let row = NewWebhookEvent {
            id: format!("msg_{}", Uuid::new_v4().simple()),
            tenant_id,
            event_type: event.as_str().to_owned(),
            payload: events::body(event, now, data),
            created_at: now,
        };
        match self.inner.store.enqueue_webhook_event(&row).await {
            Ok(0) => {}
            Ok(deliveries) => {
                tracing::debug!(%tenant_id, event = %event, event_id = %row.id, deliveries, "webhook event queued");
                self.inner.wake.notify_one();
            }
            Err(e) => {
                self.inner.metrics.webhook_emit_failures.inc();
                tracing::error!(error = ?e, %tenant_id, event = %event, "could not queue a webhook event");
            }
        }
    }

    /// `key.connected` for a key just stored.
    pub async fn key_connected(&self, tenant_id: Uuid, end_user_label: &str, provider: &str, fingerprint: &str) {
        let data =
            serde_json::json!({ "endUserLabel": end_user_label, "provider": provider, "fingerprint": fingerprint });
        self.emit(tenant_id, EventType::KeyConnected, data).await;
    }

    /// `key.removed` for a key just deleted (`fingerprint` as read before the deletion).
    pub async fn key_removed(&self, tenant_id: Uuid, end_user_label: &str, provider: &str, fingerprint: Option<&str>) {
        let data =
            serde_json::json!({ "endUserLabel": end_user_label, "provider": provider, "fingerprint": fingerprint });
        self.emit(tenant_id, EventType::KeyRemoved, data).await;
    }

    /// `user.erased` for an end user just erased.
    pub async fn user_erased(&self, tenant_id: Uuid, end_user_label: &str) {
        self.emit(tenant_id, EventType::UserErased, serde_json::json!({ "endUserLabel": end_user_label })).await;
    }

    /// `key.invalid` for a key the provider just refused, with a fresh link for the end user to
    /// connect a new one: a registration token for that provider, valid 24 h, minted only when
    /// an endpoint of the tenant receives `key.invalid` (the token is in the event's body until
    /// it is delivered and pruned; it is single-use and expires like any other).
    pub async fn key_invalid(
        &self,
        tenant_id: Uuid,
        end_user_id: Uuid,
        provider: &str,
        fingerprint: &str,
        reason: &str,
    ) {
        let store = &self.inner.store;
        let wanted = match store.list_webhook_endpoints(tenant_id).await {
            Ok(endpoints) => endpoints.iter().any(|e| {
                e.events.as_ref().is_none_or(|events| events.iter().any(|t| t == EventType::KeyInvalid.as_str()))
            }),
            Err(e) => {
                tracing::warn!(error = ?e, %tenant_id, "could not read webhook endpoints");
                true
            }
        };
        if !wanted {
            return;
        }
        let label = match store.get_end_user_by_id(tenant_id, end_user_id).await {
            Ok(Some(user)) => user.label,
            Ok(None) => return, // erased meanwhile
            Err(e) => {
                self.inner.metrics.webhook_emit_failures.inc();
                tracing::error!(error = ?e, %tenant_id, "could not read the end user for key.invalid");
                return;
            }
        };
        let now = Utc::now();
        let (token, hash) = crate::auth::tokens::generate_registration_token();
        let row = crate::store::NewRegistrationToken {
            id: Uuid::new_v4(),
            tenant_id,
            end_user_id,
            token_hash: hash.0,
            provider: Some(provider.to_owned()),
            created_at: now,
            expires_at: now + chrono::Duration::hours(24),
        };
        if let Err(e) = store.insert_registration_token(&row).await {
            self.inner.metrics.webhook_emit_failures.inc();
            tracing::error!(error = ?e, %tenant_id, "could not mint the reconnect token for key.invalid");
            return;
        }
        let base = self.inner.public_url.as_deref().unwrap_or("").trim_end_matches('/');
        let url = format!("{base}/connect?token={}", crate::auth::tokens::reveal(&token));
        let data = serde_json::json!({
            "endUserLabel": label, "provider": provider, "fingerprint": fingerprint, "reason": reason,
            "reconnectUrl": url,
        });
        self.emit(tenant_id, EventType::KeyInvalid, data).await;
    }

    /// Starts the delivery worker on the current runtime.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(worker::run(self.clone()))
    }

    /// Checks the URL (the SSRF policy, with DNS) and the events, seals a new secret and stores
    /// the endpoint. The secret is returned once, here.
    pub async fn create_endpoint(
        &self,
        tenant_id: Uuid,
        new: NewEndpoint,
    ) -> Result<(WebhookEndpoint, SecretString), ApiError> {
        let url = self.check_url(&new.url).await?;
        let events = new.events.map(parse_events).transpose()?;
        let description = new.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
        if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
            return Err(ApiError::invalid_request(
                "webhook_description_too_long",
                format!("The description is longer than {MAX_DESCRIPTION_LEN} characters."),
            )
            .param("description"));
        }
        if self.inner.store.list_webhook_endpoints(tenant_id).await?.len() >= MAX_ENDPOINTS {
            return Err(ApiError::invalid_request(
                "webhook_endpoint_limit",
                format!("An app may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first."),
            ));
        }
        let id = Uuid::new_v4();
        let secret = signing::new_secret();
        let sealed_secret =
            self.inner.vault.seal(&secret_context(tenant_id, id), &secret).await.map_err(ApiError::internal)?;
        let endpoint =
            WebhookEndpoint { id, tenant_id, url, events, description, sealed_secret, created_at: Utc::now() };
        self.inner.store.insert_webhook_endpoint(&endpoint).await?;
        Ok((endpoint, secret))
    }

    pub async fn list_endpoints(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>, ApiError> {
        Ok(self.inner.store.list_webhook_endpoints(tenant_id).await?)
    }

    pub async fn get_endpoint(&self, tenant_id: Uuid, raw_id: &str) -> Result<WebhookEndpoint, ApiError> {
        let id = endpoint_id(raw_id)?;
        self.inner.store.get_webhook_endpoint(tenant_id, id).await?.ok_or_else(endpoint_not_found)
    }

    /// Deletes the endpoint and its pending deliveries.
    pub async fn delete_endpoint(&self, tenant_id: Uuid, raw_id: &str) -> Result<Uuid, ApiError> {
        let id = endpoint_id(raw_id)?;
        if self.inner.store.delete_webhook_endpoint(tenant_id, id).await? {
            Ok(id)
        } else {
            Err(endpoint_not_found())
        }
    }

    /// The endpoint's most recent deliveries, newest first.
    pub async fn deliveries(
        &self,
        tenant_id: Uuid,
        raw_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, ApiError> {
        let endpoint = self.get_endpoint(tenant_id, raw_id).await?;
        Ok(self.inner.store.list_webhook_deliveries(tenant_id, endpoint.id, limit).await?)
    }

    /// The SSRF policy upstreams use: syntax, scheme (https unless allow-listed), names and
    /// literal addresses, then every address the name resolves to. Each attempt checks again.
    async fn check_url(&self, raw: &str) -> Result<String, ApiError> {
        let refused = |e: SsrfError| {
            ApiError::invalid_request(e.code(), format!("This webhook URL cannot be used: {e}.")).param("url")
        };
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(ApiError::invalid_request(
                "invalid_upstream_url",
                format!("The webhook URL is longer than {MAX_URL_LEN} characters."),
            )
            .param("url"));
        }
        let checked = ssrf::check_base_url(&self.inner.policy, raw).map_err(refused)?;
        self.inner.resolver.resolve_host(checked.host(), checked.port()).await.map_err(refused)?;
        let url = reqwest::Url::parse(raw).map_err(|e| refused(SsrfError::BadUrl { reason: e.to_string() }))?;
        Ok(url.to_string())
    }
}

/// Known event types, each once, in the order given; 400 naming the unknown ones.
fn parse_events(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid_request(
            "webhook_events_empty",
            format!("`events` is empty. Omit it to receive every event, or list some of: {}.", EventType::list()),
        )
        .param("events"));
    }
    let unknown: Vec<&str> = raw.iter().map(String::as_str).filter(|e| EventType::parse(e).is_none()).collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid_request(
            "webhook_event_unknown",
            format!("Unknown event type(s): {}. Known: {}.", unknown.join(", "), EventType::list()),
        )
        .param("events"));
    }
    let mut out: Vec<String> = Vec::new();
    for e in raw {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| endpoint_not_found())
}

fn endpoint_not_found() -> ApiError {
    ApiError::not_found("webhook_endpoint_not_found", "No webhook endpoint with this id exists for your app.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedules_parse_or_say_why_not() {
        assert_eq!(
            parse_retry_schedule("1, 2,3"),
            Ok(vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(3)])
        );
        assert!(parse_retry_schedule("").is_err());
        assert!(parse_retry_schedule("5,soon").is_err_and(|e| e.contains("soon")));
        let total: Duration = DEFAULT_RETRY_SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(24 * 3600), "retries span more than a day");
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        let ok = parse_events(vec!["user.erased".into(), "key.removed".into(), "user.erased".into()]);
        assert_eq!(ok.ok(), Some(vec!["user.erased".to_owned(), "key.removed".to_owned()]));
        let bad = parse_events(vec!["key.removed".into(), "key.exploded".into()]).expect_err("refused");
        assert_eq!(bad.code(), "webhook_event_unknown");
        assert!(bad.message().contains("key.exploded"));
        assert_eq!(parse_events(vec![]).err().map(|e| e.code()), Some("webhook_events_empty"));
    }
}
