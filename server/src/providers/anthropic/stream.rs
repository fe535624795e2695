//! Anthropic stream events -> `chat.completion.chunk`s: the `StreamTranslator` of one stream, which
//! tracks open content blocks, tool call indexes, the stop reason and usage.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::error_from;
use super::response::{finish_reason, RawUsage};
use super::tools::RESPONSE_TOOL;
use crate::providers::unified::{
    chunk, usage_chunk, ChatContext, SseEvent, StreamItem, StreamTranslator, UpstreamError, Usage,
};

/// What an open Anthropic content block is, by Anthropic's block index.
#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    /// A client tool call, with its OpenAI index (order of appearance) and whether any argument
    /// text went out yet.
    Tool {
        index: usize,
        sent_args: bool,
    },
    /// The response-format tool: its input is the message content.
    Answer {
        sent: bool,
    },
    Ignored,
}

/// Anthropic stream events -> `chat.completion.chunk`s.
#[derive(Debug)]
pub struct AnthropicStream {
    ctx: ChatContext,
    started: bool,
    done: bool,
    blocks: BTreeMap<u64, Block>,
    tool_calls: usize,
    answered: bool,
    stop_reason: Option<String>,
    usage: Option<RawUsage>,
}

/// A translator for one stream; `ctx` gives every chunk its id, model and creation time.
pub fn chat_stream(ctx: ChatContext) -> AnthropicStream {
    AnthropicStream {
        ctx,
        started: false,
        done: false,
        blocks: BTreeMap::new(),
        tool_calls: 0,
        answered: false,
        stop_reason: None,
        usage: None,
    }
}

impl AnthropicStream {
    fn role_chunk(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            out.push(StreamItem::Chunk(chunk(&self.ctx, json!({ "role": "assistant", "content": "" }), None)));
        }
    }

    fn emit(&mut self, out: &mut Vec<StreamItem>, delta: Value) {
        self.role_chunk(out);
        out.push(StreamItem::Chunk(chunk(&self.ctx, delta, None)));
    }

    fn content(&mut self, out: &mut Vec<StreamItem>, text: &str) {
        if !text.is_empty() {
            self.emit(out, json!({ "content": text }));
        }
    }

    fn arguments(&mut self, out: &mut Vec<StreamItem>, index: usize, fragment: &str) {
        self.emit(out, json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }));
    }

    fn update_usage(&mut self, u: Option<&Value>) {
        if let Some(u) = u.filter(|u| u.is_object()) {
            self.usage.get_or_insert_with(RawUsage::default).update(u);
        }
    }

    fn block_start(&mut self, out: &mut Vec<StreamItem>, index: u64, block: &Value) {
        let kind = match block["type"].as_str() {
            Some("text") => {
                self.content(out, block["text"].as_str().unwrap_or_default());
                Block::Text
            }
            Some("thinking") => {
                if let Some(t) = block["thinking"].as_str().filter(|t| !t.is_empty()) {
                    self.emit(out, json!({ "reasoning_content": t }));
                }
                Block::Thinking
            }
            Some("tool_use") if block["name"] == RESPONSE_TOOL => {
                if self.answered {
                    Block::Ignored
                } else {
                    self.answered = true;
                    let mut sent = false;
                    if let Some(input) = non_empty_input(block) {
                        self.content(out, &input);
                        sent = true;
                    }
                    Block::Answer { sent }
                }
            }
            Some("tool_use") => {
                let tool = self.tool_calls;
                self.tool_calls += 1;
                let call = json!({
                    "index": tool,
                    "id": block["id"].as_str().unwrap_or_default(),
                    "type": "function",
                    "function": { "name": block["name"].as_str().unwrap_or_default(), "arguments": "" },
                });
                self.emit(out, json!({ "tool_calls": [call] }));
                let mut sent_args = false;
                if let Some(input) = non_empty_input(block) {
                    self.arguments(out, tool, &input);
                    sent_args = true;
                }
                Block::Tool { index: tool, sent_args }
            }
            _ => Block::Ignored,
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(&mut self, out: &mut Vec<StreamItem>, index: u64, delta: &Value) {
        let fragment = |key: &str| delta[key].as_str().filter(|s| !s.is_empty());
        let Some(block) = self.blocks.get_mut(&index) else { return };
        let chunk_delta = match (block, delta["type"].as_str()) {
            (Block::Text, Some("text_delta")) => fragment("text").map(|t| json!({ "content": t })),
            (Block::Thinking, Some("thinking_delta")) => {
                fragment("thinking").map(|t| json!({ "reasoning_content": t }))
            }
            (Block::Tool { index, sent_args }, Some("input_json_delta")) => fragment("partial_json").map(|f| {
                *sent_args = true;
                json!({ "tool_calls": [{ "index": *index, "function": { "arguments": f } }] })
            }),
            (Block::Answer { sent }, Some("input_json_delta")) => fragment("partial_json").map(|f| {
                *sent = true;
                json!({ "content": f })
            }),
            // signature_delta, citations_delta, and anything newer: nothing to show.
            _ => None,
        };
        if let Some(d) = chunk_delta {
            self.emit(out, d);
        }
    }

    /// A tool call whose input never arrived has no arguments: say so as `{}`.
    fn close_block(&mut self, out: &mut Vec<StreamItem>, block: Block) {
        match block {
            Block::Tool { index, sent_args: false } => self.arguments(out, index, "{}"),
            Block::Answer { sent: false } => self.content(out, "{}"),
            _ => {}
        }
    }

    /// Closes what is open, then the finish chunk and (if asked for) the usage chunk.
    fn finish_message(&mut self, out: &mut Vec<StreamItem>) {
        self.role_chunk(out);
        for block in std::mem::take(&mut self.blocks).into_values() {
            self.close_block(out, block);
        }
        let reason = finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0);
        out.push(StreamItem::Chunk(chunk(&self.ctx, json!({}), Some(reason))));
        if self.ctx.include_usage {
            let usage = self.usage.unwrap_or_default().to_usage();
            out.push(StreamItem::Chunk(usage_chunk(&self.ctx, &usage)));
        }
        self.done = true;
    }

    fn fail(&mut self, err: UpstreamError) -> Vec<StreamItem> {
        self.done = true;
        vec![StreamItem::Error(err.to_json())]
    }
}

/// A tool_use block that starts with input already in it (streams normally start with `{}`).
fn non_empty_input(block: &Value) -> Option<String> {
    block.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())).map(Value::to_string)
}

impl StreamTranslator for AnthropicStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return self.fail(UpstreamError {
                message: "Anthropic sent a stream event that is not JSON.".into(),
                kind: "api_error".into(),
                code: None,
                param: None,
            });
        };
        // The payload's own type is authoritative; the SSE event name is a fallback.
        let kind = data["type"].as_str().or(event.event.as_deref()).unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                self.update_usage(data.pointer("/message/usage"));
                self.role_chunk(&mut out);
            }
            "content_block_start" => {
                if let Some(index) = data["index"].as_u64() {
                    self.block_start(&mut out, index, &data["content_block"]);
                }
            }
            "content_block_delta" => {
                if let Some(index) = data["index"].as_u64() {
                    self.block_delta(&mut out, index, &data["delta"]);
                }
            }
            "content_block_stop" => {
                if let Some(block) = data["index"].as_u64().and_then(|i| self.blocks.remove(&i)) {
                    self.close_block(&mut out, block);
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                self.update_usage(data.get("usage"));
            }
            "message_stop" => self.finish_message(&mut out),
            "error" => return self.fail(error_from(None, Some(&data))),
            // ping, and event types added later.
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Vec<StreamItem> {
        if self.done {
            return Vec::new();
        }
        if !self.started {
            return self.fail(UpstreamError {
                message: "Anthropic closed the stream before sending a message.".into(),
                kind: "api_error".into(),
                code: None,
                param: None,
            });
        }
        // The stream ended without message_stop: deliver what is owed, with the stop reason seen
        // (if any) rather than an invented one.
        let mut out = Vec::new();
        self.finish_message(&mut out);
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(RawUsage::to_usage)
    }
}
