//! One usage record per provider call, finished when the call is over: at the end of its answer
//! or stream, when the client left, or when the call failed. Counts, timings and the cost (at
//! the price table's prices, or the provider's own figure), never bodies.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use uuid::Uuid;

use crate::auth::Caller;
use crate::metrics::Metrics;
use crate::pricing::Prices;
use crate::providers::unified::Usage;
use crate::providers::ProviderId;
use crate::store::UsageEvent;
use crate::usage_log::UsageLog;

/// Records its event when dropped, once the call was sent (it has a status then); never for a
/// call that is not the client's own (no log). `finish` is where the event is completed.
pub struct UsageRecorder {
    log: Option<UsageLog>,
    metrics: Arc<Metrics>,
    prices: Arc<Prices>,
    event: UsageEvent,
    started: Instant,
    usage: Option<Usage>,
    /// A budget applies to the call: its cost is stored at once, not with the next batch.
    budgeted: bool,
    finished: bool,
}

impl UsageRecorder {
    /// `model` as the client named it (empty for the raw passthrough); `endpoint` as called.
    pub fn new(
        log: Option<UsageLog>,
        metrics: Arc<Metrics>,
        prices: Arc<Prices>,
        caller: &Caller,
        provider: ProviderId,
        model: &str,
        endpoint: String,
    ) -> Self {
        Self {
            log,
            metrics,
            prices,
            event: UsageEvent {
                id: Uuid::new_v4(),
                tenant_id: caller.tenant_id,
                end_user_id: Some(caller.end_user.id),
                api_key_id: caller.api_key_id,
                provider: provider.as_str().to_owned(),
                model: model.to_owned(),
                endpoint,
                status: 0,
                paid: caller.end_user.paid,
                prompt_tokens: None,
                completion_tokens: None,
                cached_tokens: None,
                cache_write_tokens: None,
                reasoning_tokens: None,
                cost_nanos: None,
                latency_ms: 0,
                ttft_ms: None,
                created_at: Utc::now(),
            },
            started: caller.started,
            usage: None,
            budgeted: false,
            finished: false,
        }
    }

    /// A budget applies to this call (`budgets::Budgets::admit`): its record is written as soon as
    /// the call is over, so the next call's check sees its cost.
    pub fn budgeted(&mut self, budgeted: bool) {
        self.budgeted = budgeted;
    }

    /// When the request arrived, for latency and Relay's overhead.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn status(&mut self, status: u16) {
        self.event.status = status;
    }

    /// The first token (or byte) reached the client now; later calls change nothing.
    pub fn first_token(&mut self) {
        if self.event.ttft_ms.is_none() {
            self.event.ttft_ms = Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// A whole (not streamed) answer is about to go back: a budgeted call's record is stored
    /// before the client has the answer, so the client's next call is checked with it counted.
    /// Other calls' records are written with the next batch, as when dropped.
    pub async fn store_before_answer(mut self) {
        if !self.budgeted {
            return;
        }
        if let (Some(event), Some(log)) = (self.finish(), self.log.clone()) {
            log.store(event).await;
        }
    }

    /// The latest usage the provider reported (a stream's final usage replaces earlier ones).
    pub fn usage(&mut self, usage: Option<Usage>) {
        if usage.is_some() {
            self.usage = usage;
        }
    }
}

impl UsageRecorder {
    /// The call is over: its usage record, complete (latency, tokens, cost) and counted in the
    /// metrics, or `None` for a call that is not recorded (never sent, not the client's own) or
    /// was finished already. Whatever is known counts: a stream cut short has the usage its
    /// provider reported so far.
    pub fn finish(&mut self) -> Option<UsageEvent> {
        if self.finished || self.log.is_none() || self.event.status == 0 {
            return None;
        }
        self.finished = true;
        let mut event = self.event.clone();
        event.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let provider = event.provider.as_str();
        if let Some(u) = self.usage {
            event.prompt_tokens = Some(u.prompt_tokens);
            event.completion_tokens = Some(u.completion_tokens);
            event.cached_tokens = Some(u.cached_tokens);
            event.cache_write_tokens = Some(u.cache_write_tokens);
            event.reasoning_tokens = Some(u.reasoning_tokens);
            event.cost_nanos = self.prices.cost_nanos(provider, &event.model, Some(&u));
            let tokens = &self.metrics.tokens;
            tokens.with_label_values(&[provider, "prompt"]).inc_by(u.prompt_tokens);
            tokens.with_label_values(&[provider, "completion"]).inc_by(u.completion_tokens);
            match event.cost_nanos {
                Some(nanos) => self.metrics.cost_usd.with_label_values(&[provider]).inc_by(nanos as f64 / 1e9),
                None => self.metrics.unpriced_calls.with_label_values(&[provider]).inc(),
            }
        }
        Some(event)
    }
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        if let Some(event) = self.finish() {
            if let Some(log) = &self.log {
                if self.budgeted {
                    log.record_now(event);
                } else {
                    log.record(event);
                }
            }
        }
    }
}
