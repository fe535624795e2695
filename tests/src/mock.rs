//! A mock upstream provider. GET requests are key checks and model listings: the key in the
//! provider's header (Bearer, `x-api-key`, `x-goog-api-key`), 200 for a key it accepts, 401 for
//! any other. POST requests (chat, embeddings) answer with the scripted reply: JSON, or an SSE
//! stream written in random pieces (lines split mid-way) with real delays between them, or no
//! answer at all. It records what it received, and notices when a client drops a stream before
//! its end. A reply can quote the key it was sent (`PRESENTED_KEY`), as some providers' errors do.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use rand::Rng;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

/// Written anywhere in a `Json` body or `Sse` text, stands for the key the request presented
/// (Bearer, `x-api-key` or `x-goog-api-key`; empty when none): a provider quoting the key back.
pub const PRESENTED_KEY: &str = "{{presented-key}}";

/// What the mock answers to the next POST requests.
#[derive(Debug, Clone)]
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// Exact bytes (binary or not), written in random pieces `delay` apart.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        max_piece: usize,
        delay: Duration,
    },
    /// SSE text, written in random pieces of at most `max_piece` bytes, `delay` apart.
    Sse {
        headers: Vec<(String, String)>,
        text: String,
        max_piece: usize,
        delay: Duration,
    },
    /// The request is read and never answered: no status line, no headers, the connection open
    /// until the client gives up.
    Hang,
}

/// How a stream the mock sent ended.
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd {
    pub at: Instant,
    /// The whole script was written.
    pub completed: bool,
}

#[derive(Default)]
struct State {
    accepted: Mutex<HashSet<String>>,
    requests: Mutex<Vec<Recorded>>,
    fail_with: Mutex<Option<u16>>,
    reply: Mutex<Option<Reply>>,
    stream_reply: Mutex<Option<Reply>>,
    every_request: Mutex<Option<Reply>>,
    models: Mutex<Option<Value>>,
    stream_ends: Mutex<Vec<StreamEnd>>,
}

pub struct MockProvider {
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

fn presented_key(req: &HttpRequest) -> Option<String> {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    h("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .or_else(|| h("x-api-key"))
        .or_else(|| h("x-goog-api-key"))
}

/// Notes when the response stream is dropped, and whether it had finished.
struct EndGuard {
    state: Arc<State>,
    completed: bool,
}

impl EndGuard {
    /// The whole script was written; recorded as the guard drops.
    fn complete(mut self) {
        self.completed = true;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Ok(mut ends) = self.state.stream_ends.lock() {
            ends.push(StreamEnd { at: Instant::now(), completed: self.completed });
        }
    }
}

fn split_randomly(bytes: &[u8], max_piece: usize) -> Vec<Bytes> {
    let mut rng = rand::thread_rng();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let n = rng.gen_range(1..=max_piece.max(1)).min(bytes.len() - i);
        out.push(Bytes::copy_from_slice(&bytes[i..i + n]));
        i += n;
    }
    out
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    state.requests.lock().expect("lock").push(Recorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    if let Some(code) = *state.fail_with.lock().expect("lock") {
        let status = actix_web::http::StatusCode::from_u16(code).expect("status");
        return HttpResponse::build(status)
            .json(serde_json::json!({"error": {"message": "mock failure", "type": "server_error"}}));
    }
    let presented = presented_key(&req);
    let every = state.every_request.lock().expect("lock").clone();
    if let Some(reply) = every {
        return respond(reply, presented.as_deref().unwrap_or(""), state.into_inner()).await;
    }
    let accepted = presented.as_ref().is_some_and(|k| state.accepted.lock().expect("lock").contains(k));
    if !accepted {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}));
    }
    if req.method() == actix_web::http::Method::GET {
        let models = state.models.lock().expect("lock").clone();
        return HttpResponse::Ok().json(models.unwrap_or_else(
            || serde_json::json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}),
        ));
    }
    // Gemini asks for a stream by its path, the others by `stream` in the body.
    let wants_stream = serde_json::from_slice::<Value>(&body).is_ok_and(|b| b["stream"] == true)
        || req.path().contains(":streamGenerateContent");
    let stream_reply = if wants_stream { state.stream_reply.lock().expect("lock").clone() } else { None };
    let reply = stream_reply.or_else(|| state.reply.lock().expect("lock").clone());
    match reply {
        None => {
            HttpResponse::InternalServerError().json(serde_json::json!({"error": {"message": "no scripted reply"}}))
        }
        Some(reply) => respond(reply, presented.as_deref().unwrap_or(""), state.into_inner()).await,
    }
}

async fn respond(reply: Reply, presented: &str, state: Arc<State>) -> HttpResponse {
    let quote = |text: &str| text.replace(PRESENTED_KEY, presented);
    match reply {
        Reply::Json { status, headers, body } => {
            let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                res.content_type("application/json");
            }
            for (k, v) in headers {
                res.insert_header((k, v));
            }
            res.body(quote(&body.to_string()))
        }
        Reply::Raw { status, headers, body, max_piece, delay } => {
            let stream = paced(split_randomly(&body, max_piece), delay, state);
            let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
            for (k, v) in headers {
                res.insert_header((k, v));
            }
            res.streaming(stream)
        }
        Reply::Sse { headers, text, max_piece, delay } => {
            let stream = paced(split_randomly(quote(&text).as_bytes(), max_piece), delay, state);
            let mut res = HttpResponse::Ok();
            res.content_type("text/event-stream");
            for (k, v) in headers {
                res.insert_header((k, v));
            }
            res.streaming(stream)
        }
        Reply::Hang => {
            // Dropped, with the connection, when the client gives up.
            futures::future::pending::<HttpResponse>().await
        }
    }
}

/// Writes `pieces` with `delay` between them, noting how the stream ended.
fn paced(
    pieces: Vec<Bytes>,
    delay: Duration,
    state: Arc<State>,
) -> impl futures::Stream<Item = Result<Bytes, actix_web::Error>> {
    let guard = EndGuard { state, completed: false };
    futures::stream::unfold((pieces.into_iter(), guard, true), move |(mut it, guard, first)| async move {
        if !first {
            tokio::time::sleep(delay).await;
        }
        match it.next() {
            Some(piece) => Some((Ok::<_, actix_web::Error>(piece), (it, guard, false))),
            None => {
                guard.complete();
                None
            }
        }
    })
}

impl MockProvider {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(handle))
        })
        .workers(1)
        // Real providers keep idle connections open far longer than a test's pauses; actix's
        // 5 s default would close a pooled connection just as Relay reuses it (a 502 race).
        .keep_alive(Duration::from_secs(300))
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}"), state, handle }
    }

    /// Makes the mock accept `key` from now on.
    pub fn accept(&self, key: &str) {
        self.state.accepted.lock().expect("lock").insert(key.to_owned());
    }

    /// Answers every request with `status` (None: back to normal).
    pub fn fail_with(&self, status: Option<u16>) {
        *self.state.fail_with.lock().expect("lock") = status;
    }

    /// What POST requests get from now on.
    pub fn reply(&self, reply: Reply) {
        *self.state.reply.lock().expect("lock") = Some(reply);
    }

    /// What POST requests whose JSON body has `"stream": true` get from now on (instead of
    /// `reply`), so one end user can call with and without streaming in turn.
    pub fn reply_to_streams(&self, reply: Reply) {
        *self.state.stream_reply.lock().expect("lock") = Some(reply);
    }

    /// Every request from now on, GET or POST, whatever key it presents, gets `reply`
    /// (None: back to normal). For providers that fail everything a stored key does.
    pub fn answer_every_request(&self, reply: Option<Reply>) {
        *self.state.every_request.lock().expect("lock") = reply;
    }

    /// What GET model listings return from now on.
    pub fn models(&self, body: Value) {
        *self.state.models.lock().expect("lock") = Some(body);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The last POST request received.
    pub fn last_post(&self) -> Recorded {
        self.requests().into_iter().rev().find(|r| r.method == "POST").expect("a POST reached the mock")
    }

    pub fn stream_ends(&self) -> Vec<StreamEnd> {
        self.state.stream_ends.lock().expect("lock").clone()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
