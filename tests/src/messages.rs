//! The `/v1/messages` scenarios of tests/fixtures/messages (README there) and what the suites
//! replaying them share: loading, SSE frames, and an accumulator of Anthropic events into a message
//! as the Anthropic SDKs build one.

use std::path::PathBuf;

use relay::sse::SseParser;
use serde_json::{json, Value};

use crate::fixtures::read_json;

/// One directory of tests/fixtures/messages/, named `<provider>_<scenario>`.
#[derive(Debug, Clone)]
pub struct MessagesScenario {
    pub name: String,
    pub dir: PathBuf,
    /// The provider the model routes to.
    pub provider: String,
    /// `request.json`: what the client sends to `/v1/messages`.
    pub request: Value,
    pub upstream_response: Option<Value>,
    pub upstream_stream: Option<Vec<u8>>,
    /// `expected.json`: `{"message"}`, or `{"error", "text_before"}` for an error mid-stream.
    pub expected: Value,
}

impl MessagesScenario {
    pub fn model(&self) -> &str {
        self.request["model"].as_str().expect("model")
    }

    /// What must be equal between two messages: every field but an id Relay makes (and, for a
    /// stream of Anthropic's, its own id), usage read as the SDKs read it (absent counts as 0).
    pub fn comparable(&self, m: &Value, streamed: bool) -> Value {
        let keep_id = self.provider == "anthropic" && !streamed;
        let id = m["id"].as_str().unwrap_or_default();
        let usage = &m["usage"];
        let n = |k: &str| usage[k].as_u64().unwrap_or(0);
        json!({
            "id": if keep_id { json!(id) } else { json!(id.starts_with("msg_")) },
            "type": m["type"], "role": m["role"], "model": m["model"], "content": m["content"],
            "stop_reason": m["stop_reason"], "stop_sequence": m.get("stop_sequence").cloned().unwrap_or(Value::Null),
            "usage": {
                "input_tokens": n("input_tokens"), "output_tokens": n("output_tokens"),
                "cache_read_input_tokens": n("cache_read_input_tokens"),
                "cache_creation_input_tokens": n("cache_creation_input_tokens"),
            },
        })
    }
}

pub fn scenarios() -> Vec<MessagesScenario> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("messages");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
            let provider = name.split('_').next().expect("provider prefix").to_owned();
            let optional = |f: &str| dir.join(f).exists().then(|| dir.join(f));
            MessagesScenario {
                provider,
                request: read_json(&dir.join("request.json")),
                upstream_response: optional("upstream_response.json").map(|p| read_json(&p)),
                upstream_stream: optional("upstream_stream.sse").map(|p| std::fs::read(p).expect("sse")),
                expected: read_json(&dir.join("expected.json")),
                name: format!("messages/{name}"),
                dir,
            }
        })
        .collect()
}

/// The SSE frames in `bytes`: `{"event": name, "data": JSON}` each.
pub fn frames(bytes: &[u8]) -> Vec<Value> {
    let mut parser = SseParser::new();
    let mut events = parser.push(bytes);
    events.extend(parser.finish());
    events
        .into_iter()
        .map(|e| json!({ "event": e.event, "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::String(e.data)) }))
        .collect()
}

/// Anthropic's events -> the message they build, as the SDKs accumulate it; `Err` with the
/// `error` event's data when the stream ends in one (and after it nothing may come).
pub fn accumulate_events(frames: &[Value]) -> Result<Value, Value> {
    let mut message = Value::Null;
    let mut json_bufs: Vec<String> = Vec::new();
    let mut stopped = false;
    for (i, f) in frames.iter().enumerate() {
        let d = &f["data"];
        assert_eq!(f["event"], d["type"], "the event name is the data's type: {f}");
        assert!(!stopped, "nothing after message_stop: {f}");
        match d["type"].as_str().unwrap_or_default() {
            "message_start" => {
                assert_eq!(i, 0, "message_start comes first");
                message = d["message"].clone();
            }
            "content_block_start" => {
                let index = d["index"].as_u64().expect("index") as usize;
                let content = message["content"].as_array_mut().expect("content");
                assert_eq!(index, content.len(), "blocks start in order");
                content.push(d["content_block"].clone());
                json_bufs.push(String::new());
            }
            "content_block_delta" => {
                let index = d["index"].as_u64().expect("index") as usize;
                let block = &mut message["content"][index];
                let delta = &d["delta"];
                let append = |v: &mut Value, s: &Value| {
                    *v = json!(format!("{}{}", v.as_str().unwrap_or_default(), s.as_str().unwrap_or_default()))
                };
                match delta["type"].as_str().unwrap_or_default() {
                    "text_delta" => append(&mut block["text"], &delta["text"]),
                    "thinking_delta" => append(&mut block["thinking"], &delta["thinking"]),
                    "signature_delta" => append(&mut block["signature"], &delta["signature"]),
                    "input_json_delta" => json_bufs[index].push_str(delta["partial_json"].as_str().unwrap_or_default()),
                    other => panic!("unknown delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = d["index"].as_u64().expect("index") as usize;
                if !json_bufs[index].is_empty() {
                    message["content"][index]["input"] = serde_json::from_str(&json_bufs[index]).expect("tool input");
                }
            }
            "message_delta" => {
                message["stop_reason"] = d["delta"]["stop_reason"].clone();
                message["stop_sequence"] = d["delta"]["stop_sequence"].clone();
                if let Some(u) = d["usage"].as_object() {
                    for (k, v) in u {
                        if !v.is_null() {
                            message["usage"][k] = v.clone();
                        }
                    }
                }
            }
            "message_stop" => stopped = true,
            "error" => {
                assert_eq!(i + 1, frames.len(), "the error event is the last");
                return Err(d.clone());
            }
            "ping" => {}
            other => panic!("unknown event {other}"),
        }
    }
    assert!(stopped, "the stream ends with message_stop");
    Ok(message)
}
