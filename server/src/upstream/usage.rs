//! One usage record per provider call, written when the call is over: at the end of its answer
//! or stream, when the client left, or when the call failed. Counts and timings, never bodies.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use uuid::Uuid;

use crate::auth::Caller;
use crate::metrics::Metrics;
use crate::providers::unified::Usage;
use crate::providers::ProviderId;
use crate::store::UsageEvent;
use crate::usage_log::UsageLog;

/// Records its event when dropped, once the call was sent (it has a status then); never for a
/// call that is not the client's own (no log).
pub struct UsageRecorder {
    log: Option<UsageLog>,
    metrics: Arc<Metrics>,
    event: UsageEvent,
    started: Instant,
    usage: Option<Usage>,
    /// A budget applies to the call: its cost is stored at once, not with the next batch.
    budgeted: bool,
}

impl UsageRecorder {
    /// `model` as the client named it (empty for the raw passthrough); `endpoint` as called.
    pub fn new(
        log: Option<UsageLog>,
        metrics: Arc<Metrics>,
        caller: &Caller,
        provider: ProviderId,
        model: &str,
        endpoint: String,
    ) -> Self {
        Self {
            log,
            metrics,
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
                latency_ms: 0,
                ttft_ms: None,
                created_at: Utc::now(),
                cost_nanos: None,
            },
            started: caller.started,
            usage: None,
            budgeted: false,
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

    /// The latest usage the provider reported (a stream's final usage replaces earlier ones).
    pub fn usage(&mut self, usage: Option<Usage>) {
        if usage.is_some() {
            self.usage = usage;
        }
    }
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        let Some(log) = self.log.as_ref().filter(|_| self.event.status != 0) else { return };
        let mut event = self.event.clone();
        event.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(u) = self.usage {
            event.prompt_tokens = Some(u.prompt_tokens);
            event.completion_tokens = Some(u.completion_tokens);
            let tokens = &self.metrics.tokens;
            tokens.with_label_values(&[event.provider.as_str(), "prompt"]).inc_by(u.prompt_tokens);
            tokens.with_label_values(&[event.provider.as_str(), "completion"]).inc_by(u.completion_tokens);
        }
        if self.budgeted {
            log.record_now(event);
        } else {
            log.record(event);
        }
    }
}
