//! Gemini `streamGenerateContent?alt=sse` events -> `chat.completion.chunk`s: the
//! `StreamTranslator` of one stream.

use serde_json::{json, Value};

use super::error::upstream_error;
use super::response::{map_finish, tool_call_of, usage_from};
use crate::providers::unified::{
    chunk, finish, usage_chunk, ChatContext, SseEvent, StreamItem, StreamTranslator, UpstreamError, Usage,
};

/// Turns `streamGenerateContent?alt=sse` events (each a whole `GenerateContentResponse`) into
/// `chat.completion.chunk`s.
pub struct GeminiStream {
    ctx: ChatContext,
    started: bool,
    next_tool_index: usize,
    finish_sent: bool,
    done: bool,
    usage: Option<Usage>,
}

pub fn chat_stream(ctx: ChatContext) -> GeminiStream {
    GeminiStream { ctx, started: false, next_tool_index: 0, finish_sent: false, done: false, usage: None }
}

impl GeminiStream {
    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ "role": "assistant", "content": "" }), None)));
        }
    }

    fn finish_chunk(&mut self, reason: &str, out: &mut Vec<StreamItem>) {
        if !self.finish_sent {
            self.finish_sent = true;
            let reason = if self.next_tool_index > 0 { finish::TOOL_CALLS } else { reason };
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({}), Some(reason))));
        }
    }

    fn error(&mut self, error: Value) -> Vec<StreamItem> {
        self.done = true;
        vec![StreamItem::Error(error)]
    }
}

impl StreamTranslator for GeminiStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Vec::new();
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return self.error(
                UpstreamError {
                    message: "Gemini sent a stream event that is not JSON".into(),
                    kind: "api_error".into(),
                    code: Some("bad_upstream_response".into()),
                    param: None,
                }
                .to_json(),
            );
        };
        if let Some(err) = v.get("error") {
            let status = err.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
            return self.error(upstream_error(status, data.as_bytes()).to_json());
        }

        let mut out = Vec::new();
        self.start(&mut out);
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage_from(u));
        }
        let Some(candidate) = v.pointer("/candidates/0") else {
            if v.pointer("/promptFeedback/blockReason").is_some() {
                self.finish_chunk(finish::CONTENT_FILTER, &mut out);
            }
            return out;
        };
        let parts = candidate.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for part in parts {
            if let Some((id, name, args)) = tool_call_of(part) {
                let index = self.next_tool_index;
                self.next_tool_index += 1;
                let head = json!({ "tool_calls": [{ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } }] });
                out.push(StreamItem::Chunk(chunk(&self.ctx, head, None)));
                let tail = json!({ "tool_calls": [{ "index": index, "function": { "arguments": args } }] });
                out.push(StreamItem::Chunk(chunk(&self.ctx, tail, None)));
            } else if let Some(text) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let field = if part.get("thought").and_then(Value::as_bool).unwrap_or(false) {
                    "reasoning_content"
                } else {
                    "content"
                };
                out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ field: text }), None)));
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            self.finish_chunk(map_finish(reason), &mut out);
        }
        out
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut out = Vec::new();
        self.start(&mut out);
        self.finish_chunk(finish::STOP, &mut out);
        if self.ctx.include_usage {
            out.push(StreamItem::Chunk(usage_chunk(&self.ctx, &self.usage.unwrap_or_default())));
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}
