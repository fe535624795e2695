//! The HTTP/1.1 client the load generator drives: one keep-alive connection per worker, requests
//! built from a fixed target, and every answer checked (status 200, the mock's answer intact,
//! streams complete) before it counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::mock::{now_ns, ANSWER, TS_PREFIX};

/// What a good answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An OpenAI chat completion whose message is the mock's answer.
    OpenAiChat,
    /// An Anthropic message whose text is the mock's answer.
    AnthropicMessage,
    /// An OpenAI SSE stream: `chunks` timestamped content chunks, then `[DONE]`.
    OpenAiStream { chunks: u64 },
    /// An Anthropic SSE stream: `chunks` timestamped text deltas, then `message_stop`.
    AnthropicStream { chunks: u64 },
}

/// One request, sent the same way again and again.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub expect: Expect,
}

impl Target {
    pub fn post_json(addr: SocketAddr, path: &str, body: &Value, expect: Expect) -> Self {
        Self {
            addr,
            method: Method::POST,
            path: path.to_owned(),
            headers: vec![(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
            expect,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> anyhow::Result<Self> {
        self.headers.push((HeaderName::from_static(name), HeaderValue::from_str(value)?));
        Ok(self)
    }

    /// The same request, expecting a stream of `chunks` chunks.
    pub fn with_chunks(mut self, n: u64) -> Self {
        self.expect = match self.expect {
            Expect::OpenAiStream { .. } => Expect::OpenAiStream { chunks: n },
            Expect::AnthropicStream { .. } => Expect::AnthropicStream { chunks: n },
            other => other,
        };
        self
    }

    fn request(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder().method(self.method.clone()).uri(self.path.as_str());
        let headers = builder.headers_mut().context("request builder")?;
        headers.insert(hyper::header::HOST, HeaderValue::from_str(&self.addr.to_string())?);
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        Ok(builder.body(Full::new(self.body.clone()))?)
    }
}

/// Why a request did not count as a success.
#[derive(Debug, Clone)]
pub enum Failure {
    Connect(String),
    Transport(String),
    /// The status, the error code of an OpenAI-style error body (`error.code`), a snippet.
    Status(u16, Option<String>, String),
    Malformed(String),
    Timeout,
}

impl Failure {
    /// A short label errors are counted under.
    pub fn kind(&self) -> String {
        match self {
            Failure::Connect(_) => "connect".into(),
            Failure::Transport(_) => "transport".into(),
            Failure::Status(s, Some(code), _) => format!("http_{s} {code}"),
            Failure::Status(s, None, _) => format!("http_{s}"),
            Failure::Malformed(_) => "malformed".into(),
            Failure::Timeout => "timeout".into(),
        }
    }

    /// A non-success answer, its error code read from the whole body.
    pub fn status(status: u16, body: &[u8]) -> Self {
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str).map(str::to_owned));
        let snippet: String = String::from_utf8_lossy(body).chars().take(300).collect();
        Failure::Status(status, code, snippet)
    }

    pub fn detail(&self) -> String {
        match self {
            Failure::Connect(d) | Failure::Transport(d) | Failure::Malformed(d) => d.clone(),
            Failure::Status(s, _, body) => format!("HTTP {s}: {body}"),
            Failure::Timeout => "no complete answer within the request timeout".into(),
        }
    }
}

/// A keep-alive connection that reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        if let Some(sender) = &mut self.sender {
            if sender.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            self.sender = Some(connect(self.addr).await.map_err(|e| Failure::Connect(format!("{e:#}")))?);
        }
        self.sender.as_mut().ok_or_else(|| Failure::Connect("no connection".into()))
    }

    /// Sends the request and returns the response head (body unread) once it is 200.
    pub async fn send(&mut self, target: &Target) -> Result<Response<Incoming>, Failure> {
        let req = target.request().map_err(|e| Failure::Malformed(format!("request: {e:#}")))?;
        let sender = self.ready().await?;
        let res = match sender.send_request(req).await {
            Ok(res) => res,
            Err(e) => {
                self.sender = None;
                return Err(Failure::Transport(e.to_string()));
            }
        };
        if res.status() != hyper::StatusCode::OK {
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(Failure::status(status, &body));
        }
        Ok(res)
    }

    /// A non-streaming request, answer read and checked.
    pub async fn call(&mut self, target: &Target) -> Result<(), Failure> {
        let res = self.send(target).await?;
        let body = match res.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(Failure::Transport(format!("body: {e}")));
            }
        };
        check_unary(target.expect, &body)
    }

    /// A streaming request: the time to the first body byte, and for every timestamped chunk
    /// how long it took from the mock's send to arrival here (ns).
    pub async fn stream(&mut self, target: &Target, chunk_ns: &mut Vec<u64>) -> Result<Duration, Failure> {
        let sent = Instant::now();
        let res = self.send(target).await?;
        let mut body = res.into_body();
        let mut reader = SseReader::new(target.expect);
        let mut ttfb = None;
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    self.sender = None;
                    return Err(Failure::Transport(format!("stream: {e}")));
                }
                Some(Ok(frame)) => {
                    let arrived = now_ns();
                    if let Ok(data) = frame.into_data() {
                        ttfb.get_or_insert_with(|| sent.elapsed());
                        reader.push(&data, arrived, chunk_ns)?;
                    }
                }
            }
        }
        reader.finish()?;
        ttfb.ok_or_else(|| Failure::Malformed("empty stream".into()))
    }

    /// Opens a stream and returns once its first timestamped chunk arrived, keeping the
    /// connection and the unread rest of the body (an open stream, for the memory measurement).
    pub async fn open_stream(mut self, target: &Target) -> Result<HeldStream, Failure> {
        let res = self.send(target).await?;
        let mut body = res.into_body();
        let mut reader = SseReader::new(target.expect);
        let mut scratch = Vec::new();
        while scratch.is_empty() {
            match body.frame().await {
                None => return Err(Failure::Malformed("the stream ended before its first chunk".into())),
                Some(Err(e)) => return Err(Failure::Transport(format!("stream: {e}"))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        reader.push(&data, now_ns(), &mut scratch)?;
                    }
                }
            }
        }
        Ok(HeldStream { _body: body, _conn: self })
    }
}

/// A stream kept open: dropping it closes the connection.
pub struct HeldStream {
    _body: Incoming,
    _conn: Conn,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn check_unary(expect: Expect, body: &[u8]) -> Result<(), Failure> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Failure::Malformed(format!("not JSON: {e}")))?;
    let text = match expect {
        Expect::OpenAiChat => v.pointer("/choices/0/message/content"),
        Expect::AnthropicMessage => v.pointer("/content/0/text"),
        _ => return Err(Failure::Malformed("a stream was expected".into())),
    };
    match text.and_then(Value::as_str) {
        Some(t) if t == ANSWER => Ok(()),
        _ => Err(Failure::Malformed(format!("unexpected answer: {}", truncate(&v.to_string())))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Reads SSE events as they arrive (a frame may hold several events or part of one).
struct SseReader {
    expect: Expect,
    buf: BytesMut,
    seen: u64,
    done: bool,
}

impl SseReader {
    fn new(expect: Expect) -> Self {
        Self { expect, buf: BytesMut::new(), seen: 0, done: false }
    }

    fn push(&mut self, data: &[u8], arrived_ns: u64, chunk_ns: &mut Vec<u64>) -> Result<(), Failure> {
        self.buf.extend_from_slice(data);
        while let Some(end) = find(&self.buf, b"\n\n") {
            let event = self.buf.split_to(end + 2);
            let text = std::str::from_utf8(&event).map_err(|_| Failure::Malformed("stream is not UTF-8".into()))?;
            for line in text.lines() {
                // Comments (`: keep-alive`) and `event:` lines carry nothing to check.
                let Some(data) = line.strip_prefix("data:") else { continue };
                self.event(data.trim_start(), arrived_ns, chunk_ns)?;
            }
        }
        Ok(())
    }

    fn event(&mut self, data: &str, arrived_ns: u64, chunk_ns: &mut Vec<u64>) -> Result<(), Failure> {
        if self.done {
            return Err(Failure::Malformed(format!("data after the end of the stream: {}", truncate(data))));
        }
        if data == "[DONE]" {
            if !matches!(self.expect, Expect::OpenAiStream { .. }) {
                return Err(Failure::Malformed("[DONE] in an Anthropic stream".into()));
            }
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| Failure::Malformed(format!("event is not JSON: {e}")))?;
        if v.get("error").is_some() || v.get("type").and_then(Value::as_str) == Some("error") {
            return Err(Failure::Malformed(format!("error event: {}", truncate(data))));
        }
        let text = match self.expect {
            Expect::OpenAiStream { .. } => v.pointer("/choices/0/delta/content"),
            Expect::AnthropicStream { .. } => {
                if v.get("type").and_then(Value::as_str) == Some("message_stop") {
                    self.done = true;
                }
                v.pointer("/delta/text")
            }
            _ => None,
        };
        if let Some(ts) = text.and_then(Value::as_str).and_then(|t| t.strip_prefix(TS_PREFIX)) {
            let sent: u64 = ts
                .trim_end_matches(';')
                .parse()
                .map_err(|_| Failure::Malformed(format!("bad timestamp in chunk: {}", truncate(data))))?;
            chunk_ns.push(arrived_ns.saturating_sub(sent));
            self.seen += 1;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Failure> {
        let want = match self.expect {
            Expect::OpenAiStream { chunks } | Expect::AnthropicStream { chunks } => chunks,
            _ => 0,
        };
        if !self.done {
            return Err(Failure::Malformed(format!("the stream ended without its final event ({} chunks)", self.seen)));
        }
        if self.seen != want {
            return Err(Failure::Malformed(format!("{} timestamped chunks, expected {want}", self.seen)));
        }
        if !self.buf.iter().all(u8::is_ascii_whitespace) {
            return Err(Failure::Malformed("an incomplete event at the end of the stream".into()));
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
