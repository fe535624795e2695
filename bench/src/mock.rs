//! The zero-delay mock provider: OpenAI's `/v1/chat/completions` and Anthropic's `/v1/messages`,
//! JSON or SSE, and `/v1/models` for both (Relay's key check). It runs on its own thread with a
//! one-thread runtime. Each streamed chunk carries the moment it was handed to the socket, in
//! nanoseconds since the harness epoch, so the client can tell how long the chunk took to arrive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The text of every non-streaming answer; the client checks it arrived intact.
pub const ANSWER: &str = "Hello! This is the benchmark mock answering.";

/// Prefix of a streamed chunk's content: `ts:<nanoseconds since the epoch>;`.
pub const TS_PREFIX: &str = "ts:";

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the harness epoch (the mock and the client share it: one process).
pub fn now_ns() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// How the mock streams: `chunks` content chunks, the first at once, then one every `interval`.
#[derive(Debug, Default)]
pub struct StreamPlan {
    chunks: AtomicU64,
    interval_us: AtomicU64,
}

impl StreamPlan {
    pub fn set(&self, chunks: u64, interval: Duration) {
        self.chunks.store(chunks, Ordering::Relaxed);
        self.interval_us.store(u64::try_from(interval.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn get(&self) -> (u64, Duration) {
        (self.chunks.load(Ordering::Relaxed), Duration::from_micros(self.interval_us.load(Ordering::Relaxed)))
    }
}

pub struct Mock {
    pub addr: SocketAddr,
    pub plan: Arc<StreamPlan>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// Binds 127.0.0.1 on a free port and serves on a dedicated thread.
    pub fn start() -> anyhow::Result<Self> {
        now_ns();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind the mock provider")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let plan = Arc::new(StreamPlan::default());
        plan.set(20, Duration::from_millis(5));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_plan = plan.clone();
        let thread = std::thread::Builder::new().name("mock-provider".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("mock runtime: {e}\n"));
                    return;
                }
            };
            runtime.block_on(serve(listener, thread_plan, stopped));
        })?;
        Ok(Self { addr, plan, stop: Some(stop), thread: Some(thread) })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    plan: Arc<StreamPlan>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, most likely: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let plan = plan.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, plan.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// A response body: all at once, or SSE chunks as the streaming task hands them over.
pub enum MockBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Channel(_) => SizeHint::default(),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<MockBody> {
    let mut res = Response::new(MockBody::Full(Some(Bytes::from(body.to_string()))));
    *res.status_mut() = status;
    res.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    res
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenAi,
    Anthropic,
}

async fn handle(req: Request<Incoming>, plan: Arc<StreamPlan>) -> Result<Response<MockBody>, Infallible> {
    let has_key = |name: &str, prefix: &str| {
        req.headers().get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(prefix) && v.len() > 20)
    };
    let format = match (req.method(), req.uri().path()) {
        (_, "/v1/chat/completions") | (&Method::GET, "/v1/models") if has_key("authorization", "Bearer sk-") => {
            Format::OpenAi
        }
        (_, "/v1/messages") | (&Method::GET, "/v1/models") if has_key("x-api-key", "sk-ant-") => Format::Anthropic,
        (_, "/v1/chat/completions" | "/v1/messages" | "/v1/models") => {
            return Ok(json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ))
        }
        _ => return Ok(json_response(StatusCode::NOT_FOUND, &json!({"error": {"message": "no such route"}}))),
    };
    if req.method() == Method::GET {
        let models = match format {
            Format::OpenAi => {
                json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "system"}]})
            }
            Format::Anthropic => {
                json!({"data": [{"type": "model", "id": "claude-3-5-haiku-latest", "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"}], "has_more": false, "first_id": "claude-3-5-haiku-latest", "last_id": "claude-3-5-haiku-latest"})
            }
        };
        return Ok(json_response(StatusCode::OK, &models));
    }
    // Read and parse the request as a provider would.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(json_response(StatusCode::BAD_REQUEST, &json!({"error": {"message": "body"}}))),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(json_response(StatusCode::BAD_REQUEST, &json!({"error": {"message": "invalid JSON"}})));
    };
    let model = request.get("model").and_then(Value::as_str).unwrap_or("unknown").to_owned();
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let answer = match format {
            Format::OpenAi => json!({
                "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1700000000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER, "refusal": null},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23},
                "system_fingerprint": "fp_bench"
            }),
            Format::Anthropic => json!({
                "id": "msg_01Bench0001", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 11}
            }),
        };
        return Ok(json_response(StatusCode::OK, &answer));
    }
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let (chunks, interval) = plan.get();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(stream_answer(tx, format, model, chunks, interval, include_usage));
    let mut res = Response::new(MockBody::Channel(rx));
    res.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    res.headers_mut().insert("cache-control", hyper::header::HeaderValue::from_static("no-cache"));
    Ok(res)
}

fn openai_chunk(model: &str, delta: &Value, finish: Option<&str>) -> Bytes {
    let chunk = json!({"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn anthropic_event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Writes the stream; content chunk `i` goes out `i * interval` after the first. Stops as soon
/// as the receiving side is gone.
async fn stream_answer(
    tx: mpsc::Sender<Bytes>,
    format: Format,
    model: String,
    chunks: u64,
    interval: Duration,
    include_usage: bool,
) {
    let head = match format {
        Format::OpenAi => openai_chunk(&model, &json!({"role": "assistant", "content": ""}), None),
        Format::Anthropic => {
            let mut b = anthropic_event(
                "message_start",
                &json!({"type": "message_start", "message": {"id": "msg_01Bench0001", "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
            )
            .to_vec();
            b.extend_from_slice(&anthropic_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            Bytes::from(b)
        }
    };
    if tx.send(head).await.is_err() {
        return;
    }
    for i in 0..chunks {
        if i > 0 {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = tx.closed() => return,
            }
        }
        let text = format!("{TS_PREFIX}{};", now_ns());
        let chunk = match format {
            Format::OpenAi => openai_chunk(&model, &json!({"content": text}), None),
            Format::Anthropic => anthropic_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            ),
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    let tail = match format {
        Format::OpenAi => {
            let mut b = openai_chunk(&model, &json!({}), Some("stop")).to_vec();
            if include_usage {
                let usage = json!({"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}});
                b.extend_from_slice(format!("data: {usage}\n\n").as_bytes());
            }
            b.extend_from_slice(b"data: [DONE]\n\n");
            Bytes::from(b)
        }
        Format::Anthropic => {
            let mut b =
                anthropic_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})).to_vec();
            b.extend_from_slice(&anthropic_event(
                "message_delta",
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": chunks}}),
            ));
            b.extend_from_slice(&anthropic_event("message_stop", &json!({"type": "message_stop"})));
            Bytes::from(b)
        }
    };
    let _ = tx.send(tail).await;
}
