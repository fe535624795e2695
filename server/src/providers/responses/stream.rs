//! Streams on `/v1/responses`: a dialect's `chat.completion.chunk`s -> the Responses event sequence
//! ([`ResponsesStream`]), and OpenAI's own stream relayed as it came ([`Passthrough`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{call_item, message_item, reasoning_item, status, text_part, ResponsesContext};
use crate::providers::unified::{SseEvent, StreamItem, StreamTranslator, Usage};
use crate::sse::named_frame;

/// An error event's `code`: OpenAI's codes for a failed response.
fn failure_code(error: &Value) -> &'static str {
    let e = &error["error"];
    let says = |k: &str, what: &str| e[k].as_str().is_some_and(|s| s.contains(what));
    if says("type", "rate_limit") || says("code", "rate_limit") || e["code"] == 429 {
        "rate_limit_exceeded"
    } else {
        "server_error"
    }
}

fn error_message(error: &Value) -> String {
    let e = &error["error"];
    e["message"].as_str().or_else(|| e.as_str()).unwrap_or("The provider reported an error.").to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Message,
    Call { call_id: String, name: String },
}

/// An output item as written so far.
#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    id: String,
    /// Text, summary text or arguments.
    text: String,
    done: bool,
}

impl Item {
    fn json(&self) -> Value {
        let status = if self.done { "completed" } else { "in_progress" };
        match &self.kind {
            Kind::Reasoning => reasoning_item(self.id.clone(), &self.text),
            Kind::Message => message_item(self.id.clone(), status, vec![text_part(&self.text)]),
            Kind::Call { call_id, name } => call_item(self.id.clone(), status, call_id, name, &self.text),
        }
    }

    /// As `response.output_item.added` shows it: its parts come in their own events.
    fn added(&self) -> Value {
        let mut v = self.json();
        match self.kind {
            Kind::Reasoning => v["summary"] = json!([]),
            Kind::Message => v["content"] = json!([]),
            Kind::Call { .. } => {}
        }
        v
    }
}

/// A dialect's chat stream -> `response.created`, `response.in_progress`, the output items'
/// events, `response.completed` (or `response.incomplete`, or `response.failed` on an error).
pub struct ResponsesStream {
    inner: Box<dyn StreamTranslator>,
    ctx: ResponsesContext,
    seq: u64,
    started: bool,
    done: bool,
    items: Vec<Item>,
    /// The reasoning or message item being written (closed when another item starts).
    open: Option<usize>,
    /// Chat tool call index -> output index.
    tools: BTreeMap<u64, usize>,
    finish_reason: Option<String>,
}

impl ResponsesStream {
    pub fn new(inner: Box<dyn StreamTranslator>, ctx: ResponsesContext) -> Self {
        Self {
            inner,
            ctx,
            seq: 0,
            started: false,
            done: false,
            items: Vec::new(),
            open: None,
            tools: BTreeMap::new(),
            finish_reason: None,
        }
    }

    fn numbered(&mut self, mut v: Value) -> Value {
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        v
    }

    fn emit(&mut self, out: &mut Vec<StreamItem>, v: Value) {
        let v = self.numbered(v);
        out.push(StreamItem::Raw(named_frame(v["type"].as_str().unwrap_or("message"), &v.to_string())));
    }

    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.ctx.response("in_progress", Vec::new(), None);
        self.emit(out, json!({ "type": "response.created", "response": response }));
        self.emit(out, json!({ "type": "response.in_progress", "response": response }));
    }

    fn close(&mut self, out: &mut Vec<StreamItem>, index: usize) {
        let Some(item) = self.items.get_mut(index).filter(|i| !i.done) else { return };
        item.done = true;
        let item = item.clone();
        let at = |v: Value| {
            let mut v = v;
            v["item_id"] = json!(item.id);
            v["output_index"] = json!(index);
            v
        };
        match &item.kind {
            Kind::Reasoning => {
                let part = json!({ "type": "summary_text", "text": item.text });
                self.emit(out, at(json!({ "type": "response.reasoning_summary_text.done", "summary_index": 0, "text": item.text })));
                self.emit(
                    out,
                    at(json!({ "type": "response.reasoning_summary_part.done", "summary_index": 0, "part": part })),
                );
            }
            Kind::Message => {
                let text = json!({ "type": "response.output_text.done", "content_index": 0, "text": item.text, "logprobs": [] });
                self.emit(out, at(text));
                self.emit(out, at(json!({ "type": "response.content_part.done", "content_index": 0, "part": text_part(&item.text) })));
            }
            Kind::Call { name, .. } => {
                let done =
                    json!({ "type": "response.function_call_arguments.done", "arguments": item.text, "name": name });
                self.emit(out, at(done));
            }
        }
        self.emit(out, json!({ "type": "response.output_item.done", "output_index": index, "item": item.json() }));
    }

    fn close_all(&mut self, out: &mut Vec<StreamItem>) {
        self.open = None;
        for index in 0..self.items.len() {
            self.close(out, index);
        }
    }

    /// Starts an output item (closing the others); returns its index.
    fn add(&mut self, out: &mut Vec<StreamItem>, kind: Kind, prefix: &str) -> usize {
        self.close_all(out);
        let index = self.items.len();
        let item = Item { kind, id: self.ctx.item_id(prefix, index), text: String::new(), done: false };
        let added = item.added();
        self.items.push(item);
        self.emit(out, json!({ "type": "response.output_item.added", "output_index": index, "item": added }));
        let id = self.items[index].id.clone();
        let at = json!({ "item_id": id, "output_index": index });
        match self.items[index].kind {
            Kind::Reasoning => {
                let mut e = json!({ "type": "response.reasoning_summary_part.added", "summary_index": 0, "part": { "type": "summary_text", "text": "" } });
                e["item_id"] = at["item_id"].clone();
                e["output_index"] = at["output_index"].clone();
                self.emit(out, e);
            }
            Kind::Message => {
                let mut e = json!({ "type": "response.content_part.added", "content_index": 0, "part": text_part("") });
                e["item_id"] = at["item_id"].clone();
                e["output_index"] = at["output_index"].clone();
                self.emit(out, e);
            }
            Kind::Call { .. } => {}
        }
        index
    }

    /// Text or reasoning: appended to the open item of that kind, or to a new one.
    fn write(&mut self, out: &mut Vec<StreamItem>, kind: Kind, delta: &str) {
        let index = match self.open.filter(|i| self.items[*i].kind == kind) {
            Some(i) => i,
            None => {
                let prefix = if kind == Kind::Message { "msg" } else { "rs" };
                let i = self.add(out, kind.clone(), prefix);
                self.open = Some(i);
                i
            }
        };
        self.items[index].text.push_str(delta);
        let id = self.items[index].id.clone();
        let event = if kind == Kind::Message {
            json!({ "type": "response.output_text.delta", "item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": [] })
        } else {
            json!({ "type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": index, "summary_index": 0, "delta": delta })
        };
        self.emit(out, event);
    }

    fn tool_call(&mut self, out: &mut Vec<StreamItem>, tc: &Value) {
        let Some(chat_index) = tc["index"].as_u64() else { return };
        let index = match self.tools.get(&chat_index) {
            Some(i) => *i,
            None => {
                let kind = Kind::Call {
                    call_id: tc["id"].as_str().unwrap_or_default().to_owned(),
                    name: tc["function"]["name"].as_str().unwrap_or_default().to_owned(),
                };
                let i = self.add(out, kind, "fc");
                self.tools.insert(chat_index, i);
                i
            }
        };
        if let Some(args) = tc["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
            self.items[index].text.push_str(args);
            let id = self.items[index].id.clone();
            self.emit(out, json!({ "type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": args }));
        }
    }

    fn chunk(&mut self, out: &mut Vec<StreamItem>, v: &Value) {
        self.start(out);
        let Some(choice) = v.pointer("/choices/0") else { return };
        let delta = &choice["delta"];
        if let Some(r) = delta["reasoning_content"].as_str().filter(|r| !r.is_empty() && self.ctx.summaries) {
            self.write(out, Kind::Reasoning, r);
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.write(out, Kind::Message, t);
        }
        for tc in delta["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
            self.tool_call(out, tc);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
    }

    fn output(&self) -> Vec<Value> {
        self.items.iter().map(Item::json).collect()
    }

    /// Closes the response: items, then `response.completed` (or `.incomplete`) with usage.
    fn finish_response(&mut self, out: &mut Vec<StreamItem>) {
        self.start(out);
        self.close_all(out);
        let usage = self.inner.usage().unwrap_or_default();
        let (status, incomplete) = status(self.finish_reason.as_deref());
        let mut response = self.ctx.response(status, self.output(), Some(&usage));
        response["incomplete_details"] = incomplete.unwrap_or(Value::Null);
        self.emit(out, json!({ "type": format!("response.{status}"), "response": response }));
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
                    self.start(&mut out);
                    out.push(StreamItem::Error(v));
                    self.done = true;
                }
                StreamItem::Done => self.finish_response(&mut out),
            }
        }
        out
    }
}

impl StreamTranslator for ResponsesStream {
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
            self.finish_response(&mut out);
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }

    /// `response.failed`, with the output written so far and the error as OpenAI reports one.
    fn error_event(&mut self, error: Value) -> Value {
        self.done = true;
        let mut response = self.ctx.response("failed", self.output(), self.inner.usage().as_ref());
        response["error"] = json!({ "code": failure_code(&error), "message": error_message(&error) });
        self.numbered(json!({ "type": "response.failed", "response": response }))
    }
}

/// Usage from a Responses `usage` object.
pub fn usage_from_response(usage: &Value) -> Option<Usage> {
    let n = |p: &str| usage.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    usage.is_object().then(|| Usage {
        prompt_tokens: n("/input_tokens"),
        completion_tokens: n("/output_tokens"),
        cached_tokens: n("/input_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
        reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
        cost_nanos: None,
    })
}

/// OpenAI's own stream, event by event as it came; read on the way for usage only. Its `error`
/// and `response.failed` events become error items (so they are masked like every error).
#[derive(Default)]
pub struct Passthrough {
    usage: Option<Usage>,
    last_seq: Option<u64>,
}

impl Passthrough {
    pub fn new() -> Self {
        Self::default()
    }
}

impl StreamTranslator for Passthrough {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        let data: Option<Value> = serde_json::from_str(&event.data).ok();
        let kind = data.as_ref().and_then(|d| d["type"].as_str()).map(str::to_owned);
        let name = event.event.clone().or(kind).unwrap_or_else(|| "message".to_owned());
        if let Some(d) = &data {
            if let Some(seq) = d["sequence_number"].as_u64() {
                self.last_seq = Some(seq);
            }
            if let Some(u) = d.pointer("/response/usage").and_then(usage_from_response) {
                self.usage = Some(u);
            }
        }
        match data {
            Some(v) if name == "error" || name == "response.failed" => vec![StreamItem::Error(v)],
            _ => vec![StreamItem::Raw(named_frame(&name, &event.data))],
        }
    }

    /// What OpenAI sent is all there is.
    fn finish(&mut self) -> Vec<StreamItem> {
        Vec::new()
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// OpenAI's own error events pass as they came; Relay's become an `error` event.
    fn error_event(&mut self, error: Value) -> Value {
        if error.get("type").is_some() {
            return error;
        }
        let e = &error["error"];
        let seq = self.last_seq.map_or(0, |s| s + 1);
        json!({ "type": "error", "code": e["code"], "message": error_message(&error), "param": e["param"], "sequence_number": seq })
    }
}
