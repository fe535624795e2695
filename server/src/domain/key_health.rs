//! A stored provider key's health, as the providers' answers showed it: `ok`, `invalid` (the
//! provider refused the key) or `quota_exhausted` (its account is out of credit or quota).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the last telling answer of a provider said about a stored key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Working as far as Relay knows (also every key just connected).
    #[default]
    Ok,
    /// The provider answered 401/403 (or its own "bad key" error): calls are refused until the
    /// end user connects a key again.
    Invalid,
    /// The provider said the key's account is out of credit or quota; calls still go through,
    /// and the next success sets `ok` again.
    QuotaExhausted,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 3] = [KeyStatus::Ok, KeyStatus::Invalid, KeyStatus::QuotaExhausted];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Ok => "ok",
            KeyStatus::Invalid => "invalid",
            KeyStatus::QuotaExhausted => "quota_exhausted",
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key status {0:?}")]
pub struct UnknownKeyStatus(pub String);

impl FromStr for KeyStatus {
    type Err = UnknownKeyStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyStatus::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownKeyStatus(s.to_owned()))
    }
}

/// A key's status with why and since when. A key never changed since it was connected is `ok`
/// with neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHealth {
    pub status: KeyStatus,
    /// Short and human, built from the provider's masked answer; never key material.
    pub reason: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// The longest reason stored, in characters.
pub const MAX_REASON_CHARS: usize = 300;

impl KeyHealth {
    /// `status` since `at`, for `reason` (cut to `MAX_REASON_CHARS`).
    pub fn changed(status: KeyStatus, reason: Option<&str>, at: DateTime<Utc>) -> Self {
        let reason = reason.map(|r| match r.char_indices().nth(MAX_REASON_CHARS) {
            Some((cut, _)) => format!("{}…", &r[..cut]),
            None => r.to_owned(),
        });
        Self { status, reason, at: Some(at) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_reasons_are_capped() {
        for s in KeyStatus::ALL {
            assert_eq!(s.as_str().parse::<KeyStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::String(s.to_string())));
        }
        assert!("OK".parse::<KeyStatus>().is_err());
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        let h = KeyHealth::changed(KeyStatus::Invalid, Some(&long), Utc::now());
        assert_eq!(h.reason.map(|r| r.chars().count()), Some(MAX_REASON_CHARS + 1));
    }
}
