//! What the store keeps for webhooks: endpoints (with their sealed signing secret), emitted
//! events, and the delivery outbox a worker claims rows from (queries: sql_webhooks.rs).

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::vault::SealedKey;

/// A tenant's webhook endpoint. The secret is only ever held sealed here.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    /// The event types it receives; `None`: every type, also ones added later.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub sealed_secret: SealedKey,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// An event to deliver to every endpoint of its tenant subscribed to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    /// `msg_…`, the `webhook-id` of every attempt.
    pub id: String,
    pub tenant_id: Uuid,
    pub event_type: String,
    /// The exact body sent and signed on every attempt.
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A delivery a worker leased, with what one attempt needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub endpoint_id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub sealed_secret: SealedKey,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

impl fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended: delivered, pending again until `next_attempt_at`, or failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status: DeliveryStatus,
    pub at: DateTime<Utc>,
    pub http_status: Option<u16>,
    /// Why it failed, for the tenant: never a secret.
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery as the deliveries API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
