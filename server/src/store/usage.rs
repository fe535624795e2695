//! Daily usage roll-ups: a tenant's usage of one UTC day per end user, provider and model,
//! summed (`usage_daily`), as the store keeps it beside the raw events and the usage report reads it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::UsageEvent;
use crate::domain::money::Period;

/// One day's sums for one (end user, provider, model) of a tenant. The figures are what
/// `GET /v1/usage` adds up; latency percentiles cannot be summed and come from the raw events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRollup {
    /// Midnight UTC of the day.
    pub day: DateTime<Utc>,
    pub end_user_id: Option<Uuid>,
    pub provider: String,
    pub model: String,
    pub requests: u64,
    /// Status 400 or above, or no answer (status 0).
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Nano-USD of the priced calls.
    pub cost_nanos: i64,
    /// Calls that reported usage for a model without a price.
    pub unpriced_calls: u64,
}

impl UsageRollup {
    /// The stored key column for the end user: its id, or '' for calls without one.
    pub(crate) fn user_key(&self) -> String {
        self.end_user_id.map(|id| id.to_string()).unwrap_or_default()
    }

    /// Adds one event's figures (its day, user, provider and model are the caller's business).
    pub fn add_event(&mut self, e: &UsageEvent) {
        self.requests += 1;
        if e.status == 0 || e.status >= 400 {
            self.errors += 1;
        }
        self.prompt_tokens += e.prompt_tokens.unwrap_or(0);
        self.completion_tokens += e.completion_tokens.unwrap_or(0);
        self.cached_tokens += e.cached_tokens.unwrap_or(0);
        self.cache_write_tokens += e.cache_write_tokens.unwrap_or(0);
        self.reasoning_tokens += e.reasoning_tokens.unwrap_or(0);
        match e.cost_nanos {
            Some(nanos) => self.cost_nanos = self.cost_nanos.saturating_add(nanos),
            None if e.prompt_tokens.is_some() => self.unpriced_calls += 1,
            None => {}
        }
    }

    /// Adds another roll-up's figures.
    pub fn add(&mut self, o: &UsageRollup) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
        self.unpriced_calls += o.unpriced_calls;
    }
}

/// What a batch of events adds to which roll-up rows, per tenant, in key order (so concurrent
/// writers lock rows alike, as with `spend_charges`).
pub fn rollups_of(events: &[UsageEvent]) -> Vec<(Uuid, UsageRollup)> {
    let mut sums = BTreeMap::<(Uuid, DateTime<Utc>, String, &str, &str), UsageRollup>::new();
    for e in events {
        let day = Period::Day.start(e.created_at);
        let user_key = e.end_user_id.map(|id| id.to_string()).unwrap_or_default();
        sums.entry((e.tenant_id, day, user_key, e.provider.as_str(), e.model.as_str()))
            .or_insert_with(|| UsageRollup {
                day,
                end_user_id: e.end_user_id,
                provider: e.provider.clone(),
                model: e.model.clone(),
                ..UsageRollup::default()
            })
            .add_event(e);
    }
    sums.into_iter().map(|((tenant, ..), r)| (tenant, r)).collect()
}

/// The whole UTC days of `[from, to)`, as `[whole_from, whole_to)`: read from the roll-ups,
/// and the rest of the range from the raw events. Empty (`whole_from > whole_to`) when the
/// range lies within one day.
pub fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let whole_from = if Period::Day.start(from) == from { from } else { Period::Day.next_start(from) };
    (whole_from, Period::Day.start(to))
}

/// What latency percentiles are computed per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKey {
    /// All events together (key `""`); with `end_users_only`, only events of an end user.
    Total {
        end_users_only: bool,
    },
    /// The UTC day, `YYYY-MM-DD`.
    Day,
    Model,
    Provider,
    /// The end user's id.
    EndUser,
}

/// Nearest-rank latency percentiles of one group of raw events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyPercentiles {
    pub key: String,
    pub p50: u64,
    pub p95: u64,
}

/// The 1-based ranks of the nearest-rank p50 and p95 among `n` sorted values: ⌈n/2⌉ and
/// ⌈0.95·n⌉, in integers (the SQL computes the same).
pub fn percentile_ranks(n: u64) -> (u64, u64) {
    (n.div_ceil(2), (95 * n).div_ceil(100))
}

/// Rows and counters that pruning deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub usage_events: u64,
    pub usage_daily: u64,
    pub spend: u64,
    /// Console sessions past their idle or absolute end.
    pub console_sessions: u64,
}
