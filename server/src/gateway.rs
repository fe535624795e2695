//! One call of the unified API to a provider: resolve the model, open the end user's key for
//! this request only, send the (translated) request, and return or stream the (translated)
//! answer. OpenAI-format providers are piped event by event; Anthropic and Google go through
//! their translators. Dropping the response (client gone) drops the upstream request with it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::providers::routing::{self, Route};
use crate::providers::unified::{
    ChatContext, Prepared, StreamItem, StreamTranslator, TranslateError, UpstreamError, Usage,
};
use crate::providers::ProviderId;
use crate::sse::{SseEvent, SseParser};
use crate::startup::AppState;
use crate::store::{EndUser, UsageEvent};

/// Who a unified-API request is for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: Uuid,
    /// The developer key used; `None` for a browser's session token.
    pub api_key_id: Option<Uuid>,
    pub end_user: EndUser,
    pub paid: bool,
    /// A free-tier caller of a tenant with a model allowlist: the allowed model globs.
    pub free_models: Option<std::sync::Arc<[String]>>,
    /// When the request arrived (after authentication), for latency and overhead.
    pub started: Instant,
}

/// Upstream response headers a client may act on, passed through as they are.
fn passes_through(name: &str) -> bool {
    name == "retry-after"
        || name == "retry-after-ms"
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
        || name == "openai-processing-ms"
}

/// The provider's own id for the request, as `x-upstream-request-id`.
fn upstream_request_id(headers: &reqwest::header::HeaderMap) -> Option<HeaderValue> {
    ["x-request-id", "request-id", "x-goog-request-id"]
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
}

fn copy_headers(from: &reqwest::header::HeaderMap, to: &mut actix_web::HttpResponseBuilder) {
    for (name, value) in from {
        if passes_through(name.as_str()) {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_ref()), HeaderValue::from_bytes(value.as_bytes())) {
                to.append_header((n, v));
            }
        }
    }
    if let Some(id) = upstream_request_id(from) {
        to.insert_header((HeaderName::from_static("x-upstream-request-id"), id));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Google,
}

fn dialect(p: ProviderId) -> Dialect {
    match p {
        ProviderId::Anthropic => Dialect::Anthropic,
        ProviderId::Google => Dialect::Google,
        ProviderId::OpenAi
        | ProviderId::Groq
        | ProviderId::Mistral
        | ProviderId::OpenRouter
        | ProviderId::OpenAiCompatible => Dialect::OpenAi,
    }
}

/// Parses a unified-API body: a JSON object with a string `model`.
fn parse_body(raw: &[u8]) -> Result<(Value, String), ApiError> {
    let body: Value = serde_json::from_slice(raw)
        .map_err(|_| ApiError::invalid_request("invalid_json", "The request body is not valid JSON."))?;
    if !body.is_object() {
        return Err(ApiError::invalid_request("invalid_request_body", "The request body must be a JSON object."));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::invalid_request("invalid_model", "`model` must be a non-empty string.").param("model"))
        }
        None => {
            return Err(ApiError::invalid_request("missing_model", "You must provide a model parameter.").param("model"))
        }
    };
    Ok((body, model))
}

fn route(model: &str) -> Result<Route, ApiError> {
    routing::resolve(model).ok_or_else(|| {
        ApiError::invalid_request(
            "model_unknown",
            format!("Relay does not know which provider serves the model {model:?}. Use {}.", routing::ACCEPTED_FORMS),
        )
        .param("model")
    })
}

fn translate_error(e: TranslateError) -> ApiError {
    let mut err = ApiError::invalid_request("unsupported_parameter", e.message);
    if let Some(p) = e.param {
        err = err.param(leak_param(p));
    }
    err
}

/// `ApiError::param` takes a static name; translator params are few and fixed, so interning
/// them once is bounded.
fn leak_param(p: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let Ok(mut set) = names.lock() else { return "request" };
    if let Some(existing) = set.get(p.as_str()) {
        return existing;
    }
    if set.len() > 4096 {
        return "request";
    }
    let leaked: &'static str = Box::leak(p.into_boxed_str());
    set.insert(leaked);
    leaked
}

fn upstream_failure(provider: ProviderId, e: &reqwest::Error) -> ApiError {
    let what = if e.is_timeout() { "did not answer in time" } else { "could not be reached" };
    ApiError::bad_gateway("upstream_unavailable", format!("{provider} {what}. Try again shortly."))
}

/// An upstream error answer in OpenAI's shape, with the provider's status.
fn error_response(
    provider: ProviderId,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> HttpResponse {
    let err = match dialect(provider) {
        Dialect::OpenAi => openai_error(status, body),
        d => translate::upstream_error(d, status, body),
    };
    let err = UpstreamError { message: crate::providers::redact_key_like(&err.message), ..err };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = HttpResponse::build(code);
    copy_headers(headers, &mut res);
    // Google says when to retry only inside its error body.
    if provider == ProviderId::Google && !headers.contains_key("retry-after") {
        if let Some(secs) = crate::providers::google::retry_after_seconds(body) {
            res.insert_header(("retry-after", secs.to_string()));
        }
    }
    res.content_type("application/json").body(err.to_json().to_string())
}

/// OpenAI-format providers already answer `{"error": {...}}`; anything else is wrapped.
fn openai_error(status: u16, body: &[u8]) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let e = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_owned);
    let message = match e {
        Some(Value::String(s)) => Some(s.clone()),
        _ => text("message"),
    };
    UpstreamError {
        message: message.unwrap_or_else(|| format!("The provider answered HTTP {status}.")),
        kind: text("type").unwrap_or_else(|| default_kind(status).to_owned()),
        code: text("code").or_else(|| e.and_then(|e| e.get("code")).and_then(Value::as_i64).map(|c| c.to_string())),
        param: text("param"),
    }
}

fn default_kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Reads an error body, bounded: providers' errors are small; anything longer is cut.
async fn bounded_body(res: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

fn observe_overhead(state: &AppState, kind: &str, overhead: Duration) {
    state.metrics.relay_overhead.with_label_values(&[kind]).observe(overhead.as_secs_f64());
}

/// Records one usage event when dropped: at the end of a stream, or when the client left.
struct UsageRecorder {
    state: web::Data<AppState>,
    event: UsageEvent,
    started: Instant,
    usage: Option<Usage>,
}

impl UsageRecorder {
    fn new(state: &web::Data<AppState>, caller: &Caller, provider: ProviderId, model: &str, endpoint: &str) -> Self {
        Self {
            state: state.clone(),
            event: UsageEvent {
                id: Uuid::new_v4(),
                tenant_id: caller.tenant_id,
                end_user_id: Some(caller.end_user.id),
                api_key_id: caller.api_key_id,
                provider: provider.as_str().to_owned(),
                model: model.to_owned(),
                endpoint: endpoint.to_owned(),
                status: 0,
                paid: caller.paid,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: 0,
                ttft_ms: None,
                created_at: Utc::now(),
            },
            started: caller.started,
            usage: None,
        }
    }

    fn first_token(&mut self) {
        if self.event.ttft_ms.is_none() {
            self.event.ttft_ms = Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
    }
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        let mut event = self.event.clone();
        event.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(u) = self.usage {
            event.prompt_tokens = Some(u.prompt_tokens);
            event.completion_tokens = Some(u.completion_tokens);
            let tokens = &self.state.metrics.tokens;
            tokens.with_label_values(&[event.provider.as_str(), "prompt"]).inc_by(u.prompt_tokens);
            tokens.with_label_values(&[event.provider.as_str(), "completion"]).inc_by(u.completion_tokens);
        }
        self.state.usage.record(event);
    }
}

/// A usage record for one raw passthrough call (no token counts: bodies are not read).
pub fn record_passthrough(
    state: &web::Data<AppState>,
    caller: &Caller,
    provider: ProviderId,
    path: &str,
    status: u16,
    started: Instant,
) {
    let mut recorder = UsageRecorder::new(state, caller, provider, "", &format!("/relay/{provider}{path}"));
    recorder.started = started;
    recorder.event.status = status;
    recorder.first_token();
}

/// What one provider call needs, resolved up front.
struct Call {
    provider: ProviderId,
    url: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    /// The shared client, or the SSRF-guarded one for `openai-compatible` servers.
    client: reqwest::Client,
}

/// Where a call goes: the provider's API, or for `openai-compatible` the server the key was
/// stored for (checked against the SSRF policy again now). OpenAI-format paths name `/v1`,
/// which such a base URL already includes.
fn target(
    state: &AppState,
    provider: ProviderId,
    stored_base: Option<&str>,
    path: &str,
) -> Result<(String, reqwest::Client), ApiError> {
    let upstreams = state.keys.upstreams();
    match stored_base {
        Some(stored) => {
            let base = upstreams.check_base_url(stored).map_err(|e| {
                ApiError::forbidden(e.code(), format!("The stored base URL is no longer allowed: {e}."))
            })?;
            let rest = path.strip_prefix("/v1").unwrap_or(path);
            let url = base.join(rest, None).map_err(|e| ApiError::forbidden(e.code(), e.to_string()))?;
            Ok((url.to_string(), upstreams.guarded_client().clone()))
        }
        None => Ok((format!("{}{path}", upstreams.base_url(provider)), upstreams.client().clone())),
    }
}

/// The end user's key for this provider, opened for this request only.
struct OpenedKey {
    row: crate::store::StoredProviderKey,
    key: secrecy::SecretString,
}

async fn open_key(state: &AppState, caller: &Caller, provider: ProviderId) -> Result<OpenedKey, ApiError> {
    let (row, key) =
        state.keys.open(&caller.end_user, provider).await.inspect_err(|e| count_decrypt_failure(state, e))?;
    Ok(OpenedKey { row, key })
}

pub(crate) fn count_decrypt_failure(state: &AppState, e: &ApiError) {
    if matches!(e.code(), "provider_key_undecryptable" | "master_key_unavailable") {
        state.metrics.key_decrypt_failures.inc();
    }
}

/// Builds the request. The plaintext key lives on only inside `headers` (marked sensitive)
/// until the request is sent.
async fn prepare(
    state: &AppState,
    opened: OpenedKey,
    provider: ProviderId,
    prepared: Prepared,
) -> Result<Call, ApiError> {
    let OpenedKey { row, key } = opened;
    let mut headers = provider
        .auth_headers(&key)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored key cannot be sent in a header: {e}")))?;
    drop(key);
    headers.insert(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/json"));
    state.keys.touch(&row).await;
    let body = serde_json::to_vec(&prepared.body).map_err(ApiError::internal)?;
    let (url, client) = target(state, provider, row.base_url.as_deref(), &prepared.path)?;
    Ok(Call { provider, url, headers, body, client })
}

/// Sends the call; returns the response and how long the provider took to start answering.
async fn send(state: &AppState, call: Call, kind: &str) -> Result<(reqwest::Response, Duration), ApiError> {
    let timeouts = state.keys.upstreams().timeouts();
    let provider = call.provider;
    let request = call.client.post(&call.url).headers(call.headers).body(call.body).send();
    let sent = Instant::now();
    let result = tokio::time::timeout(timeouts.first_byte, request).await;
    let ttfb = sent.elapsed();
    let status = match &result {
        Ok(Ok(res)) => res.status().as_u16().to_string(),
        Ok(Err(_)) => "unreachable".to_owned(),
        Err(_) => "timeout".to_owned(),
    };
    state.metrics.upstream_requests.with_label_values(&[provider.as_str(), kind, status.as_str()]).inc();
    state.metrics.upstream_ttfb.with_label_values(&[provider.as_str()]).observe(ttfb.as_secs_f64());
    match result {
        Ok(Ok(res)) => Ok((res, ttfb)),
        Ok(Err(e)) => match crate::ssrf::SsrfError::find(&e) {
            Some(refused) => {
                Err(ApiError::forbidden(refused.code(), format!("Relay will not connect there: {refused}.")))
            }
            None => Err(upstream_failure(provider, &e).with_source(e.without_url())),
        },
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            format!("{} did not start answering within {} s.", call.provider, timeouts.first_byte.as_secs()),
        )),
    }
}

pub async fn chat(state: web::Data<AppState>, caller: Caller, raw: &[u8]) -> Result<HttpResponse, ApiError> {
    let (mut body, model) = parse_body(raw)?;
    if !matches!(body.get("messages"), Some(Value::Array(m)) if !m.is_empty()) {
        return Err(
            ApiError::invalid_request("invalid_messages", "`messages` must be a non-empty array.").param("messages")
        );
    }
    let route = route(&model)?;
    crate::ratelimit::check_free_model(&caller, &[&model, &route.upstream_model])?;
    let opened = open_key(&state, &caller, route.provider).await?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let ctx = ChatContext {
        id: format!("chatcmpl-{}", Uuid::new_v4().simple()),
        model: model.clone(),
        created: Utc::now().timestamp(),
        include_usage,
    };
    let d = dialect(route.provider);
    let prepared = match d {
        Dialect::OpenAi => {
            body["model"] = Value::String(route.upstream_model.clone());
            // Ask for usage so Relay can record it; the usage chunk is passed on only if the
            // client asked for it too. Groq and Mistral report usage without being asked.
            let mut drop_usage_chunk = false;
            if stream && matches!(route.provider, ProviderId::OpenAi | ProviderId::OpenRouter) && !include_usage {
                body["stream_options"] = serde_json::json!({ "include_usage": true });
                drop_usage_chunk = true;
            }
            let path = "/v1/chat/completions".to_owned();
            let prepared = Prepared { path, body };
            return finish_chat(
                state,
                caller,
                opened,
                route.provider,
                &model,
                prepared,
                stream,
                Mode::Pipe { drop_usage_chunk },
                ctx,
            )
            .await;
        }
        d => translate::chat_request(d, &body, &route.upstream_model).map_err(translate_error)?,
    };
    finish_chat(state, caller, opened, route.provider, &model, prepared, stream, Mode::Translate, ctx).await
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Pipe { drop_usage_chunk: bool },
    Translate,
}

#[allow(clippy::too_many_arguments)]
async fn finish_chat(
    state: web::Data<AppState>,
    caller: Caller,
    opened: OpenedKey,
    provider: ProviderId,
    model: &str,
    prepared: Prepared,
    stream: bool,
    mode: Mode,
    ctx: ChatContext,
) -> Result<HttpResponse, ApiError> {
    let mut recorder = UsageRecorder::new(&state, &caller, provider, model, "/v1/chat/completions");
    let call = prepare(&state, opened, provider, prepared).await?;
    let (res, ttfb) = match send(&state, call, "chat").await {
        Ok(sent) => sent,
        Err(e) => {
            recorder.event.status = e.status_code_u16();
            return Err(e);
        }
    };
    let status = res.status().as_u16();
    recorder.event.status = status;
    if !res.status().is_success() {
        let headers = res.headers().clone();
        let body = bounded_body(res, 64 * 1024).await;
        return Ok(error_response(provider, status, &headers, &body));
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    copy_headers(res.headers(), &mut out);

    if !stream {
        let limit = state.keys.upstreams().timeouts().first_byte;
        let body_started = Instant::now();
        let bytes = match tokio::time::timeout(limit, res.bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(upstream_failure(provider, &e)),
            Err(_) => {
                return Err(ApiError::bad_gateway(
                    "upstream_timeout",
                    format!("{provider} did not finish answering in time."),
                ))
            }
        };
        recorder.first_token();
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        let body = match (mode, parsed) {
            (Mode::Pipe { .. }, parsed) => {
                recorder.usage = parsed.as_ref().and_then(|v| v.get("usage")).and_then(Usage::from_json);
                bytes
            }
            (Mode::Translate, Some(v)) => {
                let translated = translate::chat_response(dialect(provider), &v, &ctx).map_err(|e| {
                    ApiError::bad_gateway(
                        "upstream_invalid_response",
                        format!("{provider} sent an answer Relay could not read: {e}"),
                    )
                })?;
                recorder.usage = translated.get("usage").and_then(Usage::from_json);
                Bytes::from(translated.to_string())
            }
            (Mode::Translate, None) => {
                return Err(ApiError::bad_gateway(
                    "upstream_invalid_response",
                    format!("{provider} sent an answer that is not JSON."),
                ))
            }
        };
        let waited = ttfb + body_started.elapsed();
        observe_overhead(&state, "chat", recorder.started.elapsed().saturating_sub(waited));
        return Ok(out.content_type("application/json").body(body));
    }
    observe_overhead(&state, "chat_stream", recorder.started.elapsed().saturating_sub(ttfb));

    let translator: Option<Box<dyn StreamTranslator>> = match mode {
        Mode::Translate => Some(translate::chat_stream(dialect(provider), ctx)),
        Mode::Pipe { .. } => None,
    };
    let drop_usage_chunk = matches!(mode, Mode::Pipe { drop_usage_chunk: true });
    let flow = Flow {
        upstream: Box::pin(res.bytes_stream()),
        parser: SseParser::new(),
        translator,
        drop_usage_chunk,
        idle: state.keys.upstreams().timeouts().idle,
        pending: VecDeque::new(),
        done: false,
        provider,
        recorder,
        last_upstream: Instant::now(),
        last_sent: Instant::now(),
        _open: crate::metrics::StreamGauge::open(&state.metrics.active_streams),
    };
    Ok(out
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(flow.into_stream()))
}

/// The longest Relay stays silent towards a streaming client. A comment line (ignored by SSE
/// clients) is written when nothing else was: it keeps proxies from timing out during long
/// silences (reasoning) and, because a closed socket is only noticed on a write, lets Relay see
/// a departed client, and cancel the upstream, within about two beats. (The price: a timer
/// wake-up per idle stream per beat, about 0.9 of a core for 10k idle streams.)
const HEARTBEAT: Duration = Duration::from_millis(250);

/// The state of one stream from upstream to client.
struct Flow {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    translator: Option<Box<dyn StreamTranslator>>,
    drop_usage_chunk: bool,
    idle: Duration,
    pending: VecDeque<Bytes>,
    done: bool,
    provider: ProviderId,
    recorder: UsageRecorder,
    last_upstream: Instant,
    last_sent: Instant,
    _open: crate::metrics::StreamGauge,
}

/// Masks key-shaped text in an `{"error": {"message"}}` value; true when something changed.
fn redact_error_message(v: &mut Value) -> bool {
    let Some(Value::String(message)) = v.pointer_mut("/error/message") else { return false };
    let redacted = crate::providers::redact_key_like(message);
    let changed = redacted != *message;
    *message = redacted;
    changed
}

fn sse_data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn mid_stream_error(message: String, code: &str) -> Value {
    serde_json::json!({ "error": { "message": message, "type": "upstream_error", "param": null, "code": code } })
}

impl Flow {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures::stream::unfold(self, |mut flow| async move {
            loop {
                if let Some(b) = flow.pending.pop_front() {
                    flow.last_sent = Instant::now();
                    return Some((Ok(b), flow));
                }
                if flow.done {
                    return None;
                }
                flow.step().await;
            }
        })
    }

    async fn step(&mut self) {
        let idle_left = self.idle.saturating_sub(self.last_upstream.elapsed());
        let beat_left = HEARTBEAT.saturating_sub(self.last_sent.elapsed());
        // `next()` is cancel-safe: a timeout here loses no upstream bytes.
        match tokio::time::timeout(idle_left.min(beat_left), self.upstream.next()).await {
            Err(_) if self.last_upstream.elapsed() < self.idle => {
                self.pending.push_back(Bytes::from_static(b": keep-alive\n\n"));
            }
            Ok(Some(Ok(bytes))) => {
                self.last_upstream = Instant::now();
                for event in self.parser.push(&bytes) {
                    self.on_event(&event);
                    if self.done {
                        return;
                    }
                }
            }
            Ok(None) => {
                if let Some(event) = self.parser.finish() {
                    self.on_event(&event);
                }
                if !self.done {
                    self.end();
                }
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(provider = %self.provider, error = %e.without_url(), "upstream stream broke");
                self.fail(
                    format!("The connection to {} broke during the stream.", self.provider),
                    "upstream_disconnected",
                );
            }
            Err(_) => {
                tracing::warn!(provider = %self.provider, idle_secs = self.idle.as_secs(), "upstream stream went idle");
                self.fail(
                    format!("{} sent nothing for {} s; the stream was closed.", self.provider, self.idle.as_secs()),
                    "upstream_timeout",
                );
            }
        }
    }

    fn on_event(&mut self, event: &SseEvent) {
        if let Some(t) = self.translator.as_mut() {
            let items = t.on_event(event);
            self.recorder.usage = t.usage().or(self.recorder.usage);
            for item in items {
                match item {
                    StreamItem::Chunk(v) => {
                        self.recorder.first_token();
                        self.pending.push_back(sse_data(&v));
                    }
                    StreamItem::Error(mut v) => {
                        redact_error_message(&mut v);
                        self.pending.push_back(sse_data(&v));
                        self.done = true;
                        return;
                    }
                }
            }
            return;
        }
        // OpenAI format: pass each event on as it came, noting usage on the way.
        if event.data == "[DONE]" {
            self.pending.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            self.done = true;
            return;
        }
        self.recorder.first_token();
        let mut parsed: Option<Value> = serde_json::from_str(&event.data).ok();
        // An error event is passed on with key-shaped text masked (re-encoded only then).
        if let Some(v) = parsed.as_mut().filter(|v| v.get("error").is_some()) {
            if redact_error_message(v) {
                self.pending.push_back(sse_data(v));
                return;
            }
        }
        if let Some(v) = &parsed {
            let usage = v.get("usage").filter(|u| u.is_object()).or_else(|| v.pointer("/x_groq/usage"));
            if let Some(u) = usage.and_then(Usage::from_json) {
                self.recorder.usage = Some(u);
            }
            let usage_only =
                v.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty) && v.get("usage").is_some();
            if usage_only && self.drop_usage_chunk {
                return;
            }
        }
        let mut frame = String::with_capacity(event.data.len() + 16);
        if let Some(name) = &event.event {
            frame.push_str("event: ");
            frame.push_str(name);
            frame.push('\n');
        }
        for line in event.data.split('\n') {
            frame.push_str("data: ");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push('\n');
        self.pending.push_back(Bytes::from(frame));
    }

    /// The upstream ended normally.
    fn end(&mut self) {
        if let Some(t) = self.translator.as_mut() {
            let mut failed = false;
            for item in t.finish() {
                match item {
                    StreamItem::Chunk(v) => self.pending.push_back(sse_data(&v)),
                    // E.g. the upstream closed before saying anything: an error, and no [DONE].
                    StreamItem::Error(v) => {
                        self.pending.push_back(sse_data(&v));
                        failed = true;
                    }
                }
            }
            self.recorder.usage = t.usage().or(self.recorder.usage);
            if !failed {
                self.pending.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            }
        }
        self.done = true;
    }

    fn fail(&mut self, message: String, code: &str) {
        self.pending.push_back(sse_data(&mid_stream_error(message, code)));
        self.done = true;
    }
}

pub async fn embeddings(state: web::Data<AppState>, caller: Caller, raw: &[u8]) -> Result<HttpResponse, ApiError> {
    let (mut body, model) = parse_body(raw)?;
    if body.get("input").is_none() {
        return Err(ApiError::invalid_request("missing_input", "You must provide an input parameter.").param("input"));
    }
    let route = route(&model)?;
    if route.provider == ProviderId::Anthropic {
        return Err(ApiError::invalid_request(
            "model_not_supported",
            "Anthropic has no embeddings API. Use an OpenAI (text-embedding-*) or Google (gemini-embedding-001, text-embedding-004) model.",
        )
        .param("model"));
    }
    crate::ratelimit::check_free_model(&caller, &[&model, &route.upstream_model])?;
    let opened = open_key(&state, &caller, route.provider).await?;
    let prepared = match dialect(route.provider) {
        Dialect::OpenAi | Dialect::Anthropic => {
            body["model"] = Value::String(route.upstream_model.clone());
            Prepared { path: "/v1/embeddings".into(), body: body.clone() }
        }
        Dialect::Google => translate::embeddings_request(&body, &route.upstream_model).map_err(translate_error)?,
    };
    let mut recorder = UsageRecorder::new(&state, &caller, route.provider, &model, "/v1/embeddings");
    let call = prepare(&state, opened, route.provider, prepared).await?;
    let (res, ttfb) = send(&state, call, "embeddings").await?;
    let status = res.status().as_u16();
    recorder.event.status = status;
    if !res.status().is_success() {
        let headers = res.headers().clone();
        let body_bytes = bounded_body(res, 64 * 1024).await;
        return Ok(error_response(route.provider, status, &headers, &body_bytes));
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    copy_headers(res.headers(), &mut out);
    let body_started = Instant::now();
    let bytes = res.bytes().await.map_err(|e| upstream_failure(route.provider, &e))?;
    recorder.first_token();
    observe_overhead(&state, "embeddings", recorder.started.elapsed().saturating_sub(ttfb + body_started.elapsed()));
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let answer = match (dialect(route.provider), parsed) {
        (Dialect::OpenAi, parsed) => {
            recorder.usage = parsed.as_ref().and_then(|v| v.get("usage")).and_then(Usage::from_json);
            bytes
        }
        (_, Some(v)) => {
            let translated = translate::embeddings_response(&v, &body).map_err(|e| {
                ApiError::bad_gateway(
                    "upstream_invalid_response",
                    format!("Google sent an answer Relay could not read: {e}"),
                )
            })?;
            recorder.usage = translated.get("usage").and_then(Usage::from_json);
            Bytes::from(translated.to_string())
        }
        (_, None) => {
            return Err(ApiError::bad_gateway("upstream_invalid_response", "Google sent an answer that is not JSON."))
        }
    };
    Ok(out.content_type("application/json").body(answer))
}

/// `/v1/models`: the models of every provider this user connected, asked of each provider with
/// the user's key, in OpenAI's list shape. A provider that does not answer is left out (logged).
pub async fn models(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let connected = state.store.list_provider_keys(caller.end_user.id).await?;
    let mut lists = Vec::new();
    for summary in connected {
        let Ok(provider) = summary.provider.parse::<ProviderId>() else { continue };
        let state = state.clone();
        let caller = caller.clone();
        lists.push(async move { (provider, list_models(&state, &caller, provider).await) });
    }
    let mut data = Vec::new();
    for (provider, result) in futures::future::join_all(lists).await {
        match result {
            // A free-tier user sees the models they may call.
            Ok(models) => data.extend(models.into_iter().filter(|m| {
                let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
                let bare = id.split_once('/').map_or(id, |(_, rest)| rest);
                crate::ratelimit::check_free_model(&caller, &[id, bare]).is_ok()
            })),
            Err(e) => tracing::warn!(%provider, error = ?e, "could not list models"),
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "object": "list", "data": data })))
}

async fn list_models(state: &AppState, caller: &Caller, provider: ProviderId) -> Result<Vec<Value>, ApiError> {
    let (row, key) = state.keys.open(&caller.end_user, provider).await?;
    let headers = provider.auth_headers(&key).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    drop(key);
    let path = match provider {
        ProviderId::Google => "/v1beta/models?pageSize=1000",
        ProviderId::Anthropic => "/v1/models?limit=1000",
        _ => "/v1/models",
    };
    let (url, client) = target(state, provider, row.base_url.as_deref(), path)?;
    let res = client
        .get(url)
        .headers(headers)
        .timeout(state.keys.upstreams().timeouts().key_check)
        .send()
        .await
        .map_err(|e| upstream_failure(provider, &e))?;
    if !res.status().is_success() {
        return Err(ApiError::bad_gateway(
            "upstream_error",
            format!("{provider} answered {} to the model listing.", res.status()),
        ));
    }
    let v: Value = res.json().await.map_err(|e| upstream_failure(provider, &e))?;
    let owned_by = provider.as_str();
    let items: Vec<(String, i64)> = match provider {
        ProviderId::Google => v["models"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|n| (n.trim_start_matches("models/").to_owned(), 0))
                    .collect()
            })
            .unwrap_or_default(),
        ProviderId::Anthropic => v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let created = m["created_at"]
                            .as_str()
                            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                            .map(|c| c.timestamp())
                            .unwrap_or(0);
                        m["id"].as_str().map(|id| (id.to_owned(), created))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(|id| (id.to_owned(), m["created"].as_i64().unwrap_or(0))))
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok(items
        .into_iter()
        .map(|(id, created)| {
            serde_json::json!({ "id": routing::public_model_id(provider, &id), "object": "model", "created": created, "owned_by": owned_by })
        })
        .collect())
}

/// The one place the gateway calls the translators.
mod translate {
    use serde_json::Value;

    use super::Dialect;
    use crate::providers::unified::{ChatContext, Prepared, StreamTranslator, TranslateError, UpstreamError};
    use crate::providers::{anthropic, google};

    pub fn chat_request(d: Dialect, body: &Value, model: &str) -> Result<Prepared, TranslateError> {
        match d {
            Dialect::Anthropic => anthropic::chat_request(body, model),
            _ => google::chat_request(body, model),
        }
    }

    pub fn chat_response(d: Dialect, body: &Value, ctx: &ChatContext) -> Result<Value, TranslateError> {
        match d {
            Dialect::Anthropic => anthropic::chat_response(body, ctx),
            _ => google::chat_response(body, ctx),
        }
    }

    pub fn chat_stream(d: Dialect, ctx: ChatContext) -> Box<dyn StreamTranslator> {
        match d {
            Dialect::Anthropic => Box::new(anthropic::chat_stream(ctx)),
            _ => Box::new(google::chat_stream(ctx)),
        }
    }

    pub fn upstream_error(d: Dialect, status: u16, body: &[u8]) -> UpstreamError {
        match d {
            Dialect::Anthropic => anthropic::upstream_error(status, body),
            _ => google::upstream_error(status, body),
        }
    }

    pub fn embeddings_request(body: &Value, model: &str) -> Result<Prepared, TranslateError> {
        google::embeddings_request(body, model)
    }

    pub fn embeddings_response(body: &Value, req: &Value) -> Result<Value, TranslateError> {
        google::embeddings_response(body, req)
    }
}
