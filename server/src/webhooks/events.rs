//! The event types a webhook endpoint can subscribe to, and the body every delivery carries.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What happened. Each type's `data`:
/// - `key.connected`: `{endUserLabel, provider, fingerprint}`, a key was stored (connect page,
///   widget, byok flow), also when it replaced one.
/// - `key.removed`: `{endUserLabel, provider, fingerprint}`, a key was deleted.
/// - `key.invalid`: `{endUserLabel, provider, fingerprint, reason, reconnectUrl}`, the provider
///   refused a stored key; `reconnectUrl` is a fresh `/connect?token=rrt-…` link.
/// - `budget.threshold`: `{budget, endUserLabel?, provider?, limitUsd, spentUsd, period,
///   periodStart, resetsAt, alertAt?}` (see `budgets::alert_data`), spend crossed the budget's
///   `alertAt` share (once per period).
/// - `budget.exceeded`: the same fields, the budget is spent and calls are refused.
/// - `user.erased`: `{endUserLabel}`, the end user and everything stored for them were erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookEventType)]
pub enum EventType {
    #[serde(rename = "key.connected")]
    KeyConnected,
    #[serde(rename = "key.removed")]
    KeyRemoved,
    #[serde(rename = "key.invalid")]
    KeyInvalid,
    #[serde(rename = "budget.threshold")]
    BudgetThreshold,
    #[serde(rename = "budget.exceeded")]
    BudgetExceeded,
    #[serde(rename = "user.erased")]
    UserErased,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        Self::KeyConnected,
        Self::KeyRemoved,
        Self::KeyInvalid,
        Self::BudgetThreshold,
        Self::BudgetExceeded,
        Self::UserErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyConnected => "key.connected",
            Self::KeyRemoved => "key.removed",
            Self::KeyInvalid => "key.invalid",
            Self::BudgetThreshold => "budget.threshold",
            Self::BudgetExceeded => "budget.exceeded",
            Self::UserErased => "user.erased",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// `key.connected, key.removed, …` for messages.
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every attempt of one event: `{"type", "timestamp", "data"}`, serialized once.
pub fn body(event: EventType, at: DateTime<Utc>, data: serde_json::Value) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        timestamp: String,
        data: serde_json::Value,
    }
    let body = Body { kind: event.as_str(), timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true), data };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).expect("json"), serde_json::json!(t.as_str()));
        }
        assert_eq!(EventType::parse("key.Connected"), None);
    }

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let b: serde_json::Value =
            serde_json::from_str(&body(EventType::UserErased, at, serde_json::json!({"endUserLabel": "u"})))
                .expect("json");
        assert_eq!(
            b,
            serde_json::json!({"type": "user.erased", "timestamp": "2023-11-14T22:13:20.000Z", "data": {"endUserLabel": "u"}})
        );
    }
}
