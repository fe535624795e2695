//! Prometheus metrics. Labels are route patterns, providers, methods, statuses and fixed
//! words only: never a key, token, tenant name or end-user label.

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds, from 100 µs (Relay's own overhead) to 10 min (long answers).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_ttfb: HistogramVec,
    pub relay_overhead: HistogramVec,
    pub active_streams: IntGauge,
    pub tokens: IntCounterVec,
    /// USD spent, by provider (the sum of priced usage records).
    pub cost_usd: CounterVec,
    /// Calls with usage but no price, by provider.
    pub unpriced_calls: IntCounterVec,
    pub key_decrypt_failures: IntCounter,
    pub rate_limited: IntCounterVec,
    pub rate_limit_backend_errors: IntCounter,
    pub budget_refusals: IntCounterVec,
    pub cache_channel_up: IntGauge,
    pub cache_invalidations: IntCounter,
    pub usage_events_dropped: IntCounter,
    pub key_status_changes: IntCounterVec,
    pub webhook_deliveries: IntCounterVec,
    pub webhook_outbox_pending: IntGauge,
    pub webhook_emit_failures: IntCounter,
    /// Expired rows deleted by retention, by table.
    pub usage_pruned_rows: IntCounterVec,
    /// Entries in this node's in-memory maps that grow with traffic, by map.
    pub map_entries: IntGaugeVec,
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("relay".into()), None)?;
        let m = Self {
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests answered, by route pattern, method and status"),
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                "http_request_duration_seconds",
                "Time to answer (headers), by route pattern",
                &["route"],
            )?,
            upstream_requests: IntCounterVec::new(
                Opts::new("upstream_requests_total", "Calls to providers, by provider, endpoint kind and status"),
                &["provider", "kind", "status"],
            )?,
            upstream_ttfb: histogram(
                "upstream_time_to_first_byte_seconds",
                "Time from sending a request to a provider until its response headers",
                &["provider"],
            )?,
            relay_overhead: histogram(
                "overhead_seconds",
                "Relay's own time per call: time to answer minus time waiting on the provider",
                &["kind"],
            )?,
            active_streams: IntGauge::new("active_streams", "Streams open between a client and a provider")?,
            tokens: IntCounterVec::new(
                Opts::new(
                    "tokens_total",
                    "Tokens reported by providers, by provider and direction (prompt, completion)",
                ),
                &["provider", "direction"],
            )?,
            cost_usd: CounterVec::new(
                Opts::new(
                    "cost_usd_total",
                    "What provider calls cost in USD, by provider (from the price table or the provider's own figure)",
                ),
                &["provider"],
            )?,
            unpriced_calls: IntCounterVec::new(
                Opts::new(
                    "unpriced_calls_total",
                    "Provider calls that reported usage for a model without a price, by provider",
                ),
                &["provider"],
            )?,
            key_decrypt_failures: IntCounter::new(
                "key_decrypt_failures_total",
                "Stored provider keys that did not decrypt (tampering, wrong context or missing master key)",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new("rate_limited_total", "Requests refused by a rate limit, by limit scope"),
                &["scope"],
            )?,
            rate_limit_backend_errors: IntCounter::new(
                "rate_limit_backend_errors_total",
                "Rate-limit checks Redis did not answer, decided by this node alone",
            )?,
            cache_channel_up: IntGauge::new(
                "cache_channel_up",
                "1 while this node hears other nodes' cache invalidations (PostgreSQL LISTEN), else 0",
            )?,
            cache_invalidations: IntCounter::new(
                "cache_invalidations_total",
                "Changes other nodes (or the CLI) announced, each dropping what this node cached of it",
            )?,
            usage_events_dropped: IntCounter::new(
                "usage_events_dropped_total",
                "Usage events lost because the database stayed away longer than this node could keep them",
            )?,
            budget_refusals: IntCounterVec::new(
                Opts::new(
                    "budget_refusals_total",
                    "Calls refused with 402 budget_exceeded, by the limit that was spent",
                ),
                &["budget"],
            )?,
            key_status_changes: IntCounterVec::new(
                Opts::new(
                    "key_status_changes_total",
                    "Stored provider keys whose status changed, by provider and new status (ok, invalid, quota_exhausted)",
                ),
                &["provider", "status"],
            )?,
            webhook_deliveries: IntCounterVec::new(
                Opts::new(
                    "webhook_deliveries_total",
                    "Webhook delivery attempts, by outcome (delivered, retry, failed)",
                ),
                &["outcome"],
            )?,
            webhook_outbox_pending: IntGauge::new(
                "webhook_outbox_pending",
                "Webhook deliveries waiting for an attempt or a retry (all nodes; read by this node's worker)",
            )?,
            webhook_emit_failures: IntCounter::new(
                "webhook_emit_failures_total",
                "Webhook events that could not be written to the outbox (see the error log)",
            )?,
            usage_pruned_rows: IntCounterVec::new(
                Opts::new(
                    "usage_pruned_rows_total",
                    "Expired rows deleted by retention, by table (usage_events, usage_daily, spend, console_sessions)",
                ),
                &["table"],
            )?,
            map_entries: IntGaugeVec::new(
                Opts::new(
                    "memory_map_entries",
                    "Entries in this node's bounded in-memory maps (caches, rate-limit state), by map",
                ),
                &["map"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.http_duration.clone()))?;
        m.registry.register(Box::new(m.upstream_requests.clone()))?;
        m.registry.register(Box::new(m.upstream_ttfb.clone()))?;
        m.registry.register(Box::new(m.relay_overhead.clone()))?;
        m.registry.register(Box::new(m.active_streams.clone()))?;
        m.registry.register(Box::new(m.tokens.clone()))?;
        m.registry.register(Box::new(m.cost_usd.clone()))?;
        m.registry.register(Box::new(m.unpriced_calls.clone()))?;
        m.registry.register(Box::new(m.key_decrypt_failures.clone()))?;
        m.registry.register(Box::new(m.rate_limited.clone()))?;
        m.registry.register(Box::new(m.rate_limit_backend_errors.clone()))?;
        m.registry.register(Box::new(m.budget_refusals.clone()))?;
        m.registry.register(Box::new(m.cache_channel_up.clone()))?;
        m.registry.register(Box::new(m.cache_invalidations.clone()))?;
        m.registry.register(Box::new(m.usage_events_dropped.clone()))?;
        m.registry.register(Box::new(m.key_status_changes.clone()))?;
        m.registry.register(Box::new(m.webhook_deliveries.clone()))?;
        m.registry.register(Box::new(m.webhook_outbox_pending.clone()))?;
        m.registry.register(Box::new(m.webhook_emit_failures.clone()))?;
        m.registry.register(Box::new(m.usage_pruned_rows.clone()))?;
        m.registry.register(Box::new(m.map_entries.clone()))?;
        Ok(m)
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Counts an open stream for as long as it lives.
pub struct StreamGauge(IntGauge);

impl StreamGauge {
    pub fn open(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
