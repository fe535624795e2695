//! A chat stream from the provider to the client: SSE events parsed as they arrive, passed
//! through the dialect's stream translator, errors masked, keep-alives during silences.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;

use crate::metrics::{Metrics, StreamGauge};
use crate::providers::unified::{StreamItem, StreamTranslator};
use crate::providers::ProviderId;
use crate::sse::{SseEvent, SseParser};
use crate::upstream::{Masker, Next, Sent, Upstream, UsageRecorder, Watched, TICK};

/// How long Relay stays silent towards a streaming client at most (give or take a tick). A
/// comment line (ignored by SSE clients) is written when nothing else was: it keeps proxies
/// from timing out during long silences (reasoning) and, because a closed socket is only noticed
/// on a write, lets Relay see a departed client, and cancel the upstream, within about half a
/// second.
const HEARTBEAT: Duration = TICK;

/// How the client's stream writes errors and its end: OpenAI's `data: {"error": …}` and
/// `data: [DONE]`, Anthropic's `event: error` (the translator writes `message_stop` itself), or
/// the Responses API's named events (`error`, `response.failed`: the translator's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    OpenAi,
    Anthropic,
    Responses,
}

/// The state of one stream from upstream to client.
pub struct Flow {
    upstream: Watched,
    parser: SseParser,
    translator: Box<dyn StreamTranslator>,
    pending: VecDeque<Bytes>,
    done: bool,
    provider: ProviderId,
    recorder: UsageRecorder,
    mask: Masker,
    idle: Duration,
    last_sent: Instant,
    framing: Framing,
    _open: StreamGauge,
}

impl Flow {
    pub fn new(
        upstream: Watched,
        translator: Box<dyn StreamTranslator>,
        provider: ProviderId,
        recorder: UsageRecorder,
        mask: Masker,
        metrics: &Metrics,
        idle: Duration,
    ) -> Self {
        Self {
            upstream,
            parser: SseParser::new(),
            translator,
            pending: VecDeque::new(),
            done: false,
            provider,
            recorder,
            mask,
            idle,
            last_sent: Instant::now(),
            framing: Framing::OpenAi,
            _open: StreamGauge::open(&metrics.active_streams),
        }
    }

    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
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
        match self.upstream.next().await {
            Next::Data(bytes) => {
                for event in self.parser.push(&bytes) {
                    self.on_event(&event);
                    if self.done {
                        return;
                    }
                }
            }
            // Just under a beat, so a tick that comes a moment early still sends one.
            Next::Tick if self.last_sent.elapsed() >= HEARTBEAT - HEARTBEAT / 5 => {
                self.pending.push_back(Bytes::from_static(b": keep-alive\n\n"));
            }
            Next::Tick => {}
            Next::End => {
                if let Some(event) = self.parser.finish() {
                    self.on_event(&event);
                }
                if !self.done {
                    let items = self.translator.finish();
                    self.recorder.usage(self.translator.usage());
                    self.send(items);
                    self.done = true;
                }
            }
            Next::Broken(e) => {
                tracing::warn!(provider = %self.provider, error = %e.without_url(), "upstream stream broke");
                self.fail(
                    format!("The connection to {} broke during the stream.", self.provider),
                    "upstream_disconnected",
                );
            }
            Next::Idle => {
                tracing::warn!(provider = %self.provider, idle_secs = self.idle.as_secs(), "upstream stream went idle");
                self.fail(
                    format!("{} sent nothing for {} s; the stream was closed.", self.provider, self.idle.as_secs()),
                    "upstream_timeout",
                );
            }
        }
    }

    fn on_event(&mut self, event: &SseEvent) {
        let items = self.translator.on_event(event);
        self.recorder.usage(self.translator.usage());
        self.send(items);
    }

    fn send(&mut self, items: Vec<StreamItem>) {
        for item in items {
            match item {
                StreamItem::Chunk(v) => {
                    self.recorder.first_token();
                    self.pending.push_back(sse_data(&v));
                }
                StreamItem::Raw(frame) => {
                    self.recorder.first_token();
                    self.pending.push_back(frame);
                }
                StreamItem::Error(mut v) => {
                    self.mask.error_value(&mut v);
                    let v = self.translator.error_event(v);
                    self.pending.push_back(self.error_frame(&v));
                    self.done = true;
                    return;
                }
                StreamItem::Done => {
                    if self.framing == Framing::OpenAi {
                        self.pending.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                    }
                    self.done = true;
                    return;
                }
            }
        }
    }

    fn fail(&mut self, message: String, code: &str) {
        let error = serde_json::json!({ "error": { "message": message, "type": "upstream_error", "param": null, "code": code } });
        let error = match self.framing {
            Framing::OpenAi => error,
            Framing::Anthropic => crate::providers::messages::anthropic_error(&error, None).unwrap_or(error),
            Framing::Responses => self.translator.error_event(error),
        };
        self.pending.push_back(self.error_frame(&error));
        self.done = true;
    }

    fn error_frame(&self, v: &Value) -> Bytes {
        match self.framing {
            Framing::OpenAi => sse_data(v),
            Framing::Anthropic => Bytes::from(format!("event: error\ndata: {v}\n\n")),
            Framing::Responses => crate::sse::named_frame(v["type"].as_str().unwrap_or("error"), &v.to_string()),
        }
    }
}

/// The client's answer for a stream: `translator` over what the provider sends, framed as
/// `framing` says; `label` names the stream in the overhead metric.
pub(super) fn streamed(
    upstream: &Upstream,
    sent: Sent,
    translator: Box<dyn StreamTranslator>,
    framing: Framing,
    label: &str,
) -> actix_web::HttpResponse {
    let mut out = sent.answer();
    let (provider, ttfb) = (sent.provider, sent.ttfb);
    let (watched, recorder, mask) = sent.watch();
    observe(upstream, label, recorder.started().elapsed().saturating_sub(ttfb));
    let idle = upstream.timeouts().idle;
    let flow = Flow::new(watched, translator, provider, recorder, mask, upstream.metrics(), idle).framing(framing);
    out.content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(flow.into_stream())
}

/// Relay's own time on a call (`label`: the route, `_stream` for streams).
pub(super) fn observe(upstream: &Upstream, label: &str, overhead: Duration) {
    upstream.metrics().relay_overhead.with_label_values(&[label]).observe(overhead.as_secs_f64());
}

fn sse_data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}
