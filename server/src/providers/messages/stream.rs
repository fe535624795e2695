//! Streams on `/v1/messages`: a dialect's `chat.completion.chunk`s -> Anthropic's event sequence
//! ([`MessagesStream`]), and Anthropic's own stream relayed as it came ([`Passthrough`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::anthropic_error;
use super::response::{stop_reason, usage_json, MessagesContext};
use crate::providers::anthropic::{self, AnthropicStream};
use crate::providers::unified::{ChatContext, SseEvent, StreamItem, StreamTranslator, Usage};

/// One SSE frame: `event: <name>` and the data, line by line.
fn frame(name: &str, data: &str) -> StreamItem {
    StreamItem::Raw(crate::sse::named_frame(name, data))
}

fn event(v: &Value) -> StreamItem {
    frame(v["type"].as_str().unwrap_or("message"), &v.to_string())
}

/// The content block being written (text and thinking close when another block starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u64),
    Thinking(u64),
}

/// A dialect's chat stream -> `message_start`, `content_block_*`, `message_delta`, `message_stop`
/// (or an `error` event), with usage from the dialect's own reading of the provider's stream.
pub struct MessagesStream {
    inner: Box<dyn StreamTranslator>,
    ctx: MessagesContext,
    started: bool,
    done: bool,
    next_block: u64,
    open: Option<Open>,
    /// Chat tool call index -> (block index, still open).
    tools: BTreeMap<u64, (u64, bool)>,
    finish_reason: Option<String>,
}

impl MessagesStream {
    pub fn new(inner: Box<dyn StreamTranslator>, ctx: MessagesContext) -> Self {
        Self {
            inner,
            ctx,
            started: false,
            done: false,
            next_block: 0,
            open: None,
            tools: BTreeMap::new(),
            finish_reason: None,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = usage_json(&self.inner.usage().unwrap_or_default());
        usage["output_tokens"] = json!(0);
        out.push(event(&json!({
            "type": "message_start",
            "message": {
                "id": self.ctx.id, "type": "message", "role": "assistant", "model": self.ctx.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
            },
        })));
    }

    fn stop_block(out: &mut Vec<StreamItem>, index: u64) {
        out.push(event(&json!({ "type": "content_block_stop", "index": index })));
    }

    /// Closes every open block.
    fn close_all(&mut self, out: &mut Vec<StreamItem>) {
        if let Some(Open::Text(i) | Open::Thinking(i)) = self.open.take() {
            Self::stop_block(out, i);
        }
        for (block, open) in self.tools.values_mut() {
            if *open {
                *open = false;
                Self::stop_block(out, *block);
            }
        }
    }

    fn new_block(&mut self, out: &mut Vec<StreamItem>, block: Value) -> u64 {
        self.close_all(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(event(&json!({ "type": "content_block_start", "index": index, "content_block": block })));
        index
    }

    fn delta(out: &mut Vec<StreamItem>, index: u64, delta: Value) {
        out.push(event(&json!({ "type": "content_block_delta", "index": index, "delta": delta })));
    }

    fn text(&mut self, out: &mut Vec<StreamItem>, text: &str) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.new_block(out, json!({ "type": "text", "text": "" }));
                self.open = Some(Open::Text(i));
                i
            }
        };
        Self::delta(out, index, json!({ "type": "text_delta", "text": text }));
    }

    fn thinking(&mut self, out: &mut Vec<StreamItem>, text: &str) {
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                let i = self.new_block(out, json!({ "type": "thinking", "thinking": "", "signature": "" }));
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        Self::delta(out, index, json!({ "type": "thinking_delta", "thinking": text }));
    }

    fn tool_call(&mut self, out: &mut Vec<StreamItem>, tc: &Value) {
        let Some(chat_index) = tc["index"].as_u64() else { return };
        let block = match self.tools.get(&chat_index) {
            Some((block, _)) => *block,
            None => {
                let start = json!({
                    "type": "tool_use",
                    "id": tc["id"].as_str().unwrap_or_default(),
                    "name": tc["function"]["name"].as_str().unwrap_or_default(),
                    "input": {},
                });
                let block = self.new_block(out, start);
                self.tools.insert(chat_index, (block, true));
                block
            }
        };
        if let Some(args) = tc["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
            Self::delta(out, block, json!({ "type": "input_json_delta", "partial_json": args }));
        }
    }

    fn chunk(&mut self, out: &mut Vec<StreamItem>, v: &Value) {
        self.start(out);
        let Some(choice) = v.pointer("/choices/0") else { return };
        let delta = &choice["delta"];
        if let Some(r) = delta["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            self.thinking(out, r);
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(out, t);
        }
        for tc in delta["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
            self.tool_call(out, tc);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
    }

    /// Closes the message: blocks, stop reason and usage, `message_stop`, end of stream.
    fn finish_message(&mut self, out: &mut Vec<StreamItem>) {
        self.start(out);
        self.close_all(out);
        let usage = usage_json(&self.inner.usage().unwrap_or_default());
        out.push(event(&json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null },
            "usage": usage,
        })));
        out.push(event(&json!({ "type": "message_stop" })));
        out.push(StreamItem::Done);
        self.done = true;
    }

    fn translate(&mut self, items: Vec<StreamItem>, raw: Option<&SseEvent>) -> Vec<StreamItem> {
        let mut out = Vec::new();
        for item in items {
            if self.done {
                break;
            }
            match item {
                StreamItem::Chunk(v) => self.chunk(&mut out, &v),
                // An OpenAI-format provider's chunk, as it came: the event's own data.
                StreamItem::Raw(_) => {
                    if let Some(v) = raw.and_then(|e| serde_json::from_str::<Value>(&e.data).ok()) {
                        self.chunk(&mut out, &v);
                    }
                }
                StreamItem::Error(v) => {
                    let fallback = || json!({ "type": "error", "error": { "type": "api_error", "message": "The provider reported an error." } });
                    out.push(StreamItem::Error(anthropic_error(&v, None).unwrap_or_else(fallback)));
                    self.done = true;
                }
                StreamItem::Done => self.finish_message(&mut out),
            }
        }
        out
    }
}

impl StreamTranslator for MessagesStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let items = self.inner.on_event(event);
        self.translate(items, Some(event))
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let items = self.inner.finish();
        let mut out = self.translate(items, None);
        if !self.done {
            self.finish_message(&mut out);
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

/// Anthropic's own stream, event by event as it came; read on the way for usage only. Its
/// `error` events become error items (so they are masked like every error).
pub struct Passthrough {
    reader: AnthropicStream,
}

impl Passthrough {
    pub fn new(model: &str) -> Self {
        let ctx = ChatContext { id: String::new(), model: model.to_owned(), created: 0, include_usage: false };
        Self { reader: anthropic::chat_stream(ctx) }
    }
}

impl StreamTranslator for Passthrough {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        let _ = self.reader.on_event(event);
        let data: Option<Value> = serde_json::from_str(&event.data).ok();
        let kind = data.as_ref().and_then(|d| d["type"].as_str()).map(str::to_owned);
        let name = event.event.clone().or(kind).unwrap_or_else(|| "message".to_owned());
        match data {
            Some(v) if name == "error" || v["type"] == "error" => vec![StreamItem::Error(v)],
            _ => vec![frame(&name, &event.data)],
        }
    }

    /// What Anthropic sent is all there is.
    fn finish(&mut self) -> Vec<StreamItem> {
        Vec::new()
    }

    fn usage(&self) -> Option<Usage> {
        self.reader.usage()
    }
}
