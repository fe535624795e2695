//! The one way from a route to a provider, for the unified API and the raw passthrough alike:
//! the caller's key opened for this call only and injected, the target resolved (the provider's
//! API, or the key's own `openai-compatible` server re-checked by the SSRF policy), one timeout,
//! error and metrics policy, one response-header allowlist, error bodies masked on every path,
//! one usage record per call, and the key's health as the provider's answer shows it.

mod client;
mod health;
mod mask;
mod stream;
mod usage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::HeaderMap;

pub use client::{Target, UpstreamTimeouts, Upstreams};
use health::KeyWatch;
pub use mask::{redact_key_like, Masker};
pub use stream::{Next, Watched, TICK};
pub use usage::UsageRecorder;

use crate::auth::Caller;
use crate::budgets::Budgets;
use crate::error::ApiError;
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::pricing::Prices;
use crate::providers::{Dialect, ProviderId};
use crate::ssrf::{CheckedUrl, SsrfError};
use crate::usage_log::UsageLog;
use crate::webhooks::Webhooks;

/// The most of a provider's error answer Relay reads (to mask it) before it gives up on it.
const ERROR_BODY_LIMIT: usize = 256 * 1024;

/// Provider calls: what every route that reaches a provider goes through.
pub struct Upstream {
    upstreams: Upstreams,
    keys: KeyService,
    budgets: Budgets,
    webhooks: Webhooks,
    metrics: Arc<Metrics>,
    usage: UsageLog,
    /// What each usage record is priced at.
    prices: Arc<Prices>,
}

impl Upstream {
    pub fn new(
        upstreams: Upstreams,
        keys: KeyService,
        budgets: Budgets,
        webhooks: Webhooks,
        metrics: Arc<Metrics>,
        usage: UsageLog,
        prices: Arc<Prices>,
    ) -> Self {
        Self { upstreams, keys, budgets, webhooks, metrics, usage, prices }
    }

    pub fn timeouts(&self) -> &UpstreamTimeouts {
        self.upstreams.timeouts()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether a base URL a client names (`x-relay-base-url`) is the server `base`.
    pub fn same_server(&self, claimed: &str, base: &CheckedUrl) -> bool {
        use crate::keys::KeyVerifier;
        self.upstreams.check_base_url(claimed).is_ok_and(|c| c.to_string() == base.to_string())
    }

    /// Opens the caller's key for `provider` and prepares a call to `path` (percent-encoded,
    /// below the provider's API root) with `query`. The plaintext key lives on only in the
    /// call's headers (marked sensitive) and its masker, both dropped with the call. `usage`
    /// names the model (as the client named it) and the endpoint for the call's usage record,
    /// written once the call was sent; `None` for calls that are not the client's own. A call
    /// with a usage record is refused (402) when a budget that applies to it is spent.
    pub async fn open(
        &self,
        caller: &Caller,
        provider: ProviderId,
        path: &str,
        query: Option<&str>,
        usage: Option<(&str, String)>,
    ) -> Result<Call, ApiError> {
        caller.may_use(provider)?;
        let (row, key) = self.keys.open(&caller.end_user, provider).await.inspect_err(|e| {
            if matches!(e.code(), "provider_key_undecryptable" | "master_key_unavailable") {
                self.metrics.key_decrypt_failures.inc();
            }
        })?;
        let headers = provider
            .auth_headers(&key)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored key cannot be sent in a header: {e}")))?;
        let limits = match usage {
            Some(_) => {
                self.budgets
                    .limits_for(caller.tenant_id, caller.end_user.id, provider.as_str(), row.monthly_cap)
                    .await?
            }
            None => Vec::new(),
        };
        let budgeted = !limits.is_empty();
        if budgeted {
            // This node's earlier calls count before this one is admitted.
            self.usage.flush().await?;
            self.budgets.admit(caller.tenant_id, &limits).await?;
        }
        self.keys.touch(&row).await;
        let base = row.base_url.as_deref().map(|b| self.upstreams.check_stored(b)).transpose()?;
        let health = KeyWatch::new(self.keys.clone(), self.webhooks.clone(), self.metrics.clone(), provider, &row);
        let mask = Masker::new(key, row.fingerprint);
        let target = self.upstreams.target(provider, base.as_ref(), path, query)?;
        let log = usage.is_some().then(|| self.usage.clone());
        let (model, endpoint) = usage.unwrap_or_default();
        let mut recorder =
            UsageRecorder::new(log, self.metrics.clone(), self.prices.clone(), caller, provider, model, endpoint);
        recorder.budgeted(budgeted);
        Ok(Call {
            provider,
            target,
            base,
            headers,
            mask,
            upload_overflow: None,
            timeouts: self.upstreams.timeouts().clone(),
            metrics: self.metrics.clone(),
            recorder,
            health,
        })
    }
}

/// One prepared provider call.
pub struct Call {
    pub provider: ProviderId,
    target: Target,
    base: Option<CheckedUrl>,
    headers: HeaderMap,
    mask: Masker,
    /// Set when a streamed upload was cut at the body limit (which is the second field).
    upload_overflow: Option<(Arc<AtomicBool>, usize)>,
    timeouts: UpstreamTimeouts,
    metrics: Arc<Metrics>,
    recorder: UsageRecorder,
    health: KeyWatch,
}

impl Call {
    /// The `openai-compatible` server the key was stored for.
    pub fn stored_base(&self) -> Option<&CheckedUrl> {
        self.base.as_ref()
    }

    pub fn header(&mut self, name: reqwest::header::HeaderName, value: reqwest::header::HeaderValue) {
        self.headers.insert(name, value);
    }

    /// A streamed upload sets `flag` when it is cut for being over `limit` bytes: the send then
    /// fails with 413 instead of a connection error.
    pub fn watch_upload(&mut self, flag: Arc<AtomicBool>, limit: usize) {
        self.upload_overflow = Some((flag, limit));
    }

    /// Waits at most `limit` for the answer's headers instead of the first-byte timeout.
    pub fn first_byte_timeout(&mut self, limit: Duration) {
        self.timeouts.first_byte = limit;
    }

    /// Sends the request and waits for the answer's headers (at most the first-byte timeout).
    /// `kind` is the metrics label.
    pub async fn send(
        self,
        method: reqwest::Method,
        body: Option<reqwest::Body>,
        kind: &'static str,
    ) -> Result<Sent, ApiError> {
        let Call { provider, target, headers, mask, upload_overflow, timeouts, metrics, mut recorder, health, .. } =
            self;
        let mut request = target.client.request(method, target.url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let sent = Instant::now();
        let result = tokio::time::timeout(timeouts.first_byte, request.send()).await;
        let ttfb = sent.elapsed();
        let label = match &result {
            Ok(Ok(res)) => res.status().as_u16().to_string(),
            Ok(Err(_)) => "unreachable".to_owned(),
            Err(_) => "timeout".to_owned(),
        };
        metrics.upstream_requests.with_label_values(&[provider.as_str(), kind, label.as_str()]).inc();
        metrics.upstream_ttfb.with_label_values(&[provider.as_str()]).observe(ttfb.as_secs_f64());
        let outcome = match result {
            Ok(Ok(res)) if res.status().is_redirection() => Err(ApiError::bad_gateway(
                "upstream_redirect",
                format!(
                    "{provider} answered with a redirect (HTTP {}), which Relay does not follow.",
                    res.status().as_u16()
                ),
            )),
            Ok(Ok(res)) => Ok(res),
            Ok(Err(_)) if upload_overflow.as_ref().is_some_and(|(f, _)| f.load(Ordering::Relaxed)) => {
                let limit = upload_overflow.map_or(0, |(_, limit)| limit);
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    "request_too_large",
                    format!("The request body is larger than the limit of {limit} bytes."),
                ))
            }
            Ok(Err(e)) => Err(unreachable(provider, e)),
            Err(_) => Err(timed_out(provider, "start answering", timeouts.first_byte)),
        };
        match outcome {
            Ok(res) => {
                recorder.status(res.status().as_u16());
                if res.status().is_success() {
                    health.succeeded().await;
                }
                Ok(Sent { provider, res, ttfb, mask, recorder, timeouts, health })
            }
            Err(e) => {
                recorder.status(e.status_code_u16());
                Err(e)
            }
        }
    }
}

/// The provider could not be reached, or Relay refused to connect where it points.
fn unreachable(provider: ProviderId, e: reqwest::Error) -> ApiError {
    if let Some(refused) = SsrfError::find(&e) {
        return ApiError::forbidden(refused.code(), format!("Relay will not connect there: {refused}."));
    }
    let what = if e.is_timeout() { "did not answer in time" } else { "could not be reached" };
    ApiError::bad_gateway("upstream_unavailable", format!("{provider} {what}. Try again shortly."))
        .with_source(e.without_url())
}

/// The one timeout answer: 504 `upstream_timeout`.
fn timed_out(provider: ProviderId, what: &str, limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_error",
        "upstream_timeout",
        format!("{provider} did not {what} within {} s.", limit.as_secs()),
    )
}

/// Upstream response headers a client may act on, passed back as they are.
fn passes_back(name: &str) -> bool {
    matches!(name, "content-type" | "content-disposition" | "retry-after" | "retry-after-ms" | "openai-processing-ms")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// The provider's own ids for a request, returned as `x-upstream-request-id`.
const UPSTREAM_REQUEST_IDS: [&str; 3] = ["x-request-id", "request-id", "x-goog-request-id"];

/// A provider's answer, headers received.
pub struct Sent {
    pub provider: ProviderId,
    res: reqwest::Response,
    /// How long the provider took to start answering.
    pub ttfb: Duration,
    pub mask: Masker,
    pub recorder: UsageRecorder,
    timeouts: UpstreamTimeouts,
    health: KeyWatch,
}

impl Sent {
    pub fn status(&self) -> u16 {
        self.res.status().as_u16()
    }

    pub fn is_success(&self) -> bool {
        self.res.status().is_success()
    }

    /// The client's answer: the provider's status and the headers that pass back.
    pub fn answer(&self) -> HttpResponseBuilder {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HttpResponse::build(status);
        let headers = self.res.headers();
        for (name, value) in headers {
            if passes_back(name.as_str()) {
                if let (Ok(n), Ok(v)) =
                    (HeaderName::from_bytes(name.as_ref()), HeaderValue::from_bytes(value.as_bytes()))
                {
                    out.append_header((n, v));
                }
            }
        }
        if let Some(id) = UPSTREAM_REQUEST_IDS.iter().find_map(|n| headers.get(*n)) {
            if let Ok(v) = HeaderValue::from_bytes(id.as_bytes()) {
                out.insert_header((HeaderName::from_static("x-upstream-request-id"), v));
            }
        }
        out
    }

    /// An error answer in OpenAI's shape (the unified API), the provider's status kept and its
    /// text masked.
    pub async fn error_answer(self, dialect: &dyn Dialect) -> HttpResponse {
        let mut out = self.answer();
        let retry_after_sent = self.res.headers().contains_key("retry-after");
        let status = self.status();
        let Sent { provider, res, mask, timeouts, health, .. } = self;
        let body = read_capped(res, timeouts.idle).await.unwrap_or_default();
        let mut err = dialect.upstream_error(status, &body);
        for field in [&mut err.message, &mut err.kind].into_iter().chain(err.code.as_mut()).chain(err.param.as_mut()) {
            *field = mask.text(field);
        }
        let verdict = dialect.key_verdict(status, &body);
        health.failed(verdict, || health::reason(provider, status, &err.kind, &err.message)).await;
        // Some providers say when to retry only inside the error body.
        if !retry_after_sent {
            if let Some(secs) = dialect.retry_after_in_body(&body) {
                out.insert_header(("retry-after", secs.to_string()));
            }
        }
        out.content_type("application/json").body(err.to_json().to_string())
    }

    /// An error answer as the provider sent it (the raw passthrough), masked. Read whole for
    /// that, up to `ERROR_BODY_LIMIT`; a larger one is replaced by Relay's own error.
    pub async fn raw_error_answer(self) -> HttpResponse {
        let mut out = self.answer();
        let (status, provider) = (self.status(), self.provider);
        let Sent { res, mask, timeouts, health, .. } = self;
        let dialect = provider.def().dialect;
        match read_capped(res, timeouts.idle).await {
            Some(body) => {
                let verdict = dialect.key_verdict(status, &body);
                let reason = || {
                    let err = dialect.upstream_error(status, &body);
                    health::reason(provider, status, &mask.text(&err.kind), &mask.text(&err.message))
                };
                health.failed(verdict, reason).await;
                out.body(mask.bytes(&body))
            }
            None => {
                let reason = || health::reason(provider, status, "error", "an error body too large to read");
                health.failed(dialect.key_verdict(status, b""), reason).await;
                let err = crate::providers::unified::UpstreamError {
                    message: format!(
                        "{provider} answered HTTP {status} with an error body over {} KiB, which Relay does not pass on.",
                        ERROR_BODY_LIMIT / 1024
                    ),
                    kind: crate::providers::openai_format::default_kind(status).to_owned(),
                    code: None,
                    param: None,
                };
                out.content_type("application/json").body(err.to_json().to_string())
            }
        }
    }

    /// The whole answer (not streamed), within the first-byte timeout again; and how long the
    /// provider took in all.
    pub async fn body(self) -> Result<(Bytes, UsageRecorder, Duration), ApiError> {
        let Sent { provider, res, ttfb, mut recorder, timeouts, .. } = self;
        let started = Instant::now();
        let bytes = match tokio::time::timeout(timeouts.first_byte, res.bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                recorder.status(502);
                return Err(unreachable(provider, e));
            }
            Err(_) => {
                recorder.status(504);
                return Err(timed_out(provider, "finish answering", timeouts.first_byte));
            }
        };
        recorder.first_token();
        Ok((bytes, recorder, ttfb + started.elapsed()))
    }

    /// The answer as it streams, watched for silence.
    pub fn watch(self) -> (Watched, UsageRecorder, Masker) {
        let Sent { res, mask, recorder, timeouts, .. } = self;
        (Watched::new(res, timeouts.idle), recorder, mask)
    }
}

/// Reads an error body up to `ERROR_BODY_LIMIT`; `None` when it is longer. A body that stalls
/// for `idle` or breaks is taken as read so far.
async fn read_capped(res: reqwest::Response, idle: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut body = res.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(idle, body.next()).await {
        if out.len() + chunk.len() > ERROR_BODY_LIMIT {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(out)
}
